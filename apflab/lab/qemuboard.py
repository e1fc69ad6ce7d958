"""QEMUBoardPowerDriver: the power switch of a stand-in lab board made of a QEMU.

A lab board has a power outlet and a serial console reached over the network. The
project's own tests and benchmark need boards like that without hardware, so a stand-in
board is a QEMU whose first UART is a TCP server (QEMU's ``socket`` chardev) at the
address of the board's exported ``NetworkSerialPort``: the exporter publishes the port,
this driver is the outlet. ``on()`` starts QEMU and returns once it listens (QEMU holds
the guest until a console connects, so no boot output is lost); ``off()`` stops it;
``cycle()`` is a fresh instance. The console side is ReconnectingSerialDriver (QEMU's
TCP endpoint goes away with each power cycle, unlike a console server's).

QEMU runs on the machine of the test process, so the port's host must be a local
address. Every QEMU this module started is stopped when the interpreter exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import subprocess
import time
import weakref
from typing import ClassVar

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.protocol import PowerProtocol
from labgrid.step import step

from apflab.lab import keys
from apflab.lab.qemuprocess import QEMUScratch, qemu_command, stop_process

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
LISTENING = b"waiting for connection"

_running: weakref.WeakSet[QEMUBoardPowerDriver] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for driver in list(_running):
        driver.kill()


@target_factory.reg_driver
@attr.s(eq=False)
class QEMUBoardPowerDriver(QEMUScratch, Driver, PowerProtocol):
    """Binds to:
        port: NetworkSerialPort (the board's console; QEMU's first UART listens there)

    Args:
        qemu_bin (str): the QEMU binary (default qemu-system-aarch64 on PATH)
        machine (str): -machine, e.g. ``virt,secure=on,gic-version=3``
        cpu (str): -cpu (``max,pauth-impdef=on`` boots ~3x faster under TCG)
        memory (str): -m
        smp (int): -smp
        bios (str): -bios image (``recipe:file`` from the image cache, or a path)
        kernel (str): -kernel image (same forms)
        accel (str): ``auto`` (KVM on an arm64 host with /dev/kvm, else TCG), ``kvm`` or ``tcg``
        extra_args (str): more QEMU arguments
        start_timeout (float): seconds for QEMU to listen on the console port
        stop_timeout (float): seconds to wait for QEMU to quit before killing it
    """

    scratch_prefix = "apflab-board-"

    bindings: ClassVar[dict] = {"port": "NetworkSerialPort"}

    qemu_bin = attr.ib(default="qemu-system-aarch64", validator=keys.program)
    machine = attr.ib(default="virt", validator=attr.validators.instance_of(str))
    cpu = attr.ib(default="max,pauth-impdef=on", validator=attr.validators.instance_of(str))
    memory = attr.ib(default="1024", validator=attr.validators.instance_of(str))
    smp = attr.ib(default=1, validator=keys.integer(1, 512))
    bios = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))
    kernel = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))
    accel = attr.ib(default="auto", validator=attr.validators.in_(["auto", "kvm", "tcg"]))
    extra_args = attr.ib(default="", validator=keys.shell_words)
    start_timeout = keys.timeout(10.0)
    stop_timeout = keys.timeout(3.0)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._proc: subprocess.Popen | None = None
        self._tmp: str | None = None
        self._stderr = b""
        self.boots = 0

    # ----------------------------------------------------------- command line

    def console_address(self) -> tuple[str, int]:
        host, port = self.port.host, self.port.port
        if host not in LOCAL_HOSTS:
            raise OSError(
                f"stand-in board: its console {host}:{port} must be on this machine "
                f"(QEMU runs here); export the NetworkSerialPort with host 127.0.0.1"
            )
        if self.port.protocol != "raw":
            raise OSError(f"stand-in board: QEMU serves a raw TCP console, not {self.port.protocol}")
        return host, int(port)

    def command(self) -> list[str]:
        host, port = self.console_address()
        # nodelay: with Nagle on, each multi-segment reply waits for the client's delayed ACK (~40 ms)
        console = [
            "-chardev",
            f"socket,id=console,host={host},port={port},server=on,wait=on,nodelay=on",
            "-serial",
            "chardev:console",
        ]
        return qemu_command(self, console, self.crash_log)

    # ----------------------------------------------------------- lifecycle

    def on_activate(self) -> None:
        self._open_scratch()

    def on_deactivate(self) -> None:
        self.kill()
        self._close_scratch()

    @Driver.check_active
    @step()
    def on(self) -> None:
        if self.alive():
            return
        self.crash_log.write_bytes(b"")
        self._stderr = b""
        self._proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _running.add(self)
        self.boots += 1
        self._await_listening()

    def _await_listening(self) -> None:
        """Bounded wait for QEMU's "waiting for connection" line (it prints it once it listens)."""
        assert self._proc is not None and self._proc.stderr is not None
        fd = self._proc.stderr.fileno()
        deadline = time.monotonic() + self.start_timeout
        while LISTENING not in self._stderr:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise OSError(f"QEMU did not listen on its console port within {self.start_timeout:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            chunk = os.read(fd, 4096) if ready else b""
            if ready and not chunk:  # QEMU exited (e.g. the port is in use)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=self.stop_timeout)
                status = self.status()
                self.kill()
                raise OSError(f"QEMU did not start: {status}")
            self._stderr = (self._stderr + chunk)[-4096:]

    @Driver.check_active
    @step()
    def off(self) -> None:
        self.kill()

    def kill(self) -> None:
        """Stop QEMU (terminate, then kill after a bound); safe to call in any state."""
        proc, self._proc = self._proc, None
        _running.discard(self)
        if proc is None:
            return
        stop_process(proc, self.stop_timeout)
        if proc.stderr is not None:
            proc.stderr.close()
