"""Post-copy live migration during the job (scenario B): page requests, the stream, the stats.

The migration starts ``migrate_at_s`` into the job. Pre-copy runs ``precopy_s`` at QEMU's
default bandwidth cap with dirty logging on (the first write to each page after the sync
takes a write-protect fault), then ``migrate-start-postcopy`` stops the source for the
downtime and the destination runs with every page the workload keeps dirtying missing.
From then on the source streams pages at ``stream_mbps``; a page the writer touches before
it arrives is a userfault: the destination requests it and waits one request latency (the
return-path round trip plus the stream data already queued ahead of it). Without APF the
vCPU waits in the host; with APF the writer sleeps and the calculation runs.

The writer's order through memory is its virtual order; the stream's order is guest
physical, which the guest's page allocator has shuffled, so an untouched page is missing
with the probability that the stream has not sent it yet. Once the writer has swept all
of its memory after the switch, it meets no missing page again. The guest kernel's own
working set is missing too: it faults first, at EL1, where APF does not apply
(``send_user_only``), so those requests stall the vCPU in both configurations.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from apflab.perf.engine import Job, JobResult
from apflab.perf.params import Params

MIB = 1024 * 1024
CHUNK_PAGES = 256  # the writer's progress is checked against migration events this often


@dataclass
class MigrationStats:
    """The figures QEMU's query-migrate reports on the source, as the model predicts them."""

    total_time_ms: float
    downtime_ms: float
    setup_ms: float
    transferred_mb: float
    throughput_mbps: float  # megabits per second, as query-migrate's "mbps"
    dirty_sync_count: int
    page_size: int
    pages_per_second: float
    postcopy_requests: int


class _WindowMeter:
    """How much the calculation thread ran between two moments of the guest's clock.

    The job's clock moves in steps (a span of writes, a fault); the meter samples
    (time, calculation CPU time) after each step and interpolates inside the step that
    crosses an edge of the window.
    """

    def __init__(self, job: Job, start: float, end: float) -> None:
        self.job, self.start, self.end = job, start, end
        self.last = (job.t, job.calc_cpu)
        self.at: dict[float, float] = {}
        self.sample()

    def sample(self) -> None:
        t, calc = self.job.t, self.job.calc_cpu
        t0, c0 = self.last
        for edge in (self.start, self.end):
            if edge not in self.at and t >= edge:
                share = 1.0 if t == t0 else (edge - t0) / (t - t0)
                self.at[edge] = c0 + (calc - c0) * min(1.0, max(0.0, share))
        self.last = (t, calc)

    def cpu_s(self) -> float:
        """Calculation CPU seconds inside the window (to the job's end if it ends first)."""
        return self.at.get(self.end, self.job.calc_cpu) - self.at.get(self.start, self.job.calc_cpu)


class _Writer:
    """The writer's place in its passes, and what its next pages cost."""

    def __init__(self, p: Params, job: Job) -> None:
        self.job = job
        self.pages = p.workload_pages
        self.total = p.passes * self.pages
        self.done = 0
        self.write = p.page_write_s
        self.first = p.guest_fault_us * 1e-6
        self.dirty_extra = p.dirty_log_fault_us * 1e-6
        self.dirty_left = 0  # pages still to take a dirty-logging fault

    def write_pages(self, n: int) -> None:
        n = min(n, self.total - self.done)
        if n <= 0:
            return
        first = max(0, min(self.done + n, self.pages) - self.done)  # pass 1: guest first touch
        logged = min(n, self.dirty_left)
        self.dirty_left -= logged
        self.job.writer_runs(n * self.write + first * self.first + logged * self.dirty_extra)
        self.done += n

    @property
    def finished(self) -> bool:
        return self.done >= self.total


def run_postcopy_job(p: Params, apf: bool, rng: random.Random) -> tuple[JobResult, MigrationStats]:
    steal = min(1.0, max(0.0, p.steal_fraction + rng.uniform(-p.steal_spread, p.steal_spread)))
    job = Job(p, apf, steal)
    w = _Writer(p, job)
    page_bytes = p.page_kb * 1024
    setup = p.setup_ms * 1e-3
    switch_at = p.migrate_at_s + setup + p.precopy_s
    while not w.finished and job.t < p.migrate_at_s:
        w.write_pages(CHUNK_PAGES)
    w.dirty_left = w.pages  # dirty logging on: each page faults once before the switch
    while not w.finished and job.t < switch_at:
        w.write_pages(CHUNK_PAGES)
    w.dirty_left = 0

    # What post-copy must move: the migrated RAM less the pre-copied pages still clean
    # (the workload re-dirties its own; the rest of RAM stays as pre-copy sent it).
    migrated = int(p.migrated_mb * MIB // page_bytes)
    precopy_pages = int(p.precopy_mbps * MIB * p.precopy_s // page_bytes)
    clean_share = max(0.0, 1.0 - w.pages / migrated) if migrated else 0.0
    n_post = max(0, migrated - int(precopy_pages * clean_share))
    rate = p.stream_mbps * MIB / page_bytes  # pages per second
    t_s = job.t  # the guest's clock does not count the downtime (adjusted virtual counter)
    t_end = t_s + n_post / rate
    latency = p.request_rtt_us * 1e-6 + p.stream_backlog_kb * 1024 / (p.stream_mbps * MIB)
    host_cpu = p.uffd_cpu_us * 1e-6
    requests = 0
    window = _WindowMeter(job, t_s, t_end)
    # The kernel's own working set faults first, at EL1: synchronous even with APF.
    for _ in range(min(p.kernel_ws_pages, n_post)):
        job.sync_fault(host_cpu, latency)
        requests += 1
        window.sample()
    sweep = w.pages
    while sweep > 0 and not w.finished and job.t < t_end and n_post:
        p_miss = (n_post - rate * (job.t - t_s)) / (n_post - requests)
        if p_miss <= 0:
            break
        u = rng.random()
        gap = 0 if p_miss >= 1 else int(math.log(1.0 - u) / math.log(1.0 - p_miss))
        if gap >= sweep:
            w.write_pages(sweep)
            window.sample()
            break
        if gap:
            w.write_pages(gap)
            window.sample()
            sweep -= gap
        job.fault(host_cpu, latency)
        requests += 1
        w.write_pages(1)
        window.sample()
        sweep -= 1
    while not w.finished:
        w.write_pages(CHUNK_PAGES if job.t < t_end else CHUNK_PAGES * 64)
        window.sample()

    post_s = n_post / rate
    total_s = setup + p.precopy_s + p.downtime_ms * 1e-3 + post_s
    transferred = (precopy_pages + n_post) * page_bytes
    stats = MigrationStats(
        total_time_ms=total_s * 1e3,
        downtime_ms=p.downtime_ms,
        setup_ms=p.setup_ms,
        transferred_mb=transferred / MIB,
        throughput_mbps=transferred * 8 / 1e6 / total_s,
        dirty_sync_count=2,  # the first sync at setup, the last at the switch to post-copy
        page_size=page_bytes,
        pages_per_second=rate,
        postcopy_requests=requests,
    )
    result = job.result()
    result.window_calc_steps = window.cpu_s() * p.calc_msteps_per_s * 1e6
    return result, stats
