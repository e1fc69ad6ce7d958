"""Behaviour profiles: what a target claims to implement, and how it deviates.

A target declares a profile. ``spec`` is DEN0054C (SDEI 1.1) with TF-A as its proxy where
the text is silent; ``kvm-v4`` is Gavin Shan's v4 series as its own code behaves
(docs/reference/kvm-v4.md), whose every difference from the spec is a named
:class:`Deviation` with a one-line reason and its primary source. The reference model
switches its behaviour on these names only, and a testcase names the deviation it may run
into, so a difference the target's profile predicts is a KFAIL and any other difference a
FAIL.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Deviation:
    """One known difference from the spec: what the target does, and where that is shown."""

    name: str
    reason: str
    source: str


#: The v4 series' files and patches (Message-Ids in docs/reference/kvm-v4.md).
_SDEI = "KVM SDEI v4 {}/21, arch/arm64/kvm/sdei.c{}; docs/reference/kvm-v4.md"
_APF = "KVM APF v4 {}/15, {}; docs/reference/apf.md"


def _sdei(patch: str, where: str = "") -> str:
    return _SDEI.format(patch, f" {where}" if where else "")


KVM_V4_DEVIATIONS: tuple[Deviation, ...] = (
    Deviation("no_event_0", "v4 accepts only KVM 'virtual' event numbers; event 0 is INVALID", _sdei("02")),
    Deviation("register_ep_unchecked", "EVENT_REGISTER does not reject entry point 0", _sdei("04")),
    Deviation(
        "register_affinity_unchecked",
        "EVENT_REGISTER neither validates the RM_PE affinity nor masks it to the affinity fields",
        _sdei("04"),
    ),
    Deviation(
        "register_route_mode_from_affinity",
        "first EVENT_REGISTER stores the affinity argument's low byte as the routing mode",
        _sdei("04", "(measured: affinity 0x1234 -> mode 0x34)"),
    ),
    Deviation("enable_when_enabled_denied", "EVENT_ENABLE of an enabled event returns DENIED", _sdei("05")),
    Deviation("disable_when_disabled_denied", "EVENT_DISABLE of a disabled event returns DENIED", _sdei("05")),
    Deviation(
        "enable_disable_pending_while_running",
        "EVENT_ENABLE/DISABLE return PENDING while the event is queued or running on any vCPU (VM-wide refcount)",
        _sdei("05"),
    ),
    Deviation(
        "pending_before_registration_check",
        "ENABLE/DISABLE/UNREGISTER answer PENDING on a vCPU that never registered the event while it is "
        "queued or running elsewhere: the refcount is checked before the registration",
        _sdei("05, 07"),
    ),
    Deviation("context_index_18_accepted", "EVENT_CONTEXT(18) is accepted and returns the saved PC", _sdei("06")),
    Deviation("complete_without_dispatch_silent", "COMPLETE with nothing running leaves x0 unwritten", _sdei("14")),
    Deviation(
        "complete_and_resume_ignores_address",
        "COMPLETE_AND_RESUME ignores x1 and injects an IRQ (resumes at VBAR+0x280)",
        _sdei("14", "(Eric Auger's review)"),
    ),
    Deviation(
        "unregister_running_not_recorded",
        "UNREGISTER while the event is queued or running on any vCPU returns PENDING and records nothing: "
        "no unregister-pending state, the registration stays",
        _sdei("07", "(Eric Auger's review)"),
    ),
    Deviation(
        "status_registered_wedges",
        "EVENT_STATUS of a registered event dereferences a NULL pointer under the VM's SDEI lock: the "
        "host oopses and every later SDEI call of the VM hangs",
        _sdei("08", "(measured: Oops in kvm_sdei_hypercall)"),
    ),
    Deviation(
        "status_unknown_event_zero",
        "EVENT_STATUS of a well-formed number the VM does not expose returns 0, not INVALID_PARAMETERS",
        _sdei("08", "(measured: STATUS(0x40400005) = 0)"),
    ),
    Deviation(
        "get_info_routing_unregistered_defaults",
        "GET_INFO ROUTING_* of an unregistered shared event returns defaults, not DENIED",
        _sdei("09"),
    ),
    Deviation(
        "get_info_aff_any_mode",
        "GET_INFO ROUTING_AFF returns the stored affinity even when the mode is RM_ANY",
        _sdei("09"),
    ),
    Deviation(
        "routing_set_affinity_unchecked",
        "EVENT_ROUTING_SET checks no affinity and stores it as given, in either mode",
        _sdei("10"),
    ),
    Deviation(
        "unregistered_event_invalid",
        "ENABLE/DISABLE/UNREGISTER/ROUTING_SET of an event no vCPU registered give INVALID_PARAMETERS",
        _sdei("05, 07, 10"),
    ),
    Deviation("pe_mask_state_denied", "PE_MASK/PE_UNMASK return DENIED when already in that state", _sdei("11")),
    Deviation("pe_mask_returns_zero", "PE_MASK returns 0 instead of 1 when it masked the PE", _sdei("11")),
    Deviation("bind_release_not_supported", "INTERRUPT_BIND/RELEASE return NOT_SUPPORTED", _sdei("12")),
    Deviation(
        "signal_features_not_routed",
        "EVENT_SIGNAL and FEATURES are not routed and fall to PSCI's NOT_SUPPORTED",
        _sdei("02", "(only 0xC4000020-0xC400002E are handled; measured -1)"),
    ),
    Deviation("resets_vm_wide", "PRIVATE/SHARED_RESET drop idle events VM-wide and always return SUCCESS", _sdei("12")),
    Deviation(
        "no_reset_on_cpu_on_or_reboot",
        "SDEI state is created once with the vCPU: a vCPU reset or PSCI CPU_ON keeps the mask, the "
        "registrations and running events",
        _sdei("02", "(kvm_sdei_create_vcpu only)"),
    ),
    Deviation(
        "delivery_ignores_mask_enable",
        "delivery re-checks neither the PE mask nor the event's enable (checked at injection only); "
        "SET_VEVENT checks neither, nor that the vCPU registered the event (it then enters at 0)",
        _sdei("13, 17", "kvm_sdei_deliver"),
    ),
    Deviation(
        "spsr_clobbered",
        "delivery writes SPSR_EL1 and COMPLETE never restores it: the interrupted code's SPSR_EL1 is lost",
        _sdei("13", "kvm_sdei_deliver (measured: SPSR_EL1 reads 0 in the handler)"),
    ),
    Deviation(
        "handler_pstate_inherited",
        "the handler's PSTATE is the interrupted one with DAIF set and mode EL1h: PAN, UAO, SS, IL, "
        "BTYPE, SSBS and TCO are inherited instead of set as an exception entry sets them",
        _sdei("13", "kvm_sdei_deliver"),
    ),
    Deviation(
        "masked_injection_dropped",
        "kvm_sdei_inject() refuses (-EPERM) an event that is not enabled on the vCPU, or a masked vCPU: "
        "the trigger is lost, not left pending",
        _sdei("18", "kvm_sdei_inject"),
    ),
    Deviation(
        "inject_event_deadlocks",
        "the vCPU ioctl INJECT_EVENT self-deadlocks once the event is registered and enabled (it "
        "holds the lock kvm_sdei_inject() takes again)",
        _sdei("17, 18", "(measured: spinlock recursion)"),
    ),
    Deviation(
        "set_vevent_refcount_underflow",
        "an event queued with SET_VEVENT takes no VM-wide reference but COMPLETE drops one: the "
        "refcount wraps to 0xFFFFFFFF, then DISABLE/UNREGISTER answer PENDING and PRIVATE_RESET keeps it",
        _sdei("17", "(measured)"),
    ),
    Deviation(
        "set_event_notifier_called",
        "SET_EVENT copies the caller's notifier u64 into the kernel, which calls it at delivery: a "
        "non-zero value in restored state crashes the host",
        _sdei("15, 16", "kvm_sdei_event_state.notifier"),
    ),
    Deviation(
        "shared_routing_ignored",
        "shared events are delivered on the vCPU they were queued on; routing is not enforced",
        _sdei("18"),
    ),
    Deviation(
        "apf_enable_x2_unmasked",
        "APF ENABLE builds the control word as (x3 << 32) | x2 without masking x2 to 32 bits "
        "(an SMC32 call's upper halves must be ignored)",
        _APF.format("08", "arch/arm64/kvm/hypercalls.c"),
    ),
    Deviation(
        "apf_slots_checked_only_when_allowed",
        "a fault on a frame already in flight is handled synchronously when no new not-present is "
        "allowed: the slot table is consulted only after that check",
        _APF.format("07", "arch/arm64/kvm/mmu.c, async_pf.c"),
    ),
    Deviation(
        "apf_not_present_refused_while_page_ready_pending",
        "no not-present is sent while a page-ready is pending (asserted, not yet acknowledged), "
        "even after the guest emptied the shared block",
        _APF.format("07", "kvm_arch_async_not_present_allowed"),
    ),
    Deviation(
        "apf_page_ready_after_disable",
        "a fault whose I/O was running when APF was disabled still posts page-ready and raises the PPI "
        "(the completion path does not check 'enabled')",
        _APF.format("07", "kvm_arch_async_page_present"),
    ),
)


@dataclass(frozen=True)
class Profile:
    """A named behaviour profile: its SDEI version, the event catalogue (platform) of the
    reference model that follows it, and the deviations it predicts."""

    name: str
    description: str
    sdei_version: tuple[int, int, int]
    deviations: tuple[Deviation, ...] = field(default=())
    platform: str = "spec"

    def __str__(self) -> str:
        return self.name

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
    platform="kvm-v4",
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
            "DEN0054C 5.1.17; TF-A plat/qemu/common/qemu_sdei.c; docs/reference/tfa.md",
        ),
        Deviation(
            "tfa_masked_trigger_lost",
            "TF-A drops event 0 signalled while the PE is masked (handle_masked_trigger returns at once "
            "for event 0) instead of keeping it pending, and on qemu never dispatches event 0 on that PE "
            "again until reset (an event on a bound interrupt stays pending and is dispatched at PE_UNMASK)",
            "DEN0054C 5.1.12, 5.1.13; TF-A services/std_svc/sdei/sdei_intr_mgmt.c; docs/targets.md",
        ),
        Deviation(
            "tfa_signal_disabled_asserts",
            "TF-A (debug build) hits an assertion at EL3 and hangs when event 0 is signalled while "
            "registered but disabled; the spec keeps such a trigger pending until EVENT_ENABLE",
            "DEN0054C 5.1.3.1, 5.1.4.1, 5.1.16; TF-A sdei_intr_mgmt.c; docs/targets.md",
        ),
        Deviation(
            "tfa_qemu_rm_any_masked_storm",
            "a shared RM_ANY event triggered while the PE its SPI goes to is masked: TF-A sets the SPI "
            "pending again for another PE (handle_masked_trigger), but QEMU's GICv3 has no 1-of-N routing "
            "(GICD_TYPER.No1N = 1) and gives it to the same PE at once, forever: that PE never leaves EL3. "
            "The spec keeps the event pending for a PE that can take it",
            "DEN0054C 5.1.2, 5.1.12, 5.1.13; TF-A sdei_intr_mgmt.c handle_masked_trigger(); docs/targets.md",
        ),
        Deviation(
            "tfa_qemu_retrigger_while_running_lost",
            "an event's own interrupt raised again (one rising edge) while the event's handler runs is "
            "never dispatched: TF-A ends the interrupt only after COMPLETE, so the edge meets an active "
            "interrupt in QEMU's GICv3, and no second dispatch follows (measured for PPIs 23, 27 and "
            "SPIs 34, 35; another event's interrupt raised in the same window is kept). The spec "
            "dispatches the event again after COMPLETE",
            "DEN0054C 5.1.6, 5.1.11; TF-A sdei_intr_mgmt.c sdei_intr_handler(); docs/targets.md",
        ),
        Deviation(
            "qemu_psci_smc32_args_64bit",
            "QEMU's own PSCI (TCG) reads PSCI_FEATURES' x1 as 64 bits, so an SMC32 argument with "
            "bits 63:32 set is not recognised",
            "DEN0028 (SMC32: only W registers); QEMU target/arm/psci.c; docs/targets.md",
        ),
        Deviation(
            "tfa_resume_address_unchecked",
            "TF-A does not check the COMPLETE_AND_RESUME address's alignment: it ERETs there and the "
            "client takes a PC alignment fault",
            "DEN0054C 5.1.7; TF-A sdei_intr_mgmt.c sdei_event_complete(); docs/targets.md",
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
    return Profile(base.name, base.description, base.sdei_version, base.deviations + extra, base.platform)
