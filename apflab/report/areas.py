"""What a testcase tests, as the conformance matrix groups it.

A case's suite (its test module) says what it tests (SMCCC, the SDEI calls, the state
table, dispatch, ...), and the first citation of its ``@spec`` section is the primary
source the case checks (``DEN0054C 5.1.7``): the matrix groups rows by the one and
titles them by the other, so a reader sees areas at a glance instead of one row per
citation string. Each citation leads to the page of docs/reference/ that explains it
(docs/reference/README.md lists the citation keys), at the heading that names it where
one does. Modules this file does not know (a new suite, another project's JUnit) get an
area named after the module, after the known ones: the matrix works for any results.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import quote

from apflab.abi.sdei import SECTION

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"
NO_SECTION = "(no spec section)"

#: Test module (prefix of the JUnit classname) -> area, in reading order.
AREAS: tuple[tuple[str, str], ...] = (
    ("testcases.smccc.", "SMCCC and PSCI"),
    ("testcases.sdei.test_calls", "SDEI calls"),
    ("testcases.sdei.test_state_table", "SDEI state table"),
    ("testcases.sdei.test_dispatch", "Dispatch and COMPLETE"),
    ("testcases.sdei.test_pending", "Pending triggers, ENABLE and DISABLE"),
    ("testcases.sdei.test_priority", "Nesting, priority and the PE mask"),
    ("testcases.sdei.test_routing", "Routing"),
    ("testcases.sdei.test_signal_reset", "SIGNAL and the resets"),
    ("testcases.sdei.test_power", "Power: CPU_OFF, CPU_ON, reset"),
    ("testcases.sdei.test_bind", "INTERRUPT_BIND and RELEASE"),
    ("testcases.apf.test_interface", "APF: the guest's interface"),
    ("testcases.apf.test_host", "APF: the host's rules"),
    ("testcases.apf.test_vmm", "APF: the VMM's interface"),
    ("testcases.migration.", "Migration of SDEI and APF state"),
    ("testcases.perf.", "Performance: the seed's scenarios"),
    ("testcases.linux.", "Linux guest: workload and migration"),
)

#: Citation prefix -> the reference pages that explain it, the page to link first.
PAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("DEN0054A", ("sdei-states.md",)),
    ("DEN0054C handler dispatch", ("sdei-dispatch.md",)),
    ("DEN0054C", ("sdei-calls.md", "sdei-dispatch.md")),
    ("DEN0028", ("smccc.md",)),
    ("DEN0022", ("smccc.md",)),
    ("Linux arm-smccc.h", ("smccc.md",)),
    ("KVM SDEI v4", ("kvm-v4.md",)),
    ("APF v4 00/15", ("apf-seed-results.md",)),
    ("APF v4", ("apf.md",)),
    ("gwshan/qemu", ("kvm-v4.md", "apf.md")),
    ("TF-A", ("tfa.md",)),
    ("QEMU", ("lab.md",)),
)

_CALL_NAMES = {section: fn.name for fn, section in SECTION.items()}
_PARENS = re.compile(r"\s*\([^()]*\)")
_NAMED_PAGE = re.compile(r"docs/reference/([\w.-]+\.md)")


@dataclass(frozen=True)
class Area:
    order: tuple[int, str]
    title: str


@cache
def area_of(classname: str) -> Area:
    for i, (prefix, title) in enumerate(AREAS):
        if classname.startswith(prefix):
            return Area((i, ""), title)
    module = classname.removeprefix("testcases.")
    if not module:
        return Area((len(AREAS) + 1, ""), "other")
    parts = [p.removeprefix("test_").replace("_", " ") for p in module.split(".")]
    return Area((len(AREAS), module), ": ".join(parts))


@cache
def primary_citation(section: str) -> str:
    """The first source a ``@spec`` section names, without its parenthetical detail."""
    text = section
    while True:
        shorter = _PARENS.sub("", text)
        if shorter == text:
            break
        text = shorter
    first = re.split(r"[;,]", text, maxsplit=1)[0].strip()
    return first or NO_SECTION


@cache
def call_name(citation: str) -> str:
    """The SDEI call a DEN0054C 5.1.x citation is about (5.1.3.1 is in ENABLE's section)."""
    m = re.fullmatch(r"DEN0054C 5\.1\.(\d+)(?:\.\d+)*", citation)
    if m:
        return _CALL_NAMES.get(f"5.1.{m.group(1)}", "")
    return "the SDEI calls" if citation == "DEN0054C 5.1" else ""


def natural_key(text: str) -> list[object]:
    return [(0, int(t)) if t.isdigit() else (1, t.lower()) for t in re.split(r"(\d+)", text) if t]


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it (where the reference pages are read rendered)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@cache
def _headings(page: str) -> tuple[str, ...]:
    try:
        text = (REFERENCE / page).read_text(encoding="utf-8")
    except OSError:
        return ()
    # Level 2 and below: the page's title is the page itself.
    return tuple(line.lstrip("#").strip() for line in text.splitlines() if line.startswith("##"))


def _token(citation: str, prefix: str) -> str:
    """What a heading must name: the citation past its document's key (``5.1.12``,
    ``07/15``, ``scenario B``), or the topic a key of its own is (``handler dispatch``)."""
    return citation.removeprefix(prefix).strip() or prefix.split(maxsplit=1)[-1]


def _names(heading: str, token: str) -> bool:
    return bool(token) and re.search(rf"(?<![\w.]){re.escape(token)}(?!\w|\.\d)", heading, re.IGNORECASE) is not None


@cache
def reference_page(section: str) -> str | None:
    """``page.md`` or ``page.md#anchor`` under docs/reference/ for a case's ``@spec``
    section: the page the section itself names, else the page its primary citation's key
    leads to, at the heading that names the citation if one does."""
    citation = primary_citation(section)
    named = _NAMED_PAGE.findall(section)
    for prefix, pages in PAGES:
        if not citation.startswith(prefix):
            continue
        token = _token(citation, prefix)
        candidates = [*named, *pages] if named else list(pages)
        for page in candidates:
            for heading in _headings(page):
                if _names(heading, token):
                    return f"{page}#{slug(heading)}"
        return candidates[0]
    return named[0] if named else None


def reference_base(out_dir: Path) -> str | None:
    """docs/reference/ of this checkout as a path relative to the report's folder, so the
    links work where the report is read (reports/out/ -> ../../docs/reference), also when
    report.md is read on GitHub; None when apflab runs without its docs (an installed wheel)."""
    if not REFERENCE.is_dir():
        return None
    rel = os.path.relpath(REFERENCE, out_dir.resolve())
    return "/".join(quote(part) for part in Path(rel).parts)
