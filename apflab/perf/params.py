"""The physical quantities the performance model is built from, each with its unit and source.

Every number the simulator uses is a field here, so a reader can check it and a user can
change it (``apflab simulate ... --param name=value``). docs/perf-model.md explains each
one; the ones marked *calibrated* were fitted on scenario A (apflab.perf.calibrate) and are
the only fitted numbers in the model. Scenario B reuses them unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields, replace


class ParamError(ValueError):
    """A --param that names no parameter or carries a value of the wrong kind."""


@dataclass(frozen=True)
class Params:
    # --- the workload: `testsuite test async_pf -l N [-t] -q` (docs/reference/apf-seed-results.md) --------------
    guest_mb: int = 1024  # seed: guest memory
    guest_reserved_mb: int = 160  # kernel, page tables, slab, page-cache floor: MemAvailable ~864 MB
    passes: int = 1  # -l N
    calc_thread: bool = True  # -t
    page_kb: int = 4  # seed: 4 KB pages
    write_gbps: float = 8.0  # one core's store bandwidth (arm64 server, 2021): 4 KB in 0.51 us
    page_walk_us: float = 0.1  # TLB miss + stage-1/stage-2 walk per new page
    guest_fault_us: float = 0.8  # first touch in the guest: anonymous fault, clear_page, map
    calc_msteps_per_s: float = 165.82  # calibrated: the calculation's steps per CPU-second

    # --- the guest scheduler (Linux CFS on 1 CPU, default sysctls) -----------------------------
    guest_slice_ms: float = 3.0  # sched_latency 6 ms shared by two runnable tasks
    guest_wakeup_gran_ms: float = 1.0  # sched_wakeup_granularity (1 CPU: no log scaling)
    guest_sleeper_credit_ms: float = 3.0  # GENTLE_FAIR_SLEEPERS: sched_latency / 2

    # --- the host: one pCPU shared by the vCPU thread and its APF worker (schedule_work is local)
    host_slice_ms: float = 12.0  # sched_latency 24 ms (8+ CPUs) shared by two runnable tasks
    host_wakeup_gran_ms: float = 4.0  # 1 ms x (1 + log2 8)
    host_sleeper_credit_ms: float = 12.0  # sched_latency / 2

    # --- heavy swap-in (scenario A): cgroup v2 memory.max around QEMU ---------------------------
    cgroup_mb: int = 512  # seed: memory.max; 0 = no limit (scenario B)
    qemu_overhead_mb: int = 64  # QEMU's own memory charged to the cgroup
    readahead_pages: int = 4  # calibrated: pages one major fault brings in (page-cluster <= 8)
    swap_io_us: float = 100.4  # calibrated: device time of one swap-in cluster (mean)
    swap_io_sigma: float = 0.5  # lognormal spread of one swap-in's device time
    host_fault_cpu_us: float = 136.3  # calibrated: host CPU per swap-in (memcg reclaim, swap cache, map)
    run_sigma: float = 0.0095  # run-to-run spread of the swap device (seed's Time- rows)
    steal_fraction: float = 0.1023  # calibrated: share of a blocking fault the guest sees as steal
    steal_spread: float = 0.1023  # per run, steal is uniform in fraction +- spread

    # --- APF (docs/reference/apf.md): the costs of one asynchronous fault ---------------------------------
    sdei_delivery_us: float = 3.0  # exit, SDEI injection, handler, COMPLETE_AND_RESUME
    guest_switch_us: float = 2.0  # schedule() and a context switch in the guest
    page_ready_us: float = 4.0  # kick, pre-fault map, PPI, handler wake-up, IRQ_ACK
    vcpu_wake_us: float = 3.21  # calibrated: a halted (WFI) vCPU back in the guest after a kick

    # --- post-copy migration (scenario B) -----------------------------------------------------
    migrate: bool = False
    migrate_at_s: float = 1.0  # the migration starts this long after the job
    precopy_s: float = 1.0  # pre-copy runs this long before migrate-start-postcopy
    precopy_mbps: float = 32.0  # QEMU 6.x default max-bandwidth (32 MiB/s) during pre-copy
    migrated_mb: float = 915.0  # seed: the migration moves about 915 MB
    stream_mbps: float = 1100.0  # post-copy stream: one migration thread, 10 GbE or loopback
    request_rtt_us: float = 100.0  # fault -> uffd -> return path -> source -> UFFDIO_COPY -> wake
    stream_backlog_kb: float = 256.0  # stream data queued ahead of a requested page
    uffd_cpu_us: float = 8.0  # host CPU of one userfault on the vCPU's pCPU
    kernel_ws_pages: int = 384  # guest kernel text and data touched at EL1 right after the switch
    dirty_log_fault_us: float = 2.0  # first write to a page after a dirty sync (pre-copy)
    downtime_ms: float = 5.0  # stop, device state, switch to the destination
    setup_ms: float = 10.0  # migration setup (dirty logging on, first sync)

    @property
    def workload_pages(self) -> int:
        return (self.guest_mb - self.guest_reserved_mb) * 1024 // self.page_kb

    @property
    def page_write_s(self) -> float:
        """CPU time to write one page (every byte) once it is mapped."""
        return self.page_kb * 1024 / (self.write_gbps * 1e9) + self.page_walk_us * 1e-6


SCENARIO_A = Params()
SCENARIO_B = replace(SCENARIO_A, passes=50, cgroup_mb=0, migrate=True)


def _convert(field: dataclasses.Field, text: str) -> object:
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    try:
        if kind == "bool":
            low = text.strip().lower()
            if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(text)
            return low in ("1", "true", "yes", "on")
        if kind == "int":
            return int(text)
        return float(text)
    except ValueError:
        raise ParamError(f"--param {field.name}={text}: expected a {kind}") from None


def with_overrides(base: Params, assignments: list[str]) -> Params:
    """``base`` with ``name=value`` assignments applied (values converted to the field's type)."""
    known = {f.name: f for f in fields(Params)}
    changes: dict[str, object] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParamError(f"--param {item!r}: expected name=value")
        if name not in known:
            raise ParamError(f"--param {name}: no such parameter (see docs/perf-model.md)")
        changes[name] = _convert(known[name], value)
    result = replace(base, **changes)
    validate(result)
    return result


def validate(p: Params) -> None:
    if p.guest_mb <= p.guest_reserved_mb:
        raise ParamError("guest_mb must exceed guest_reserved_mb")
    if p.passes < 1 or p.page_kb < 1 or p.readahead_pages < 1:
        raise ParamError("passes, page_kb and readahead_pages must be at least 1")
    positive = ("write_gbps", "calc_msteps_per_s", "guest_slice_ms", "host_slice_ms", "stream_mbps")
    for name in positive:
        if getattr(p, name) <= 0:
            raise ParamError(f"{name} must be positive")
    if not 0 <= p.steal_fraction <= 1 or not 0 <= p.steal_spread <= 1:
        raise ParamError("steal_fraction and steal_spread must lie in 0..1")
    if p.cgroup_mb and p.cgroup_mb <= p.qemu_overhead_mb:
        raise ParamError("cgroup_mb must exceed qemu_overhead_mb (or be 0: no limit)")
