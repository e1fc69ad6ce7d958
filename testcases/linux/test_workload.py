"""The async_pf workload in a real arm64 Linux guest: the seed's table, measured.

APF v4 00/15 (docs/reference/apf-seed-results.md), the workload and scenario A: ``async_pf -l N [-t] -q``; thread (a)
writes all available memory, with ``-t`` a calculation thread counts its progress; the
table has the columns Time-, Calculation-, Time+, Output. ``-`` runs are without APF,
``+`` runs with it; where the target cannot switch APF the ``+`` tests SKIP with the
reason. Scenario A also needs QEMU in a cgroup v2 memory limit with host swap.
"""

from __future__ import annotations

import statistics

import pytest

from apflab.linux import cgroup, workload
from apflab.linux.table import Row, render
from apflab.testing import Unsupported, spec
from testcases.linux.guest import run_workload

WORKLOAD = "APF v4 00/15 workload; docs/reference/apf-seed-results.md"
SCENARIO_A = "APF v4 00/15 scenario A; docs/reference/apf-seed-results.md"
REPS = 3  # runs per configuration
RESULTS: dict[tuple[bool, str], list[workload.WorkloadResult]] = {}  # (calc, "-"/"+") -> runs


def _boot_for(strategy, apf: bool) -> None:
    """Boot the way the column needs: APF off (no-kvmapf) for ``-``, on for ``+``."""
    switchable, reason = strategy.apf_switch()
    if apf and not switchable:
        raise Unsupported(reason)
    if switchable:
        strategy.boot(apf=apf)
    else:
        strategy.transition("shell")  # a kernel without APF: every run is a "-" run


def _record(record_metric, side: str, runs: list[workload.WorkloadResult]) -> None:
    for i, r in enumerate(runs, start=1):
        record_metric(f"time{side}[{i}]", r.time_s, "s")
        if r.threads == 2:
            record_metric(f"calculation{side}[{i}]", r.calc_millions, "Msteps")
    record_metric(f"time{side}.mean", statistics.fmean(r.time_s for r in runs), "s")


def _table(strategy) -> str:
    _, reason = strategy.apf_switch()
    rows = []
    for calc in (False, True):
        minus, plus = RESULTS.get((calc, "-"), []), RESULTS.get((calc, "+"), [])
        rows += [Row(m, plus[i] if i < len(plus) else None) for i, m in enumerate(minus)]
    title = f"async_pf -l 1 [-t] -q on {strategy.target.name} ({strategy.accelerator}, {strategy.qemu.memory})"
    return render(rows, title, plus_skip=reason)


@spec(WORKLOAD, "async_pf prints one result line with job time, calculation count, major faults and APF count")
def test_result_line(linux) -> None:
    out = linux.command.run_check(workload.command(passes=2, mem_mb=32, calc=True, quiet=False))
    text = "\n".join(out)
    result = workload.parse(text)
    assert (result.passes, result.mem_mb, result.threads) == (2, 32, 2)
    assert workload.passes_seen(text) == [1, 2], "one progress line per pass"
    assert result.calc > 0, "-t runs the calculation thread"
    assert result.majflt == 0, "the guest has no swap and no disk: anonymous memory never major-faults"
    if not linux.apf_switch()[0]:
        assert result.apf is None, "a kernel without the APF series exposes no APF count"


@pytest.mark.parametrize("calc", [False, True], ids=["plain", "t"])
@spec(WORKLOAD, "- columns: the job's wall time and the calculation count without APF, several runs")
def test_minus(linux_strategy, calc: bool, record_metric, show_table) -> None:
    strategy = linux_strategy
    _boot_for(strategy, apf=False)
    runs = [run_workload(strategy, passes=1, calc=calc) for _ in range(REPS)]
    RESULTS[(calc, "-")] = runs
    _record(record_metric, "-", runs)
    for r in runs:
        assert r.passes == 1 and r.time_s > 0
        assert (r.calc > 0) == calc, "only -t runs the calculation thread"
    show_table("workload", _table(strategy))


@pytest.mark.parametrize("calc", [False, True], ids=["plain", "t"])
@spec(WORKLOAD, "+ columns: the same runs with APF on (a kernel with the APF series, without no-kvmapf)")
def test_plus(linux_strategy, calc: bool, record_metric, show_table) -> None:
    strategy = linux_strategy
    _boot_for(strategy, apf=True)
    runs = [run_workload(strategy, passes=1, calc=calc) for _ in range(REPS)]
    RESULTS[(calc, "+")] = runs
    _record(record_metric, "+", runs)
    assert all(r.apf is not None for r in runs), "an APF kernel exposes its APF count"
    show_table("workload", _table(strategy))


@spec(WORKLOAD, "without APF the calculation thread takes the single vCPU from the job: -t runs take longer")
def test_calculation_costs_time_without_apf(linux_strategy) -> None:
    plain, with_t = RESULTS.get((False, "-")), RESULTS.get((True, "-"))
    if not plain or not with_t:
        pytest.skip("needs both test_minus runs")
    assert statistics.fmean(r.time_s for r in with_t) > statistics.fmean(r.time_s for r in plain)


@pytest.mark.parametrize("calc", [False, True], ids=["plain", "t"])
@spec(SCENARIO_A, "1 vCPU, 1024 MB guest, QEMU in a cgroup v2 limited to 512 MB, -l 1: heavy swap-in")
def test_scenario_a(linux_strategy, calc: bool, record_metric, show_table) -> None:
    strategy = linux_strategy
    where = cgroup.support()
    if not where.ok:
        raise Unsupported(f"scenario A needs QEMU in a cgroup v2 memory limit: {where.reason}")
    assert where.root is not None
    group = cgroup.MemoryCgroup(where.root, f"apflab-scenario-a-{strategy.target.name}", 512 << 20).create()
    switchable, _ = strategy.apf_switch()
    try:
        rows = {}
        for side, apf in (("-", False), ("+", True)):
            if side == "+" and not switchable:
                continue
            strategy.boot(memory="1024M", apf=apf if switchable else None, cgroup=group.path)
            rows[side] = [run_workload(strategy, passes=1, calc=calc) for _ in range(REPS)]
            _record(record_metric, side, rows[side])
    finally:
        strategy.transition("off")
        group.remove()
    minus, plus = rows["-"], rows.get("+", [])
    _, reason = strategy.apf_switch()
    table = render(
        [Row(m, plus[i] if i < len(plus) else None) for i, m in enumerate(minus)],
        f"scenario A ({'-t' if calc else 'no -t'})",
        plus_skip=reason,
    )
    show_table(f"scenario A {'-t' if calc else 'plain'}", table)
    assert all(r.mem_mb > 512 for r in minus), "the guest writes more than the cgroup lets QEMU keep"
