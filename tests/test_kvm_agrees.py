"""The SDEI and SMCCC suites on qemu-kvm (real KVM, SDEI forwarded to the model) agree with the model.

qemu-kvm's profile is ``spec`` and its forwarded SDEI calls are dispatched by the model
with profile ``spec``; what differs from the ``model`` target is everything real: KVM
answers SMCCC, PSCI and the vendor-hypervisor calls, the agent runs on real vCPUs,
handlers are entered and completed by register writes through KVM, another PE is kicked
out of KVM_RUN. So every case that runs on both targets must reach the same verdict;
and the issue asks that at least 200 SDEI/SMCCC cases run on qemu-kvm with no
unexpected failure, multi-PE and host-injection cases among them.

`make test` runs the suites on both targets just before (``apflab run``) and names that
output in ``APFLAB_RUN_OUT``; this test reads it there, else runs the two suites itself.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from junitparser import JUnitXml
from junitparser.xunit2 import TestCase

from apflab.images import cache_dir
from apflab.images.kvm import KVM_HOST
from tests.conftest import run_pytest

SUITES = ("testcases/sdei", "testcases/smccc")
RUN_OUT = "APFLAB_RUN_OUT"
#: Cases that must run (not skip) on qemu-kvm: KVM's vendor service, several PEs, host injection.
MUST_RUN = (
    "testcases.smccc.test_smccc::test_kvm_uid",
    "testcases.smccc.test_smccc::test_kvm_features",
    "testcases.sdei.test_signal_reset::test_signal_other_pe",
    "testcases.sdei.test_priority::test_mask_is_per_pe",
    "testcases.sdei.test_priority::test_routing_set_moves",
    "testcases.sdei.test_priority::test_critical_preempts_normal",  # INJECT from inside a handler
    "testcases.sdei.test_dispatch::test_distinct_arguments",  # a shared event injected by the host
    "testcases.sdei.test_state_table::test_shared_event[REG-CONTEXT]",
)


def verdicts(junit: Path) -> dict[str, str]:
    """classname::name -> verdict of the SDEI and SMCCC cases in an apflab JUnit file."""
    found = {}
    for suite in JUnitXml.fromfile(str(junit)):
        for case in suite:
            props = {p.name: p.value for p in TestCase.fromelem(case).properties()}
            if case.classname.startswith(("testcases.sdei.", "testcases.smccc.")):
                found[f"{case.classname}::{case.name}"] = props.get("verdict", "FAIL")
    return found


def results(target: str, tmp_path: Path) -> dict[str, str]:
    given = os.environ.get(RUN_OUT)
    if given and (Path(given) / target / "junit.xml").exists():
        return verdicts(Path(given) / target / "junit.xml")
    junit = tmp_path / target / "junit.xml"
    r = run_pytest(*SUITES, "--target", target, "--apflab-junit", str(junit), timeout=900)
    assert junit.exists(), f"pytest on {target} wrote no results: {r.stdout[-800:]} {r.stderr[-800:]}"
    return verdicts(junit)


@pytest.mark.skipif(shutil.which("qemu-system-aarch64") is None, reason="needs qemu-system-aarch64")
def test_qemu_kvm_runs_the_suites_and_agrees_with_the_model(tmp_path: Path) -> None:
    if not KVM_HOST.fresh(cache_dir()):
        pytest.skip("the kvm image is not built: `apflab images kvm` (make test builds it)")
    kvm = results("qemu-kvm", tmp_path)
    model = results("model", tmp_path)
    ran = {case: v for case, v in kvm.items() if v != "SKIP"}
    assert len(ran) >= 200, f"only {len(ran)} SDEI/SMCCC cases ran on qemu-kvm"
    unexpected = sorted(case for case, v in ran.items() if v in ("FAIL", "XPASS"))
    assert not unexpected, f"unexpected verdicts on qemu-kvm: {unexpected[:10]}"
    missing = [case for case in MUST_RUN if ran.get(case) is None]
    assert not missing, f"did not run on qemu-kvm: {missing}"
    both = sorted(set(ran) & {case for case, v in model.items() if v != "SKIP"})
    differ = [f"{case}: model {model[case]}, qemu-kvm {kvm[case]}" for case in both if model[case] != kvm[case]]
    assert len(both) >= 200 and not differ, differ[:10]
