"""``apflab report trend``: how runs compare across nights, as a table, plots and changes.

Each run (a results folder, or each night of a history folder: apflab/report/history.py)
gives, per target, its verdict counts and its figures: the suite's time (the sum of its
cases' times, ``suite.time_s``), the number of cases, and every metric it recorded,
per-run figures averaged into their mean (``perf.scenario-b.t.3.migration_plus.downtime_ms``
-> ``perf.scenario-b.t.mean.migration_plus.downtime_ms``, ``time-[2]`` -> ``time-.mean``)
unless the run recorded that mean itself. Each night is compared with the one before as
``apflab report compare`` compares two runs (new failures, fixes, other verdict changes,
tests added and removed, metrics beyond their threshold), with the same rules. A night
that cannot be read is named and left out, so one bad night does not hide the others.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from statistics import mean

from apflab.report.compare import Comparison, Rule, compare_results, rule_for
from apflab.report.history import NIGHT_FILE, nights
from apflab.report.load import ReportError, Results, load
from apflab.report.matrix import SEVERITY

#: The figures a trend shows first and plots, by name (fnmatch); the rest are one click away.
HEADLINE = (
    "suite.time_s",
    "session.*",
    "perf.*.mean.time_minus",
    "perf.*.mean.time_plus",
    "perf.*.mean.calc_minus",
    "perf.*.mean.calc_plus",
    "perf.*.mean.window_calc_*",
    "perf.*.mean.migration_*.total_time_ms",
    "perf.*.mean.migration_*.downtime_ms",
    "*copy.total_time",
    "*copy.downtime",
    "time-.mean",
    "time+.mean",
)
#: Lines on a target's plot of figures: the ones that moved most.
PLOTTED = 8
_PER_RUN = re.compile(r"\.\d+\.")
_INDEXED = re.compile(r"\[\d+\]$")


def _is_headline(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in HEADLINE)


@dataclass
class Night:
    label: str
    path: Path
    started: str
    counts: dict[str, Counter[str]]  # target -> verdict -> cases
    figures: dict[str, dict[str, tuple[float, str]]]  # target -> figure -> (value, unit)
    results: Results = field(repr=False)


@dataclass
class Step:
    """One night against the night before."""

    before: str
    after: str
    comparison: Comparison | None
    problem: str = ""  # why there is no comparison


@dataclass
class Trend:
    nights: list[Night]
    steps: list[Step]
    targets: list[str]
    left_out: list[str]
    rules: list[Rule]

    @property
    def regression(self) -> bool:
        """The last night regressed against the one before (what a nightly job fails on)."""
        last = self.steps[-1].comparison if self.steps else None
        return bool(last and last.regression)

    def figure_names(self, target: str) -> list[str]:
        """Every figure the target has on any night: the headline ones first (the suite's
        and the session's, then by name, so a scenario's halves stay together)."""
        names = {n for night in self.nights for n in night.figures.get(target, {})}
        return sorted(names, key=lambda n: (not _is_headline(n), not n.startswith(("suite.", "session.")), n))

    def headline(self, target: str) -> list[str]:
        return [n for n in self.figure_names(target) if _is_headline(n)]

    def series(self, target: str, name: str) -> list[float | None]:
        return [night.figures.get(target, {}).get(name, (None, ""))[0] for night in self.nights]

    def unit(self, target: str, name: str) -> str:
        return next((n.figures[target][name][1] for n in self.nights if name in n.figures.get(target, {})), "")

    def moved(self, target: str, name: str) -> list[bool]:
        """Per night: the figure moved beyond its rule's threshold since the night before."""
        rule = rule_for(name, self.rules)
        values = self.series(target, name)
        out = [False]
        for x, y in pairwise(values):
            if rule is None or x is None or y is None or x == y:
                out.append(False)
            else:
                out.append(x == 0 or abs((y - x) / x * 100.0) > rule.percent)  # type: ignore[operator]
        return out


def figures(results: Results, target: str) -> dict[str, tuple[float, str]]:
    """The target's figures on one night (see the module's docstring)."""
    cases = [c for c in results.cases if c.target == target]
    out: dict[str, tuple[float, str]] = {
        "suite.time_s": (round(sum(c.time for c in cases), 3), "s"),
        "suite.cases": (float(len(cases)), "cases"),
    }
    recorded: dict[str, list[float]] = {}
    derived: dict[str, list[float]] = {}
    units: dict[str, str] = {}
    for m in results.metrics:
        if m.target != target or m.name == "duration":
            continue
        if _PER_RUN.search(m.name):
            name, into = _PER_RUN.sub(".mean.", m.name, count=1), derived
        elif _INDEXED.search(m.name):
            name, into = _INDEXED.sub("", m.name) + ".mean", derived
        else:
            name, into = m.name, recorded
        into.setdefault(name, []).append(m.value)
        units.setdefault(name, m.unit)
    for name, values in (derived | recorded).items():  # a mean the run recorded wins
        out[name] = (mean(values), units[name])
    return out


def _started(results: Results, path: Path) -> str:
    stamps = sorted(s.properties["started"] for s in results.suites if s.properties.get("started"))
    if stamps:
        return stamps[0]
    try:
        return str(json.loads((path / NIGHT_FILE).read_text()).get("saved", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _labels(paths: list[Path]) -> list[str]:
    """A night's folder name, or more of its path where two names are the same."""
    short = [p.name if p.name != "junit.xml" else p.parent.name for p in paths]
    return [s if short.count(s) == 1 else str(p) for s, p in zip(short, paths, strict=True)]


def read_night(path: Path, label: str) -> Night:
    results = load(path)
    counts = {t: Counter(c.verdict for c in results.cases if c.target == t) for t in results.targets}
    per_target = {t: figures(results, t) for t in results.targets}
    return Night(label, path, _started(results, path), counts, per_target, results)


def build_trend(paths: list[Path], rules: list[Rule]) -> Trend:
    runs = nights(paths)
    read, left_out = [], []
    for path, label in zip(runs, _labels(runs), strict=True):
        try:
            read.append(read_night(path, label))
        except ReportError as exc:
            left_out.append(str(exc))
    if len(read) < 2:
        shown = "; ".join(left_out) or f"{len(read)} run"
        raise ReportError(f"a trend needs at least two runs that can be read (got {len(read)}: {shown})")
    steps = []
    for a, b in pairwise(read):
        try:
            steps.append(Step(a.label, b.label, compare_results(a.results, b.results, rules, a.label, b.label)))
        except ReportError as exc:
            steps.append(Step(a.label, b.label, None, str(exc)))
    targets = sorted({t for n in read for t in n.counts})
    return Trend(read, steps, targets, left_out, rules)


def counts_line(counts: Counter[str]) -> str:
    return ", ".join(f"{counts[v]} {v}" for v in SEVERITY if counts.get(v)) or "no cases"


def format_trend(trend: Trend) -> str:
    """The trend for a terminal: each night's counts, then each step's changes."""
    from apflab.safetext import visible

    lines = [f"trend over {len(trend.nights)} runs (targets: {', '.join(trend.targets)})"]
    for night in trend.nights:
        lines.append(f"{night.label} ({night.started or 'start unknown'})")
        lines += [f"  {t}: {counts_line(night.counts[t])}" for t in trend.targets if t in night.counts]
    for step in trend.steps:
        c = step.comparison
        if c is None:
            lines.append(f"{step.before} -> {step.after}: {step.problem}")
            continue
        lines.append(
            f"{step.before} -> {step.after}: {len(c.new_failures)} new failures, {len(c.fixes)} fixes, "
            f"{len(c.changes)} other verdict changes, {len(c.added)} tests added, {len(c.removed)} removed, "
            f"{len(c.moved)} metrics beyond their threshold" + (" REGRESSION" if c.regression else "")
        )
        lines += [f"  new failure: {t} {test} (was {v})" for t, test, v in c.new_failures]
        lines += [f"  fix: {t} {test} (now {v})" for t, test, v in c.fixes]
        lines += [
            f"  moved: {m.target} {m.name}: {m.old:g} -> {m.new:g} {m.unit} ({m.change_pct:+.1f}%)" for m in c.moved
        ]
    lines += [f"left out: {why}" for why in trend.left_out]
    lines.append(f"verdict: {'REGRESSION' if trend.regression else 'no regression'} in the last run")
    return "\n".join(visible(line) for line in lines)  # names come from result files
