"""ABI constants and encoders: SMCCC (DEN0028), PSCI, SDEI (DEN0054), APF (KVM v4).

The modules here hold facts from the specs and the series (docs/reference/); none of them has
behaviour. Test expectations and the reference model both read them, so a
wrong constant here would be wrong in both places: each value cites its source.
"""

from apflab.abi import apf, psci, sdei, smccc

__all__ = ["apf", "psci", "sdei", "smccc"]
