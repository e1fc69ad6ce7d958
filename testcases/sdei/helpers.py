"""Small steps the SDEI suites repeat: arm an event, read STATUS, patterned registers.

Helpers drive the Guest contract only; they hold no expectations of their own.
"""

from __future__ import annotations

from apflab.abi import sdei
from apflab.abi.sdei import Fn
from apflab.abi.smccc import MASK64
from apflab.testing import Call, CallResult, EventInfo, Expect, Guest, Handler

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


def status(guest: Guest, ev: EventInfo) -> int:
    return guest.sdei.status(ev.number).ret


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
