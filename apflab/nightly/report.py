"""One JUnit, one metrics file and one Markdown report from a nightly's per-place results.

Each worker wrote <out>/<place>/junit.xml and metrics.json after every test (a place
that died half-way still left valid files), one test suite per place named
``apflab.<target>@<place>``. The merge keeps those suites apart, so the same test on two
boards stays two results; the report says what the run asked for, what it got, what
each place did and why a place was not used or stopped. Files are written atomically.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from junitparser import JUnitXml
from junitparser.xunit2 import TestCase

from apflab.results import atomic_write, summary_line
from apflab.verdict import Verdict


@dataclass
class PlaceResult:
    place: str
    target: str
    tags: dict[str, str]
    counts: Counter[Verdict] = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (test, reason)
    properties: dict[str, str] = field(default_factory=dict)


@dataclass
class RunFacts:
    """What the runner knows that the JUnit files do not."""

    coordinator: str
    tags: dict[str, str]
    asked: int
    minimum: int
    deadline_s: float
    places: list[tuple[str, str, dict[str, str]]]  # (place, target, tags) in worker order
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)  # target -> pytest exit status
    interrupted: bool = False
    error: str | None = None  # why nothing ran (no place by the deadline, ...)


def read_place(out: Path, place: str, target: str, tags: dict[str, str]) -> PlaceResult:
    result = PlaceResult(place, target, tags)
    path = out / place / "junit.xml"
    if not path.exists():
        return result
    for suite in JUnitXml.fromfile(str(path)):
        result.properties.update({p.name: p.value for p in suite.properties()})
        for elem in suite:
            case = TestCase.fromelem(elem)
            props = {p.name: p.value for p in case.properties()}
            verdict = Verdict(props.get("verdict", "FAIL"))
            result.counts[verdict] += 1
            if verdict is Verdict.FAIL:
                result.failures.append((f"{case.classname}::{case.name}", props.get("reason", "")))
    return result


def merge(out: Path, facts: RunFacts) -> list[PlaceResult]:
    """Write <out>/junit.xml, metrics.json, nightly.json, nightly.md and summary.txt."""
    results = [read_place(out, place, target, tags) for place, target, tags in sorted(facts.places)]
    merged = JUnitXml()
    metrics: list[dict] = []
    props: dict[str, dict] = {}
    for r in results:
        junit = out / r.place / "junit.xml"
        if junit.exists():
            merged += JUnitXml.fromfile(str(junit))
        mpath = out / r.place / "metrics.json"
        if mpath.exists():
            doc = json.loads(mpath.read_text())
            metrics.extend({**m, "place": r.place} for m in doc.get("metrics", []))
            props[r.place] = doc.get("properties", {})
    tmp = out / ".junit.merged.xml"
    merged.write(str(tmp))
    atomic_write(out / "junit.xml", tmp.read_bytes())
    tmp.unlink()
    atomic_write(out / "metrics.json", json.dumps({"places": props, "metrics": metrics}, indent=1).encode())
    total: Counter[Verdict] = Counter()
    for r in results:
        total.update(r.counts)
    lines = [f"{r.place} ({r.target}): {summary_line(r.counts)}" for r in results]
    lines.append(summary_line(total))
    atomic_write(out / "summary.txt", ("\n".join(lines) + "\n").encode())
    doc = {
        "coordinator": facts.coordinator,
        "tags": facts.tags,
        "asked": facts.asked,
        "minimum": facts.minimum,
        "got": len(facts.places),
        "notes": facts.notes,
        "timings": facts.timings,
        "exit_codes": facts.exit_codes,
        "interrupted": facts.interrupted,
        "error": facts.error,
        "places": [
            {"place": r.place, "target": r.target, "tags": r.tags, "counts": {v.value: n for v, n in r.counts.items()}}
            for r in results
        ],
    }
    atomic_write(out / "nightly.json", json.dumps(doc, indent=1).encode())
    atomic_write(out / "nightly.md", markdown(facts, results, total).encode())
    return results


def markdown(facts: RunFacts, results: list[PlaceResult], total: Counter[Verdict]) -> str:
    tags = " ".join(f"{k}={v}" for k, v in facts.tags.items())
    out = [
        f"# apflab nightly, {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
        "",
        f"Coordinator {facts.coordinator}; asked for {facts.asked} places with `{tags}` "
        f"(minimum {facts.minimum}, deadline {facts.deadline_s:g} s); got {len(facts.places)}."
        + (" **Interrupted**: the results below are what finished." if facts.interrupted else ""),
        "",
        "| place | target | profile | conduit | tests | pass | unexpected failures | known failures | skipped |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        n = r.counts
        profile = r.properties.get("profile") or r.tags.get("profile", "")
        conduit = r.properties.get("conduit") or r.tags.get("conduit", "")
        passed = n[Verdict.PASS] + n[Verdict.XPASS]
        skipped = n[Verdict.SKIP] + n[Verdict.XFAIL]
        out.append(
            f"| {r.place} | {r.target} | {profile} | {conduit} | {sum(n.values())} | {passed} "
            f"| {n[Verdict.FAIL]} | {n[Verdict.KFAIL]} | {skipped} |"
        )
    if facts.error:
        out += ["", f"**No run**: {facts.error}"]
    out += ["", summary_line(total), ""]
    if facts.notes:
        out += ["## Places not used, and why", ""] + [f"- {note}" for note in facts.notes] + [""]
    failed = [r for r in results if r.failures]
    if failed:
        out += ["## Unexpected failures", ""]
        for r in failed:
            out.append(f"### {r.place}")
            by_reason: dict[str, list[str]] = {}
            for test, reason in r.failures:
                by_reason.setdefault(reason, []).append(test.rsplit("::", 1)[-1])
            for reason, tests in by_reason.items():
                names = ", ".join(f"`{t}`" for t in tests[:3]) + (
                    f" and {len(tests) - 3} more" if len(tests) > 3 else ""
                )
                out.append(f"- {len(tests)} case{'s' if len(tests) > 1 else ''} ({names}): {reason}")
            out.append("")
    if facts.timings:
        out += ["## Timings", "", "| step | seconds |", "|---|---|"]
        out += [f"| {k} | {v:.2f} |" for k, v in facts.timings.items()] + [""]
    return "\n".join(out)
