"""``apflab simulate``: the seed-style table on stdout, the metrics file, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from apflab.report.load import read_metrics
from tests.conftest import run_apflab


def test_scenario_a_prints_the_seed_table_and_writes_metrics(tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    r = run_apflab("simulate", "scenario-a", "--runs", "2", "--metrics", str(out))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header = next(ln for ln in lines if "Time-" in ln)
    assert [h.strip() for h in header.split("|")] == ["Time-", "Calculation-", "Time+", "Calculation+", "Output"]
    rows = [ln for ln in lines if ln.count("|") == 4 and ln.strip().endswith("%")]
    assert len(rows) == 4  # 2 runs without -t, 2 with
    assert "asynchronous page faults per run" in r.stdout
    metrics, _ = read_metrics(out)  # the report's reader accepts it
    names = {m.name: m for m in metrics}
    assert names["perf.scenario-a.t.mean.output_time"].unit == "%"
    assert names["perf.scenario-a.no-t.1.time_minus"].unit == "s"
    assert json.loads(out.read_text())["properties"]["scenario"] == "scenario-a"


def test_scenario_b_prints_the_migration_figures() -> None:
    r = run_apflab("simulate", "scenario-b", "--runs", "1", "--metrics", "-")
    assert r.returncode == 0, r.stderr
    for figure in (
        "total_time_ms",
        "downtime_ms",
        "setup_ms",
        "transferred_mb",
        "throughput_mbps",
        "dirty_sync_count",
        "page_size",
        "pages_per_second",
        "postcopy_requests",
    ):
        assert figure in r.stdout
    assert "metrics:" not in r.stdout


def test_bad_parameters_are_one_line_errors() -> None:
    for args, words in (
        (("--param", "nosuch=1"), "--param nosuch: no such parameter"),
        (("--param", "passes=x"), "--param passes=x: expected a int"),
        (("--runs", "0"), "--runs 0"),
    ):
        r = run_apflab("simulate", "scenario-a", *args, "--metrics", "-")
        assert r.returncode == 2
        assert r.stderr.count("\n") == 1 and words in r.stderr, r.stderr
