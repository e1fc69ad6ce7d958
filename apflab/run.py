"""``apflab run``: every suite on each target, then one merged JUnit, metrics file and summary.

Each target runs in a pytest process of its own (a wedged target cannot take the
others down) writing reports/out/<target>/; the merge keeps targets apart as
separate test suites. The exit status is 1 when any test failed unexpectedly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from junitparser import JUnitXml

from apflab.report.build import build_after_run
from apflab.results import METRICS_VERSION, atomic_write, summary_line, verdict_counts
from apflab.verdict import Verdict

#: What ``make run`` runs: the model under both profiles.
MODEL_TARGETS = ("model", "model-kvm-v4")


def run_target(target: str, out: Path, extra: list[str], lab: str | None) -> int:
    tdir = out / target
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "testcases",
        "-q",
        "-p",
        "no:cacheprovider",
        "--target",
        target,
        "--apflab-junit",
        str(tdir / "junit.xml"),
        "--apflab-metrics",
        str(tdir / "metrics.json"),
        *(["--lg-env", lab] if lab else []),
        *extra,
    ]
    print(f"== {target}: {' '.join(cmd[1:])}", flush=True)
    return subprocess.run(cmd, check=False).returncode


def merge(out: Path, targets: list[str]) -> Counter[Verdict]:
    junits = [out / t / "junit.xml" for t in targets if (out / t / "junit.xml").exists()]
    merged = JUnitXml()
    metrics: list[dict] = []
    props: dict[str, dict] = {}
    for t in targets:
        path = out / t / "junit.xml"
        if path.exists():
            merged += JUnitXml.fromfile(str(path))
        mpath = out / t / "metrics.json"
        if mpath.exists():
            doc = json.loads(mpath.read_text())
            metrics.extend(doc.get("metrics", []))
            props[t] = doc.get("properties", {})
    tmp = out / ".junit.merged.xml"
    merged.write(str(tmp))
    atomic_write(out / "junit.xml", tmp.read_bytes())
    tmp.unlink()
    doc = {"version": METRICS_VERSION, "targets": props, "metrics": metrics}
    atomic_write(out / "metrics.json", json.dumps(doc, indent=1).encode())
    return verdict_counts(junits)


def run_suites(targets: list[str] | None, out_dir: str, extra: list[str], lab: str | None = None) -> int:
    out = Path(out_dir)
    chosen = list(targets or MODEL_TARGETS)
    codes = {t: run_target(t, out, extra, lab) for t in chosen}
    lines = []
    for t in chosen:
        junit = out / t / "junit.xml"
        if junit.exists():
            lines.append(f"{t}: {summary_line(verdict_counts([junit]))}")
        else:
            lines.append(f"{t}: no results (pytest exit status {codes[t]})")
    total = merge(out, chosen)
    lines.append(summary_line(total))
    atomic_write(out / "summary.txt", ("\n".join(lines) + "\n").encode())
    build_after_run(out)  # reports/out/report.html and report.md; the SUMMARY lines stay last
    print("\n".join(lines))
    broken = [t for t, c in codes.items() if c not in (0, 1)]
    if broken:
        print(f"apflab: pytest could not run on: {', '.join(broken)}", file=sys.stderr)
        return 2
    return 1 if total.get(Verdict.FAIL, 0) else 0
