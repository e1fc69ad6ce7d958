"""The performance model (apflab.perf): parameters, fault geometry, mechanisms, the seed's bands.

Expected numbers come from the series' published results
(docs/reference/apf-seed-results.md: the bands, the fault count) or from the
parameters themselves computed independently here (page counts, per-fault costs).
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from statistics import mean

import pytest

from apflab.perf.params import SCENARIO_A, SCENARIO_B, ParamError, with_overrides
from apflab.perf.scenarios import scenario_a, scenario_b
from apflab.perf.swap import major_faults_per_pass, run_swap_job


def test_overrides_take_the_fields_type() -> None:
    p = with_overrides(SCENARIO_A, ["passes=3", "calc_thread=no", "write_gbps=4", "cgroup_mb=0"])
    assert (p.passes, p.calc_thread, p.write_gbps, p.cgroup_mb) == (3, False, 4.0, 0)


@pytest.mark.parametrize(
    ("assignment", "words"),
    [
        ("nosuch=1", "nosuch: no such parameter"),
        ("passes=many", "expected a int"),
        ("calc_thread=maybe", "expected a bool"),
        ("passes", "expected name=value"),
        ("cgroup_mb=32", "cgroup_mb must exceed qemu_overhead_mb"),
        ("steal_fraction=2", "0..1"),
    ],
)
def test_bad_overrides_say_what_is_wrong(assignment: str, words: str) -> None:
    with pytest.raises(ParamError, match=words):
        with_overrides(SCENARIO_A, [assignment])


def test_a_pass_larger_than_the_budget_swaps_every_page_in() -> None:
    pages = (1024 - 160) * 1024 // 4  # guest memory less the reserved part, in 4 KB pages
    assert major_faults_per_pass(replace(SCENARIO_A, readahead_pages=1)) == pages
    assert major_faults_per_pass(replace(SCENARIO_A, readahead_pages=4)) == math.ceil(pages / 4)


@pytest.mark.parametrize("cgroup_mb", [0, 2048])
def test_memory_that_fits_takes_no_fault(cgroup_mb: int) -> None:
    p = replace(SCENARIO_A, cgroup_mb=cgroup_mb)
    assert major_faults_per_pass(p) == 0
    job = run_swap_job(p, True, random.Random(1))
    assert job.async_faults == 0 and job.sync_faults == 0


def test_without_a_second_thread_apf_costs_exactly_its_notification_path() -> None:
    """Same device times, no -t: Time+ - Time- is faults x (SDEI, switches, page-ready, wake-up)."""
    p = replace(SCENARIO_A, calc_thread=False)
    minus = run_swap_job(p, False, random.Random(5))
    plus = run_swap_job(p, True, random.Random(5))
    per_fault = (p.sdei_delivery_us + 2 * p.guest_switch_us + p.page_ready_us + p.vcpu_wake_us) * 1e-6
    assert plus.async_faults == minus.sync_faults == major_faults_per_pass(p)
    assert plus.time_s - minus.time_s == pytest.approx(plus.async_faults * per_fault, rel=1e-6)


def test_without_apf_the_calculation_only_gets_its_fair_share() -> None:
    """CFS charges a synchronous stall to the writer: the calculation gets about as much CPU."""
    p = replace(SCENARIO_A, steal_fraction=0.0, steal_spread=0.0)
    job = run_swap_job(p, False, random.Random(2))
    writer = job.time_s - job.calc_cpu_s
    assert job.calc_cpu_s == pytest.approx(writer, rel=0.01)


def test_the_same_seed_gives_the_same_table() -> None:
    a, b = scenario_a(runs=1, seed=3), scenario_a(runs=1, seed=3)
    assert [(r.minus.time_s, r.plus.time_s) for r in a.rows] == [(r.minus.time_s, r.plus.time_s) for r in b.rows]


@pytest.mark.parametrize("seed", [1, 2])
def test_scenario_a_lands_in_the_published_bands(seed: int) -> None:
    """APF v4 00/15, scenario A: +5.0..+6.4 % without -t, -36..-42 % with -t, about 55,000 APFs."""
    result = scenario_a(runs=5, seed=seed)
    assert 5.0 <= mean(r.time_change_pct for r in result.group(False)) <= 6.4
    assert -42.0 <= mean(r.time_change_pct for r in result.group(True)) <= -36.0
    assert all(52_250 <= r.plus.async_faults <= 57_750 for r in result.rows)


def test_scenario_b_reports_the_seeds_figures() -> None:
    """Per run: time and calculation with and without APF, query-migrate's figures, ~915 MB in 4 KB pages."""
    result = scenario_b(runs=2, seed=1)
    assert [r.calc_thread for r in result.rows] == [False, False, True, True], "both halves, as scenario A"
    for row in result.rows:
        assert (row.minus.calc_steps > 0 and row.plus.calc_steps > 0) == row.calc_thread
        assert row.minus.async_faults == 0 < row.plus.async_faults
        for stats in (row.migration_minus, row.migration_plus):
            assert stats is not None and stats.page_size == 4096
            assert 915 * 0.9 <= stats.transferred_mb <= 915 * 1.1
            assert stats.postcopy_requests > 0 and stats.downtime_ms > 0 and stats.total_time_ms > 0


def test_scenario_b_is_a_post_copy_run_of_fifty_passes_without_a_limit() -> None:
    assert (SCENARIO_B.passes, SCENARIO_B.cgroup_mb, SCENARIO_B.migrate) == (50, 0, True)
    assert (SCENARIO_B.guest_mb, SCENARIO_B.page_kb, SCENARIO_B.migrated_mb) == (1024, 4, 915)
