"""TargetInfo, built once per target from its three sources.

1. What the guest says of itself (:class:`~apflab.guest.GuestFacts`, the agent's HELLO).
2. What the target's configuration says (lab.yaml: profile and deviations, the event
   catalogue SDEI cannot discover, capabilities the host gives the guest and, for
   those it lacks, why).
3. What the session's probe finds: SDEI_VERSION (DEN0054C 5.1.1: major version 1),
   SMCCC_VERSION (DEN0028: 1.1 or later has ARCH_FEATURES), SDEI FEATURES(BIND_SLOTS)
   (DEN0054C 5.1.17) and, under KVM, the vendor-hypervisor FEATURES bitmap's ASYNC_PF bit
   (APF v4 08/15).

The drivers call :func:`describe` when they first hand out a guest; nothing rewrites
the result afterwards (a restarted target keeps it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from apflab.abi import sdei, smccc
from apflab.abi.smccc import KVM_FUNC_FEATURES, KvmFeature
from apflab.capabilities import check
from apflab.guest import EventInfo, Guest, TargetInfo
from apflab.profiles import Profile


def probe(guest: Guest, granted: frozenset[str] = frozenset()) -> frozenset[str]:
    """The capabilities a few calls reveal; a target whose SDEI_VERSION fails has no SDEI.

    KVM's FEATURES call is made only where the vendor-hypervisor service is KVM's
    (``kvm-vendor-hyp`` granted): elsewhere a vendor-hypervisor call may not be answered.
    """
    found = set()
    version = guest.call(sdei.Fn.VERSION).ret
    if version >= 0 and sdei.version_fields(version)[0] == 1:
        found.add("sdei")
    smccc_version = guest.call(smccc.SMCCC_VERSION).ret
    if smccc_version >= 0 and smccc.version_fields(smccc_version) >= (1, 1):
        found.add("smccc-1.1")
    if "sdei" in found:
        slots = guest.call(sdei.Fn.FEATURES, sdei.Feature.BIND_SLOTS).ret
        if slots != sdei.NOT_SUPPORTED and (slots < 0 or slots & 0xFFFFFFFF):
            found.add("bind-slots")
    if "kvm-vendor-hyp" in granted:
        features = guest.call(KVM_FUNC_FEATURES)
        if features.ret >= 0 and features.x[0] >> KvmFeature.ASYNC_PF & 1:
            found.add("apf")
    return frozenset(found)


def describe(
    name: str,
    guest: Guest,
    *,
    profile: Profile,
    events: tuple[EventInfo, ...] | None = None,
    capabilities: Iterable[str] = (),
    requires: Iterable[str] = (),
    strict_deviations: bool = False,
    notes: Mapping[str, str] | None = None,
    secure_intids: Iterable[int] = (),
) -> TargetInfo:
    """The target's TargetInfo: the guest's facts, the configuration, the probe (in that order)."""
    facts = guest.facts
    granted = check(facts.capabilities, f"{name}'s HELLO") | check(capabilities, f"{name}'s configuration")
    return TargetInfo(
        name=name,
        profile=profile,
        conduit=facts.conduit,
        el=facts.el,
        pes=facts.pes,
        mpidrs=facts.mpidrs,
        entry_point=facts.entry_point,
        resume_point=facts.resume_point,
        vbar=facts.vbar,
        capabilities=granted | probe(guest, granted),
        events=facts.events if events is None else events,
        irqs=facts.irqs,
        secure_intids=frozenset(secure_intids),
        requires=check(requires, f"{name}'s requires"),
        strict_deviations=strict_deviations,
        notes=dict(notes or {}),
    )
