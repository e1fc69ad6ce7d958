"""TargetHealthProtocol: what the driver running a target can tell when its agent falls silent.

AgentDriver binds it optionally, the labgrid way (``{TargetHealthProtocol, None}``): a
QEMU process, a QEMU on a board or the VMM can say whether the target still runs, how it
ended and what its crash UART printed; a plain serial console cannot, and the agent
driver then says no more than the console tail. A KVM host also says why it lacks a
capability and reports failures its guest does not notice (a host kernel oops).
"""

from __future__ import annotations

import abc

from apflab.guest import EventInfo


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

    def capability_notes(self) -> dict[str, str]:
        """For capabilities this host lacks, why (a SKIP's reason, e.g. "host kernel ... has no
        KVM_CAP_ARM_SDEI"); names from apflab/capabilities.py."""
        return {}

    def host_events(self) -> tuple[EventInfo, ...] | None:
        """The SDEI events of the host's dispatcher, where the host knows them (apflab-vmm
        forwarding SDEI to the reference model); None: the target's configuration says."""
        return None

    def failure(self) -> str | None:
        """A failure that ends this boot of the target although its agent may still answer
        (a host kernel oops, the VMM's end): one line, or None. The agent driver fails the
        operation that sees it and restarts the target."""
        return None
