"""SDEI_VERSION's exact value where the implementation's own code or measurement fixes it.

DEN0054C 5.1.1 lets an implementation choose its minor version and vendor field, so the
spec cases (test_calls.py) check only what every implementation shares. The v4 series
answers one value (KVM SDEI v4 03/21, measured: docs/reference/kvm-v4.md "Calls").
"""

from __future__ import annotations

from apflab.testing import Expect, Guest, not_applicable, spec

#: Profile -> the VERSION its implementation answers, from the reference that measured it.
MEASURED = {"kvm-v4": 0x0001_0000_0000_0000}  # 1.0, vendor 0


@spec("KVM SDEI v4 03/21; docs/reference/kvm-v4.md", "the v4 series' SDEI_VERSION is 1 << 48: SDEI 1.0, vendor 0")
def test_version_measured(guest: Guest, expect: Expect) -> None:
    want = MEASURED.get(guest.profile.name)
    if want is None:
        not_applicable(guest, f"profile {guest.profile.name}'s VERSION is not fixed by a measurement")
    expect(guest.sdei.version().x[0], want, "SDEI_VERSION")
