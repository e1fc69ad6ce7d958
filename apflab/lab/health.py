"""TargetHealthProtocol: what the driver running a target can tell when its agent falls silent.

AgentDriver binds it optionally, the labgrid way (``{TargetHealthProtocol, None}``): a
QEMU process, a QEMU on a board or the VMM can say whether the target still runs, how it
ended and what its crash UART printed; a plain serial console cannot, and the agent
driver then says no more than the console tail.
"""

from __future__ import annotations

import abc


class TargetHealthProtocol(abc.ABC):
    @abc.abstractmethod
    def alive(self) -> bool:
        """The target is still running (its process, its board)."""

    @abc.abstractmethod
    def status(self) -> str:
        """One line: running, or how it ended (exit status and last words)."""

    def crash_tail(self, lines: int = 10) -> str:
        """The last lines of the target's crash output (e.g. TF-A's crash UART), or ''."""
        return ""

    def host_capabilities(self) -> frozenset[str]:
        """Capabilities the host gives the guest (a KVM host: ``kvm-vendor-hyp``)."""
        return frozenset()
