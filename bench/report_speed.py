#!/usr/bin/env python3
"""Speed of the reports, measured (not asserted): merge 100 JUnit files of 200 cases, build the report.

The files look like apflab's own (testcase properties spec_section, claim, target,
profile, verdict, reason; KFAIL/SKIP as <skipped>, FAIL with a console tail): 10 targets
x 10 runs, 60 spec sections. Goal (issue 6): merge + build under 2 s. On a shared machine
the wall-clock figure follows the load; the CPU time beside it does not.

Usage: python bench/report_speed.py [--files 100] [--cases 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import quoteattr

ROOT = Path(__file__).resolve().parents[1]
VERDICTS = ["PASS"] * 14 + ["KFAIL", "SKIP", "FAIL", "XFAIL"]


def junit_file(path: Path, target: str, run: int, cases: int, rng: random.Random) -> None:
    profile = "kvm-v4" if rng.random() < 0.5 else "spec"
    out = ['<?xml version="1.0" encoding="utf-8"?>\n<testsuites>']
    out.append(
        f'<testsuite name="apflab.{target}" tests="{cases}" time="1.0"><properties>'
        f'<property name="target" value="{target}" /><property name="profile" value="{profile}" />'
        f'<property name="apflab_version" value="0.1.0" /><property name="run" value="{run}" />'
        f"</properties>"
    )
    for i in range(cases):
        verdict = rng.choice(VERDICTS)
        section = f"DEN0054C 5.1.{i % 60}"
        props = {
            "spec_section": section,
            "claim": f"claim {i} of the spec",
            "target": target,
            "profile": profile,
            "verdict": verdict,
            "duration_s": "0.000200",
        }
        body = ""
        if verdict in ("KFAIL", "SKIP", "XFAIL"):
            props["reason"] = f"kvm-v4: deviation_{i % 7}: predicted by the profile"
            body = f'<skipped type="{verdict.lower()}" message={quoteattr(props["reason"])} />'
        elif verdict == "FAIL":
            props["reason"] = "got -1 (NOT_SUPPORTED), the spec says 0"
            tail = "\n".join(f"console line {n}: <EV 0x{n:x}> password=hunter2" for n in range(30))
            body = f"<failure message={quoteattr(props['reason'])}>{tail.replace('<', '&lt;')}</failure>"
        prop_xml = "".join(f"<property name={quoteattr(k)} value={quoteattr(v)} />" for k, v in props.items())
        out.append(
            f'<testcase name="test_{i}" classname="testcases.sdei.test_bench" time="0.0002">'
            f"<properties>{prop_xml}</properties>{body}</testcase>"
        )
    out.append("</testsuite></testsuites>\n")
    path.write_text("".join(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from apflab.report.build import build
    from apflab.report.merge import merge

    with tempfile.TemporaryDirectory(prefix="apflab-bench-") as tmp:
        base = Path(tmp)
        rng = random.Random(1)
        inputs = []
        for n in range(args.files):
            path = base / "in" / f"board{n % 10}-run{n // 10}.xml"
            path.parent.mkdir(parents=True, exist_ok=True)
            junit_file(path, f"board{n % 10}", n // 10, args.cases, rng)
            inputs.append(path)
        merges, builds, totals, cpu = [], [], [], []
        for i in range(args.repeat):
            out = base / f"out{i}"
            c0, t0 = time.process_time(), time.perf_counter()
            _, _, suites = merge(inputs, out)
            t1 = time.perf_counter()
            build(out)
            t2 = time.perf_counter()
            cpu.append(time.process_time() - c0)
            merges.append(t1 - t0)
            builds.append(t2 - t1)
            totals.append(t2 - t0)
        size = (base / "out0" / "report.html").stat().st_size
    n = args.files * args.cases
    print(
        f"apflab report benchmark ({args.files} JUnit files x {args.cases} cases = {n:,} cases, {suites} suites; "
        f"{args.repeat} repeats)"
    )
    print(f"  merge                 median {statistics.median(merges):6.2f} s   min {min(merges):6.2f} s")
    print(
        f"  build (HTML + MD)     median {statistics.median(builds):6.2f} s   min {min(builds):6.2f} s   "
        f"(report.html {size / 1024:.0f} KiB)"
    )
    print(
        f"  merge + build         median {statistics.median(totals):6.2f} s   min {min(totals):6.2f} s   (goal < 2 s)"
    )
    print(
        f"  merge + build, CPU    median {statistics.median(cpu):6.2f} s   min {min(cpu):6.2f} s   "
        f"(this process's CPU time: what a busy machine does not inflate; load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
