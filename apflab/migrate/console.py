"""A guest console carried by a byte stream (an SSH channel), with expect() and a tail.

The destination QEMU's serial port is a pair of FIFOs on its host, read and written
through SSH channels; this class keeps what arrived (up to a limit) so tests can wait
for a line with a bound and errors can show the console's last lines.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from apflab.migrate import MigrationError
from apflab.safetext import visible

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
Pattern = str | re.Pattern[str] | re.Pattern[bytes]


class ConsoleTimeout(MigrationError):
    """The console did not show what was awaited within the bound."""


def clean(data: bytes) -> str:
    """Console bytes as text: escape sequences and carriage returns dropped."""
    return ANSI.sub(b"", data).replace(b"\r", b"").decode(errors="replace")


class StreamConsole:
    """Reads ``read(n) -> bytes`` (b"" at end) on a thread; ``write(bytes)`` sends."""

    def __init__(
        self, name: str, read: Callable[[int], bytes], write: Callable[[bytes], object], limit: int = 1 << 20
    ) -> None:
        self.name = name
        self._read = read
        self._write = write
        self.limit = limit
        self.buffer = bytearray()
        self.dropped = 0  # bytes discarded from the front to respect the limit
        self.closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, name=f"console-{name}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            try:
                chunk = self._read(65536)
            except Exception:
                chunk = b""
            with self._cond:
                if not chunk:
                    self.closed = True
                    self._cond.notify_all()
                    return
                self.buffer += chunk
                if len(self.buffer) > self.limit:
                    cut = len(self.buffer) - self.limit
                    del self.buffer[:cut]
                    self.dropped += cut
                self._cond.notify_all()

    @property
    def position(self) -> int:
        with self._cond:
            return self.dropped + len(self.buffer)

    def write(self, data: bytes | str) -> None:
        self._write(data.encode() if isinstance(data, str) else data)

    def sendline(self, line: str) -> None:
        self.write(line + "\n")

    def expect(self, pattern: Pattern, timeout: float, since: int = 0) -> tuple[re.Match[bytes], int]:
        """Wait for ``pattern`` in the output from absolute position ``since``; returns (match, end position)."""
        if isinstance(pattern, re.Pattern) and isinstance(pattern.pattern, str):
            pattern = pattern.pattern
        regex = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                start = max(0, since - self.dropped)
                m = regex.search(self.buffer, start)
                if m:
                    return m, self.dropped + m.end()
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    why = "the console closed" if self.closed else f"nothing matched within {timeout:.0f} s"
                    raise ConsoleTimeout(
                        f"{self.name}: waiting for {regex.pattern!r}: {why}; console tail:\n{self.tail()}"
                    )
                self._cond.wait(min(left, 1.0))

    def text(self, since: int = 0) -> str:
        with self._cond:
            return clean(bytes(self.buffer[max(0, since - self.dropped) :]))

    def tail(self, chars: int = 2000) -> str:
        """The last ``chars`` characters for a message: control characters written out."""
        with self._cond:
            return visible(clean(bytes(self.buffer[-chars * 2 :]))[-chars:])
