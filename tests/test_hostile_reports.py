"""The report tools against hostile results and careless paths.

A private key whose BEGIN line a tail cut off, a key pasted into a one-line console
tail, terminal escapes in metric and test names (``apflab report compare`` prints them),
and output paths that are a file, unwritable, or under a file: each ends in a redacted
report, a clean terminal, or one line naming the path (exit 2), never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

from apflab.report.build import build
from apflab.results import CaseRecord, Metric, ResultLog
from apflab.verdict import Verdict
from tests.conftest import run_apflab
from tests.hostile import FAKE_KEY, KEY_LINES, unclean

KEY = FAKE_KEY.decode()


def write(out: Path, target: str, cases: list[tuple[str, Verdict, str, str]], metrics: dict[str, float]) -> Path:
    log = ResultLog(f"apflab.{target}", {"target": target, "profile": "spec"}, out / "junit.xml", out / "metrics.json")
    for name, verdict, message, details in cases:
        props = {"spec_section": "DEN0054C 5.1.1", "target": target, "profile": "spec", "verdict": verdict.value}
        log.add(CaseRecord(f"testcases/x.py::{name}", "testcases.x", name, 0.01, verdict, message, details, props))
    for name, value in metrics.items():
        log.add_metric(Metric(name, value, "s", "", target))
    log.flush()
    return out


def test_a_key_whose_begin_line_was_cut_off_is_redacted(tmp_path: Path) -> None:
    after = "\n".join(f"boot message {i}" for i in range(45))  # more than the report's tail keeps
    console_tail = "last lines: > CALL c4000020 | " + " | ".join(KEY.splitlines()[5:]) + " | (none)"
    results = write(
        tmp_path / "run",
        "board",
        [
            ("test_key_in_details", Verdict.FAIL, "the board fell silent", f"{KEY}\n{after}"),
            ("test_key_in_a_tail", Verdict.FAIL, f"no reply within 1 s; {console_tail}", ""),
        ],
        {},
    )
    html, md = build(results)
    for path in (html, md):
        text = path.read_text()
        leaked = [line for line in KEY_LINES if line in text]
        assert leaked == [], (path.name, len(leaked))
        assert "REDACTED" in text


def test_ordinary_long_words_are_not_taken_for_keys(tmp_path: Path) -> None:
    blob = "BLOB " + bytes(range(240)).hex()
    fingerprint = "host key SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
    results = write(
        tmp_path / "run", "board", [("test_words", Verdict.FAIL, fingerprint, f"{blob}\nEV seq=0 pe=0")], {}
    )
    text = build(results)[1].read_text()
    assert bytes(range(240)).hex()[:200] in text and "SHA256:47DEQpj8HBSa" in text


def test_compare_prints_no_terminal_escapes(tmp_path: Path) -> None:
    old = write(tmp_path / "old", "board", [("test_a", Verdict.PASS, "", "")], {})
    new = write(
        tmp_path / "new",
        "board",
        [("test_a", Verdict.FAIL, "bad", ""), ("test_\u009b2J\rnew", Verdict.FAIL, "", "")],
        {},
    )
    # metrics.json holds any character JSON can: names with escapes, as a careless tool wrote them
    for folder, value in ((old, 1.0), (new, 2.0)):
        metrics = [{"name": f"perf.x\x1b]0;pwned\x07.{k}\x1b[2J", "value": value, "unit": "s"} for k in "ab"]
        (folder / "metrics.json").write_text(
            json.dumps({"version": 1, "metrics": [m | {"target": "board"} for m in metrics]})
        )
    r = run_apflab("report", "compare", str(old), str(new))
    assert r.returncode == 1, r.stderr
    assert "pwned" in r.stdout and "new failures: 2" in r.stdout
    assert unclean(r.stdout + r.stderr) == []


def _one_line_error(r) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout[-1000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr[-2000:]
    return r.stderr


def test_build_into_a_file_or_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    results = write(tmp_path / "run", "board", [("test_a", Verdict.PASS, "", "")], {})
    afile = tmp_path / "a-file"
    afile.write_text("keep me")
    err = _one_line_error(run_apflab("report", "build", str(results), "-o", str(afile)))
    assert str(afile) in err and "not a folder" in err
    assert afile.read_text() == "keep me"
    err = _one_line_error(run_apflab("report", "build", str(results), "-o", str(afile / "sub")))
    assert str(afile) in err
    err = _one_line_error(run_apflab("report", "build", str(results), "-o", "/proc/apflab-report"))
    assert "/proc/apflab-report" in err


def test_merge_into_a_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    results = write(tmp_path / "run", "board", [("test_a", Verdict.PASS, "", "")], {})
    afile = tmp_path / "a-file"
    afile.write_text("keep me")
    for out in (afile / "missing" / "merged.xml", afile / "missing", Path("/proc/apflab-missing/merged.xml")):
        err = _one_line_error(run_apflab("report", "merge", str(results), "-o", str(out)))
        assert "cannot write" in err and str(out.parent if out.suffix else out)[:20] in err
    assert afile.read_text() == "keep me"
