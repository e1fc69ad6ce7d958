"""Real targets against the model: each case whose verdict differs, with its deviation or
"unexplained"; skipped cases counted, not listed; any target names.

The first tests use results written with apflab's writer (tests/report_results.py); the
last runs qemu-tfa for real (TF-A's SDEI dispatcher under QEMU) next to the model and
checks that the report names TF-A's deviations.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from apflab.images import RECIPES, _load_recipes, cache_dir
from tests.conftest import apflab_run, run_apflab
from tests.report_results import Rec, write_results

MASKED = "tfa_masked_trigger_lost"
KNOWN = f"{MASKED}: dispatched after PE_UNMASK: never (the trigger was EOI'd while masked)"
PRIORITY = "testcases.sdei.test_priority"


def _model() -> list[Rec]:
    return [
        Rec(PRIORITY, "test_mask_pending_unmask", "PASS", "DEN0054C 5.1.12"),
        Rec("testcases.sdei.test_calls", "test_status", "PASS", "DEN0054C 5.1.9"),
        Rec("testcases.sdei.test_calls", "test_enable_twice", "KFAIL", "DEN0054C 5.1.3.1", "kvm-v4: x: y (z)"),
        Rec("testcases.sdei.test_bind", "test_bind", "PASS", "DEN0054C 5.1.14"),
        Rec("testcases.sdei.test_calls", "test_same", "PASS", "DEN0054C 5.1.1"),
    ]


def _board() -> list[Rec]:
    return [
        Rec(
            PRIORITY,
            "test_mask_pending_unmask",
            "KFAIL",
            "DEN0054C 5.1.12",
            f"spec: {MASKED}: ...",
            {"check_known_1": KNOWN},
        ),
        Rec(
            "testcases.sdei.test_calls",
            "test_status",
            "FAIL",
            "DEN0054C 5.1.9",
            "status: got 0x1, the spec says 0x3",
            {"check_failed_1": "status: got 0x1, the spec says 0x3"},
        ),
        Rec("testcases.sdei.test_calls", "test_enable_twice", "PASS", "DEN0054C 5.1.3.1"),
        Rec("testcases.sdei.test_bind", "test_bind", "SKIP", "DEN0054C 5.1.14", "target lacks capability 'irq'"),
        Rec("testcases.sdei.test_calls", "test_same", "PASS", "DEN0054C 5.1.1"),
    ]


def _build(out: Path) -> tuple[str, str]:
    r = run_apflab("report", "build", str(out))
    assert r.returncode == 0, r.stderr
    return (out / "report.html").read_text(), (out / "report.md").read_text()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    out = tmp_path_factory.mktemp("fidelity")
    write_results(out, "model", "spec", _model(), "ModelDriver")
    write_results(out, "qemu-tfa-4pe", "spec", _board())  # a target name from another branch: any name works
    write_results(out, "qemu-linux", "", [Rec("testcases.linux.test_workload", "test_run", "PASS", "APF v4 00/15")])
    return _build(out)


def _rows(md: str) -> dict[str, list[str]]:
    rows = {}
    for line in md.splitlines():
        m = re.match(r"\| (testcases\S+) \| (\w+) \| (\w+) \| (.*) \|$", line)
        if m:
            rows[m.group(1).replace("\\_", "_")] = [m.group(2), m.group(3), m.group(4)]
    return rows


def test_every_differing_case_is_listed_with_its_explanation(report: tuple[str, str]) -> None:
    _, md = report
    assert "### qemu-tfa-4pe against model (profile spec)" in md
    rows = _rows(md)
    assert set(rows) == {
        f"{PRIORITY}::test_mask_pending_unmask",
        "testcases.sdei.test_calls::test_status",
        "testcases.sdei.test_calls::test_enable_twice",
    }
    model_verdict, real_verdict, why = rows[f"{PRIORITY}::test_mask_pending_unmask"]
    assert (model_verdict, real_verdict) == ("PASS", "KFAIL")
    assert why == "**tfa\\_masked\\_trigger\\_lost**"  # named in the row, described once above the table
    assert md.count("TF-A drops event 0 signalled") == 1
    assert "- **tfa\\_masked\\_trigger\\_lost** (x1): TF-A drops event 0" in md
    assert rows["testcases.sdei.test_calls::test_status"][2] == (
        "**unexplained**: FAIL on the target: status: got 0x1, the spec says 0x3"
    )
    enable = rows["testcases.sdei.test_calls::test_enable_twice"]
    assert enable[2] == "**unexplained**: the profile predicts x and the model shows it; the target passes"
    assert "5 cases in both; 3 differ, 2 unexplained; tfa\\_masked\\_trigger\\_lost x1." in md


def test_skipped_cases_are_counted_not_listed(report: tuple[str, str]) -> None:
    html, md = report
    assert "- not compared: 1 skipped on qemu-tfa-4pe: target lacks capability 'irq'" in md
    assert "1 cases not compared: one side skipped them" in html


def test_a_target_without_a_model_of_its_profile_is_named(report: tuple[str, str]) -> None:
    html, md = report
    assert "qemu-linux (no profile): no model target of its profile in these results" in html
    assert "qemu-linux (no profile): no model target" in md


def test_real_targets_without_their_model_are_not_called_absent(tmp_path: Path) -> None:
    write_results(tmp_path, "model-kvm-v4", "kvm-v4", _model(), "ModelDriver")
    write_results(tmp_path, "qemu-kvm", "spec", _board())
    html, md = _build(tmp_path)
    for text in (html, md):
        assert "No real target in these results has a model target of its profile beside it" in text
        assert "qemu-kvm (profile spec): no model target of its profile in these results" in text
        assert "No real target in these results (only" not in text


def test_a_report_of_the_model_alone_says_where_the_view_is(tmp_path: Path) -> None:
    write_results(tmp_path, "model", "spec", _model(), "ModelDriver")
    write_results(tmp_path, "model-kvm-v4", "kvm-v4", _model(), "ModelDriver")
    html, md = _build(tmp_path)
    for text in (html, md):
        assert "No real target in these results (only the model targets: model, model-kvm-v4)" in text
        assert "make test" in text and "apflab run --target model --target qemu-tfa" in text


_load_recipes()
IMAGES = all(RECIPES[n].fresh(cache_dir()) for n in ("agent", "tfa"))


@pytest.mark.skipif(not IMAGES, reason="guest images not built: run `apflab images agent tfa` (make test does)")
def test_a_real_qemu_tfa_run_shows_tfa_deviations(tmp_path: Path) -> None:
    out = tmp_path / "out"
    select = "test_features_bind_slots or test_resume_misaligned or test_mask_pending_unmask or test_version"
    r = apflab_run(out, ["model", "qemu-tfa"], "-k", select)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    md = (out / "report.md").read_text()
    assert "### qemu-tfa against model (profile spec)" in md
    rows = _rows(md)
    named = {k.rsplit("::", 1)[1]: v for k, v in rows.items()}
    assert named["test_features_bind_slots"][:2] == ["PASS", "KFAIL"]
    assert "**tfa\\_qemu\\_no\\_bind\\_slots**" in named["test_features_bind_slots"][2]
    assert "**tfa\\_resume\\_address\\_unchecked**" in named["test_resume_misaligned"][2]
    assert "**tfa\\_masked\\_trigger\\_lost**" in named["test_mask_pending_unmask"][2]
    assert "unexplained" not in "".join(v[2] for v in rows.values())
    session = {m["name"]: m["value"] for m in json.loads((out / "metrics.json").read_text())["metrics"]}
    assert session.keys() >= {"session.boot_s", "session.boots", "session.round_trip_us"}  # QEMU booted, CALLs
