"""HostKernelStrategy: a lab board up on the patched host kernel under test, then its guest.

A real ARM64 server board runs the SDEI/APF target as a KVM guest of the host kernel being
tested, so a run must first know that the board runs *that* kernel. States, in labgrid's
strategy style:

* ``off``: the board's PDU outlet off;
* ``host``: power-cycled with the serial console attached (the boot log is in labgrid's
  console log), reachable over SSH within ``boot_timeout``, ``uname -r`` equal to
  ``kernel_release`` and /dev/kvm present. When the board boots another kernel and
  ``kernel_image`` names the kernel under test, it is copied to the board and booted with
  kexec (``kexec -l --reuse-cmdline``, ``systemctl kexec``), then checked again;
* ``guest``: the agent in its KVM guest answered (GuestProtocol, e.g. AgentDriver on
  RemoteQEMUDriver).

A wrong kernel is a StrategyError naming both releases; labgrid remembers the first
error, so every later case is skipped with it instead of testing the wrong kernel.
"""

from __future__ import annotations

import enum
import shlex
import time
from pathlib import Path
from typing import ClassVar

import attr
from labgrid.factory import target_factory
from labgrid.step import step
from labgrid.strategy.common import Strategy, StrategyError, never_retry

from apflab.lab import keys


class Status(enum.Enum):
    unknown = 0
    off = 1
    host = 2
    guest = 3


@target_factory.reg_driver
@attr.s(eq=False)
class HostKernelStrategy(Strategy):
    """Binds to:
        power: PowerProtocol (the board's PDU outlet)
        console: ConsoleProtocol (the board's serial console: the boot log)
        ssh: SSHDriver (the board's host OS)
        guest: GuestProtocol (the agent in the KVM guest)

    Args:
        kernel_release (str): ``uname -r`` of the kernel under test
        kernel_image (str): that kernel's Image here, kexec'd when the board boots another ("" = never)
        boot_timeout (float): seconds from power-on (or kexec) to SSH
    """

    bindings: ClassVar[dict] = {
        "power": "PowerProtocol",
        "console": "ConsoleProtocol",
        "ssh": "SSHDriver",
        "guest": "GuestProtocol",
    }

    kernel_release = attr.ib(validator=attr.validators.instance_of(str))
    kernel_image = attr.ib(default="", validator=attr.validators.instance_of(str))
    boot_timeout = keys.timeout(300.0)
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
            self.target.deactivate(self.ssh)
            self.target.activate(self.power)
            self.power.off()
        elif status == Status.host:
            self.transition(Status.off)
            self.target.activate(self.console)
            self.power.on()
            self._await_ssh()
            self._ensure_kernel()
        elif status == Status.guest:
            if self.status != Status.host:
                self.transition(Status.host)
            self.target.activate(self.guest)
            self.guest.guest()
        self.status = status

    def _await_ssh(self) -> None:
        deadline = time.monotonic() + self.boot_timeout
        while True:
            try:
                self.target.activate(self.ssh)
                return
            except Exception as exc:  # SSHDriver raises several kinds while the board boots
                self.target.deactivate(self.ssh)
                if time.monotonic() > deadline:
                    raise StrategyError(f"the board did not answer SSH within {self.boot_timeout:g} s: {exc}") from None
                time.sleep(5)

    def _release(self) -> str:
        return self.ssh.run_check("uname -r")[0].strip()

    def _ensure_kernel(self) -> None:
        running = self._release()
        if running != self.kernel_release and self.kernel_image:
            image = Path(self.kernel_image)
            remote = f"/tmp/{image.name}"
            self.ssh.put(str(image), remote)
            self.ssh.run_check(f"kexec -l {shlex.quote(remote)} --reuse-cmdline")
            self.ssh.run("systemctl kexec --no-block")
            self.target.deactivate(self.ssh)
            time.sleep(10)  # the old kernel's SSH may answer until kexec takes over
            self._await_ssh()
            running = self._release()
        if running != self.kernel_release:
            raise StrategyError(f"the board runs kernel {running}, not the kernel under test {self.kernel_release}")
        if self.ssh.run("test -c /dev/kvm")[2] != 0:
            raise StrategyError(f"kernel {running} on the board has no /dev/kvm")
