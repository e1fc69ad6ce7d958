"""The discrete-event core: one job of the async_pf workload on one vCPU over one host pCPU.

Two levels of scheduling meet here, and APF's gain and cost both come from how they meet:

* inside the guest, Linux CFS shares the vCPU between the writer thread (a) and the
  calculation thread (b): equal weights, a slice while both run, wake-up preemption with
  the sleeper credit; a stall the vCPU spends in the host counts as the current task's
  run time, less the share the guest sees as steal time (PV time);
* on the host, the vCPU thread shares its pCPU with the APF worker (``schedule_work``
  queues the async fault on the local CPU), again under CFS with the host's constants.

Time advances from event to event (a fault, its completion, a slice end, a wake-up); the
writer's page writes between faults are one span of CPU time. All times are seconds.
The model follows the v4 series' protocol (docs/reference/apf.md): the not-present notice is an SDEI
event, the writer sleeps until the page-ready PPI wakes it, and a fault is taken
asynchronously only while the writer runs at EL0, one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from apflab.perf.params import Params

US = 1e-6
MS = 1e-3


@dataclass
class JobResult:
    """What the workload prints (time, calculation) and what the host counted."""

    time_s: float
    calc_steps: float
    async_faults: int
    sync_faults: int
    calc_cpu_s: float
    writer_wait_s: float  # time the writer spent waiting for pages (blocked or asleep)
    #: Calculation done inside a window of the job (scenario B: the post-copy phase), if measured.
    window_calc_steps: float | None = None


class Job:
    """One run of the workload. ``apf`` says whether the guest enabled asynchronous faults."""

    def __init__(self, p: Params, apf: bool, steal: float) -> None:
        self.p = p
        self.apf = apf
        self.calc = p.calc_thread
        self.charge = 1.0 - steal  # share of a blocking stall charged to the writer
        self.t = 0.0
        # guest CFS: writer "w" and calculation "c"
        self.gv_w = 0.0
        self.gv_c = 0.0
        self.cur = "w"
        self.picked = 0.0  # when the current guest task got the vCPU
        self.calc_cpu = 0.0
        # host CFS: the vCPU thread and the APF worker on one pCPU
        self.hv_v = 0.0
        self.hv_k = 0.0
        self.v_picked = 0.0
        self.async_faults = 0
        self.sync_faults = 0
        self.wait = 0.0
        self._slice = p.guest_slice_ms * MS
        self._notify = (p.sdei_delivery_us + p.guest_switch_us) * US
        self._ready = p.page_ready_us * US
        self._switch = p.guest_switch_us * US
        self._wake = p.vcpu_wake_us * US

    # ------------------------------------------------------------------ the guest

    def _calc_runs_until(self, end: float) -> None:
        run = end - self.t
        if run > 0:
            self.t = end
            self.gv_c += run
            self.calc_cpu += run
            self.hv_v += run

    def writer_runs(self, d: float, charge: float = 1.0) -> None:
        """The writer needs ``d`` s of the vCPU (its CPU work or a blocking stall in the host).

        With the calculation thread present, CFS hands the vCPU over at slice ends to
        whichever task has the smaller virtual run time.
        """
        if not self.calc:
            self.t += d
            return
        while True:
            if self.cur == "c":
                self._calc_runs_until(self.picked + self._slice)
                self.picked = self.t
                if self.gv_w < self.gv_c:
                    self.cur = "w"
                continue
            left = self.picked + self._slice - self.t
            if d <= left:
                self.t += d
                self.gv_w += d * charge
                self.hv_v += d
                return
            if left > 0:
                self.t += left
                self.gv_w += left * charge
                self.hv_v += left
                d -= left
            self.picked = self.t
            if self.gv_c < self.gv_w:
                self.cur = "c"

    def sync_fault(self, host_cpu: float, wait: float) -> None:
        """The vCPU thread resolves the fault itself: the whole vCPU stalls."""
        self.sync_faults += 1
        self.wait += host_cpu + wait
        self.writer_runs(host_cpu + wait, self.charge)

    def async_fault(self, host_cpu: float, wait: float) -> None:
        """APF: an SDEI notice puts the writer to sleep; the worker resolves the fault."""
        self.async_faults += 1
        self.writer_runs(self._notify)
        t0 = self.t
        if not self.calc:  # the vCPU halts (WFI); the worker has the pCPU at once
            ready = t0 + host_cpu + wait
            self.wait += ready - t0
            self.t = ready + self._wake + self._ready + self._switch
            return
        p = self.p
        self.cur, self.picked = "c", t0
        # host: the worker wakes on this pCPU, placed with the sleeper credit
        hv_k = max(self.hv_k, self.hv_v - p.host_sleeper_credit_ms * MS)
        start = t0
        if self.hv_v - hv_k <= p.host_wakeup_gran_ms * MS:
            # no wake-up preemption: the vCPU thread keeps the pCPU to the end of its slice,
            # and longer while it is still the leftmost task
            start = max(t0, self.v_picked + p.host_slice_ms * MS)
            while self.hv_v + (start - t0) <= hv_k:
                start += p.host_slice_ms * MS
        self._calc_runs_until(start)
        end = start + host_cpu  # the worker runs; the guest sees steal time
        self.hv_k = hv_k + host_cpu
        self.v_picked = end
        self.t = end
        self._calc_runs_until(end + wait)
        # page ready: the PPI interrupts the calculation, the writer wakes
        self.t += self._ready
        self.gv_c += self._ready
        self.hv_v += self._ready
        self.wait += self.t - t0
        self.gv_w = max(self.gv_w, self.gv_c - p.guest_sleeper_credit_ms * MS)
        if self.gv_c - self.gv_w <= p.guest_wakeup_gran_ms * MS:
            while True:  # no wake-up preemption: the calculation finishes its slice
                self._calc_runs_until(max(self.t, self.picked + self._slice))
                self.picked = self.t
                if self.gv_w < self.gv_c:
                    break
        self.t += self._switch
        self.hv_v += self._switch
        self.cur, self.picked = "w", self.t

    def fault(self, host_cpu: float, wait: float) -> None:
        if self.apf:
            self.async_fault(host_cpu, wait)
        else:
            self.sync_fault(host_cpu, wait)

    def result(self) -> JobResult:
        steps = self.calc_cpu * self.p.calc_msteps_per_s * 1e6
        return JobResult(self.t, steps, self.async_faults, self.sync_faults, self.calc_cpu, self.wait)
