"""``apflab report build``: what the reports show, escaping, redaction, bad input, atomic writes.

The results are written with apflab's own writer (apflab.results.ResultLog), the way a
run writes them; what a console "printed" carries markup and secrets on purpose.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from apflab.results import CaseRecord, Metric, ResultLog
from apflab.verdict import Verdict
from tests.conftest import run_apflab

HOSTILE = '<script>alert("pwned")</script> <img src=x onerror=alert(1)> | `tick` *star*'
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAtopsecretkeymaterial\n-----END RSA PRIVATE KEY-----"
CONSOLE = f"EV 0x40400001\n{HOSTILE}\nroot@guest:~# echo password=hunter22\n{PEM}\nOK 0 0 0 0"


def write_target(out: Path, target: str, profile: str, extra_props: dict[str, str] | None = None) -> None:
    """Five cases, one of each verdict but XPASS, and perf metrics for the scenario A table."""
    props = {"apflab_version": "0.1.0", "target": target, "profile": profile, "kernel": "6.1.0-test"}
    props |= extra_props or {}
    log = ResultLog(f"apflab.{target}", props, out / target / "junit.xml", out / target / "metrics.json")

    def case(name: str, verdict: Verdict, section: str, reason: str = "", details: str = "") -> CaseRecord:
        p = {
            "spec_section": section,
            "claim": f"claim of {name}",
            "target": target,
            "profile": profile,
            "verdict": verdict.value,
        }
        if reason:
            p["reason"] = reason
        return CaseRecord(f"testcases/x.py::{name}", "testcases.x", name, 0.01, verdict, reason, details, p)

    log.add(case("test_version", Verdict.PASS, "DEN0054C 5.1.1"))
    log.add(case("test_enable", Verdict.KFAIL, "DEN0054C 5.1.3", "kvm-v4: enable_when_enabled_denied: DENIED"))
    log.add(case("test_bind", Verdict.SKIP, "DEN0054C 5.1.15", "target lacks capability 'irq'"))
    log.add(case("test_xfail", Verdict.XFAIL, "DEN0054C 5.1.15", "expected"))
    log.add(case("test_status", Verdict.FAIL, "DEN0054C 5.1.7", f"got 1, the spec says 0 {HOSTILE}", CONSOLE))
    for run, (minus, plus) in enumerate(((13.3, 14.1), (13.5, 14.3)), 1):
        for name, value, unit in (
            ("time_minus", minus, "s"),
            ("time_plus", plus, "s"),
            ("output_time", (plus / minus - 1) * 100, "%"),
        ):
            log.add_metric(Metric(f"perf.scenario-a.no-t.{run}.{name}", value, unit, "t", target))
    log.flush()


@pytest.fixture
def results(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    write_target(out, "board-a", "spec", {"ssh_password": "correcthorse9"})
    write_target(out, "board-b", "kvm-v4")
    return out


def build(path: Path, *more: str) -> tuple[str, str]:
    r = run_apflab("report", "build", str(path), *more)
    assert r.returncode == 0, r.stderr
    return (path / "report.html").read_text(), (path / "report.md").read_text()


def test_reports_show_summary_matrix_failures_perf_provenance(results: Path) -> None:
    html, md = build(results)
    # 10 cases: 2 unexpected failures, 2 known failures, 2 skipped (+2 expected failures)
    line = "SUMMARY: 10 tests, 2 unexpected failures, 2 known failures, 2 expected failures, 2 skipped"
    assert line in html and line in md
    assert 'id="matrix"' in html
    for text in (
        "DEN0054C 5.1.1",
        "DEN0054C 5.1.3",
        "DEN0054C 5.1.7",
        "DEN0054C 5.1.15",
        "board-a (spec)",
        "board-b (kvm-v4)",
        "enable_when_enabled_denied",
        "target lacks capability",
        "6.1.0-test",
    ):
        assert text in html, text
        assert text.replace("_", "\\_") in md, text
    assert "testcases.x::test_status" in html and "EV 0x40400001" in html
    assert html.count('<img class="plot"') == 1 and "data:image/png;base64," in html
    assert "Time-" in html and "13.300 s" in html and "+6.0%" in html
    png = re.search(r"!\[[^\]]*\]\((plots/[^)]+\.png)\)", md)
    assert png and (results / png.group(1)).read_bytes().startswith(b"\x89PNG")


def test_console_text_is_escaped(results: Path) -> None:
    html, md = build(results)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html or "&lt;script&gt;alert(&quot;" in html
    fenced = re.findall(r"```text\n(.*?)\n```", md, re.DOTALL)
    assert any("EV 0x40400001" in block for block in fenced)  # the console tail stays literal, fenced
    outside = re.sub(r"```text\n.*?\n```", "", md, flags=re.DOTALL)
    assert "<script" not in outside and "<img" not in outside and "&lt;script&gt;" in outside


def test_passwords_and_keys_never_appear(results: Path) -> None:
    html, md = build(results)
    for secret in ("hunter22", "correcthorse9", "MIIEpAIBAAKCAQEAtopsecretkeymaterial"):
        assert secret not in html and secret not in md, secret
    assert "[REDACTED]" in html and "[REDACTED]" in md


def test_output_folder_option(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere"
    r = run_apflab("report", "build", str(results), "-o", str(out), "--title", "nightly <b>board</b>")
    assert r.returncode == 0, r.stderr
    assert "nightly &lt;b&gt;board&lt;/b&gt;" in (out / "report.html").read_text()
    assert not (results / "report.html").exists()


def _error(path: Path) -> str:
    r = run_apflab("report", "build", str(path))
    assert r.returncode == 2, r.stdout
    assert r.stderr.count("\n") == 1, r.stderr
    return r.stderr


def test_a_truncated_file_is_named_and_the_good_report_stays(results: Path) -> None:
    build(results)
    good = (results / "report.html").read_bytes(), (results / "report.md").read_bytes()
    junit = results / "board-b" / "junit.xml"
    junit.write_bytes(junit.read_bytes()[:700])
    err = _error(results)
    assert str(junit) in err and "not well-formed" in err
    assert ((results / "report.html").read_bytes(), (results / "report.md").read_bytes()) == good


def test_a_non_junit_file_is_named(tmp_path: Path) -> None:
    page = tmp_path / "junit.xml"
    page.write_text("<html><body>not a test report</body></html>")
    err = _error(tmp_path)
    assert str(page) in err and "not a JUnit file" in err and "<html>" in err


def test_metrics_of_another_version_are_named(results: Path) -> None:
    metrics = results / "board-a" / "metrics.json"
    doc = json.loads(metrics.read_text())
    metrics.write_text(json.dumps(doc | {"version": 2}))
    err = _error(results)
    assert str(metrics) in err and "version 2" in err
    metrics.write_text(json.dumps({"metrics": [{"metric": "old-style", "val": 1}]}))
    err = _error(results)
    assert str(metrics) in err and "another version" in err


def test_an_empty_folder_says_what_is_missing(tmp_path: Path) -> None:
    assert "no junit.xml" in _error(tmp_path)
