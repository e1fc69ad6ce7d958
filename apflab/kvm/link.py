"""Lines over a byte stream: the host's transport for the VMM channel.

The channel runs over a TCP connection (a nested L1 reaches the host at 10.0.2.2
through QEMU's user networking; the host listens on the loopback), over a plain fd
pair (pipes), or over anything with ``fileno``/``recv``/``sendall``/``close`` such as
an SSH channel (paramiko's, e.g. a direct-tcpip forward to the VMM's ``listen:`` port
on a lab board). Every read has a deadline; sends are serialised so several threads
can write lines.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from typing import Protocol

from apflab.kvm.channel import MAX_LINE


class LinkTimeout(TimeoutError):
    """Nothing arrived before the deadline."""


class LinkClosed(ConnectionError):
    """The other end closed the stream (or it failed)."""


class Stream(Protocol):
    """What the link needs of a byte stream (a socket and a paramiko Channel have it)."""

    def fileno(self) -> int: ...

    def recv(self, size: int) -> bytes: ...

    def sendall(self, data: bytes) -> object: ...

    def close(self) -> object: ...


class FdPair:
    """A read fd and a write fd (pipes) as a :class:`Stream`."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd

    def fileno(self) -> int:
        return self.rfd

    def recv(self, size: int) -> bytes:
        return os.read(self.rfd, size)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.wfd, view) :]

    def close(self) -> None:
        for fd in {self.rfd, self.wfd}:
            with contextlib.suppress(OSError):
                os.close(fd)


class LineLink:
    """One line-oriented stream."""

    def __init__(self, stream: Stream, name: str) -> None:
        self.stream, self.name = stream, name
        self._buffer = b""
        self._wlock = threading.Lock()
        self.closed = False

    @classmethod
    def from_socket(cls, sock: socket.socket, name: str) -> LineLink:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one small line per call
        return cls(sock, name)

    @classmethod
    def from_fds(cls, rfd: int, wfd: int, name: str) -> LineLink:
        return cls(FdPair(rfd, wfd), name)

    def send(self, line: str) -> None:
        data = line.encode() + b"\n"
        if len(data) > MAX_LINE:
            raise ValueError(f"a channel line of {len(data)} bytes is over {MAX_LINE}")
        with self._wlock:
            try:
                self.stream.sendall(data)
            except OSError as exc:
                raise LinkClosed(f"{self.name}: write failed ({exc})") from None

    def readline(self, timeout: float | None) -> str:
        """The next line (without its newline); LinkTimeout or LinkClosed otherwise."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                raise LinkClosed(f"{self.name}: no newline in {len(self._buffer)} bytes")
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            ready, _, _ = select.select([self.stream], [], [], left)
            if not ready:
                raise LinkTimeout(f"{self.name}: nothing within {timeout:g} s")
            try:
                chunk = self.stream.recv(65536)
            except OSError as exc:
                raise LinkClosed(f"{self.name}: read failed ({exc})") from None
            if not chunk:
                raise LinkClosed(f"{self.name}: closed by the other end")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode(errors="replace").rstrip("\r")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if isinstance(self.stream, socket.socket):
            with contextlib.suppress(OSError):
                self.stream.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in select
        with contextlib.suppress(OSError):
            self.stream.close()


class Listener:
    """A TCP listening socket for one VMM connection at a time (127.0.0.1 by default)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise LinkClosed(f"cannot listen on {host}:{port} ({exc}); pick a free port") from None
        self.sock.listen(1)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def accept(self, timeout: float) -> LineLink:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            raise LinkTimeout(f"no VMM connected to port {self.port} within {timeout:g} s")
        conn, peer = self.sock.accept()
        return LineLink.from_socket(conn, f"VMM channel from {peer[0]}:{peer[1]}")

    def close(self) -> None:
        self.sock.close()
