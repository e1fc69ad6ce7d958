"""Calibration on scenario A: the few physical parameters the published table pins down.

Each step matches one published mean with one parameter that has a physical meaning, in
an order where a later step does not disturb an earlier one:

1. ``readahead_pages``: pages per major fault, from the fault count (about 55,000);
2. the swap-in service time (``swap_io_us`` + ``host_fault_cpu_us``), from Time- without -t;
3. its split into host CPU and device wait, from Time+ with -t (only there does the APF
   worker's CPU compete with the vCPU thread for the pCPU);
4. ``vcpu_wake_us``, from Time+ without -t (the halted vCPU's way back after each fault);
5. ``steal_fraction``, from Time- with -t (how much of a stall CFS does not charge);
6. ``calc_msteps_per_s``, from Calculation- (steps per CPU-second of the calculation).

The fitting runs the model without its run-to-run spread (``run_sigma`` and ``steal_spread``
at zero), so each step matches a mean, not a lucky sample; afterwards ``run_sigma`` is set
to the spread of the seed's Time- rows without -t and ``steal_spread`` to the steal
fraction (steal uniform in 0..2x its mean, the seed's -t rows spreading 24..27 s). Nothing
else is fitted: the Output columns, the APF count and all of scenario B follow from the model.

    python -m apflab.perf.calibrate        # prints the calibrated values for params.py
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from statistics import mean, pstdev

from apflab.perf import seed
from apflab.perf.params import SCENARIO_A, Params
from apflab.perf.swap import run_swap_job


def _mean_run(p: Params, apf: bool, calc: bool, runs: int, seed_: int) -> tuple[float, float, float]:
    """Mean time, calculation steps and calculation CPU of ``runs`` jobs (fixed random streams)."""
    q = replace(p, calc_thread=calc)
    results = [run_swap_job(q, apf, random.Random(f"cal/{seed_}/{i}/{apf}/{calc}")) for i in range(runs)]
    return (mean(r.time_s for r in results), mean(r.calc_steps for r in results), mean(r.calc_cpu_s for r in results))


def _solve(f: Callable[[float], float], lo: float, hi: float, target: float, iters: int = 22) -> float:
    """x in [lo, hi] with f(x) = target, for f increasing in x (bisection)."""
    f_lo, f_hi = f(lo), f(hi)
    if not f_lo <= target <= f_hi:
        raise ValueError(f"target {target:.4g} outside [{f_lo:.4g}, {f_hi:.4g}] on [{lo:g}, {hi:g}]")
    for _ in range(iters):
        mid = (lo + hi) / 2
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def calibrate(base: Params = SCENARIO_A, runs: int = 4, seed_: int = 7) -> Params:
    t = seed.targets()
    p = replace(
        base, readahead_pages=max(1, round(base.workload_pages / t["async_faults"])), run_sigma=0.0, steal_spread=0.0
    )
    service = p.swap_io_us + p.host_fault_cpu_us

    def time_minus(total_us: float) -> float:
        q = replace(p, swap_io_us=total_us - p.host_fault_cpu_us)
        return _mean_run(q, False, False, runs, seed_)[0]

    service = _solve(time_minus, p.host_fault_cpu_us + 1.0, 3 * service, t["time_minus_no_calc"])

    def time_plus_calc(cpu_us: float) -> float:
        q = replace(p, host_fault_cpu_us=cpu_us, swap_io_us=service - cpu_us)
        return _mean_run(q, True, True, runs, seed_)[0]

    cpu = _solve(time_plus_calc, 1.0, service - 1.0, t["time_plus_calc"])
    p = replace(p, host_fault_cpu_us=round(cpu, 1), swap_io_us=round(service - cpu, 1))

    def time_plus(wake_us: float) -> float:
        return _mean_run(replace(p, vcpu_wake_us=wake_us), True, False, runs, seed_)[0]

    p = replace(p, vcpu_wake_us=round(_solve(time_plus, 0.0, 100.0, t["time_plus_no_calc"]), 2))

    def time_minus_calc(steal: float) -> float:
        # a falling function of steal: negate to bisect on an increasing one
        return -_mean_run(replace(p, steal_fraction=steal), False, True, runs, seed_)[0]

    p = replace(p, steal_fraction=round(_solve(time_minus_calc, 0.0, 0.5, -t["time_minus_calc"]), 4))
    calc_cpu = _mean_run(p, False, True, runs, seed_)[2]
    no_calc_minus = [r[0] for r in seed.A_NO_CALC]
    return replace(
        p,
        calc_msteps_per_s=round(t["calc_minus_msteps"] / calc_cpu, 2),
        steal_spread=p.steal_fraction,
        run_sigma=round(pstdev(no_calc_minus) / mean(no_calc_minus), 4),
    )


CALIBRATED = (
    "readahead_pages",
    "swap_io_us",
    "host_fault_cpu_us",
    "vcpu_wake_us",
    "steal_fraction",
    "steal_spread",
    "calc_msteps_per_s",
    "run_sigma",
)


def main() -> None:
    p = calibrate()
    for name in CALIBRATED:
        print(f"{name} = {getattr(p, name)!r}")


if __name__ == "__main__":
    main()
