"""AArch64 register layouts the SDEI tests read: PSTATE in SPSR encoding, MPIDR affinity.

Arm ARM (DDI 0487) "SPSR_ELx" and "MPIDR_EL1"; data and encoders only.
"""

from __future__ import annotations

SPSR_DAIF_SHIFT = 6  # F=6, I=7, A=8, D=9
SPSR_NZCV_SHIFT = 28
DAIF_ALL = 0xF

MPIDR_RES1 = 1 << 31
MPIDR_AFFINITY_MASK = 0xFF00FFFFFF

#: Vector offsets from VBAR (Arm ARM D1.10.2).
VECTOR_IRQ_CURRENT_SP0 = 0x080
VECTOR_IRQ_CURRENT_SPX = 0x280
VECTOR_IRQ_LOWER_A64 = 0x480


def make_pstate(el: int, sp: int = 1, daif: int = 0, nzcv: int = 0) -> int:
    """PSTATE in SPSR encoding: M[3:0] = EL << 2 | SPSel."""
    return (nzcv & 0xF) << SPSR_NZCV_SHIFT | (daif & 0xF) << SPSR_DAIF_SHIFT | ((el & 3) << 2 | (sp & 1))


def pstate_el(pstate: int) -> int:
    return (pstate >> 2) & 3


def pstate_sp(pstate: int) -> int:
    return pstate & 1


def pstate_daif(pstate: int) -> int:
    return (pstate >> SPSR_DAIF_SHIFT) & 0xF


def exception_entry_pstate(interrupted: int, el: int) -> int:
    """PSTATE after taking an exception to ``el`` with SP_ELx and all of DAIF masked.

    NZCV is carried over, as on a real exception entry (Arm ARM TakeException()).
    """
    return make_pstate(el, sp=1, daif=DAIF_ALL, nzcv=(interrupted >> SPSR_NZCV_SHIFT) & 0xF)


def mpidr_for(index: int) -> int:
    """MPIDR of PE ``index`` in a single cluster: Aff0 = index, the RES1 bit set."""
    return MPIDR_RES1 | (index & 0xFF)
