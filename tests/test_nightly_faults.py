"""`apflab nightly` under the faults a shared lab has, each on a real labgrid lab on 127.0.0.1.

Coordinator unreachable, a place taken by another user (before the run) or released from
under the run by one (`release --kick`), no place free by the deadline, an exporter that goes away mid-run, a board that
never answers, Ctrl-C: each must end in a
clear error within a bound, with every place this run held released, every reservation
cancelled, no QEMU left, and what finished in the report. The other user is labgrid's own
``labgrid-client`` under another LG_USERNAME; the exporter dies by SIGKILL; the silent
board is a real QEMU started paused (``-S``), so its console never says a word.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from junitparser import JUnitXml
from junitparser.xunit2 import TestCase

from apflab.images import RECIPES, _load_recipes, cache_dir
from apflab.nightly.standin import StandinLab, _bin, free_port
from tests.conftest import ROOT, run_apflab

_load_recipes()
pytestmark = pytest.mark.skipif(
    not RECIPES["tfa"].fresh(cache_dir()), reason="TF-A image not built: run `apflab images tfa` (make test does)"
)

SMALL = "testcases/sdei/test_calls.py"
OTHER = {"LG_USERNAME": "alice", "LG_HOSTNAME": "desk"}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[StandinLab]:
    with StandinLab(tmp_path / "lab") as lab:
        lab.add_exporter("exp-a", {"b1": "qemu-tfa"}, {"pool": "nightly"})
        lab.add_exporter("exp-b", {"b2": "qemu-tfa"}, {"pool": "nightly"})
        yield lab


def labgrid_client(lab: StandinLab, *args: str, env: dict[str, str] | None = None) -> None:
    """Another user at work, through labgrid's own command line client."""
    r = subprocess.run(
        [_bin("labgrid-client"), "-x", lab.address, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0, f"labgrid-client {' '.join(args)}: {r.stdout} {r.stderr}"


def nightly(lab: StandinLab, out: Path, *args: str, suite: str = SMALL, timeout: float = 300):
    return run_apflab(
        "nightly",
        "pool=nightly",
        "--coordinator",
        lab.address,
        "--suite",
        suite,
        "--out",
        str(out),
        *args,
        timeout=timeout,
    )


def cases(junit: Path) -> dict[str, list[dict[str, str]]]:
    """Suite name -> properties of each case, in order."""
    out: dict[str, list[dict[str, str]]] = {}
    for suite in JUnitXml.fromfile(str(junit)):
        out[suite.name] = [{p.name: p.value for p in TestCase.fromelem(c).properties()} for c in suite]
    return out


def mine(lab: StandinLab) -> list[str]:
    """Leftovers of this run (alice's place is hers to keep)."""
    return [x for x in lab.leftovers() if "desk/alice" not in x]


def test_coordinator_unreachable(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    t = time.monotonic()
    r = run_apflab(
        "nightly",
        "pool=nightly",
        "--coordinator",
        f"127.0.0.1:{port}",
        "--connect-timeout",
        "5",
        "--out",
        str(tmp_path / "out"),
        timeout=60,
    )
    assert r.returncode == 2
    assert f"no labgrid coordinator answers at 127.0.0.1:{port}" in r.stderr
    assert time.monotonic() - t < 30


def test_place_taken_by_another_user(lab: StandinLab, tmp_path: Path) -> None:
    labgrid_client(lab, "-p", "b1", "acquire", env=OTHER)
    try:
        r = nightly(lab, tmp_path / "out", "-n", "2", "--min", "1", "--deadline", "3")
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
        assert "asked for 2 places, got 1" in r.stdout and "b1: acquired by desk/alice" in r.stdout
        assert set(cases(tmp_path / "out" / "junit.xml")) == {"apflab.lab-qemu-tfa@b2"}
        assert "b1: acquired by desk/alice" in (tmp_path / "out" / "nightly.md").read_text()
        with lab.session() as s:
            assert s.place("b1").acquired == "desk/alice"  # not ours: left alone
        assert mine(lab) == []
    finally:
        labgrid_client(lab, "-p", "b1", "release", env=OTHER)


def test_no_place_free_by_the_deadline(lab: StandinLab, tmp_path: Path) -> None:
    labgrid_client(lab, "-p", "b1", "acquire", env=OTHER)
    labgrid_client(lab, "-p", "b2", "acquire", env=OTHER)
    try:
        t = time.monotonic()
        r = nightly(lab, tmp_path / "out", "-n", "2", "--min", "1", "--deadline", "2")
        assert r.returncode == 2
        assert "0 of 2 places with pool=nightly within 2 s" in r.stderr
        assert "b1: acquired by desk/alice" in r.stderr and "b2: acquired by desk/alice" in r.stderr
        assert time.monotonic() - t < 60
        assert "No run" in (tmp_path / "out" / "nightly.md").read_text()
        assert mine(lab) == []  # the two reservations were cancelled
    finally:
        labgrid_client(lab, "-p", "b1", "release", env=OTHER)
        labgrid_client(lab, "-p", "b2", "release", env=OTHER)


def nightly_sdei_argv(lab: StandinLab, out: Path) -> list[str]:
    """``apflab nightly`` of the SDEI suite over two stand-in places into ``out``."""
    where = ["--coordinator", lab.address, "--suite", "testcases/sdei", "--out", str(out)]
    return [sys.executable, "-m", "apflab", "nightly", "pool=nightly", "-n", "2", *where]


def break_b2_mid_run(lab: StandinLab, out: Path, breaker) -> tuple[int, str, list[dict], list[dict]]:
    """Run the SDEI suite on b1 and b2; once b2 finished 3 cases, ``breaker()``; wait for the end."""
    cmd = nightly_sdei_argv(lab, out)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        b2 = out / "b2" / "junit.xml"
        deadline = time.monotonic() + 120
        while not (b2.exists() and len(next(iter(cases(b2).values()), [])) >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, "b2 never got going"
            time.sleep(0.02)
        breaker()
        text, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    suites = cases(out / "junit.xml")
    return proc.returncode, text, suites["apflab.lab-qemu-tfa@b1"], suites["apflab.lab-qemu-tfa@b2"]


def assert_b2_cut_short(b1: list[dict], b2: list[dict], reason: str) -> None:
    assert all(c["verdict"] != "FAIL" for c in b1)  # the other place went on
    assert [c["verdict"] for c in b2[:3]] != ["FAIL"] * 3  # what ran before the fault is kept
    lost = [c for c in b2 if c["verdict"] == "FAIL"]
    assert lost and all(reason in c["reason"] for c in lost)
    assert lost == b2[len(b2) - len(lost) :]  # from then on, every case, at once


def test_exporter_gone_mid_run(lab: StandinLab, tmp_path: Path) -> None:
    code, text, b1, b2 = break_b2_mid_run(lab, tmp_path / "out", lab.exporters["exp-b"].kill)  # host gone
    assert code == 1, text[-3000:]
    assert_b2_cut_short(b1, b2, "place b2 lost its resources mid-run (exporter exp-b gone?)")
    assert mine(lab) == []


def test_place_released_from_under_the_run(lab: StandinLab, tmp_path: Path) -> None:
    """Another user kicks this run off b2 (`labgrid-client release --kick`): b2 is no longer acquired."""

    def kick() -> None:
        labgrid_client(lab, "-p", "b2", "release", "--kick", env=OTHER)

    code, text, b1, b2 = break_b2_mid_run(lab, tmp_path / "out", kick)
    assert code == 1, text[-3000:]
    assert_b2_cut_short(b1, b2, "place b2 is no longer held by this run (acquired: nobody)")
    assert mine(lab) == []


def silent_board_env(tmp_path: Path) -> Path:
    """lab.yaml plus `lab-silent`: lab-qemu-tfa whose QEMU starts paused and so never speaks."""
    doc = yaml.safe_load((ROOT / "lab.yaml").read_text())
    silent = json.loads(json.dumps(doc["targets"]["lab-qemu-tfa"]))
    silent["drivers"]["QEMUBoardPowerDriver"]["extra_args"] = "-S"
    silent["drivers"]["AgentDriver"]["ready_timeout"] = 3.0
    doc["targets"]["lab-silent"] = silent
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_board_that_never_answers(tmp_path: Path) -> None:
    with StandinLab(tmp_path / "lab") as lab:
        lab.add_exporter("exp-a", {"b1": "qemu-tfa"}, {"pool": "nightly"})
        lab.add_exporter("exp-c", {"b3": "qemu-tfa"}, {"pool": "nightly", "target": "lab-silent"})
        t = time.monotonic()
        r = nightly(lab, tmp_path / "out", "-n", "2", "--lg-env", str(silent_board_env(tmp_path)))
        assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
        assert time.monotonic() - t < 240
        suites = cases(tmp_path / "out" / "junit.xml")
        assert all(c["verdict"] != "FAIL" for c in suites["apflab.lab-qemu-tfa@b1"])
        silent = suites["apflab.lab-silent@b3"]
        assert silent and all(c["verdict"] == "FAIL" for c in silent)
        assert "did not report ready within 3 s; console: (silent)" in silent[0]["reason"]
        assert mine(lab) == []


#: After this many tests per place, tests/ctrl_c_gate.py holds the run until Ctrl-C.
HELD_AFTER = 2


def test_ctrl_c_gives_the_places_back(lab: StandinLab, tmp_path: Path) -> None:
    """Ctrl-C mid-run. Each place's pytest is held after HELD_AFTER tests (tests/ctrl_c_gate.py),
    so the run is still going when the interrupt arrives, however busy the machine is."""
    out = tmp_path / "out"
    cmd = [*nightly_sdei_argv(lab, out), "--pytest-args=-p tests.ctrl_c_gate"]
    env = {**os.environ, "APFLAB_TEST_GATE_AFTER": str(HELD_AFTER)}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not any(len(next(iter(cases(j).values()), [])) >= HELD_AFTER for j in out.glob("b*/junit.xml")):
            assert proc.poll() is None and time.monotonic() < deadline, "no place got going"
            time.sleep(0.05)
        assert proc.poll() is None  # held: it cannot have finished
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        text, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2, text[-3000:]
    assert "interrupted" in text
    assert "Interrupted" in (out / "nightly.md").read_text()
    finished = sum(len(v) for v in cases(out / "junit.xml").values())
    assert finished >= HELD_AFTER  # what finished is kept
    assert mine(lab) == []
