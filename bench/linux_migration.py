#!/usr/bin/env python3
"""qemu-linux migration figures, measured (not asserted).

* how long after QEMU's own "completed" MIGRATION event the driver notices it (QEMU's
  event timestamp to the waiting thread's wake-up; goal under 10 ms: no coarse polling),
  over several pre-copy migrations of an idle 256 MB guest;
* pre-copy of an idle 1 GiB guest, at QEMU's default bandwidth and at 4 GiB/s;
* post-copy of a 1 GiB guest running the seed's workload (scenario B: -l 50 -t, switch
  at the driver's postcopy_at), with the workload's job time and calculation.

The destination runs on a throwaway sshd on 127.0.0.1 (lab.yaml's qemu-linux target).
Usage: python bench/linux_migration.py [--runs N] [--passes P]   (needs `apflab images linux`)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from labgrid import Environment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import apflab.lab  # noqa: E402,F401  (registers the drivers)
from apflab.linux import workload  # noqa: E402
from apflab.migrate.figures import COLUMNS, markdown, table_row  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="idle pre-copy migrations for the notice latency")
    ap.add_argument("--passes", type=int, default=50, help="async_pf -l for the post-copy run")
    args = ap.parse_args()
    env = Environment(str(ROOT / "lab.yaml"))
    target = env.get_target("qemu-linux")
    strategy = target.get_driver("QEMULinuxStrategy", activate=False)
    rows, latencies = [], []
    try:
        for _ in range(args.runs):
            strategy.boot(memory="256M")
            figures = target.get_driver("MigrationDriver").migrate("precopy")
            latencies.append(figures.notice_latency_ms)
        for bandwidth in (None, 4 << 30):
            strategy.boot(memory="1024M")
            t0 = time.perf_counter()
            figures = target.get_driver("MigrationDriver").migrate("precopy", max_bandwidth=bandwidth)
            wall = time.perf_counter() - t0
            guest = f"idle, {'default 128 MiB/s' if bandwidth is None else '4 GiB/s'}"
            rows.append([*table_row(figures), guest, f"{wall:.2f} s"])
        strategy.boot(memory="1024M")
        mig = target.get_driver("MigrationDriver")
        strategy.qemu.sendline(workload.command(args.passes, None, calc=True, quiet=False))
        t0 = time.perf_counter()
        figures = mig.migrate("postcopy", handshake=r"async_pf: pass 1/\d+ done")
        wall = time.perf_counter() - t0
        guest = f"async_pf -l {args.passes} -t, switch at {figures.switchover_at:.0%}"
        rows.append([*table_row(figures), guest, f"{wall:.2f} s"])
        mig.destination.console.expect(workload.RESULT_LINE, timeout=1800)
        result = workload.parse(mig.destination.console.text())
    finally:
        strategy.transition("off")
        env.cleanup()
    print(
        f"completion notice latency over {len(latencies)} pre-copy migrations: median "
        f"{statistics.median(latencies):.2f} ms, max {max(latencies):.2f} ms (goal < 10 ms)"
    )
    print()
    print(markdown(rows, [*COLUMNS, "Guest", "Driver wall time"]))
    print()
    print(
        f"workload across the post-copy migration: Time- {result.time_s:.3f} s, Calculation- "
        f"{result.calc_millions}m, {result.passes} passes over {result.mem_mb} MB; Time+ skipped: "
        f"{strategy.apf_switch()[1] or 'APF switchable'}"
    )


if __name__ == "__main__":
    main()
