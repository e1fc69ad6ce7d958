"""Scenario A (heavy swap-in) reproduced by the performance model, against the published table.

APF v4 00/15, scenario A (docs/reference/apf-seed-results.md): 1 vCPU, 1024 MB guest, QEMU in a 512 MB cgroup, ``-l 1``.
The bands and ranges below are the published numbers; the model's parameters are
physical quantities (docs/perf-model.md), six of them calibrated on the published means.
"""

from __future__ import annotations

from statistics import mean

from apflab.testing import spec

SECTION = "APF v4 00/15 scenario A; docs/reference/apf-seed-results.md"


@spec(SECTION, "without -t, APF costs +5.0..+6.4% time (nothing else can run while a fault is resolved)")
def test_apf_cost_without_calculation(simulated) -> None:
    result = simulated("scenario-a")
    change = mean(r.time_change_pct for r in result.group(False))
    assert 5.0 <= change <= 6.4, f"mean Output without -t: {change:+.2f}%"


@spec(SECTION, "with -t, APF saves 36..42% time: the calculation thread runs while faults are resolved")
def test_apf_gain_with_calculation(simulated) -> None:
    result = simulated("scenario-a")
    change = mean(r.time_change_pct for r in result.group(True))
    assert -42.0 <= change <= -36.0, f"mean Output with -t: {change:+.2f}%"


@spec(SECTION, "about 55,000 asynchronous page faults")
def test_async_fault_count(simulated) -> None:
    result = simulated("scenario-a")
    for row in result.rows:
        assert 52_250 <= row.plus.async_faults <= 57_750, f"{row.plus.async_faults} asynchronous faults (55,000 +- 5%)"
        assert row.minus.async_faults == 0, "without APF no fault is asynchronous"


@spec(
    SECTION,
    "the times lie in the published ranges: 13.2..13.6 s / 14.1..14.3 s without -t, 24.0..27.2 s / "
    "15.3..15.9 s with -t",
)
def test_times_in_published_ranges(simulated) -> None:
    result = simulated("scenario-a")
    ranges = {False: ((13.214, 13.553), (14.072, 14.328)), True: ((24.016, 27.236), (15.294, 15.862))}
    for calc, ((lo_m, hi_m), (lo_p, hi_p)) in ranges.items():
        rows = result.group(calc)
        minus, plus = mean(r.minus.time_s for r in rows), mean(r.plus.time_s for r in rows)
        assert lo_m <= minus <= hi_m, f"-t={calc}: mean Time- {minus:.3f} s outside {lo_m}..{hi_m}"
        assert lo_p <= plus <= hi_p, f"-t={calc}: mean Time+ {plus:.3f} s outside {lo_p}..{hi_p}"


@spec(SECTION, "with -t the calculation reports progress (1806m..2278m without APF)")
def test_calculation_without_apf(simulated) -> None:
    result = simulated("scenario-a")
    calc = mean(r.minus.calc_steps for r in result.group(True)) / 1e6
    assert 1806 <= calc <= 2278, f"mean Calculation- {calc:.0f}m"
