"""The model as a Guest, in process: no text, no pipe, the fastest way to run a suite."""

from __future__ import annotations

from apflab.guest import CallResult, Guest, GuestFacts, Handler, Regs, Unsupported
from apflab.model.agent import HANDLER_ENTRY, RESUME_PAD, VBAR, ModelAgent
from apflab.model.machine import Machine
from apflab.model.migration import restore, save
from apflab.model.platform import PLATFORMS
from apflab.profiles import Profile

#: What the model can do that a real target may not.
MODEL_CAPABILITIES = frozenset({"inject", "irq", "reset", "in-handler-inject", "mem"})


def model_facts(profile: Profile, pes: int, el: int) -> GuestFacts:
    """What the model says of itself: the same for the in-process guest and ``apflab agent``."""
    machine = Machine(profile, pes, el)
    platform = PLATFORMS[profile.name]
    caps = set(MODEL_CAPABILITIES)
    if pes > 1:
        caps.add("multi-pe")
    if platform.kvm_vendor_hyp:
        caps |= {"kvm-vendor-hyp", "apf-host", "migration"}  # the v4 series' VMM interfaces
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
        profile=profile.name,
        events=platform.events,
    )


class ModelGuest(Guest):
    def __init__(self, name: str, profile: Profile, pes: int = 4, el: int = 1) -> None:
        self.name = name
        self.model_profile = profile
        self._facts = model_facts(profile, pes, el)
        self._pes, self._el = pes, el
        self.reset()

    @property
    def facts(self) -> GuestFacts:
        return self._facts

    def _own(self, capability: str) -> None:
        """The model refuses an operation its profile does not have, as a target would."""
        if capability not in self._facts.capabilities:
            raise self._unsupported(capability)

    def reset(self) -> None:
        self.agent = ModelAgent(Machine(self.model_profile, self._pes, self._el))

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
