"""The SDEI dispatcher's state: registrations, PE masks, pending events, running handlers.

The records of one SDEI dispatcher (what TF-A keeps in ``sdei_private.h``'s structures),
and the lookups both halves of the dispatcher use: the calls (:mod:`apflab.model.sdei`,
TF-A's ``sdei_main.c``) and triggering and dispatch (:mod:`apflab.model.sdei_dispatch`,
TF-A's ``sdei_intr_mgmt.c``). Handler states are :mod:`apflab.model.state_table`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from apflab.abi import sdei
from apflab.abi.sdei import Routing
from apflab.model.pe import MPIDR_AFFINITY_MASK, PE
from apflab.model.platform import EventDef, Platform
from apflab.model.state_table import State
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


class MachineWedged(Exception):
    """The modelled implementation hangs or crashes here (a deviation predicts it): the
    target is dead until it is restarted. The message says what happened."""


@dataclass
class SdeiEvents:
    """Everything the dispatcher knows, per PE and system-wide."""

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
    #: v4's VM-wide refcount minus what is queued and running (SET_VEVENT's underflow).
    refcount_skew: dict[int, int] = field(init=False)
    #: v4's kvm_sdei_event_state.notifier of each exposed event, as a VMM set it.
    notifiers: dict[int, int] = field(init=False)
    #: Called as (pe, event number) when an event is dispatched: v4's notifier DELIVERED.
    on_dispatch: Callable[[int, int], None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.events = {e.number: e for e in self.platform.events}
        npes = len(self.pes)
        self.private = {
            (pe, e.number): Registration() for pe in range(npes) for e in self.platform.events if not e.shared
        }
        self.shared = {e.number: Registration() for e in self.platform.events if e.shared}
        # DEN0054C 5.1.12: the initial state of every PE is masked.
        self.masked = [True] * npes
        self.stacks = [[] for _ in range(npes)]
        self.pending = [[] for _ in range(npes)]
        self.shared_pending = []
        self.bindings = {e.number: Binding(e) for e in self.platform.events if e.dynamic}
        self.refcount_skew = {}
        self.notifiers = {}

    # ------------------------------------------------------------------ lookups

    def dev(self, name: str) -> bool:
        """Whether the profile carries deviation ``name`` (see apflab.profiles)."""
        return self.profile.predicts(name)

    def registration(self, pe: int, ev: EventDef) -> Registration:
        return self.shared[ev.number] if ev.shared else self.private[(pe, ev.number)]

    def _event(self, number: int) -> EventDef | None:
        if not self.platform.well_formed(number):
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
        """A dynamic event needs an interrupt bound to it; a platform event is ready as it is."""
        if ev.dynamic:
            return self.bindings[ev.number].intid is not None
        return True

    def _registrations(self, ev: EventDef) -> list[Registration]:
        if ev.shared:
            return [self.shared[ev.number]]
        return [self.private[(pe.index, ev.number)] for pe in self.pes]

    def _registered_anywhere(self, ev: EventDef) -> bool:
        return any(r.state.registered for r in self._registrations(ev))

    def _refcount(self, ev: EventDef) -> int:
        """v4's VM-wide refcount of an event: instances queued or running on any vCPU, as a
        u32 (docs/reference/kvm-v4.md), off by what SET_VEVENT got wrong."""
        running = sum(1 for stack in self.stacks for d in stack if d.event is ev)
        queued = sum(q.count(ev.number) for q in self.pending)
        queued += sum(1 for n, _ in self.shared_pending if n == ev.number)
        return (running + queued + self.refcount_skew.get(ev.number, 0)) & 0xFFFFFFFF

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
