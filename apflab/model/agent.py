"""The guest agent, as it runs on the model: the program the bare-metal agent is in C.

It does what ``guest_payloads/agent`` does on a real target, at the same (model)
addresses: puts x0..x17 in place and issues the conduit instruction; when an SDEI
event is taken it runs the handler configured for the registration argument (records
x0..x3 and PSTATE at entry, makes the configured calls, overwrites x0-x17 so a
restore can be seen, then COMPLETE or COMPLETE_AND_RESUME); its landing pad and IRQ
vector record ELR/SPSR/PSTATE and return to the interrupted code. Every loop has a
bound: too many handler entries for one command is reported, not spun on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from apflab.abi import sdei
from apflab.abi.aarch64 import PSTATE_SETTABLE
from apflab.abi.smccc import MASK64, to_s64
from apflab.guest import Call, CallResult, Delivery, Handler, HandlerStep, Landing, Regs, TargetError
from apflab.model.machine import Machine, ModelError
from apflab.model.memory import MemoryError_
from apflab.model.migration import MigrationError
from apflab.model.pe import VECTOR_IRQ_CURRENT_SP0, VECTOR_IRQ_CURRENT_SPX, VECTOR_IRQ_LOWER_A64, make_pstate

# Where the agent's pieces sit in the model's guest memory (RAM starts at 0x40000000).
AGENT_BASE = 0x40080000
CALL_SITE = AGENT_BASE + 0x100
IDLE_PC = AGENT_BASE + 0x200
HANDLER_ENTRY = AGENT_BASE + 0x1000
HANDLER_CALL_SITE = AGENT_BASE + 0x1100
RESUME_PAD = AGENT_BASE + 0x1800
VBAR = AGENT_BASE + 0x2000

#: Where COMPLETE_AND_RESUME may land: the agent's pad, or an IRQ vector (v4 injects an IRQ).
LANDING_PADS = (RESUME_PAD, *(VBAR + v for v in (VECTOR_IRQ_CURRENT_SP0, VECTOR_IRQ_CURRENT_SPX, VECTOR_IRQ_LOWER_A64)))

#: Value written to x2..x17 before a handler completes, so a missing restore shows.
POISON = 0x5DE1_0000_0000_0000

#: Bound on handler entries while one command runs (an interrupt storm ends here).
MAX_ENTRIES_PER_COMMAND = 64


class Wedged(TargetError):
    """The agent cannot go on: a handler could not complete, or entries would not stop."""


@dataclass
class _Record:
    seq: int
    pe: int
    depth: int
    x: tuple[int, int, int, int]
    pstate: int
    results: list[int] = field(default_factory=list)
    landed: Landing | None = None
    fin: int | None = None

    def freeze(self) -> Delivery:
        return Delivery(self.seq, self.pe, self.depth, self.x, self.pstate, tuple(self.results), self.landed, self.fin)


class ModelAgent:
    """Drives a :class:`Machine` the way the guest agent drives a real target."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.handlers: dict[int, Handler] = {}
        self._entries: dict[int, int] = {}  # handler entries per argument since it was set
        self.selected = 0
        self._records: list[_Record] = []
        self._landing_for: dict[int, list[_Record]] = {}
        self._last: dict[int, Regs] = {}
        self.snapshot: bytes | None = None
        #: PSTATE bits the main context runs with (CTX), per PE.
        self.context_bits = [0] * len(machine.pes)
        for cpu in machine.pes:
            self._enter_loop(cpu.index)

    def _enter_loop(self, pe: int) -> None:
        """The agent's command loop on ``pe``, as it starts: vectors set, the context's bits."""
        cpu = self.machine.pe(pe)
        cpu.vbar = VBAR
        cpu.pc = IDLE_PC
        cpu.pstate = make_pstate(cpu.client_el, sp=1) | self.context_bits[pe]

    def replace_machine(self, machine: Machine) -> None:
        """Go on with a restored machine (after a migration); the guest's memory came along."""
        self.machine = machine
        self._landing_for = {}
        self._last = {}

    # ------------------------------------------------------------- commands

    def select(self, pe: int) -> None:
        self.machine.pe(pe)
        self.selected = pe

    def set_handler(self, arg: int, handler: Handler) -> None:
        """Keep ``handler`` for entries with argument ``arg``; a step that names a PE this
        machine does not have is refused now, not when the handler runs."""
        for n, step in enumerate(handler.calls, 1):
            try:
                for name in ("pe",):
                    if hasattr(step, name):
                        self.machine.pe(getattr(step, name))
                if isinstance(step, Call) and len(step.args) > 17:
                    raise ModelError(f"a call takes at most 17 arguments (x1..x17), got {len(step.args)}")
            except ModelError as exc:
                raise ModelError(f"{_step_name(n, handler, step)}: {exc}") from None
        self.handlers[arg & MASK64] = handler
        self._entries[arg & MASK64] = 0

    def call(self, fid: int, args: tuple[int, ...] | list[int]) -> CallResult:
        if len(args) > 17:
            raise ModelError(f"a call takes at most 17 arguments (x1..x17), got {len(args)}")
        pe = self.selected
        self._begin()
        self._smc(pe, CALL_SITE, fid, list(args))
        self._service_all(first=pe)
        return self._end(pe)

    def inject(self, event: int, pe: int) -> CallResult:
        self._begin()
        status = self.machine.inject(event, pe)
        self._service_all(first=pe)
        return self._end(self.selected, status)

    def set_vevent(self, pe: int, event: int) -> CallResult:
        self._begin()
        status = self.machine.set_vevent(event, pe)
        self._service_all(first=pe)
        return self._end(self.selected, status)

    def set_context(self, pstate_bits: int, elr: int, spsr: int) -> None:
        if pstate_bits & ~PSTATE_SETTABLE:
            raise ModelError(f"PSTATE bits {pstate_bits & ~PSTATE_SETTABLE:#x} cannot be set from the guest (CTX)")
        pe = self.selected
        cpu = self.machine.pe(pe)
        self.context_bits[pe] = pstate_bits
        cpu.pstate = (cpu.pstate & ~PSTATE_SETTABLE) | pstate_bits
        cpu.elr, cpu.spsr = elr & MASK64, spsr & MASK64
        self._last.pop(pe, None)

    def power_cycle_pe(self, pe: int) -> None:
        if pe == 0:
            raise ModelError("PE 0 turns the others off and on; it cannot cycle itself")
        self.machine.cpu_on(pe)
        self.context_bits[pe] = 0
        self._enter_loop(pe)
        self._last.pop(pe, None)

    def system_reset(self) -> None:
        self.machine.system_reset()
        self.handlers.clear()
        self._entries.clear()
        self._last.clear()
        self.selected = 0
        self.context_bits = [0] * len(self.machine.pes)
        for cpu in self.machine.pes:
            self._enter_loop(cpu.index)

    def raise_irq(self, intid: int, pe: int) -> CallResult:
        self._begin()
        status = self.machine.raise_irq(intid, pe)
        self._service_all(first=pe)
        return self._end(self.selected, status)

    def fault(self, pe: int, gfn: int, privileged: bool, latency_us: int | None) -> CallResult:
        """A stage-2 fault; KVM then re-enters the vCPU at once, so notifications happen."""
        apf = self._apf()
        self.machine.pe(pe)
        self._begin()
        outcome, token = apf.fault(pe, gfn, privileged, latency_us)
        self._service_all(first=pe)
        result = self._end(self.selected, outcome)
        return CallResult((outcome, token, 0, 0), result.deliveries)

    def tick(self, us: int) -> CallResult:
        apf = self._apf()
        self._begin()
        done = apf.tick(us)
        self._service_all(first=self.selected)
        return self._end(self.selected, done)

    def _apf(self):
        if self.machine.apf is None:
            raise ModelError(f"profile {self.machine.profile} has no asynchronous page faults")
        return self.machine.apf

    def regs(self) -> Regs:
        pe = self.selected
        if pe not in self._last:
            cpu = self.machine.pe(pe)
            return Regs(tuple(cpu.x[:18]), cpu.pc, cpu.pstate, cpu.elr, cpu.spsr)
        return self._last[pe]

    # ------------------------------------------------------------ internals

    def _begin(self) -> None:
        self._records = []

    def _end(self, pe: int, status: int | None = None) -> CallResult:
        cpu = self.machine.pe(pe)
        self._last[pe] = Regs(tuple(cpu.x[:18]), cpu.pc, cpu.pstate, cpu.elr, cpu.spsr)
        x = tuple(cpu.x[:4]) if status is None else (status & MASK64, 0, 0, 0)
        # Back to the command loop: the next asynchronous event interrupts it there.
        for other in self.machine.pes:
            other.pc = IDLE_PC
        deliveries = tuple(r.freeze() for r in self._records)
        return CallResult(x, deliveries)  # type: ignore[arg-type]

    def _smc(self, pe: int, site: int, fid: int, args: list[int]) -> bool:
        """Issue the call at ``site``; False if it did not return (it completed a handler)."""
        cpu = self.machine.pe(pe)
        cpu.x[0] = fid & MASK64
        padded = [a & MASK64 for a in args] + [0] * (17 - len(args))
        cpu.x[1:18] = padded
        cpu.pc = site
        return self.machine.smc(pe)

    def _service_all(self, first: int) -> None:
        order = [first] + [p.index for p in self.machine.pes if p.index != first]
        progress = True
        while progress:
            progress = False
            for pe in order:
                if self._service(pe):
                    progress = True

    def _service(self, pe: int) -> bool:
        """Take pending events on ``pe`` until none is left; True if any was taken."""
        took = False
        while self.machine.take_pending(pe):
            took = True
            if len(self._records) >= MAX_ENTRIES_PER_COMMAND:
                raise Wedged(f"more than {MAX_ENTRIES_PER_COMMAND} handler entries in one command")
            self._run_handler(pe)
        return took

    def _run_handler(self, pe: int) -> None:
        cpu = self.machine.pe(pe)
        if cpu.pc != HANDLER_ENTRY:
            raise Wedged(f"PE{pe} entered a handler at {cpu.pc:#x}, not the agent's entry point")
        record = _Record(
            seq=len(self._records),
            pe=pe,
            depth=len(self.machine.sdei.stacks[pe]),
            x=(cpu.x[0], cpu.x[1], cpu.x[2], cpu.x[3]),
            pstate=cpu.pstate,
        )
        self._records.append(record)
        arg = cpu.x[1]
        handler = self.handlers.get(arg, Handler())
        runs = self._entries.get(arg, 0)
        self._entries[arg] = runs + 1
        for n, step in enumerate(() if handler.once and runs else handler.calls, 1):
            record.results.append(self._step(pe, step, _step_name(n, handler, step)))
        self._finish(pe, record, handler)

    def _step(self, pe: int, step: HandlerStep, name: str) -> int:
        """Make one handler step on ``pe``, then let every PE take what it caused. A step
        the model refuses (an unknown event, an address outside RAM, a profile without
        APF or migration) is an error naming the step."""
        try:
            result = step.apply(_InHandler(self, pe))
        except (ModelError, MemoryError_, MigrationError) as exc:
            raise ModelError(f"{name} on PE{pe}: {exc}") from None
        self._service_all(first=pe)
        return result

    def _finish(self, pe: int, record: _Record, handler: Handler) -> None:
        cpu = self.machine.pe(pe)
        cpu.x[2:18] = [POISON | i for i in range(2, 18)]
        if handler.finish == "resume":
            target = RESUME_PAD if handler.resume_at is None else handler.resume_at
            returned = self._smc(pe, HANDLER_CALL_SITE, sdei.Fn.EVENT_COMPLETE_AND_RESUME, [target])
        else:
            returned = self._smc(pe, HANDLER_CALL_SITE, sdei.Fn.EVENT_COMPLETE, [handler.status])
        if returned:
            # The finishing call failed and returned: report it, then fall back to COMPLETE.
            record.fin = to_s64(cpu.x[0])
            if self._smc(pe, HANDLER_CALL_SITE, sdei.Fn.EVENT_COMPLETE, [sdei.EV_HANDLED]):
                raise Wedged(f"PE{pe}: the handler cannot complete (COMPLETE returned {to_s64(cpu.x[0])})")
        # Pending events are taken at once, before the code at the new PC runs.
        self._landing_for.setdefault(pe, []).append(record)
        self._service_all(first=pe)
        self._land(pe)

    def _land(self, pe: int) -> None:
        cpu = self.machine.pe(pe)
        pending = self._landing_for.get(pe)
        if not pending:
            return
        record = pending.pop()
        if cpu.pc in LANDING_PADS:
            record.landed = Landing(cpu.pc, cpu.elr, cpu.spsr, cpu.pstate)
            cpu.eret()
            self._service_all(first=pe)


def _step_name(n: int, handler: Handler, step: HandlerStep) -> str:
    """``handler step 2 of 3, Fault(pe=0x9, gfn=0x40000, privileged=False)``, for an error."""
    values = []
    for f in fields(step):
        v = getattr(step, f.name)
        shown = ", ".join(f"{a:#x}" for a in v) if isinstance(v, tuple) else v if isinstance(v, bool) else f"{v:#x}"
        values.append(f"{f.name}={shown}")
    return f"handler step {n} of {len(handler.calls)}, {type(step).__name__}({', '.join(values)})"


@dataclass
class _InHandler:
    """The Guest operations a handler step can be, as the agent makes them inside a handler on ``pe``.

    Each returns the step's result: x0 of a call, the host's status of an injection or
    interrupt, the word read, 0 for a write, the fault's outcome, the snapshot's size.
    """

    agent: ModelAgent
    pe: int

    def call(self, fid: int, *args: int) -> int:
        self.agent._smc(self.pe, HANDLER_CALL_SITE, fid, list(args))
        return to_s64(self.agent.machine.pe(self.pe).x[0])

    def inject(self, event: int, pe: int) -> int:
        return self.agent.machine.inject(event, pe)

    def set_vevent(self, pe: int, event: int) -> int:
        return self.agent.machine.set_vevent(event, pe)

    def raise_irq(self, intid: int, pe: int) -> int:
        return self.agent.machine.raise_irq(intid, pe)

    def mem_read32(self, gpa: int) -> int:
        return self.agent.machine.memory.read32(gpa)

    def mem_write32(self, gpa: int, value: int) -> int:
        self.agent.machine.memory.write32(gpa, value)
        return 0

    def fault(self, pe: int, gfn: int, privileged: bool) -> int:
        return self.agent._apf().fault(pe, gfn, privileged)[0]

    def tick(self, us: int) -> int:
        return self.agent._apf().tick(us)

    def save_state(self) -> int:
        from apflab.model.migration import save

        self.agent.snapshot = save(self.agent.machine)
        return len(self.agent.snapshot)
