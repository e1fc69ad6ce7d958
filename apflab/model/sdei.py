"""The SDEI calls of the reference model: all 19 of them (TF-A's ``sdei_main.c``).

Behaviour follows DEN0054C chapter 5 (docs/reference/sdei-calls.md), with TF-A as the
proxy where the text is silent; the handler states come from
:mod:`apflab.model.state_table`, the dispatcher's state from
:mod:`apflab.model.sdei_events`, triggering and dispatch from
:mod:`apflab.model.sdei_dispatch`. A profile's named deviations (:mod:`apflab.profiles`)
switch the behaviour to that of the v4 series (docs/reference/kvm-v4.md); each
``self.dev(...)`` test below is one such switch, and nothing else is.
"""

from __future__ import annotations

from apflab.abi import sdei
from apflab.abi.sdei import Fn, Info, Routing
from apflab.model.pe import MPIDR_AFFINITY_MASK
from apflab.model.platform import EventDef
from apflab.model.sdei_dispatch import SdeiDispatch
from apflab.model.sdei_events import (
    MAX_NESTING,
    SAVED_GPRS,
    Binding,
    Dispatch,
    Handler,
    MachineWedged,
    Registration,
    Result,
)
from apflab.model.state_table import Action, State, transition

__all__ = ["MAX_NESTING", "SAVED_GPRS", "Binding", "Dispatch", "Dispatcher", "MachineWedged", "Registration", "Result"]


class Dispatcher(SdeiDispatch):
    """One SDEI dispatcher: its state, its calls, its dispatch."""

    def __post_init__(self) -> None:
        super().__post_init__()
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

    def call(self, pe: int, fid: int, args: list[int]) -> Result:
        handler = self._calls.get(fid)
        if handler is None:
            return Result(sdei.NOT_SUPPORTED)
        if fid in (Fn.EVENT_SIGNAL, Fn.FEATURES) and self.dev("signal_features_not_routed"):
            return Result(sdei.NOT_SUPPORTED)
        result = handler(pe, args)
        if result.x0 is not None and result.extra is None and self.platform.zero_result_registers:
            result.extra = (0, 0, 0)
        return result

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
        routing = flags & 1
        # One form for ROUTING_AFF, whichever call set it: the affinity fields (DEN0054C
        # 5.1.2; TF-A masks on both paths).
        aff = affinity if self.dev("register_affinity_unchecked") else affinity & MPIDR_AFFINITY_MASK
        if self.dev("register_route_mode_from_affinity") and not self._registered_anywhere(ev):
            routing = affinity & 0xFF
        reg.state, reg.ep, reg.arg, reg.routing, reg.affinity = new, ep, arg, routing, aff
        return Result(sdei.SUCCESS)

    def _lookup(self, pe: int, number: int, busy_deviation: str) -> tuple[EventDef, Registration] | Result:
        """The event and this PE's registration, or the error the call answers first.

        Under v4 an event no vCPU registered is INVALID_PARAMETERS, and one with queued or
        running instances anywhere answers PENDING before any state check, even on a vCPU
        that never registered it (docs/reference/kvm-v4.md).
        """
        ev = self._event(number)
        if ev is None:
            return Result(sdei.INVALID_PARAMETERS)
        if self.dev("unregistered_event_invalid") and not self._registered_anywhere(ev):
            return Result(sdei.INVALID_PARAMETERS)
        reg = self.registration(pe, ev)
        if self._refcount(ev):
            busy = busy_deviation if reg.state.registered else "pending_before_registration_check"
            if self.dev(busy):
                return Result(sdei.PENDING)
        return ev, reg

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

    def _complete(self, pe: int, args: list[int]) -> Result:
        # The status in x1 is IMPLEMENTATION DEFINED (DEN0054C 5.1.6) and ignored, as by TF-A.
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
            if self.platform.well_formed(args[0]) and self.dev("status_unknown_event_zero"):
                return Result(0)
            return Result(sdei.INVALID_PARAMETERS)
        if self.dev("status_registered_wedges") and (self._registered_anywhere(ev) or self._refcount(ev)):
            raise MachineWedged(f"EVENT_STATUS({ev.number:#x}) of a registered event: NULL dereference in the host")
        return Result(self.registration(pe, ev).state.value)

    def _get_info(self, pe: int, args: list[int]) -> Result:
        ev = self._event(args[0])
        if ev is None:
            return Result(sdei.INVALID_PARAMETERS)
        info = args[1]
        if info == Info.EV_TYPE:
            return Result(int(ev.type))
        if info == Info.EV_SIGNALED:
            # DEN0054C 5.1.10.2: 0 = can be signalled, 1 = cannot (the value is inverted from its name).
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
        unchecked = self.dev("routing_set_affinity_unchecked")
        if mode not in (Routing.RM_ANY, Routing.RM_PE):
            return Result(sdei.INVALID_PARAMETERS)
        if mode == Routing.RM_PE and self._valid_mpidr(affinity) is None and not unchecked:
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
        if unchecked:
            reg.affinity = affinity
        else:
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
        # DEN0054C 5.1.16: SUCCESS means "set as pending", whatever the target PE's state.
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
