"""Triggering and dispatch of SDEI events, and their completion (TF-A's ``sdei_intr_mgmt.c``).

A trigger makes a registered event *pending* for a PE (private) or for the system
(shared), whether or not it is enabled: DEN0054C 5.1.3.1 and 5.1.4.1 keep a trigger that
comes while the event is registered but disabled pending until EVENT_ENABLE. A trigger for
an event that is not registered is ignored (5.1.2.1 leaves that choice to the
implementation). A PE *takes* a pending event at its next instruction boundary when it is
unmasked, the event is enabled and the priority rule allows (critical may preempt normal,
nothing preempts critical, depth at most 2). Dispatch saves x0-x17, PC and PSTATE and
enters the handler as an exception entry would; COMPLETE and COMPLETE_AND_RESUME restore
them (docs/reference/sdei-dispatch.md). A profile's named deviations switch the behaviour
to that of the v4 series (docs/reference/kvm-v4.md).
"""

from __future__ import annotations

from apflab.abi import sdei
from apflab.abi.aarch64 import DAIF_ALL, PSTATE_NRW, SPSR_DAIF_SHIFT
from apflab.abi.sdei import Routing
from apflab.model.pe import (
    PE,
    VECTOR_IRQ_CURRENT_SP0,
    VECTOR_IRQ_CURRENT_SPX,
    VECTOR_IRQ_LOWER_A64,
    exception_entry_pstate,
    make_pstate,
    pstate_el,
    pstate_sp,
)
from apflab.model.platform import EventDef
from apflab.model.sdei_events import MAX_NESTING, SAVED_GPRS, Dispatch, MachineWedged, Registration, Result, SdeiEvents
from apflab.model.state_table import Action, State, transition

# Linux errno values of the v4 host interfaces (returned negated).
EPERM, ENOENT, EEXIST, EINVAL, ENOSPC, EINPROGRESS = 1, 2, 17, 22, 28, 115


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

    # ------------------------------------------------------------ triggers

    def _queue(self, ev: EventDef, pe: int) -> None:
        """Make ``ev`` pending, once (a trigger of a pending event is the same edge)."""
        if ev.shared and not self.dev("shared_routing_ignored"):
            if (ev.number, pe) not in self.shared_pending:
                self.shared_pending.append((ev.number, pe))
        elif ev.number not in self.pending[pe]:
            self.pending[pe].append(ev.number)

    def trigger(self, ev: EventDef, pe: int) -> int:
        """The event's trigger (EVENT_SIGNAL, its interrupt) as seen from ``pe``: 0."""
        if self.registration(pe, ev).state.registered:
            self._queue(ev, pe)
        return 0

    def host_inject(self, ev: EventDef, pe: int) -> int:
        """A host's injection (KVM_SDEI_CMD_INJECT_EVENT): 0, or the host's -errno."""
        state = self.registration(pe, ev).state
        armed = state.registered and state.enabled
        if armed and self.dev("inject_event_deadlocks"):
            raise MachineWedged(f"INJECT_EVENT({ev.number:#x}) on vCPU {pe}: the ioctl deadlocks on its own lock")
        if (not armed or self.masked[pe]) and self.dev("masked_injection_dropped"):
            return -EPERM
        return self.trigger(ev, pe)

    def kvm_inject(self, number: int, pe: int, immediate: bool = False) -> int:
        """The hypervisor's own injection (kvm_sdei_inject(), APF's not-present): 0 or -errno."""
        ev = self.events.get(number)
        if ev is None:
            return -EINVAL
        state = self.registration(pe, ev).state
        if not state.registered:
            return -EPERM
        if (not state.enabled or self.masked[pe]) and self.dev("masked_injection_dropped"):
            return -EPERM
        if immediate and (self.pending[pe] or self.stacks[pe]):
            queued = [self.events[n] for n in self.pending[pe]] + [d.event for d in self.stacks[pe]]
            if (ev.critical and any(e.critical for e in queued)) or (not ev.critical and queued):
                return -ENOSPC
        return self.trigger(ev, pe)

    def set_vevent(self, number: int, pe: int) -> int:
        """KVM_SDEI_CMD_SET_VEVENT: queue ``number`` on vCPU ``pe`` as a migration restore does.

        The VMM's command checks neither mask nor enable; the event is then taken by the
        ordinary rules (which v4's delivery does not apply either).
        """
        ev = self.events.get(number)
        if ev is None:
            return -EINVAL
        if not self._registered_anywhere(ev):
            return -ENOENT  # no VM-wide (registered) event
        if number in self.pending[pe] or any(d.event is ev for d in self.stacks[pe]):
            return -EEXIST
        self._queue(ev, pe)
        if self.dev("set_vevent_refcount_underflow"):
            self.refcount_skew[number] = self.refcount_skew.get(number, 0) - 1  # no VM-wide reference taken
        return 0

    def kvm_cancel(self, number: int, pe: int) -> int:
        """kvm_sdei_cancel(): take back a queued, undelivered instance."""
        if number in self.pending[pe]:
            self.pending[pe].remove(number)
            return 0
        if any(d.event.number == number for d in self.stacks[pe]):
            return -EINPROGRESS  # it is the running event
        return -EINVAL

    # ------------------------------------------------------- taking events

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
        unchecked = self.dev("delivery_ignores_mask_enable")
        if self.masked[pe] and not unchecked:
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
            if origin is not None and not self._shared_target(ev, reg, pe, origin):
                continue
            if reg.state.running:
                continue  # the same event's handler runs: it stays pending
            if not unchecked and not reg.state.enabled:
                continue  # registered, disabled: pending until EVENT_ENABLE (DEN0054C 5.1.3.1)
            if origin is None:
                self.pending[pe].remove(ev.number)
            else:
                self.shared_pending.remove((ev.number, origin))
            return ev, reg
        return None

    def dispatch(self, pe: int, ev: EventDef, reg: Registration) -> None:
        """Enter the handler on ``pe``: save x0-x17/PC/PSTATE, set x0-x3, take the exception."""
        if self.notifiers.get(ev.number) and self.dev("set_event_notifier_called"):
            raise MachineWedged(f"event {ev.number:#x}'s notifier {self.notifiers[ev.number]:#x} was called")
        cpu = self.pes[pe]
        self.stacks[pe].append(Dispatch(ev, reg, list(cpu.x[:SAVED_GPRS]), cpu.pc, cpu.pstate))
        new = transition(reg.state, Action.DISPATCH)
        reg.state = new if new is not None else State(reg.state.value | sdei.STATUS_RUNNING)
        if ev.shared:
            reg.running_pe = pe
        interrupted_pc, interrupted_pstate = cpu.pc, cpu.pstate
        cpu.x[:SAVED_GPRS] = [0] * SAVED_GPRS
        cpu.x[0], cpu.x[1], cpu.x[2], cpu.x[3] = ev.number, reg.arg, interrupted_pc, interrupted_pstate
        if self.dev("handler_pstate_inherited"):
            kept = interrupted_pstate & ~(0x1F | DAIF_ALL << SPSR_DAIF_SHIFT | PSTATE_NRW)
            cpu.pstate = kept | make_pstate(cpu.client_el, sp=1, daif=DAIF_ALL)
        else:
            cpu.pstate = exception_entry_pstate(interrupted_pstate, cpu.client_el)
        if self.dev("spsr_clobbered"):
            cpu.spsr = 0  # written at delivery, read back as 0 on a running v4 kernel
        cpu.pc = reg.ep
        if self.on_dispatch is not None:
            self.on_dispatch(pe, ev.number)

    # --------------------------------------------------- PE and system power

    def cpu_on(self, pe: int) -> None:
        """PSCI CPU_OFF then CPU_ON of ``pe``: it comes back as from power-up, masked, with
        no private registrations (TF-A sdei_cpu_on_init(); DEN0054C 5.1.12)."""
        if self.dev("no_reset_on_cpu_on_or_reboot"):
            return
        for ev in self.platform.events:
            if not ev.shared:
                self.private[(pe, ev.number)] = Registration()
        self.pending[pe] = []
        self.stacks[pe] = []
        self.masked[pe] = True

    def system_reset(self) -> None:
        """The machine resets: the dispatcher is back to its power-on state."""
        if self.dev("no_reset_on_cpu_on_or_reboot"):
            return
        self.__post_init__()

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
                # DEN0054C 5.1.7: "as if a synchronous exception were taken" at the resume address.
                cpu.elr, cpu.spsr = top.pc, top.pstate
                cpu.pstate = exception_entry_pstate(top.pstate, cpu.client_el)
                cpu.pc = address
        return Result(None, redirected=True)

    @staticmethod
    def _irq_vector(cpu: PE, pstate: int) -> int:
        if pstate_el(pstate) == cpu.client_el:
            return VECTOR_IRQ_CURRENT_SPX if pstate_sp(pstate) else VECTOR_IRQ_CURRENT_SP0
        return VECTOR_IRQ_LOWER_A64
