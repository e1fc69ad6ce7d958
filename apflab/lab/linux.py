"""The qemu-linux target's labgrid classes (importing this module registers them).

* :class:`~apflab.lab.linuxstrategy.QEMULinuxStrategy`: QEMUDriver + ShellDriver + SSHDriver to ``shell``;
* :class:`~apflab.lab.migrationdriver.MigrationDriver`: pre-copy/post-copy to a host over SSH;
* :mod:`apflab.lab.sshhost`: the hosts a destination runs on (a lab host, or a throwaway local sshd);
* :class:`LinuxGuestDriver`: the target's answer to the SDEI suites' Guest request.
"""

from __future__ import annotations

from typing import ClassVar

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory

from apflab.guest import Guest, Unsupported
from apflab.lab.guestprotocol import GuestProtocol
from apflab.lab.linuxstrategy import GuestBootError, QEMULinuxStrategy
from apflab.lab.migrationdriver import MigrationDriver
from apflab.lab.sshhost import LocalSSHHostDriver, MigrationHostProtocol, SSHHost, SSHHostDriver


@target_factory.reg_driver
@attr.s(eq=False)
class LinuxGuestDriver(Driver, GuestProtocol):
    """A Linux guest has no agent-protocol Guest: the SDEI/SMCCC suites skip here, saying why."""

    bindings: ClassVar[dict] = {}
    reason = attr.ib(
        default="an arm64 Linux guest on QEMU virt: QEMU provides no SDEI firmware node and Linux exposes no SMCCC "
        "calls to userspace, so the SDEI/SMCCC suites run on the agent targets (model, qemu, qemu-tfa)",
        validator=attr.validators.instance_of(str),
    )

    def guest(self) -> Guest:
        raise Unsupported(f"{self.target.name}: {self.reason}")


__all__ = [
    "GuestBootError",
    "LinuxGuestDriver",
    "LocalSSHHostDriver",
    "MigrationDriver",
    "MigrationHostProtocol",
    "QEMULinuxStrategy",
    "SSHHost",
    "SSHHostDriver",
]
