"""Asynchronous page faults of the KVM arm64 v4 series, host side and hypercall side.

docs/reference/apf.md is the design (the series' apf.rst and patches): the SMCCC vendor
call 0x86000002 and its sub-functions, the control word, the shared data block in guest
memory, tokens, the host's decisions on a stage-2 fault, page-ready, cancellation and
wake-all, IRQ_ACK and the VMM's KVM_ARM_ASYNC_PF_COMMAND. Where the v4 code differs from
that design the profile's named deviations switch (``self.dev``). Time is a clock the
host side advances (``tick``): a fault's I/O completes ``latency_us`` after it started.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from apflab.abi import apf, smccc
from apflab.abi.smccc import MASK64
from apflab.model.memory import Memory
from apflab.model.sdei import Dispatcher, Result

# Linux errno values the VMM interface returns (negated).
EPERM, ENOENT, EIO, EFAULT, EINVAL, ENOSPC, EINPROGRESS = 1, 2, 5, 14, 22, 28, 115

# Outcomes of a stage-2 fault (HOST FAULT).
SYNC, ASYNC, IN_FLIGHT = 0, 1, 2

DEFAULT_LATENCY_US = 1000


@dataclass(slots=True)
class Work:
    """One async page fault being resolved (kvm_arch_async_pf + its completion time)."""

    token: int
    gfn: int | None
    done_at: int
    wakeall: bool = False


@dataclass(slots=True)
class VcpuApf:
    """vcpu->arch.apf, plus the host's queue and the PPI's line level."""

    index: int
    sdei: int = 0
    irq: int = 0
    control: int = 0
    send_user_only: bool = True
    seq: int = 0
    notpresent_pending: bool = False
    notpresent_token: int = 0
    pageready_pending: bool = False
    slots: dict[int, int] = field(default_factory=dict)  # gfn -> token
    queue: list[Work] = field(default_factory=list)
    irq_level: bool = False
    #: Where the hva cache points: the block's address at the last enable (kept on disable).
    cache_gpa: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.control & apf.CONTROL_ENABLED)

    @property
    def gpa(self) -> int:
        return self.control & apf.CONTROL_GPA_MASK


class AsyncPf:
    def __init__(self, dispatcher: Dispatcher, memory: Memory, npes: int, running: Callable[[int], bool]) -> None:
        self.sdei = dispatcher
        self.memory = memory
        self.vcpus = [VcpuApf(i) for i in range(npes)]
        self.clock_us = 0
        self.latency_us = DEFAULT_LATENCY_US
        self._running = running

    def dev(self, name: str) -> bool:
        """Whether the profile carries deviation ``name`` (apflab.profiles)."""
        return self.sdei.profile.predicts(name)

    # ---------------------------------------------------------- shared block

    def _block(self, v: VcpuApf) -> tuple[int, int]:
        """(reason, token): the first two words of the shared block."""
        return self.memory.read_pair32(v.cache_gpa + apf.DATA_REASON_OFFSET)

    def _post(self, v: VcpuApf, token: int, reason: int) -> None:
        """Token and reason together: the host writes token, then reason, and nothing in the
        model runs in between, so one update is what the guest can observe."""
        self.memory.write_pair32(v.cache_gpa + apf.DATA_REASON_OFFSET, reason, token)

    # ------------------------------------------------------------ SMCCC side

    def hypercall(self, pe: int, args: list[int], raw: list[int] | None = None) -> Result:
        """0x86000002 (SMC32): x1 = sub-function; x0 = status, x1 = value.

        ``args`` are W1.. as SMC32 defines them; ``raw`` the full x1.. the caller left."""
        v = self.vcpus[pe]
        sub = args[0]  # v4 reads x1 truncated to 32 bits: the same as W1
        if sub == apf.Sub.VERSION:
            return Result(smccc.SUCCESS, (apf.VERSION_1_0_0, 0, 0))
        if sub == apf.Sub.SLOTS:
            return Result(smccc.SUCCESS, (apf.SLOTS_PER_VCPU, 0, 0))
        if sub == apf.Sub.SDEI:
            return Result(smccc.SUCCESS, (v.sdei, 0, 0))
        if sub == apf.Sub.IRQ:
            return Result(smccc.SUCCESS, (v.irq, 0, 0))
        if sub == apf.Sub.ENABLE:
            low = args[1] & 0xFFFFFFFF
            if raw is not None and self.dev("apf_enable_x2_unmasked"):
                low = raw[1]
            return Result(self.enable(pe, ((args[2] & 0xFFFFFFFF) << 32 | low) & MASK64), (0, 0, 0))
        if sub == apf.Sub.IRQ_ACK:
            if v.pageready_pending:
                v.irq_level = False
                v.pageready_pending = False
                self.check_completion(pe)
            return Result(smccc.SUCCESS, (0, 0, 0))
        return Result(smccc.NOT_SUPPORTED, (0, 0, 0))

    def enable(self, pe: int, data: int) -> int:
        """The ENABLE logic, shared by the hypercall and the VMM's SET_CONTROL."""
        v = self.vcpus[pe]
        want = bool(data & apf.CONTROL_ENABLED)
        if want == v.enabled:
            return smccc.NOT_REQUIRED
        if want:
            if not v.sdei or not v.irq:
                return smccc.INVALID_PARAMETER
            if v.sdei not in self.sdei.events:
                return smccc.NOT_SUPPORTED  # the SDEI notifier cannot be registered
            if not self.memory.contains(data & apf.CONTROL_GPA_MASK, 8):
                return smccc.NOT_SUPPORTED  # the hva cache cannot be set up
            v.slots.clear()
            v.send_user_only = not data & apf.CONTROL_SEND_ALWAYS
            v.cache_gpa = data & apf.CONTROL_GPA_MASK
            v.queue.append(Work(apf.WAKE_ALL_TOKEN, None, self.clock_us, wakeall=True))
        elif self.dev("apf_page_ready_after_disable"):
            # Only finished work is dropped; I/O still running completes later.
            v.queue = [w for w in v.queue if w.done_at > self.clock_us and not w.wakeall]
        else:
            v.queue.clear()
        v.control = data
        return smccc.SUCCESS

    # ------------------------------------------------------------- host side

    def _allowed(self, pe: int, v: VcpuApf, privileged: bool) -> bool:
        """Whether a new not-present may be sent now (kvm_arch_async_not_present_allowed)."""
        if not v.enabled or (v.send_user_only and privileged) or self._running(pe):
            return False
        if v.pageready_pending and self.dev("apf_not_present_refused_while_page_ready_pending"):
            return False
        return self._block(v) == (0, 0)

    def fault(self, pe: int, gfn: int, privileged: bool, latency_us: int | None = None) -> tuple[int, int]:
        """A stage-2 fault on ``gfn`` that needs I/O: (outcome, token)."""
        v = self.vcpus[pe]
        late = self.dev("apf_slots_checked_only_when_allowed")
        if gfn in v.slots and not late:
            return IN_FLIGHT, v.slots[gfn]
        if not self._allowed(pe, v, privileged):
            return SYNC, 0
        if gfn in v.slots:
            return IN_FLIGHT, v.slots[gfn]
        if len(v.slots) >= apf.SLOTS_PER_VCPU:
            return SYNC, 0
        token = apf.token(v.seq, pe)
        v.seq = (v.seq + 1) & 0xFFFF
        latency = self.latency_us if latency_us is None else latency_us
        v.slots[gfn] = token
        v.queue.append(Work(token, gfn, self.clock_us + latency))
        self._post(v, token, apf.REASON_PAGE_NOT_PRESENT)
        v.notpresent_pending, v.notpresent_token = True, token
        self.sdei.kvm_inject(v.sdei, pe, immediate=True)  # if it fails, the block stays populated
        return ASYNC, token

    def tick(self, us: int) -> int:
        """Advance the clock; returns how many faults' I/O finished."""
        before = self.clock_us
        self.clock_us += max(us, 0)
        return sum(1 for v in self.vcpus for w in v.queue if before < w.done_at <= self.clock_us)

    def on_delivered(self, pe: int, event: int) -> None:
        """The SDEI notifier's DELIVERED: the not-present notification reached the guest."""
        v = self.vcpus[pe]
        if event == v.sdei:
            v.notpresent_pending, v.notpresent_token = False, 0

    def _can_dequeue(self, v: VcpuApf, work: Work) -> bool:
        if not v.enabled:
            return True  # (with the design's disable the queue is empty by now)
        reason, token = self._block(v)
        if not v.pageready_pending and (reason, token) == (0, 0):
            return True
        undelivered = (
            reason == apf.REASON_PAGE_NOT_PRESENT and v.notpresent_pending and token == v.notpresent_token == work.token
        )
        return undelivered

    def check_completion(self, pe: int) -> None:
        """At vCPU entry (KVM_REQ_ASYNC_PF, before SDEI delivery): post finished faults."""
        v = self.vcpus[pe]
        while v.queue:
            done = [w for w in v.queue if w.done_at <= self.clock_us]
            if not done or not self._can_dequeue(v, done[0]):
                return
            work = done[0]
            v.queue.remove(work)
            self._page_present(pe, v, work)

    def _page_present(self, pe: int, v: VcpuApf, work: Work) -> None:
        if not v.enabled and not self.dev("apf_page_ready_after_disable"):
            return
        if not work.wakeall:
            v.slots.pop(work.gfn, None)  # type: ignore[arg-type]
            if v.notpresent_pending and v.notpresent_token == work.token and self.sdei.kvm_cancel(v.sdei, pe) == 0:
                # The not-present notification never reached the guest: take it back, no PPI.
                v.notpresent_pending, v.notpresent_token = False, 0
                self._post(v, 0, 0)
                return
        self._post(v, work.token, apf.REASON_PAGE_READY)
        v.pageready_pending = True
        v.irq_level = True  # level-triggered PPI, asserted until IRQ_ACK

    # ----------------------------------------------------------- VMM side

    def command(self, pe: int | None, cmd: int, value: int = 0) -> tuple[int, int]:
        """KVM_ARM_ASYNC_PF_COMMAND on the VM fd (pe None) or a vCPU fd: (errno, value)."""
        if pe is None:
            return (0, apf.VERSION_1_0_0) if cmd == apf.Command.GET_VERSION else (-EINVAL, value)
        v = self.vcpus[pe]
        if cmd == apf.Command.GET_SDEI:
            return 0, v.sdei
        if cmd == apf.Command.GET_IRQ:
            return 0, v.irq
        if cmd == apf.Command.GET_CONTROL:
            return 0, v.control
        if cmd == apf.Command.SET_SDEI:
            v.sdei = value
            return 0, value
        if cmd == apf.Command.SET_IRQ:
            v.irq = value & 0xFFFFFFFF
            return 0, v.irq
        if cmd == apf.Command.SET_CONTROL:
            return (0 if self.enable(pe, value) == smccc.SUCCESS else -EIO), value
        return -EINVAL, value
