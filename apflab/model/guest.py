"""The model as a Guest, in process: no text, no pipe, the fastest way to run a suite.

Where a carried deviation predicts that the implementation hangs or crashes (a wedge),
the model behaves like a target that died: the operation fails with TargetError, and so
does every later one until the target is reset or restarted.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

from apflab.guest import CallResult, Guest, GuestFacts, Handler, Regs, TargetError, Unsupported
from apflab.model.agent import HANDLER_ENTRY, RESUME_PAD, VBAR, ModelAgent
from apflab.model.machine import Machine
from apflab.model.migration import restore, save
from apflab.model.platform import PLATFORMS
from apflab.model.sdei_events import MachineWedged
from apflab.profiles import Profile

#: What the model can do that a real target may not.
MODEL_CAPABILITIES = frozenset(
    {"inject", "irq", "reset", "in-handler-inject", "mem", "context", "pe-power", "system-reset"}
)


def model_facts(profile: Profile, pes: int, el: int) -> GuestFacts:
    """What the model says of itself: the same for the in-process guest and ``apflab agent``."""
    machine = Machine(profile, pes, el)
    platform = PLATFORMS[profile.platform]
    caps = set(MODEL_CAPABILITIES)
    if pes > 1:
        caps.add("multi-pe")
    if platform.kvm_vendor_hyp:
        caps |= {"kvm-vendor-hyp", "apf-host", "migration", "sdei-vmm"}  # the v4 series' VMM interfaces
    return GuestFacts(
        agent="model",
        conduit="hvc" if platform.kvm_vendor_hyp else "smc",
        el=el,
        pes=pes,
        mpidrs=tuple(p.mpidr for p in machine.pes),
        entry_point=HANDLER_ENTRY,
        resume_point=RESUME_PAD,
        vbar=VBAR,
        capabilities=frozenset(caps),
        profile=str(profile),
        events=platform.events,
    )


class ModelGuest(Guest):
    def __init__(self, name: str, profile: Profile, pes: int = 4, el: int = 1) -> None:
        self.name = name
        self.model_profile = profile
        self._facts = model_facts(profile, pes, el)
        self._pes, self._el = pes, el
        self.dead: str | None = None
        self.reset()

    @property
    def facts(self) -> GuestFacts:
        return self._facts

    def _own(self, capability: str) -> None:
        """The model refuses an operation its profile does not have, as a target would."""
        if capability not in self._facts.capabilities:
            raise self._unsupported(capability)

    def reset(self) -> None:
        """Power-on state; a model that wedged is started afresh (as RESET then restart would)."""
        self.agent = ModelAgent(Machine(self.model_profile, self._pes, self._el))
        self.dead = None

    def _live(self, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.dead is not None:
            raise TargetError(f"{self.name}: the target wedged earlier ({self.dead}) and has not restarted")
        try:
            return operation(*args, **kwargs)
        except MachineWedged as exc:
            self.dead = str(exc)
        except TargetError as exc:  # the agent could not go on (a handler would not complete)
            self.dead = str(exc)
        raise TargetError(f"{self.name}: no reply: the target wedged: {self.dead}")

    def call(self, fid: int, *args: int) -> CallResult:
        return self.agent.call(fid, args)

    def set_handler(self, arg: int, handler: Handler) -> None:
        self.agent.set_handler(arg, handler)

    def select_pe(self, pe: int) -> None:
        self.agent.select(pe)

    def regs(self) -> Regs:
        return self.agent.regs()

    def inject(self, event: int, pe: int = 0) -> CallResult:
        return self.agent.inject(event, pe)

    def set_vevent(self, pe: int, event: int) -> CallResult:
        self._own("sdei-vmm")
        return self.agent.set_vevent(pe, event)

    def set_context(self, pstate_bits: int, elr: int, spsr: int) -> None:
        self.agent.set_context(pstate_bits, elr, spsr)

    def power_cycle_pe(self, pe: int) -> None:
        self.agent.power_cycle_pe(pe)

    def system_reset(self) -> None:
        self.agent.system_reset()

    def raise_irq(self, intid: int, pe: int = 0) -> CallResult:
        return self.agent.raise_irq(intid, pe)

    def fault(self, pe: int, gfn: int, privileged: bool = False, latency_us: int | None = None) -> CallResult:
        self._own("apf-host")
        return self.agent.fault(pe, gfn, privileged, latency_us)

    def tick(self, us: int) -> CallResult:
        self._own("apf-host")
        return self.agent.tick(us)

    def apf_command(self, pe: int | None, cmd: int, value: int = 0) -> tuple[int, int]:
        self._own("apf-host")
        if pe is not None:
            self.agent.machine.pe(pe)
        return self.agent._apf().command(pe, cmd, value)

    def irq_level(self, pe: int, intid: int) -> int:
        self._own("apf-host")
        apf = self.agent._apf()
        v = apf.vcpus[self.agent.machine.pe(pe).index]
        return int(v.irq_level and intid == v.irq)

    def mem_read32(self, gpa: int) -> int:
        return self.agent.machine.memory.read32(gpa)

    def mem_write32(self, gpa: int, value: int) -> None:
        self.agent.machine.memory.write32(gpa, value)

    def save_state(self) -> bytes:
        self._own("migration")
        return save(self.agent.machine)

    def restore_state(self, image: bytes) -> None:
        self._own("migration")
        self.agent.replace_machine(restore(image, self.model_profile))

    def restore_snapshot(self) -> None:
        self._own("migration")
        if self.agent.snapshot is None:
            raise Unsupported("no Snapshot step has run since the last reset")
        self.restore_state(self.agent.snapshot)


def _guarded(name: str) -> Callable[..., Any]:
    inner = getattr(ModelGuest, name)

    def operation(self: ModelGuest, *args: Any, **kwargs: Any) -> Any:
        return self._live(inner, self, *args, **kwargs)

    operation.__name__ = operation.__qualname__ = name
    operation.__doc__ = inner.__doc__
    return operation


for _operation in Guest.OPERATIONS:
    if _operation not in ("reset", "restart", "discard", "close"):
        setattr(ModelGuest, _operation, _guarded(_operation))
abc.update_abstractmethods(ModelGuest)
