"""EVENT_SIGNAL, PRIVATE_RESET and SHARED_RESET.

DEN0054C 5.1.16, 5.1.18, 5.1.19 (docs/reference/sdei-calls.md, sdei-dispatch.md), and the
Arm ACS (test_042) and tf-a-tests (test_sdei_event_signal_all) cases named per case.
"""

from __future__ import annotations

import pytest

from apflab.abi import sdei
from apflab.abi.sdei import Fn
from apflab.testing import WEDGED, Call, EventInfo, Expect, Guest, Handler, Known, spec
from testcases.sdei.helpers import ARG, arm, check_status, status_steps

NOT_ROUTED = Known("signal_features_not_routed", sdei.NOT_SUPPORTED)
#: v4 drops an event it holds no reference to, even while its handler runs; COMPLETE then
#: finds nothing to complete (an event SET_VEVENT queued takes no reference).
DROPPED_RUNNING = Known("resets_vm_wide", WEDGED)
NO_EVENT_0 = Known("no_event_0", sdei.INVALID_PARAMETERS)
EVENT_0 = EventInfo(sdei.EVENT_0, sdei.EventType.PRIVATE, sdei.Priority.NORMAL, signalable=True)


def _arm_event_0(guest: Guest, expect: Expect, handler: Handler | None = None) -> None:
    if handler is not None:
        guest.set_handler(ARG, handler)
    if not expect(guest.sdei.register(sdei.EVENT_0, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER(0)", NO_EVENT_0):
        expect.stop("event 0 is not registered")
    expect(guest.sdei.enable(sdei.EVENT_0).ret, sdei.SUCCESS, "EVENT_ENABLE(0)")
    expect(guest.sdei.pe_unmask().ret, sdei.SUCCESS, "PE_UNMASK")


@spec("DEN0054C 5.1.16", "EVENT_SIGNAL of an event other than 0 is INVALID_PARAMETERS (ACS: 0x10000)")
def test_signal_other_event(guest: Guest, expect: Expect) -> None:
    expect(guest.sdei.signal(0x10000, guest.info.mpidrs[0]).ret, sdei.INVALID_PARAMETERS, "SIGNAL(0x10000)", NOT_ROUTED)


@spec("DEN0054C 5.1.16", "EVENT_SIGNAL to an MPIDR that names no PE is INVALID_PARAMETERS")
def test_signal_bad_target(guest: Guest, expect: Expect) -> None:
    expect(guest.sdei.signal(sdei.EVENT_0, 0x8000_00FE).ret, sdei.INVALID_PARAMETERS, "SIGNAL(0, bad PE)", NOT_ROUTED)


@spec("DEN0054C 5.1.16", "EVENT_SIGNAL to the calling PE dispatches event 0 there, with its argument")
def test_signal_self(guest: Guest, expect: Expect) -> None:
    _arm_event_0(guest, expect)
    r = guest.sdei.signal(sdei.EVENT_0, guest.info.mpidrs[0])
    expect(r.ret, sdei.SUCCESS, "EVENT_SIGNAL")
    expect([(d.event, d.arg, d.pe) for d in r.deliveries], [(0, ARG, 0)], "handler entries")


@spec("DEN0054C 5.1.16 (TFTF test_sdei_event_signal_all)", "EVENT_SIGNAL to another PE dispatches on that PE")
def test_signal_other_pe(multi_pe: Guest, expect: Expect) -> None:
    guest = multi_pe
    guest.select_pe(1)
    _arm_event_0(guest, expect)
    guest.select_pe(0)
    r = guest.sdei.signal(sdei.EVENT_0, guest.info.mpidrs[1])
    expect(r.ret, sdei.SUCCESS, "EVENT_SIGNAL", NOT_ROUTED)
    expect([(d.event, d.pe) for d in r.deliveries], [(0, 1)], "handler entries")


@pytest.mark.fresh_target  # the PE is masked here: TF-A then loses event 0 for good (tfa_masked_trigger_lost)
@spec("DEN0054C 5.1.16", "EVENT_SIGNAL succeeds even when the target has not registered event 0")
def test_signal_unregistered_target(guest: Guest, expect: Expect) -> None:
    r = guest.sdei.signal(sdei.EVENT_0, guest.info.mpidrs[0])
    expect(r.ret, sdei.SUCCESS, "EVENT_SIGNAL", NOT_ROUTED)
    expect(len(r.deliveries), 0, "handler entries")


@pytest.mark.fresh_target  # TF-A loses event 0 for good after a masked trigger
@spec("DEN0054C 5.1.12, 5.1.16", "a signal to a masked PE is dispatched after its PE_UNMASK")
def test_signal_masked_target(guest: Guest, expect: Expect) -> None:
    _arm_event_0(guest, expect)
    expect(guest.sdei.pe_mask().ret, 1, "PE_MASK", Known("pe_mask_returns_zero", 0))
    r = guest.sdei.signal(sdei.EVENT_0, guest.info.mpidrs[0])
    expect((r.ret, len(r.deliveries)), (sdei.SUCCESS, 0), "SIGNAL while masked: (x0, entries)")
    expect(
        [d.event for d in guest.sdei.pe_unmask().deliveries],
        [0],
        "entries at PE_UNMASK",
        Known("tfa_masked_trigger_lost", []),
    )


@spec("DEN0054C 5.1.16 (ACS test_042)", "EVENT_SIGNAL succeeds from inside a running handler")
def test_signal_from_handler(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    signal = Call(Fn.EVENT_SIGNAL, sdei.EVENT_0, guest.info.mpidrs[0])
    arm(guest, expect, private_event, Handler([signal], once=True))  # event 0 may be this event
    entries = guest.trigger(private_event).deliveries
    expect(len(entries) >= 1, True, "handler ran")
    expect(entries[0].results[0], sdei.SUCCESS, "EVENT_SIGNAL in the handler", NOT_ROUTED)


# ------------------------------------------------------------------- resets


@spec("DEN0054C 5.1.18", "PRIVATE_RESET unregisters the calling PE's private events")
def test_private_reset(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    arm(guest, expect, private_event)
    expect(guest.sdei.private_reset().ret, sdei.SUCCESS, "PRIVATE_RESET")
    check_status(guest, expect, private_event, 0, "STATUS after PRIVATE_RESET")


@spec("DEN0054C 5.1.18", "PRIVATE_RESET leaves shared events registered")
def test_private_reset_keeps_shared(guest: Guest, expect: Expect, shared_event: EventInfo) -> None:
    expect(guest.sdei.register(shared_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER")
    expect(guest.sdei.private_reset().ret, sdei.SUCCESS, "PRIVATE_RESET")
    check_status(guest, expect, shared_event, 0b001, "STATUS of the shared event")


@spec("DEN0054C 5.1.18", "PRIVATE_RESET leaves other PEs' private registrations alone")
def test_private_reset_other_pe(multi_pe: Guest, expect: Expect, private_event: EventInfo) -> None:
    guest = multi_pe
    guest.select_pe(1)
    expect(guest.sdei.register(private_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER on PE 1")
    guest.select_pe(0)
    expect(guest.sdei.private_reset().ret, sdei.SUCCESS, "PRIVATE_RESET on PE 0")
    guest.select_pe(1)
    check_status(guest, expect, private_event, 0b001, "STATUS on PE 1", Known("resets_vm_wide", 0))


@spec("DEN0054C 5.1.18", "PRIVATE_RESET from a running handler is DENIED; it is unregister-pending")
def test_private_reset_running(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    status = status_steps(expect, private_event, "STATUS: running, unregister-pending")
    arm(guest, expect, private_event, Handler([Call(Fn.PRIVATE_RESET), *status]))
    r = expect.survives(lambda: guest.trigger(private_event), "PRIVATE_RESET in the handler", DROPPED_RUNNING)
    if not expect(len(r.deliveries), 1, "handler entries"):
        expect.stop("no handler ran")
    d = r.deliveries[0]
    expect(d.results[0], sdei.DENIED, "PRIVATE_RESET in the handler", Known("resets_vm_wide", sdei.SUCCESS))
    if status:
        expect(d.results[1], 0b100, "STATUS: running, unregister-pending")
    check_status(guest, expect, private_event, 0, "STATUS after COMPLETE")


@spec("DEN0054C 5.1.19", "SHARED_RESET unregisters shared events")
def test_shared_reset(guest: Guest, expect: Expect, shared_event: EventInfo) -> None:
    expect(guest.sdei.register(shared_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER")
    expect(guest.sdei.enable(shared_event.number).ret, sdei.SUCCESS, "EVENT_ENABLE")
    expect(guest.sdei.shared_reset().ret, sdei.SUCCESS, "SHARED_RESET")
    check_status(guest, expect, shared_event, 0, "STATUS after SHARED_RESET")


@spec("DEN0054C 5.1.19", "SHARED_RESET while a shared handler runs is DENIED")
def test_shared_reset_running(guest: Guest, expect: Expect, shared_event: EventInfo) -> None:
    arm(guest, expect, shared_event, Handler([Call(Fn.SHARED_RESET)]))
    r = expect.survives(lambda: guest.trigger(shared_event), "SHARED_RESET in the handler", DROPPED_RUNNING)
    if not expect(len(r.deliveries), 1, "handler entries"):
        expect.stop("no handler ran")
    expect(
        r.deliveries[0].results[0], sdei.DENIED, "SHARED_RESET in the handler", Known("resets_vm_wide", sdei.SUCCESS)
    )


@spec("DEN0054C 5.1.19", "SHARED_RESET releases interrupt bindings: the bound event can no longer be registered")
def test_shared_reset_releases_bindings(guest: Guest, expect: Expect) -> None:
    from testcases.sdei.test_bind import free_spi, require_bind_slots

    require_bind_slots(guest)
    number = guest.sdei.bind(free_spi(guest)).ret
    if not expect(number >= 0, True, f"INTERRUPT_BIND = {number}", Known("bind_release_not_supported", False)):
        expect.stop("nothing was bound")
    expect(guest.sdei.shared_reset().ret, sdei.SUCCESS, "SHARED_RESET")
    expect(guest.sdei.register(number, arg=ARG).ret, sdei.DENIED, "EVENT_REGISTER of the released event")


@spec("DEN0054C 5.1.19", "SHARED_RESET leaves private events registered")
def test_shared_reset_keeps_private(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    expect(guest.sdei.register(private_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER")
    expect(guest.sdei.shared_reset().ret, sdei.SUCCESS, "SHARED_RESET")
    check_status(guest, expect, private_event, 0b001, "STATUS of the private event")
