"""Every cell of the SDEI handler state machine: 6 states x 10 actions.

DEN0054A 6.1 / 6.1.2 as TF-A's sdei_state.c encodes it (docs/reference/sdei-states.md),
with the return codes TF-A's tests expect on top (tf-a-tests test_sdei_state): a denied
transition is DENIED, UNREGISTER of a running handler is PENDING. Each cell reaches its
state, performs the action and checks the call's result and the EVENT_STATUS after it.
A trigger in a registered state is not lost while the event is disabled (DEN0054C
5.1.3.1): the DISPATCH cells check that it is not entered, not that it is dropped.

The expectations below are transcribed from the spec table, independently of the
model's own copy (apflab/model/state_table.py).
"""

from __future__ import annotations

import pytest

from apflab.abi import sdei
from apflab.abi.sdei import Fn
from apflab.testing import WEDGED, Call, EventInfo, Expect, Guest, Handler, Known, spec
from testcases.sdei.helpers import ARG, arm, check_status, status_steps, u64

OK, DENIED, PENDING, INVALID = sdei.SUCCESS, sdei.DENIED, sdei.PENDING, sdei.INVALID_PARAMETERS
ST = {"reg": 0b000, "reG": 0b001, "rEG": 0b011, "Reg": 0b100, "ReG": 0b101, "REG": 0b111}

# state -> action -> (result of the call, STATUS afterwards). "run" = the call returns a
# value (CONTEXT); "entered"/"not entered" = whether DISPATCH enters the handler.
EXPECTED: dict[str, dict[str, tuple[object, str]]] = {
    "reg": {
        "REGISTER": (OK, "reG"),
        "RELEASE": (OK, "reg"),
        "ENABLE": (DENIED, "reg"),
        "DISABLE": (DENIED, "reg"),
        "UNREGISTER": (DENIED, "reg"),
        "ROUTING_SET": (DENIED, "reg"),
        "CONTEXT": (DENIED, "reg"),
        "COMPLETE": (DENIED, "reg"),
        "COMPLETE_AND_RESUME": (DENIED, "reg"),
        "DISPATCH": ("not entered", "reg"),
    },
    "reG": {
        "REGISTER": (DENIED, "reG"),
        "RELEASE": (DENIED, "reG"),
        "ENABLE": (OK, "rEG"),
        "DISABLE": (OK, "reG"),
        "UNREGISTER": (OK, "reg"),
        "ROUTING_SET": (OK, "reG"),
        "CONTEXT": (DENIED, "reG"),
        "COMPLETE": (DENIED, "reG"),
        "COMPLETE_AND_RESUME": (DENIED, "reG"),
        "DISPATCH": ("not entered", "reG"),
    },
    "rEG": {
        "REGISTER": (DENIED, "rEG"),
        "RELEASE": (DENIED, "rEG"),
        "ENABLE": (OK, "rEG"),
        "DISABLE": (OK, "reG"),
        "UNREGISTER": (OK, "reg"),
        "ROUTING_SET": (DENIED, "rEG"),
        "CONTEXT": (DENIED, "rEG"),
        "COMPLETE": (DENIED, "rEG"),
        "COMPLETE_AND_RESUME": (DENIED, "rEG"),
        "DISPATCH": ("entered", "REG"),
    },
    "ReG": {
        "REGISTER": (DENIED, "ReG"),
        "RELEASE": (DENIED, "ReG"),
        "ENABLE": (OK, "REG"),
        "DISABLE": (OK, "ReG"),
        "UNREGISTER": (PENDING, "Reg"),
        "ROUTING_SET": (DENIED, "ReG"),
        "CONTEXT": ("value", "ReG"),
        "COMPLETE": ("completes", "reG"),
        "COMPLETE_AND_RESUME": ("completes", "reG"),
        "DISPATCH": ("not nested", "ReG"),
    },
    "REG": {
        "REGISTER": (DENIED, "REG"),
        "RELEASE": (DENIED, "REG"),
        "ENABLE": (OK, "REG"),
        "DISABLE": (OK, "ReG"),
        "UNREGISTER": (PENDING, "Reg"),
        "ROUTING_SET": (DENIED, "REG"),
        "CONTEXT": ("value", "REG"),
        "COMPLETE": ("completes", "rEG"),
        "COMPLETE_AND_RESUME": ("completes", "rEG"),
        "DISPATCH": ("not nested", "REG"),
    },
    "Reg": {
        "REGISTER": (DENIED, "Reg"),
        "RELEASE": (DENIED, "Reg"),
        "ENABLE": (DENIED, "Reg"),
        "DISABLE": (DENIED, "Reg"),
        "UNREGISTER": (PENDING, "Reg"),
        "ROUTING_SET": (DENIED, "Reg"),
        "CONTEXT": ("value", "Reg"),
        "COMPLETE": ("completes", "reg"),
        "COMPLETE_AND_RESUME": ("completes", "reg"),
        "DISPATCH": ("not nested", "Reg"),
    },
}

STATES = list(EXPECTED)
RUNNING = {"ReG", "REG", "Reg"}
COMMON_ACTIONS = [
    "REGISTER",
    "ENABLE",
    "DISABLE",
    "UNREGISTER",
    "CONTEXT",
    "COMPLETE",
    "COMPLETE_AND_RESUME",
    "DISPATCH",
]

# What the KVM v4 series does differently in these cells (docs/reference/kvm-v4.md).
PENDING_RUNNING = Known("enable_disable_pending_while_running", PENDING)
UNREGISTERED = Known("unregistered_event_invalid", INVALID)
KNOWN_RESULT: dict[tuple[str, str], tuple[Known, ...]] = {
    ("reg", "ENABLE"): (UNREGISTERED,),
    ("reg", "DISABLE"): (UNREGISTERED,),
    ("reg", "UNREGISTER"): (UNREGISTERED,),
    ("reg", "ROUTING_SET"): (UNREGISTERED,),
    ("rEG", "ENABLE"): (Known("enable_when_enabled_denied", DENIED),),
    ("reG", "DISABLE"): (Known("disable_when_disabled_denied", DENIED),),
    ("ReG", "ENABLE"): (PENDING_RUNNING,),
    ("ReG", "DISABLE"): (PENDING_RUNNING, Known("disable_when_disabled_denied", DENIED)),
    ("REG", "ENABLE"): (PENDING_RUNNING, Known("enable_when_enabled_denied", DENIED)),
    ("REG", "DISABLE"): (PENDING_RUNNING,),
    # v4 keeps no unregister-pending state: with no reference held (an event SET_VEVENT queued),
    # UNREGISTER in the handler drops the registration at once, and the VM-wide event with it.
    ("Reg", "ENABLE"): (PENDING_RUNNING, UNREGISTERED),
    ("Reg", "DISABLE"): (PENDING_RUNNING, UNREGISTERED),
    ("Reg", "UNREGISTER"): (UNREGISTERED,),
    ("Reg", "ROUTING_SET"): (UNREGISTERED,),
    ("reg", "COMPLETE"): (Known("complete_without_dispatch_silent", Fn.EVENT_COMPLETE.value),),
    ("reG", "COMPLETE"): (Known("complete_without_dispatch_silent", Fn.EVENT_COMPLETE.value),),
    ("rEG", "COMPLETE"): (Known("complete_without_dispatch_silent", Fn.EVENT_COMPLETE.value),),
    ("reg", "COMPLETE_AND_RESUME"): (Known("complete_without_dispatch_silent", Fn.EVENT_COMPLETE_AND_RESUME.value),),
    ("reG", "COMPLETE_AND_RESUME"): (Known("complete_without_dispatch_silent", Fn.EVENT_COMPLETE_AND_RESUME.value),),
    ("rEG", "COMPLETE_AND_RESUME"): (Known("complete_without_dispatch_silent", Fn.EVENT_COMPLETE_AND_RESUME.value),),
}
# v4 records no unregister-pending state: the handler stays registered, while it runs (REG, ReG)
# and after it completes (rEG) (KVM SDEI v4 07/21, Eric Auger's review).
KNOWN_STATUS_UNREG = [Known("unregister_running_not_recorded", ST[s]) for s in ("REG", "ReG", "rEG")]


def _reach_setup_steps(state: str, ev: int) -> list[tuple[Call, int, str]]:
    """Calls a running handler makes first to reach ``state`` (with their expected results)."""
    if state == "ReG":
        return [(Call(Fn.EVENT_DISABLE, ev), OK, "EVENT_DISABLE in the handler")]
    if state == "Reg":
        return [(Call(Fn.EVENT_UNREGISTER, ev), PENDING, "EVENT_UNREGISTER in the handler")]
    return []


def _action_call(guest: Guest, action: str, ev: EventInfo) -> Call:
    mpidr = guest.info.mpidrs[0]
    return {
        "REGISTER": Call(Fn.EVENT_REGISTER, ev.number, guest.info.entry_point, ARG, 0, 0),
        "RELEASE": Call(Fn.INTERRUPT_RELEASE, ev.number),
        "ENABLE": Call(Fn.EVENT_ENABLE, ev.number),
        "DISABLE": Call(Fn.EVENT_DISABLE, ev.number),
        "UNREGISTER": Call(Fn.EVENT_UNREGISTER, ev.number),
        "ROUTING_SET": Call(Fn.EVENT_ROUTING_SET, ev.number, sdei.Routing.RM_PE, mpidr),
        "CONTEXT": Call(Fn.EVENT_CONTEXT, 0),
        "COMPLETE": Call(Fn.EVENT_COMPLETE, sdei.EV_HANDLED),
        "COMPLETE_AND_RESUME": Call(Fn.EVENT_COMPLETE_AND_RESUME, guest.info.resume_point),
    }[action]


def run_cell(guest: Guest, expect: Expect, ev: EventInfo, state: str, action: str) -> None:
    """Reach ``state``, make ``action``, check its result and the state after it."""
    if state in RUNNING:
        _run_cell_in_handler(guest, expect, ev, state, action)
    else:
        _run_cell_idle(guest, expect, ev, state, action)


def _run_cell_idle(guest: Guest, expect: Expect, ev: EventInfo, state: str, action: str) -> None:
    """Idle states: reached and acted on from the main context."""
    want, after = EXPECTED[state][action]
    if state != "reg":
        expect(guest.sdei.register(ev.number, arg=ARG).ret, OK, "EVENT_REGISTER")
    if state == "rEG":
        expect(guest.sdei.enable(ev.number).ret, OK, "EVENT_ENABLE")
    expect(guest.sdei.pe_unmask().ret, OK, "PE_UNMASK")
    if state == "reg":
        expect(guest.sdei.status(ev.number).ret, ST[state], f"STATUS in state {state}")  # nobody registered it
    else:
        check_status(guest, expect, ev, ST[state], f"STATUS in state {state}")
    if action == "DISPATCH":
        guest.set_handler(ARG, Handler(status_steps(expect, ev, "STATUS inside the handler")))
        result = expect.survives(
            lambda: guest.trigger(ev), f"trigger in state {state}", Known("tfa_signal_disabled_asserts", WEDGED)
        )
        entered = [d for d in result.deliveries if d.event == ev.number]
        unchecked = Known("delivery_ignores_mask_enable", 1)  # a disabled event is delivered all the same
        expect(len(entered), 1 if want == "entered" else 0, "handler entries", unchecked)
        if entered and entered[0].results:
            expect(entered[0].results, (ST["REG"],), "STATUS inside the handler")
        check_status(guest, expect, ev, ST["rEG"] if want == "entered" else ST[after], "STATUS afterwards")
        return
    call = _action_call(guest, action, ev)
    known = KNOWN_RESULT.get((state, action), ())
    expect(guest.call(call.fid, *call.args).ret, want, f"{action} in state {state}", *known)
    check_status(guest, expect, ev, ST[after], f"STATUS after {action}")


def _run_cell_in_handler(guest: Guest, expect: Expect, ev: EventInfo, state: str, action: str) -> None:
    """Running states: the handler reaches the state, makes the action, reads STATUS."""
    want, after = EXPECTED[state][action]
    steps = _reach_setup_steps(state, ev.number)
    calls = [c for c, _, _ in steps]
    finish: dict = {}
    if action == "DISPATCH":
        # Triggered from inside its own handler: pending until COMPLETE; run the script once.
        calls.append(guest.trigger_steps(ev))
        finish = {"once": True}
    elif action == "COMPLETE_AND_RESUME":
        finish = {"finish": "resume"}
    elif action != "COMPLETE":
        calls.append(_action_call(guest, action, ev))
    status_read = []
    if action not in ("COMPLETE", "COMPLETE_AND_RESUME"):
        status_read = status_steps(expect, ev, f"STATUS after {action}")
    arm(guest, expect, ev, Handler([*calls, *status_read], **finish))
    result = expect.survives(
        lambda: guest.trigger(ev), f"{action} in state {state}", Known("tfa_signal_disabled_asserts", WEDGED)
    )
    mine = [d for d in result.deliveries if d.event == ev.number]
    if not expect(len(mine) >= 1, True, "the handler ran"):
        expect.stop("no handler entry to look at")
    first = mine[0]
    setup_known = [Known("enable_disable_pending_while_running", PENDING)] if state == "ReG" else []
    for i, (_, code, what) in enumerate(steps):
        expect(first.results[i], code, what, *setup_known)
    n = len(steps)
    if action in ("COMPLETE", "COMPLETE_AND_RESUME"):
        expect(first.fin, None, f"{action} from the handler")
        status_known = KNOWN_STATUS_UNREG if state == "Reg" else []
        check_status(guest, expect, ev, ST[after], f"STATUS after {action}", *status_known)
        return
    status_known = KNOWN_STATUS_UNREG if action == "UNREGISTER" or state == "Reg" else []
    if action == "DISPATCH":
        expect(max(d.depth for d in result.deliveries), 1, "an event does not preempt its own handler")
    elif action == "CONTEXT":
        # COMPLETE restored the interrupted registers, so REGS now shows the x0 CONTEXT(0) read.
        expect(u64(first.results[n]), guest.regs().x[0], "EVENT_CONTEXT(0) = interrupted x0")
    else:
        known = KNOWN_RESULT.get((state, action), ())
        expect(first.results[n], want, f"{action} in state {state}", *known)
    if status_read:
        expect(first.results[n + 1], ST[after], f"STATUS after {action}", *status_known)


#: Cells that wedge TF-A (tfa_signal_disabled_asserts): each runs in a fresh target.
WEDGING = {("reG", "DISPATCH"), ("ReG", "DISPATCH")}
CELLS = [
    pytest.param(s, a, id=f"{s}-{a}", marks=[pytest.mark.fresh_target] if (s, a) in WEDGING else [])
    for s in STATES
    for a in COMMON_ACTIONS
]


@spec("DEN0054A 6.1.2 (TF-A sdei_state.c)", "handler state x action, private event")
@pytest.mark.parametrize(("state", "action"), CELLS)
def test_private_event(guest: Guest, expect: Expect, private_event: EventInfo, state: str, action: str) -> None:
    run_cell(guest, expect, private_event, state, action)


@spec("DEN0054A 6.1.2 (TF-A sdei_state.c)", "handler state x action, shared event")
@pytest.mark.parametrize(("state", "action"), CELLS)
def test_shared_event(guest: Guest, expect: Expect, shared_event: EventInfo, state: str, action: str) -> None:
    run_cell(guest, expect, shared_event, state, action)


@spec("DEN0054A 6.1.2 (TF-A sdei_state.c)", "ROUTING_SET is allowed only registered, disabled, not running")
@pytest.mark.parametrize("state", STATES)
def test_routing_set(guest: Guest, expect: Expect, shared_event: EventInfo, state: str) -> None:
    run_cell(guest, expect, shared_event, state, "ROUTING_SET")


def _bound_event(guest: Guest, expect: Expect) -> EventInfo:
    """Bind a free SPI to a dynamic shared event (DEN0054C 5.1.14)."""
    from testcases.sdei.test_bind import free_spi, require_bind_slots

    require_bind_slots(guest)
    number = guest.sdei.bind(free_spi(guest)).ret
    if not expect(number >= 0, True, f"INTERRUPT_BIND (got {number})", Known("bind_release_not_supported", False)):
        expect.stop("no bound event")
    for ev in guest.info.events:
        if ev.number == number:
            return EventInfo(ev.number, ev.type, ev.priority, ev.signalable, free_spi(guest), True)
    pytest.fail(f"INTERRUPT_BIND returned {number:#x}, not one of the target's dynamic events", pytrace=False)


@spec("DEN0054A 6.1.2 (TF-A sdei_state.c); DEN0054C 5.1.15", "INTERRUPT_RELEASE only when unregistered")
@pytest.mark.parametrize("state", STATES)
def test_release(guest: Guest, expect: Expect, state: str) -> None:
    guest.require("irq", "a bound event is raised through its interrupt")
    ev = _bound_event(guest, expect)
    run_cell(guest, expect, ev, state, "RELEASE")
