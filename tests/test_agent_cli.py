"""`apflab agent` as a process: the issue's acceptance line, bad arguments, bad input, EOF."""

from __future__ import annotations

from apflab.abi import sdei
from tests.conftest import run_apflab


def test_version_over_stdio() -> None:
    r = run_apflab("agent", "--target", "model", input="CALL c4000020\n")
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert words[0] == "OK"
    major, minor, _ = sdei.version_fields(int(words[1], 16))
    assert major == 1 and minor in (0, 1)


def test_kvm_profile_version_is_1_0() -> None:
    r = run_apflab("agent", "--profile", "kvm-v4", input="CALL c4000020\n")
    assert r.stdout.split()[1] == "1000000000000"  # 1 << 48: v4 returns 1.0, vendor 0 (KVM SDEI v4 03/21)


def test_bad_input_then_good() -> None:
    r = run_apflab("agent", input="\x00\x01 garbage\nCALL zz\nREGS\n")
    lines = r.stdout.splitlines()
    assert [x.split()[0] for x in lines] == ["ERR", "ERR", "REGS"], lines
    assert r.returncode == 0 and "Traceback" not in r.stderr


def test_bad_arguments_are_one_line() -> None:
    for args, word in (
        (["--profile", "nope"], "unknown profile"),
        (["--pes", "0"], "1 to 64 PEs"),
        (["--el", "3"], "EL1 or EL2"),
        (["--target", "qemu"], "--target model only"),
    ):
        r = run_apflab("agent", *args, input="")
        assert r.returncode == 2, (args, r.stderr)
        assert word in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
