"""The report's seed-style scenario B: both halves (without and with -t), each half's
migration figures, and the calculation during the post-copy window.

The metrics are the performance model's own (apflab.perf.table.metrics of a real
simulation), written with apflab's result writer as a run writes them; the expected
figures are computed here from those metrics, never typed in.
"""

from __future__ import annotations

import re
from statistics import mean

import pytest

from apflab.perf.scenarios import scenario_b
from apflab.perf.table import metrics
from apflab.results import Metric, ResultLog
from tests.conftest import run_apflab

RUNS = 2


@pytest.fixture(scope="module")
def figures() -> dict[str, float]:
    return {name: value for name, value, _ in metrics(scenario_b(RUNS, 1))}


@pytest.fixture(scope="module")
def report(figures: dict[str, float], tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    out = tmp_path_factory.mktemp("perf")
    model = out / "model"
    log = ResultLog("apflab.model", {"target": "model", "profile": "spec"}, model / "junit.xml", model / "metrics.json")
    for name, value, unit in metrics(scenario_b(RUNS, 1)):
        log.add_metric(Metric(name, value, unit, "testcases/perf/test_scenario_b.py::t", "model"))
    log.flush()
    r = run_apflab("report", "build", str(out))
    assert r.returncode == 0, r.stderr
    return (out / "report.html").read_text(), (out / "report.md").read_text()


def _mean(figures: dict[str, float], cfg: str, key: str) -> float:
    return mean(figures[f"perf.scenario-b.{cfg}.{run}.migration_{key}"] for run in range(1, RUNS + 1))


def test_both_halves_are_rows_of_the_table(report: tuple[str, str], figures: dict[str, float]) -> None:
    _, md = report
    for cfg, label in (("no-t", "no -t"), ("t", "-t")):
        time_minus = figures[f"perf.scenario-b.{cfg}.1.time_minus"]
        assert f"| {label} | 1 | {time_minus:.3f} s |" in md, cfg


def test_each_half_has_its_own_migration_figures(report: tuple[str, str], figures: dict[str, float]) -> None:
    html, md = report
    no_t = (_mean(figures, "no-t", "minus.postcopy_requests"), _mean(figures, "no-t", "plus.postcopy_requests"))
    with_t = (_mean(figures, "t", "minus.postcopy_requests"), _mean(figures, "t", "plus.postcopy_requests"))
    assert no_t != with_t  # the halves differ: a table that shows one of them twice is wrong
    row = re.search(r"^\| post-copy requests \|(.*)\|$", md, re.MULTILINE)
    assert row, md
    cells = [c.strip() for c in row.group(1).split("|")]
    assert cells[:4] == [f"{v:,.0f}" for v in (*no_t, *with_t)], cells
    assert "without -t" in html and "with -t" in html


def test_the_post_copy_window_calculation_is_shown(report: tuple[str, str], figures: dict[str, float]) -> None:
    html, md = report
    minus = figures["perf.scenario-b.t.mean.window_calc_minus"]
    plus = figures["perf.scenario-b.t.mean.window_calc_plus"]
    line = f"calculation during the post-copy window: {minus:.0f}m without APF, {plus:.0f}m with APF"
    line += f" ({(plus / minus - 1) * 100:+.1f}%)"
    assert line in md and line in html
