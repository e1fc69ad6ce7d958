"""Checks: PASS on the spec value, KFAIL only on the value a carried deviation predicts,
every check recorded and the case's verdict the worst of them."""

from __future__ import annotations

import pytest

from apflab.guest import TargetError
from apflab.profiles import KVM_V4, SPEC, get_profile
from apflab.results import summary_line
from apflab.verdict import WEDGED, CaseStopped, Expect, Known, Verdict


def test_spec_value_passes() -> None:
    e = Expect(KVM_V4)
    assert e(0, 0, "x", Known("enable_when_enabled_denied", -3))
    assert e.outcome() == (Verdict.PASS, "")


def test_predicted_value_is_kfail_on_carrying_profile() -> None:
    e = Expect(KVM_V4)
    assert not e(-3, 0, "ENABLE", Known("enable_when_enabled_denied", -3))
    verdict, reason = e.outcome()
    assert verdict is Verdict.KFAIL and reason.startswith("kvm-v4: enable_when_enabled_denied: ")


def test_predicted_value_fails_on_other_profile() -> None:
    e = Expect(SPEC)
    e(-3, 0, "ENABLE", Known("enable_when_enabled_denied", -3))
    verdict, reason = e.outcome()
    assert verdict is Verdict.FAIL and "does not carry it" in reason


def test_other_value_fails_even_with_deviation() -> None:
    e = Expect(KVM_V4)
    e(-2, 0, "ENABLE", Known("enable_when_enabled_denied", -3))
    assert e.outcome() == (Verdict.FAIL, "ENABLE: got -2 (INVALID_PARAMETERS), the spec says 0")


def test_worst_verdict_wins_and_every_check_is_listed() -> None:
    e = Expect(KVM_V4)
    e(-3, 0, "ENABLE", Known("enable_when_enabled_denied", -3))
    e(1, 2, "later")
    e(0, 1, "PE_MASK", Known("pe_mask_returns_zero", 0))
    assert e.worst is Verdict.FAIL
    assert [k for k, _ in e.properties()] == ["check_failed_1", "check_known_1", "check_known_2"]


def test_predicted_wedge_stops_the_case_as_known() -> None:
    e = Expect(KVM_V4)

    def wedge() -> None:
        raise TargetError("no reply within 1 s")

    with pytest.raises(CaseStopped):
        e.survives(wedge, "EVENT_STATUS", Known("status_registered_wedges", WEDGED))
    assert e.outcome()[0] is Verdict.KFAIL


def test_unpredicted_wedge_is_the_target_error() -> None:
    def wedge() -> None:
        raise TargetError("no reply within 1 s")

    with pytest.raises(TargetError):
        Expect(SPEC).survives(wedge, "EVENT_STATUS", Known("status_registered_wedges", WEDGED))


def test_unknown_deviation_name_is_a_bug() -> None:
    with pytest.raises(ValueError, match="unknown deviation"):
        Known("no_such_thing", 0)


def test_unknown_profile_names_known_ones() -> None:
    with pytest.raises(ValueError, match="known profiles: kvm-v4, spec"):
        get_profile("kvm-v9")


def test_summary_line_words() -> None:
    counts = {Verdict.PASS: 5, Verdict.FAIL: 1, Verdict.KFAIL: 2, Verdict.SKIP: 3}
    assert summary_line(counts) == "SUMMARY: 11 tests, 1 unexpected failures, 2 known failures, 3 skipped"
