"""``apflab report compare OLD NEW``: what changed between two runs, for nightly CI.

Testcases are matched by (target, class, name) on the targets both runs have (two runs
with no target in common are an error: there is nothing to compare). Reported: new
failures (a FAIL or XPASS that was not one before, including new tests), fixes (a FAIL
that now passes), other verdict changes, tests added and removed, and metrics that moved
beyond their threshold. A threshold rule is ``PATTERN=PERCENT[:up|down|any]``: the
pattern (fnmatch) selects metric names, the percent is the allowed relative move, and
the direction is the one that counts as a regression (``up`` for times, ``down`` for
throughput, ``any`` by default). The last matching rule wins; metrics no rule matches
are not compared. A regression (new failure, or a metric beyond its threshold in its
regression direction) makes the exit status 1.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from apflab.report.load import Case, Metric, ReportError, Results, load
from apflab.safetext import visible

#: the simulated and measured performance figures, 10 % either way
DEFAULT_RULES = ("perf.*=10", "perf.*.output_*=off")


@dataclass(frozen=True)
class Rule:
    pattern: str
    percent: float | None  # None: not compared
    direction: str = "any"


def parse_rule(text: str) -> Rule:
    pattern, sep, rest = text.partition("=")
    if not sep or not pattern.strip():
        raise ReportError(f"--threshold {text!r}: expected PATTERN=PERCENT[:up|down|any] or PATTERN=off")
    value, _, direction = rest.partition(":")
    direction = direction.strip() or "any"
    if direction not in ("up", "down", "any"):
        raise ReportError(f"--threshold {text!r}: direction must be up, down or any")
    if value.strip() == "off":
        return Rule(pattern.strip(), None, direction)
    try:
        percent = float(value)
    except ValueError:
        raise ReportError(f"--threshold {text!r}: {value!r} is not a percentage") from None
    if percent < 0:
        raise ReportError(f"--threshold {text!r}: the percentage must not be negative")
    return Rule(pattern.strip(), percent, direction)


def rule_for(name: str, rules: list[Rule]) -> Rule | None:
    found = None
    for rule in rules:
        if fnmatch.fnmatchcase(name, rule.pattern):
            found = rule
    return found if found is not None and found.percent is not None else None


@dataclass
class Moved:
    target: str
    name: str
    old: float
    new: float
    unit: str
    change_pct: float
    threshold: float
    regression: bool


@dataclass
class Comparison:
    old: str
    new: str
    targets: list[str]
    new_failures: list[tuple[str, str, str]] = field(default_factory=list)  # target, test, old verdict
    fixes: list[tuple[str, str, str]] = field(default_factory=list)  # target, test, new verdict
    changes: list[tuple[str, str, str, str]] = field(default_factory=list)  # target, test, old, new
    added: list[tuple[str, str]] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    moved: list[Moved] = field(default_factory=list)

    @property
    def regression(self) -> bool:
        return bool(self.new_failures) or any(m.regression for m in self.moved)


BAD = ("FAIL", "XPASS")


def _cases(results: Results, targets: set[str]) -> dict[tuple[str, str, str], Case]:
    return {c.key: c for c in results.cases if c.target in targets}


def _metrics(results: Results, targets: set[str]) -> dict[tuple[str, str, str], Metric]:
    """Keyed by (target, test, name); per-test figures such as duration keep their test."""
    out = {}
    for m in results.metrics:
        if m.target in targets:
            out[(m.target, m.test if m.name == "duration" else "", m.name)] = m
    return out


def compare(old_path: Path, new_path: Path, rules: list[Rule]) -> Comparison:
    return compare_results(load(old_path), load(new_path), rules, str(old_path), str(new_path))


def compare_results(old: Results, new: Results, rules: list[Rule], old_label: str, new_label: str) -> Comparison:
    """What :func:`compare` finds, on results already loaded (a trend compares each night
    with the one before)."""
    common = set(old.targets) & set(new.targets)
    if not common:
        raise ReportError(
            f"{old_label} and {new_label} have no target in common "
            f"({', '.join(old.targets) or 'none'} vs {', '.join(new.targets) or 'none'}): nothing to compare"
        )
    result = Comparison(old_label, new_label, sorted(common))
    a, b = _cases(old, common), _cases(new, common)
    for key in sorted(a.keys() | b.keys()):
        target, test = key[0], (b.get(key) or a[key]).test_id
        before, after = a.get(key), b.get(key)
        if before is None:
            result.added.append((target, test))
            if after is not None and after.verdict in BAD:
                result.new_failures.append((target, test, "(new test)"))
        elif after is None:
            result.removed.append((target, test))
        elif before.verdict != after.verdict:
            if after.verdict in BAD:
                result.new_failures.append((target, test, before.verdict))
            elif before.verdict in BAD and after.verdict in ("PASS", "KFAIL", "XFAIL"):
                result.fixes.append((target, test, after.verdict))
            else:
                result.changes.append((target, test, before.verdict, after.verdict))
    ma, mb = _metrics(old, common), _metrics(new, common)
    for key in sorted(ma.keys() & mb.keys()):
        rule = rule_for(key[2], rules)
        if rule is None:
            continue
        x, y = ma[key].value, mb[key].value
        if x == y:
            continue
        change = (y - x) / abs(x) * 100.0 if x else float("inf")
        if abs(change) <= rule.percent:
            continue
        worse = rule.direction == "any" or (rule.direction == "up") == (change > 0)
        result.moved.append(Moved(key[0], key[2], x, y, mb[key].unit, change, rule.percent, worse))
    return result


def format_comparison(c: Comparison) -> str:
    """The comparison for a terminal: test and metric names with control characters
    written out, so a result file cannot move the cursor or retitle the window."""
    lines = [f"compare {c.old} -> {c.new} (targets: {', '.join(c.targets)})"]

    def section(title: str, items: list[str]) -> None:
        lines.append(f"{title}: {len(items)}")
        lines.extend(f"  {i}" for i in items)

    section("new failures", [f"{t} {test} (was {v})" for t, test, v in c.new_failures])
    section("fixes", [f"{t} {test} (now {v})" for t, test, v in c.fixes])
    section("verdict changes", [f"{t} {test}: {a} -> {b}" for t, test, a, b in c.changes])
    section("tests added", [f"{t} {test}" for t, test in c.added])
    section("tests removed", [f"{t} {test}" for t, test in c.removed])
    section(
        "metrics beyond their threshold",
        [
            f"{m.target} {m.name}: {m.old:g} -> {m.new:g} {m.unit} ({m.change_pct:+.1f}%, threshold {m.threshold:g}%)"
            + (" REGRESSION" if m.regression else "")
            for m in c.moved
        ],
    )
    lines.append("verdict: REGRESSION" if c.regression else "verdict: no regression")
    return "\n".join(visible(line) for line in lines)  # names come from result files: no escapes
