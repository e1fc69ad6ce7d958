"""QEMUProcessDriver: a QEMU instance whose console is its own stdin/stdout.

labgrid's QEMUDriver waits 10 ms after every console read ("collect some more data"),
which alone would cost 10 ms per agent round trip; this driver offers the same
ConsoleProtocol and PowerProtocol on QEMU's stdio instead, so a CALL costs what QEMU
costs. The second UART (TF-A's crash console on QEMU virt with secure=on) goes to a
file whose tail is attached to failures. ``on()`` starts QEMU, ``off()`` stops it
(quit, then kill after a bound), ``cycle()`` is a fresh instance.
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.protocol import ConsoleProtocol, PowerProtocol
from labgrid.step import step

from apflab.agent.client import read_available
from apflab.images import ImageError, cache_dir
from apflab.lab import keys
from apflab.lab.health import TargetHealthProtocol
from apflab.safetext import bound, from_target


def resolve_image(spec: str) -> Path:
    """``recipe:file`` names a file in the apflab image cache; anything else is a path."""
    recipe, sep, name = spec.partition(":")
    if sep and "/" not in recipe:
        path = cache_dir() / recipe / name
        if not path.exists():
            raise ImageError(f"{path} is missing: build it with `apflab images {recipe}`")
        return path
    path = Path(spec).expanduser()
    if not path.exists():
        raise ImageError(f"image {path} does not exist")
    return path


def kvm_available(accel: str) -> bool:
    """``auto``: KVM on an arm64 host whose /dev/kvm we may use; else as ``accel`` says."""
    if accel != "auto":
        return accel == "kvm"
    return os.uname().machine == "aarch64" and os.access("/dev/kvm", os.R_OK | os.W_OK)


def qemu_command(d: Any, console: list[str], crash_log: Path) -> list[str]:
    """The QEMU command line of a driver with the fields qemu_bin, machine, cpu, memory,
    smp, accel, bios, kernel and extra_args; ``console`` wires the first UART."""
    qemu = shutil.which(d.qemu_bin)
    if qemu is None:
        raise ImageError(f"{d.qemu_bin} not found: install qemu-system-arm (apt-get install qemu-system-arm)")
    kvm = kvm_available(d.accel)
    cmd = [
        qemu,
        "-machine",
        d.machine,
        "-cpu",
        "host" if kvm else d.cpu,
        "-m",
        d.memory,
        "-smp",
        str(d.smp),
        "-accel",
        "kvm" if kvm else "tcg",
        "-display",
        "none",
        "-monitor",
        "none",
        "-nic",
        "none",
        "-no-reboot",
        *console,
    ]
    if "secure=on" in d.machine:
        cmd += ["-serial", f"file:{crash_log}"]  # TF-A's crash console
    if d.bios:
        cmd += ["-bios", str(resolve_image(d.bios))]
    if d.kernel:
        cmd += ["-kernel", str(resolve_image(d.kernel))]
    return cmd + shlex.split(d.extra_args)


def stop_process(proc: subprocess.Popen | None, timeout: float) -> None:
    """Terminate a QEMU, then kill it if it has not quit within ``timeout``; any state is fine."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def read_stdout(proc: subprocess.Popen | None, timeout: float, max_size: int | None) -> bytes:
    """What a child's stdout has within ``timeout`` seconds (b"" if nothing)."""
    if proc is None or proc.stdout is None:
        return b""
    fd = proc.stdout.fileno()
    ready, _, _ = select.select([fd], [], [], max(timeout, 0.0))
    return os.read(fd, max_size or 65536) if ready else b""


def file_tail(path: Path | None, lines: int = 10, limit: int = 1 << 16) -> str:
    """The last ``lines`` lines of a log a target writes, joined on one line and made safe
    to show. At most ``limit`` bytes are read (the target may have written gigabytes): the
    file's head and tail, with the size of the cut between them."""
    if path is None or not path.exists():
        return ""
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
        data = f.read(limit // 8 if size > limit else limit)
        if size > limit:
            f.seek(size - (limit - len(data)))
            data += f" [... {size - limit} bytes cut ...] ".encode() + f.read()
    return " | ".join(from_target(data, 4000, lines=True).strip().splitlines()[-lines:])


class QEMUScratch(TargetHealthProtocol):
    """What both QEMU drivers share: a scratch folder per activation for the crash UART's
    log, and the process's health as AgentDriver asks for it (alive, status, crash tail,
    and ``kvm-vendor-hyp`` when the guest runs under KVM).

    The driver sets ``_tmp`` and ``_proc`` to None (and ``_stderr`` to b"", again at each
    start) in its __attrs_post_init__, calls ``_open_scratch`` and ``_close_scratch`` from
    on_activate / on_deactivate, and has ``on`` and ``off``.
    """

    _tmp: str | None
    _proc: subprocess.Popen | None
    _stderr: bytes  # the last STDERR_KEPT bytes QEMU wrote to stderr (b"" at each start)
    accel: str
    scratch_prefix = "apflab-qemu-"
    STDERR_KEPT = 1 << 16

    @Driver.check_active
    def cycle(self) -> None:
        self.off()  # type: ignore[attr-defined]
        self.on()  # type: ignore[attr-defined]

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def status(self) -> str:
        if self._proc is None:
            return "not started"
        code = self._proc.poll()
        err = bound(self._stderr_text(), 300)
        if code is None:
            return "running" + (f"; its stderr so far: {err}" if err else "")
        return f"exited with status {code}" + (f": {err}" if err else "")

    def _stderr_text(self) -> str:
        """What QEMU wrote to stderr, read without waiting for more: a QEMU that filled the
        pipe and blocks is a hang this explains."""
        pipe = self._proc.stderr if self._proc is not None else None
        if pipe is not None and not pipe.closed:
            wait = 0.5 if self._proc.poll() is not None else 0.0
            self._stderr = (self._stderr + read_available(pipe, self.STDERR_KEPT, wait))[-self.STDERR_KEPT :]
        return from_target(self._stderr, 2000).strip()

    def host_capabilities(self) -> frozenset[str]:
        return frozenset({"kvm-vendor-hyp"}) if kvm_available(self.accel) else frozenset()

    def crash_tail(self, lines: int = 10) -> str:
        return file_tail(self.crash_log if self._tmp else None, lines)

    @property
    def crash_log(self) -> Path:
        assert self._tmp is not None
        return Path(self._tmp) / "crash.log"

    def _open_scratch(self) -> None:
        self._tmp = tempfile.mkdtemp(prefix=self.scratch_prefix)

    def _close_scratch(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


@target_factory.reg_driver
@attr.s(eq=False)
class QEMUProcessDriver(QEMUScratch, Driver, ConsoleProtocol, PowerProtocol):
    """Binds to nothing.

    Args:
        qemu_bin (str): the QEMU binary (default qemu-system-aarch64 on PATH)
        machine (str): -machine, e.g. ``virt,secure=on,gic-version=3``
        cpu (str): -cpu; ``max,pauth-impdef=on`` boots ~3x faster under TCG
        memory (str): -m
        smp (int): -smp
        bios (str): -bios image (``recipe:file`` from the image cache, or a path)
        kernel (str): -kernel image (same forms)
        accel (str): ``auto`` (KVM on an arm64 host with /dev/kvm, else TCG), ``kvm`` or ``tcg``
        extra_args (str): more QEMU arguments
        stop_timeout (float): seconds to wait for QEMU to quit before killing it
    """

    bindings: ClassVar[dict] = {}

    qemu_bin = attr.ib(default="qemu-system-aarch64", validator=keys.program)
    machine = attr.ib(default="virt", validator=attr.validators.instance_of(str))
    cpu = attr.ib(default="max,pauth-impdef=on", validator=attr.validators.instance_of(str))
    memory = attr.ib(default="1024", validator=attr.validators.instance_of(str))
    smp = attr.ib(default=1, validator=keys.integer(1, 512))
    bios = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))
    kernel = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))
    accel = attr.ib(default="auto", validator=attr.validators.in_(["auto", "kvm", "tcg"]))
    extra_args = attr.ib(default="", validator=keys.shell_words)
    stop_timeout = keys.timeout(3.0)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._proc: subprocess.Popen | None = None
        self._tmp: str | None = None
        self._stderr = b""
        self.boots = 0

    # ----------------------------------------------------------- command line

    def command(self) -> list[str]:
        return qemu_command(self, ["-serial", "stdio"], self.crash_log)

    # ----------------------------------------------------------- lifecycle

    def on_activate(self) -> None:
        self._open_scratch()

    def on_deactivate(self) -> None:
        self.off()
        self._close_scratch()

    @Driver.check_active
    @step()
    def on(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self.crash_log.write_bytes(b"")
        self._stderr = b""
        self._proc = subprocess.Popen(
            self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
        )
        self.boots += 1

    @Driver.check_active
    @step()
    def off(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, self.stop_timeout)

    # ----------------------------------------------------------- console

    @Driver.check_active
    def write(self, data: bytes) -> None:
        if not self.alive():
            raise OSError(f"QEMU is not running ({self.status()})")
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(data)

    @Driver.check_active
    def read(self, size: int = 1, timeout: float = 0.0, max_size: int | None = None) -> bytes:
        return read_stdout(self._proc, timeout, max_size)
