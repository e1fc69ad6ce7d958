"""The model as a Guest, in process: no text, no pipe, the fastest way to run a suite."""

from __future__ import annotations

from apflab.guest import CallResult, Guest, Handler, Regs, TargetInfo, Unsupported
from apflab.model.agent import HANDLER_ENTRY, RESUME_PAD, VBAR, ModelAgent
from apflab.model.machine import Machine
from apflab.model.migration import restore, save
from apflab.model.platform import PLATFORMS
from apflab.profiles import Profile

#: What the model can do that a real target may not.
MODEL_CAPABILITIES = frozenset({"inject", "irq", "reset", "in-handler-inject", "mem"})


def model_target_info(name: str, profile: Profile, pes: int, el: int) -> TargetInfo:
    """The model's facts: the same for the in-process guest and ``apflab agent``."""
    machine = Machine(profile, pes, el)
    platform = PLATFORMS[profile.name]
    events = platform.events
    caps = set(MODEL_CAPABILITIES)
    if pes > 1:
        caps.add("multi-pe")
    if platform.kvm_vendor_hyp:
        caps |= {"kvm-vendor-hyp", "apf-host", "migration"}  # the v4 series' VMM interfaces
    return TargetInfo(
        name=name,
        profile=profile,
        conduit="hvc" if profile.name.startswith("kvm") else "smc",
        el=el,
        pes=pes,
        mpidrs=tuple(p.mpidr for p in machine.pes),
        entry_point=HANDLER_ENTRY,
        resume_point=RESUME_PAD,
        vbar=VBAR,
        capabilities=frozenset(caps),
        events=events,
    )


class ModelGuest(Guest):
    def __init__(self, name: str, profile: Profile, pes: int = 4, el: int = 1) -> None:
        self.info = model_target_info(name, profile, pes, el)
        self._pes, self._el = pes, el
        self.reset()

    def reset(self) -> None:
        self.agent = ModelAgent(Machine(self.info.profile, self._pes, self._el))

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
        self.require("apf-host")
        return self.agent.fault(pe, gfn, privileged, latency_us)

    def tick(self, us: int) -> CallResult:
        self.require("apf-host")
        return self.agent.tick(us)

    def apf_command(self, pe: int | None, cmd: int, value: int = 0) -> tuple[int, int]:
        self.require("apf-host")
        if pe is not None:
            self.agent.machine.pe(pe)
        return self.agent._apf().command(pe, cmd, value)

    def irq_level(self, pe: int, intid: int) -> int:
        self.require("apf-host")
        apf = self.agent._apf()
        v = apf.vcpus[self.agent.machine.pe(pe).index]
        return int(v.irq_level and intid == v.irq)

    def mem_read32(self, gpa: int) -> int:
        return self.agent.machine.memory.read32(gpa)

    def mem_write32(self, gpa: int, value: int) -> None:
        self.agent.machine.memory.write32(gpa, value)

    def save_state(self) -> bytes:
        self.require("migration")
        return save(self.agent.machine)

    def restore_state(self, image: bytes) -> None:
        self.require("migration")
        self.agent.replace_machine(restore(image, self.info.profile))

    def restore_snapshot(self) -> None:
        self.require("migration")
        if self.agent.snapshot is None:
            raise Unsupported("no Snapshot step has run since the last reset")
        self.restore_state(self.agent.snapshot)
