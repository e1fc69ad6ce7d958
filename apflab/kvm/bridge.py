"""The reference model as the live SDEI dispatcher of real vCPUs (docs/vmm-channel.md).

With the SMCCC filter (Linux >= 6.4, Documentation/virt/kvm/devices/vm.rst) KVM hands
every SDEI call of the guest to apflab-vmm, which sends it here with the vCPU's
registers. For each call the bridge loads those registers into the model's PE, runs the
call through :meth:`Machine.smc` (KVM has already moved PC past the HVC/SMC, so the PE's
PC is set one instruction back first), lets the PE take what is pending
(:meth:`Machine.take_pending`, the instruction boundary after the call) and answers with
what changed: x0..x3 for a plain result, the whole image for a dispatch (DEN0054 5.1:
x0 = event, x1 = argument, x2/x3 = interrupted PC/PSTATE, PSTATE = client EL with D, A,
I, F masked), COMPLETE (the saved x0-x17, PC, PSTATE) or COMPLETE_AND_RESUME (ELR/SPSR
of the client EL too). An event that becomes pending for another vCPU (EVENT_SIGNAL to
another PE, a host injection) makes the bridge KICK that vCPU; its STOP is served the
same way. All SDEI state lives in the model; the VMM keeps none.

The VMM also forwards the agent's host-step call (:data:`HOST_STEP_FID`), by which the
agent relays an INJECT request or handler step to its host: the bridge makes the event
pending on the model right there (the caller takes it on the call's return, another
vCPU is kicked) and returns the host's status in x1 and the caller's kept x0 in x0.
"""

from __future__ import annotations

import threading
from collections import deque

from apflab.abi import sdei, smccc
from apflab.kvm import channel as ch
from apflab.kvm.link import Listener
from apflab.kvm.peer import VmmPeer
from apflab.model.machine import INSTRUCTION_SIZE, Machine, ModelError
from apflab.model.pe import PE
from apflab.profiles import Profile, get_profile

#: A PE takes at most a normal and a critical event at one boundary (DEN0054: depth 2).
MAX_TAKEN_AT_ONCE = 2

#: The agent's host-step call (docs/vmm-channel.md): an SMC64 OEM-service ID (DEN0028
#: owner 3) that apflab-vmm's SMCCC filter forwards with the SDEI range. x1 = kind << 32 |
#: PE, x2 = event or INTID, x3 = the x0 to return; returns x0 = x3, x1 = the host's status.
HOST_STEP_FID = 0xC3000AF1
HOST_STEP_INJECT, HOST_STEP_IRQ = 1, 2


def load_pe(pe: PE, image: ch.RegImage, vbar: int, pc: int) -> None:
    pe.x[: ch.SAVED_GPRS] = list(image.x)
    pe.pc, pe.pstate, pe.elr, pe.spsr, pe.vbar = pc, image.pstate, image.elr, image.spsr, vbar


def pe_image(pe: PE) -> ch.RegImage:
    return ch.RegImage(pe.pc, pe.pstate, pe.elr, pe.spsr, tuple(pe.x[: ch.SAVED_GPRS]))


class ModelBridge:
    """Serves CALL and STOP with a :class:`Machine`; host-side injection kicks vCPUs."""

    def __init__(self, profile: str | Profile = "spec") -> None:
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.machine: Machine | None = None
        self.peer: VmmPeer | None = None
        self._cond = threading.Condition(threading.RLock())
        self._seen: list[tuple] = []
        self._kicked: set[int] = set()
        self.calls = self.stops = self.dispatches = 0
        self.trace: deque[str] = deque(maxlen=64)

    # ------------------------------------------------------- the VMM's side

    def on_hello(self, hello: ch.VmmHello, peer: VmmPeer) -> None:
        """A VMM (re)started: a fresh model with its vCPUs (SDEI state is power-on state)."""
        with self._cond:
            self.machine = Machine(self.profile, pes=hello.vcpus, client_el=1)
            self.peer = peer
            self._seen = [() for _ in range(hello.vcpus)]
            self._kicked.clear()
            self.trace.append(f"HELLO vcpus={hello.vcpus} sdei={hello.sdei} kernel={hello.kernel}")

    def on_call(self, call: ch.Call) -> ch.Answer:
        with self._cond:
            machine = self._machine()
            pe = machine.pe(call.vcpu)
            load_pe(pe, call.image, call.vbar, pc=call.image.pc - INSTRUCTION_SIZE)
            if call.image.x[0] & 0xFFFFFFFF == HOST_STEP_FID:
                pe.pc += INSTRUCTION_SIZE
                status = self._host_step(pe.x[1] >> 32, pe.x[1] & 0xFFFFFFFF, pe.x[2])
                pe.x[0], pe.x[1] = pe.x[3], smccc.to_u64(status)
            else:
                machine.smc(call.vcpu)
            self.calls += 1
            answer = self._after(call.vcpu, call.image, pe)
            self.trace.append(f"CALL {call.vcpu} {call.image.x[0]:#x} -> {ch.format_answer(answer)[:60]}")
            return answer

    def on_stop(self, stop: ch.Stop) -> ch.Answer:
        with self._cond:
            self.stops += 1
            self._kicked.discard(stop.vcpu)
            pe = self._machine().pe(stop.vcpu)
            if not stop.running:  # powered off (before PSCI CPU_ON): events stay pending
                self._cond.notify_all()
                return ch.Keep(stop.vcpu)
            load_pe(pe, stop.image, stop.vbar, pc=stop.image.pc)
            answer = self._after(stop.vcpu, stop.image, pe)
            self.trace.append(f"STOP {stop.vcpu} -> {ch.format_answer(answer)[:60]}")
            return answer

    def on_power(self, power: ch.Power) -> None:
        """PSCI CPU_ON powered a vCPU on (the VMM says so before it runs): its PE starts afresh,
        masked and with no private event (DEN0054C 5.1.12; Machine.cpu_on)."""
        if not power.on:
            return
        with self._cond:
            self._machine().cpu_on(power.vcpu)
            self._seen[power.vcpu] = self._pending_of(power.vcpu)
            self._kicked.discard(power.vcpu)
            self.trace.append(f"POWER {power.vcpu} on")
            self._cond.notify_all()

    def _host_step(self, kind: int, target: int, number: int) -> int:
        """The host's side of a handler step: an injection now (no interrupt lines: NOT_SUPPORTED)."""
        if kind != HOST_STEP_INJECT:
            return smccc.NOT_SUPPORTED
        try:
            return self._machine().inject(number, target)
        except ModelError:  # no such event or PE: the host refuses, as KVM's INJECT_EVENT does
            return sdei.INVALID_PARAMETERS

    def _after(self, vcpu: int, before: ch.RegImage, pe: PE) -> ch.Answer:
        machine = self._machine()
        for _ in range(MAX_TAKEN_AT_ONCE):
            if not machine.take_pending(vcpu):
                break
            self.dispatches += 1
        self._seen[vcpu] = self._pending_of(vcpu)
        self._kick_pending(exclude=vcpu)
        self._cond.notify_all()
        return ch.answer_for(vcpu, before, pe_image(pe))

    # ------------------------------------------------------------ pending

    def _machine(self) -> Machine:
        if self.machine is None:
            raise RuntimeError("no VMM has said HELLO to this bridge yet")
        return self.machine

    def _pending_of(self, vcpu: int) -> tuple:
        sdei = self._machine().sdei
        return tuple(sdei.pending[vcpu]), tuple(sdei.shared_pending)

    def _kick_pending(self, exclude: int | None) -> list[int]:
        """KICK every vCPU (but ``exclude``) whose pending events changed since it was served."""
        kicked = []
        for vcpu in range(len(self._seen)):
            if vcpu == exclude:
                continue
            pending = self._pending_of(vcpu)
            if any(pending) and pending != self._seen[vcpu]:
                self._seen[vcpu] = pending
                self._kicked.add(vcpu)
                kicked.append(vcpu)
                if self.peer is not None:
                    self.peer.kick(vcpu)
        return kicked

    # ------------------------------------------------------------ host side

    def inject(self, event: int, vcpu: int) -> int:
        """Host-side injection (Machine.inject); the vCPU is kicked to take it."""
        with self._cond:
            status = self._machine().inject(event, vcpu)
            self._kick_pending(exclude=None)
            return status

    def raise_irq(self, intid: int, vcpu: int) -> int:
        """Assert an interrupt line (Machine.raise_irq); a vCPU with a new event is kicked."""
        with self._cond:
            status = self._machine().raise_irq(intid, vcpu)
            self._kick_pending(exclude=None)
            return status

    def quiesce(self, timeout: float) -> bool:
        """Wait until every kicked vCPU has answered and no handler runs; False at the bound."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._kicked and not any(self._machine().sdei.stacks), timeout=timeout
            )


def accept_vmm(listener: Listener, bridge: ModelBridge, timeout: float) -> VmmPeer:
    """Wait (bounded) for one VMM on ``listener`` and serve it with ``bridge``."""
    return VmmPeer(listener.accept(timeout), bridge, hello_timeout=timeout)
