"""INTERRUPT_BIND, INTERRUPT_RELEASE and FEATURES(BIND_SLOTS).

DEN0054C 5.1.14, 5.1.15, 5.1.17 (docs/reference/sdei-calls.md); TF-A sdei_main.c; Arm's
ACS test_017; the bind-exhaustion shape of tf-a-tests test_sdei_bind_failure.
"""

from __future__ import annotations

from apflab.abi import sdei
from apflab.abi.sdei import EventType, Feature, Info
from apflab.testing import Expect, Guest, Known, Unsupported, not_applicable, spec
from testcases.sdei.helpers import ARG, arm

NOT_SUPPORTED = Known("bind_release_not_supported", sdei.NOT_SUPPORTED)
FIRST_PPI, LAST_PPI, FIRST_SPI = 16, 31, 32


def _static_intids(guest: Guest) -> set[int]:
    return {e.intid for e in guest.info.events if e.intid is not None and not e.dynamic}


def free_ppis(guest: Guest) -> list[int]:
    # PPI 25..31 hold the architected timers, PMU and GIC maintenance interrupts.
    return [i for i in range(FIRST_PPI, 25) if i not in _static_intids(guest)]


def free_spi(guest: Guest) -> int:
    return next(i for i in range(FIRST_SPI + 16, FIRST_SPI + 96) if i not in _static_intids(guest))


def free_spis(guest: Guest, n: int) -> list[int]:
    return [i for i in range(FIRST_SPI + 16, FIRST_SPI + 96) if i not in _static_intids(guest)][:n]


def require_bind_slots(guest: Guest) -> None:
    """Skip when FEATURES says the target has no slot to bind into (an error answer goes on)."""
    value = guest.sdei.features(Feature.BIND_SLOTS).ret
    if value >= 0 and value & 0xFFFFFFFF == 0:
        raise Unsupported(f"target {guest.info.name} has no bind slots (FEATURES(BIND_SLOTS) = 0)")


def _slots(guest: Guest, expect: Expect) -> tuple[int, int]:
    value = guest.sdei.features(Feature.BIND_SLOTS).ret
    if not expect(value >= 0, True, f"FEATURES(BIND_SLOTS) = {value}", Known("signal_features_not_routed", False)):
        expect.stop("no slot count")
    return sdei.bind_slots_fields(value)


def _bind(guest: Guest, expect: Expect, intid: int, what: str = "INTERRUPT_BIND") -> int:
    """INTERRUPT_BIND of ``intid``: the event number; the case stops if there is none."""
    number = guest.sdei.bind(intid).ret
    if not expect(number >= 0, True, f"{what}({intid}) = {number}", Known("bind_release_not_supported", False)):
        expect.stop("nothing was bound")
    return number


@spec("DEN0054C 5.1.17", "FEATURES(BIND_SLOTS): bits 63:32 zero, at least 2 private and 2 shared slots (ACS)")
def test_features_bind_slots(guest: Guest, expect: Expect) -> None:
    value = guest.sdei.features(Feature.BIND_SLOTS).ret
    if not expect(value >= 0, True, f"FEATURES(BIND_SLOTS) = {value}", Known("signal_features_not_routed", False)):
        return
    expect(value >> 32, 0, "bits 63:32")
    private, shared = sdei.bind_slots_fields(value)
    no_slots = Known("tfa_qemu_no_bind_slots", False)
    expect(private >= 2, True, f"private slots = {private}", no_slots)
    expect(shared >= 2, True, f"shared slots = {shared}", no_slots)


@spec("DEN0054C 5.1.17", "FEATURES with an unknown feature number is INVALID_PARAMETERS (ACS: 0x10)")
def test_features_unknown(guest: Guest, expect: Expect) -> None:
    expect(
        guest.sdei.features(0x10).ret,
        sdei.INVALID_PARAMETERS,
        "FEATURES(0x10)",
        Known("signal_features_not_routed", sdei.NOT_SUPPORTED),
    )


@spec("DEN0054C 5.1.17", "FEATURES(RELATIVE_MODE) is 0 or 1 from SDEI 1.1 on, INVALID_PARAMETERS before")
def test_features_relative_mode(guest: Guest, expect: Expect) -> None:
    _, minor, _ = sdei.version_fields(guest.sdei.version().x[0])
    value = guest.sdei.features(Feature.RELATIVE_MODE).ret
    if minor >= 1:
        expect(value in (0, 1), True, f"FEATURES(RELATIVE_MODE) = {value}", Known("signal_features_not_routed", False))
    else:
        expect(
            value,
            sdei.INVALID_PARAMETERS,
            "FEATURES(RELATIVE_MODE) on SDEI 1.0",
            Known("signal_features_not_routed", sdei.NOT_SUPPORTED),
        )


@spec("DEN0054C 5.1.14", "INTERRUPT_BIND of an SGI is INVALID_PARAMETERS")
def test_bind_sgi(guest: Guest, expect: Expect) -> None:
    expect(guest.sdei.bind(8).ret, sdei.INVALID_PARAMETERS, "INTERRUPT_BIND(SGI 8)", NOT_SUPPORTED)


@spec("DEN0054C 5.1.14", "INTERRUPT_BIND of an interrupt already bound to a platform event is INVALID_PARAMETERS")
def test_bind_static(guest: Guest, expect: Expect) -> None:
    static = sorted(i for i in _static_intids(guest) if i >= FIRST_PPI)
    if not static:
        not_applicable(guest, "needs an event statically bound to a PPI or SPI")
    expect(guest.sdei.bind(static[0]).ret, sdei.INVALID_PARAMETERS, f"INTERRUPT_BIND({static[0]})", NOT_SUPPORTED)


@spec("DEN0054C 5.1.14", "a PPI binds to a private event and an SPI to a shared one")
def test_bind_types(guest: Guest, expect: Expect) -> None:
    require_bind_slots(guest)
    ppi_event = _bind(guest, expect, free_ppis(guest)[0], "INTERRUPT_BIND(PPI)")
    expect(guest.sdei.get_info(ppi_event, Info.EV_TYPE).ret, EventType.PRIVATE, "EV_TYPE of the PPI's event")
    spi_event = _bind(guest, expect, free_spi(guest), "INTERRUPT_BIND(SPI)")
    expect(guest.sdei.get_info(spi_event, Info.EV_TYPE).ret, EventType.SHARED, "EV_TYPE of the SPI's event")


@spec("DEN0054C 5.1.14 (TF-A sdei_interrupt_bind)", "binding an already bound interrupt returns the same event")
def test_bind_twice(guest: Guest, expect: Expect) -> None:
    require_bind_slots(guest)
    spi = free_spi(guest)
    first = _bind(guest, expect, spi)
    expect(guest.sdei.bind(spi).ret, first, "second INTERRUPT_BIND of the same interrupt")


@spec("DEN0054C 5.1.14, 5.1.17", "binding more PPIs than FEATURES' private slots is OUT_OF_RESOURCE")
def test_bind_exhaust_private(guest: Guest, expect: Expect) -> None:
    require_bind_slots(guest)
    private, _ = _slots(guest, expect)
    ppis = free_ppis(guest)
    if len(ppis) <= private:
        not_applicable(guest, f"needs {private + 1} free PPIs, has {len(ppis)}")
    for i in range(private):
        expect(guest.sdei.bind(ppis[i]).ret >= 0, True, f"INTERRUPT_BIND #{i + 1}")
    expect(guest.sdei.bind(ppis[private]).ret, sdei.OUT_OF_RESOURCE, f"INTERRUPT_BIND #{private + 1}")


@spec("DEN0054C 5.1.14, 5.1.17", "binding more SPIs than FEATURES' shared slots is OUT_OF_RESOURCE")
def test_bind_exhaust_shared(guest: Guest, expect: Expect) -> None:
    require_bind_slots(guest)
    _, shared = _slots(guest, expect)
    spis = free_spis(guest, shared + 1)
    for i in range(shared):
        expect(guest.sdei.bind(spis[i]).ret >= 0, True, f"INTERRUPT_BIND #{i + 1}")
    expect(guest.sdei.bind(spis[shared]).ret, sdei.OUT_OF_RESOURCE, f"INTERRUPT_BIND #{shared + 1}")


@spec("DEN0054C 5.1.14", "a bound event is dispatched when its interrupt fires")
def test_bound_event_dispatch(guest: Guest, expect: Expect) -> None:
    require_bind_slots(guest)
    guest.require("irq", "the bound interrupt is raised from the host side")
    spi = free_spi(guest)
    number = _bind(guest, expect, spi)
    ev = next(e for e in guest.info.events if e.number == number)
    arm(guest, expect, ev)
    result = guest.raise_irq(spi, 0)
    expect([(d.event, d.arg) for d in result.deliveries], [(number, ARG)], "handler entries")


@spec("DEN0054C 5.1.15", "INTERRUPT_RELEASE of a platform (non-dynamic) event is INVALID_PARAMETERS")
def test_release_static(guest: Guest, expect: Expect, shared_event) -> None:
    expect(guest.sdei.release(shared_event.number).ret, sdei.INVALID_PARAMETERS, "INTERRUPT_RELEASE", NOT_SUPPORTED)


@spec("DEN0054C 5.1.15", "INTERRUPT_RELEASE of a registered event is DENIED")
def test_release_registered(guest: Guest, expect: Expect) -> None:
    require_bind_slots(guest)
    number = _bind(guest, expect, free_spi(guest))
    expect(guest.sdei.register(number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER")
    expect(guest.sdei.release(number).ret, sdei.DENIED, "INTERRUPT_RELEASE while registered")


@spec("DEN0054C 5.1.2, 5.1.15", "after INTERRUPT_RELEASE the dynamic event can no longer be registered")
def test_release_then_register(guest: Guest, expect: Expect) -> None:
    require_bind_slots(guest)
    number = _bind(guest, expect, free_spi(guest))
    expect(guest.sdei.release(number).ret, sdei.SUCCESS, "INTERRUPT_RELEASE")
    expect(guest.sdei.register(number, arg=ARG).ret, sdei.DENIED, "EVENT_REGISTER of the released event")


@spec("DEN0054C 5.1.2 (TF-A)", "EVENT_REGISTER of a dynamic event that is not bound is DENIED")
def test_register_unbound_dynamic(guest: Guest, expect: Expect) -> None:
    dynamic = guest.info.find_events(dynamic=True)
    if not dynamic:
        not_applicable(guest, "needs dynamic (bindable) events")
    expect(guest.sdei.register(dynamic[0].number, arg=ARG).ret, sdei.DENIED, "EVENT_REGISTER")
