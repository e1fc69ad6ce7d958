"""What the two drivers running apflab-vmm share (QEMUKvmDriver for the nested L1,
RemoteVmmDriver for a board): the console read, which the VMM host's watch sees, cycle, and the
TargetHealthProtocol answers that come from the VMM host.

The driver keeps its console process in ``_proc`` (the L1 QEMU, the SSH session) and a
:class:`~apflab.kvm.host.VmmHost` in ``host`` (None before power-on); ``alive`` and
``status`` are the driver's own.
"""

from __future__ import annotations

import subprocess

from labgrid.driver.common import Driver

from apflab.guest import EventInfo
from apflab.kvm.host import VmmHost
from apflab.lab.health import TargetHealthProtocol
from apflab.lab.qemuprocess import read_stdout


class VmmHealth(TargetHealthProtocol):
    host: VmmHost | None
    _proc: subprocess.Popen | None

    @Driver.check_active
    def cycle(self) -> None:
        """PowerProtocol's cycle: a fresh VM."""
        self.off()  # type: ignore[attr-defined]
        self.on()  # type: ignore[attr-defined]

    @Driver.check_active
    def read(self, size: int = 1, timeout: float = 0.0, max_size: int | None = None) -> bytes:
        """ConsoleProtocol's read: what the console has within ``timeout``, fed to the watch."""
        data = read_stdout(self._proc, timeout, max_size)
        if self.host is not None:
            self.host.watch.feed(data)
        return data

    def failure(self) -> str | None:
        return self.host.failure() if self.host is not None else None

    def crash_tail(self, lines: int = 10) -> str:
        return self.host.report() if self.host is not None else ""

    def host_capabilities(self) -> frozenset[str]:
        return self.host.capabilities() if self.host is not None else frozenset()

    def capability_notes(self) -> dict[str, str]:
        return self.host.notes() if self.host is not None else {}

    def host_events(self) -> tuple[EventInfo, ...] | None:
        return self.host.events() if self.host is not None else None
