"""Verdicts in kvm-unit-tests' words, and the checks that make them.

A testcase states the spec's value. Where a profile (the v4 series) or a target is known
to answer differently, the testcase also states that *predicted* value and the name of
the deviation. Each :class:`Expect` call is one check, decided like this:

* actual == spec value                                   -> the check passes
* actual == predicted value, target's profile predicts it -> a known check (KFAIL)
* anything else                                          -> a failed check (FAIL)

As in kvm-unit-tests, a check that does not pass does not end the case: every check is
made and recorded, and the case ends with the worst verdict of its checks
(FAIL > KFAIL > PASS). Only a target that wedges ends a case early
(:meth:`Expect.survives`), since nothing after it could be checked.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

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
    #: The deviation always shows in this check on a target that carries it: on a target that
    #: must show its deviations (``strict_deviations``, the model) the spec's value here is a FAIL.
    certain: bool = False

    def __post_init__(self) -> None:
        if self.deviation not in KNOWN_DEVIATIONS:
            raise ValueError(f"unknown deviation {self.deviation!r}; see apflab/profiles.py")


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        from apflab.abi.sdei import ERROR_NAMES

        name = ERROR_NAMES.get(value)
        return f"{value} ({name})" if name and value < 0 else f"{value:#x}" if value > 9 else str(value)
    return repr(value)


@dataclass(frozen=True)
class Check:
    """One check that did not pass: FAIL, or KFAIL with the deviation that predicted it."""

    verdict: Verdict
    what: str
    message: str
    deviation: str = ""

    def line(self) -> str:
        """The check as one JUnit property value."""
        head = f"{self.deviation}: " if self.deviation else ""
        return f"{head}{self.what}: {self.message}"


def judge(profile: Profile, actual: Any, expected: Any, what: str, *known: Known, strict: bool = False) -> Check | None:
    """Decide one check: None when it passes, else the FAIL or KFAIL :class:`Check`."""
    label = what or "check"
    if actual == expected:
        for k in known:
            if strict and k.certain and profile.predicts(k.deviation) and k.predicted != expected:
                message = f"got the spec's {_show(actual)}; {k.deviation} always shows here as {_show(k.predicted)}"
                return Check(Verdict.FAIL, label, message)
        return None
    for k in known:
        if actual == k.predicted and profile.predicts(k.deviation):
            return Check(Verdict.KFAIL, label, f"got {_show(actual)}, the spec says {_show(expected)}", k.deviation)
    hints = [
        f"{k.deviation} predicts {_show(k.predicted)} but profile {profile.name} does not carry it"
        for k in known
        if actual == k.predicted and not profile.predicts(k.deviation)
    ]
    hint = f" [{'; '.join(hints)}]" if hints else ""
    return Check(Verdict.FAIL, label, f"got {_show(actual)}, the spec says {_show(expected)}{hint}")


class CaseStopped(Exception):
    """A predicted wedge ended the case: the plugin ends it with the verdict of its checks."""


def kfail_reason(profile: Profile, deviation: str) -> str:
    """The JUnit ``reason`` of a KFAIL: profile, deviation, its reason and source."""
    d = profile.deviation(deviation)
    return f"{profile.name}: {d.name}: {d.reason} ({d.source})"


@dataclass
class Expect:
    """The checks of one case, bound to the target's profile: the fixture testcases use.

    Every call records a check that does not pass and returns whether it passed, so a
    case can go on (kvm-unit-tests' report()) or stop where later steps depend on it.
    """

    profile: Profile
    checks: list[Check] = field(default_factory=list)
    #: The target must show its deviations (``strict_deviations``): a certain Known that does not show fails.
    strict: bool = False
    #: The deviations of the profile the case's checks named (shown or not): a target that
    #: must show each of them (``strict_deviations``) is judged on these and the known checks.
    named: set[str] = field(default_factory=set)

    def _name(self, known: tuple[Known, ...]) -> None:
        self.named.update(k.deviation for k in known if self.profile.predicts(k.deviation))

    def __call__(self, actual: Any, expected: Any, what: str = "", *known: Known) -> bool:
        self._name(known)
        check = judge(self.profile, actual, expected, what, *known, strict=self.strict)
        if check is not None:
            self.checks.append(check)
        return check is None

    def true(self, condition: bool, what: str, *known: Known) -> bool:
        """``condition`` must hold; a Known with ``predicted=False`` marks a predicted miss."""
        return self(bool(condition), True, what, *known)

    def survives(self, action: Callable[[], T], what: str, *known: Known) -> T:
        """Run ``action``; a target that wedges doing it ends the case: KFAIL where a carried
        deviation predicts the wedge (``Known(name, WEDGED)``), and a FAIL with its console
        tail otherwise (the TargetError goes on)."""
        from apflab.guest import TargetError

        self._name(known)
        try:
            return action()
        except TargetError as exc:
            for k in known:
                if k.predicted == WEDGED and self.profile.predicts(k.deviation):
                    self.checks.append(Check(Verdict.KFAIL, what, f"the target wedged ({exc})", k.deviation))
                    raise CaseStopped(what) from None
            raise

    def stop(self, why: str = "") -> NoReturn:
        """End the case here, with the verdict of its checks so far: what follows depends on
        a check that did not pass (kvm-unit-tests' report_abort of one test)."""
        if not self.checks:
            self.checks.append(Check(Verdict.FAIL, "stop", why or "the case stopped with every check passed"))
        raise CaseStopped(why)

    def wedges(self, what: str, *known: Known) -> bool:
        """Whether doing ``what`` would wedge this target, by a deviation its profile carries.

        kvm-unit-tests' errata(): a case that meets such an operation on the way to what it
        checks records the known check and leaves the operation out (True); a case about
        the operation itself makes it inside :meth:`survives`.
        """
        self._name(known)
        for k in known:
            if k.predicted == WEDGED and self.profile.predicts(k.deviation):
                self.checks.append(Check(Verdict.KFAIL, what, "not made: it would wedge the target", k.deviation))
                return True
        return False

    @property
    def worst(self) -> Verdict:
        if any(c.verdict is Verdict.FAIL for c in self.checks):
            return Verdict.FAIL
        return Verdict.KFAIL if self.checks else Verdict.PASS

    def properties(self) -> list[tuple[str, str]]:
        """JUnit properties: every failed check and every known check, numbered in order."""
        out = []
        for kind, verdict in (("check_failed", Verdict.FAIL), ("check_known", Verdict.KFAIL)):
            picked = [c for c in self.checks if c.verdict is verdict]
            out += [(f"{kind}_{i}", c.line()) for i, c in enumerate(picked, 1)]
        return out

    def shown(self) -> set[str]:
        """The deviations that showed: those of the known checks."""
        return {c.deviation for c in self.checks if c.verdict is Verdict.KFAIL}

    def outcome(self) -> tuple[Verdict, str]:
        """The case's verdict from its checks and the reason the JUnit gives for it."""
        failed = [c for c in self.checks if c.verdict is Verdict.FAIL]
        known = [c for c in self.checks if c.verdict is Verdict.KFAIL]
        if failed:
            more = f" (and {len(failed) - 1} more failed check(s))" if len(failed) > 1 else ""
            return Verdict.FAIL, f"{failed[0].what}: {failed[0].message}{more}"
        if known:
            names = sorted({c.deviation for c in known} - {known[0].deviation})
            also = f"; also {', '.join(names)}" if names else ""
            return Verdict.KFAIL, kfail_reason(self.profile, known[0].deviation) + also
        return Verdict.PASS, ""
