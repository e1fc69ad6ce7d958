"""Text a target said, made safe to keep and to show: visible, valid XML, bounded.

A target's console, stderr or crash UART may print any bytes: NUL, terminal escapes,
invalid UTF-8, characters XML forbids, megabyte lines. Such text goes into failure
messages, JUnit files, reports and the user's terminal, so where it enters apflab it
passes through :func:`from_target`: control characters and undecodable bytes are
written out (ESC as ``\\x1b``) and counted in a note, and long text keeps its head and
tail with the size of the cut in between. Tab and newline stay as they are.
"""

from __future__ import annotations

import re

#: C0 controls but tab and newline, DEL, C1 controls, lone surrogates (undecodable
#: bytes under ``surrogateescape``), and U+FFFE/U+FFFF, which XML does not allow.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_UNDECODABLE = range(0xDC80, 0xDD00)  # surrogateescape's image of bytes 0x80..0xff


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def visible(text: str) -> str:
    """``text`` with every control character and undecodable byte written out, and a note
    saying how many there were (nothing is added when there were none)."""
    controls = invalid = 0

    def written_out(match: re.Match[str]) -> str:
        nonlocal controls, invalid
        code = ord(match.group())
        if code in _UNDECODABLE:
            invalid += 1
            return f"\\x{code - 0xDC00:02x}"
        controls += 1
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    shown = _UNSAFE.sub(written_out, text)
    if not (controls or invalid):
        return text
    what = [_plural(n, word) for n, word in ((controls, "control character"), (invalid, "invalid byte")) if n]
    return f"{shown} [{' and '.join(what)} escaped]"


class HeadTail:
    """What is kept of output that may never end: its first ``head`` and last ``tail``
    bytes, and how many bytes between them were dropped."""

    def __init__(self, head: int, tail: int) -> None:
        self.head_limit, self.tail_limit = head, tail
        self.first = self.last = b""
        self.cut = 0

    def add(self, data: bytes) -> None:
        room = self.head_limit - len(self.first)
        if room > 0:
            self.first, data = self.first + data[:room], data[room:]
        self.last += data
        if len(self.last) > self.tail_limit:
            self.cut += len(self.last) - self.tail_limit
            self.last = self.last[-self.tail_limit :]

    def recent(self) -> bytes:
        """The latest bytes, contiguous (the head too while nothing was cut)."""
        return self.last if self.cut else self.first + self.last

    def kept(self) -> bytes:
        """Head and tail, with the size of the cut between them."""
        return self.first + (f" [... {self.cut} bytes cut ...] ".encode() if self.cut else b"") + self.last


def decode(data: bytes) -> str:
    """UTF-8 as far as it goes; undecodable bytes stay recoverable for :func:`visible`."""
    return data.decode("utf-8", errors="surrogateescape")


def bound(text: str, limit: int, *, lines: bool = False) -> str:
    """At most about ``limit`` characters: the head and the tail, and how much was cut.

    The tail gets two thirds (where a failure usually says what went wrong last). With
    ``lines`` the cut note stands on a line of its own.
    """
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head
    cut = len(text) - head - tail
    sep = "\n" if lines else " "
    return f"{text[:head]}{sep}[... {cut} characters cut ...]{sep}{text[-tail:]}"


def from_target(data: bytes | str, limit: int, *, lines: bool = False) -> str:
    """Anything a target printed, as text safe to keep and show (see the module's doc)."""
    text = decode(data) if isinstance(data, bytes) else data
    return bound(visible(text), limit, lines=lines)
