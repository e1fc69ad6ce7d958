"""Ctrl-C in the middle of ``apflab run``: what ran is merged, summarised and reported.

The run goes on two model targets; tests/ctrl_c_gate.py holds it after a few tests of
the first, so the interrupt always lands mid-run. A terminal's Ctrl-C reaches the whole
foreground process group; ``kill -INT`` reaches apflab alone, which must pass it on.
Either way: no traceback, exit status 130, and junit.xml, summary.txt and the report for
the tests that finished.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from junitparser import JUnitXml

from tests.conftest import ROOT

HELD_AFTER = 5


def start_run(out: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "apflab", "run", "--out", str(out), "--target", "model", "--target", "model-kvm-v4"]
    env = {**os.environ, "APFLAB_TEST_GATE_AFTER": str(HELD_AFTER)}
    return subprocess.Popen(
        [*argv, "--", "testcases/sdei/test_calls.py", "-p", "tests.ctrl_c_gate"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_until_held(proc: subprocess.Popen, junit: Path) -> None:
    deadline = time.monotonic() + 120
    while not (junit.exists() and sum(len(s) for s in JUnitXml.fromfile(str(junit))) >= HELD_AFTER):
        assert proc.poll() is None and time.monotonic() < deadline, "the run never got going"
        time.sleep(0.05)
    time.sleep(0.2)  # into the gate
    assert proc.poll() is None


@pytest.mark.parametrize("whom", ["group", "apflab"])
def test_an_interrupted_run_keeps_what_ran(whom: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start_run(out)
    try:
        wait_until_held(proc, out / "model" / "junit.xml")
        if whom == "group":
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        else:
            os.kill(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, (proc.returncode, stdout[-2000:], stderr[-2000:])
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "interrupted" in stderr
    merged = JUnitXml.fromfile(str(out / "junit.xml"))
    assert sum(len(s) for s in merged) >= HELD_AFTER
    summary = (out / "summary.txt").read_text().splitlines()
    assert summary[0].startswith("model: SUMMARY:") and "interrupted" in summary[0]
    assert summary[1] == "model-kvm-v4: not run (interrupted)"
    assert summary[-1].startswith("SUMMARY:")
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    assert stdout.splitlines()[-1] == summary[-1]
