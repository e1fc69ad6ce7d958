"""Every citation leads to something a reader of the repository can follow.

The team's notes outside the repository are not sources: a file under the repository that
reads or cites them (by path or by name) would leave a user of the JUnit or the report with
a citation they cannot follow. Facts are cited to their primary sources and explained in
docs/reference/.
"""

from __future__ import annotations

import re
import subprocess

from apflab.profiles import KVM_V4_DEVIATIONS, TARGET_DEVIATIONS
from tests.conftest import ROOT

#: The notes' names and where they live, written so this file does not match itself.
OUTSIDE = re.compile(
    "|".join(
        [
            r"\.\./" + "shared",
            "shared" + "/reference",
            r"(?<![\w-])" + "abi" + r"\.md",
            "sdei-spec" + "-points",
            r"\bspec " + r"points?\b",
            r"(?<![\w-])" + "seed-results" + r"\.md",
            "anchors" + r"\.md",
            "labgrid-lab" + r"\.md",
            "qemu-lab" + "-notes",
            "tfa-on" + "-qemu",
            "kvm-nested" + r"\.md",
        ]
    )
)


def _tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return [f for f in out.stdout.splitlines() if (ROOT / f).is_file()]


def test_nothing_cites_notes_outside_the_repository() -> None:
    hits = []
    for name in _tracked_files():
        try:
            text = (ROOT / name).read_text(errors="strict")
        except (UnicodeDecodeError, OSError):
            continue  # binary files
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{name}:{n}: {line.strip()[:100]}")
    assert not hits, "citations of notes outside the repository:\n" + "\n".join(hits[:40])


def test_every_spec_marker_names_a_primary_source_first() -> None:
    """``@spec`` sections start with the primary source, never with one of apflab's own pages."""
    specs = []
    for path in sorted((ROOT / "testcases").rglob("*.py")):
        text = path.read_text()
        specs += re.findall(r'@spec\(\s*"([^"]*)"', text)
        specs += re.findall(r'^[A-Z_]+ = "([^"]*)"$', text, re.M)  # sections named once per module
    first = {s.split(";")[0].split(",")[0].strip() for s in specs}
    assert specs and not [f for f in first if f.startswith("docs/")], sorted(first)


def test_deviation_sources_are_primary_and_in_the_repository() -> None:
    for d in (*KVM_V4_DEVIATIONS, *TARGET_DEVIATIONS.values()):
        assert not OUTSIDE.search(d.source), d
        assert not d.source.startswith("docs/"), d
        for page in re.findall(r"docs/[\w/.-]+\.md", d.source):
            assert (ROOT / page).is_file(), (d.name, page)
