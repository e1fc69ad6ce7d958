"""Operands a dispatcher can get half right: which interrupts bind, a shared event raised
twice, resume addresses.

DEN0054C 5.1.14 (INTERRUPT_BIND: only a PPI or an SPI the platform does not use, and not
one the secure world owns), 5.1.6/5.1.7 with 5.1.11 (a shared event runs on one PE at a
time; a trigger while it runs stays pending and is dispatched after COMPLETE), 5.1.7
(COMPLETE_AND_RESUME's address must be a valid, 4-byte aligned instruction address);
docs/reference/sdei-calls.md, docs/reference/sdei-dispatch.md.
"""

from __future__ import annotations

import pytest

from apflab.abi import sdei
from apflab.abi.aarch64 import PSTATE_DIT, pstate_el
from apflab.abi.sdei import EventType, Info, Routing
from apflab.testing import WEDGED, EventInfo, Expect, Guest, Handler, Known, not_applicable, spec
from testcases.sdei.helpers import RESUME_FAULT, arm, resume_outcome
from testcases.sdei.test_bind import free_ppis, require_bind_slots

NOT_SUPPORTED = Known("bind_release_not_supported", sdei.NOT_SUPPORTED)
#: Arm DEN0094 (BSA) PPI assignments: 29 is the Secure EL1 physical timer, an interrupt of the
#: secure world on every BSA system (TF-A configures it Group 0/Secure Group 1).
SECURE_TIMER_PPI = 29
FIRST_SPI = 32


def static_intids(guest: Guest) -> set[int]:
    """The interrupts the target's platform events hold (its catalogue)."""
    return {e.intid for e in guest.info.events if e.intid is not None and not e.dynamic}


@spec("DEN0054C 5.1.14", "INTERRUPT_BIND of an SGI no event holds is INVALID_PARAMETERS (SGIs never bind)")
@pytest.mark.parametrize("sgi", [0, 15])
def test_bind_free_sgi(guest: Guest, expect: Expect, sgi: int) -> None:
    if sgi in static_intids(guest):
        not_applicable(guest, f"SGI {sgi} is held by a platform event")
    expect(guest.sdei.bind(sgi).ret, sdei.INVALID_PARAMETERS, f"INTERRUPT_BIND(SGI {sgi})", NOT_SUPPORTED)


@spec(
    "DEN0054C 5.1.14; TF-A sdei_interrupt_bind(); Arm DEN0094 (BSA: PPI 29 is the Secure EL1 physical timer)",
    "INTERRUPT_BIND of an interrupt the secure world owns is DENIED",
)
def test_bind_secure_interrupt(guest: Guest, expect: Expect) -> None:
    require_bind_slots(guest)
    secure = sorted(guest.info.secure_intids - static_intids(guest))
    if not secure:
        not_applicable(guest, "its configuration names no PPI or SPI of the secure world (secure_intids)")
    intid = SECURE_TIMER_PPI if SECURE_TIMER_PPI in secure else secure[0]
    r = guest.sdei.bind(intid)
    expect(r.ret, sdei.DENIED, f"INTERRUPT_BIND({intid}, a secure interrupt)", NOT_SUPPORTED)


@spec("DEN0054C 5.1.14", "a PPI no event holds binds: the answer is an event number, not an error")
def test_bind_free_ppi(guest: Guest, expect: Expect) -> None:
    require_bind_slots(guest)
    ppis = free_ppis(guest)
    if not ppis:
        not_applicable(guest, "no PPI is free")
    r = guest.sdei.bind(ppis[-1])
    expect(r.ret >= 0, True, f"INTERRUPT_BIND(PPI {ppis[-1]}) = {r.ret}", Known("bind_release_not_supported", False))


@spec("DEN0054C 5.1.14; GICv3 (INTIDs 32-1019 are SPIs)", "the first SPI, INTID 32, binds to a shared event")
def test_bind_first_spi(guest: Guest, expect: Expect) -> None:
    require_bind_slots(guest)
    if FIRST_SPI in static_intids(guest):
        not_applicable(guest, f"INTID {FIRST_SPI} is held by a platform event")
    number = guest.sdei.bind(FIRST_SPI).ret
    if not expect(
        number >= 0, True, f"INTERRUPT_BIND({FIRST_SPI}) = {number}", Known("bind_release_not_supported", False)
    ):
        return
    expect(guest.sdei.get_info(number, Info.EV_TYPE).ret, EventType.SHARED, f"EV_TYPE of INTID {FIRST_SPI}'s event")


@spec(
    "DEN0054C 5.1.6, 5.1.11; TF-A sdei_intr_mgmt.c (a shared event runs on one PE at a time)",
    "a shared event raised again from another PE while its handler runs is dispatched once, after COMPLETE",
)
def test_shared_again_while_running(multi_pe: Guest, expect: Expect, shared_event: EventInfo) -> None:
    guest = multi_pe
    guest.require("in-handler-inject", "the event is raised again while its handler runs")
    guest.select_pe(1)
    expect(guest.sdei.pe_unmask().ret, sdei.SUCCESS, "PE_UNMASK on PE 1")
    guest.select_pe(0)  # arm() registers, enables and unmasks PE 0
    handler = Handler([guest.trigger_steps(shared_event, pe=1)], once=True)
    arm(guest, expect, shared_event, handler, flags=Routing.RM_ANY)
    entries = [d for d in guest.trigger(shared_event, pe=0).deliveries if d.event == shared_event.number]
    depths = [d.depth for d in entries]
    expect(
        depths,
        [1, 1],
        "depth of each entry: the first handler, then the second after its COMPLETE",
        Known("shared_routing_ignored", [1, 1]),
        Known("tfa_qemu_retrigger_while_running_lost", [1]),
    )
    if len(entries) == 2:
        expect(entries[0].seq < entries[1].seq, True, "the second entry comes after the first")


@spec(
    "DEN0054C 5.1.8, 5.1.13 (an unregistered event's pending trigger goes with it; the others stay)",
    "UNREGISTER of one pending shared event leaves another pending shared event to be dispatched at PE_UNMASK",
)
def test_unregister_keeps_other_pending(guest: Guest, expect: Expect) -> None:
    shared = guest.info.find_events(type=EventType.SHARED, injectable=True)
    if len(shared) < 2:
        not_applicable(guest, "needs two triggerable shared events")
    first, second = shared[:2]
    for ev in (first, second):
        expect(guest.sdei.register(ev.number, arg=ev.number).ret, sdei.SUCCESS, f"EVENT_REGISTER {ev.number:#x}")
        expect(guest.sdei.enable(ev.number).ret, sdei.SUCCESS, f"EVENT_ENABLE {ev.number:#x}")
    # Every PE is masked since reset: both stay pending (a GIC that hands an RM_ANY SPI back
    # to the masked PE at once wedges TF-A instead: docs/targets.md).
    storm = Known("tfa_qemu_rm_any_masked_storm", WEDGED)
    for ev in (first, second):
        expect.survives(lambda ev=ev: guest.trigger(ev), f"trigger {ev.number:#x} while masked", storm)
    not_recorded = Known("unregister_running_not_recorded", sdei.PENDING)
    expect(guest.sdei.unregister(first.number).ret, sdei.SUCCESS, "EVENT_UNREGISTER of the first", not_recorded)
    entries = [d.event for d in guest.sdei.pe_unmask().deliveries]
    expect(
        entries,
        [second.number],
        "entries at PE_UNMASK",
        Known("masked_injection_dropped", []),
        Known("unregister_running_not_recorded", [first.number, second.number]),
    )


@spec("DEN0054C 5.1.2, 5.1.17", "where FEATURES(RELATIVE_MODE) says 1, EVENT_REGISTER accepts the relative flag")
def test_relative_mode_when_supported(guest: Guest, expect: Expect) -> None:
    if guest.sdei.features(sdei.Feature.RELATIVE_MODE).ret != 1:
        not_applicable(guest, "FEATURES(RELATIVE_MODE) does not say 1 (test_calls.py checks that side)")
    ev = next(iter(guest.info.find_events(type=EventType.SHARED)), None) or guest.info.events[0]
    r = guest.sdei.register(ev.number, arg=0x1, flags=sdei.REGISTER_FLAG_RELATIVE)
    expect(r.ret, sdei.SUCCESS, "EVENT_REGISTER with relative_mode")


@spec(
    "DEN0054C 5.1.18 (x3 at handler entry: the interrupted PSTATE); Arm ARM SPSR_ELx M[3:2]",
    "with PSTATE bits planted in the interrupted context, x3 at entry still names the client's EL",
)
def test_entry_x3_keeps_el_with_planted_bits(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    guest.require("context", "the interrupted context needs PSTATE bits of its own")
    guest.set_context(PSTATE_DIT, 0, 0)
    arm(guest, expect, private_event, Handler())
    entries = guest.trigger(private_event).deliveries
    if not expect(len(entries), 1, "handler entries") and not entries:
        expect.stop("no handler entry to look at")
    x3 = entries[0].interrupted_pstate
    expect((pstate_el(x3), x3 & PSTATE_DIT), (guest.info.el, PSTATE_DIT), "(EL, DIT) of x3 at entry")


@spec(
    "DEN0054C 5.1.18.1 (a critical event preempts a normal one; nothing preempts a critical handler)",
    "no third level: an event raised in a critical handler nested over a normal one waits for both COMPLETEs",
)
def test_no_third_level(guest: Guest, expect: Expect, normal_event: EventInfo, critical_event: EventInfo) -> None:
    guest.require("in-handler-inject", "the events are raised while the handlers run")
    third = next((e for e in guest.info.find_events(type=EventType.SHARED, injectable=True)), None)
    if third is None:
        not_applicable(guest, "needs a triggerable shared event as the third")
    guest.set_handler(0x3333, Handler())
    guest.set_handler(0x2222, Handler([guest.trigger_steps(third)], once=True))
    for ev, arg in ((third, 0x3333), (critical_event, 0x2222)):
        expect(guest.sdei.register(ev.number, arg=arg).ret, sdei.SUCCESS, f"EVENT_REGISTER {ev.number:#x}")
        expect(guest.sdei.enable(ev.number).ret, sdei.SUCCESS, f"EVENT_ENABLE {ev.number:#x}")
    arm(guest, expect, normal_event, Handler([guest.trigger_steps(critical_event)], once=True), arg=0x1111)
    entries = [(d.event, d.depth) for d in guest.trigger(normal_event).deliveries]
    expect(
        entries,
        [(normal_event.number, 1), (critical_event.number, 2), (third.number, 1)],
        "(event, depth) of each entry",
    )


@spec(
    "DEN0054C 5.1.19 (SHARED_RESET unregisters shared events only)",
    "after SHARED_RESET a private event is still registered (REGISTER is DENIED) and a shared one is not",
)
def test_shared_reset_seen_by_register(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    shared = next(iter(guest.info.find_events(type=EventType.SHARED)), None)
    if shared is None:
        not_applicable(guest, "needs a shared event")
    for ev in (private_event, shared):
        expect(guest.sdei.register(ev.number, arg=0x5151).ret, sdei.SUCCESS, f"EVENT_REGISTER {ev.number:#x}")
    expect(guest.sdei.shared_reset().ret, sdei.SUCCESS, "SHARED_RESET")
    again = (
        guest.sdei.register(private_event.number, arg=0x5151).ret,
        guest.sdei.register(shared.number, arg=0x5151).ret,
    )
    expect(again, (sdei.DENIED, sdei.SUCCESS), "REGISTER again: (private, shared)")


@spec(
    "DEN0054C 5.1.2 (the affinity is used only with RM_PE), 5.1.10; KVM SDEI v4 04/21 (measured 0x1234 -> 0x34)",
    "EVENT_REGISTER RM_ANY with an affinity argument reports ROUTING_MODE RM_ANY",
)
def test_routing_mode_ignores_affinity(guest: Guest, expect: Expect) -> None:
    shared = next(iter(guest.info.find_events(type=EventType.SHARED)), None)
    if shared is None:
        not_applicable(guest, "needs a shared event")
    r = guest.sdei.register(shared.number, arg=0x5252, flags=Routing.RM_ANY, affinity=0x1234)
    expect(r.ret, sdei.SUCCESS, "EVENT_REGISTER(RM_ANY, affinity 0x1234)")
    expect(
        guest.sdei.get_info(shared.number, Info.EV_ROUTING_MODE).ret,
        Routing.RM_ANY,
        "ROUTING_MODE",
        Known("register_route_mode_from_affinity", 0x34, certain=True),
    )


@pytest.mark.fresh_target  # a dispatcher that ERETs to the address faults the agent
@spec("DEN0054C 5.1.7", "a resume address that is not 4-byte aligned is INVALID_PARAMETERS, whichever low bits are set")
@pytest.mark.parametrize("offset", [1, 3])
def test_resume_unaligned_offsets(guest: Guest, expect: Expect, private_event: EventInfo, offset: int) -> None:
    arm(guest, expect, private_event, Handler(finish="resume", resume_at=guest.info.resume_point + offset))
    outcome = resume_outcome(guest, expect, lambda: guest.trigger(private_event))
    expect(
        outcome,
        sdei.INVALID_PARAMETERS,
        f"COMPLETE_AND_RESUME(resume point + {offset})",
        Known("complete_and_resume_ignores_address", None),
        Known("tfa_resume_address_unchecked", RESUME_FAULT),
    )
