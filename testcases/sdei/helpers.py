"""Small steps the SDEI suites repeat: arm an event, read STATUS, patterned registers.

Helpers drive the Guest contract only; they hold no expectations of their own.
"""

from __future__ import annotations

from collections.abc import Callable

from apflab.abi import sdei
from apflab.abi.sdei import Fn
from apflab.abi.smccc import MASK64
from apflab.testing import WEDGED, Call, CallResult, EventInfo, Expect, Guest, Handler, Known, TargetError

SUCCESS = sdei.SUCCESS
ARG = 0xA5A5_0001


def u64(value: int) -> int:
    return value & MASK64


def arm(
    guest: Guest,
    expect: Expect,
    ev: EventInfo,
    handler: Handler | None = None,
    arg: int = ARG,
    flags: int = sdei.Routing.RM_ANY,
    affinity: int = 0,
) -> None:
    """REGISTER, ENABLE and PE_UNMASK on the selected PE, each checked for SUCCESS."""
    if handler is not None:
        guest.set_handler(arg, handler)
    expect(guest.sdei.register(ev.number, arg=arg, flags=flags, affinity=affinity).ret, SUCCESS, "EVENT_REGISTER")
    expect(guest.sdei.enable(ev.number).ret, SUCCESS, "EVENT_ENABLE")
    expect(guest.sdei.pe_unmask().ret, SUCCESS, "PE_UNMASK")


#: EVENT_STATUS of a registered event wedges a v4 host (docs/reference/kvm-v4.md).
STATUS_WEDGES = Known("status_registered_wedges", WEDGED)


def status(guest: Guest, ev: EventInfo) -> int:
    """EVENT_STATUS of an event nobody registered (safe on every target)."""
    return guest.sdei.status(ev.number).ret


def check_status(guest: Guest, expect: Expect, ev: EventInfo, want: int, what: str, *known: Known) -> None:
    """EVENT_STATUS of ``ev``, which may be registered, must be ``want``.

    Where reading it would wedge the target (a deviation its profile carries), the check is
    recorded as known and not made, as kvm-unit-tests skips what its errata list says would
    crash the host; test_calls.py's test_status_registered makes that call itself.
    """
    if not expect.wedges(what, STATUS_WEDGES):
        expect(guest.sdei.status(ev.number).ret, want, what, *known)


def status_steps(expect: Expect, ev: EventInfo, what: str) -> list[Call]:
    """A handler step reading EVENT_STATUS of ``ev``, or none where that would wedge the target."""
    return [] if expect.wedges(what, STATUS_WEDGES) else [Call(Fn.EVENT_STATUS, ev.number)]


#: x1..x17 for a patterned call: distinct, recognisable, 64-bit values.
PATTERN = tuple(0x1000_0000_0000_0000 * (i % 8) + 0x0101_0101 * i for i in range(1, 18))


def trigger_patterned(guest: Guest, ev: EventInfo, pe: int = 0) -> CallResult:
    """Trigger ``ev`` at a point where x0..x17 hold known values.

    With EVENT_SIGNAL the event is taken on return from the call whose x3..x17 carry
    PATTERN; with host injection the agent idles with the registers of a VERSION call
    that carried PATTERN in x1..x17.
    """
    step = guest.trigger_steps(ev, pe)
    if getattr(step, "fid", None) == Fn.EVENT_SIGNAL:
        return guest.call(Fn.EVENT_SIGNAL, sdei.EVENT_0, guest.info.mpidrs[pe], *PATTERN[2:])
    guest.call(Fn.VERSION, *PATTERN)
    return guest.run_step(step)


def context_calls() -> list[Call]:
    """A handler script reading EVENT_CONTEXT 0..17."""
    return [Call(Fn.EVENT_CONTEXT, i) for i in range(sdei.CONTEXT_REGISTERS)]


#: What a client sees when a dispatcher ERETs to a bad resume address: the agent reports the fault.
RESUME_FAULT = "client exception at the resume address"


def resume_outcome(guest: Guest, expect: Expect, result: Callable[[], CallResult]) -> object:
    """x0 of a COMPLETE_AND_RESUME the handler made (its ``fin``), or RESUME_FAULT when the
    dispatcher resumed at the address and the client faulted there."""
    try:
        entries = result().deliveries
    except TargetError as exc:
        if "exception" not in str(exc):
            raise
        return RESUME_FAULT
    if not expect(len(entries), 1, "handler entries") and not entries:
        expect.stop("no handler entry to look at")
    return entries[0].fin
