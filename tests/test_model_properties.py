"""Random SMCCC call streams on random PEs: the model never raises and its invariants hold.

Invariants (DEN0054A 6.1, DEN0054C 5.1; docs/reference/sdei-dispatch.md): every event is always in one of the six
handler states; a running event always has a saved context on its PE; nesting is never
deeper than 2 and only critical over normal.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apflab.abi.sdei import Fn
from apflab.guest import Call, Handler, Inject, TargetError
from apflab.model.agent import HANDLER_ENTRY
from apflab.model.guest import ModelGuest
from apflab.model.state_table import State
from apflab.profiles import PROFILES

PES = 3
u64 = st.integers(0, (1 << 64) - 1)


def event_numbers(profile: str) -> list[int]:
    guest = ModelGuest("m", PROFILES[profile], pes=PES)
    return [e.number for e in guest.facts.events] + [0x10000]


def calls(profile: str):
    ev = st.sampled_from(event_numbers(profile))
    small = st.integers(0, 40)
    arg = st.one_of(ev, small, u64)
    fids = st.sampled_from([int(f) for f in Fn] + [0x80000000, 0x84000000, 0x86000000, 0xC4000033, 0x1234])
    apf_enable = st.builds(lambda pe: (pe, 0x86000002, [4, 0x40100001 + 0x100 * pe, 0]), st.integers(0, PES - 1))
    apf_sub = st.builds(lambda pe, sub: (pe, 0x86000002, [sub]), st.integers(0, PES - 1), st.integers(0, 7))
    any_call = st.tuples(st.integers(0, PES - 1), fids, st.lists(arg, max_size=5))
    # REGISTER names the agent's handler (or 0): a handler elsewhere would crash any real agent too.
    register = st.builds(
        lambda pe, e, ep, a, flags, aff: (pe, int(Fn.EVENT_REGISTER), [e, ep, a, flags, aff]),
        st.integers(0, PES - 1),
        ev,
        st.sampled_from([HANDLER_ENTRY, 0]),
        st.integers(0, 3),
        st.integers(0, 3),
        st.sampled_from([0, 0x80000001, 0x80000002, 0xFF]),
    )
    enable = st.builds(lambda pe, e: (pe, int(Fn.EVENT_ENABLE), [e]), st.integers(0, PES - 1), ev)
    unmask = st.builds(lambda pe: (pe, int(Fn.PE_UNMASK), []), st.integers(0, PES - 1))
    return st.one_of(any_call, register, enable, unmask, apf_enable, apf_sub)


def handler_for(profile: str):
    ev = st.sampled_from(event_numbers(profile)[:-1])
    step = st.one_of(
        st.builds(lambda f, a: Call(f, *a), st.sampled_from([int(f) for f in Fn]), st.lists(ev, max_size=3)),
        st.builds(Inject, st.integers(0, PES - 1), ev),
    )
    return st.builds(
        lambda s, r: Handler(s, "resume" if r else "complete", once=True), st.lists(step, max_size=4), st.booleans()
    )


def check(guest: ModelGuest) -> None:
    machine = guest.agent.machine
    machine.sdei.check_invariants()
    if machine.apf is not None:  # APF (APF v4 07/15): bounded slots, the PPI only with a page-ready
        for v in machine.apf.vcpus:
            assert len(v.slots) <= 64
            assert not v.irq_level or v.pageready_pending
            if v.enabled:
                assert machine.memory.read32(v.gpa) in (0, 1, 2)
    for (_pe, _), reg in machine.sdei.private.items():
        assert isinstance(reg.state, State)
    for _pe, stack in enumerate(machine.sdei.stacks):
        assert len(stack) <= 2
        for d in stack:
            assert d.registration.state.running


def run_stream(profile: str, stream, handlers, injects) -> None:
    """Under ``spec`` nothing may raise; under ``kvm-v4`` the target may wedge where a
    deviation says the series' code does (EVENT_STATUS, INJECT_EVENT, a handler at entry
    point 0): it must then stay dead until a reset, and come back from it."""
    guest = ModelGuest("m", PROFILES[profile], pes=PES)
    try:
        _run(guest, stream, handlers, injects)
    except TargetError:
        assert profile == "kvm-v4" and guest.dead, f"{profile}: an operation failed without a modelled wedge"
        with pytest.raises(TargetError, match="wedged earlier"):
            guest.call(Fn.VERSION)
        guest.reset()
        assert guest.call(Fn.VERSION).ret == 1 << 48
        check(guest)


def _run(guest: ModelGuest, stream, handlers, injects) -> None:
    for arg, h in handlers:
        guest.set_handler(arg, h)
    apf_on = guest.agent.machine.apf is not None
    if apf_on:  # the VMM's part, so that the streams can enable APF and fault
        for pe in range(PES):
            guest.apf_command(pe, 4, 0x40400001)
            guest.apf_command(pe, 5, 23)
    for i, (pe, fid, args) in enumerate(stream):
        guest.select_pe(pe)
        guest.call(fid, *args)
        check(guest)
        if i < len(injects):
            inj_pe, ev = injects[i]
            guest.inject(ev, inj_pe)
            check(guest)
        if apf_on:
            guest.fault(pe, 0x50000 + i % 70, i % 3 == 0, (i * 37) % 3000)
            guest.tick((i * 131) % 2000)
            check(guest)


def make_test(profile: str):
    evs = event_numbers(profile)[:-1]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(calls(profile), max_size=40),
        st.lists(st.tuples(st.integers(0, 3), handler_for(profile)), max_size=3),
        st.lists(st.tuples(st.integers(0, PES - 1), st.sampled_from(evs)), max_size=10),
    )
    def test(stream, handlers, injects) -> None:
        run_stream(profile, stream, handlers, injects)

    return test


test_spec_random_streams = make_test("spec")
test_kvm_v4_random_streams = make_test("kvm-v4")
