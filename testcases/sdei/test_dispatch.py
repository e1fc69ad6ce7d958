"""Handler entry, EVENT_CONTEXT, COMPLETE and COMPLETE_AND_RESUME.

DEN0054C 5.1.2, 5.1.5-5.1.7 (docs/reference/sdei-dispatch.md): at entry x0..x3 = event,
argument, interrupted PC, interrupted PSTATE; the handler runs at the client EL with the
PSTATE an exception entry gives (Arm ARM AArch64.TakeException(): SP_ELx, D, A, I, F
masked, UAO cleared, DIT kept); x0-x17, PC and PSTATE of the interrupted context are
saved and restored by COMPLETE, and the client's own ELR/SPSR are left alone;
COMPLETE_AND_RESUME continues at the resume address as if a synchronous exception were
taken there at the interrupted PC.
"""

from __future__ import annotations

import pytest

from apflab.abi import sdei
from apflab.abi.aarch64 import PSTATE_DIT, PSTATE_SSBS, PSTATE_UAO, make_pstate, pstate_daif, pstate_el, pstate_sp
from apflab.abi.sdei import Fn
from apflab.testing import Call, EventInfo, Expect, Guest, Handler, Known, spec
from testcases.sdei.helpers import (
    ARG,
    PATTERN,
    RESUME_FAULT,
    arm,
    check_status,
    context_calls,
    resume_outcome,
    status_steps,
    trigger_patterned,
    u64,
)

RESUME_IGNORED = "complete_and_resume_ignores_address"


def _one_entry(guest: Guest, expect: Expect, ev: EventInfo, handler: Handler) -> tuple:
    arm(guest, expect, ev, handler)
    result = trigger_patterned(guest, ev)
    if not expect(len(result.deliveries), 1, "handler entries") and not result.deliveries:
        expect.stop("no handler entry to look at")
    return result, result.deliveries[0]


@spec("DEN0054C 5.1.2", "at handler entry x0 is the event number and x1 the registration argument")
def test_entry_x0_x1(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    _, d = _one_entry(guest, expect, private_event, Handler())
    expect(d.event, private_event.number, "x0 at entry")
    expect(d.arg, ARG, "x1 at entry")


@spec(
    "DEN0054C handler dispatch (TF-A sdei_intr_mgmt.c setup_ns_dispatch)",
    "at handler entry x2/x3 are the interrupted PC and PSTATE",
)
def test_entry_x2_x3(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    _, d = _one_entry(guest, expect, private_event, Handler())
    after = guest.regs()  # COMPLETE resumed the interrupted context: this is where it was
    expect(d.interrupted_pc, after.pc, "x2 = interrupted PC")
    expect(d.interrupted_pstate, after.pstate, "x3 = interrupted PSTATE")


@spec("DEN0054C handler dispatch; Arm ARM AArch64.TakeException()", "the handler runs at the client's exception level")
def test_handler_el(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    _, d = _one_entry(guest, expect, private_event, Handler())
    expect(pstate_el(d.pstate), guest.info.el, "PSTATE.EL in the handler")


@spec("DEN0054C handler dispatch; TF-A tests test_sdei_pstate", "the handler runs with SP_ELx selected (SPSel = 1)")
def test_handler_spsel(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    _, d = _one_entry(guest, expect, private_event, Handler())
    expect(pstate_sp(d.pstate), 1, "PSTATE.SP in the handler")


@spec("DEN0054C handler dispatch; TF-A tests test_sdei_pstate", "the handler runs with D, A, I and F all masked")
def test_handler_daif(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    _, d = _one_entry(guest, expect, private_event, Handler())
    expect(pstate_daif(d.pstate), 0xF, "PSTATE.DAIF in the handler")


@spec("DEN0054C 5.1.5", "EVENT_CONTEXT(i) returns the interrupted context's x<i>, for i = 0..17")
@pytest.mark.parametrize("index", range(sdei.CONTEXT_REGISTERS), ids=[f"x{i}" for i in range(18)])
def test_context_register(guest: Guest, expect: Expect, private_event: EventInfo, index: int) -> None:
    _, d = _one_entry(guest, expect, private_event, Handler([Call(Fn.EVENT_CONTEXT, index)]))
    expect(u64(d.results[0]), guest.regs().x[index], f"EVENT_CONTEXT({index})")


@spec("DEN0054C 5.1.5", "EVENT_CONTEXT sees the registers the patterned call left, not the handler's")
def test_context_is_interrupted_not_handler(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    _, d = _one_entry(guest, expect, private_event, Handler(context_calls()))
    seen = tuple(u64(r) for r in d.results)
    expect(seen[4:], tuple(PATTERN[3:]), "x4..x17 at the interruption held the pattern")


@spec("DEN0054C 5.1.6", "COMPLETE restores x0-x17 of the interrupted context")
def test_complete_restores_gprs(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    _, d = _one_entry(guest, expect, private_event, Handler(context_calls()))
    after = guest.regs()
    for i in range(sdei.CONTEXT_REGISTERS):
        expect(after.x[i], u64(d.results[i]), f"x{i} after COMPLETE")


@spec("DEN0054C 5.1.6", "COMPLETE resumes at the interrupted PC with the interrupted PSTATE")
def test_complete_restores_pc_pstate(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    _, d = _one_entry(guest, expect, private_event, Handler())
    after = guest.regs()
    expect((after.pc, after.pstate), (d.interrupted_pc, d.interrupted_pstate), "PC, PSTATE after COMPLETE")


@spec("DEN0054C 5.1.6", "COMPLETE with status EV_FAILED completes the handler as well")
def test_complete_failed_status(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    _, d = _one_entry(guest, expect, private_event, Handler(status=sdei.EV_FAILED))
    expect(d.fin, None, "COMPLETE(EV_FAILED) returned")
    check_status(guest, expect, private_event, 0b011, "STATUS after: registered, enabled, not running")


@spec("DEN0054C 5.1.9", "EVENT_STATUS inside the handler has the running bit set")
def test_status_running(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    steps = status_steps(expect, private_event, "STATUS in the handler")
    if not steps:
        return  # the only check here would wedge the target: recorded as known
    _, d = _one_entry(guest, expect, private_event, Handler(steps))
    expect(d.results[0], 0b111, "STATUS in the handler")


#: PSTATE bits a guest can set itself whose value at an exception entry the Arm ARM fixes:
#: UAO is cleared, SSBS takes SCTLR_ELx.DSSBS (0 in the agent), DIT is kept.
PLANTED = PSTATE_UAO | PSTATE_SSBS | PSTATE_DIT


@spec(
    "DEN0054C handler dispatch (PSTATE as AArch64.TakeException(), TF-A 37596fcb)",
    "the handler's PSTATE is an exception entry's: UAO cleared, SSBS from SCTLR.DSSBS, DIT kept",
)
def test_handler_pstate_exception_entry(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    guest.require("context", "the interrupted context needs PSTATE bits of its own")
    guest.set_context(PLANTED, 0, 0)
    _, d = _one_entry(guest, expect, private_event, Handler())
    expect(d.interrupted_pstate & PLANTED, PLANTED, "x3 carries the interrupted PSTATE's UAO, SSBS, DIT")
    p = d.pstate
    seen = (p & PSTATE_UAO != 0, p & PSTATE_SSBS != 0, p & PSTATE_DIT != 0)
    expect(
        seen, (False, False, True), "(UAO, SSBS, DIT) in the handler", Known("handler_pstate_inherited", (True,) * 3)
    )


#: ELR and SPSR values the interrupted code keeps in its own registers (an EL0 PSTATE with
#: flags set; never returned to).
ELR_MARK, SPSR_MARK = 0x4008_0F00, make_pstate(0, sp=0, nzcv=0b1010)


@spec(
    "DEN0054C 5.1.6; handler dispatch",
    "dispatch and COMPLETE leave the client's own ELR_ELc and SPSR_ELc as the interrupted code had them",
)
def test_complete_keeps_elr_spsr(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    guest.require("context", "ELR and SPSR are set in the agent's main context")
    guest.set_context(0, ELR_MARK, SPSR_MARK)
    _one_entry(guest, expect, private_event, Handler())
    after = guest.regs()
    expect(after.elr, ELR_MARK, "ELR_ELc after COMPLETE")
    expect(after.spsr, SPSR_MARK, "SPSR_ELc after COMPLETE", Known("spsr_clobbered", 0))


def _resumed(guest: Guest, expect: Expect, ev: EventInfo):
    _, d = _one_entry(guest, expect, ev, Handler(finish="resume"))
    expect(d.fin, None, "COMPLETE_AND_RESUME returned an error")
    expect(d.landed is not None, True, "execution reached a landing point after COMPLETE_AND_RESUME")
    return d


@spec("DEN0054C 5.1.7", "COMPLETE_AND_RESUME continues at the resume address")
def test_resume_pc(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    d = _resumed(guest, expect, private_event)
    expect(
        d.landed.pc,
        guest.info.resume_point,
        "PC after COMPLETE_AND_RESUME",
        Known(RESUME_IGNORED, guest.info.vbar + 0x280),
    )


@spec("DEN0054C 5.1.7", "after COMPLETE_AND_RESUME, ELR_ELc holds the interrupted PC")
def test_resume_elr(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    d = _resumed(guest, expect, private_event)
    expect(d.landed.elr, d.interrupted_pc, "ELR at the resume point")


@spec("DEN0054C 5.1.7", "after COMPLETE_AND_RESUME, SPSR_ELc holds the interrupted PSTATE")
def test_resume_spsr(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    d = _resumed(guest, expect, private_event)
    expect(d.landed.spsr, d.interrupted_pstate, "SPSR at the resume point")


@spec("DEN0054C 5.1.7", "the resume point runs at the client EL, SP_ELx, with D, A, I, F masked")
def test_resume_pstate(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    d = _resumed(guest, expect, private_event)
    p = d.landed.pstate
    expect((pstate_el(p), pstate_sp(p), pstate_daif(p)), (guest.info.el, 1, 0xF), "(EL, SPSel, DAIF) at resume")


@spec("DEN0054C 5.1.7", "COMPLETE_AND_RESUME restores x0-x17 of the interrupted context")
def test_resume_restores_gprs(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    _, d = _one_entry(guest, expect, private_event, Handler(context_calls(), finish="resume"))
    after = guest.regs()
    for i in range(sdei.CONTEXT_REGISTERS):
        expect(after.x[i], u64(d.results[i]), f"x{i} after COMPLETE_AND_RESUME")


@pytest.mark.fresh_target  # a dispatcher that ERETs to the address faults the agent
@spec("DEN0054C 5.1.7", "a resume address that is not 4-byte aligned is INVALID_PARAMETERS")
def test_resume_misaligned(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    arm(guest, expect, private_event, Handler(finish="resume", resume_at=guest.info.resume_point + 2))
    expect(
        resume_outcome(guest, expect, lambda: trigger_patterned(guest, private_event)),
        sdei.INVALID_PARAMETERS,
        "COMPLETE_AND_RESUME(misaligned)",
        Known(RESUME_IGNORED, None),
        Known("tfa_resume_address_unchecked", RESUME_FAULT),
    )


@spec("DEN0054C 5.1.2", "each registration's argument reaches its own handler in x1")
def test_distinct_arguments(guest: Guest, expect: Expect, private_event: EventInfo, shared_event: EventInfo) -> None:
    arm(guest, expect, private_event, arg=0x1111)
    expect(guest.sdei.register(shared_event.number, arg=0x2222).ret, sdei.SUCCESS, "EVENT_REGISTER shared")
    expect(guest.sdei.enable(shared_event.number).ret, sdei.SUCCESS, "EVENT_ENABLE shared")
    seen = [d.arg for d in guest.trigger(private_event).deliveries]
    seen += [d.arg for d in guest.trigger(shared_event).deliveries]
    expect(seen, [0x1111, 0x2222], "x1 of the two handlers")
