"""Scenarios A and B as the seed ran them: N runs without APF and N with, per configuration.

Each run is an independent job with its own random stream (``seed`` fixes them all), so
the table varies from row to row the way a measured one does. The rows carry the seed's
columns: Time-, Calculation-, Time+, Calculation+ and Output (relative change of time and
of calculation). As in the seed's table, the runs without APF and those with it are each
sorted by time and paired by rank within a configuration.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from statistics import mean

from apflab.perf.engine import JobResult
from apflab.perf.params import SCENARIO_A, SCENARIO_B, Params
from apflab.perf.postcopy import MigrationStats, run_postcopy_job
from apflab.perf.swap import run_swap_job


@dataclass
class Row:
    calc_thread: bool
    minus: JobResult  # without APF
    plus: JobResult  # with APF
    migration_minus: MigrationStats | None = None
    migration_plus: MigrationStats | None = None

    @property
    def time_change_pct(self) -> float:
        return (self.plus.time_s / self.minus.time_s - 1.0) * 100.0

    @property
    def calc_change_pct(self) -> float | None:
        if not self.minus.calc_steps:
            return None
        return (self.plus.calc_steps / self.minus.calc_steps - 1.0) * 100.0


@dataclass
class ScenarioResult:
    name: str
    title: str
    params: Params
    rows: list[Row] = field(default_factory=list)

    def group(self, calc_thread: bool) -> list[Row]:
        return [r for r in self.rows if r.calc_thread is calc_thread]

    def mean_change(self, calc_thread: bool) -> float:
        return mean(r.time_change_pct for r in self.group(calc_thread))


def _by_time(jobs: list[JobResult]) -> list[JobResult]:
    return sorted(jobs, key=lambda j: j.time_s)


def _time(run: tuple[JobResult, MigrationStats]) -> float:
    return run[0].time_s


def _rng(seed: int, run: int, apf: bool, calc: bool) -> random.Random:
    return random.Random(f"{seed}/{run}/{int(apf)}/{int(calc)}")


def scenario_a(runs: int = 5, seed: int = 1, params: Params = SCENARIO_A) -> ScenarioResult:
    """Heavy swap-in: ``runs`` rows without -t, then ``runs`` with -t."""
    result = ScenarioResult("scenario-a", "Scenario A: heavy swap-in (1 vCPU, 1024 MB, cgroup 512 MB, -l 1)", params)
    for calc in (False, True):
        p = replace(params, calc_thread=calc)
        minus = [run_swap_job(p, False, _rng(seed, i, False, calc)) for i in range(runs)]
        plus = [run_swap_job(p, True, _rng(seed, i, True, calc)) for i in range(runs)]
        result.rows += [Row(calc, m, q) for m, q in zip(_by_time(minus), _by_time(plus), strict=True)]
    return result


def scenario_b(runs: int = 5, seed: int = 1, params: Params = SCENARIO_B) -> ScenarioResult:
    """Post-copy during the job: ``runs`` rows without -t, then ``runs`` with it, as scenario A."""
    title = "Scenario B: post-copy live migration (1 vCPU, 1024 MB, no cgroup limit, -l 50)"
    result = ScenarioResult("scenario-b", title, params)
    for calc in (False, True):
        p = replace(params, calc_thread=calc)
        minus = sorted((run_postcopy_job(p, False, _rng(seed, i, False, calc)) for i in range(runs)), key=_time)
        plus = sorted((run_postcopy_job(p, True, _rng(seed, i, True, calc)) for i in range(runs)), key=_time)
        result.rows += [Row(calc, m[0], q[0], m[1], q[1]) for m, q in zip(minus, plus, strict=True)]
    return result


SCENARIOS: dict[str, Callable[..., ScenarioResult]] = {"scenario-a": scenario_a, "scenario-b": scenario_b}
DEFAULTS: dict[str, Params] = {"scenario-a": SCENARIO_A, "scenario-b": SCENARIO_B}
