"""expect(): PASS on the spec value, KFAIL only on the value a carried deviation predicts."""

from __future__ import annotations

import pytest

from apflab.profiles import KVM_V4, SPEC, get_profile
from apflab.results import summary_line
from apflab.verdict import KFAIL_PREFIX, Known, Verdict, expect


def test_spec_value_passes() -> None:
    expect(KVM_V4, 0, 0, "x", Known("enable_when_enabled_denied", -3))


def test_predicted_value_is_kfail_on_carrying_profile() -> None:
    with pytest.raises(pytest.xfail.Exception, match=KFAIL_PREFIX + "kvm-v4: enable_when_enabled_denied"):
        expect(KVM_V4, -3, 0, "ENABLE", Known("enable_when_enabled_denied", -3))


def test_predicted_value_fails_on_other_profile() -> None:
    with pytest.raises(pytest.fail.Exception, match="does not carry it"):
        expect(SPEC, -3, 0, "ENABLE", Known("enable_when_enabled_denied", -3))


def test_other_value_fails_even_with_deviation() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"got -2 \(INVALID_PARAMETERS\), the spec says 0"):
        expect(KVM_V4, -2, 0, "ENABLE", Known("enable_when_enabled_denied", -3))


def test_unknown_deviation_name_is_a_bug() -> None:
    with pytest.raises(ValueError, match="unknown deviation"):
        Known("no_such_thing", 0)


def test_unknown_profile_names_known_ones() -> None:
    with pytest.raises(ValueError, match="known profiles: kvm-v4, spec"):
        get_profile("kvm-v9")


def test_summary_line_words() -> None:
    counts = {Verdict.PASS: 5, Verdict.FAIL: 1, Verdict.KFAIL: 2, Verdict.SKIP: 3}
    assert summary_line(counts) == "SUMMARY: 11 tests, 1 unexpected failures, 2 known failures, 3 skipped"
