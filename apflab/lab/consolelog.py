"""The last bytes a labgrid console driver read, for error messages.

labgrid reports every console read as a step event (that is how its
ConsoleLoggingReporter writes console logs); :class:`ConsoleTail` subscribes to those
events for one driver and keeps a bounded tail, so a failed boot or migration can show
what the guest printed last without reading the console itself (which would steal
bytes from the ShellDriver's expect buffer).
"""

from __future__ import annotations

import contextlib
import threading

from labgrid.step import steps

from apflab.migrate.console import clean
from apflab.safetext import visible


class ConsoleTail:
    def __init__(self, source: object, limit: int = 64 * 1024) -> None:
        self.source = source
        self.limit = limit
        self._buf = bytearray()
        self._total = 0
        self._lock = threading.Lock()
        steps.subscribe(self._notify)

    def feed(self, data: bytes) -> None:
        """Add bytes read from the console outside labgrid's steps (see ConsoleDrain)."""
        with self._lock:
            self._buf += data
            self._total += len(data)
            if len(self._buf) > self.limit:
                del self._buf[: len(self._buf) - self.limit]

    def _notify(self, event) -> None:  # labgrid's StepEvent
        step = event.step
        if step.source is not self.source or step.tag != "console" or step.title != "read":
            return
        if event.data.get("state") != "stop" or not isinstance(step.result, bytes | bytearray):
            return
        self.feed(bytes(step.result))

    def mark(self) -> int:
        """A position: ``text(since=mark)`` gives what was read after it."""
        with self._lock:
            return self._total

    def text(self, since: int = 0) -> str:
        with self._lock:
            keep = self._total - since
            data = bytes(self._buf[-keep:]) if 0 < keep <= len(self._buf) else bytes(self._buf) if keep > 0 else b""
        return clean(data)

    def tail(self, chars: int = 2000, since: int = 0) -> str:
        """The last ``chars`` characters for a message: control characters written out."""
        return visible(self.text(since)[-chars:])

    def close(self) -> None:
        with contextlib.suppress(AssertionError):  # labgrid asserts the callback is subscribed
            steps.unsubscribe(self._notify)


class ConsoleDrain:
    """While in its ``with`` block, a thread reads the console so the guest never blocks on it.

    It reads through the driver's low-level ``_read`` (ConsoleExpectMixin's contract), not
    ``read()``: labgrid's step bookkeeping is not meant for a second thread. What it reads
    goes to ``tail``. Use it only while nothing else reads the console.
    """

    def __init__(self, console: object, tail: ConsoleTail | None) -> None:
        self.console = console
        self.tail = tail
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-drain", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.console._read(size=4096, timeout=0.2)
            except Exception:  # pexpect.TIMEOUT when quiet; OSError when the socket is gone
                if getattr(self.console, "_clientsocket", None) is None:
                    return
                continue
            if not data:
                return
            if self.tail is not None:
                self.tail.feed(data)

    def __enter__(self) -> ConsoleDrain:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
