"""The model's SMCCC front: routes a function ID to the service that owns it.

DEN0028 (docs/reference/smccc.md): the function ID is W0 (only its low 32 bits count);
for SMC32 calls only the low 32 bits of each argument count; an unknown function ID
answers NOT_SUPPORTED (-1) and is never an error of the caller's making.
"""

from __future__ import annotations

from dataclasses import dataclass

from apflab.abi import psci, sdei, smccc
from apflab.model.apf import AsyncPf
from apflab.model.platform import Platform
from apflab.model.sdei import Dispatcher, Result

#: Bit 30 of a function ID: SMC64 (DEN0028 function identifiers).
SMC64_BIT = 1 << 30
_PSCI_IMPLEMENTED = frozenset({psci.PSCI_VERSION, psci.PSCI_FEATURES, smccc.SMCCC_VERSION})
_ARCH_FEATURES_IMPLEMENTED = frozenset({smccc.SMCCC_VERSION, smccc.SMCCC_ARCH_FEATURES})


@dataclass
class SmcccFront:
    platform: Platform
    sdei: Dispatcher
    apf: AsyncPf | None = None

    def call(self, pe: int, regs: list[int]) -> Result:
        """Handle one call; ``regs`` is x0..x17 as the caller left them."""
        fid = regs[0] & smccc.MASK32
        args = list(regs[1:18])
        if not fid & SMC64_BIT:
            args = [a & smccc.MASK32 for a in args]
        if sdei.is_sdei_fid(fid):
            return self.sdei.call(pe, fid, args)
        if fid == smccc.SMCCC_VERSION:
            return Result(smccc.version(*self.platform.smccc_version))
        if fid == smccc.SMCCC_ARCH_FEATURES:
            ok = args[0] in _ARCH_FEATURES_IMPLEMENTED
            return Result(smccc.SUCCESS if ok else smccc.NOT_SUPPORTED)
        if fid == psci.PSCI_VERSION:
            return Result(psci.version(*self.platform.psci_version))
        if fid == psci.PSCI_FEATURES:
            return Result(0 if args[0] in _PSCI_IMPLEMENTED else psci.NOT_SUPPORTED)
        if self.platform.kvm_vendor_hyp:
            if fid == smccc.VENDOR_HYP_CALL_UID:
                w = smccc.KVM_UID_WORDS
                return Result(w[0], (w[1], w[2], w[3]))
            if fid == smccc.KVM_FUNC_FEATURES:
                bits = 1 << smccc.KvmFeature.FEATURES
                if self.apf is not None:
                    bits |= 1 << smccc.KvmFeature.ASYNC_PF
                return Result(bits, (0, 0, 0))
            if fid == smccc.KVM_FUNC_ASYNC_PF and self.apf is not None:
                return self.apf.hypercall(pe, args, raw=regs[1:18])
        return Result(smccc.NOT_SUPPORTED)
