"""Which registers an SMCCC call reads and writes, beyond its x0.

DEN0028: SMCCC_ARCH_FEATURES takes one argument, the queried function ID in w1; KVM's
vendor FEATURES call answers its bitmap in x0 and leaves x1-x3 zero (Linux
arch/arm64/kvm/hypercalls.c kvm_hvc_call_handler(): only val[0] is set; docs/reference/smccc.md).
"""

from __future__ import annotations

from apflab.abi import smccc
from apflab.testing import Expect, Guest, spec


@spec("DEN0028 (SMCCC_ARCH_FEATURES: the queried ID is w1)", "ARCH_FEATURES reads only x1: an ID in x2 is not queried")
def test_arch_features_reads_x1(guest: Guest, expect: Expect) -> None:
    r = guest.call(smccc.SMCCC_ARCH_FEATURES, 0x8000_1234, smccc.SMCCC_ARCH_FEATURES)
    expect(r.ret, smccc.NOT_SUPPORTED, "ARCH_FEATURES(x1 = 0x80001234, x2 = ARCH_FEATURES)")


@spec(
    "Linux arch/arm64/kvm/hypercalls.c (KVM FEATURES: val[0] only); APF v4 08/15",
    "KVM's vendor FEATURES call leaves x1-x3 zero",
)
def test_kvm_features_upper_zero(guest: Guest, expect: Expect) -> None:
    guest.require("kvm-vendor-hyp", "the target is not a KVM guest")
    expect(guest.call(smccc.KVM_FUNC_FEATURES, 0x11, 0x22, 0x33).x[1:], (0, 0, 0), "x1-x3")
