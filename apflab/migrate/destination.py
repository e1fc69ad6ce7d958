"""The destination QEMU: started over SSH on its host, waiting with ``-incoming defer``.

Everything goes through the one SSH connection, so the host needs nothing but sshd,
a POSIX shell and QEMU: the files QEMU loads (kernel, initramfs) are uploaded under
content-addressed names; QMP runs on QEMU's stdin/stdout (``-qmp stdio``), bridged to a
local socket for qemu.qmp; the serial console is a FIFO pair (``-chardev pipe``) read
and written by ``cat`` over two more channels; QEMU's stderr goes to a file we show when
it fails. Every wait is bounded and a failed start reports QEMU's exit status and stderr.
"""

from __future__ import annotations

import contextlib
import select
import shlex
import socket
import threading
import time
from pathlib import Path

import paramiko

from apflab.migrate import DestinationError, HostError
from apflab.migrate.console import StreamConsole
from apflab.migrate.qmp import QMPSession
from apflab.migrate.remote import RemoteHost

CONSOLE_ID = "apflab-console"


def _bridge(chan: paramiko.Channel, sock: socket.socket) -> None:
    """Copy bytes both ways between an SSH channel and a local socket until either side ends."""
    try:
        while True:
            ready, _, _ = select.select([chan, sock], [], [], 1.0)
            if chan in ready:
                data = chan.recv(65536)
                if not data:
                    break
                sock.sendall(data)
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    break
                chan.sendall(data)
    except (OSError, EOFError, paramiko.SSHException):
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            chan.shutdown_write()


class Destination:
    """One destination QEMU on ``host``; ``argv`` is QEMU's command line with local file paths.

    The paths in ``uploads`` are copied to the host and replaced in ``argv``.
    """

    def __init__(
        self,
        host: RemoteHost,
        argv: list[str],
        uploads: list[Path],
        name: str = "destination",
        start_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.argv = list(argv)
        self.uploads = [Path(p) for p in uploads]
        self.name = name
        self.start_timeout = start_timeout
        self.dir = ""
        self.qmp: QMPSession | None = None
        self.console: StreamConsole | None = None
        self._chan: paramiko.Channel | None = None
        self._console_chans: list[paramiko.Channel] = []
        self._bridge: threading.Thread | None = None

    # ------------------------------------------------------------------ start

    def command_line(self, argv: list[str]) -> list[str]:
        d = self.dir
        return [
            *argv,
            "-display",
            "none",
            "-monitor",
            "none",
            "-qmp",
            "stdio",
            "-chardev",
            f"pipe,id={CONSOLE_ID},path={d}/console",
            "-serial",
            f"chardev:{CONSOLE_ID}",
            "-incoming",
            "defer",
        ]

    def start(self) -> Destination:
        host = self.host
        self.dir = host.run("mktemp -d /tmp/apflab-dst-XXXXXX", timeout=30, check=True).stdout.strip()
        d = shlex.quote(self.dir)
        host.run(f"mkfifo {d}/console.in {d}/console.out", timeout=30, check=True)
        home = host.run('printf %s "$HOME"', timeout=30, check=True).stdout.strip() or "/tmp"
        cache = f"{home}/.cache/apflab/remote"
        argv = list(self.argv)
        for local in self.uploads:
            remote = host.upload(local, cache)
            argv = [remote if a == str(local) else a for a in argv]
        argv = self.command_line(argv)
        reader = host.open_exec(f"echo $$ >> {d}/pids; exec cat {d}/console.out")
        writer = host.open_exec(f"echo $$ >> {d}/pids; exec cat > {d}/console.in")
        self._console_chans = [reader, writer]
        self.console = StreamConsole(self.name, reader.recv, writer.sendall)
        quoted = " ".join(shlex.quote(a) for a in argv)
        self._chan = host.open_exec(f"cd {d} && echo $$ > qemu.pid && exec {quoted} 2> qemu.stderr")
        ours, theirs = socket.socketpair()
        self._bridge = threading.Thread(
            target=_bridge, args=(self._chan, theirs), name=f"qmp-bridge-{self.name}", daemon=True
        )
        self._bridge.start()
        self.qmp = QMPSession(self.name)
        try:
            self.qmp.connect(ours, timeout=self.start_timeout)
        except Exception as exc:
            status = self.exit_status(wait=2.0)
            detail = f"exit status {status}" if status is not None else "still running but not answering QMP"
            err = self.stderr_tail()
            self.stop()
            raise DestinationError(
                f"{self.name} QEMU on {host} did not start ({detail}): {err or exc}\ncommand: {' '.join(argv)}"
            ) from None
        return self

    # ----------------------------------------------------------------- state

    def exit_status(self, wait: float = 0.0) -> int | None:
        """QEMU's exit status, or None while it runs (waits up to ``wait`` seconds)."""
        if self._chan is None:
            return None
        deadline = time.monotonic() + wait
        while not self._chan.exit_status_ready():
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)
        return self._chan.recv_exit_status()

    def stderr_tail(self, chars: int = 2000) -> str:
        if not self.dir:
            return ""
        try:
            r = self.host.run(f"tail -c {chars} {shlex.quote(self.dir)}/qemu.stderr 2>/dev/null", timeout=15)
        except HostError as exc:
            return f"(stderr unavailable: {exc})"
        return r.stdout.strip()

    def status(self) -> str:
        """QEMU's run state (``query-status``), or how it ended."""
        code = self.exit_status()
        if code is not None:
            return f"exited with status {code}"
        if self.qmp is None:
            return "not started"
        try:
            return str(self.qmp.execute("query-status", timeout=5)["status"])
        except Exception as exc:
            return f"unknown ({exc})"

    def describe(self) -> str:
        """Status, stderr and console tail, for error messages."""
        parts = [f"{self.name} on {self.host}: {self.status()}"]
        err = self.stderr_tail(800)
        if err:
            parts.append(f"{self.name} stderr: {err}")
        if self.console is not None:
            parts.append(f"{self.name} console tail:\n{self.console.tail(1500)}")
        return "\n".join(parts)

    def kill(self, sig: str = "STOP") -> None:
        """Send a signal to the destination QEMU (tests use STOP to make a migration stall)."""
        self.host.run(f"kill -{sig} $(cat {shlex.quote(self.dir)}/qemu.pid)", timeout=15, check=True)

    # ------------------------------------------------------------------- stop

    def stop(self, timeout: float = 6.0) -> None:
        if self.qmp is not None:
            if self.exit_status() is None:
                with contextlib.suppress(Exception):
                    self.qmp.execute("quit", timeout=2)
            self.qmp.close()
            self.qmp = None
        if self.dir:
            d = shlex.quote(self.dir)
            if self.exit_status(wait=timeout / 2) is None:
                with contextlib.suppress(HostError):
                    self.host.run(f"kill -CONT $(cat {d}/qemu.pid); kill -9 $(cat {d}/qemu.pid)", timeout=15)
                self.exit_status(wait=timeout / 2)
            with contextlib.suppress(HostError):
                self.host.run(f"kill $(cat {d}/pids) 2>/dev/null; rm -rf {d}", timeout=15)
        for chan in [*self._console_chans, *([self._chan] if self._chan else [])]:
            with contextlib.suppress(Exception):
                chan.close()
        self._console_chans = []
        if self._bridge is not None:
            self._bridge.join(2)
