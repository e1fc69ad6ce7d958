"""The suites on the model: enough cases, same verdicts in process and over the pipe, KFAILs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from junitparser import JUnitXml
from junitparser.xunit2 import TestCase

from apflab.profiles import KVM_V4
from tests.conftest import run_apflab, run_pytest


def verdicts(junit: Path) -> dict[str, tuple[str, str]]:
    out = {}
    for suite in JUnitXml.fromfile(str(junit)):
        for case in suite:
            tc = TestCase.fromelem(case)
            props = {p.name: p.value for p in tc.properties()}
            reason = props.get("reason", "").replace(props["target"], "<target>")  # skip reasons name it
            out[f"{tc.classname}::{tc.name}"] = (props["verdict"], reason.split(":")[:2][-1])
    return out


@pytest.mark.parametrize(("inproc", "pipe"), [("model", "model-pipe"), ("model-kvm-v4", "model-kvm-v4-pipe")])
def test_same_verdicts_both_ways(tmp_path: Path, inproc: str, pipe: str) -> None:
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    ra = run_pytest("testcases", "--target", inproc, "--apflab-junit", str(a), timeout=300)
    rb = run_pytest("testcases", "--target", pipe, "--apflab-junit", str(b), timeout=300)
    assert ra.returncode == 0, ra.stdout[-2000:]
    assert rb.returncode == 0, rb.stdout[-2000:]
    va, vb = verdicts(a), verdicts(b)
    assert len(va) >= 150
    assert va == vb


def test_apflab_run_reports(tmp_path: Path) -> None:
    r = run_apflab("run", "--out", str(tmp_path), timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    merged = JUnitXml.fromfile(str(tmp_path / "junit.xml"))
    by_target: dict[str, Counter] = {}
    kfail_reasons = set()
    for suite in merged:
        for case in suite:
            props = {p.name: p.value for p in TestCase.fromelem(case).properties()}
            assert props["spec_section"] and props["claim"]
            by_target.setdefault(props["target"], Counter())[props["verdict"]] += 1
            if props["verdict"] == "KFAIL":
                kfail_reasons.add(props["reason"].split(":")[1].strip())
                # every known check of the case, not only the first (soft checks)
                kfail_reasons |= {v.split(":")[0] for k, v in props.items() if k.startswith("check_known_")}
    assert set(by_target) == {"model", "model-kvm-v4"}
    suites = Counter(
        TestCase.fromelem(c).classname.split(".")[1]
        for s in merged
        for c in s
        if {p.name: p.value for p in TestCase.fromelem(c).properties()}.get("target") == "model-kvm-v4"
    )
    assert suites["apf"] >= 40 and suites["migration"] >= 15, suites
    assert sum(by_target["model"].values()) >= 150
    assert by_target["model"]["FAIL"] == 0 and by_target["model"]["KFAIL"] == 0
    assert by_target["model-kvm-v4"]["FAIL"] == 0
    # The set of KFAIL reasons on model-kvm-v4 is exactly the profile's named deviations:
    # each is seen somewhere, and nothing else is ever predicted.
    assert kfail_reasons == {d.name for d in KVM_V4.deviations}
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("SUMMARY: ") and "0 unexpected failures" in last
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "summary.txt").exists()
