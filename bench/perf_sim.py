#!/usr/bin/env python3
"""Speed of the performance model, measured (not asserted): scenario A's table, simulated.

Scenario A is 4 configurations (-t or not, APF or not) x N runs of a job with about
55,000 faults each. Goal (issue 6): the table (5 runs, as the seed's) in under 2 s.

Usage: python bench/perf_sim.py [--runs 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from apflab.perf.params import SCENARIO_A
    from apflab.perf.scenarios import scenario_a, scenario_b
    from apflab.perf.swap import run_swap_job

    tables, jobs, b_tables = [], [], []
    faults = 0
    for i in range(args.repeat):
        t0 = time.perf_counter()
        result = scenario_a(args.runs, seed=i + 1)
        tables.append(time.perf_counter() - t0)
        faults = result.rows[-1].plus.async_faults
        t0 = time.perf_counter()
        run_swap_job(SCENARIO_A, True, random.Random(i))
        jobs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scenario_b(args.runs, seed=i + 1)
        b_tables.append(time.perf_counter() - t0)
    print(f"apflab perf model benchmark ({args.repeat} repeats; {faults:,} asynchronous faults per scenario A job)")
    print(
        f"  scenario A table ({4 * args.runs} jobs)   median {statistics.median(tables):6.2f} s   "
        f"min {min(tables):6.2f} s   (goal < 2 s)"
    )
    print(f"  one scenario A job (-t, APF)   median {statistics.median(jobs):6.3f} s   min {min(jobs):6.3f} s")
    print(
        f"  scenario B table ({2 * args.runs} jobs)   median {statistics.median(b_tables):6.2f} s   "
        f"min {min(b_tables):6.2f} s"
    )


if __name__ == "__main__":
    main()
