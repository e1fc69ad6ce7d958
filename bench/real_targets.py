#!/usr/bin/env python3
"""The real targets, measured: boot to agent ready, the agent round trip, the whole SDEI suite.

* boot to agent ready on qemu-tfa (TF-A BL1/BL31, then the agent as BL33, one PE), on
  qemu-tfa-el2 (apflab's TF-A build, four PEs) and on qemu
* the agent round trip per CALL over QEMU's serial console   (goal: under 2 ms)
* the same round trip on qemu-tfa-el2's four PEs with one TCG thread per PE (``tcg``) and
  with one thread for all of them (``tcg-single``, what lab.yaml uses): every reply waits
  for the other PEs to answer a ping, which under ``tcg`` waits for the host to run their
  threads
* the whole SDEI suite on the TF-A targets (qemu-tfa and qemu-tfa-el2), boots included,
  next to the same cases with one QEMU boot per case, as kvm-unit-tests runs them
  (goal: at least 4x faster)

Needs `apflab images agent tfa`. Usage: python bench/real_targets.py [--boots N] [--calls N] [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TFA_TARGETS = ("qemu-tfa", "qemu-tfa-el2")


def boots_and_round_trip(target: str, boots: int, calls: int, lab: Path = ROOT / "lab.yaml") -> tuple[list, list]:
    from labgrid import Environment

    import apflab.lab  # noqa: F401
    from apflab.abi.smccc import SMCCC_VERSION

    env = Environment(str(lab))
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


def with_accel(target: str, accel: str, folder: Path) -> Path:
    """lab.yaml with ``target``'s QEMU run under another ``accel``."""
    doc = yaml.safe_load((ROOT / "lab.yaml").read_text())
    doc["targets"][target]["drivers"]["QEMUProcessDriver"]["accel"] = accel
    path = folder / f"lab-{accel}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def suite(target: str, *extra: str) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "testcases/sdei", "--target", target, *extra]
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t
    summary = next((line for line in r.stdout.splitlines() if line.startswith("SUMMARY:")), r.stdout[-200:])
    return elapsed, summary


def report(label: str, boots: list[float], rt: list[float]) -> None:
    print(
        f"  {label:24} boot to agent ready   median {statistics.median(boots) * 1e3:7.1f} ms   "
        f"min {min(boots) * 1e3:7.1f} ms  ({len(boots)} boots)"
    )
    print(
        f"  {label:24} CALL round trip       median {rt[len(rt) // 2] * 1e6:7.0f} us   "
        f"p99 {rt[int(len(rt) * 0.99)] * 1e6:7.0f} us  ({len(rt)} calls)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boots", type=int, default=10)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    print("apflab real-target benchmark")
    for target in (*TFA_TARGETS, "qemu"):
        report(target, *boots_and_round_trip(target, args.boots, args.calls))
    with tempfile.TemporaryDirectory() as tmp:
        for accel in ("tcg", "tcg-single"):
            lab = with_accel("qemu-tfa-el2", accel, Path(tmp))
            boots, rt = boots_and_round_trip("qemu-tfa-el2", 3, max(args.calls // 10, 50), lab)
            report(f"qemu-tfa-el2 accel={accel}", boots, rt)

    totals = {}
    for mode, extra in (("one boot", ()), ("boot per case", ("--fresh-target-each",))):
        per_target = {t: [suite(t, *extra) for _ in range(args.runs)] for t in TFA_TARGETS}
        for t, runs in per_target.items():
            print(
                f"  SDEI suite on {t:12}, {mode:13}  median {statistics.median(s for s, _ in runs):6.2f} s   "
                f"({runs[0][1]})"
            )
        totals[mode] = sum(statistics.median(s for s, _ in runs) for runs in per_target.values())
        print(f"  SDEI suite on the TF-A targets, {mode:13}  {totals[mode]:6.2f} s")
    print(f"  speed-up of one boot over boot per case: {totals['boot per case'] / totals['one boot']:.1f}x")


if __name__ == "__main__":
    main()
