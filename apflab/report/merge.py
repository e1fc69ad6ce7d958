"""``apflab report merge``: many boards' or runs' JUnit into one file, targets kept apart.

Each input suite stays a suite of its own (junitparser's ``+=`` would fold suites that
compare equal into one); a ``merged_from`` property records the file it came from, so
two runs of the same target stay distinguishable. metrics.json files found beside the
inputs are merged too. Every input is checked before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

from junitparser import JUnitXml, TestSuite

from apflab.report.load import METRICS_VERSION, ReportError, parse_junit, read_metrics, result_files
from apflab.results import atomic_write


def merge(inputs: list[Path], out: Path) -> tuple[Path, Path | None, int]:
    """Write the merged JUnit (and metrics) to ``out``: a .xml file, or a folder for junit.xml.

    Returns (junit path, metrics path or None, number of suites).
    """
    if not inputs:
        raise ReportError("nothing to merge: give JUnit files or results folders")
    pairs: list[tuple[Path, Path | None]] = []
    for path in inputs:
        pairs += result_files(path)
    merged = JUnitXml()
    metrics: list[dict] = []
    targets: dict[str, dict[str, str]] = {}
    suites = 0
    for junit, mpath in pairs:
        root = parse_junit(junit)
        elems = [root] if root.tag == "testsuite" else root.findall("testsuite")
        for elem in elems:
            suite = TestSuite.fromelem(elem)
            suite.add_property("merged_from", str(junit))
            merged.add_testsuite(suite)
            suites += 1
        if mpath is not None:
            ms, props = read_metrics(mpath)
            metrics += [m.__dict__ for m in ms]
            for target, p in props.items():
                targets.setdefault(target, p)
    merged.update_statistics()
    junit_out = out if out.suffix == ".xml" else out / "junit.xml"
    metrics_out = junit_out.parent / "metrics.json" if metrics else None
    if junit_out.resolve() in {j.resolve() for j, _ in pairs}:
        raise ReportError(f"{junit_out}: the output is one of the inputs; write the merge elsewhere")
    data = b'<?xml version="1.0" encoding="utf-8"?>\n' + merged.tostring()
    try:
        junit_out.parent.mkdir(parents=True, exist_ok=True)  # fails before anything is written
        if metrics_out is not None:
            doc = {"version": METRICS_VERSION, "targets": targets, "metrics": metrics}
            atomic_write(metrics_out, json.dumps(doc, indent=1).encode())
        atomic_write(junit_out, data)
    except OSError as exc:
        raise ReportError(f"{junit_out.parent}: cannot write the merge there ({exc.strerror or exc})") from None
    return junit_out, metrics_out, suites
