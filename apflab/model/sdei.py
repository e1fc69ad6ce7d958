"""The SDEI dispatcher of the reference model: all 19 calls, triggering and dispatch.

Behaviour follows abi.md section 2 with TF-A as the proxy for the spec, corrected by
sdei-spec-points.md; the handler states come from :mod:`apflab.model.state_table`.
Where the profile is ``kvm-v4`` the named deviations of :mod:`apflab.profiles` switch
the behaviour to that of the v4 series (abi.md 3.4-3.5); each ``self.dev(...)`` test
below is one such switch.

Triggering model: a trigger makes an event *pending* for a PE (private) or for the
system (shared). A PE *takes* a pending event at its next instruction boundary when it
is unmasked and the priority rule allows (abi.md 2.4: critical may preempt normal,
nothing preempts critical, depth at most 2); the event is then dispatched if its state
allows DISPATCH, and dropped otherwise. A trigger for an event that is not enabled is
ignored (DEN0054C 5.1.2.1 leaves this IMPLEMENTATION DEFINED).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from apflab.abi import sdei
from apflab.abi.sdei import Fn, Info, Routing
from apflab.model.pe import (
    MPIDR_AFFINITY_MASK,
    PE,
    VECTOR_IRQ_CURRENT_SP0,
    VECTOR_IRQ_CURRENT_SPX,
    VECTOR_IRQ_LOWER_A64,
    exception_entry_pstate,
    pstate_el,
    pstate_sp,
)
from apflab.model.platform import EventDef, Platform
from apflab.model.state_table import Action, State, transition
from apflab.profiles import Profile

SAVED_GPRS = sdei.CONTEXT_REGISTERS  # x0-x17
MAX_NESTING = 2


@dataclass(slots=True)
class Registration:
    """Per-PE (private) or system-wide (shared) registration record of one event."""

    state: State = State.reg
    ep: int = 0
    arg: int = 0
    routing: int = Routing.RM_ANY
    affinity: int = 0
    running_pe: int | None = None  # shared events: where the handler runs


@dataclass(slots=True)
class Dispatch:
    """One outstanding handler on a PE, with the context it interrupted."""

    event: EventDef
    registration: Registration
    regs: list[int]
    pc: int
    pstate: int


@dataclass
class Binding:
    """A dynamic event slot and the interrupt bound to it (INTERRUPT_BIND)."""

    event: EventDef
    intid: int | None = None


@dataclass(slots=True)
class Result:
    """Registers an SMCCC call writes: ``None`` leaves x0 untouched (COMPLETE)."""

    x0: int | None
    extra: tuple[int, int, int] | None = None
    #: The call did not return: it resumed another context (a successful COMPLETE).
    redirected: bool = False


Handler = Callable[[int, list[int]], Result]


@dataclass
class Dispatcher:
    platform: Platform
    profile: Profile
    pes: list[PE]
    events: dict[int, EventDef] = field(init=False)
    private: dict[tuple[int, int], Registration] = field(init=False)
    shared: dict[int, Registration] = field(init=False)
    masked: list[bool] = field(init=False)
    stacks: list[list[Dispatch]] = field(init=False)
    pending: list[list[int]] = field(init=False)  # per PE, private events, in trigger order
    shared_pending: list[tuple[int, int]] = field(init=False)  # (event, triggering PE)
    bindings: dict[int, Binding] = field(init=False)
    #: Called as (pe, event number) when an event is dispatched: v4's notifier DELIVERED.
    on_dispatch: Callable[[int, int], None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.events = {e.number: e for e in self.platform.events}
        npes = len(self.pes)
        self.private = {
            (pe, e.number): Registration()
            for pe in range(npes)
            for e in self.platform.events
            if not e.shared
        }
        self.shared = {e.number: Registration() for e in self.platform.events if e.shared}
        # DEN0054C 5.1.12: the initial state of every PE is masked.
        self.masked = [True] * npes
        self.stacks = [[] for _ in range(npes)]
        self.pending = [[] for _ in range(npes)]
        self.shared_pending = []
        self.bindings = {e.number: Binding(e) for e in self.platform.events if e.dynamic}
        self._calls: dict[int, Handler] = {
            Fn.VERSION: self._version,
            Fn.EVENT_REGISTER: self._register,
            Fn.EVENT_ENABLE: self._enable,
            Fn.EVENT_DISABLE: self._disable,
            Fn.EVENT_CONTEXT: self._context,
            Fn.EVENT_COMPLETE: self._complete,
            Fn.EVENT_COMPLETE_AND_RESUME: self._complete_and_resume,
            Fn.EVENT_UNREGISTER: self._unregister,
            Fn.EVENT_STATUS: self._status,
            Fn.EVENT_GET_INFO: self._get_info,
            Fn.EVENT_ROUTING_SET: self._routing_set,
            Fn.PE_MASK: self._pe_mask,
            Fn.PE_UNMASK: self._pe_unmask,
            Fn.INTERRUPT_BIND: self._interrupt_bind,
            Fn.INTERRUPT_RELEASE: self._interrupt_release,
            Fn.EVENT_SIGNAL: self._signal,
            Fn.FEATURES: self._features,
            Fn.PRIVATE_RESET: self._private_reset,
            Fn.SHARED_RESET: self._shared_reset,
        }

    # ------------------------------------------------------------------ helpers

    def dev(self, name: str) -> bool:
        """Whether the profile carries deviation ``name`` (see apflab.profiles)."""
        return self.profile.predicts(name)

    def call(self, pe: int, fid: int, args: list[int]) -> Result:
        handler = self._calls.get(fid)
        if handler is None:
            return Result(sdei.NOT_SUPPORTED)
        if fid in (Fn.EVENT_SIGNAL, Fn.FEATURES) and self.dev("signal_features_not_routed"):
            return Result(sdei.NOT_SUPPORTED)
        result = handler(pe, args)
        if result.x0 is not None and result.extra is None and self.profile.name == "kvm-v4":
            # v4 writes every result with smccc_set_retval(ret, 0, 0, 0) (abi.md 3.4).
            result.extra = (0, 0, 0)
        return result

    def registration(self, pe: int, ev: EventDef) -> Registration:
        return self.shared[ev.number] if ev.shared else self.private[(pe, ev.number)]

    def _event(self, number: int) -> EventDef | None:
        if number > 0xFFFFFFFF:
            return None
        return self.events.get(number)

    def _valid_mpidr(self, mpidr: int) -> int | None:
        """Index of the PE with this affinity, or None (TF-A is_valid_mpidr)."""
        for pe in self.pes:
            if (pe.mpidr & MPIDR_AFFINITY_MASK) == (mpidr & MPIDR_AFFINITY_MASK):
                if mpidr & ~(MPIDR_AFFINITY_MASK | (1 << 31) | (1 << 30)):
                    return None
                return pe.index
        return None

    def _is_bound(self, ev: EventDef) -> bool:
        if ev.dynamic:
            return self.bindings[ev.number].intid is not None
        return ev.intid is not None or self.profile.name == "kvm-v4"

    def _registrations(self, ev: EventDef) -> list[Registration]:
        if ev.shared:
            return [self.shared[ev.number]]
        return [self.private[(pe.index, ev.number)] for pe in self.pes]

    def _registered_anywhere(self, ev: EventDef) -> bool:
        return any(r.state.registered for r in self._registrations(ev))

    def _refcount(self, ev: EventDef) -> int:
        """v4's per-event refcount: instances queued or running on any vCPU (abi.md 3.3)."""
        running = sum(1 for stack in self.stacks for d in stack if d.event is ev)
        queued = sum(q.count(ev.number) for q in self.pending)
        queued += sum(1 for n, _ in self.shared_pending if n == ev.number)
        return running + queued

    def _check_flags(self, flags: int, affinity: int) -> int:
        """TF-A validate_flags(): RM_ANY, or RM_PE with a valid affinity."""
        routing = flags & 1
        extra = flags & ~1
        if extra and not (extra == sdei.REGISTER_FLAG_RELATIVE and self.platform.relative_mode):
            return sdei.INVALID_PARAMETERS
        bad_affinity = routing == Routing.RM_PE and self._valid_mpidr(affinity) is None
        if bad_affinity and not self.dev("register_affinity_unchecked"):
            return sdei.INVALID_PARAMETERS
        return sdei.SUCCESS

    # ------------------------------------------------------------- the calls

    def _version(self, pe: int, args: list[int]) -> Result:
        return Result(sdei.make_version(*self.profile.sdei_version))

    def _register(self, pe: int, args: list[int]) -> Result:
        num, ep, arg, flags, affinity = args[0], args[1], args[2], args[3], args[4]
        if self.dev("register_route_mode_from_affinity"):
            if flags & ~1:
                return Result(sdei.INVALID_PARAMETERS)
        else:
            err = self._check_flags(flags, affinity)
            if err:
                return Result(err)
        if ep == 0 and not self.dev("register_ep_unchecked"):
            return Result(sdei.INVALID_PARAMETERS)
        ev = self._event(num)
        if ev is None:
            return Result(sdei.INVALID_PARAMETERS)
        reg = self.registration(pe, ev)
        new = transition(reg.state, Action.REGISTER)
        if new is None:
            return Result(sdei.DENIED)
        if ev.dynamic and not self._is_bound(ev):
            return Result(sdei.DENIED)
        routing, aff = flags & 1, affinity
        if not ev.shared and self.profile.name != "kvm-v4":
            # TF-A: private events are handled as RM_PE with the calling PE's affinity.
            routing, aff = Routing.RM_PE, self.pes[pe].mpidr
        if self.dev("register_route_mode_from_affinity") and not self._registered_anywhere(ev):
            routing = affinity & 0xFF
        reg.state, reg.ep, reg.arg, reg.routing, reg.affinity = new, ep, arg, routing, aff
        return Result(sdei.SUCCESS)

    def _lookup(self, pe: int, number: int, busy_deviation: str) -> tuple[EventDef, Registration] | Result:
        """The event and this PE's registration, or the error the call answers first.

        Under v4 an event no vCPU registered is INVALID_PARAMETERS, and one with queued or
        running instances answers PENDING before any state check (abi.md 3.4).
        """
        ev = self._event(number)
        if ev is None:
            return Result(sdei.INVALID_PARAMETERS)
        if self.dev("unregistered_event_invalid") and not self._registered_anywhere(ev):
            return Result(sdei.INVALID_PARAMETERS)
        if self.dev(busy_deviation) and self._refcount(ev):
            return Result(sdei.PENDING)
        return ev, self.registration(pe, ev)

    def _enable_disable(self, pe: int, args: list[int], action: Action) -> Result:
        found = self._lookup(pe, args[0], "enable_disable_pending_while_running")
        if isinstance(found, Result):
            return found
        _, reg = found
        new = transition(reg.state, action)
        if new is None:
            return Result(sdei.DENIED)
        if new is reg.state:
            if action is Action.ENABLE and self.dev("enable_when_enabled_denied"):
                return Result(sdei.DENIED)
            if action is Action.DISABLE and self.dev("disable_when_disabled_denied"):
                return Result(sdei.DENIED)
        reg.state = new
        return Result(sdei.SUCCESS)

    def _enable(self, pe: int, args: list[int]) -> Result:
        return self._enable_disable(pe, args, Action.ENABLE)

    def _disable(self, pe: int, args: list[int]) -> Result:
        return self._enable_disable(pe, args, Action.DISABLE)

    def _context(self, pe: int, args: list[int]) -> Result:
        index = args[0]
        limit = SAVED_GPRS + 1 if self.dev("context_index_18_accepted") else SAVED_GPRS
        if index >= limit:
            return Result(sdei.INVALID_PARAMETERS)
        stack = self.stacks[pe]
        if not stack:
            return Result(sdei.DENIED)
        top = stack[-1]
        if index == SAVED_GPRS:  # only reachable through the v4 off-by-one
            return Result(top.pc)
        return Result(top.regs[index])

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

    def _complete(self, pe: int, args: list[int]) -> Result:
        # The status in x1 is IMPLEMENTATION DEFINED and ignored, as by TF-A (spec point 6).
        return self._finish(pe, resume=False, address=0)

    def _complete_and_resume(self, pe: int, args: list[int]) -> Result:
        return self._finish(pe, resume=True, address=args[0])

    def _unregister(self, pe: int, args: list[int]) -> Result:
        found = self._lookup(pe, args[0], "unregister_running_not_recorded")
        if isinstance(found, Result):
            return found
        ev, reg = found
        new = transition(reg.state, Action.UNREGISTER)
        if new is None:
            # TF-A: a denied unregister of a running handler still answers PENDING.
            return Result(sdei.PENDING if reg.state.running else sdei.DENIED)
        reg.state = new
        self._drop_pending(pe, ev)
        if new.running:
            return Result(sdei.PENDING)
        reg.ep = reg.arg = 0
        return Result(sdei.SUCCESS)

    def _drop_pending(self, pe: int, ev: EventDef) -> None:
        if ev.shared:
            self.shared_pending = [p for p in self.shared_pending if p[0] != ev.number]
        else:
            self.pending[pe] = [n for n in self.pending[pe] if n != ev.number]

    def _status(self, pe: int, args: list[int]) -> Result:
        ev = self._event(args[0])
        if ev is None:
            return Result(sdei.INVALID_PARAMETERS)
        state = self.registration(pe, ev).state.value
        if self.dev("status_running_vm_wide"):
            state &= ~sdei.STATUS_RUNNING
            if self._refcount(ev):
                state |= sdei.STATUS_RUNNING
        return Result(state)

    def _get_info(self, pe: int, args: list[int]) -> Result:
        ev = self._event(args[0])
        if ev is None:
            return Result(sdei.INVALID_PARAMETERS)
        info = args[1]
        if info == Info.EV_TYPE:
            return Result(int(ev.type))
        if info == Info.EV_SIGNALED:
            # DEN0054C 5.1.10.2: 0 = can be signalled, 1 = cannot (spec point 2).
            return Result(0 if ev.signalable else 1)
        if info == Info.EV_PRIORITY:
            return Result(int(ev.priority))
        if info in (Info.EV_ROUTING_MODE, Info.EV_ROUTING_AFF):
            if not ev.shared:
                return Result(sdei.INVALID_PARAMETERS)
            reg = self.shared[ev.number]
            if not reg.state.registered and not self.dev("get_info_routing_unregistered_defaults"):
                return Result(sdei.DENIED)
            if info == Info.EV_ROUTING_MODE:
                return Result(reg.routing)
            if reg.routing != Routing.RM_PE and not self.dev("get_info_aff_any_mode"):
                return Result(sdei.INVALID_PARAMETERS)
            return Result(reg.affinity)
        return Result(sdei.INVALID_PARAMETERS)

    def _routing_set(self, pe: int, args: list[int]) -> Result:
        num, mode, affinity = args[0], args[1], args[2]
        if mode not in (Routing.RM_ANY, Routing.RM_PE):
            return Result(sdei.INVALID_PARAMETERS)
        if mode == Routing.RM_PE and self._valid_mpidr(affinity) is None:
            return Result(sdei.INVALID_PARAMETERS)
        ev = self._event(num)
        if ev is None or not ev.shared or not self._is_bound(ev):
            return Result(sdei.INVALID_PARAMETERS)
        reg = self.shared[ev.number]
        if self.dev("unregistered_event_invalid") and not reg.state.registered:
            return Result(sdei.INVALID_PARAMETERS)
        new = transition(reg.state, Action.ROUTING_SET)
        if new is None:
            return Result(sdei.DENIED)
        reg.routing = mode
        reg.affinity = affinity & MPIDR_AFFINITY_MASK if mode == Routing.RM_PE else 0
        return Result(sdei.SUCCESS)

    def _pe_mask(self, pe: int, args: list[int]) -> Result:
        was_masked = self.masked[pe]
        if was_masked and self.dev("pe_mask_state_denied"):
            return Result(sdei.DENIED)
        self.masked[pe] = True
        if self.dev("pe_mask_returns_zero"):
            return Result(0)
        # DEN0054C 5.1.12: 1 if this call masked the PE, 0 if it was already masked.
        return Result(0 if was_masked else 1)

    def _pe_unmask(self, pe: int, args: list[int]) -> Result:
        if not self.masked[pe] and self.dev("pe_mask_state_denied"):
            return Result(sdei.DENIED)
        self.masked[pe] = False
        return Result(sdei.SUCCESS)

    def _interrupt_bind(self, pe: int, args: list[int]) -> Result:
        if self.dev("bind_release_not_supported"):
            return Result(sdei.NOT_SUPPORTED)
        intid = args[0]
        if intid < 16 or intid > self.platform.max_intid:
            return Result(sdei.INVALID_PARAMETERS)  # SGIs cannot be bound (TF-A)
        shared = intid >= 32
        for ev in self.platform.events:
            if ev.intid == intid and not ev.dynamic:
                return Result(sdei.INVALID_PARAMETERS)
        for b in self.bindings.values():
            if b.intid == intid:
                return Result(b.event.number)
        free = [b for b in self.bindings.values() if b.event.shared == shared and b.intid is None]
        if not free:
            return Result(sdei.OUT_OF_RESOURCE)
        if intid in self.platform.secure_intids:
            return Result(sdei.DENIED)
        free[0].intid = intid
        return Result(free[0].event.number)

    def _interrupt_release(self, pe: int, args: list[int]) -> Result:
        if self.dev("bind_release_not_supported"):
            return Result(sdei.NOT_SUPPORTED)
        ev = self._event(args[0])
        if ev is None or not ev.dynamic or self.bindings[ev.number].intid is None:
            return Result(sdei.INVALID_PARAMETERS)
        return Result(self._release(pe, ev))

    def _release(self, pe: int, ev: EventDef) -> int:
        if self._registered_anywhere(ev):
            return sdei.DENIED
        if transition(self.registration(pe, ev).state, Action.RELEASE) is None:
            return sdei.DENIED
        self.bindings[ev.number].intid = None
        return sdei.SUCCESS

    def _signal(self, pe: int, args: list[int]) -> Result:
        num, target = args[0], args[1]
        if num != sdei.EVENT_0:
            return Result(sdei.INVALID_PARAMETERS)
        ev = self._event(sdei.EVENT_0)
        if ev is None or not ev.signalable:
            return Result(sdei.INVALID_PARAMETERS)
        index = self._valid_mpidr(target)
        if index is None:
            return Result(sdei.INVALID_PARAMETERS)
        # SUCCESS means "set as pending", whatever the target's state (spec point 8).
        self.trigger(ev, index)
        return Result(sdei.SUCCESS)

    def _features(self, pe: int, args: list[int]) -> Result:
        feature = args[0]
        if feature == sdei.Feature.BIND_SLOTS:
            private = sum(1 for b in self.bindings.values() if not b.event.shared)
            shared = sum(1 for b in self.bindings.values() if b.event.shared)
            return Result(sdei.make_bind_slots(private, shared))
        if feature == sdei.Feature.RELATIVE_MODE and self.profile.sdei_version[1] >= 1:
            return Result(1 if self.platform.relative_mode else 0)
        return Result(sdei.INVALID_PARAMETERS)

    def _reset_vm_wide(self, shared: bool) -> Result:
        for ev in self.platform.events:
            if ev.shared == shared and not self._refcount(ev):
                for reg in self._registrations(ev):
                    reg.state, reg.ep, reg.arg = State.reg, 0, 0
        return Result(sdei.SUCCESS)

    def _private_reset(self, pe: int, args: list[int]) -> Result:
        if self.dev("resets_vm_wide"):
            return self._reset_vm_wide(shared=False)
        final = sdei.SUCCESS
        for ev in self.platform.events:
            if not ev.shared and self._unregister(pe, [ev.number]).x0 == sdei.PENDING:
                final = sdei.DENIED  # DEN0054C 5.1.18: a handler was running
        return Result(final)

    def _shared_reset(self, pe: int, args: list[int]) -> Result:
        if self.dev("resets_vm_wide"):
            return self._reset_vm_wide(shared=True)
        final = sdei.SUCCESS
        for ev in self.platform.events:
            if ev.shared and self._unregister(pe, [ev.number]).x0 == sdei.PENDING:
                final = sdei.DENIED
        if final:
            return Result(final)
        # DEN0054C 5.1.19: then release every interrupt binding, private and shared.
        for b in self.bindings.values():
            if b.intid is not None:
                if self._registered_anywhere(b.event):
                    final = final or sdei.DENIED
                else:
                    b.intid = None
        return Result(final)

    # ------------------------------------------------------ triggering, dispatch

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

    # ----------------------------------------------------------- invariants

    def check_invariants(self) -> None:
        """Raise AssertionError if the model is in a state the spec forbids."""
        for (pe, num), reg in self.private.items():
            assert isinstance(reg.state, State)
            running = any(d.registration is reg for d in self.stacks[pe])
            assert reg.state.running == running, f"PE{pe} event {num}: {reg.state} vs running={running}"
        for num, reg in self.shared.items():
            running = sum(1 for st in self.stacks for d in st if d.registration is reg)
            assert running <= 1, f"shared event {num} runs on {running} PEs"
            assert reg.state.running == bool(running), f"shared {num}: {reg.state}"
        for pe, stack in enumerate(self.stacks):
            assert len(stack) <= MAX_NESTING, f"PE{pe} nesting depth {len(stack)}"
            if len(stack) == 2:
                assert stack[1].event.critical and not stack[0].event.critical
            for d in stack:
                assert len(d.regs) == SAVED_GPRS
