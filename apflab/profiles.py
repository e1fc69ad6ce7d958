"""Behaviour profiles: what a target claims to implement, and how it deviates.

A target declares a profile. ``spec`` is DEN0054C as TF-A implements it; ``kvm-v4``
is Gavin Shan's v4 series (abi.md 3.4), whose every difference from the spec is a
named :class:`Deviation` with a one-line reason. The reference model switches its
behaviour on these names, and a testcase names the deviation it may run into, so a
difference the target's profile predicts is a KFAIL and any other difference a FAIL.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Deviation:
    """One known difference from the spec, with its source in the reference notes."""

    name: str
    reason: str
    source: str


KVM_V4_DEVIATIONS: tuple[Deviation, ...] = (
    Deviation("no_event_0", "v4 accepts only KVM 'virtual' event numbers; event 0 is INVALID", "abi.md 3.2"),
    Deviation("register_ep_unchecked", "EVENT_REGISTER does not reject entry point 0", "abi.md 3.4"),
    Deviation("register_affinity_unchecked", "EVENT_REGISTER does not validate the RM_PE affinity", "abi.md 3.4"),
    Deviation(
        "register_route_mode_from_affinity",
        "first EVENT_REGISTER stores the affinity argument as the routing mode",
        "abi.md 3.4",
    ),
    Deviation("enable_when_enabled_denied", "EVENT_ENABLE of an enabled event returns DENIED", "abi.md 3.4"),
    Deviation("disable_when_disabled_denied", "EVENT_DISABLE of a disabled event returns DENIED", "abi.md 3.4"),
    Deviation(
        "enable_disable_pending_while_running",
        "EVENT_ENABLE/DISABLE return PENDING while the event is queued or running",
        "abi.md 3.4",
    ),
    Deviation("context_index_18_accepted", "EVENT_CONTEXT(18) is accepted and returns the saved PC", "abi.md 3.4"),
    Deviation("complete_without_dispatch_silent", "COMPLETE with nothing running leaves x0 unwritten", "abi.md 3.4"),
    Deviation(
        "complete_and_resume_ignores_address",
        "COMPLETE_AND_RESUME ignores x1 and injects an IRQ (resumes at VBAR+0x280)",
        "abi.md 3.4, review S4-14r",
    ),
    Deviation(
        "unregister_running_not_recorded",
        "UNREGISTER while running returns PENDING but records no unregister-pending state",
        "abi.md 3.4, review S4-07r",
    ),
    Deviation("status_running_vm_wide", "EVENT_STATUS 'running' is a VM-wide refcount, not per PE", "abi.md 3.4"),
    Deviation(
        "get_info_routing_unregistered_defaults",
        "GET_INFO ROUTING_* of an unregistered shared event returns defaults, not DENIED",
        "abi.md 3.4",
    ),
    Deviation(
        "get_info_aff_any_mode",
        "GET_INFO ROUTING_AFF returns the stored affinity even when the mode is RM_ANY",
        "abi.md 3.4",
    ),
    Deviation(
        "unregistered_event_invalid",
        "ENABLE/DISABLE/UNREGISTER/ROUTING_SET of an event no vCPU registered give INVALID_PARAMETERS",
        "abi.md 3.4",
    ),
    Deviation("pe_mask_state_denied", "PE_MASK/PE_UNMASK return DENIED when already in that state", "abi.md 3.4"),
    Deviation("pe_mask_returns_zero", "PE_MASK returns 0 instead of 1 when it masked the PE", "abi.md 3.4"),
    Deviation("bind_release_not_supported", "INTERRUPT_BIND/RELEASE return NOT_SUPPORTED", "abi.md 3.1, 3.4"),
    Deviation(
        "signal_features_not_routed",
        "EVENT_SIGNAL and FEATURES are not routed and fall to PSCI's NOT_SUPPORTED",
        "abi.md 3.1",
    ),
    Deviation(
        "resets_vm_wide", "PRIVATE/SHARED_RESET drop idle events VM-wide and always return SUCCESS", "abi.md 3.4"
    ),
    Deviation(
        "masked_injection_dropped",
        "an event injected while the vCPU is masked or the event disabled is dropped, not pended",
        "abi.md 3.5",
    ),
    Deviation(
        "shared_routing_ignored",
        "shared events are delivered on the vCPU they were injected on; routing is not enforced",
        "abi.md 3.5, 3.6",
    ),
)


@dataclass(frozen=True)
class Profile:
    """A named behaviour profile: its SDEI version and the deviations it predicts."""

    name: str
    description: str
    sdei_version: tuple[int, int, int]
    deviations: tuple[Deviation, ...] = field(default=())

    def predicts(self, deviation: str) -> bool:
        return any(d.name == deviation for d in self.deviations)

    def deviation(self, name: str) -> Deviation:
        for d in self.deviations:
            if d.name == name:
                return d
        raise KeyError(name)


SPEC = Profile(
    name="spec",
    description="DEN0054C (SDEI 1.1) behaviour, with Trusted Firmware-A as its proxy",
    sdei_version=(1, 1, 0),
)

KVM_V4 = Profile(
    name="kvm-v4",
    description="KVM arm64 SDEI virtualization v4 (Gavin Shan, 2021-08-15)",
    sdei_version=(1, 0, 0),
    deviations=KVM_V4_DEVIATIONS,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (SPEC, KVM_V4)}

#: Known deviations of particular targets from the profile they claim, found by running
#: the suites on them; a target lists the ones that apply under ``deviations:`` in lab.yaml.
TARGET_DEVIATIONS: dict[str, Deviation] = {
    d.name: d
    for d in (
        Deviation(
            "tfa_qemu_no_bind_slots",
            "TF-A's qemu platform defines no dynamic event slots: FEATURES(BIND_SLOTS) is 0/0 "
            "(Arm's SDEI ACS wants at least 2 private and 2 shared)",
            "DEN0054C 5.1.17, sdei-spec-points.md point 9; TF-A plat/qemu",
        ),
        Deviation(
            "tfa_masked_trigger_lost",
            "TF-A EOIs an event triggered while the PE is masked (handle_masked_trigger) instead of "
            "keeping it pending, and on qemu never dispatches event 0 on that PE again until reset",
            "DEN0054C 5.1.12-5.1.13 (spec point 3); TF-A sdei_intr_mgmt.c",
        ),
        Deviation(
            "tfa_signal_disabled_asserts",
            "TF-A (debug build) hits an assertion at EL3 and hangs when event 0 is signalled while "
            "registered but disabled; the spec leaves ignoring or pending it to the implementation",
            "DEN0054C 5.1.2.1, 5.1.16; TF-A sdei_intr_mgmt.c",
        ),
        Deviation(
            "qemu_psci_smc32_args_64bit",
            "QEMU's own PSCI (TCG) reads PSCI_FEATURES' x1 as 64 bits, so an SMC32 argument with "
            "bits 63:32 set is not recognised",
            "DEN0028 register usage (abi.md 1.3); QEMU target/arm/psci.c",
        ),
        Deviation(
            "tfa_resume_address_unchecked",
            "TF-A does not check the COMPLETE_AND_RESUME address's alignment: it ERETs there and the "
            "client takes a PC alignment fault",
            "DEN0054C 5.1.7 (spec point 7); TF-A sdei_event_complete()",
        ),
    )
}

#: Every deviation name any profile or target knows: a testcase naming another is a bug in it.
KNOWN_DEVIATIONS = frozenset(d.name for p in PROFILES.values() for d in p.deviations) | frozenset(TARGET_DEVIATIONS)


class UnknownProfile(ValueError):
    pass


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise UnknownProfile(f"unknown profile {name!r}; known profiles: {known}") from None


def effective_profile(name: str, target_deviations: list[str] | tuple[str, ...] = ()) -> Profile:
    """The profile a target claims plus its own known deviations (still named after the profile)."""
    base = get_profile(name)
    unknown = [d for d in target_deviations if d not in TARGET_DEVIATIONS]
    if unknown:
        raise UnknownProfile(f"unknown target deviation(s) {', '.join(unknown)}; known: {', '.join(TARGET_DEVIATIONS)}")
    if not target_deviations:
        return base
    extra = tuple(TARGET_DEVIATIONS[d] for d in target_deviations)
    return Profile(base.name, base.description, base.sdei_version, base.deviations + extra)
