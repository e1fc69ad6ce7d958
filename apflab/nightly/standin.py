"""A stand-in lab on 127.0.0.1: a real labgrid coordinator, real exporters, QEMU boards.

The project's own tests and the scaling benchmark need a lab that behaves like the real
one without hardware. Everything here is labgrid's own programs: ``labgrid-coordinator``
(run from a state folder, where it keeps places.yaml) and one ``labgrid-exporter`` per
board host, exporting targets/lab/standin-exporter.yaml, on free loopback ports. Each
board is a NetworkSerialPort whose QEMU the test process powers (QEMUBoardPowerDriver),
and a place matching it, tagged like a real board (pool, target, profile, conduit).
Every process is stopped, bounded, when the lab is closed, also after a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from apflab.nightly.session import CoordinatorSession, LabError

ROOT = Path(__file__).resolve().parents[2]
EXPORTER_CONFIG = ROOT / "targets" / "lab" / "standin-exporter.yaml"
HOST = "127.0.0.1"

#: What the suites need to know about each kind of stand-in board, as place tags.
KINDS = {
    "qemu-tfa": {"target": "lab-qemu-tfa", "profile": "spec", "conduit": "smc"},
    "qemu": {"target": "lab-qemu", "profile": "kvm-v4", "conduit": "hvc"},
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    """labgrid's programs from the running interpreter's environment (the venv), else PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise LabError(f"{name} not found: install labgrid (pip install labgrid)")
    return found


@dataclass
class Process:
    """A background program with its output in a log file."""

    name: str
    argv: list[str]
    log: Path
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """Gone at once, as a crashed host would be."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def tail(self, lines: int = 15) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Board:
    name: str
    kind: str
    port: int
    exporter: str
    tags: dict[str, str]


class StandinLab:
    """A coordinator, exporters and tagged places; ``with StandinLab(dir) as lab: ...``."""

    def __init__(self, state: Path, timeout: float = 20.0) -> None:
        self.state = Path(state)
        self.timeout = timeout
        self.port = free_port()
        self.address = f"{HOST}:{self.port}"
        self.coordinator: Process | None = None
        self.exporters: dict[str, Process] = {}
        self.boards: dict[str, Board] = {}

    def __enter__(self) -> StandinLab:
        self.start_coordinator()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ processes

    def start_coordinator(self) -> None:
        cdir = self.state / "coordinator"
        cdir.mkdir(parents=True, exist_ok=True)
        self.coordinator = Process(
            "coordinator", [_bin("labgrid-coordinator"), "--listen", self.address], cdir / "coordinator.log", cdir
        ).start()
        deadline = time.monotonic() + self.timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=1):
                return
            if not self.coordinator.alive() or time.monotonic() > deadline:
                tail = self.coordinator.tail()
                self.close()
                raise LabError(f"labgrid-coordinator did not listen on {self.address}: {tail}")
            time.sleep(0.05)

    def add_exporter(self, name: str, boards: dict[str, str], tags: dict[str, str] | None = None) -> list[Board]:
        """Start exporter ``name`` publishing ``boards`` (board name -> kind), create a
        place per board matching ``name/<board>/*``, tagged with the kind's tags plus ``tags``."""
        made = [Board(b, kind, free_port(), name, {**KINDS[kind], **(tags or {})}) for b, kind in boards.items()]
        spec = " ".join(f"{b.name}={b.port}" for b in made)
        self.start_exporter(name, EXPORTER_CONFIG, [b.name for b in made], {"APFLAB_STANDIN_BOARDS": spec})
        with self.session() as session:
            known = session.places()
            for b in made:
                if b.name not in known:
                    session.add_place(b.name, [f"{name}/{b.name}/*"], b.tags)
        for b in made:
            self.boards[b.name] = b
        return made

    def start_exporter(self, name: str, config: Path, groups: list[str], env: dict[str, str] | None = None) -> None:
        """Start ``labgrid-exporter -n name config`` and wait until ``groups`` are published."""
        edir = self.state / f"exporter-{name}"
        edir.mkdir(parents=True, exist_ok=True)
        argv = [_bin("labgrid-exporter"), "-c", self.address, "-n", name, "--hostname", HOST, str(config)]
        self.exporters[name] = Process(name, argv, edir / "exporter.log", edir, env or {}).start()
        with self.session() as session:
            self._await_resources(session, name, groups)

    def _await_resources(self, session: CoordinatorSession, exporter: str, groups: list[str]) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            seen = {p.split("/")[1] for p, avail in session.exported() if p.startswith(f"{exporter}/") and avail}
            if set(groups) <= seen:
                return
            proc = self.exporters[exporter]
            if not proc.alive() or time.monotonic() > deadline:
                raise LabError(f"exporter {exporter} did not publish {', '.join(groups)}: {proc.tail()}")
            time.sleep(0.1)

    def session(self, timeout: float = 10.0) -> CoordinatorSession:
        return CoordinatorSession(self.address, timeout=timeout)

    def close(self) -> None:
        for proc in self.exporters.values():
            proc.stop()
        if self.coordinator is not None:
            self.coordinator.stop()

    def leftovers(self) -> list[str]:
        """What a finished run must not leave behind: held places, reservations, live consoles."""
        out = []
        with self.session() as session:
            for name, place in sorted(session.places().items()):
                if place.acquired:
                    out.append(f"{name} still acquired by {place.acquired}")
            out += [f"reservation {r.token} ({r.state})" for r in session.reservations()]
        for board in self.boards.values():
            with contextlib.suppress(OSError), socket.create_connection((HOST, board.port), timeout=1):
                out.append(f"something (a QEMU?) still listens on {board.name}'s console port {board.port}")
        return out

    def logs(self) -> str:
        """The tails of every lab process's log (for a failing test's message)."""
        procs = [p for p in [self.coordinator, *self.exporters.values()] if p is not None]
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in procs)
