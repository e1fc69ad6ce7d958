"""TargetInfo, built once per target from its three sources.

1. What the guest says of itself (:class:`~apflab.guest.GuestFacts`, the agent's HELLO).
2. What the target's configuration says (lab.yaml: profile and deviations, the event
   catalogue SDEI cannot discover, capabilities the host gives the guest and, for
   those it lacks, why).
3. What the session's probe finds: SDEI_VERSION (DEN0054C 5.1.1: major version 1),
   SMCCC_VERSION (DEN0028: 1.1 or later has ARCH_FEATURES) and SDEI FEATURES(BIND_SLOTS)
   (DEN0054C 5.1.17).

The drivers call :func:`describe` when they first hand out a guest; nothing rewrites
the result afterwards (a restarted target keeps it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from apflab.abi import sdei, smccc
from apflab.capabilities import check
from apflab.guest import EventInfo, Guest, TargetInfo
from apflab.profiles import Profile


def probe(guest: Guest) -> frozenset[str]:
    """The capabilities three calls reveal; a target whose SDEI_VERSION fails has no SDEI."""
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
    return frozenset(found)


def describe(
    name: str,
    guest: Guest,
    *,
    profile: Profile,
    events: tuple[EventInfo, ...] | None = None,
    capabilities: Iterable[str] = (),
    notes: Mapping[str, str] | None = None,
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
        capabilities=granted | probe(guest),
        events=facts.events if events is None else events,
        irqs=facts.irqs,
        notes=dict(notes or {}),
    )
