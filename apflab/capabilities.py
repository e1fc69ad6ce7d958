"""Every capability a target can have, in one list, with what it means.

Testcases ask ``guest.require(name)``; a target grants names from its agent's HELLO,
its lab.yaml ``capabilities:``, what hosts it (KVM) and the session's probe. A name
that is not in this list is a bug in whoever wrote it (it could never be granted and
would act as a silent skip), so :func:`check` refuses it loudly.
"""

from __future__ import annotations

from collections.abc import Iterable

CAPABILITIES: dict[str, str] = {
    "sdei": "SDEI_VERSION answers major version 1 (probed)",
    "smccc-1.1": "SMCCC_VERSION is 1.1 or later, so SMCCC_ARCH_FEATURES exists (probed)",
    "bind-slots": "FEATURES(BIND_SLOTS) reports dynamic event slots (probed)",
    "inject": "the host can inject an SDEI event (INJECT)",
    "irq": "an interrupt line can be raised (IRQ): by the host, or by the agent through a device it programs "
    "(then only those HELLO's irqs= lists)",
    "in-handler-inject": "INJECT and IRQ also work while a handler runs (handler steps)",
    "reset": "RESET returns the target to its power-on SDEI state",
    "multi-pe": "more than one PE, selected with PE",
    "mem": "guest memory can be read and written from the host (MEM R32/W32)",
    "apf-host": "the host side of asynchronous page faults: faults, clock, VMM commands (HOST ...)",
    "migration": "the VMM's SDEI and APF state can be saved and restored (HOST SAVE/LOAD/RESTORE)",
    "kvm-vendor-hyp": "the guest runs under KVM: its vendor-hypervisor service is KVM's",
    "apf": "KVM's FEATURES bitmap advertises ASYNC_PF (probed where the vendor-hypervisor service is KVM's)",
    "sdei-vmm": "the VMM can queue an SDEI event on a vCPU, as a v4 migration restore does (HOST VEVENT)",
    "context": "the agent can run its main context with chosen PSTATE bits, ELR and SPSR (CTX)",
    "pe-power": "a PE can be turned off and on again with PSCI CPU_OFF / CPU_ON (PSCI CYCLE)",
    "system-reset": "the guest can reset the machine with PSCI SYSTEM_RESET and go on (PSCI RESET)",
}


class MissingCapability(Exception):
    """A target lacks a capability its configuration says it must have (``requires:``)."""


def missing(required: Iterable[str], granted: Iterable[str], target: str) -> MissingCapability | None:
    """The error for a target short of what it ``requires``, or None.

    A capability a testcase asks for and the target lacks is a SKIP; on a target that
    must have it (the reference model is SDEI, kvm-v4 is also APF) that skip would hide
    a broken implementation, so the missing capability fails the target instead.
    """
    short = sorted(frozenset(required) - frozenset(granted))
    if not short:
        return None
    return MissingCapability(
        f"target {target} requires {', '.join(map(repr, short))} but lacks it: "
        f"{'; '.join(f'{n}: {CAPABILITIES[n]}' for n in short)}"
    )


class UnknownCapability(ValueError):
    """A capability name that is not in :data:`CAPABILITIES`."""


def check(names: Iterable[str], where: str = "") -> frozenset[str]:
    """Return ``names`` as a frozenset, or raise naming the unknown ones and the known list."""
    found = frozenset(names)
    unknown = sorted(found - CAPABILITIES.keys())
    if unknown:
        origin = f" in {where}" if where else ""
        raise UnknownCapability(
            f"unknown capability {', '.join(map(repr, unknown))}{origin}; known: "
            f"{', '.join(sorted(CAPABILITIES))} (apflab/capabilities.py)"
        )
    return found
