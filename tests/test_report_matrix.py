"""The conformance matrix at a glance: areas, primary citations linked to docs/reference/,
counts per verdict, each reason once, every case one click below.

Results are written with apflab's own writer (tests/report_results.py); a browser test
(tests/test_report_browser.py) checks the same report on real runs in Chromium.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from apflab.report.areas import AREAS, slug
from tests.conftest import run_apflab
from tests.report_results import Rec, write_results

IRQ = "target board lacks capability 'irq': a bound event is raised through its interrupt"
EP = "kvm-v4: register_ep_unchecked: EVENT_REGISTER does not reject entry point 0 (KVM SDEI v4 04/21)"


def _cases(board: bool) -> list[Rec]:
    cases = [
        Rec("testcases.smccc.test_smccc", "test_version", "PASS", "DEN0028; docs/reference/smccc.md"),
        Rec("testcases.sdei.test_calls", "test_register", "PASS", "DEN0054C 5.1.2"),
        Rec(
            "testcases.sdei.test_calls",
            "test_register_ep_zero",
            "KFAIL" if board else "PASS",
            "DEN0054C 5.1.2",
            EP if board else "",
        ),
        Rec("testcases.sdei.test_priority", "test_mask_returns_one", "PASS", "DEN0054C 5.1.12, 5.1.13"),
        Rec("testcases.tfa.test_psci_cycle", "test_cycle", "PASS", "DEN0022 PSCI; TF-A psci_main.c"),
        Rec("testcases.apf.test_vmm", "test_no_section", "PASS", ""),
    ]
    cases += [
        Rec("testcases.sdei.test_bind", f"test_bind[{i}]", "SKIP" if board else "PASS", "DEN0054C 5.1.14", IRQ)
        for i in range(30)
    ]
    return cases


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    out = tmp_path_factory.mktemp("matrix") / "run"
    write_results(out, "model", "spec", _cases(False), "ModelDriver")
    write_results(out, "board", "kvm-v4", _cases(True))
    r = run_apflab("report", "build", str(out))
    assert r.returncode == 0, r.stderr
    return out, (out / "report.html").read_text(), (out / "report.md").read_text()


def _labels(html: str) -> list[str]:
    return re.findall(
        r'<details class="mx-group"[^>]*>\s*<summary class="mx-row"><span class="mx-label">([^<]+?) <', html
    )


def test_rows_are_areas_in_reading_order(report: tuple[Path, str, str]) -> None:
    _, html, _ = report
    known = [title for _, title in AREAS]
    labels = _labels(html)
    assert labels == [
        "SMCCC and PSCI",
        "SDEI calls",
        "Nesting, priority and the PE mask",
        "INTERRUPT_BIND and RELEASE",
        "APF: the VMM&#39;s interface",
        "tfa: psci cycle",  # a suite this apflab does not know: after the known ones
    ]
    assert [lbl for lbl in labels if lbl.replace("&#39;", "'") in known] == labels[:-1]


def test_each_section_row_is_its_primary_citation_linked_to_the_reference(report: tuple[Path, str, str]) -> None:
    out, html, md = report
    assert re.search(r">DEN0054C 5\.1\.2</a> <span class=\"call\">EVENT_REGISTER</span>", html)
    assert 'DEN0054C 5.1.12</a> <span class="call">PE_MASK</span>' in html  # "5.1.12, 5.1.13": the first
    assert "(no spec section)" in html
    hrefs = re.findall(r'<summary class="mx-row"><span class="mx-label"><a href="([^"]+)"', html)
    assert len(hrefs) >= 5
    for href in hrefs:
        page, _, fragment = unquote(href).partition("#")
        target = (out / page).resolve()
        assert target.is_file() and target.parent.name == "reference", href
        if fragment:
            headings = [ln.lstrip("#").strip() for ln in target.read_text().splitlines() if ln.startswith("##")]
            assert fragment in [slug(h) for h in headings], href
    assert any(h.endswith("sdei-dispatch.md#the-pe-mask-den0054c-5112-5113") for h in hrefs)
    assert re.search(r"\| \[DEN0054C 5\.1\.2\]\([^)]*docs/reference/sdei-calls\.md\) EVENT\\_REGISTER \|", md)


def test_counts_per_verdict_and_each_reason_once(report: tuple[Path, str, str]) -> None:
    _, html, md = report
    assert html.count(IRQ.replace("'", "&#39;")) == 1 and md.count("lacks capability") == 1
    number = re.search(r'<li id="r(\d+)" value="\d+"><span class="v v-SKIP">SKIP</span> target board lacks', html)
    assert number, "the SKIP reason is a numbered footnote"
    assert html.count(f'href="#r{number.group(1)}"') == 30  # each of the 30 cases points to it
    bind = re.search(r"INTERRUPT_BIND and RELEASE <small>30</small></span>(.*?)</summary>", html)
    assert bind and 'title="SKIP 30"' in bind.group(1) and 'title="PASS 30"' in bind.group(1)
    assert 'class="b-SKIP" style="width: 100.0%"' in bind.group(1)


def test_every_case_is_a_row_below_its_section(report: tuple[Path, str, str]) -> None:
    _, html, _ = report
    rows = re.findall(r'<div class="mx-row mx-case" id="(c-[0-9a-f]+)"><span class="mx-label" title="([^"]+)"', html)
    assert len(rows) == len(_cases(False)) and len({a for a, _ in rows}) == len(rows)
    assert "testcases.sdei.test_calls::test_register_ep_zero" in [t for _, t in rows]


def test_the_markdown_matrix_reads_as_a_table_of_areas(report: tuple[Path, str, str]) -> None:
    _, _, md = report
    assert "| what is tested | board (kvm-v4) | model (spec) |" in md
    assert "| **SDEI calls** (2) | 1 KFAIL, 1 PASS | 2 PASS |" in md  # worst first, as the bars
    assert "<details><summary>INTERRUPT_BIND and RELEASE: 30 cases</summary>" in md  # HTML: no Markdown escapes
    assert re.search(r"^- \*\*r\d+\*\* KFAIL: kvm-v4: register\\_ep\\_unchecked", md, re.MULTILINE)


def test_links_follow_the_reference_option(tmp_path: Path) -> None:
    out = tmp_path / "run"
    write_results(out, "model", "spec", _cases(False), "ModelDriver")
    base = "https://example.org/apflab/docs/reference"
    r = run_apflab("report", "build", str(out), "--reference", base)
    assert r.returncode == 0, r.stderr
    assert f'<a href="{base}/sdei-calls.md">DEN0054C 5.1.2</a>' in (out / "report.html").read_text()
