#!/usr/bin/env python3
"""The qemu-kvm target (the agent under real KVM in a nested L1), measured (not asserted).

Through lab.yaml's qemu-kvm target (labgrid: QEMUKvmDriver, AgentDriver), as the suites
use it:

* L1 boot to agent ready: QEMU start, Linux at EL2, init, apflab-vmm, the agent's PSCI
  CPU_ON of its other PEs, HELLO                                    (goal: <= 5 s)
* a fresh VM in the same L1 (off/on: BYE, a new VMM, HELLO; what a fresh_target case costs)
* the agent round trip per CALL over L1's console:
  SMCCC_VERSION, answered by KVM in L1                              (goal: <= 1 ms)
  SDEI_VERSION, forwarded by the SMCCC filter to the host's model   (goal: <= 2 ms)
* one EVENT_SIGNAL dispatched by the model into the real agent's handler, then COMPLETE
* the whole SDEI suite on qemu-kvm, boots included (a pytest process) (goal: <= 30 s)

Needs `apflab images kvm`. Usage: python bench/kvm_roundtrip.py [--boots N] [--calls N] [--no-suite]
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

from labgrid import Environment  # noqa: E402

import apflab.lab  # noqa: E402, F401 (registers the drivers)
from apflab.abi.sdei import Fn  # noqa: E402
from apflab.abi.smccc import SMCCC_VERSION  # noqa: E402
from apflab.guest import Handler  # noqa: E402
from apflab.images import cache_dir, ensure  # noqa: E402


def sample(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return sorted(out)


def show(name: str, xs: list[float], goal_ms: float | None = None) -> None:
    med = statistics.median(xs) * 1e3
    p90 = xs[int(len(xs) * 0.9) - 1] * 1e3 if len(xs) >= 10 else max(xs) * 1e3
    goal = f"  (goal <= {goal_ms:g} ms: {'met' if med <= goal_ms else 'NOT met'})" if goal_ms else ""
    print(f"{name:46s} median {med:9.2f} ms  min {xs[0] * 1e3:9.2f}  p90 {p90:9.2f}  n={len(xs)}{goal}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boots", type=int, default=3, help="L1 boots to time")
    ap.add_argument("--calls", type=int, default=200, help="samples per round trip")
    ap.add_argument("--no-suite", action="store_true", help="skip timing the SDEI suite")
    args = ap.parse_args()
    ensure(["kvm"])
    print(f"image cache: {cache_dir()}")
    boots: list[float] = []
    for _ in range(args.boots):
        env = Environment(str(ROOT / "lab.yaml"))
        target = env.get_target("qemu-kvm")
        agent, l1 = target.get_driver("AgentDriver"), target.get_driver("QEMUKvmDriver")
        guest = agent.guest()
        boots.append(agent.boot_seconds[0])
        if len(boots) < args.boots:
            env.cleanup()
    assert l1.host is not None and l1.host.watch.announce is not None
    announce = l1.host.watch.announce
    caps = ",".join(sorted(announce.caps))
    print(f"VMM: sdei={announce.sdei} vcpus={announce.vcpus} kernel={announce.kernel} caps={caps}")
    try:
        show("L1 boot to agent ready (HELLO)", sorted(boots), 5000)
        show("fresh VM in the same L1 (restart)", sample(guest.restart, max(args.boots, 5)))
        show("CALL SMCCC_VERSION (KVM in L1)", sample(lambda: guest.call(SMCCC_VERSION), args.calls), 1)
        show("CALL SDEI_VERSION (forwarded to the model)", sample(lambda: guest.call(Fn.VERSION), args.calls), 2)
        ep = guest.info.entry_point
        for fid, *a in ((Fn.EVENT_REGISTER, 0, ep, 7, 0, 0), (Fn.EVENT_ENABLE, 0), (Fn.PE_UNMASK,)):
            assert guest.call(fid, *a).x[0] == 0, fid
        guest.set_handler(7, Handler())

        def signal() -> None:
            result = guest.call(Fn.EVENT_SIGNAL, 0, guest.info.mpidrs[0])
            assert len(result.deliveries) == 1 and result.deliveries[0].x[1] == 7, result

        show("SIGNAL + dispatch + COMPLETE (model)", sample(signal, max(args.calls // 4, 10)))
        bridge = l1.host.bridge
        print(f"bridge: {bridge.calls} calls, {bridge.stops} stops, {bridge.dispatches} dispatches")
    finally:
        env.cleanup()
    if not args.no_suite:
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "testcases/sdei", "--target", "qemu-kvm"]
        t = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t
        summary = [line for line in r.stdout.splitlines() if line.startswith("SUMMARY")]
        met = "met" if wall <= 30 else "NOT met"
        print(f"{'SDEI suite on qemu-kvm, boots included':46s} {wall:9.1f} s  (goal <= 30 s: {met})")
        print(f"  {' '.join(cmd[3:])}: {summary[-1] if summary else r.stdout[-300:]}")


if __name__ == "__main__":
    main()
