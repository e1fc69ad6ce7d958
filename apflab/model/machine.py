"""A model machine: PEs, the SMCCC conduit into the dispatcher, and host-side controls.

The machine executes nothing but SMCCC calls: :meth:`Machine.smc` is the conduit
instruction, and :meth:`Machine.take_pending` is the instruction boundary at which a PE
takes a pending SDEI event. What the guest program does between those points is the
guest agent's business (:mod:`apflab.model.agent`).
"""

from __future__ import annotations

from apflab.abi import smccc
from apflab.model.apf import AsyncPf
from apflab.model.memory import Memory
from apflab.model.pe import PE, make_pstate
from apflab.model.platform import PLATFORMS
from apflab.model.sdei import Dispatcher
from apflab.model.smccc import SmcccFront
from apflab.profiles import Profile

#: The conduit instruction is 4 bytes; a call returns to the next one.
INSTRUCTION_SIZE = 4


class ModelError(Exception):
    """A host-side request the model cannot carry out (bad PE index, unknown event)."""


class Machine:
    def __init__(self, profile: Profile, pes: int = 4, client_el: int = 1) -> None:
        if not 1 <= pes <= 64:
            raise ModelError(f"the model supports 1 to 64 PEs, not {pes}")
        if client_el not in (1, 2):
            raise ModelError(f"the client runs at EL1 or EL2, not EL{client_el}")
        self.profile = profile
        self.platform = PLATFORMS[profile.platform]
        self.pes = [PE(i, client_el) for i in range(pes)]
        self.sdei = Dispatcher(self.platform, profile, self.pes)
        self.memory = Memory()
        self.apf: AsyncPf | None = None
        if self.platform.kvm_vendor_hyp:  # the v4 APF series: every vCPU has an APF block
            self.apf = AsyncPf(self.sdei, self.memory, pes, lambda pe: bool(self.sdei.stacks[pe]))
            self.sdei.on_dispatch = self.apf.on_delivered
        self.front = SmcccFront(self.platform, self.sdei, self.apf)

    def pe(self, index: int) -> PE:
        if not 0 <= index < len(self.pes):
            raise ModelError(f"no PE {index}: this machine has PEs 0..{len(self.pes) - 1}")
        return self.pes[index]

    def smc(self, index: int) -> bool:
        """Execute the conduit instruction at the PE's PC with its current x0..x17.

        Returns False when the call did not return to the next instruction (COMPLETE).
        """
        cpu = self.pe(index)
        cpu.pc += INSTRUCTION_SIZE
        result = self.front.call(index, list(cpu.x[:18]))
        if result.x0 is not None:
            cpu.x[0] = smccc.to_u64(result.x0)
            if result.extra is not None:
                cpu.x[1:4] = [smccc.to_u64(v) for v in result.extra]
        return not result.redirected

    def take_pending(self, index: int) -> bool:
        """At an instruction boundary (a vCPU entry): post finished async page faults first
        (KVM_REQ_ASYNC_PF is checked before KVM_REQ_SDEI), then dispatch a pending event."""
        if self.apf is not None:
            self.apf.check_completion(index)
        taken = self.sdei.next_dispatch(index)
        if taken is None:
            return False
        self.sdei.dispatch(index, *taken)
        return True

    # ----------------------------------------------------------- host side

    def _event(self, event: int):
        ev = self.sdei.events.get(event)
        if ev is None:
            raise ModelError(f"event {event:#x} does not exist on platform {self.platform.name}")
        return ev

    def inject(self, event: int, index: int) -> int:
        """Host-side injection of ``event`` on PE ``index`` (KVM_SDEI_CMD_INJECT_EVENT style)."""
        self.pe(index)
        return self.sdei.host_inject(self._event(event), index)

    def set_vevent(self, event: int, index: int) -> int:
        """KVM_SDEI_CMD_SET_VEVENT: the VMM queues ``event`` on vCPU ``index``."""
        self.pe(index)
        self._event(event)
        return self.sdei.set_vevent(event, index)

    def raise_irq(self, intid: int, index: int) -> int:
        """Assert interrupt ``intid`` (PPIs on PE ``index``); a bound one triggers its event."""
        cpu = self.pe(index)
        ev = self.sdei.event_for_intid(intid)
        if ev is None:
            cpu.pending_irqs.add(intid)
            return 0
        return self.sdei.trigger(ev, index)

    def cpu_on(self, index: int) -> None:
        """PSCI CPU_OFF on PE ``index``, then CPU_ON of it: it starts afresh."""
        cpu = self.pe(index)
        cpu.x = [0] * 31
        cpu.elr = cpu.spsr = 0
        cpu.pstate = make_pstate(cpu.client_el, sp=1)
        self.sdei.cpu_on(index)

    def system_reset(self) -> None:
        """PSCI SYSTEM_RESET: every PE starts afresh; the SDEI dispatcher resets with the machine."""
        for cpu in self.pes:
            cpu.x = [0] * 31
            cpu.elr = cpu.spsr = 0
            cpu.pstate = make_pstate(cpu.client_el, sp=1)
        self.sdei.system_reset()
