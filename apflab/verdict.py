"""Verdicts in kvm-unit-tests' words, and the check that turns a known deviation into KFAIL.

A testcase states the spec's value. Where the v4 series (or another profile) is known
to answer differently, the testcase also states that *predicted* value and the name of
the deviation. :func:`expect` then decides:

* actual == spec value                                   -> the check passes
* actual == predicted value, target's profile predicts it -> KFAIL (the test stops)
* anything else                                          -> FAIL, with both values named
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import pytest

from apflab.profiles import KNOWN_DEVIATIONS, Profile

KFAIL_PREFIX = "KFAIL: "
#: The predicted "value" of a deviation that hangs or kills the target.
WEDGED = "target wedged"
T = TypeVar("T")


class Verdict(enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"
    XFAIL = "XFAIL"
    XPASS = "XPASS"
    KFAIL = "KFAIL"


@dataclass(frozen=True)
class Known:
    """A deviation a testcase may meet: its name (apflab.profiles) and the value it predicts."""

    deviation: str
    predicted: Any

    def __post_init__(self) -> None:
        if self.deviation not in KNOWN_DEVIATIONS:
            raise ValueError(f"unknown deviation {self.deviation!r}; see apflab/profiles.py")


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        from apflab.abi.sdei import ERROR_NAMES

        name = ERROR_NAMES.get(value)
        return f"{value} ({name})" if name and value < 0 else f"{value:#x}" if value > 9 else str(value)
    return repr(value)


def kfail(profile: Profile, deviation: str) -> NoReturn:
    d = profile.deviation(deviation)
    pytest.xfail(f"{KFAIL_PREFIX}{profile.name}: {d.name}: {d.reason} ({d.source})")


def expect(profile: Profile, actual: Any, expected: Any, what: str = "", *known: Known) -> None:
    """Check ``actual`` against the spec's ``expected``, allowing the profile's known deviations."""
    if actual == expected:
        return
    for k in known:
        if actual == k.predicted and profile.predicts(k.deviation):
            kfail(profile, k.deviation)
    label = f"{what}: " if what else ""
    hints = [
        f"{k.deviation} predicts {_show(k.predicted)} but profile {profile.name} does not carry it"
        for k in known
        if actual == k.predicted and not profile.predicts(k.deviation)
    ]
    hint = f" [{'; '.join(hints)}]" if hints else ""
    pytest.fail(f"{label}got {_show(actual)}, the spec says {_show(expected)}{hint}", pytrace=False)


@dataclass(frozen=True)
class Expect:
    """``expect`` bound to one target's profile: the fixture testcases use."""

    profile: Profile

    def __call__(self, actual: Any, expected: Any, what: str = "", *known: Known) -> None:
        expect(self.profile, actual, expected, what, *known)

    def survives(self, action: Callable[[], T], what: str, *known: Known) -> T:
        """Run ``action``; a target that wedges doing it is a KFAIL where a carried deviation
        predicts the wedge (``Known(name, WEDGED)``), and a FAIL with its console tail otherwise."""
        from apflab.guest import TargetError

        try:
            return action()
        except TargetError:
            for k in known:
                if k.predicted == WEDGED and self.profile.predicts(k.deviation):
                    kfail(self.profile, k.deviation)
            raise

    def true(self, condition: bool, what: str, *known: Known) -> None:
        """``condition`` must hold; a Known with ``predicted=False`` marks a predicted miss."""
        expect(self.profile, bool(condition), True, what, *known)
