"""Parameter checks and error paths of the SDEI calls, and VERSION / GET_INFO facts.

DEN0054C chapter 5, the sections cited per case (docs/reference/sdei-calls.md).
State-dependent errors are in test_state_table.py; these are the ones a bad argument
causes.
"""

from __future__ import annotations

import pytest

from apflab.abi import sdei
from apflab.abi.aarch64 import MPIDR_AFFINITY_MASK
from apflab.abi.sdei import EventType, Fn, Info, Priority, Routing
from apflab.abi.smccc import to_s64
from apflab.testing import Call, EventInfo, Expect, Guest, Handler, Known, not_applicable, spec
from testcases.sdei.helpers import ARG, STATUS_WEDGES, arm

INVALID, DENIED = sdei.INVALID_PARAMETERS, sdei.DENIED
UNKNOWN_EVENT = 0x10000  # Arm's SDEI ACS uses this as an event no platform defines


@spec("DEN0054C 5.1.1", "VERSION: bit 63 is zero and the major version is 1")
def test_version_major(guest: Guest, expect: Expect) -> None:
    value = guest.sdei.version().x[0]
    major, _minor, _ = sdei.version_fields(value)
    expect(value >> 63, 0, "bit 63")
    expect(major, 1, "major version")


@spec("DEN0054C 5.1.1", "VERSION's minor version is 0 (SDEI 1.0) or 1 (SDEI 1.1)")
def test_version_minor(guest: Guest, expect: Expect) -> None:
    _, minor, _ = sdei.version_fields(guest.sdei.version().x[0])
    expect(minor in (0, 1), True, f"minor version {minor}")


@spec(
    "DEN0054C 5.1 (every ID is 0xC400_00xx); DEN0028", "there are no SMC32 SDEI IDs: 0x840000xx answers NOT_SUPPORTED"
)
@pytest.mark.parametrize("fn", [Fn.VERSION, Fn.EVENT_STATUS, Fn.PE_UNMASK], ids=lambda f: f.name)
def test_smc32_alias(guest: Guest, expect: Expect, fn: Fn) -> None:
    alias = fn & ~(1 << 30)
    expect(guest.call(alias).ret, sdei.NOT_SUPPORTED, f"function {alias:#x}")


@spec("DEN0054C 5.1 (TF-A SMC_UNK)", "an unallocated ID in the SDEI range answers NOT_SUPPORTED")
@pytest.mark.parametrize("fid", [0xC4000033, 0xC400003F])
def test_unallocated_sdei_fid(guest: Guest, expect: Expect, fid: int) -> None:
    expect(guest.call(fid).ret, sdei.NOT_SUPPORTED, f"function {fid:#x}")


# --------------------------------------------------------------- per-call errors

UNKNOWN_EVENT_CALLS = [
    ("5.1.2", Fn.EVENT_REGISTER, lambda g: (UNKNOWN_EVENT, g.info.entry_point, ARG, 0, 0)),
    ("5.1.3", Fn.EVENT_ENABLE, lambda g: (UNKNOWN_EVENT,)),
    ("5.1.4", Fn.EVENT_DISABLE, lambda g: (UNKNOWN_EVENT,)),
    ("5.1.8", Fn.EVENT_UNREGISTER, lambda g: (UNKNOWN_EVENT,)),
    ("5.1.9", Fn.EVENT_STATUS, lambda g: (UNKNOWN_EVENT,)),
    ("5.1.10", Fn.EVENT_GET_INFO, lambda g: (UNKNOWN_EVENT, Info.EV_TYPE)),
    ("5.1.11", Fn.EVENT_ROUTING_SET, lambda g: (UNKNOWN_EVENT, Routing.RM_ANY, 0)),
]


@pytest.mark.parametrize(("section", "fn", "args"), UNKNOWN_EVENT_CALLS, ids=[c[1].name for c in UNKNOWN_EVENT_CALLS])
@spec("DEN0054C 5.1.2-5.1.11", "every event call with an unknown event number is INVALID_PARAMETERS (ACS 0x10000)")
def test_unknown_event(guest: Guest, expect: Expect, section: str, fn: Fn, args) -> None:
    expect(guest.call(fn, *args(guest)).ret, INVALID, f"{fn.name}(0x10000) [DEN0054C {section}]")


@spec("DEN0054C 5.1.2", "EVENT_REGISTER with entry point 0 is INVALID_PARAMETERS")
def test_register_ep_zero(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    r = guest.sdei.register(private_event.number, ep=0, arg=ARG)
    expect(r.ret, INVALID, "EVENT_REGISTER(ep=0)", Known("register_ep_unchecked", sdei.SUCCESS))


@spec("DEN0054C 5.1.2", "EVENT_REGISTER with reserved flag bits set is INVALID_PARAMETERS")
@pytest.mark.parametrize("flags", [0x4, 0x8000_0000, 1 << 63], ids=["bit2", "bit31", "bit63"])
def test_register_reserved_flags(guest: Guest, expect: Expect, shared_event: EventInfo, flags: int) -> None:
    expect(guest.sdei.register(shared_event.number, arg=ARG, flags=flags).ret, INVALID, f"flags {flags:#x}")


@spec("DEN0054C 5.1.2, 5.1.17", "relative_mode (flags bit 1) is INVALID_PARAMETERS when FEATURES says unsupported")
def test_register_relative_mode(guest: Guest, expect: Expect, shared_event: EventInfo) -> None:
    supported = guest.sdei.features(sdei.Feature.RELATIVE_MODE).ret == 1
    if supported:
        not_applicable(guest, "the target supports relative_mode (FEATURES says 1)")
    r = guest.sdei.register(shared_event.number, arg=ARG, flags=sdei.REGISTER_FLAG_RELATIVE)
    expect(r.ret, INVALID, "EVENT_REGISTER with relative_mode")


@spec("DEN0054C 5.1.2", "EVENT_REGISTER RM_PE with an affinity that names no PE is INVALID_PARAMETERS")
def test_register_bad_affinity(guest: Guest, expect: Expect, shared_event: EventInfo) -> None:
    bad = 0x8000_00FE
    r = guest.sdei.register(shared_event.number, arg=ARG, flags=Routing.RM_PE, affinity=bad)
    expect(r.ret, INVALID, "EVENT_REGISTER(RM_PE, no such PE)", Known("register_affinity_unchecked", sdei.SUCCESS))


@spec("DEN0054C 5.1.11", "EVENT_ROUTING_SET with a mode other than RM_ANY/RM_PE is INVALID_PARAMETERS")
def test_routing_set_bad_mode(guest: Guest, expect: Expect, shared_event: EventInfo) -> None:
    expect(guest.sdei.register(shared_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER")
    expect(guest.sdei.routing_set(shared_event.number, 2, 0).ret, INVALID, "ROUTING_SET(mode 2)")


@spec("DEN0054C 5.1.11", "EVENT_ROUTING_SET of a private event is INVALID_PARAMETERS")
def test_routing_set_private(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    expect(guest.sdei.register(private_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER")
    r = guest.sdei.routing_set(private_event.number, Routing.RM_PE, guest.info.mpidrs[0])
    expect(r.ret, INVALID, "ROUTING_SET of a private event")


@spec("DEN0054C 5.1.11", "EVENT_ROUTING_SET RM_PE with an affinity that names no PE is INVALID_PARAMETERS")
def test_routing_set_bad_affinity(guest: Guest, expect: Expect, shared_event: EventInfo) -> None:
    expect(guest.sdei.register(shared_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER")
    r = guest.sdei.routing_set(shared_event.number, Routing.RM_PE, 0x8000_00FE)
    expect(r.ret, INVALID, "ROUTING_SET", Known("routing_set_affinity_unchecked", sdei.SUCCESS))


@spec("DEN0054C 5.1.11, 5.1.10", "ROUTING_SET RM_PE is reported by GET_INFO ROUTING_MODE and ROUTING_AFF")
def test_routing_set_reported(guest: Guest, expect: Expect, shared_event: EventInfo) -> None:
    target = guest.info.mpidrs[-1]
    expect(guest.sdei.register(shared_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER")
    expect(guest.sdei.routing_set(shared_event.number, Routing.RM_PE, target).ret, sdei.SUCCESS, "ROUTING_SET")
    expect(guest.sdei.get_info(shared_event.number, Info.EV_ROUTING_MODE).ret, Routing.RM_PE, "ROUTING_MODE")
    aff = guest.sdei.get_info(shared_event.number, Info.EV_ROUTING_AFF).ret
    expect(aff & 0xFF00FFFFFF, target & 0xFF00FFFFFF, "ROUTING_AFF")


@spec("DEN0054C 5.1.11, 5.1.2, 5.1.10", "ROUTING_AFF reads back in one form, whether REGISTER or ROUTING_SET set it")
def test_routing_aff_one_form(guest: Guest, expect: Expect, shared_event: EventInfo) -> None:
    mpidr = guest.info.mpidrs[0]  # carries MPIDR's RES1 bit 31, which is not affinity
    ev = shared_event.number
    r = guest.sdei.register(ev, arg=ARG, flags=Routing.RM_PE, affinity=mpidr)
    expect(r.ret, sdei.SUCCESS, "EVENT_REGISTER(RM_PE)")
    after_register = guest.sdei.get_info(ev, Info.EV_ROUTING_AFF).ret
    expect(guest.sdei.routing_set(ev, Routing.RM_PE, mpidr).ret, sdei.SUCCESS, "ROUTING_SET(RM_PE)")
    after_routing_set = guest.sdei.get_info(ev, Info.EV_ROUTING_AFF).ret
    expect(after_register, after_routing_set, "ROUTING_AFF after REGISTER vs after ROUTING_SET")
    expect(after_register & MPIDR_AFFINITY_MASK, mpidr & MPIDR_AFFINITY_MASK, "ROUTING_AFF's affinity fields")


@spec("DEN0054C 5.1.5", "EVENT_CONTEXT with a register index of 18 or more is INVALID_PARAMETERS")
@pytest.mark.parametrize("index", [18, 19, 0xFFFF_FFFF_FFFF_FFFF], ids=["18", "19", "all-ones"])
def test_context_bad_index(guest: Guest, expect: Expect, private_event: EventInfo, index: int) -> None:
    arm(guest, expect, private_event, Handler([Call(Fn.EVENT_CONTEXT, index)]))
    entries = guest.trigger(private_event).deliveries
    expect(len(entries), 1, "handler entries")
    known = [Known("context_index_18_accepted", to_s64(entries[0].interrupted_pc))] if index == 18 else []
    expect(entries[0].results[0], INVALID, f"EVENT_CONTEXT({index})", *known)


@spec("DEN0054C 5.1.6", "EVENT_COMPLETE with no handler running writes DENIED into x0")
def test_complete_outside_handler(guest: Guest, expect: Expect) -> None:
    r = guest.sdei.complete()
    expect(r.ret, DENIED, "EVENT_COMPLETE", Known("complete_without_dispatch_silent", Fn.EVENT_COMPLETE.value))


@spec("DEN0054C 5.1.7", "EVENT_COMPLETE_AND_RESUME with no handler running is DENIED")
def test_complete_and_resume_outside_handler(guest: Guest, expect: Expect) -> None:
    r = guest.sdei.complete_and_resume(guest.info.resume_point)
    expect(
        r.ret,
        DENIED,
        "EVENT_COMPLETE_AND_RESUME",
        Known("complete_without_dispatch_silent", Fn.EVENT_COMPLETE_AND_RESUME.value),
    )


@spec("DEN0054C 5.1.9", "EVENT_STATUS of a known, never registered event is 0")
def test_status_initial(guest: Guest, expect: Expect, shared_event: EventInfo) -> None:
    expect(guest.sdei.status(shared_event.number).ret, 0, "EVENT_STATUS")


@pytest.mark.fresh_target  # a v4 host oopses here and hangs every later SDEI call
@spec("DEN0054C 5.1.9", "EVENT_STATUS of a registered, disabled event is 0b001 (registered)")
def test_status_registered(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    expect(guest.sdei.register(private_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER")
    value = expect.survives(lambda: guest.sdei.status(private_event.number).ret, "EVENT_STATUS", STATUS_WEDGES)
    expect(value, 0b001, "EVENT_STATUS of the registered event")


@spec("DEN0054C 5.1.9", "EVENT_STATUS of an event number the target does not have is INVALID_PARAMETERS")
def test_status_unknown_nearby(guest: Guest, expect: Expect) -> None:
    numbers = {e.number for e in guest.info.events}
    unknown = max(numbers) + 0x1000  # next to the target's own numbering, so well formed there
    while unknown in numbers:
        unknown += 1
    r = guest.sdei.status(unknown)
    expect(r.ret, INVALID, f"EVENT_STATUS({unknown:#x})", Known("status_unknown_event_zero", 0))


# ------------------------------------------------------------------- GET_INFO


@spec("DEN0054C 5.1.10", "GET_INFO with an unknown info type is INVALID_PARAMETERS")
def test_get_info_unknown_info(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    expect(guest.sdei.get_info(private_event.number, 5).ret, INVALID, "GET_INFO(info 5)")


@spec("DEN0054C 5.1.10", "GET_INFO TYPE and PRIORITY match the event's declared type and priority")
def test_get_info_type_priority(guest: Guest, expect: Expect) -> None:
    for ev in guest.info.find_events():
        expect(guest.sdei.get_info(ev.number, Info.EV_TYPE).ret, int(ev.type), f"EV_TYPE of {ev.number:#x}")
        expect(guest.sdei.get_info(ev.number, Info.EV_PRIORITY).ret, int(ev.priority), f"EV_PRIORITY {ev.number:#x}")


EVENT_0_FACTS = [
    (Info.EV_TYPE, EventType.PRIVATE, "event 0 is private"),
    (Info.EV_SIGNALED, 0, "event 0 can be signalled: EV_SIGNALED reads 0 (0 = can be signalled)"),
    (Info.EV_PRIORITY, Priority.NORMAL, "event 0 has normal priority"),
]


@spec("DEN0054C 5.1.10.2, 5.1.16", "event 0 is the standard event: private, signalable, normal")
@pytest.mark.parametrize(("info", "value", "claim"), EVENT_0_FACTS, ids=[f[0].name for f in EVENT_0_FACTS])
def test_event_0_info(guest: Guest, expect: Expect, info: Info, value: int, claim: str) -> None:
    expect(guest.sdei.get_info(sdei.EVENT_0, info).ret, int(value), claim, Known("no_event_0", INVALID))


@spec("DEN0054C 5.1.10.2", "an event other than 0 cannot be signalled: EV_SIGNALED reads 1")
def test_get_info_signaled_other(guest: Guest, expect: Expect, shared_event: EventInfo) -> None:
    expect(guest.sdei.get_info(shared_event.number, Info.EV_SIGNALED).ret, 1, "EV_SIGNALED")


@spec("DEN0054C 5.1.10", "GET_INFO ROUTING_MODE / ROUTING_AFF of a private event is INVALID_PARAMETERS")
@pytest.mark.parametrize("info", [Info.EV_ROUTING_MODE, Info.EV_ROUTING_AFF], ids=lambda i: i.name)
def test_get_info_routing_private(guest: Guest, expect: Expect, private_event: EventInfo, info: Info) -> None:
    expect(guest.sdei.get_info(private_event.number, info).ret, INVALID, info.name)


@spec("DEN0054C 5.1.10 (TF-A)", "GET_INFO ROUTING_MODE of an unregistered shared event is DENIED")
def test_get_info_routing_unregistered(guest: Guest, expect: Expect, shared_event: EventInfo) -> None:
    r = guest.sdei.get_info(shared_event.number, Info.EV_ROUTING_MODE)
    expect(r.ret, DENIED, "ROUTING_MODE", Known("get_info_routing_unregistered_defaults", Routing.RM_ANY))


@spec("DEN0054C 5.1.2, 5.1.10", "a shared event registered RM_PE reports ROUTING_MODE RM_PE and its affinity")
def test_get_info_routing_rm_pe(guest: Guest, expect: Expect, shared_event: EventInfo) -> None:
    mpidr = guest.info.mpidrs[0]
    r = guest.sdei.register(shared_event.number, arg=ARG, flags=Routing.RM_PE, affinity=mpidr)
    expect(r.ret, sdei.SUCCESS, "EVENT_REGISTER(RM_PE)")
    mode = guest.sdei.get_info(shared_event.number, Info.EV_ROUTING_MODE).ret
    expect(mode, Routing.RM_PE, "ROUTING_MODE", Known("register_route_mode_from_affinity", mpidr & 0xFF))
    aff = guest.sdei.get_info(shared_event.number, Info.EV_ROUTING_AFF).ret
    expect(aff & 0xFF00FFFFFF, mpidr & 0xFF00FFFFFF, "ROUTING_AFF")


@spec("DEN0054C 5.1.10", "GET_INFO ROUTING_AFF of an RM_ANY shared event is INVALID_PARAMETERS")
def test_get_info_aff_rm_any(guest: Guest, expect: Expect, shared_event: EventInfo) -> None:
    expect(guest.sdei.register(shared_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER(RM_ANY)")
    r = guest.sdei.get_info(shared_event.number, Info.EV_ROUTING_AFF)
    expect(r.ret, INVALID, "ROUTING_AFF", Known("get_info_aff_any_mode", 0))
