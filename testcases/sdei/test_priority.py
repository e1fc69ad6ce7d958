"""Priority and nesting, the PE mask, and routing of shared events.

DEN0054C 5.1.12, 5.1.13, 5.1.18.1 (docs/reference/sdei-dispatch.md): a critical event may
preempt a running normal one and nothing else nests (depth at most 2); PEs start masked;
an event triggered while the PE is masked stays pending until PE_UNMASK; shared events go
where their routing says (DEN0054C 5.1.2, 5.1.11).
"""

from __future__ import annotations

import pytest

from apflab.abi import sdei
from apflab.abi.sdei import Fn, Routing
from apflab.testing import WEDGED, Call, EventInfo, Expect, Guest, Handler, Known, spec
from testcases.sdei.helpers import ARG, arm, check_status, status_steps, u64

OTHER_ARG = 0xB0B0_0002


def _arm_second(guest: Guest, expect: Expect, ev: EventInfo, handler: Handler | None = None) -> None:
    if handler is not None:
        guest.set_handler(OTHER_ARG, handler)
    expect(guest.sdei.register(ev.number, arg=OTHER_ARG).ret, sdei.SUCCESS, f"EVENT_REGISTER {ev.number:#x}")
    expect(guest.sdei.enable(ev.number).ret, sdei.SUCCESS, f"EVENT_ENABLE {ev.number:#x}")


def _nested(guest: Guest, expect: Expect, outer: EventInfo, inner: EventInfo, after: list | None = None) -> list:
    guest.require("in-handler-inject", "the second event is raised while the first handler runs")
    _arm_second(guest, expect, inner)
    arm(guest, expect, outer, Handler([guest.trigger_steps(inner), *(after or [])]))
    return list(guest.trigger(outer).deliveries)


@spec("DEN0054C 5.1.18.1", "a critical event preempts a running normal handler (depth 2)")
def test_critical_preempts_normal(
    guest: Guest, expect: Expect, normal_event: EventInfo, critical_event: EventInfo
) -> None:
    entries = _nested(guest, expect, normal_event, critical_event)
    expect([(d.event, d.depth) for d in entries], [(normal_event.number, 1), (critical_event.number, 2)], "entries")


@spec("DEN0054C 5.1.18.1", "a normal event does not preempt a normal handler")
def test_normal_not_over_normal(
    guest: Guest, expect: Expect, normal_event: EventInfo, shared_normal_event: EventInfo
) -> None:
    entries = _nested(guest, expect, normal_event, shared_normal_event)
    expect([d.depth for d in entries], [1, 1], "depth of both entries")
    expect([d.event for d in entries], [normal_event.number, shared_normal_event.number], "order")


@spec("DEN0054C 5.1.18.1", "nothing preempts a critical handler")
def test_nothing_over_critical(
    guest: Guest, expect: Expect, critical_event: EventInfo, normal_event: EventInfo
) -> None:
    entries = _nested(guest, expect, critical_event, normal_event)
    expect([d.depth for d in entries], [1, 1], "depth of both entries")


@spec("DEN0054C 5.1.5", "EVENT_CONTEXT in a nested handler reads the innermost interrupted context")
def test_context_innermost(guest: Guest, expect: Expect, normal_event: EventInfo, critical_event: EventInfo) -> None:
    guest.require("in-handler-inject", "the critical event is raised while the normal handler runs")
    _arm_second(guest, expect, critical_event, Handler([Call(Fn.EVENT_CONTEXT, 0)]))
    version = guest.sdei.version().x[0]
    # The normal handler calls VERSION (x0 = the version) right before the critical event arrives.
    steps = [Call(Fn.VERSION), guest.trigger_steps(critical_event)]
    arm(guest, expect, normal_event, Handler(steps))
    entries = guest.trigger(normal_event).deliveries
    inner = [d for d in entries if d.event == critical_event.number]
    if not expect(len(inner), 1, "critical handler entries"):
        expect.stop("no nested handler ran")
    expect(u64(inner[0].results[0]), version, "EVENT_CONTEXT(0) in the critical handler")


@spec("DEN0054C 5.1.6", "after a nested handler completes, the outer handler goes on where it was")
def test_outer_continues(guest: Guest, expect: Expect, normal_event: EventInfo, critical_event: EventInfo) -> None:
    after = [*status_steps(expect, normal_event, "STATUS in the outer handler after the nested one"), Call(Fn.VERSION)]
    entries = _nested(guest, expect, normal_event, critical_event, after)
    outer = entries[0]
    expect(u64(outer.results[-1]), guest.sdei.version().x[0], "VERSION in the outer handler after the nested one")
    if len(after) == 2:
        expect(outer.results[-2], 0b111, "STATUS in the outer handler after the nested one")
    check_status(guest, expect, critical_event, 0b011, "critical event no longer running")


# ---------------------------------------------------------------- the PE mask


@pytest.mark.fresh_target  # TF-A loses event 0 for good after a masked trigger
@spec("DEN0054C 5.1.12", "PEs start masked: an event raised before PE_UNMASK waits for it")
def test_initially_masked(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    expect(guest.sdei.register(private_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER")
    expect(guest.sdei.enable(private_event.number).ret, sdei.SUCCESS, "EVENT_ENABLE")
    unchecked = Known("delivery_ignores_mask_enable", 1)
    expect(len(guest.trigger(private_event).deliveries), 0, "entries while masked", unchecked)
    delivered = guest.sdei.pe_unmask().deliveries
    expect(
        len(delivered),
        1,
        "entries at PE_UNMASK",
        Known("masked_injection_dropped", 0),
        Known("tfa_masked_trigger_lost", 0),
        Known("delivery_ignores_mask_enable", 0),
    )


@pytest.mark.fresh_target
@spec("DEN0054C 5.1.12, 5.1.13", "an event raised after PE_MASK stays pending and is dispatched at PE_UNMASK")
def test_mask_pending_unmask(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    arm(guest, expect, private_event)
    expect(guest.sdei.pe_mask().ret, 1, "PE_MASK", Known("pe_mask_returns_zero", 0))
    unchecked = Known("delivery_ignores_mask_enable", 1)
    expect(len(guest.trigger(private_event).deliveries), 0, "entries while masked", unchecked)
    delivered = guest.sdei.pe_unmask().deliveries
    expect(
        [d.event for d in delivered],
        [private_event.number],
        "entries at PE_UNMASK",
        Known("masked_injection_dropped", []),
        Known("tfa_masked_trigger_lost", []),
        Known("delivery_ignores_mask_enable", []),
    )


@spec("DEN0054C 5.1.12", "PE_MASK returns 1 when it masked the PE")
def test_pe_mask_returns_one(guest: Guest, expect: Expect) -> None:
    expect(guest.sdei.pe_unmask().ret, 0, "PE_UNMASK")
    expect(guest.sdei.pe_mask().ret, 1, "PE_MASK", Known("pe_mask_returns_zero", 0))


@spec("DEN0054C 5.1.12", "PE_MASK on a masked PE returns 0 (it must always succeed)")
def test_pe_mask_already_masked(guest: Guest, expect: Expect) -> None:
    expect(guest.sdei.pe_mask().ret, 0, "PE_MASK at power-on", Known("pe_mask_state_denied", sdei.DENIED))


@spec("DEN0054C 5.1.13", "PE_UNMASK succeeds whatever the mask state")
def test_pe_unmask_twice(guest: Guest, expect: Expect) -> None:
    expect(guest.sdei.pe_unmask().ret, 0, "first PE_UNMASK")
    expect(guest.sdei.pe_unmask().ret, 0, "second PE_UNMASK", Known("pe_mask_state_denied", sdei.DENIED))


@spec("DEN0054C 5.1.12", "masking one PE does not hold back events on another")
def test_mask_is_per_pe(multi_pe: Guest, expect: Expect, private_event: EventInfo) -> None:
    guest = multi_pe
    guest.select_pe(1)
    arm(guest, expect, private_event)
    guest.select_pe(0)
    result = guest.trigger(private_event, pe=1)
    expect([(d.event, d.pe) for d in result.deliveries], [(private_event.number, 1)], "entries on PE 1")


# ---------------------------------------------------------------- routing


def _shared_on(
    guest: Guest, expect: Expect, ev: EventInfo, unmasked: list[int], flags: int = Routing.RM_ANY, affinity: int = 0
) -> None:
    expect(guest.sdei.register(ev.number, arg=ARG, flags=flags, affinity=affinity).ret, sdei.SUCCESS, "REGISTER")
    expect(guest.sdei.enable(ev.number).ret, sdei.SUCCESS, "EVENT_ENABLE")
    for pe in unmasked:
        guest.select_pe(pe)
        expect(guest.sdei.pe_unmask().ret, 0, f"PE_UNMASK on PE {pe}")
    guest.select_pe(0)


@spec("DEN0054C 5.1.2", "a shared event registered RM_PE is dispatched on the PE its affinity names")
def test_rm_pe_affinity(multi_pe: Guest, expect: Expect, shared_event: EventInfo) -> None:
    guest, target = multi_pe, multi_pe.info.pes - 1
    _shared_on(guest, expect, shared_event, list(range(guest.info.pes)), Routing.RM_PE, guest.info.mpidrs[target])
    pes = [d.pe for d in guest.trigger(shared_event, pe=0).deliveries]
    expect(pes, [target], "PE that ran the handler", Known("shared_routing_ignored", [0]))


@spec("DEN0054C 5.1.11", "after ROUTING_SET RM_PE the shared event is dispatched on the new target PE")
def test_routing_set_moves(multi_pe: Guest, expect: Expect, shared_event: EventInfo) -> None:
    guest, target = multi_pe, 1
    expect(guest.sdei.register(shared_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER")
    r = guest.sdei.routing_set(shared_event.number, Routing.RM_PE, guest.info.mpidrs[target])
    expect(r.ret, sdei.SUCCESS, "ROUTING_SET")
    expect(guest.sdei.enable(shared_event.number).ret, sdei.SUCCESS, "EVENT_ENABLE")
    for pe in range(guest.info.pes):
        guest.select_pe(pe)
        guest.sdei.pe_unmask()
    guest.select_pe(0)
    pes = [d.pe for d in guest.trigger(shared_event, pe=0).deliveries]
    expect(pes, [target], "PE that ran the handler", Known("shared_routing_ignored", [0]))


@spec(
    "DEN0054C 5.1.12; TF-A sdei_intr_mgmt.c handle_masked_trigger()",
    "an RM_ANY shared event goes to an unmasked PE when its PE is masked",
)
def test_rm_any_unmasked_pe(multi_pe: Guest, expect: Expect, shared_event: EventInfo) -> None:
    guest = multi_pe
    _shared_on(guest, expect, shared_event, [1])
    pes = [d.pe for d in guest.trigger(shared_event, pe=0).deliveries]
    expect(
        pes, [1], "PE that ran the handler", Known("masked_injection_dropped", []), Known("shared_routing_ignored", [0])
    )


@spec(
    "DEN0054C 5.1.12, 5.1.13; TF-A handle_masked_trigger()",
    "an RM_PE shared event whose PE is masked stays pending until that PE unmasks",
)
def test_rm_pe_masked_target(multi_pe: Guest, expect: Expect, shared_event: EventInfo) -> None:
    guest = multi_pe
    _shared_on(guest, expect, shared_event, [0], Routing.RM_PE, guest.info.mpidrs[1])
    expect(
        len(guest.trigger(shared_event, pe=0).deliveries),
        0,
        "entries while PE 1 is masked",
        Known("shared_routing_ignored", 1),
    )
    guest.select_pe(1)
    pes = [d.pe for d in guest.sdei.pe_unmask().deliveries]
    expect(pes, [1], "entries at PE 1's PE_UNMASK", Known("shared_routing_ignored", []))


@spec(
    "DEN0054C 5.1.2; docs/reference/sdei-calls.md",
    "a private event is registered per PE: another PE's registration is separate",
)
def test_private_registration_per_pe(multi_pe: Guest, expect: Expect, private_event: EventInfo) -> None:
    guest = multi_pe
    guest.select_pe(1)
    expect(guest.sdei.register(private_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER on PE 1")
    guest.select_pe(0)
    check_status(guest, expect, private_event, 0, "STATUS on PE 0")
    expect(guest.sdei.register(private_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER on PE 0")
    expect(guest.sdei.unregister(private_event.number).ret, sdei.SUCCESS, "EVENT_UNREGISTER on PE 0")
    guest.select_pe(1)
    check_status(guest, expect, private_event, 0b001, "STATUS on PE 1 after PE 0 unregistered")


@spec(
    "DEN0054C 5.1.2; docs/reference/sdei-calls.md",
    "a private event raised on a PE where it is not registered is not dispatched there",
)
def test_private_not_registered_here(multi_pe: Guest, expect: Expect, private_event: EventInfo) -> None:
    guest = multi_pe
    arm(guest, expect, private_event)
    guest.select_pe(1)
    guest.sdei.pe_unmask()
    guest.select_pe(0)
    # SET_VEVENT queues it there all the same, and v4 enters PE 1's (absent) handler at 0.
    unchecked = Known("delivery_ignores_mask_enable", WEDGED)
    r = expect.survives(lambda: guest.trigger(private_event, pe=1), "trigger on PE 1", unchecked)
    expect(len(r.deliveries), 0, "entries on PE 1")


@spec("DEN0054C 5.1.9", "a private event's running bit is per PE: another PE's handler does not set it")
def test_status_running_per_pe(
    multi_pe: Guest, expect: Expect, critical_event: EventInfo, normal_event: EventInfo
) -> None:
    guest = multi_pe
    guest.require("in-handler-inject", "PE 1's event is raised while PE 0's handler runs")
    status = status_steps(expect, critical_event, "STATUS of the critical event on PE 1")
    if not status:
        return  # the one check here would wedge the target: recorded as known
    guest.select_pe(1)
    expect(guest.sdei.register(critical_event.number, arg=ARG).ret, sdei.SUCCESS, "REGISTER critical on PE 1")
    expect(guest.sdei.enable(critical_event.number).ret, sdei.SUCCESS, "ENABLE critical on PE 1")
    _arm_second(guest, expect, normal_event, Handler(status))
    expect(guest.sdei.pe_unmask().ret, sdei.SUCCESS, "PE_UNMASK on PE 1")
    guest.select_pe(0)
    arm(guest, expect, critical_event, Handler([guest.trigger_steps(normal_event, pe=1)]))
    entries = guest.trigger(critical_event).deliveries
    on_pe1 = [d for d in entries if d.pe == 1]
    if not expect(len(on_pe1), 1, "entries on PE 1"):
        expect.stop("PE 1's handler did not run")
    expect(on_pe1[0].results[0], 0b011, "STATUS of the critical event on PE 1 while PE 0 runs its handler")
