"""A target's ``requires`` and ``strict_deviations``: gaps of an implementation become FAILs.

Each test builds a small labgrid environment and a testcases folder of its own, so the
runs here cannot disturb (or be disturbed by) the real suites.
"""

from __future__ import annotations

from pathlib import Path

from junitparser import JUnitXml
from junitparser.xunit2 import TestCase

from apflab.profiles import KVM_V4, SPEC
from apflab.verdict import Known, Verdict, judge
from tests.conftest import run_pytest

LAB = """\
targets:
  m:
    drivers:
      ModelDriver:
        profile: {profile}
        pes: 2
{extra}
imports:
  - apflab.lab
"""

CASES = """\
from apflab.testing import Expect, Guest, Known, spec


@spec("DEN0054C 5.1.1", "a case that needs the target")
def test_needs_target(guest: Guest, expect: Expect) -> None:
    expect(guest.sdei.version().ret >= 0, True, "VERSION")


@spec("DEN0054C 5.1.5", "a case naming a deviation")
def test_names_a_deviation(expect: Expect) -> None:
    expect({seen}, 1, "a value", Known("context_index_18_accepted", 2))
"""


def _tree(tmp_path: Path, profile: str, extra: str, seen: int) -> Path:
    (tmp_path / "lab.yaml").write_text(LAB.format(profile=profile, extra=extra))
    (tmp_path / "testcases").mkdir()
    (tmp_path / "testcases" / "test_gate.py").write_text(CASES.format(seen=seen))
    return tmp_path


def _run(root: Path, *args: str):
    junit = root / "j.xml"
    lab = ("--rootdir", str(root), "--lg-env", str(root / "lab.yaml"), "--target", "m")
    r = run_pytest(*args, *lab, "--apflab-junit", str(junit), cwd=root)
    verdicts = {}
    if junit.exists():
        for suite in JUnitXml.fromfile(str(junit)):
            for elem in suite:
                case = TestCase.fromelem(elem)
                verdicts[case.name] = {p.name: p.value for p in case.properties()}["verdict"]
    return r, verdicts


def test_missing_required_capability_fails_every_case(tmp_path: Path) -> None:
    root = _tree(tmp_path, "spec", "        requires: [sdei, apf]", seen=1)
    r, verdicts = _run(root, "testcases")
    assert r.returncode == 1, r.stdout[-800:]
    assert verdicts == {"test_needs_target": "FAIL", "test_names_a_deviation": "FAIL"}
    assert "target m requires 'apf' but lacks it" in r.stdout
    assert "Traceback" not in r.stdout


def test_granted_requirements_change_nothing(tmp_path: Path) -> None:
    root = _tree(tmp_path, "spec", "        requires: [sdei, smccc-1.1]", seen=1)
    r, verdicts = _run(root, "testcases")
    assert r.returncode == 0, r.stdout[-800:]
    assert verdicts == {"test_needs_target": "PASS", "test_names_a_deviation": "PASS"}


def test_unknown_required_capability_is_an_error(tmp_path: Path) -> None:
    root = _tree(tmp_path, "spec", "        requires: [sdei, sdie]", seen=1)
    r, _ = _run(root, "testcases")
    assert r.returncode != 0
    assert "unknown capability 'sdie'" in r.stdout + r.stderr


def test_named_deviation_never_shown_fails_the_run(tmp_path: Path) -> None:
    root = _tree(tmp_path, "kvm-v4", "        strict_deviations: true", seen=1)
    r, verdicts = _run(root, "testcases")
    assert r.returncode == 1, r.stdout[-800:]
    assert verdicts == {"test_needs_target": "PASS", "test_names_a_deviation": "PASS", "deviations_shown": "FAIL"}
    assert "context_index_18_accepted named by the cases that ran never showed" in r.stdout


def test_shown_deviation_passes_the_run(tmp_path: Path) -> None:
    root = _tree(tmp_path, "kvm-v4", "        strict_deviations: true", seen=2)
    r, verdicts = _run(root, "testcases")
    assert r.returncode == 0, r.stdout[-800:]
    assert verdicts == {"test_needs_target": "PASS", "test_names_a_deviation": "KFAIL"}


def test_a_subset_is_not_judged(tmp_path: Path) -> None:
    """The one case that shows a deviation may not be among those selected."""
    root = _tree(tmp_path, "kvm-v4", "        strict_deviations: true", seen=1)
    r, verdicts = _run(root, "testcases/test_gate.py::test_names_a_deviation")
    assert r.returncode == 0, r.stdout[-800:]
    assert verdicts == {"test_names_a_deviation": "PASS"}


def test_not_strict_is_not_judged(tmp_path: Path) -> None:
    root = _tree(tmp_path, "kvm-v4", "", seen=1)
    r, verdicts = _run(root, "testcases")
    assert r.returncode == 0, r.stdout[-800:]
    assert "deviations_shown" not in verdicts


def test_certain_known_on_a_strict_target() -> None:
    """A Known marked certain must show on a strict target that carries it: the spec's value there fails."""
    certain = Known("context_index_18_accepted", 1, certain=True)
    failed = judge(KVM_V4, 0, 0, "CONTEXT(18)", certain, strict=True)
    assert failed is not None and failed.verdict is Verdict.FAIL and "always shows" in failed.message
    assert judge(KVM_V4, 0, 0, "CONTEXT(18)", certain) is None  # a real target may have been fixed
    assert judge(SPEC, 0, 0, "CONTEXT(18)", certain, strict=True) is None  # not carried
    assert judge(KVM_V4, 0, 0, "CONTEXT(18)", Known("context_index_18_accepted", 1), strict=True) is None
    shown = judge(KVM_V4, 1, 0, "CONTEXT(18)", certain, strict=True)
    assert shown is not None and shown.verdict is Verdict.KFAIL
