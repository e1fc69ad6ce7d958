"""apflab.abi: encoders against the values of DEN0028, DEN0054C and the series (docs/reference/)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from apflab.abi import apf, sdei, smccc
from apflab.abi.aarch64 import make_pstate, pstate_daif, pstate_el, pstate_sp


def test_sdei_ids_are_fast_smc64_oen4() -> None:
    assert len(sdei.Fn) == 19
    for fn in sdei.Fn:
        fid = smccc.decode(fn)
        assert (fid.call_type, fid.convention, fid.owner) == (smccc.CallType.FAST, smccc.Convention.SMC64, 4)
        assert fid.number == 0x20 + (fn - sdei.FN_BASE)
    assert sdei.Fn.EVENT_SIGNAL == 0xC400002F and sdei.Fn.FEATURES == 0xC4000030
    assert sdei.Fn.SHARED_RESET == 0xC4000032
    assert set(sdei.SECTION) == set(sdei.Fn)


def test_call_val_matches_abi_table() -> None:
    assert smccc.call_val(1, 0, smccc.Owner.VENDOR_HYP, 2) == 0x86000002 == apf.FUNC_ID
    assert smccc.call_val(1, 0, smccc.Owner.VENDOR_HYP, 0xFF01) == smccc.VENDOR_HYP_CALL_UID
    assert smccc.call_val(1, 1, smccc.Owner.STANDARD_SECURE, 0x20) == sdei.FN_BASE
    assert smccc.call_val(1, 0, smccc.Owner.ARCH, 0) == smccc.SMCCC_VERSION


@given(st.integers(0, 1), st.integers(0, 1), st.integers(0, 0x3F), st.integers(0, 0xFFFF))
def test_decode_inverts_encode(t: int, c: int, owner: int, number: int) -> None:
    fid = smccc.call_val(t, c, owner, number)
    d = smccc.decode(fid)
    assert (d.call_type, d.convention, d.owner, d.number, d.reserved) == (t, c, owner, number, 0)
    assert d.encode() == fid


def test_return_codes() -> None:
    assert (smccc.SUCCESS, smccc.NOT_SUPPORTED, smccc.NOT_REQUIRED, smccc.INVALID_PARAMETER) == (0, -1, -2, -3)
    assert (sdei.NOT_SUPPORTED, sdei.INVALID_PARAMETERS, sdei.DENIED, sdei.PENDING, sdei.OUT_OF_RESOURCE) == (
        -1,
        -2,
        -3,
        -5,
        -10,
    )


def test_version_encodings() -> None:
    assert sdei.make_version(1, 0, 0) == 1 << 48
    assert sdei.version_fields(sdei.make_version(1, 1, 0x4B564D)) == (1, 1, 0x4B564D)
    assert smccc.version(1, 1) == 0x10001 == smccc.VERSION_1_1
    assert sdei.bind_slots_fields(sdei.make_bind_slots(3, 5)) == (3, 5)


def test_kvm_and_apf_constants() -> None:
    assert smccc.KVM_UID_WORDS == (0xB66FB428, 0xE911C52E, 0x564BCAA9, 0x743A004D)
    assert apf.Sub.IRQ_ACK == 5 and apf.VERSION_1_0_0 == 0x010000 and apf.SLOTS_PER_VCPU == 64
    assert apf.token(1, 3) == 0x1003 and apf.token(0x10000, 0) == 0  # 16-bit wrapping sequence
    assert apf.DATA_SIZE == 68 and apf.DATA_ENABLED_OFFSET == 64


def test_pstate_fields() -> None:
    p = make_pstate(el=1, sp=1, daif=0xF, nzcv=0b1010)
    assert p == 0xA00003C5
    assert (pstate_el(p), pstate_sp(p), pstate_daif(p)) == (1, 1, 0xF)
