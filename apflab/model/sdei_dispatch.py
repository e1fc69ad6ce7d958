"""Triggering and dispatch of SDEI events, and their completion (TF-A's ``sdei_intr_mgmt.c``).

A trigger makes an event *pending* for a PE (private) or for the system (shared). A PE
*takes* a pending event at its next instruction boundary when it is unmasked and the
priority rule allows (abi.md 2.4: critical may preempt normal, nothing preempts
critical, depth at most 2); the event is then dispatched if its state allows DISPATCH,
and dropped otherwise. A trigger for an event that is not enabled is ignored (DEN0054C
5.1.2.1 leaves this IMPLEMENTATION DEFINED). Dispatch saves x0-x17, PC and PSTATE and
enters the handler (abi.md 2.6); COMPLETE and COMPLETE_AND_RESUME restore them (2.7).
Where the profile is ``kvm-v4`` the named deviations of :mod:`apflab.profiles` switch
the behaviour to that of the v4 series (abi.md 3.5).
"""

from __future__ import annotations

from apflab.abi import sdei
from apflab.abi.sdei import Routing
from apflab.model.pe import (
    PE,
    VECTOR_IRQ_CURRENT_SP0,
    VECTOR_IRQ_CURRENT_SPX,
    VECTOR_IRQ_LOWER_A64,
    exception_entry_pstate,
    pstate_el,
    pstate_sp,
)
from apflab.model.platform import EventDef
from apflab.model.sdei_events import MAX_NESTING, SAVED_GPRS, Dispatch, Registration, Result, SdeiEvents
from apflab.model.state_table import Action, State, transition


class SdeiDispatch(SdeiEvents):
    """The dispatcher's asynchronous half: triggers, taking events, handler entry and exit."""

    def event_for_intid(self, intid: int) -> EventDef | None:
        for ev in self.platform.events:
            if not ev.dynamic and ev.intid == intid:
                return ev
        for b in self.bindings.values():
            if b.intid == intid:
                return b.event
        return None

    def trigger(self, ev: EventDef, pe: int) -> int:
        """Raise ``ev`` as seen from ``pe``. Returns 0, or v4's injection error (abi.md 3.5)."""
        reg = self.registration(pe, ev)
        if self.profile.name == "kvm-v4":
            if not (reg.state.registered and reg.state.enabled) and self.dev("masked_injection_dropped"):
                return -1  # -EPERM: not registered and enabled at this index
            if self.masked[pe] and self.dev("masked_injection_dropped"):
                return -1  # -EPERM: vCPU masked
        elif not reg.state.enabled:
            return 0  # ignored: the event is not enabled
        if ev.shared and not self.dev("shared_routing_ignored"):
            if (ev.number, pe) not in self.shared_pending:
                self.shared_pending.append((ev.number, pe))
        elif ev.number not in self.pending[pe] or self.profile.name == "kvm-v4":
            self.pending[pe].append(ev.number)
        return 0

    def _can_take(self, pe: int, ev: EventDef) -> bool:
        stack = self.stacks[pe]
        if len(stack) >= MAX_NESTING:
            return False
        if any(d.event.critical for d in stack):
            return False  # nothing preempts a critical handler
        return not stack or ev.critical  # a normal event preempts nothing

    def _shared_target(self, ev: EventDef, reg: Registration, pe: int, origin: int) -> bool:
        if reg.state.running:
            return False
        if reg.routing == Routing.RM_PE and reg.state.registered:
            return self._valid_mpidr(reg.affinity) == pe
        return True

    def next_dispatch(self, pe: int) -> tuple[EventDef, Registration] | None:
        """Take the highest-priority pending event ``pe`` may take now, if any."""
        if not self.pending[pe] and not self.shared_pending:
            return None  # the common case: nothing to take
        kvm = self.profile.name == "kvm-v4"
        if self.masked[pe] and not kvm:
            return None
        candidates: list[tuple[EventDef, int | None]] = []
        for num in self.pending[pe]:
            candidates.append((self.events[num], None))
        for num, origin in self.shared_pending:
            candidates.append((self.events[num], origin))
        # Critical first, then trigger order; for RM_ANY prefer the triggering PE.
        candidates.sort(key=lambda c: (not c[0].critical, c[1] is not None and c[1] != pe))
        for ev, origin in candidates:
            if not self._can_take(pe, ev):
                continue
            reg = self.registration(pe, ev)
            if origin is None:
                if reg.state.running and not kvm:
                    continue  # the same event's handler runs: stays pending
                self.pending[pe].remove(ev.number)
            else:
                if not self._shared_target(ev, reg, pe, origin):
                    continue
                self.shared_pending.remove((ev.number, origin))
            if kvm:
                return ev, reg  # v4 checks mask/enable only at injection (abi.md 3.5)
            if transition(reg.state, Action.DISPATCH) is None:
                continue  # dropped: no longer dispatchable
            return ev, reg
        return None

    def dispatch(self, pe: int, ev: EventDef, reg: Registration) -> None:
        """Enter the handler on ``pe`` (abi.md 2.6): save x0-x17/PC/PSTATE, set x0-x3."""
        cpu = self.pes[pe]
        self.stacks[pe].append(Dispatch(ev, reg, list(cpu.x[:SAVED_GPRS]), cpu.pc, cpu.pstate))
        new = transition(reg.state, Action.DISPATCH)
        reg.state = new if new is not None else State(reg.state.value | sdei.STATUS_RUNNING)
        if ev.shared:
            reg.running_pe = pe
        interrupted_pc, interrupted_pstate = cpu.pc, cpu.pstate
        cpu.x[:SAVED_GPRS] = [0] * SAVED_GPRS
        cpu.x[0], cpu.x[1], cpu.x[2], cpu.x[3] = ev.number, reg.arg, interrupted_pc, interrupted_pstate
        cpu.pstate = exception_entry_pstate(interrupted_pstate, cpu.client_el)
        cpu.pc = reg.ep
        if self.on_dispatch is not None:
            self.on_dispatch(pe, ev.number)

    # ------------------------------------------------------ completion

    def _finish(self, pe: int, resume: bool, address: int) -> Result:
        stack = self.stacks[pe]
        if not stack:
            if self.dev("complete_without_dispatch_silent"):
                return Result(None)
            return Result(sdei.DENIED)
        ignore_address = self.dev("complete_and_resume_ignores_address")
        if resume and not ignore_address and address & 3:
            # DEN0054C 5.1.7: INVALID_PARAMETERS if the resume address is not 4-byte aligned.
            return Result(sdei.INVALID_PARAMETERS)
        top = stack[-1]
        action = Action.COMPLETE_AND_RESUME if resume else Action.COMPLETE
        new = transition(top.registration.state, action)
        if new is None:  # cannot happen for a running handler; kept for the table's sake
            return Result(sdei.DENIED)
        stack.pop()
        reg = top.registration
        reg.state = new
        reg.running_pe = None
        if new is State.reg:  # unregister-pending completes: the registration is dropped
            reg.ep = reg.arg = 0
        cpu = self.pes[pe]
        cpu.x[:SAVED_GPRS] = list(top.regs)
        cpu.pc, cpu.pstate = top.pc, top.pstate
        if resume:
            if ignore_address:
                cpu.take_exception(self._irq_vector(cpu, top.pstate), top.pc, top.pstate)
            else:
                # "as if a synchronous exception were taken at the resumption point" (2.7).
                cpu.elr, cpu.spsr = top.pc, top.pstate
                cpu.pstate = exception_entry_pstate(top.pstate, cpu.client_el)
                cpu.pc = address
        return Result(None, redirected=True)

    @staticmethod
    def _irq_vector(cpu: PE, pstate: int) -> int:
        if pstate_el(pstate) == cpu.client_el:
            return VECTOR_IRQ_CURRENT_SPX if pstate_sp(pstate) else VECTOR_IRQ_CURRENT_SP0
        return VECTOR_IRQ_LOWER_A64

    # ------------------------------------------------------ v4 kernel-internal API

    def kvm_inject(self, number: int, pe: int, immediate: bool = False) -> int:
        """kvm_sdei_inject() (abi.md 3.5): 0, -EPERM (1), -EINVAL (22) or -ENOSPC (28)."""
        ev = self.events.get(number)
        if ev is None:
            return -22
        reg = self.registration(pe, ev)
        if not (reg.state.registered and reg.state.enabled) or self.masked[pe]:
            return -1
        if immediate and (self.pending[pe] or self.stacks[pe]):
            queued = [self.events[n] for n in self.pending[pe]] + [d.event for d in self.stacks[pe]]
            if (ev.critical and any(e.critical for e in queued)) or (not ev.critical and queued):
                return -28
        self.pending[pe].append(number)
        return 0

    def kvm_cancel(self, number: int, pe: int) -> int:
        """kvm_sdei_cancel(): take back a queued, undelivered instance (abi.md 3.5)."""
        if number in self.pending[pe]:
            self.pending[pe].remove(number)
            return 0
        if any(d.event.number == number for d in self.stacks[pe]):
            return -115  # -EINPROGRESS: it is the running event
        return -22
