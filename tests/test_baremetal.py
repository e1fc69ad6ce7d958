"""The bare-metal agent on real QEMU (TF-A's SDEI at EL3, and QEMU's own PSCI): the protocol,
wedges, a dead QEMU and a silent console, each answered within a bound.

These start QEMU for real; the images come from `apflab images agent tfa` (make test).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from junitparser import JUnitXml
from junitparser.xunit2 import TestCase
from labgrid import Environment

import apflab.lab  # noqa: F401 - registers the drivers
from apflab.abi import sdei
from apflab.guest import TargetError
from apflab.images import RECIPES, _load_recipes, cache_dir
from tests.conftest import ROOT, run_pytest

_load_recipes()
pytestmark = pytest.mark.skipif(
    not all(RECIPES[n].fresh(cache_dir()) for n in ("agent", "tfa")),
    reason="guest images not built: run `apflab images agent tfa` (make test does)",
)


def lab_targets() -> dict:
    return yaml.safe_load((ROOT / "lab.yaml").read_text())["targets"]


def environment(tmp_path: Path, targets: dict) -> Environment:
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump({"targets": targets, "imports": ["apflab.lab"]}, sort_keys=False))
    return Environment(str(path))


@pytest.fixture
def tfa_env(tmp_path: Path) -> Iterator[Environment]:
    env = environment(tmp_path, {"main": lab_targets()["qemu-tfa"]})
    yield env
    env.cleanup()


@pytest.mark.parametrize(
    ("target", "conduit", "el"), [("qemu-tfa", "smc", 1), ("qemu-tfa-el2", "smc", 2), ("qemu", "hvc", 1)]
)
def test_hello_and_version(tmp_path: Path, target: str, conduit: str, el: int) -> None:
    env = environment(tmp_path, {"main": lab_targets()[target]})
    try:
        guest = env.get_target("main").get_driver("AgentDriver").guest()
        assert guest.info.conduit == conduit and guest.info.el == el
        assert guest.info.pes == lab_targets()[target]["drivers"]["QEMUProcessDriver"].get("smp", 1)
        version = guest.sdei.version()
        if target.startswith("qemu-tfa"):
            assert sdei.version_fields(version.x[0])[0] == 1  # TF-A implements SDEI (DEN0054 major 1)
        else:
            assert version.ret == sdei.NOT_SUPPORTED  # QEMU's PSCI: no SDEI (docs/reference/lab.md)
    finally:
        env.cleanup()


BAD_LINES = [
    "FROB 1 2",
    "CALL c4000020 xyz",
    "CALL 1" + "0" * 16,
    "PE",
    "HANDLER 1 EXPLODE 0",
    "CALL " + "1 " * 300,
    "PE 5",
]


def test_bad_input_gets_err_and_session_goes_on(tfa_env: Environment) -> None:
    guest = tfa_env.get_target("main").get_driver("AgentDriver").guest()
    stream = guest.inner.stream
    for line in BAD_LINES:
        stream.write(line.encode() + b"\n")
        reply = guest.inner._readline(__import__("time").monotonic() + 2)
        assert reply.startswith("ERR "), (line, reply)
    assert sdei.version_fields(guest.sdei.version().x[0])[0] == 1


def test_dead_qemu_is_noticed_and_restarted(tfa_env: Environment) -> None:
    target = tfa_env.get_target("main")
    guest = target.get_driver("AgentDriver").guest()
    qemu = target.get_driver("QEMUProcessDriver")
    os.kill(qemu._proc.pid, signal.SIGKILL)
    with pytest.raises(TargetError, match=r"stopped|gone|no reply"):
        guest.sdei.version()
    guest.reset()  # a fresh QEMU
    assert sdei.version_fields(guest.sdei.version().x[0])[0] == 1


def test_silent_console_times_out(tmp_path: Path) -> None:
    spec = lab_targets()["qemu-tfa"]
    spec["drivers"]["QEMUProcessDriver"]["extra_args"] = "-S"  # QEMU starts paused: nothing is printed
    spec["drivers"]["AgentDriver"]["ready_timeout"] = 1.0
    env = environment(tmp_path, {"main": spec})
    try:
        with pytest.raises(TargetError, match="did not report ready within 1 s"):
            env.get_target("main").get_driver("AgentDriver").guest()
    finally:
        env.cleanup()


def test_missing_image_names_the_command(tmp_path: Path) -> None:
    spec = lab_targets()["qemu-tfa"]
    spec["drivers"]["QEMUProcessDriver"]["bios"] = "tfa:no-such.bios"
    env = environment(tmp_path, {"main": spec})
    try:
        with pytest.raises(Exception, match="apflab images tfa"):
            env.get_target("main").get_driver("AgentDriver").guest()
    finally:
        env.cleanup()


WEDGE = "testcases/sdei/test_state_table.py::test_private_event[reG-DISPATCH]"
BEFORE = "testcases/sdei/test_dispatch.py::test_entry_x0_x1"
AFTER = "testcases/sdei/test_state_table.py::test_private_event[rEG-DISPATCH]"


def verdicts(junit: Path) -> dict[str, str]:
    out = {}
    for suite in JUnitXml.fromfile(str(junit)):
        for case in suite:
            tc = TestCase.fromelem(case)
            out[tc.name] = {p.name: p.value for p in tc.properties()}
    return out


def test_wedge_costs_one_case(tmp_path: Path) -> None:
    """TF-A asserting at EL3 (tfa_signal_disabled_asserts) is KFAIL; the cases around it pass."""
    junit = tmp_path / "j.xml"
    r = run_pytest(BEFORE, WEDGE, AFTER, "--target", "qemu-tfa", "--apflab-junit", str(junit))
    assert r.returncode == 0, r.stdout[-2000:]
    v = verdicts(junit)
    assert [
        v[n]["verdict"]
        for n in ("test_entry_x0_x1", "test_private_event[reG-DISPATCH]", "test_private_event[rEG-DISPATCH]")
    ] == ["PASS", "KFAIL", "PASS"]


def test_unpredicted_wedge_fails_with_console_tail(tmp_path: Path) -> None:
    """Without the deviation in lab.yaml the same wedge is a FAIL carrying the firmware's words."""
    targets = lab_targets()
    agent = targets["qemu-tfa"]["drivers"]["AgentDriver"]
    agent["deviations"] = [d for d in agent["deviations"] if d != "tfa_signal_disabled_asserts"]
    lab = tmp_path / "lab.yaml"
    lab.write_text(yaml.safe_dump({"targets": targets, "imports": ["apflab.lab"]}, sort_keys=False))
    junit = tmp_path / "j.xml"
    r = run_pytest(WEDGE, AFTER, "--target", "qemu-tfa", "--lg-env", str(lab), "--apflab-junit", str(junit))
    assert r.returncode == 1
    v = verdicts(junit)
    wedge = v["test_private_event[reG-DISPATCH]"]
    assert wedge["verdict"] == "FAIL"
    assert "no reply within 1 s" in wedge["reason"] and "assert" in wedge["reason"].lower()
    assert v["test_private_event[rEG-DISPATCH]"]["verdict"] == "PASS"


def test_blank_lines_get_no_reply(tfa_env: Environment) -> None:
    """The C agent answers a line of only spaces (CRs dropped) with nothing, as `apflab agent`
    does (docs/agent-protocol.md, Framing): the next reply belongs to the next request."""
    import time

    guest = tfa_env.get_target("main").get_driver("AgentDriver").guest()
    stream = guest.inner.stream
    stream.write(b"\n   \n\r\n \r \nCALL c4000020\n")
    replies = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            line = guest.inner._readline(deadline)
        except TargetError:
            break  # nothing more within the bound
        if line.split()[:1] and line.split()[0] in ("OK", "ERR", "EV", "REGS", "HELLO"):
            replies.append(line)
    assert len(replies) == 1 and replies[0].startswith("OK "), replies
    assert sdei.version_fields(int(replies[0].split()[1], 16))[0] == 1
