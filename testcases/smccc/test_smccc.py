"""The SMCCC front every target has: version, features, unknown IDs, PSCI discovery, KVM UID.

DEN0028 (docs/reference/smccc.md; Linux arm-smccc.h, TF-A smccc.h): W0 carries the function ID,
an unknown function answers NOT_SUPPORTED (-1), SMC32 calls see only the low 32 bits of
each argument, SMCCC_VERSION is discoverable through PSCI_FEATURES, and a KVM host
answers the vendor-hypervisor UID with KVM's UUID.
"""

from __future__ import annotations

import pytest

from apflab.abi import psci, smccc
from apflab.abi.sdei import Fn
from apflab.testing import Expect, Guest, Known, spec

UNKNOWN_IDS = {
    "arch-fast32": 0x80001234,
    "sip-fast32": 0x82000ABC,
    "oem-fast64": 0xC3000ABC,
    "std-secure-unallocated": 0x8400FFF0,
    "std-hyp-unallocated": 0xC500FFF0,
    "vendor-hyp-unallocated": 0x86000ABC,
    "yielding-call": 0x04000000,
}


@spec(
    "DEN0028; docs/reference/smccc.md",
    "SMCCC_VERSION, where implemented (v1.1 on), reports major 1 and minor 1 or later",
)
def test_smccc_version(guest: Guest, expect: Expect) -> None:
    r = guest.call(smccc.SMCCC_VERSION)
    if r.ret == smccc.NOT_SUPPORTED:
        pytest.skip("SMCCC v1.0 target: SMCCC_VERSION is not implemented")
    major, minor = smccc.version_fields(r.x[0])
    expect(major, 1, "SMCCC major")
    expect(minor >= 1, True, f"SMCCC minor {minor} >= 1")


@spec("DEN0028; docs/reference/smccc.md", "an unknown function ID answers NOT_SUPPORTED (-1)")
@pytest.mark.parametrize("fid", UNKNOWN_IDS.values(), ids=UNKNOWN_IDS.keys())
def test_unknown_function(guest: Guest, expect: Expect, fid: int) -> None:
    expect(guest.call(fid).ret, smccc.NOT_SUPPORTED, f"function {fid:#x}")


@spec(
    "DEN0028; docs/reference/smccc.md", "SMCCC_ARCH_FEATURES of an unallocated Arm architecture call is NOT_SUPPORTED"
)
def test_arch_features_unknown(guest: Guest, expect: Expect) -> None:
    expect(guest.call(smccc.SMCCC_ARCH_FEATURES, 0x80001234).ret, smccc.NOT_SUPPORTED, "ARCH_FEATURES(0x80001234)")


@spec("DEN0028; docs/reference/smccc.md", "the function ID is W0: bits 63:32 of x0 are ignored")
def test_fid_is_w0(guest: Guest, expect: Expect) -> None:
    plain = guest.call(Fn.VERSION).x[0]
    expect(guest.call(0xFFFF_FFFF_0000_0000 | Fn.VERSION).x[0], plain, "SDEI_VERSION with x0[63:32] set")


@spec("DEN0022 PSCI; DEN0028; docs/reference/smccc.md", "PSCI_VERSION reports major version 1")
def test_psci_version(guest: Guest, expect: Expect) -> None:
    expect((guest.call(psci.PSCI_VERSION).x[0] >> 16) & 0x7FFF, 1, "PSCI major")


@spec("DEN0028 (Linux arm_smccc_version_init)", "PSCI_FEATURES(SMCCC_VERSION) is 0 exactly when SMCCC_VERSION answers")
def test_psci_features_smccc_version(guest: Guest, expect: Expect) -> None:
    implemented = guest.call(smccc.SMCCC_VERSION).ret != smccc.NOT_SUPPORTED
    want = 0 if implemented else psci.NOT_SUPPORTED
    expect(guest.call(psci.PSCI_FEATURES, smccc.SMCCC_VERSION).ret, want, "PSCI_FEATURES(SMCCC_VERSION)")


@spec("DEN0022 PSCI", "PSCI_FEATURES(PSCI_VERSION) is 0: every PSCI 1.x has PSCI_VERSION")
def test_psci_features_version(guest: Guest, expect: Expect) -> None:
    expect(guest.call(psci.PSCI_FEATURES, psci.PSCI_VERSION).ret, 0, "PSCI_FEATURES(PSCI_VERSION)")


@spec("DEN0022 PSCI", "PSCI_FEATURES of an unallocated PSCI ID is NOT_SUPPORTED")
def test_psci_features_unknown(guest: Guest, expect: Expect) -> None:
    expect(guest.call(psci.PSCI_FEATURES, 0x8400001F).ret, psci.NOT_SUPPORTED, "PSCI_FEATURES(0x8400001F)")


@spec("DEN0028; docs/reference/smccc.md", "an SMC32 call sees only the low 32 bits of its arguments")
def test_smc32_argument_width(guest: Guest, expect: Expect) -> None:
    wide = 0xFFFF_FFFF_0000_0000 | psci.PSCI_VERSION
    expect(
        guest.call(psci.PSCI_FEATURES, wide).ret,
        0,
        "PSCI_FEATURES(PSCI_VERSION | x1[63:32] set)",
        Known("qemu_psci_smc32_args_64bit", psci.NOT_SUPPORTED),
    )


@spec(
    "Linux arm-smccc.h; APF v4 08/15; docs/reference/smccc.md",
    "the vendor-hypervisor UID call answers KVM's UUID in w0..w3",
)
def test_kvm_uid(guest: Guest, expect: Expect) -> None:
    guest.require("kvm-vendor-hyp", "the target is not a KVM guest")
    r = guest.call(smccc.VENDOR_HYP_CALL_UID)
    expect(tuple(v & 0xFFFFFFFF for v in r.x), smccc.KVM_UID_WORDS, "w0..w3")


@spec(
    "Linux arm-smccc.h; APF v4 08/15; docs/reference/smccc.md", "KVM's vendor FEATURES bitmap has bit 0 (FEATURES) set"
)
def test_kvm_features(guest: Guest, expect: Expect) -> None:
    guest.require("kvm-vendor-hyp", "the target is not a KVM guest")
    expect(guest.call(smccc.KVM_FUNC_FEATURES).x[0] & 1, 1, "FEATURES bit 0")


@spec("DEN0028; docs/reference/smccc.md", "firmware with no vendor hypervisor answers the vendor-hyp UID call with -1")
def test_no_vendor_hyp(guest: Guest, expect: Expect) -> None:
    if guest.info.has("kvm-vendor-hyp"):
        pytest.skip(f"target {guest.info.name} is a KVM guest: it has a vendor hypervisor service")
    expect(guest.call(smccc.VENDOR_HYP_CALL_UID).ret, smccc.NOT_SUPPORTED, "vendor-hyp UID")
