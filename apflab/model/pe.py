"""Processing elements of the model: registers, PSTATE and the client EL's system registers.

Only what SDEI dispatch observes is modelled: x0-x30, PC, PSTATE (EL, SP select, DAIF,
NZCV), ELR/SPSR/VBAR of the client EL, MPIDR, and the interrupt lines pending on the PE.
PSTATE is kept in its SPSR encoding (Arm ARM, "SPSR_ELx" for AArch64).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from apflab.abi.aarch64 import (  # noqa: F401 - re-exported for the model's modules
    MPIDR_AFFINITY_MASK,
    VECTOR_IRQ_CURRENT_SP0,
    VECTOR_IRQ_CURRENT_SPX,
    VECTOR_IRQ_LOWER_A64,
    exception_entry_pstate,
    make_pstate,
    mpidr_for,
    pstate_el,
    pstate_sp,
)


@dataclass
class PE:
    """One processing element as the client (the guest) sees it."""

    index: int
    client_el: int = 1
    x: list[int] = field(default_factory=lambda: [0] * 31)
    pc: int = 0
    pstate: int = 0
    elr: int = 0
    spsr: int = 0
    vbar: int = 0
    pending_irqs: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not self.pstate:
            self.pstate = make_pstate(self.client_el, sp=1)

    @property
    def mpidr(self) -> int:
        return mpidr_for(self.index)

    def take_exception(self, vector_offset: int, return_pc: int, return_pstate: int) -> None:
        """Enter the client EL's vector as if an exception were taken at ``return_pc``."""
        self.elr = return_pc
        self.spsr = return_pstate
        self.pstate = exception_entry_pstate(return_pstate, self.client_el)
        self.pc = self.vbar + vector_offset

    def eret(self) -> None:
        self.pc = self.elr
        self.pstate = self.spsr
