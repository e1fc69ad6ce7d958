"""The pytest plugin as users meet it: target selection, bad lab.yaml, results on disk."""

from __future__ import annotations

import json
import textwrap
import warnings
from pathlib import Path

from junitparser import JUnitXml
from junitparser.xunit2 import TestCase

from tests.conftest import ROOT, run_pytest

ONE_CASE = "testcases/sdei/test_calls.py::test_version_major"


def test_unknown_target_lists_known() -> None:
    r = run_pytest(ONE_CASE, "--target", "nosuch")
    assert r.returncode == 4
    assert "unknown target 'nosuch'" in r.stderr and "model-kvm-v4" in r.stderr
    assert "Traceback" not in r.stderr


def test_malformed_lab_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "lab.yaml"
    bad.write_text("targets: [oops\n")
    r = run_pytest(ONE_CASE, "--lg-env", str(bad))
    assert r.returncode == 4
    assert "not a valid labgrid environment" in r.stderr and "Traceback" not in r.stderr
    assert len([line for line in r.stderr.splitlines() if line.startswith("ERROR")]) == 1


def test_missing_lab_yaml(tmp_path: Path) -> None:
    r = run_pytest(ONE_CASE, "--lg-env", str(tmp_path / "nope.yaml"))
    assert r.returncode == 4 and "does not exist" in r.stderr


def test_bad_driver_option(tmp_path: Path) -> None:
    env = tmp_path / "lab.yaml"
    env.write_text(
        "targets:\n  model:\n    drivers:\n      ModelDriver:\n        profile: kvm-v9\nimports:\n  - apflab.lab\n"
    )
    r = run_pytest(ONE_CASE, "--lg-env", str(env))
    assert r.returncode != 0
    assert "kvm-v9" in r.stdout + r.stderr


def test_single_case_writes_properties(tmp_path: Path) -> None:
    junit, metrics = tmp_path / "j.xml", tmp_path / "m.json"
    r = run_pytest(ONE_CASE, "--apflab-junit", str(junit), "--apflab-metrics", str(metrics))
    assert r.returncode == 0, r.stdout
    assert "SUMMARY: 1 tests, 0 unexpected failures, 0 known failures, 0 skipped" in r.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xml = JUnitXml.fromfile(str(junit))
        suites = list(xml)
        cases = [TestCase.fromelem(c) for c in suites[0]]
        props = {p.name: p.value for p in cases[0].properties()}
        suite_props = {p.name: p.value for p in suites[0].properties()}
    assert props["spec_section"] == "DEN0054C 5.1.1" and props["verdict"] == "PASS"
    assert props["target"] == "model" and props["profile"] == "spec"
    assert suite_props["profile"] == "spec" and suite_props["apflab_version"]
    doc = json.loads(metrics.read_text())
    assert {"name", "value", "unit"} <= set(doc["metrics"][0]) and doc["metrics"][0]["unit"] == "s"


def test_kfail_reason_in_junit(tmp_path: Path) -> None:
    junit = tmp_path / "j.xml"
    case = "testcases/sdei/test_priority.py::test_pe_mask_already_masked"
    r = run_pytest(case, "--target", "model-kvm-v4", "--apflab-junit", str(junit))
    assert r.returncode == 0 and "1 known failures" in r.stdout
    tc = TestCase.fromelem(next(iter(next(iter(JUnitXml.fromfile(str(junit)))))))
    props = {p.name: p.value for p in tc.properties()}
    assert props["verdict"] == "KFAIL" and "pe_mask_state_denied" in props["reason"]


def test_killed_run_leaves_valid_junit(tmp_path: Path) -> None:
    """A run killed half-way (SIGKILL, no teardown) still has valid files for what finished."""
    (tmp_path / "test_dies.py").write_text(
        textwrap.dedent("""
        import os, signal
        def test_one(): pass
        def test_two(): pass
        def test_three(): os.kill(os.getpid(), signal.SIGKILL)
        def test_four(): pass
    """)
    )
    junit, metrics = tmp_path / "out" / "junit.xml", tmp_path / "out" / "metrics.json"
    r = run_pytest(
        str(tmp_path),
        "--rootdir",
        str(tmp_path),
        "--apflab-junit",
        str(junit),
        "--apflab-metrics",
        str(metrics),
        cwd=tmp_path,
    )
    assert r.returncode == -9, (r.returncode, r.stdout[-500:], r.stderr[-500:])
    xml = JUnitXml.fromfile(str(junit))
    names = [c.name for s in xml for c in s]
    assert names == ["test_one", "test_two"]
    assert len(json.loads(metrics.read_text())["metrics"]) == 2


def test_testcase_without_spec_is_refused(tmp_path: Path) -> None:
    (ROOT / "testcases" / "test_zz_nospec_tmp.py").write_text("def test_x(): pass\n")
    try:
        r = run_pytest("testcases/test_zz_nospec_tmp.py")
    finally:
        (ROOT / "testcases" / "test_zz_nospec_tmp.py").unlink()
    assert r.returncode == 4 and "without @spec" in r.stderr


SOFT_CASES = """
from apflab.testing import Expect, Known, spec


@spec("DEN0054C 5.1.12", "soft checks: a known deviation does not end the case")
def test_soft(expect: Expect) -> None:
    expect(-3, 0, "PE_MASK on a masked PE", Known("pe_mask_state_denied", -3))
    expect(1, 1, "a check that holds")
    expect(5, 4, "a later check that fails")


@spec("DEN0054C 5.1.12", "soft checks: only known deviations make a KFAIL, each one listed")
def test_known_only(expect: Expect) -> None:
    expect(-3, 0, "PE_MASK on a masked PE", Known("pe_mask_state_denied", -3))
    expect(0, 1, "PE_MASK that masked", Known("pe_mask_returns_zero", 0))
"""


def test_checks_go_on_after_a_known_deviation(tmp_path: Path) -> None:
    """kvm-unit-tests reports every check: a KFAIL check does not hide a later FAIL, and the
    JUnit lists every failed and known check; the verdict is the worst (FAIL > KFAIL > PASS)."""
    path = ROOT / "testcases" / "test_zz_soft_tmp.py"
    path.write_text(SOFT_CASES)
    junit = tmp_path / "j.xml"
    try:
        r = run_pytest(str(path.relative_to(ROOT)), "--target", "model-kvm-v4", "--apflab-junit", str(junit))
    finally:
        path.unlink()
    cases = {TestCase.fromelem(c).name: TestCase.fromelem(c) for s in JUnitXml.fromfile(str(junit)) for c in s}
    soft = {p.name: p.value for p in cases["test_soft"].properties()}
    known = {p.name: p.value for p in cases["test_known_only"].properties()}
    assert soft["verdict"] == "FAIL", soft
    assert "a later check that fails" in soft["reason"]
    assert soft["check_known_1"].startswith("pe_mask_state_denied: PE_MASK on a masked PE")
    assert soft["check_failed_1"].startswith("a later check that fails: got 5")
    assert known["verdict"] == "KFAIL", known
    assert [known["check_known_1"].split(":")[0], known["check_known_2"].split(":")[0]] == [
        "pe_mask_state_denied",
        "pe_mask_returns_zero",
    ]
    assert "check_failed_1" not in known
    assert r.returncode == 1


def test_a_session_records_its_round_trips_and_the_guest_driver(tmp_path: Path) -> None:
    """Over the pipe the model answers the agent protocol: the session's round trips are
    counted and timed; the in-process model has none to record."""
    found = {}
    for target in ("model-pipe", "model"):
        junit, metrics = tmp_path / f"{target}.xml", tmp_path / f"{target}.json"
        r = run_pytest(ONE_CASE, "--target", target, "--apflab-junit", str(junit), "--apflab-metrics", str(metrics))
        assert r.returncode == 0, r.stdout
        found[target] = {m["name"]: m for m in json.loads(metrics.read_text())["metrics"] if m["name"] != "duration"}
        suite = next(iter(JUnitXml.fromfile(str(junit))))
        assert {p.name: p.value for p in suite.properties()}["guest_driver"] == "ModelDriver"
    pipe = found["model-pipe"]
    assert pipe["session.round_trips"]["value"] >= 2  # HELLO and the case's calls at least
    assert 0 < pipe["session.round_trip_us"]["value"] < 5_000_000 and pipe["session.round_trip_us"]["unit"] == "us"
    assert found["model"] == {}
