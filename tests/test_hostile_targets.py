"""Hostile targets: whatever bytes a target prints, the results stay valid, bounded and whole.

``apflab run`` on a target per channel (tests/hostile.py): the fake agent of
tests/hostile_agent.py in QEMU's place, under the real AgentDriver, QEMUProcessDriver,
pytest plugin, result writer, merge and report. Every fresh target serves one payload
(NUL, escapes, invalid UTF-8, ``]]>``, a megabyte line, a private key, ...), so each
case below is one fault; the checks are that no result file stops being XML or grows
without bound, that every fault is still there as a FAIL naming its payload, that no
control character reaches the terminal or a report, and that no key body does.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import pytest
from junitparser import JUnitXml

from apflab.agent.client import AgentGuest, ByteStream
from apflab.guest import TargetError
from tests.hostile import CHANNELS, KEY_LINES, MARKER, faults, hostile_cases, hostile_lab, served, unclean, xml_problems

#: A case's XML may hold its message, details and properties, each bounded.
MAX_CASE_BYTES = 160_000
#: A report holds a bounded tail per failure.
MAX_REPORT_BYTES = 4_000_000


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    folder = tmp_path_factory.mktemp("hostile")
    lab = hostile_lab(folder)
    hostile_cases(folder)
    targets = [a for ch in CHANNELS for a in ("--target", f"hostile-{ch}")]
    argv = [sys.executable, "-m", "apflab", "run", "--out", str(folder / "out"), "--lg-env", str(lab), *targets]
    r = subprocess.run([*argv, "--", "--fresh-target-each"], cwd=folder, capture_output=True, timeout=600, check=False)
    return folder, r


def test_every_fault_was_served(hostile_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    folder, _ = hostile_run
    assert sorted(served(folder)) == sorted((ch, p) for ch in CHANNELS for p in faults(ch))


def test_the_run_ends_with_its_summary_and_report(hostile_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    folder, r = hostile_run
    out = folder / "out"
    assert r.returncode == 1, r.stderr[-3000:]
    assert b"Traceback" not in r.stderr
    for name in ("junit.xml", "metrics.json", "summary.txt", "report.html", "report.md"):
        assert (out / name).is_file(), name
    summary = (out / "summary.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in summary[:-1]] == [f"hostile-{ch}" for ch in CHANNELS]


def test_every_result_file_is_valid_bounded_xml(hostile_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    folder, _ = hostile_run
    files = sorted((folder / "out").rglob("junit.xml"))
    assert len(files) == len(CHANNELS) + 1
    for path in files:
        assert xml_problems(path, MAX_CASE_BYTES) == []
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            JUnitXml.fromfile(str(path))


def test_every_fault_is_a_failure_naming_its_payload(hostile_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    """Nothing lost: each fault is a FAIL whose text still says which payload it was."""
    folder, _ = hostile_run
    xml = JUnitXml.fromfile(str(folder / "out" / "junit.xml"))
    texts: dict[str, list[str]] = {}
    for suite in xml:
        for case in suite:
            parts = [r.message or "" for r in case.result] + [r.text or "" for r in case.result]
            texts.setdefault(suite.name.removeprefix("apflab.hostile-"), []).append(" ".join(parts))
    for channel in CHANNELS:
        cases = texts[channel]
        for i, name in enumerate(faults(channel)):
            assert f"{MARKER}{name}" in cases[i], (channel, name, cases[i][:300])


def test_the_terminal_sees_no_control_characters(hostile_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    """pytest's FAILED lines and apflab's own lines, as the user's terminal gets them."""
    _, r = hostile_run
    shown = r.stdout.decode("utf-8", errors="replace") + r.stderr.decode("utf-8", errors="replace")
    assert MARKER in shown
    assert unclean(shown) == []
    assert "\ufffd" not in shown  # what pytest printed was valid UTF-8


def test_the_reports_are_bounded_clean_and_keyless(hostile_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    folder, _ = hostile_run
    for name in ("report.md", "report.html"):
        path = folder / "out" / name
        assert path.stat().st_size < MAX_REPORT_BYTES, name
        text = path.read_text(encoding="utf-8")
        assert unclean(text) == [], name
        leaked = [line for line in KEY_LINES if line in text]
        assert leaked == [], (name, len(leaked))


class Flood(ByteStream):
    """A console that says HELLO, then sends ``total`` bytes without a newline, then nothing."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.hello = b"HELLO 1 conduit=smc el=1 pes=1 mpidr=0 ep=0 resume=0 vbar=0\n"

    def write(self, data: bytes) -> None:
        pass

    def read(self, timeout: float) -> bytes:
        if self.hello:
            data, self.hello = self.hello, b""
            return data
        if self.left <= 0:
            return b""
        self.left -= 1 << 20
        return b"F" * (1 << 20)


def test_a_flood_without_newline_keeps_memory_bounded() -> None:
    guest = AgentGuest(Flood(64 << 20), "flood", timeout=1.0)
    tracemalloc.start()
    try:
        with pytest.raises(TargetError) as err:
            guest.call(0xC4000020)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak >> 20} MiB held for a 64 MiB line"
    assert len(str(err.value)) < 10_000
    assert "cut" in str(err.value)
