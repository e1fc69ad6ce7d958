"""Heavy swap-in (scenario A): how many major faults a pass takes, and one job through them.

The host keeps at most ``cgroup_mb - qemu_overhead_mb`` of guest memory resident. A
writer that sweeps a region larger than that, in the same order every pass, meets the
LRU's worst case: each page was evicted before the sweep comes back to it, so every page
is swapped in again, and one major fault brings in ``readahead_pages`` neighbours with it
(the swap slots were written in the same order). Each major fault costs host CPU (memcg
reclaim, swap cache, stage-2 map) and a device wait; with APF the worker does both while
the guest runs something else.
"""

from __future__ import annotations

import math
import random

from apflab.perf.engine import Job, JobResult
from apflab.perf.params import Params


def resident_budget_pages(p: Params) -> int | None:
    """Guest pages the host can keep resident, or None without a memory limit."""
    if not p.cgroup_mb:
        return None
    return (p.cgroup_mb - p.qemu_overhead_mb) * 1024 // p.page_kb


def major_faults_per_pass(p: Params) -> int:
    budget = resident_budget_pages(p)
    if budget is None or p.workload_pages <= budget:
        return 0  # everything stays resident once touched
    return math.ceil(p.workload_pages / p.readahead_pages)


def device_waits(p: Params, n: int, rng: random.Random) -> list[float]:
    """``n`` swap-in device times (s): lognormal around the mean, scaled by a per-run factor."""
    run = rng.lognormvariate(-(p.run_sigma**2) / 2, p.run_sigma) if p.run_sigma else 1.0
    mean = p.swap_io_us * 1e-6 * run
    if not p.swap_io_sigma:
        return [mean] * n
    mu = math.log(mean) - p.swap_io_sigma**2 / 2
    sigma = p.swap_io_sigma
    gauss = rng.gauss
    exp = math.exp
    return [exp(mu + sigma * gauss(0.0, 1.0)) for _ in range(n)]


def run_swap_job(p: Params, apf: bool, rng: random.Random) -> JobResult:
    """One job of scenario A: ``passes`` sweeps of the workload through the swap."""
    steal = min(1.0, max(0.0, p.steal_fraction + rng.uniform(-p.steal_spread, p.steal_spread)))
    job = Job(p, apf, steal)
    per_pass = major_faults_per_pass(p)
    first_touch = p.guest_fault_us * 1e-6
    host_cpu = p.host_fault_cpu_us * 1e-6
    for n in range(p.passes):
        page_cost = p.page_write_s + (first_touch if n == 0 else 0.0)
        if not per_pass:
            job.writer_runs(p.workload_pages * page_cost)
            continue
        chunk = p.readahead_pages * page_cost
        fault = job.fault
        run = job.writer_runs
        for wait in device_waits(p, per_pass, rng):
            run(chunk)
            fault(host_cpu, wait)
        rest = p.workload_pages - per_pass * p.readahead_pages
        if rest > 0:
            run(rest * page_cost)
    return job.result()
