"""A careless lab.yaml: the chosen target is checked once, at session start, in one line.

Each case is a lab.yaml with one mistake a user makes (a wrong type or value in a
driver's key, an unknown driver or key, a negative timeout, an unbalanced quote, a QEMU
binary that is not there, a target name YAML reads as a number) or a bad --target. The
session must stop before any test with pytest's usage error (exit 4) and one line that
names the target, the key, the value and what is allowed; ``apflab run`` then exits 2.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_apflab, run_pytest

ONE_CASE = "testcases/sdei/test_calls.py::test_version_major"

MODEL = "ModelDriver:\n  profile: spec\n"
QEMU = "QEMUProcessDriver:\n  machine: virt\n  accel: tcg\nAgentDriver:\n  profile: spec\n"

#: id -> (the target's drivers block, words the one line must hold)
MISTAKES: dict[str, tuple[str, tuple[str, ...]]] = {
    "pes-a-word": (MODEL + "  pes: four\n", ("ModelDriver", "pes", "'four'", "integer")),
    "pes-a-bool": (MODEL + "  pes: true\n", ("pes", "True", "integer")),
    "pes-zero": (MODEL + "  pes: 0\n", ("pes", "0", "1 to 64")),
    "pes-too-many": (MODEL + "  pes: 65\n", ("pes", "65", "1 to 64")),
    "el-3": (MODEL + "  el: 3\n", ("el", "3", "1, 2")),
    "profile-unknown": ("ModelDriver:\n  profile: kvm-v9\n", ("profile", "'kvm-v9'", "kvm-v4")),
    "transport-unknown": (MODEL + "  transport: pipes\n", ("transport", "'pipes'", "inprocess")),
    "timeout-negative": (MODEL + "  timeout: -1\n", ("timeout", "-1", "above 0")),
    "timeout-a-word": (MODEL + "  timeout: soon\n", ("timeout", "'soon'", "seconds")),
    "key-unknown": (MODEL + "  pe: 4\n", ("ModelDriver", "'pe'", "pes")),
    "driver-unknown": ("ModelDrivr:\n  profile: spec\n", ("ModelDrivr", "ModelDriver")),
    "driver-args-not-a-mapping": ("ModelDriver: 4\n", ("ModelDriver", "4")),
    "no-guest-driver": ("QEMUProcessDriver:\n  accel: tcg\n", ("AgentDriver", "ModelDriver")),
    "reply-timeout-negative": (QEMU + "  reply_timeout: -2\n", ("AgentDriver", "reply_timeout", "-2", "above 0")),
    "ready-timeout-zero": (QEMU + "  ready_timeout: 0\n", ("ready_timeout", "0", "above 0")),
    "events-malformed": (QEMU + "  events: [{number: x}]\n", ("events", "number", "'x'")),
    "events-not-a-list": (QEMU + "  events: 5\n", ("events", "5", "list")),
    "deviation-unknown": (QEMU + "  deviations: [no_such_deviation]\n", ("deviations", "no_such_deviation")),
    "capability-unknown": (QEMU + "  capabilities: [warp-drive]\n", ("capabilities", "warp-drive")),
    "secure-intid-an-sgi": (QEMU + "  secure_intids: [8]\n", ("secure_intids", "16 to 1019")),
    "extra-args-unbalanced": (
        'QEMUProcessDriver:\n  accel: tcg\n  extra_args: "-append \'console=ttyAMA0"\nAgentDriver: {}\n',
        ("extra_args", "quot"),
    ),
    "qemu-bin-missing": (
        "QEMUProcessDriver:\n  qemu_bin: qemu-system-nonesuch\nAgentDriver: {}\n",
        ("qemu_bin", "'qemu-system-nonesuch'", "PATH"),
    ),
    "smp-a-string": (QEMU.replace("  accel: tcg\n", "  accel: tcg\n  smp: 'two'\n"), ("smp", "'two'", "integer")),
    "accel-unknown": (QEMU.replace("accel: tcg", "accel: hvf"), ("accel", "'hvf'", "tcg")),
    "stop-timeout-negative": (QEMU.replace("  accel: tcg\n", "  accel: tcg\n  stop_timeout: -3\n"), ("-3",)),
}


def lab_with(folder: Path, drivers: str, name: str = "mistake") -> Path:
    path = folder / "lab.yaml"
    block = textwrap.indent(drivers, " " * 6)
    path.write_text(f"targets:\n  {name}:\n    drivers:\n{block}imports:\n  - apflab.lab\n")
    return path


def one_line(stderr: str) -> str:
    """The one line the session stopped with; nothing like a traceback around it."""
    assert "Traceback" not in stderr and "INTERNALERROR" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


#: One of each kind of mistake goes through a whole pytest start (about a second each).
END_TO_END = (
    "pes-a-word",
    "el-3",
    "timeout-negative",
    "key-unknown",
    "driver-unknown",
    "driver-args-not-a-mapping",
    "no-guest-driver",
    "events-malformed",
    "extra-args-unbalanced",
    "qemu-bin-missing",
)


@pytest.mark.parametrize("mistake", END_TO_END)
def test_a_mistake_stops_the_session_in_one_line(mistake: str, tmp_path: Path) -> None:
    drivers, words = MISTAKES[mistake]
    r = run_pytest(ONE_CASE, "--lg-env", str(lab_with(tmp_path, drivers)), "--target", "mistake")
    assert r.returncode == 4, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    line = one_line(r.stderr)
    for word in ("'mistake'", *words):
        assert word in line, (word, line)
    assert " passed" not in r.stdout and " failed" not in r.stdout and " error" not in r.stdout


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_every_mistake_is_named(mistake: str, tmp_path: Path) -> None:
    """The same check, in process, for every mistake (the session start calls it)."""
    from apflab.lab.configcheck import ConfigError, check_target
    from apflab.pytest_plugin import _load_environment

    drivers, words = MISTAKES[mistake]
    with pytest.raises(ConfigError) as err:
        check_target(_load_environment(lab_with(tmp_path, drivers)), "mistake")
    line = str(err.value)
    assert "\n" not in line
    for word in ("'mistake'", *words):
        assert word in line, (word, line)


def test_an_integer_target_name_is_named(tmp_path: Path) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text(
        "targets:\n  model:\n    drivers:\n      ModelDriver: {}\n  1:\n    drivers:\n      ModelDriver: {}\n"
        "imports:\n  - apflab.lab\n"
    )
    for target in ("model", "1"):
        r = run_pytest(ONE_CASE, "--lg-env", str(lab), "--target", target)
        assert r.returncode == 4, (target, r.stdout[-2000:], r.stderr[-2000:])
        line = one_line(r.stderr)
        assert "target name 1" in line and "'1'" in line, line


def test_an_empty_target_is_not_the_model() -> None:
    r = run_pytest(ONE_CASE, "--target", "")
    assert r.returncode == 4, r.stdout[-2000:]
    line = one_line(r.stderr)
    assert "--target" in line and "empty" in line and "model-kvm-v4" in line


def test_apflab_run_stops_on_the_same_line(tmp_path: Path) -> None:
    lab = lab_with(tmp_path, MISTAKES["pes-a-word"][0])
    r = run_apflab("run", "--out", str(tmp_path / "out"), "--lg-env", str(lab), "--target", "mistake", "--", ONE_CASE)
    assert r.returncode == 2, (r.stdout[-2000:], r.stderr[-2000:])
    assert "'four'" in one_line(r.stderr)
    assert "mistake: no results" in r.stdout
    r = run_apflab("run", "--out", str(tmp_path / "out2"), "--target", "")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--target" in r.stderr and "empty" in r.stderr


def test_every_target_of_lab_yaml_passes_the_check(root: Path) -> None:
    """The check refuses mistakes, not the lab: each shipped target passes it."""
    from apflab.lab.configcheck import check_target
    from apflab.pytest_plugin import _load_environment

    env = _load_environment(root / "lab.yaml")
    for name in env.config.get_targets():
        check_target(env, name)
