"""Results on disk: JUnit XML with per-testcase properties, metrics.json, the SUMMARY line.

Both files are rewritten atomically (temp file + rename) after every test, so a run
killed half-way leaves valid files holding everything that finished. The JUnit is
written with junitparser's xunit2 classes, so junitparser reads it back without
warnings; metrics follow LAVA's model (name, value, unit).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped, TestSuite
from junitparser.xunit2 import TestCase

import apflab
from apflab.safetext import from_target
from apflab.verdict import Verdict

#: The metrics.json format's version (docs/results.md); readers refuse others.
METRICS_VERSION = 1


@dataclass
class Metric:
    name: str
    value: float
    unit: str
    test: str = ""
    target: str = ""


@dataclass
class CaseRecord:
    nodeid: str
    classname: str
    name: str
    time: float
    verdict: Verdict
    message: str = ""
    details: str = ""
    properties: dict[str, str] = field(default_factory=dict)


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def provenance(root: Path, target: str, profile: str) -> dict[str, str]:
    """Who and what produced these results (labgrid records the same kind of facts)."""
    return {
        "apflab_version": apflab.__version__,
        "apflab_commit": git_commit(root),
        "target": target,
        "profile": profile,
        "python": platform.python_version(),
        "host": platform.machine(),
    }


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultLog:
    """Collects one pytest session's results and keeps the files on disk current."""

    def __init__(
        self, suite_name: str, suite_properties: dict[str, str], junit: Path | None, metrics: Path | None
    ) -> None:
        self.suite_name = suite_name
        self.suite_properties = suite_properties
        self.junit = junit
        self.metrics_path = metrics
        self.cases: list[CaseRecord] = []
        self.metrics: list[Metric] = []
        self._case_xml: list[bytes] = []  # serialised once: a flush is O(n) bytes, not O(n) XML builds

    def add(self, case: CaseRecord, metrics: Iterable[Metric] = ()) -> None:
        self.cases.append(case)
        self.metrics.extend(metrics)
        self.flush()

    def add_metric(self, metric: Metric) -> None:
        self.metrics.append(metric)

    def counts(self) -> Counter[Verdict]:
        return Counter(c.verdict for c in self.cases)

    def flush(self) -> None:
        if self.junit is not None:
            atomic_write(self.junit, self._junit_bytes())
        if self.metrics_path is not None:
            doc = {
                "version": METRICS_VERSION,
                "properties": self.suite_properties,
                "metrics": [asdict(m) for m in self.metrics],
            }
            atomic_write(self.metrics_path, json.dumps(doc, indent=1).encode())

    def _junit_bytes(self) -> bytes:
        """The whole file: suite header with current counts, then each case's cached XML."""
        while len(self._case_xml) < len(self.cases):
            self._case_xml.append(_case_element(self.cases[len(self._case_xml)]).tostring())
        suite = TestSuite(_field(self.suite_name, NAME_LIMIT))
        for key, value in self.suite_properties.items():
            suite.add_property(_field(key, NAME_LIMIT), _field(value, PROPERTY_LIMIT))
        counts = self.counts()
        suite.tests = len(self.cases)
        failed = [c for c in self.cases if c.verdict is Verdict.FAIL]
        suite.failures = sum(1 for c in failed if c.properties.get("phase") != "setup")
        suite.errors = counts[Verdict.FAIL] - suite.failures
        suite.skipped = counts[Verdict.SKIP] + counts[Verdict.KFAIL] + counts[Verdict.XFAIL]
        suite.time = round(sum(c.time for c in self.cases), 6)
        head = suite.tostring().decode("utf-8")
        # An empty suite serialises as <testsuite .../> or <testsuite ...>props</testsuite>.
        if head.endswith("/>"):
            head, tail = head[:-2] + ">", "</testsuite>"
        else:
            head, tail = head[: -len("</testsuite>")], "</testsuite>"
        parts = [b'<?xml version="1.0" encoding="utf-8"?>\n<testsuites>', head.encode()]
        parts.extend(self._case_xml)
        parts += [tail.encode(), b"</testsuites>\n"]
        return b"".join(parts)


#: Characters each field of a case keeps (head and tail): a target may print megabytes,
#: and a JUnit file is rewritten after every test.
NAME_LIMIT = 1000
MESSAGE_LIMIT = 4000
DETAILS_LIMIT = 64000
PROPERTY_LIMIT = 4000


def _field(text: str, limit: int) -> str:
    """A field as JUnit keeps it: valid XML, no control characters (said so), bounded."""
    return from_target(text, limit, lines="\n" in text)


def _case_element(c: CaseRecord) -> TestCase:
    message = _field(c.message, MESSAGE_LIMIT)
    case = TestCase(_field(c.name, NAME_LIMIT), _field(c.classname, NAME_LIMIT), c.time)
    if c.verdict is Verdict.FAIL:
        result = Error(message, "error") if c.properties.get("phase") == "setup" else Failure(message)
        result.text = _field(c.details, DETAILS_LIMIT)
        case.result = [result]
    elif c.verdict in (Verdict.SKIP, Verdict.KFAIL, Verdict.XFAIL):
        case.result = [Skipped(message, c.verdict.value.lower())]
    for key, value in c.properties.items():
        case.add_property(_field(key, NAME_LIMIT), _field(value, PROPERTY_LIMIT))
    return case


def summary_line(counts: Counter[Verdict] | dict[Verdict, int]) -> str:
    """kvm-unit-tests' closing line: SUMMARY: N tests, F unexpected failures, K known failures, S skipped."""
    total = sum(counts.values())
    parts = [
        f"SUMMARY: {total} tests",
        f"{counts.get(Verdict.FAIL, 0)} unexpected failures",
        f"{counts.get(Verdict.KFAIL, 0)} known failures",
    ]
    if counts.get(Verdict.XFAIL, 0):
        parts.append(f"{counts[Verdict.XFAIL]} expected failures")
    parts.append(f"{counts.get(Verdict.SKIP, 0)} skipped")
    return ", ".join(parts)


def junit_counts(xml: JUnitXml) -> Counter[Verdict]:
    """Count verdicts in a JUnit document written by apflab (property ``verdict``)."""
    counts: Counter[Verdict] = Counter()
    for suite in xml:
        for case in suite:
            props = {p.name: p.value for p in TestCase.fromelem(case).properties()}
            counts[Verdict(props.get("verdict", "FAIL"))] += 1
    return counts
