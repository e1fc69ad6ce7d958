"""The model's platforms: which SDEI events exist, how they are triggered, which interrupts.

SDEI has no discovery call for events (DEN0054C leaves them to DT/ACPI;
docs/reference/sdei-calls.md), so each platform is a fixed catalogue, documented in
docs/targets.md:

* ``spec`` follows the shape of TF-A's platforms: event 0 (private, normal, signalable,
  bound to a secure SGI), a few statically bound private/shared events of both
  priorities, and dynamic slots for INTERRUPT_BIND with TF-A-style numbers
  (1000+ private, 2000+ shared).
* ``kvm-v4`` exposes the v4 series' static events 0x40400000 / 0x40400001 (private,
  critical) plus the events a VMM adds with KVM_SDEI_CMD_SET_EVENT: one private normal,
  one shared normal, one shared critical (docs/reference/kvm-v4.md).

A platform also says how its implementation answers where the spec leaves a choice
(facts, not deviations): whether a call's unused result registers x1..x3 are zeroed, and
which event numbers are well formed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from apflab.abi.sdei import EventType, Priority
from apflab.guest import EventInfo

#: A platform event: the Guest contract's EventInfo, so the catalogue a target declares
#: and the one the model implements are the same type.
EventDef = EventInfo


@dataclass(frozen=True)
class Platform:
    name: str
    events: tuple[EventDef, ...]
    #: Interrupts owned by the secure world: INTERRUPT_BIND answers DENIED.
    secure_intids: frozenset[int] = field(default_factory=frozenset)
    max_intid: int = 127
    smccc_version: tuple[int, int] = (1, 2)
    psci_version: tuple[int, int] = (1, 1)
    kvm_vendor_hyp: bool = False
    relative_mode: bool = False
    #: Every call's result is written with x1..x3 = 0 (v4's smccc_set_retval(ret, 0, 0, 0));
    #: otherwise x1..x3 keep what the caller passed (TF-A's SMC_RET1).
    zero_result_registers: bool = False
    #: Well-formed event numbers have bits[23:22] equal to this (v4: 1, KVM's own events);
    #: None: any 32-bit number is well formed.
    number_type: int | None = None
    #: Events the hypervisor creates by itself; the others a VMM adds (KVM_SDEI_CMD_SET_EVENT).
    builtin_events: frozenset[int] = field(default_factory=frozenset)

    def find(self, number: int) -> EventDef | None:
        for ev in self.events:
            if ev.number == number:
                return ev
        return None

    def well_formed(self, number: int) -> bool:
        """Whether ``number`` is an event number of this platform's numbering at all."""
        if number >> 32:
            return False
        return self.number_type is None or (number >> 22) & 3 == self.number_type


P, S = EventType.PRIVATE, EventType.SHARED
NORMAL, CRITICAL = Priority.NORMAL, Priority.CRITICAL

SGI_EVENT_0 = 8  # the secure SGI TF-A's qemu platform binds event 0 to

SPEC_PLATFORM = Platform(
    name="spec",
    events=(
        EventDef(0, P, NORMAL, signalable=True, intid=SGI_EVENT_0),
        EventDef(8, P, CRITICAL, intid=23),
        EventDef(100, S, NORMAL, intid=40),
        EventDef(200, S, CRITICAL, intid=41),
        *(EventDef(1000 + i, P, NORMAL, dynamic=True) for i in range(3)),
        *(EventDef(2000 + i, S, NORMAL, dynamic=True) for i in range(3)),
    ),
    secure_intids=frozenset({29}),  # the secure physical timer PPI
)

KVM_V4_PLATFORM = Platform(
    name="kvm-v4",
    events=(
        # v4 marks these "signaled"; only event 0 can be signalled by EVENT_SIGNAL (spec
        # point 8), so in spec terms they are not signalable and GET_INFO gives 1 either way.
        EventDef(0x40400000, P, CRITICAL),
        EventDef(0x40400001, P, CRITICAL),
        EventDef(0x40400010, P, NORMAL),
        EventDef(0x40400020, S, NORMAL),
        EventDef(0x40400021, S, CRITICAL),
    ),
    smccc_version=(1, 1),
    psci_version=(1, 0),
    kvm_vendor_hyp=True,
    zero_result_registers=True,
    number_type=1,  # KVM_SDEI_EV_NUM_TYPE_SHIFT 22: 1 = KVM's virtual events
    builtin_events=frozenset({0x40400000, 0x40400001}),
)

PLATFORMS = {"spec": SPEC_PLATFORM, "kvm-v4": KVM_V4_PLATFORM}
