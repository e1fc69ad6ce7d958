"""A trigger is not lost while its event is registered but disabled, nor while the PE is masked.

DEN0054C 5.1.3.1 (EVENT_ENABLE): "Any event that triggers before the enable and after the
register will stay pending and only be delivered to the client when the event is
enabled"; 5.1.4.1 (EVENT_DISABLE): a trigger after the disable stays pending and is passed
to the client when the event is enabled again; 5.1.12 and 5.1.13: while the PE is masked
it stays pending until PE_UNMASK (docs/reference/sdei-dispatch.md). Each case runs for
every way a target raises an event: EVENT_SIGNAL of event 0, the host's injection, the
VMM's queueing (SET_VEVENT), a platform PPI or SPI, and a PPI or SPI bound with
INTERRUPT_BIND; a target without that way SKIPs the case with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from apflab.abi import sdei
from apflab.testing import WEDGED, CallResult, EventInfo, Expect, Guest, Known, not_applicable, spec
from testcases.sdei.helpers import ARG
from testcases.sdei.test_bind import LAST_PPI, free_ppis, free_spi, require_bind_slots

KINDS = ["signal", "inject", "vevent", "ppi", "spi", "bound-ppi", "bound-spi"]
#: The triggers that may wedge a target or lose its event for good run in a fresh one:
#: EVENT_SIGNAL (TF-A) and the host's INJECT_EVENT (v4).
FRESH = ("signal", "inject")
KIND_PARAMS = [pytest.param(k, marks=[pytest.mark.fresh_target] if k in FRESH else []) for k in KINDS]

#: What the trigger itself answers: SUCCESS for EVENT_SIGNAL, status 0 from the host.
ACCEPTED = 0


@dataclass
class Source:
    """One way to raise one event on PE 0 of a target."""

    event: EventInfo
    fire: Callable[[], CallResult]
    #: Deviations that predict the trigger is lost (the entries at ENABLE/PE_UNMASK are none).
    lost: tuple[Known, ...] = ()
    #: Deviations that predict a status other than ACCEPTED from the trigger itself.
    refused: tuple[Known, ...] = ()
    #: Deviations that predict the target wedges on the trigger, or when the event it left
    #: pending is enabled while the PE is masked.
    wedges: tuple[Known, ...] = ()


def _event(guest: Guest, what: str, match: Callable[[EventInfo], bool]) -> EventInfo:
    for ev in guest.info.events:
        if match(ev):
            return ev
    not_applicable(guest, f"its catalogue has no {what}")


def source(guest: Guest, expect: Expect, kind: str) -> Source:
    """The event and trigger of ``kind`` on this target, or Unsupported (a SKIP) with the reason."""
    pe0 = guest.info.mpidrs[0]
    if kind == "signal":
        ev = _event(guest, "event 0", lambda e: e.number == sdei.EVENT_0 and e.signalable)
        return Source(
            ev,
            lambda: guest.sdei.signal(sdei.EVENT_0, pe0),
            lost=(Known("tfa_masked_trigger_lost", []),),
            wedges=(Known("tfa_signal_disabled_asserts", WEDGED),),
        )
    if kind == "inject":
        guest.require("inject", "the host injects the event")
        ev = _event(guest, "private event", lambda e: not e.shared and not e.dynamic)
        dropped = Known("masked_injection_dropped", [])
        return Source(
            ev,
            lambda: guest.inject(ev.number, 0),
            lost=(dropped,),
            refused=(Known("masked_injection_dropped", -1, certain=True),),
            wedges=(Known("inject_event_deadlocks", WEDGED),),
        )
    if kind == "vevent":
        guest.require("sdei-vmm", "the VMM queues the event")
        ev = _event(guest, "private event", lambda e: not e.shared and not e.dynamic)
        return Source(ev, lambda: guest.set_vevent(0, ev.number), lost=(Known("delivery_ignores_mask_enable", []),))
    guest.require("irq", "the event's interrupt is raised from the host")
    if kind in ("ppi", "spi"):
        want_ppi = kind == "ppi"
        ev = _event(
            guest,
            f"event on a {kind.upper()}",
            lambda e: e.intid is not None and not e.dynamic and (e.intid <= LAST_PPI) == want_ppi and e.intid > 15,
        )
        intid = int(ev.intid)  # type: ignore[arg-type]
        return Source(ev, lambda: guest.raise_irq(intid, 0), wedges=_shared_wedges(ev))
    require_bind_slots(guest)
    intid = free_ppis(guest)[0] if kind == "bound-ppi" else free_spi(guest)
    number = guest.sdei.bind(intid).ret
    if not expect(number >= 0, True, f"INTERRUPT_BIND({intid})", Known("bind_release_not_supported", False)):
        expect.stop("nothing bound to trigger")
    ev = _event(guest, f"dynamic event {number:#x}", lambda e: e.number == number)
    return Source(ev, lambda: guest.raise_irq(intid, 0), wedges=_shared_wedges(ev))


def _shared_wedges(ev: EventInfo) -> tuple[Known, ...]:
    """A shared event registered RM_ANY (as these cases do) may wedge a target whose GIC
    gives the SPI back to the masked PE at once (TF-A on QEMU)."""
    return (Known("tfa_qemu_rm_any_masked_storm", WEDGED),) if ev.shared else ()


def _fire(expect: Expect, src: Source, when: str) -> CallResult:
    """Raise the event; check the trigger itself was accepted and entered no handler."""
    r = expect.survives(src.fire, f"trigger {when}", *src.wedges)
    expect(r.ret, ACCEPTED, f"the trigger {when}", *src.refused)
    entered = [d.event for d in r.deliveries]
    expect(entered, [], f"entries at the trigger {when}", Known("delivery_ignores_mask_enable", [src.event.number]))
    return r


def _delivered(expect: Expect, src: Source, r: CallResult, when: str) -> None:
    seen = [(d.event, d.arg) for d in r.deliveries]
    expect(seen, [(src.event.number, ARG)], f"entries at {when}", *src.lost, Known("delivery_ignores_mask_enable", []))


def _register(guest: Guest, expect: Expect, ev: EventInfo) -> None:
    if not expect(guest.sdei.register(ev.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER"):
        expect.stop("the event is not registered")


def _enable(guest: Guest, expect: Expect, ev: EventInfo, *wedges: Known) -> CallResult:
    """EVENT_ENABLE, checked; what it caused (the entries of what was pending)."""
    r = expect.survives(lambda: guest.sdei.enable(ev.number), "EVENT_ENABLE", *wedges)
    expect(r.ret, sdei.SUCCESS, "EVENT_ENABLE", Known("set_vevent_refcount_underflow", sdei.PENDING))
    return r


@spec(
    "DEN0054C 5.1.3.1", "a trigger after EVENT_REGISTER, before EVENT_ENABLE, stays pending and is delivered at ENABLE"
)
@pytest.mark.parametrize("kind", KIND_PARAMS)
def test_trigger_before_enable(guest: Guest, expect: Expect, kind: str) -> None:
    src = source(guest, expect, kind)
    _register(guest, expect, src.event)
    expect(guest.sdei.pe_unmask().ret, sdei.SUCCESS, "PE_UNMASK")
    _fire(expect, src, "while registered, not enabled")
    _delivered(expect, src, _enable(guest, expect, src.event), "EVENT_ENABLE")


@spec(
    "DEN0054C 5.1.4.1", "a trigger after EVENT_DISABLE stays pending and is delivered when the event is enabled again"
)
@pytest.mark.parametrize("kind", KIND_PARAMS)
def test_trigger_after_disable(guest: Guest, expect: Expect, kind: str) -> None:
    src = source(guest, expect, kind)
    _register(guest, expect, src.event)
    expect(guest.sdei.enable(src.event.number).ret, sdei.SUCCESS, "EVENT_ENABLE")
    expect(guest.sdei.pe_unmask().ret, sdei.SUCCESS, "PE_UNMASK")
    expect(guest.sdei.disable(src.event.number).ret, sdei.SUCCESS, "EVENT_DISABLE")
    _fire(expect, src, "while disabled")
    _delivered(expect, src, _enable(guest, expect, src.event), "EVENT_ENABLE again")


@spec(
    "DEN0054C 5.1.3.1, 5.1.12, 5.1.13",
    "a trigger while registered and the PE masked: still pending at EVENT_ENABLE, delivered at PE_UNMASK",
)
@pytest.mark.parametrize("kind", KIND_PARAMS)
def test_trigger_masked_until_unmask(guest: Guest, expect: Expect, kind: str) -> None:
    src = source(guest, expect, kind)
    _register(guest, expect, src.event)  # every PE starts masked (DEN0054C 5.1.12)
    _fire(expect, src, "while registered and masked")
    r = _enable(guest, expect, src.event, *src.wedges)
    expect([d.event for d in r.deliveries], [], "entries at EVENT_ENABLE while masked")
    _delivered(expect, src, guest.sdei.pe_unmask(), "PE_UNMASK")


@spec("DEN0054C 5.1.3.1, 5.1.12", "an enabled event triggered while the PE is masked is delivered at PE_UNMASK")
@pytest.mark.parametrize("kind", KIND_PARAMS)
def test_trigger_enabled_masked(guest: Guest, expect: Expect, kind: str) -> None:
    src = source(guest, expect, kind)
    _register(guest, expect, src.event)
    expect(guest.sdei.enable(src.event.number).ret, sdei.SUCCESS, "EVENT_ENABLE")
    _fire(expect, src, "while masked")
    _delivered(expect, src, guest.sdei.pe_unmask(), "PE_UNMASK")
