"""Real targets against the model: every case whose verdict differs, and why.

The reference model under a profile is what the suites expect of an implementation of
that profile, so a real target (TF-A on QEMU, KVM, a lab board) that ends a case
differently from the model of its profile does something else there. Each such case is
listed with the deviation that explains it, read from the case's known checks
(``check_known_<n>``, docs/results.md) and described from apflab/profiles.py, or as
*unexplained*: a FAIL, a profile deviation the target does not show, a model that
fails. Cases one side skipped (a capability the other lacks) are not behaviour and are
counted by their reason instead of listed.

Which targets are models: the suite property ``guest_driver`` (``ModelDriver``), or for
results written before it existed, a target name starting with ``model``. A real target
is paired with a model target of the same profile (the shortest name first, so
``model`` before ``model-pipe``); one with no such model is named as such.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from apflab.profiles import KVM_V4_DEVIATIONS, TARGET_DEVIATIONS
from apflab.report.load import Case, Results
from apflab.report.matrix import anchor

MODEL_DRIVER = "ModelDriver"
_DESCRIBED = {d.name: d for d in (*KVM_V4_DEVIATIONS, *TARGET_DEVIATIONS.values())}
_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass
class Difference:
    test_id: str
    section: str
    anchor: str
    model_verdict: str
    real_verdict: str
    deviations: list[str]  # the named deviations that explain it; empty: unexplained
    explanation: str

    @property
    def named(self) -> bool:
        return bool(self.deviations)


@dataclass
class Pairing:
    real: str
    model: str
    profile: str
    compared: int = 0
    differences: list[Difference] = field(default_factory=list)
    not_compared: Counter[tuple[str, str]] = field(default_factory=Counter)  # (skipped on, reason) -> cases

    @property
    def unexplained(self) -> list[Difference]:
        return [d for d in self.differences if not d.named]

    def by_deviation(self) -> list[tuple[str, int]]:
        counts = Counter(name for d in self.differences for name in d.deviations)
        return counts.most_common()

    def deviations(self) -> list[tuple[str, int, str]]:
        """Each named deviation once: its cases and what it is (the table names it only)."""
        out = []
        for name, n in self.by_deviation():
            d = _DESCRIBED.get(name)
            text = (
                f"{d.reason} ({d.source})"
                if d
                else next(x.explanation for x in self.differences if name in x.deviations)
            )
            out.append((name, n, text))
        return out


@dataclass
class Fidelity:
    models: list[str]
    pairings: list[Pairing]
    unpaired: list[tuple[str, str]]  # (real target, profile) with no model of that profile

    @property
    def real_targets(self) -> bool:
        return bool(self.pairings or self.unpaired)


def is_model(target: str, suite_properties: dict[str, str]) -> bool:
    driver = suite_properties.get("guest_driver")
    return driver == MODEL_DRIVER if driver else target.startswith("model")


def deviations_of(case: Case) -> list[str]:
    """The deviations a case's known checks name, in order (its reason, for older results)."""
    names = [v.split(":", 1)[0].strip() for k, v in case.properties.items() if k.startswith("check_known_")]
    if not names and case.verdict == "KFAIL":
        head, _, also = case.reason.partition("; also ")
        parts = head.split(": ")
        names = [parts[1]] if len(parts) > 2 else []
        names += [n.strip() for n in also.split(",") if n.strip()]
    return list(dict.fromkeys(n for n in names if _NAME.fullmatch(n)))


def _first_failed(case: Case) -> str:
    failed = [v for k, v in sorted(case.properties.items()) if k.startswith("check_failed_")]
    return failed[0] if failed else case.reason


def explain(model: Case, real: Case, clean: Callable[[str], str]) -> tuple[list[str], str]:
    """(named deviations, text) for two verdicts that differ; no names: unexplained."""
    if real.verdict == "KFAIL":
        own = [n for n in deviations_of(real) if n not in deviations_of(model)]
        if own:
            described = [_DESCRIBED.get(n) for n in own]
            if all(described):
                if len(own) == 1:
                    return own, f"{described[0].reason} ({described[0].source})"  # type: ignore[union-attr]
                return own, "; ".join(f"{d.name}: {d.reason} ({d.source})" for d in described if d)
            return own, clean(real.reason)  # a deviation this apflab does not describe: its reason
        return [], f"unexplained: known failure with the model's own deviations ({clean(real.reason)})"
    if real.verdict in ("FAIL", "XPASS"):
        return [], f"unexplained: {real.verdict} on the target: {clean(_first_failed(real))}"
    if model.verdict == "KFAIL" and real.verdict == "PASS":
        names = ", ".join(deviations_of(model)) or clean(model.reason)
        return [], f"unexplained: the profile predicts {names} and the model shows it; the target passes"
    if model.verdict in ("FAIL", "XPASS"):
        return [], f"unexplained: {model.verdict} on the model: {clean(_first_failed(model))}"
    return [], f"unexplained: {model.verdict} on the model, {real.verdict} on the target"


def _pick_model(models: list[tuple[str, str]], profile: str) -> str | None:
    same = sorted((t for t, p in models if p == profile), key=lambda t: (len(t), t))
    return same[0] if same else None


def compare_targets(results: Results, clean: Callable[[str], str]) -> Fidelity:
    profiles: dict[str, str] = {}
    model_names: set[str] = set()
    for s in results.suites:
        target_profile = s.profile or next((c.profile for c in s.cases if c.profile), "")
        profiles.setdefault(s.target, target_profile)
        if is_model(s.target, s.properties):
            model_names.add(s.target)
    models = sorted((t, p) for t, p in profiles.items() if t in model_names)
    cases: dict[str, dict[tuple[str, str], Case]] = {}
    for c in results.cases:
        cases.setdefault(c.target, {})[(c.classname, c.name)] = c
    pairings, unpaired = [], []
    for target in sorted(profiles):
        if target in model_names:
            continue
        model = _pick_model(models, profiles[target]) if profiles[target] else None
        if model is None:
            unpaired.append((target, profiles[target]))
            continue
        pairing = Pairing(target, model, profiles[target])
        theirs = cases.get(model, {})
        for key, real in sorted(cases.get(target, {}).items()):
            expected = theirs.get(key)
            if expected is None:
                continue
            pairing.compared += 1
            if expected.verdict == real.verdict:
                continue
            if "SKIP" in (expected.verdict, real.verdict):
                side, why = (target, real) if real.verdict == "SKIP" else (model, expected)
                pairing.not_compared[(side, clean(why.reason))] += 1
                continue
            names, text = explain(expected, real, clean)
            pairing.differences.append(
                Difference(
                    real.test_id, real.section, anchor("c", real.test_id), expected.verdict, real.verdict, names, text
                )
            )
        pairings.append(pairing)
    return Fidelity([t for t, _ in models], pairings, unpaired)
