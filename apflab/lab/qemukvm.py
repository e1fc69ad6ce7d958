"""QEMUKvmDriver and QEMUKvmStrategy: the ``qemu-kvm`` target, the agent under real KVM.

QEMU TCG with ``-M virt,virtualization=on,gic-version=3`` boots an arm64 host kernel
(L1) at EL2, so KVM comes up in it; apflab's initramfs (``apflab images kvm``) runs
apflab-vmm with the bare-metal agent as its guest (docs/vmm-channel.md). The driver
offers, on QEMU's stdio (the L1 console, which the VMM relays the agent's console to):

* ConsoleProtocol and PowerProtocol, like QEMUProcessDriver, for AgentDriver;
* TargetHealthProtocol: the console is watched (apflab.kvm.console) for the VMM's
  announce line, a host kernel oops or panic and the VMM's end; such a failure ends the
  boot (the agent driver fails the case with its text and the console tail, and boots a
  fresh L1); the capabilities the host gives the guest and why others are missing;
* the VMM channel's host end, with apflab's reference model (profile ``dispatcher``) as
  the live SDEI dispatcher of the real vCPUs when the host kernel forwards SDEI calls
  (the SMCCC filter); it also serves the agent's host-step call, by which the agent
  relays INJECT to its host (a vCPU the event is for is kicked out of KVM_RUN).

The host kernel is the one lab.yaml key ``kernel`` (``debian:SUITE[:PACKAGE]`` or a path
to an Image, e.g. the SDEI/APF series built by hand); its image is built by
``apflab images kvm`` (``APFLAB_KVM_KERNEL=<kernel>`` for another than the default).
"""

from __future__ import annotations

import enum
import subprocess
import time
from pathlib import Path
from typing import ClassVar

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.protocol import ConsoleProtocol, PowerProtocol
from labgrid.step import step
from labgrid.strategy.common import Strategy, StrategyError, never_retry

from apflab.images import ImageError, cache_dir
from apflab.images.kvm import DEFAULT_KERNEL, KERNEL_ENV, KvmHostImage
from apflab.kvm.host import VmmHost
from apflab.kvm.l1 import CHANNELS, CONSOLES, SDEI_MODES, L1Config, qemu_command
from apflab.kvm.link import Listener
from apflab.lab.qemuprocess import stop_process
from apflab.lab.vmmhealth import VmmHealth
from apflab.profiles import PROFILES


def kvm_image_dir(kernel: str) -> Path:
    """The built ``kvm`` image for ``kernel``; ImageError with the command that builds it."""
    recipe = KvmHostImage(kernel)
    try:
        fresh = recipe.fresh(cache_dir())
    except ImageError as exc:
        raise ImageError(f"lab.yaml kernel {kernel!r}: {exc}") from None
    if not fresh:
        how = "apflab images kvm" if kernel == DEFAULT_KERNEL else f"{KERNEL_ENV}={kernel} apflab images kvm"
        raise ImageError(f"the kvm image for host kernel {kernel} is missing or stale: build it with `{how}`")
    return recipe.dir(cache_dir())


@target_factory.reg_driver
@attr.s(eq=False)
class QEMUKvmDriver(VmmHealth, Driver, ConsoleProtocol, PowerProtocol):
    """Binds to nothing.

    Args:
        kernel (str): the L1 host kernel: ``debian:SUITE[:PACKAGE]`` (default debian:trixie,
            Linux 6.12) or a path to an arm64 Image (the kernel under test)
        smp (int): L1's CPUs (QEMU -smp)
        memory (str): L1's memory in MiB (QEMU -m)
        vcpus (int): the agent VM's vCPUs (at least 2 for the multi-PE cases)
        sdei (str): the VMM's SDEI mode: auto (kernel, else forward, else none), kernel, forward, none
        dispatcher (str): the profile of the reference model that dispatches forwarded SDEI calls
        console (str): the agent's console: fast (apflab-vmm's line device) or pl011
        channel (str): the VMM channel to this host: virtio (virtio-serial), tcp (user network), none
        vmm (bool): start the VMM; false gives a shell with dropbear (a board stand-in)
        ssh_port (int): host port forwarded to L1's dropbear (0: no sshd)
        virtualization (bool): boot L1 at EL2 (false: a kernel without KVM, for tests)
        extra_append (str): more kernel command line (targets/qemu-kvm/init's switches)
        fault (str): tests only: init's ``apflab.fault=KIND:N`` for the first L1 boot (a
            host failure to recover from: panic, oops-line, kill-vmm, stuck-vcpu)
        qemu_bin (str): the QEMU binary
        cpu (str): -cpu; ``max,pauth-impdef=on`` boots ~3x faster under TCG
        channel_timeout (float): seconds from power-on to the VMM's HELLO on the channel
        stop_timeout (float): seconds to wait for QEMU to quit before killing it
    """

    bindings: ClassVar[dict] = {}

    kernel = attr.ib(default=DEFAULT_KERNEL, validator=attr.validators.instance_of(str))
    smp = attr.ib(default=2, validator=attr.validators.instance_of(int))
    memory = attr.ib(default="2048", converter=str)
    vcpus = attr.ib(default=2, validator=attr.validators.instance_of(int))
    sdei = attr.ib(default="auto", validator=attr.validators.in_(SDEI_MODES))
    dispatcher = attr.ib(default="spec", validator=attr.validators.in_(sorted(PROFILES)))
    console = attr.ib(default="fast", validator=attr.validators.in_(CONSOLES))
    channel = attr.ib(default="virtio", validator=attr.validators.in_(CHANNELS))
    vmm = attr.ib(default=True, validator=attr.validators.instance_of(bool))
    ssh_port = attr.ib(default=0, validator=attr.validators.instance_of(int))
    virtualization = attr.ib(default=True, validator=attr.validators.instance_of(bool))
    extra_append = attr.ib(default="", validator=attr.validators.instance_of(str))
    fault = attr.ib(default="", validator=attr.validators.instance_of(str))
    qemu_bin = attr.ib(default="qemu-system-aarch64", validator=attr.validators.instance_of(str))
    cpu = attr.ib(default="max,pauth-impdef=on", validator=attr.validators.instance_of(str))
    channel_timeout = attr.ib(default=60.0, converter=float)
    stop_timeout = attr.ib(default=3.0, converter=float)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._proc: subprocess.Popen | None = None
        self._listener: Listener | None = None
        self.host: VmmHost | None = None
        self._parked = False  # the VM ended, L1 up, init waiting for a line
        self.boots = 0  # L1 boots
        self.vm_starts = 0  # VMM runs (an L1 boot starts one)

    # ----------------------------------------------------------- command line

    def config(self, channel_port: int | None = None) -> L1Config:
        use_channel = self.vmm and self.channel != "none"
        return L1Config(
            kvm_image_dir(self.kernel),
            smp=self.smp,
            memory_mb=int(self.memory),
            vcpus=self.vcpus,
            sdei=self.sdei,
            channel=self.channel if use_channel else "none",
            channel_port=channel_port if use_channel else None,
            ssh_port=self.ssh_port or None,
            console=self.console,
            start_vmm=self.vmm,
            qemu_bin=self.qemu_bin,
            cpu=self.cpu,
            extra_append=" ".join(
                [self.extra_append, *([f"apflab.fault={self.fault}"] if self.fault and not self.boots else [])]
            ),
            virtualization=self.virtualization,
            after="wait" if self.vmm else "shell",
        )

    # ----------------------------------------------------------- lifecycle
    #
    # The target is the agent's VM; L1 is its host. off() ends the VM and, while L1 is
    # healthy, leaves it up with init waiting for a console line "go" (apflab.after=wait);
    # on() then starts a fresh VM (a fresh VMM, a fresh model) in a fraction of an L1
    # boot. After a host kernel failure, without a channel to end the VM on, or when the
    # VM does not end within stop_timeout, off() stops L1 and on() boots a fresh one.

    def on_deactivate(self) -> None:
        self._stop_l1()

    def _l1_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @Driver.check_active
    @step()
    def on(self) -> None:
        if self._l1_running() and self._parked:
            assert self.host is not None and self._proc is not None and self._proc.stdin is not None
            self.host.next_vm()
            self._parked = False
            self._proc.stdin.write(b"\ngo\n")  # init starts the next VMM (the first \n ends a partial line)
            self.vm_starts += 1
            return
        if self._l1_running():
            return
        self._stop_l1()
        self.host = VmmHost(self.dispatcher, self.console)
        port = None
        if self.vmm and self.channel != "none":
            self._listener = Listener()
            port = self._listener.port
        command = qemu_command(self.config(port))
        if self._listener is not None:
            self.host.serve_listener(self._listener, self.channel_timeout)
        self._proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
        )
        self.boots += 1
        self.vm_starts += 1

    @Driver.check_active
    @step()
    def off(self) -> None:
        if self._parked:
            return
        if self._park_vm():
            self._parked = True
        else:
            self._stop_l1()

    def _park_vm(self) -> bool:
        """End the agent's VM and keep L1, init waiting; False when L1 has to go instead."""
        host = self.host
        if host is None or not self._l1_running() or host.host_broken() or self.channel != "virtio":
            return False
        watch = host.watch
        if watch.failure is None and not host.end_vm():
            return False
        deadline = time.monotonic() + self.stop_timeout
        while not watch.init_waiting:
            left = deadline - time.monotonic()
            if left <= 0 or host.host_broken() or not self._l1_running():
                return False
            self.read(timeout=min(left, 0.2))
        return True

    def _stop_l1(self) -> None:
        proc, self._proc = self._proc, None
        self._parked = False
        stop_process(proc, self.stop_timeout)
        if self.host is not None:
            self.host.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    # ----------------------------------------------------------- console

    @Driver.check_active
    def write(self, data: bytes) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise OSError(f"the L1 QEMU is not running ({self.status()})")
        assert self._proc.stdin is not None
        self._proc.stdin.write(data)

    # ----------------------------------------------------------- health

    def alive(self) -> bool:
        return self._l1_running() and not self._parked and self.failure() is None

    def _drain(self) -> None:
        """Read what the console has now (the watch sees the VMM's last words before a report)."""
        if self._l1_running() and self.host is not None:
            for _ in range(8):
                if not self.read(timeout=0.05):
                    break

    def status(self) -> str:
        self._drain()
        if self._proc is None:
            return "not started"
        code = self._proc.poll()
        if code is None:
            failure = self.failure()
            return f"L1 running; {failure}" if failure else "L1 running"
        err = ""
        if self._proc.stderr is not None:
            err = self._proc.stderr.read().decode(errors="replace").strip()
        return f"L1 QEMU exited with status {code}" + (f": {err[-300:]}" if err else "")


class Status(enum.Enum):
    unknown = 0
    off = 1
    guest = 2


@target_factory.reg_driver
@attr.s(eq=False)
class QEMUKvmStrategy(Strategy):
    """Binds to:
        l1: QEMUKvmDriver (the nested KVM host)
        guest: GuestProtocol (AgentDriver on it)

    States: ``off`` (no L1), ``guest`` (L1 booted, the VMM announced, the agent answered
    HELLO and the probe). A failure to get there is a StrategyError with its reason.
    """

    bindings: ClassVar[dict] = {"l1": "QEMUKvmDriver", "guest": "GuestProtocol"}

    status = attr.ib(default=Status.unknown)

    @never_retry
    @step(args=["status"])
    def transition(self, status: Status | str, *, step: object) -> None:
        if not isinstance(status, Status):
            status = Status[status]
        if status == Status.unknown:
            raise StrategyError(f"can not transition to {status}")
        if status == self.status:
            return
        if status == Status.off:
            self.target.deactivate(self.guest)
            self.target.deactivate(self.l1)  # stops L1 (off() alone would keep a healthy one)
        else:
            self.target.activate(self.guest)
            try:
                self.guest.guest()
            except Exception as exc:  # TargetError, ImageError, OSError: the reason is in the message
                raise StrategyError(f"qemu-kvm did not come up: {exc}") from None
        self.status = status
