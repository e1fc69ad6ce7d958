"""RemoteQEMUDriver: the agent's QEMU on a lab board, started over SSH, its UART forwarded here.

On a real ARM64 server board the SDEI target is a KVM guest of the patched host kernel
under test: this driver copies the guest image to the board, starts QEMU there with
``-accel kvm`` and its first UART as a TCP server on the board's loopback (held until a
console connects, so no boot output is lost), and reaches that UART through an SSH port
forward (labgrid's SSHDriver). It offers ConsoleProtocol and PowerProtocol like
QEMUProcessDriver, so AgentDriver drives a board's guest exactly as a local one: ``on()``
starts a fresh QEMU, ``off()`` stops it, a wedged guest is restarted.
"""

from __future__ import annotations

import contextlib
import select
import shlex
import socket
import time
from pathlib import PurePosixPath
from typing import ClassVar

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.protocol import ConsoleProtocol, PowerProtocol
from labgrid.step import step

from apflab.lab import keys
from apflab.lab.health import TargetHealthProtocol
from apflab.lab.qemuprocess import resolve_image

LISTENING = "waiting for connection"


@target_factory.reg_driver
@attr.s(eq=False)
class RemoteQEMUDriver(Driver, ConsoleProtocol, PowerProtocol, TargetHealthProtocol):
    """Binds to:
        ssh: SSHDriver (the board's host OS, running the kernel under test)

    Args:
        qemu_bin (str): QEMU on the board
        machine (str): -machine
        cpu (str): -cpu (``host`` under KVM)
        memory (str): -m
        smp (int): -smp
        kernel (str): the guest image, here (``recipe:file`` from the image cache, or a path)
        accel (str): -accel on the board (``kvm``)
        extra_args (str): more QEMU arguments
        console_port (int): the UART's TCP port on the board's loopback
        workdir (str): folder on the board for the image, QEMU's log and pid
        start_timeout (float): seconds for QEMU to listen on its console port
    """

    bindings: ClassVar[dict] = {"ssh": "SSHDriver"}

    qemu_bin = attr.ib(default="qemu-system-aarch64", validator=attr.validators.instance_of(str))
    machine = attr.ib(default="virt,gic-version=3", validator=attr.validators.instance_of(str))
    cpu = attr.ib(default="host", validator=attr.validators.instance_of(str))
    memory = attr.ib(default="1024", validator=attr.validators.instance_of(str))
    smp = attr.ib(default=1, validator=attr.validators.instance_of(int))
    kernel = attr.ib(default="agent:agent.elf", validator=attr.validators.instance_of(str))
    accel = attr.ib(default="kvm", validator=attr.validators.instance_of(str))
    extra_args = attr.ib(default="", validator=attr.validators.instance_of(str))
    console_port = attr.ib(default=5555, validator=attr.validators.instance_of(int))
    workdir = attr.ib(default="/tmp/apflab-guest", validator=attr.validators.instance_of(str))
    start_timeout = keys.timeout(20.0)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._sock: socket.socket | None = None
        self._forward: contextlib.ExitStack | None = None
        self._image: str | None = None

    def _path(self, name: str) -> str:
        return str(PurePosixPath(self.workdir) / name)

    def command(self) -> str:
        assert self._image is not None
        args = [
            self.qemu_bin,
            "-machine",
            self.machine,
            "-cpu",
            self.cpu,
            "-m",
            self.memory,
            "-smp",
            str(self.smp),
            "-accel",
            self.accel,
            "-display",
            "none",
            "-monitor",
            "none",
            "-nic",
            "none",
            "-no-reboot",
            "-chardev",
            f"socket,id=console,host=127.0.0.1,port={self.console_port},server=on,wait=on,nodelay=on",
            "-serial",
            "chardev:console",
            "-kernel",
            self._image,
            *shlex.split(self.extra_args),
        ]
        return " ".join(shlex.quote(a) for a in args)

    def on_deactivate(self) -> None:
        self.off()
        self._image = None

    def _remote(self, cmd: str) -> list[str]:
        out, err, code = self.ssh.run(cmd)
        if code != 0:
            raise OSError(f"on the board, `{cmd}` failed ({code}): {' '.join(err or out)[-300:]}")
        return out

    @Driver.check_active
    @step()
    def on(self) -> None:
        if self.alive():
            return
        if self._image is None:  # once per activation: the image is the same for every boot
            self._remote(f"mkdir -p {shlex.quote(self.workdir)}")
            local = resolve_image(self.kernel)
            self.ssh.put(str(local), self._path(local.name))
            self._image = self._path(local.name)
        log, pid = shlex.quote(self._path("qemu.log")), shlex.quote(self._path("qemu.pid"))
        self._remote(f"setsid {self.command()} > {log} 2>&1 < /dev/null & echo $! > {pid}")
        deadline = time.monotonic() + self.start_timeout
        while LISTENING not in " ".join(self._remote(f"cat {log}")):
            if time.monotonic() > deadline or not self._running():
                raise OSError(f"QEMU on the board did not listen on port {self.console_port}: {self.status()}")
            time.sleep(0.2)
        self._forward = contextlib.ExitStack()
        port = self._forward.enter_context(self.ssh.forward_local_port(self.console_port))
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=self.start_timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _running(self) -> bool:
        pid = shlex.quote(self._path("qemu.pid"))
        _, _, code = self.ssh.run(f"kill -0 $(cat {pid} 2>/dev/null) 2>/dev/null")
        return code == 0

    @Driver.check_active
    @step()
    def off(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._forward is not None:
            self._forward.close()
            self._forward = None
        pid = shlex.quote(self._path("qemu.pid"))
        with contextlib.suppress(Exception):  # the board may be gone already
            self.ssh.run(f"test -f {pid} && kill $(cat {pid}) 2>/dev/null; rm -f {pid}")

    @Driver.check_active
    def cycle(self) -> None:
        self.off()
        self.on()

    def alive(self) -> bool:
        return self._sock is not None

    def host_capabilities(self) -> frozenset[str]:
        return frozenset({"kvm-vendor-hyp"}) if self.accel == "kvm" else frozenset()

    def status(self) -> str:
        try:
            if self._running():
                return "running on the board"
            return "exited: " + " | ".join(self._remote(f"tail -n 5 {shlex.quote(self._path('qemu.log'))}"))
        except Exception as exc:  # the board itself is unreachable
            return f"unknown (board unreachable: {exc})"

    @Driver.check_active
    def write(self, data: bytes) -> None:
        if self._sock is None:
            raise OSError("the guest's QEMU is not running")
        self._sock.sendall(data)

    @Driver.check_active
    def read(self, size: int = 1, timeout: float = 0.0, max_size: int | None = None) -> bytes:
        if self._sock is None:
            time.sleep(min(timeout, 0.1))
            return b""
        ready, _, _ = select.select([self._sock], [], [], max(timeout, 0.0))
        if not ready:
            return b""
        data = self._sock.recv(max_size or 65536)
        if not data:  # QEMU went away: the guest is dead until the next on()
            self._sock.close()
            self._sock = None
        return data
