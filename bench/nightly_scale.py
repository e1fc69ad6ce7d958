#!/usr/bin/env python3
"""`apflab nightly` on 1, 2 and 4 places: wall time, speed-up, and what places cost.

A stand-in lab on 127.0.0.1 (a real labgrid coordinator, one real exporter per board, four
QEMU boards running the TF-A agent, apflab/nightly/standin.py); the same SDEI suite is run
through `apflab nightly` with 1, 2 and 4 places (pytest-xdist, one worker per place). For
each: the command's wall time, the speed-up over one place, pytest's share of it (worker
start-up, board boots, the tests), and the coordinator work per place: reserve + acquire
before pytest, release + cancel after. ``--fresh-target-each`` boots a fresh board for
every case (kvm-unit-tests' way), a workload where the boards' time dominates.

On a 2-core machine the QEMU boards and the pytest workers compete for the same cores:
the figures say what this machine gives, not what a lab of real boards would.

Needs `apflab images tfa`. Usage: python bench/nightly_scale.py [--places 1 2 4] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(lab, places: int, out: Path, suite: str, extra: list[str]) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "apflab",
        "nightly",
        "pool=bench",
        "-n",
        str(places),
        "--deadline",
        "30",
        "--coordinator",
        lab.address,
        "--suite",
        suite,
        "--out",
        str(out),
    ]
    if extra:
        cmd.append("--pytest-args=" + " ".join(extra))  # "=": the value starts with "-"
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
    wall = time.perf_counter() - t
    if r.returncode not in (0, 1):
        raise SystemExit(f"nightly -n {places} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    doc = json.loads((out / "nightly.json").read_text())
    tests = sum(sum(p["counts"].values()) for p in doc["places"])
    return {"wall": wall, "tests": tests, "got": doc["got"], **doc["timings"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--places", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=2, help="runs per place count (the median is shown)")
    parser.add_argument("--suite", default="testcases/sdei")
    parser.add_argument("--fresh-target-each", action="store_true", help="a fresh board boot for every case")
    args = parser.parse_args()

    from apflab.images import RECIPES, _load_recipes, cache_dir
    from apflab.nightly.standin import StandinLab

    _load_recipes()
    if not RECIPES["tfa"].fresh(cache_dir()):
        print("TF-A image missing: run `apflab images tfa` first", file=sys.stderr)
        return 2
    extra = ["--fresh-target-each"] if args.fresh_target_each else []
    most = max(args.places)
    print(f"# apflab nightly over 1..{most} stand-in places, suite {args.suite}{' (fresh target each)' * bool(extra)}")
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; median of {args.repeat} runs")
    with tempfile.TemporaryDirectory(prefix="apflab-bench-") as tmp, StandinLab(Path(tmp) / "lab") as lab:
        t = time.perf_counter()
        for i in range(most):
            lab.add_exporter(f"host{i + 1}", {f"board{i + 1}": "qemu-tfa"}, {"pool": "bench"})
        print(f"# lab up (coordinator + {most} exporters + places) in {time.perf_counter() - t:.2f} s")
        rows = {}
        for n in args.places:
            runs = [run(lab, n, Path(tmp) / f"out-{n}-{k}", args.suite, extra) for k in range(args.repeat)]
            rows[n] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        base = rows[min(args.places)]["wall"]
        print()
        print("| places | tests | wall s | speed-up | pytest s | reserve+acquire s | release s | per place s |")
        print("|---|---|---|---|---|---|---|---|")
        for n, r in rows.items():
            coord = r["places_s"] + r["release_s"]
            print(
                f"| {n} | {r['tests']:.0f} | {r['wall']:.2f} | {base / r['wall']:.2f}x | {r['pytest_s']:.2f} "
                f"| {r['places_s']:.3f} | {r['release_s']:.3f} | {coord / n:.3f} |"
            )
        leftovers = lab.leftovers()
    print()
    print("wall: the whole `apflab nightly` command (Python start-up, coordinator, pytest, merge)")
    print("pytest: xdist start-up, one board boot per worker, the tests; speed-up is against one place")
    print("per place: (reserve + acquire + release + cancel) / places, all through the coordinator")
    if leftovers:
        print(f"LEFT BEHIND: {leftovers}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
