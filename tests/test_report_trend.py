"""``apflab report trend`` over three real runs of the model kept in a history folder.

Night 1 is the model as it is; night 2 the same with a regression loaded into the model
(tests/model_regression.py: PE_MASK answers 0 under the spec profile), so cases FAIL for
real; night 3 the model as it is again, with the performance model on another seed
(``--perf-seed 2``), so the failures are fixed and the simulated figures move. What the
trend must find is read from each night's own files (its summary.txt, its JUnit, its
metrics), never typed in here. Chromium loads trend.html; the screenshot goes with the
reports (reports/out/trend-screenshot.png).
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.browser import load, screenshot
from tests.conftest import ROOT, apflab_run, run_apflab

SUBSET = "test_smccc or test_priority or perf"
NIGHTS = ((), ("-p", "tests.model_regression"), ("--perf-seed", "2"))
MOVE = "perf.*.mean.time_*=0.1"  # the seed moves the simulated times by more than 0.1 %


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("trend")
    for i, extra in enumerate(NIGHTS, 1):
        r = apflab_run(base / f"out{i}", ["model"], "-k", SUBSET, *extra, history=base / "history", timeout=300)
        assert r.returncode == (1 if i == 2 else 0), r.stdout[-3000:] + r.stderr[-3000:]
        assert "history: " in r.stdout
    return base / "history"


@pytest.fixture(scope="module")
def trend(history: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("trend-out")
    r = run_apflab("report", "trend", str(history), "-o", str(out), "--threshold", MOVE, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr  # the last night's times moved beyond 0.1 %
    return out, r.stdout


def _nights(history: Path) -> list[Path]:
    return sorted(p for p in history.iterdir() if p.is_dir())


def _failed(night: Path) -> set[str]:
    root = ET.parse(night / "junit.xml").getroot()
    return {
        f"{tc.get('classname')}::{tc.get('name')}" for tc in root.iter("testcase") if tc.find("failure") is not None
    }


def _counts(night: Path) -> dict[str, int]:
    """The counts a night's own summary line gives (kvm-unit-tests' SUMMARY)."""
    line = (night / "summary.txt").read_text().splitlines()[-1]
    n = dict((w, int(v)) for v, w in re.findall(r"(\d+) (tests|unexpected|known|skipped)", line))
    return {
        "FAIL": n["unexpected"],
        "KFAIL": n["known"],
        "SKIP": n["skipped"],
        "PASS": n["tests"] - n["unexpected"] - n["known"] - n["skipped"],
    }


def test_each_run_is_kept_as_a_night(history: Path) -> None:
    nights = _nights(history)
    assert len(nights) == 3
    for night in nights:
        for name in ("junit.xml", "metrics.json", "summary.txt", "night.json"):
            assert (night / name).is_file(), (night, name)
        assert json.loads((night / "night.json").read_text())["night"] == night.name
    assert [bool(_failed(n)) for n in nights] == [False, True, False]


def test_new_failures_then_fixes_then_moved_figures(history: Path, trend: tuple[Path, str]) -> None:
    _, text = trend
    n1, n2, n3 = (n.name for n in _nights(history))
    broken = _failed(_nights(history)[1])
    assert broken  # the regression made cases fail
    step1 = text.split(f"{n1} -> {n2}: ", 1)[1].split(f"{n2} -> {n3}: ", 1)[0]
    step2 = text.split(f"{n2} -> {n3}: ", 1)[1].split("verdict: ", 1)[0]
    assert set(re.findall(r"new failure: model (\S+) \(was PASS\)", step1)) == broken
    assert set(re.findall(r"fix: model (\S+) \(now PASS\)", step2)) == broken
    assert "0 metrics beyond their threshold" in step1  # the regression left the simulation alone
    moved = re.findall(r"moved: model (\S+):", step2)
    assert moved and all(re.fullmatch(r"perf\.[\w-]+\.[\w-]+\.mean\.time_(minus|plus)", m) for m in moved)
    before = {m["name"]: m["value"] for m in json.loads((_nights(history)[1] / "metrics.json").read_text())["metrics"]}
    after = {m["name"]: m["value"] for m in json.loads((_nights(history)[2] / "metrics.json").read_text())["metrics"]}
    assert all(abs(after[m] / before[m] - 1) > 0.001 for m in moved)
    assert text.rstrip().endswith("trend: " + str(trend[0] / "trend.md"))
    assert "verdict: REGRESSION in the last run" in text


def test_the_tables_count_each_night_as_its_summary_does(history: Path, trend: tuple[Path, str]) -> None:
    out, _ = trend
    md = (out / "trend.md").read_text()
    for night in _nights(history):
        row = re.search(rf"^\| {re.escape(night.name.replace('_', chr(92) + '_'))} \| [^|]* \| (.*) \|$", md, re.M)
        assert row, night.name
        shown = {v: int(n) for n, v in re.findall(r"(\d+) (\w+)", row.group(1))}
        assert shown == {v: n for v, n in _counts(night).items() if n}, (night.name, shown)
    figures = re.search(r"^\| suite\.time\\_s \| s \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", md, re.M)
    assert figures and all(v.strip() for v in figures.groups())
    row = re.search(r"^\| perf\.scenario-a\.t\.mean\.time\\_minus \| s \|(.*)\|$", md, re.M)
    assert row
    cells = [c.strip() for c in row.group(1).split("|")]
    assert not cells[1].startswith("**") and cells[2].startswith("**")  # moved in night 3 only


def test_the_trend_renders_in_chromium(trend: tuple[Path, str], chromium: str, tmp_path: Path) -> None:
    out, _ = trend
    url = (out / "trend.html").resolve().as_uri()
    page = load(chromium, tmp_path / "profile", url)
    assert page.console == [], page.console
    assert page.attrs["data-plots"] == page.attrs["data-plots-loaded"] == "1"
    assert page.attrs["data-runs"] == "3" and page.attrs["data-steps"] == "2"
    assert (out / "plots" / "trend-1.png").read_bytes().startswith(b"\x89PNG")
    screenshot(chromium, tmp_path / "profile2", url, ROOT / "reports" / "out" / "trend-screenshot.png", "1400,1400")


def test_a_night_that_cannot_be_read_is_named_and_left_out(history: Path, tmp_path: Path) -> None:
    copy = tmp_path / "history"
    shutil.copytree(history, copy)
    bad = _nights(copy)[1] / "junit.xml"
    bad.write_bytes(bad.read_bytes()[:500])
    r = run_apflab("report", "trend", str(copy), "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stdout + r.stderr  # nights 1 and 3: no failure, no default threshold crossed
    assert f"left out: {bad}: not well-formed XML" in r.stdout
    assert "trend over 2 runs" in r.stdout
    _nights(copy)[2].joinpath("junit.xml").write_text("<html></html>")
    r = run_apflab("report", "trend", str(copy), "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "a trend needs at least two runs that can be read (got 1" in r.stderr


def test_a_folder_that_is_neither_is_one_line(tmp_path: Path) -> None:
    r = run_apflab("report", "trend", str(tmp_path), str(tmp_path), "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "neither a results folder (no junit.xml) nor a history folder" in r.stderr


def test_a_history_that_cannot_be_written_is_one_line_and_keeps_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "history"
    blocker.write_text("a file where the history should be")
    r = apflab_run(tmp_path / "out", ["model"], "-k", "test_smccc_version", history=blocker, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]  # the run's own status: the history is extra
    lines = [ln for ln in r.stderr.splitlines() if "history" in ln]
    assert lines == [f"apflab: not kept in the history: {blocker}: cannot add a night to the history (File exists)"]
    assert (tmp_path / "out" / "report.html").is_file() and r.stdout.rstrip().splitlines()[-1].startswith("SUMMARY:")
