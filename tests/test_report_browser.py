"""The report of real runs, in a real browser; merge and compare on the outputs of two real runs.

Two runs of ``apflab run`` on the model targets (a subset of the suites, perf included,
so the report has a matrix and plots) feed headless Chromium (Debian's chromium), which
loads report.html from disk. The report logs nothing to the console by itself, so any
console message (a script error, a plot that did not load) fails the test. A screenshot
goes to reports/out/report-screenshot.png. Without chromium the test is skipped when not
root; as root it installs it through the project's set-up (targets/host-packages.sh).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_apflab

SUBSET = "test_smccc or test_bind or perf"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SCREENSHOT = ROOT / "reports" / "out" / "report-screenshot.png"


def _run(out: Path, *targets: str) -> Path:
    args = [a for t in targets for a in ("--target", t)]
    r = subprocess.run(
        [sys.executable, "-m", "apflab", "run", *args, "--out", str(out), "--", "-k", SUBSET],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"report: {out / 'report.html'}" in r.stdout
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("runs")
    return _run(base / "night1", "model", "model-kvm-v4"), _run(base / "night2", "model")


def _find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium() -> str:
    found = _find_chromium()
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed (Debian package chromium): `make target-packages` as root installs it")
    r = subprocess.run(
        [str(ROOT / "targets" / "host-packages.sh"), "chromium:chromium"],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    found = _find_chromium()
    if r.returncode != 0 or not found:
        pytest.fail(f"installing chromium failed ({r.returncode}): {(r.stdout + r.stderr)[-1500:]}")
    return found


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_report_renders_in_chromium(runs: tuple[Path, Path], chromium: str, tmp_path: Path) -> None:
    report = runs[0] / "report.html"
    url = report.resolve().as_uri()
    r = _chromium(chromium, tmp_path / "profile", "--enable-logging=stderr", "--v=0", "--dump-dom", url)
    assert r.returncode == 0, r.stderr[-2000:]
    console = [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln]
    assert console == [], console
    body = re.search(r"<body([^>]*)>", r.stdout)
    assert body, r.stdout[:500]
    attrs = dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', body.group(1)))
    assert int(attrs["data-plots"]) >= 2  # scenario A and B
    assert attrs["data-plots-loaded"] == attrs["data-plots"]
    assert int(attrs["data-matrix-rows"]) > 5
    assert 'id="matrix"' in r.stdout and "model-kvm-v4 (kvm-v4)" in r.stdout and "KFAIL" in r.stdout
    assert "APF v4 00/15 scenario A" in r.stdout

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    shot = _chromium(
        chromium,
        tmp_path / "profile2",
        "--hide-scrollbars",
        "--window-size=1400,2400",
        f"--screenshot={SCREENSHOT}",
        url,
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG") and SCREENSHOT.stat().st_size > 20_000


def test_the_markdown_report_has_the_matrix_and_the_scenario_table(runs: tuple[Path, Path]) -> None:
    md = (runs[0] / "report.md").read_text()
    assert "| spec section | model (spec) | model-kvm-v4 (kvm-v4) |" in md
    assert "### scenario-a (model, model-kvm-v4)" in md and "| Time- |" in md
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
