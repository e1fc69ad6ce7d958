"""The Guest contract: what a testcase may ask of any target.

A testcase makes SMCCC calls, configures what an SDEI handler does (the calls it
makes, then COMPLETE or COMPLETE_AND_RESUME), sees each handler entry as a
:class:`Delivery`, and asks the host side to inject an event or raise an interrupt
where the target can. It never knows whether the target is the in-process model,
``apflab agent`` over a pipe, or the bare-metal agent on a UART: all implement
:class:`Guest`. A capability the target lacks raises :class:`Unsupported`, which the
pytest plugin turns into a SKIP with the reason.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any, ClassVar

from apflab.abi import sdei
from apflab.abi.sdei import EventType, Fn, Priority
from apflab.abi.smccc import MASK64, to_s64
from apflab.capabilities import check as check_capabilities
from apflab.profiles import Profile
from apflab.safetext import from_target


class Unsupported(Exception):
    """The target lacks a capability the testcase needs (the message says which)."""


class TargetError(Exception):
    """The target misbehaved: a protocol error, a wedge, a dead console.

    Its message quotes what the target said (console tails, stderr), so it is made safe
    here, once for every way of raising it: control characters written out, the length
    bounded (apflab.safetext). It ends up in failure messages, JUnit and the terminal.
    """

    #: Characters a message keeps (head and tail) of what may be a megabyte of console.
    LIMIT = 8000

    def __init__(self, message: object = "") -> None:
        super().__init__(from_target(str(message), self.LIMIT))


# --------------------------------------------------------------- handler script


class Step:
    """A handler step is a Guest operation made from inside the handler.

    ``operation`` names the :class:`Guest` method the step is (its fields are that
    method's arguments, by name), so the same step runs from the main context
    (:meth:`Guest.run_step`) and inside a handler (the agents), without a ladder of
    cases anywhere. The wire keywords are :data:`apflab.agent.grammar.STEPS`.
    """

    operation: ClassVar[str]

    def apply(self, target: Any) -> Any:
        """Make this step on ``target``: anything with the Guest's operation names."""
        method = getattr(target, self.operation)
        return method(**{f.name: getattr(self, f.name) for f in dataclass_fields(self)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Call(Step):
    """An SMCCC call made by a handler; its result is x0."""

    operation: ClassVar[str] = "call"
    fid: int
    args: tuple[int, ...] = ()

    def __init__(self, fid: int, *args: int) -> None:
        object.__setattr__(self, "fid", int(fid))
        object.__setattr__(self, "args", tuple(int(a) & MASK64 for a in args))

    def apply(self, target: Any) -> Any:
        return target.call(self.fid, *self.args)


@dataclass(frozen=True)
class Inject(Step):
    """A host-side injection performed while the handler runs; its result is the host's status."""

    operation: ClassVar[str] = "inject"
    pe: int
    event: int


@dataclass(frozen=True)
class Irq(Step):
    """An interrupt raised while the handler runs (by the host, or by the agent through a device)."""

    operation: ClassVar[str] = "raise_irq"
    pe: int
    intid: int


@dataclass(frozen=True)
class Vevent(Step):
    """The VMM queues an event on a vCPU (KVM_SDEI_CMD_SET_VEVENT) while the handler runs."""

    operation: ClassVar[str] = "set_vevent"
    pe: int
    event: int


@dataclass(frozen=True)
class Read32(Step):
    """Read a 32-bit word of guest memory (the result is its value)."""

    operation: ClassVar[str] = "mem_read32"
    gpa: int


@dataclass(frozen=True)
class Write32(Step):
    """Write a 32-bit word of guest memory."""

    operation: ClassVar[str] = "mem_write32"
    gpa: int
    value: int


@dataclass(frozen=True)
class Fault(Step):
    """A host-side stage-2 fault on ``gfn`` while the handler runs (capability apf-host)."""

    operation: ClassVar[str] = "fault"
    pe: int
    gfn: int
    privileged: bool = False


@dataclass(frozen=True)
class Tick(Step):
    """Advance the host's clock by ``us`` while the handler runs (capability apf-host)."""

    operation: ClassVar[str] = "tick"
    us: int


@dataclass(frozen=True)
class Snapshot(Step):
    """Save the target's migration state at this point (capability migration)."""

    operation: ClassVar[str] = "save_state"


HandlerStep = Call | Inject | Irq | Vevent | Read32 | Write32 | Fault | Tick | Snapshot


@dataclass(frozen=True)
class Handler:
    """What the handler registered with a given argument does.

    ``finish`` is ``"complete"`` (EVENT_COMPLETE with ``status``) or ``"resume"``
    (EVENT_COMPLETE_AND_RESUME to ``resume_at``, by default the agent's own landing pad).
    With ``once`` the calls are made on the first entry only; later entries just finish,
    so a handler that re-triggers its own event cannot loop.
    """

    calls: Sequence[HandlerStep] = ()
    finish: str = "complete"
    status: int = sdei.EV_HANDLED
    resume_at: int | None = None
    once: bool = False

    def __post_init__(self) -> None:
        if self.finish not in ("complete", "resume"):
            raise ValueError(f"finish must be 'complete' or 'resume', not {self.finish!r}")
        object.__setattr__(self, "calls", tuple(self.calls))


# -------------------------------------------------------------------- results


@dataclass(frozen=True)
class Landing:
    """Where execution continued after COMPLETE_AND_RESUME, as the landing code saw it."""

    pc: int
    elr: int
    spsr: int
    pstate: int


@dataclass(frozen=True)
class Delivery:
    """One handler entry: registers at entry, PSTATE, the results of its calls."""

    seq: int
    pe: int
    depth: int
    x: tuple[int, int, int, int]
    pstate: int
    results: tuple[int, ...] = ()
    landed: Landing | None = None
    #: x0 of the finishing COMPLETE/COMPLETE_AND_RESUME when it *returned* (failed);
    #: the agent then completed with COMPLETE(EV_HANDLED) so the session goes on.
    fin: int | None = None

    @property
    def event(self) -> int:
        return self.x[0]

    @property
    def arg(self) -> int:
        return self.x[1]

    @property
    def interrupted_pc(self) -> int:
        return self.x[2]

    @property
    def interrupted_pstate(self) -> int:
        return self.x[3]


@dataclass(frozen=True)
class CallResult:
    """x0..x3 (as unsigned register images) and the handler entries the call caused."""

    x: tuple[int, int, int, int]
    deliveries: tuple[Delivery, ...] = ()

    @property
    def ret(self) -> int:
        """x0 as a signed value: SDEI/SMCCC errors are negative."""
        return to_s64(self.x[0])


@dataclass(frozen=True)
class Regs:
    """x0..x17, PC and PSTATE where the agent continued after its last call returned, and
    the client EL's ELR and SPSR at that point (what an SDEI event must leave alone)."""

    x: tuple[int, ...]
    pc: int
    pstate: int
    elr: int = 0
    spsr: int = 0


# ---------------------------------------------------------------- target facts


@dataclass(frozen=True)
class EventInfo:
    """An event the target exposes (SDEI has no discovery: it comes from the target's config)."""

    number: int
    type: EventType
    priority: Priority
    signalable: bool = False
    intid: int | None = None
    dynamic: bool = False

    @property
    def shared(self) -> bool:
        return self.type == EventType.SHARED

    @property
    def critical(self) -> bool:
        return self.priority == Priority.CRITICAL


@dataclass(frozen=True)
class GuestFacts:
    """What a guest says of itself (the agent's HELLO): where its handler code is, its PEs.

    ``profile`` is None when the guest cannot know it (the bare-metal agent: the target's
    configuration says it); ``events`` are the events the guest itself knows (the model
    its platform's; a real target's come from lab.yaml). ``irqs`` are the interrupts IRQ
    can raise when that is a fixed few (the bare-metal agent raises them through devices
    of its machine: HELLO ``irqs=``); None when any line can be (a host, the model).
    """

    agent: str
    conduit: str
    el: int
    pes: int
    mpidrs: tuple[int, ...]
    entry_point: int
    resume_point: int
    vbar: int
    capabilities: frozenset[str] = field(default_factory=frozenset)
    profile: str | None = None
    events: tuple[EventInfo, ...] = ()
    irqs: frozenset[int] | None = None


@dataclass(frozen=True)
class TargetInfo:
    """Everything a testcase may know of its target: the guest's facts, the target's
    configuration (profile, events, capabilities) and the session's probe.

    Built once per target by the lab layer (:func:`apflab.lab.targetinfo.describe`).
    """

    name: str
    profile: Profile
    conduit: str
    el: int
    pes: int
    mpidrs: tuple[int, ...]
    entry_point: int
    resume_point: int
    vbar: int
    capabilities: frozenset[str] = field(default_factory=frozenset)
    events: tuple[EventInfo, ...] = ()
    #: The interrupts IRQ can raise; None: any (see GuestFacts.irqs).
    irqs: frozenset[int] | None = None
    #: The PPIs and SPIs the platform gives the secure world, which INTERRUPT_BIND must
    #: refuse (DEN0054C 5.1.14: DENIED). SDEI cannot discover them: the configuration says.
    secure_intids: frozenset[int] = field(default_factory=frozenset)
    #: What the target's configuration says it must have: lacking one fails every case.
    requires: frozenset[str] = field(default_factory=frozenset)
    #: Every deviation of the profile a case names must show in the session (the model's
    #: deviations are its own code, so one that never shows is a broken model).
    strict_deviations: bool = False
    #: Why the target lacks a capability, where its host knows (a KVM host: "host kernel
    #: ... has no KVM_CAP_ARM_SDEI"); added to the SKIP's reason.
    notes: Mapping[str, str] = field(default_factory=dict)

    def has(self, capability: str) -> bool:
        """Whether the target has ``capability``; a name apflab.capabilities does not know is an error."""
        check_capabilities((capability,))
        return capability in self.capabilities

    def find_events(
        self,
        *,
        type: EventType | None = None,
        priority: Priority | None = None,
        dynamic: bool = False,
        injectable: bool | None = None,
    ) -> list[EventInfo]:
        found = []
        for ev in self.events:
            if ev.dynamic != dynamic:
                continue
            if type is not None and ev.type != type:
                continue
            if priority is not None and ev.priority != priority:
                continue
            if injectable and not self.can_trigger(ev):
                continue
            found.append(ev)
        return found

    def can_trigger(self, ev: EventInfo) -> bool:
        if self.has("inject"):
            return True
        if ev.signalable and ev.number == sdei.EVENT_0:
            return True  # EVENT_SIGNAL, which every SDEI implementation has
        if self.has("sdei-vmm"):
            return True
        return ev.intid is not None and self.can_raise(ev.intid)

    def can_raise(self, intid: int) -> bool:
        """Whether IRQ can raise interrupt ``intid`` on this target."""
        return self.has("irq") and (self.irqs is None or intid in self.irqs)


# ---------------------------------------------------------------- the contract


class Guest(abc.ABC):
    """One target, as testcases drive it.

    The operations in :attr:`OPERATIONS` are what a target implements (the abstract
    ones always, the host-side ones where it can; the defaults raise Unsupported);
    wrappers pass exactly these through, and the agent protocol carries each of them
    (apflab.agent.grammar). ``facts`` is what the guest says of itself; ``info`` is set
    once by the lab layer from the facts, the target's configuration and the probe.
    """

    #: The target operations, in the contract's order.
    OPERATIONS: ClassVar[tuple[str, ...]] = (
        "call",
        "set_handler",
        "select_pe",
        "regs",
        "inject",
        "set_vevent",
        "raise_irq",
        "set_context",
        "power_cycle_pe",
        "system_reset",
        "reset",
        "fault",
        "tick",
        "apf_command",
        "irq_level",
        "mem_read32",
        "mem_write32",
        "save_state",
        "restore_state",
        "restore_snapshot",
    )

    name: str = "guest"
    _info: TargetInfo | None = None

    @property
    @abc.abstractmethod
    def facts(self) -> GuestFacts:
        """What the guest says of itself (its agent's HELLO)."""

    @property
    def info(self) -> TargetInfo:
        if self._info is None:
            raise TargetError(f"{self.name}: no TargetInfo yet; the lab layer builds it (apflab.lab.targetinfo)")
        return self._info

    @info.setter
    def info(self, value: TargetInfo) -> None:
        self._info = value

    @abc.abstractmethod
    def call(self, fid: int, *args: int) -> CallResult:
        """Make an SMCCC call on the selected PE with x1..x17 = ``args``."""

    @abc.abstractmethod
    def set_handler(self, arg: int, handler: Handler) -> None:
        """Configure what the handler registered with argument ``arg`` does."""

    @abc.abstractmethod
    def select_pe(self, pe: int) -> None:
        """Make the following calls on PE ``pe``."""

    @abc.abstractmethod
    def regs(self) -> Regs:
        """Registers right after the last call on the selected PE returned."""

    @abc.abstractmethod
    def inject(self, event: int, pe: int = 0) -> CallResult:
        """Host-side injection (capability ``inject``); x0 is the host's status."""

    @abc.abstractmethod
    def raise_irq(self, intid: int, pe: int = 0) -> CallResult:
        """Raise interrupt ``intid`` as PE ``pe`` sees it (capability ``irq``): the host raises the
        line, or the bare-metal agent through a device of its machine (``TargetInfo.irqs``)."""

    def set_vevent(self, pe: int, event: int) -> CallResult:
        """The VMM queues ``event`` on vCPU ``pe`` as a migration restore does
        (KVM_SDEI_CMD_SET_VEVENT, capability ``sdei-vmm``); x0 is the host's status."""
        raise self._unsupported("sdei-vmm")

    def set_context(self, pstate_bits: int, elr: int, spsr: int) -> None:
        """From now on the agent's main context runs with ``pstate_bits`` (PAN, UAO, DIT, SSBS
        at their SPSR positions) set, and ELR_ELc/SPSR_ELc hold ``elr``/``spsr``, so what a
        dispatch inherits or disturbs shows (capability ``context``)."""
        raise self._unsupported("context")

    def power_cycle_pe(self, pe: int) -> None:
        """PE ``pe`` calls PSCI CPU_OFF and PE 0 turns it back on with CPU_ON; it comes back
        to the agent's loop (capability ``pe-power``)."""
        raise self._unsupported("pe-power")

    def system_reset(self) -> None:
        """The guest calls PSCI SYSTEM_RESET; the agent comes back up on the reset machine,
        whose SDEI state is left as the target leaves it (capability ``system-reset``)."""
        raise self._unsupported("system-reset")

    @abc.abstractmethod
    def reset(self) -> None:
        """Return the target to its power-on SDEI state: nothing registered, PEs masked, the
        calls that follow on PE 0."""

    def restart(self) -> None:
        """Start the target afresh (a case that may wedge it runs in a fresh one), calls on PE 0;
        by default a reset."""
        self.reset()

    def discard(self) -> None:  # noqa: B027 - optional hook
        """The last case may have left a state RESET cannot undo: restart before the next one."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the guest holds (a process, a console)."""

    # -------------------------------------------------- host side (APF, migration)

    def _unsupported(self, capability: str, why: str = "") -> Unsupported:
        text = f"target {self.name} lacks capability '{capability}'" + (f": {why}" if why else "")
        note = self._info.notes.get(capability) if self._info is not None else None
        return Unsupported(f"{text} ({note})" if note else text)

    def fault(self, pe: int, gfn: int, privileged: bool = False, latency_us: int | None = None) -> CallResult:
        """A stage-2 fault needing I/O on ``gfn``: x0 = 0 sync, 1 async (x1 = token), 2 in flight."""
        raise self._unsupported("apf-host")

    def tick(self, us: int) -> CallResult:
        """Advance the host's clock; the guest runs on (page-ready notifications happen)."""
        raise self._unsupported("apf-host")

    def apf_command(self, pe: int | None, cmd: int, value: int = 0) -> tuple[int, int]:
        """KVM_ARM_ASYNC_PF_COMMAND on a vCPU (or the VM, pe None): (errno, value)."""
        raise self._unsupported("apf-host")

    def irq_level(self, pe: int, intid: int) -> int:
        """The level of interrupt line ``intid`` of PE ``pe`` (the APF page-ready PPI)."""
        raise self._unsupported("apf-host")

    def mem_read32(self, gpa: int) -> int:
        """A 32-bit word of guest memory."""
        raise self._unsupported("mem")

    def mem_write32(self, gpa: int, value: int) -> None:
        """Write a 32-bit word of guest memory."""
        raise self._unsupported("mem")

    def save_state(self) -> bytes:
        """The migration image of the running target (apflab.model.migration's layout)."""
        raise self._unsupported("migration")

    def restore_state(self, image: bytes) -> None:
        """Continue on a fresh target restored from ``image`` (a migration)."""
        raise self._unsupported("migration")

    def restore_snapshot(self) -> None:
        """Continue on a fresh target restored from the last in-handler Snapshot step."""
        raise self._unsupported("migration")

    # ------------------------------------------------------------ conveniences

    @property
    def profile(self) -> Profile:
        return self.info.profile

    def require(self, capability: str, why: str = "") -> None:
        """SKIP (Unsupported) unless the target has ``capability``, a name of apflab.capabilities."""
        if not self.info.has(capability):
            raise self._unsupported(capability, why)

    def trigger_steps(self, event: EventInfo, pe: int = 0) -> HandlerStep:
        """The handler step that raises ``event`` on ``pe`` from inside a handler.

        EVENT_SIGNAL for event 0; else the host's injection, unless the target's profile
        says that injection deadlocks (v4's INJECT_EVENT), where the VMM's SET_VEVENT is
        the one injection that works; else the event's interrupt.
        """
        if event.number == sdei.EVENT_0 and event.signalable:
            return Call(Fn.EVENT_SIGNAL, sdei.EVENT_0, self.info.mpidrs[pe])
        inject = self.info.has("inject") and not self.info.profile.predicts("inject_event_deadlocks")
        if inject:
            return Inject(pe, event.number)
        if self.info.has("sdei-vmm"):
            return Vevent(pe, event.number)
        if self.info.has("inject"):
            return Inject(pe, event.number)
        if event.intid is not None and self.info.has("irq"):
            return Irq(pe, event.intid)
        raise Unsupported(f"target {self.name} cannot trigger event {event.number:#x}")

    def trigger(self, event: EventInfo, pe: int = 0) -> CallResult:
        """Raise ``event`` on ``pe`` from the main context; returns what that caused."""
        step = self.trigger_steps(event, pe)
        return self.run_step(step)

    def run_step(self, step: HandlerStep) -> Any:
        """Make a handler step from the main context: it is the Guest operation of the same name."""
        return step.apply(self)

    @property
    def sdei(self) -> SdeiCalls:
        return SdeiCalls(self)


@dataclass
class SdeiCalls:
    """The SDEI calls by name, so a testcase reads like the spec."""

    guest: Guest

    def _c(self, fn: Fn, *args: int) -> CallResult:
        return self.guest.call(fn, *args)

    def version(self) -> CallResult:
        return self._c(Fn.VERSION)

    def register(
        self, event: int, *, arg: int = 0, ep: int | None = None, flags: int = sdei.Routing.RM_ANY, affinity: int = 0
    ) -> CallResult:
        entry = self.guest.info.entry_point if ep is None else ep
        return self._c(Fn.EVENT_REGISTER, event, entry, arg, flags, affinity)

    def enable(self, event: int) -> CallResult:
        return self._c(Fn.EVENT_ENABLE, event)

    def disable(self, event: int) -> CallResult:
        return self._c(Fn.EVENT_DISABLE, event)

    def context(self, index: int) -> CallResult:
        return self._c(Fn.EVENT_CONTEXT, index)

    def complete(self, status: int = sdei.EV_HANDLED) -> CallResult:
        return self._c(Fn.EVENT_COMPLETE, status)

    def complete_and_resume(self, address: int) -> CallResult:
        return self._c(Fn.EVENT_COMPLETE_AND_RESUME, address)

    def unregister(self, event: int) -> CallResult:
        return self._c(Fn.EVENT_UNREGISTER, event)

    def status(self, event: int) -> CallResult:
        return self._c(Fn.EVENT_STATUS, event)

    def get_info(self, event: int, info: int) -> CallResult:
        return self._c(Fn.EVENT_GET_INFO, event, info)

    def routing_set(self, event: int, mode: int, affinity: int = 0) -> CallResult:
        return self._c(Fn.EVENT_ROUTING_SET, event, mode, affinity)

    def pe_mask(self) -> CallResult:
        return self._c(Fn.PE_MASK)

    def pe_unmask(self) -> CallResult:
        return self._c(Fn.PE_UNMASK)

    def bind(self, intid: int) -> CallResult:
        return self._c(Fn.INTERRUPT_BIND, intid)

    def release(self, event: int) -> CallResult:
        return self._c(Fn.INTERRUPT_RELEASE, event)

    def signal(self, event: int, target_mpidr: int) -> CallResult:
        return self._c(Fn.EVENT_SIGNAL, event, target_mpidr)

    def features(self, feature: int) -> CallResult:
        return self._c(Fn.FEATURES, feature)

    def private_reset(self) -> CallResult:
        return self._c(Fn.PRIVATE_RESET)

    def shared_reset(self) -> CallResult:
        return self._c(Fn.SHARED_RESET)
