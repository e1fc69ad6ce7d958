"""``apflab report merge`` and ``apflab report compare`` on results written by apflab's own writer."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from apflab.results import CaseRecord, Metric, ResultLog
from apflab.verdict import Verdict
from tests.conftest import run_apflab


def write_run(out: Path, target: str, verdicts: dict[str, Verdict], metrics: dict[str, float] | None = None) -> Path:
    log = ResultLog(
        f"apflab.{target}",
        {"target": target, "profile": "spec"},
        out / target / "junit.xml",
        out / target / "metrics.json",
    )
    for name, verdict in verdicts.items():
        props = {
            "spec_section": "DEN0054C 5.1.1",
            "claim": name,
            "target": target,
            "profile": "spec",
            "verdict": verdict.value,
        }
        reason = "" if verdict is Verdict.PASS else f"{verdict.value.lower()} reason"
        log.add(CaseRecord(f"testcases/x.py::{name}", "testcases.x", name, 0.01, verdict, reason, "", props))
    for name, value in (metrics or {}).items():
        log.add_metric(Metric(name, value, "s", "t", target))
    log.flush()
    return out


def test_merge_keeps_targets_and_runs_apart(tmp_path: Path) -> None:
    a = write_run(tmp_path / "night1", "board-a", {"test_1": Verdict.PASS}, {"perf.s.t.1.time_plus": 1.0})
    write_run(tmp_path / "night1", "board-b", {"test_1": Verdict.FAIL})
    b = write_run(tmp_path / "night2", "board-a", {"test_1": Verdict.KFAIL})
    out = tmp_path / "merged"
    r = run_apflab("report", "merge", str(a), str(b / "board-a" / "junit.xml"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    root = ET.parse(out / "junit.xml").getroot()
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["apflab.board-a", "apflab.board-b", "apflab.board-a"]
    origins = [{p.get("name"): p.get("value") for p in s.iter("property")}["merged_from"] for s in suites]
    assert origins[0] != origins[2] and origins[2].endswith("night2/board-a/junit.xml")
    assert root.get("tests") == "3"
    assert (out / "metrics.json").is_file()
    r = run_apflab("report", "build", str(out))
    assert r.returncode == 0, r.stderr
    assert "board-b (spec)" in (out / "report.html").read_text()


def test_merge_names_a_truncated_input_and_writes_nothing(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", "board-a", {"test_1": Verdict.PASS})
    bad = tmp_path / "bad.xml"
    bad.write_text('<?xml version="1.0"?><testsuites><testsuite name="x"><testcase name=')
    out = tmp_path / "merged.xml"
    r = run_apflab("report", "merge", str(a), str(bad), "-o", str(out))
    assert r.returncode == 2 and str(bad) in r.stderr and r.stderr.count("\n") == 1
    assert not out.exists()


def _compare(old: Path, new: Path, *more: str) -> tuple[int, str, str]:
    r = run_apflab("report", "compare", str(old), str(new), *more)
    return r.returncode, r.stdout, r.stderr


def test_compare_reports_failures_fixes_changes_and_moved_metrics(tmp_path: Path) -> None:
    old = write_run(
        tmp_path / "old",
        "model",
        {"test_a": Verdict.PASS, "test_b": Verdict.FAIL, "test_c": Verdict.PASS, "test_gone": Verdict.PASS},
        {"perf.scenario-a.t.mean.time_plus": 10.0, "perf.scenario-a.t.mean.time_minus": 20.0},
    )
    new = write_run(
        tmp_path / "new",
        "model",
        {"test_a": Verdict.FAIL, "test_b": Verdict.PASS, "test_c": Verdict.KFAIL, "test_new": Verdict.PASS},
        {"perf.scenario-a.t.mean.time_plus": 12.0, "perf.scenario-a.t.mean.time_minus": 20.5},
    )
    code, out, _ = _compare(old, new)
    assert code == 1
    assert "new failures: 1\n  model testcases.x::test_a (was PASS)" in out
    assert "fixes: 1\n  model testcases.x::test_b (now PASS)" in out
    assert "verdict changes: 1\n  model testcases.x::test_c: PASS -> KFAIL" in out
    assert "tests added: 1" in out and "tests removed: 1" in out
    assert "perf.scenario-a.t.mean.time_plus: 10 -> 12 s (+20.0%, threshold 10%) REGRESSION" in out
    assert "time_minus" not in out  # +2.5 % is within 10 %
    assert out.rstrip().endswith("verdict: REGRESSION")


def test_metric_rules_choose_what_counts(tmp_path: Path) -> None:
    old = write_run(tmp_path / "old", "model", {"test_a": Verdict.PASS}, {"perf.s.t.1.calc_plus": 100.0})
    new = write_run(tmp_path / "new", "model", {"test_a": Verdict.PASS}, {"perf.s.t.1.calc_plus": 150.0})
    code, out, _ = _compare(old, new)
    assert code == 1 and "REGRESSION" in out
    code, out, _ = _compare(old, new, "--threshold", "perf.*.calc_*=10:down")  # more calculation is better
    assert code == 0 and "calc_plus: 100 -> 150" in out and out.rstrip().endswith("verdict: no regression")
    code, out, _ = _compare(old, new, "--threshold", "perf.*=off")
    assert code == 0 and "metrics beyond their threshold: 0" in out


def test_two_runs_with_no_common_target_are_an_error(tmp_path: Path) -> None:
    old = write_run(tmp_path / "old", "board-a", {"test_a": Verdict.PASS})
    new = write_run(tmp_path / "new", "board-b", {"test_a": Verdict.PASS})
    code, out, err = _compare(old, new)
    assert code == 2 and out == ""
    assert str(old) in err and str(new) in err and "no target in common" in err and err.count("\n") == 1


def test_a_bad_threshold_is_a_one_line_error(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", "model", {"test_a": Verdict.PASS})
    for rule in ("perf.*", "perf.*=ten", "perf.*=5:sideways"):
        code, _, err = _compare(run, run, "--threshold", rule)
        assert code == 2 and "--threshold" in err and err.count("\n") == 1
