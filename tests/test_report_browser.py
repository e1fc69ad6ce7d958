"""The report of real runs, in a real browser; merge and compare on the outputs of two real runs.

Two runs of ``apflab run`` on the model targets (a subset of the suites, perf included,
so the report has a matrix and plots) feed headless Chromium (tests/browser.py), which
loads report.html from disk in a 1400x900 window: no console message at all, every plot
loaded, the whole matrix of every target on that one screen, and a case's row opened by
a link. The screenshots go with the reports: reports/out/report-screenshot.png (the page
as it opens) and reports/out/report-drilldown.png (an area, a section and a case open).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser import load, screenshot
from tests.conftest import ROOT, apflab_run, run_apflab

SUBSET = "test_smccc or test_bind or test_dispatch or perf"
SHOTS = ROOT / "reports" / "out"


def _run(out: Path, *targets: str) -> Path:
    r = apflab_run(out, list(targets), "-k", SUBSET, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"report: {out / 'report.html'}" in r.stdout
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("runs")
    return _run(base / "night1", "model", "model-kvm-v4"), _run(base / "night2", "model")


def test_the_report_renders_in_chromium(runs: tuple[Path, Path], chromium: str, tmp_path: Path) -> None:
    url = (runs[0] / "report.html").resolve().as_uri()
    page = load(chromium, tmp_path / "profile", url)
    assert page.console == [], page.console
    a = page.attrs
    assert int(a["data-plots"]) >= 2 and a["data-plots-loaded"] == a["data-plots"]  # scenario A and B
    assert int(a["data-matrix-groups"]) >= 4 and int(a["data-matrix-cases"]) > 50
    height = int(a["data-viewport"].split("x")[1])
    assert int(a["data-matrix-bottom"]) <= height, a  # every target's whole matrix: one screen
    assert int(a["data-page-width"]) <= 1400 and int(a["data-matrix-right"]) <= 1400, a
    assert "model-kvm-v4 (kvm-v4)" in page.dom and "v-KFAIL" in page.dom
    assert 'id="fidelity-none"' in page.dom  # the model alone: the view says where it is
    screenshot(chromium, tmp_path / "profile2", url, SHOTS / "report-screenshot.png")


def test_a_link_to_a_case_opens_its_rows(runs: tuple[Path, Path], chromium: str, tmp_path: Path) -> None:
    html = (runs[0] / "report.html").read_text()
    case = re.search(
        r'<div class="mx-row mx-case" id="(c-[0-9a-f]+)"><span class="mx-label" title="[^"]*"><code>'
        r"test_resume_misaligned</code>",
        html,
    )
    assert case, "the dispatch suite's case is in the matrix"
    sec = html[: case.start()].rsplit('<details class="mx-sec" id="', 1)[1].split('"', 1)[0]
    group = html[: case.start()].rsplit('<details class="mx-group" id="', 1)[1].split('"', 1)[0]
    url = (runs[0] / "report.html").resolve().as_uri() + f"?open={case.group(1)}"
    page = load(chromium, tmp_path / "profile", url)
    assert page.console == [], page.console
    assert page.attrs["data-open"].split() == [group, sec]
    hash_page = load(chromium, tmp_path / "profile2", url.split("?")[0] + f"#{case.group(1)}")
    assert hash_page.attrs["data-open"].split() == [group, sec]
    screenshot(chromium, tmp_path / "profile3", url, SHOTS / "report-drilldown.png")


def test_the_markdown_report_has_the_matrix_and_the_scenario_tables(runs: tuple[Path, Path]) -> None:
    md = (runs[0] / "report.md").read_text()
    assert "| what is tested | model (spec) | model-kvm-v4 (kvm-v4) |" in md
    assert re.search(r"^\| \*\*Dispatch and COMPLETE\*\* \(\d+\) \| \d+ PASS \| \d+ KFAIL, \d+ PASS \|$", md, re.M)
    assert "### scenario-a (model, model-kvm-v4)" in md and "| Time- |" in md
    assert "calculation during the post-copy window" in md
    for png in re.findall(r"\]\((plots/[^)]+\.png)\)", md):
        assert (runs[0] / png).is_file()


def test_merge_and_compare_work_on_two_real_runs(runs: tuple[Path, Path], tmp_path: Path) -> None:
    night1, night2 = runs
    r = run_apflab("report", "merge", str(night1), str(night2), "-o", str(tmp_path / "merged"))
    assert r.returncode == 0, r.stderr
    assert "merged 3 suites" in r.stdout  # model and model-kvm-v4 from night 1, model from night 2
    r = run_apflab("report", "compare", str(night1), str(night2))
    assert r.returncode == 0, r.stdout + r.stderr  # the same model, the same seed: nothing regressed
    assert "(targets: model)" in r.stdout and "new failures: 0" in r.stdout
    assert "metrics beyond their threshold: 0" in r.stdout
