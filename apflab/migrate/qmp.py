"""A synchronous face on qemu.qmp's asynchronous QMPClient, keeping every event.

Drivers and tests are synchronous; qemu.qmp is asyncio. Each :class:`QMPSession` owns an
event loop on a thread of its own; commands run there with a bound on every wait, and
an event listener records every event with the host time it arrived, so a waiter is
woken the moment a MIGRATION event lands (no polling), and nothing is dropped
(labgrid's QMPMonitor discards events while it waits for a reply).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qemu.qmp import EventListener, ExecuteError, QMPClient

from apflab.migrate import MigrationError

logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)  # its own tracebacks on disconnect are noise


class QMPTimeout(MigrationError):
    """A QMP command or an awaited event did not come within its bound."""


class QMPCommandError(MigrationError):
    """QEMU answered a command with an error (or the connection broke)."""


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]
    qemu_time: float  # QEMU's own timestamp of the event (host wall clock, seconds)
    received: float  # time.time() when our listener took it

    def __str__(self) -> str:
        return f"{self.name} {self.data}" if self.data else self.name


class QMPSession:
    """One QMP connection; ``execute`` and ``wait_event`` block the caller up to a timeout."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"qmp-{name}", daemon=True)
        self._thread.start()
        self._client: QMPClient | None = None
        self._listener: EventListener | None = None
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------ plumbing

    def _run(self, coro, timeout: float, what: str):
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except (TimeoutError, concurrent.futures.TimeoutError):
            future.cancel()
            raise QMPTimeout(f"{self.name}: {what}: no answer within {timeout:.0f} s") from None

    async def _connect(self, address: str | tuple[str, int] | socket.socket) -> None:
        self._client = QMPClient(self.name)
        self._listener = EventListener()
        self._client.register_listener(self._listener)
        await self._client.connect(address)
        self._task = asyncio.ensure_future(self._collect())

    async def _collect(self) -> None:
        assert self._listener is not None
        async for message in self._listener:
            received = time.time()
            stamp = message.get("timestamp", {})
            qemu_time = stamp.get("seconds", 0) + stamp.get("microseconds", 0) / 1e6
            event = Event(str(message["event"]), dict(message.get("data", {})), qemu_time, received)
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()

    # ------------------------------------------------------------- public

    def connect(self, address: str | tuple[str, int] | socket.socket, timeout: float = 15.0) -> None:
        """Connect (a unix socket path, a (host, port) or a connected socket) and negotiate."""
        try:
            self._run(self._connect(address), timeout, "connect and QMP greeting")
        except QMPTimeout:
            raise
        except Exception as exc:
            raise QMPCommandError(f"{self.name}: QMP connect to {address!r} failed: {exc}") from None

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.runstate.name == "RUNNING"

    def execute(self, cmd: str, args: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
        if self._client is None:
            raise QMPCommandError(f"{self.name}: not connected")
        try:
            return self._run(self._client.execute(cmd, args), timeout, cmd)
        except ExecuteError as exc:
            raise QMPCommandError(f"{self.name}: {cmd} failed: {exc}") from None
        except QMPTimeout:
            raise
        except Exception as exc:  # disconnected, state errors
            raise QMPCommandError(f"{self.name}: {cmd} failed: {type(exc).__name__}: {exc}") from None

    def wait_event(self, match: Callable[[Event], bool], timeout: float, start: int = 0) -> Event | None:
        """The first event from index ``start`` on that matches, waiting up to ``timeout``; None if none."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[start:]:
                    if match(event):
                        return event
                start = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def mark(self) -> int:
        """An index for ``wait_event(start=...)``: events from now on."""
        with self._cond:
            return len(self.events)

    def close(self, timeout: float = 5.0) -> None:
        if self._client is not None:
            client, self._client = self._client, None

            async def _close() -> None:
                if self._task is not None:
                    self._task.cancel()
                with contextlib.suppress(Exception):
                    await client.disconnect()  # raises EOFError after 'quit'

            with contextlib.suppress(Exception):
                self._run(_close(), timeout, "disconnect")
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()
