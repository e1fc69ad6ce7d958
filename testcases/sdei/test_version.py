"""SDEI_VERSION's exact value where the implementation's own code or measurement fixes it.

DEN0054C 5.1.1 lets an implementation choose its minor version and vendor field, so the
spec cases (test_calls.py) check only what every implementation shares. The v4 series
answers one value (KVM SDEI v4 03/21, measured: docs/reference/kvm-v4.md "Calls").
"""

from __future__ import annotations

from apflab.testing import Expect, Guest, not_applicable, spec

#: Profile -> the VERSION its implementation answers, from the reference that measured it.
MEASURED = {"kvm-v4": 0x0001_0000_0000_0000}  # 1.0, vendor 0
#: Profile -> x1-x3 after an SDEI call, where its code fixes them: v4 writes every result
#: with smccc_set_retval(ret, 0, 0, 0) (docs/reference/kvm-v4.md "The calls as v4 answers them").
RESULT_X1_X3 = {"kvm-v4": (0, 0, 0)}


@spec("KVM SDEI v4 03/21; docs/reference/kvm-v4.md", "the v4 series' SDEI_VERSION is 1 << 48: SDEI 1.0, vendor 0")
def test_version_measured(guest: Guest, expect: Expect) -> None:
    want = MEASURED.get(guest.profile.name)
    if want is None:
        not_applicable(guest, f"profile {guest.profile.name}'s VERSION is not fixed by a measurement")
    expect(guest.sdei.version().x[0], want, "SDEI_VERSION")


@spec(
    "KVM SDEI v4 02/21-14/21 (smccc_set_retval(ret, 0, 0, 0)); docs/reference/kvm-v4.md",
    "v4 zeroes x1-x3 of every SDEI result",
)
def test_result_registers_measured(guest: Guest, expect: Expect) -> None:
    want = RESULT_X1_X3.get(guest.profile.name)
    if want is None:
        not_applicable(guest, f"profile {guest.profile.name} leaves x1-x3 of a result to the implementation")
    r = guest.call(0xC400_0020, 0x11, 0x22, 0x33)  # SDEI_VERSION with x1-x3 set
    expect(tuple(r.x[1:]), want, "x1-x3 after SDEI_VERSION")
