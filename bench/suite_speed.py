#!/usr/bin/env python3
"""Speed of the spine, measured (not asserted): prints figures for the issue's three goals.

* the whole model suite, pytest start-up included   (goal: < 3 s for >= 150 cases)
* one testcase run alone with pytest path::name      (goal: < 1 s)
* the agent protocol round trip over a pipe          (apflab agent --target model)

Usage: python bench/suite_speed.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONE_CASE = "testcases/sdei/test_dispatch.py::test_resume_pc"


def wall(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}")
    return elapsed, r.stdout


def pytest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]


def round_trip(n: int) -> list[float]:
    sys.path.insert(0, str(ROOT))
    from apflab.abi.sdei import Fn
    from apflab.agent.client import AgentGuest, ProcessStream, model_agent_argv

    guest = AgentGuest(ProcessStream(model_agent_argv("spec", 4, 1)), "bench")
    try:
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            guest.call(Fn.VERSION)
            samples.append(time.perf_counter() - t)
        return samples
    finally:
        guest.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--calls", type=int, default=5000)
    args = ap.parse_args()

    suite, out = [], ""
    for _ in range(args.runs):
        t, out = wall(pytest_cmd("testcases", "--target", "model"))
        suite.append(t)
    cases = out.strip().splitlines()[-2]  # the SUMMARY line
    suite_pipe = [wall(pytest_cmd("testcases", "--target", "model-pipe"))[0] for _ in range(args.runs)]
    one = [wall(pytest_cmd(ONE_CASE))[0] for _ in range(args.runs)]
    rt = sorted(round_trip(args.calls))

    print(f"apflab spine benchmark ({args.runs} runs each; {cases})")
    print(f"  whole model suite, in process   median {statistics.median(suite):6.2f} s   min {min(suite):6.2f} s")
    print(
        f"  whole model suite, over a pipe  median {statistics.median(suite_pipe):6.2f} s   "
        f"min {min(suite_pipe):6.2f} s"
    )
    print(f"  one testcase alone              median {statistics.median(one):6.2f} s   min {min(one):6.2f} s")
    print(
        f"  agent round trip over a pipe    median {rt[len(rt) // 2] * 1e6:6.0f} us  "
        f"p99 {rt[int(len(rt) * 0.99)] * 1e6:6.0f} us  ({args.calls} calls)"
    )


if __name__ == "__main__":
    main()
