"""AArch64 register layouts the SDEI tests read: PSTATE in SPSR encoding, MPIDR affinity.

Arm ARM (DDI 0487) "SPSR_ELx", "MPIDR_EL1" and the pseudocode AArch64.TakeException();
data and encoders only (docs/reference/sdei-dispatch.md).
"""

from __future__ import annotations

SPSR_DAIF_SHIFT = 6  # F=6, I=7, A=8, D=9
SPSR_NZCV_SHIFT = 28
DAIF_ALL = 0xF

# PSTATE bits beyond NZCV, DAIF and M[4:0], at their SPSR positions (Arm ARM "SPSR_EL1").
PSTATE_NRW = 1 << 4  # M[4]: 1 = AArch32
PSTATE_BTYPE = 0b11 << 10  # FEAT_BTI
PSTATE_SSBS = 1 << 12  # FEAT_SSBS
PSTATE_IL = 1 << 20
PSTATE_SS = 1 << 21
PSTATE_PAN = 1 << 22  # FEAT_PAN
PSTATE_UAO = 1 << 23  # FEAT_UAO
PSTATE_DIT = 1 << 24  # FEAT_DIT
PSTATE_TCO = 1 << 25  # FEAT_MTE
#: The bits a guest can set in its own PSTATE with MSR (immediate): what a test may plant in
#: the interrupted context to see what the handler inherits.
PSTATE_SETTABLE = PSTATE_SSBS | PSTATE_PAN | PSTATE_UAO | PSTATE_DIT

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
    """PSTATE after taking an exception to ``el`` (Arm ARM AArch64.TakeException()).

    Mode ELxh, D, A, I, F set; NZCV and DIT unchanged; SS, IL, BTYPE and UAO cleared; SSBS
    set from SCTLR_ELx.DSSBS and PAN set when SCTLR_ELx.SPAN is 0, for a PE that has both
    features and runs with DSSBS = 0 and SPAN = 1 (PAN unchanged); TCO is 0 without MTE.
    """
    kept = interrupted & (PSTATE_DIT | PSTATE_PAN)
    return kept | make_pstate(el, sp=1, daif=DAIF_ALL, nzcv=(interrupted >> SPSR_NZCV_SHIFT) & 0xF)


def mpidr_for(index: int) -> int:
    """MPIDR of PE ``index`` in a single cluster: Aff0 = index, the RES1 bit set."""
    return MPIDR_RES1 | (index & 0xFF)
