#!/usr/bin/env python3
"""The real targets, measured: boot to agent ready, the agent round trip, the whole SDEI suite.

* boot to agent ready on qemu-tfa (TF-A BL1/BL31, then the agent as BL33) and on qemu
* the agent round trip per CALL over QEMU's serial console   (goal: under 2 ms)
* the whole SDEI suite on qemu-tfa, boots included           (goal: under 5 s)
  next to the same cases with one QEMU boot per case, as kvm-unit-tests runs them
  (goal: at least 3x faster)

Needs `apflab images agent tfa`. Usage: python bench/real_targets.py [--boots N] [--calls N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def boots_and_round_trip(target: str, boots: int, calls: int) -> tuple[list[float], list[float]]:
    from labgrid import Environment

    import apflab.lab  # noqa: F401
    from apflab.abi.smccc import SMCCC_VERSION

    env = Environment(str(ROOT / "lab.yaml"))
    try:
        driver = env.get_target(target).get_driver("AgentDriver")
        guest = driver.guest()
        for _ in range(boots - 1):
            guest.restart()
        rt = []
        for _ in range(calls):
            t = time.perf_counter()
            guest.call(SMCCC_VERSION)
            rt.append(time.perf_counter() - t)
        return list(driver.boot_seconds), sorted(rt)
    finally:
        env.cleanup()


def suite(*extra: str) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "testcases/sdei", "--target", "qemu-tfa", *extra]
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t
    summary = next((line for line in r.stdout.splitlines() if line.startswith("SUMMARY:")), r.stdout[-200:])
    return elapsed, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boots", type=int, default=10)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    print("apflab real-target benchmark")
    for target in ("qemu-tfa", "qemu"):
        boots, rt = boots_and_round_trip(target, args.boots, args.calls)
        print(
            f"  {target:9} boot to agent ready   median {statistics.median(boots) * 1e3:7.1f} ms   "
            f"min {min(boots) * 1e3:7.1f} ms  ({len(boots)} boots)"
        )
        print(
            f"  {target:9} CALL round trip       median {rt[len(rt) // 2] * 1e6:7.0f} us   "
            f"p99 {rt[int(len(rt) * 0.99)] * 1e6:7.0f} us  ({len(rt)} calls)"
        )
    one = [suite() for _ in range(args.runs)]
    each = [suite("--fresh-target-each") for _ in range(args.runs)]
    t_one = statistics.median(t for t, _ in one)
    t_each = statistics.median(t for t, _ in each)
    print(f"  SDEI suite on qemu-tfa, one boot       median {t_one:6.2f} s   ({one[0][1]})")
    print(f"  SDEI suite on qemu-tfa, boot per case  median {t_each:6.2f} s   ({each[0][1]})")
    print(f"  speed-up of one boot over boot per case: {t_each / t_one:.1f}x")


if __name__ == "__main__":
    main()
