"""The published scenario A table (docs/reference/apf-seed-results.md), as data: calibration targets
and bands.

Source: Gavin Shan, KVM Forum 2021 slides and the APF v4 cover letter (2021-08-15).
Scenario B's measured results are deliberately absent from the reference, and from here.
"""

from __future__ import annotations

from statistics import mean

#: Scenario A without -t: (Time-, Time+) in seconds.
A_NO_CALC = ((13.214, 14.072), (13.329, 14.150), (13.433, 14.159), (13.535, 14.222), (13.553, 14.328))

#: Scenario A with -t: (Time-, Calculation- in millions of steps, Time+).
A_CALC = (
    (24.016, 1806, 15.294),
    (24.264, 1826, 15.542),
    (24.579, 1835, 15.616),
    (27.230, 2257, 15.738),
    (27.236, 2278, 15.862),
)

#: "About 55,000 asynchronous page faults."
A_ASYNC_FAULTS = 55_000

#: The bands the seed states: APF costs +5.0..+6.4 % without -t, saves 36..42 % with it.
A_BAND_NO_CALC = (5.0, 6.4)
A_BAND_CALC = (-42.0, -36.0)

#: Scenario B's setup figures the seed gives (its results are not given).
B_MIGRATED_MB = 915
B_PAGE_KB = 4


def targets() -> dict[str, float]:
    """The means the calibration matches."""
    return {
        "time_minus_no_calc": mean(r[0] for r in A_NO_CALC),
        "time_plus_no_calc": mean(r[1] for r in A_NO_CALC),
        "time_minus_calc": mean(r[0] for r in A_CALC),
        "calc_minus_msteps": mean(r[1] for r in A_CALC),
        "time_plus_calc": mean(r[2] for r in A_CALC),
        "async_faults": A_ASYNC_FAULTS,
    }
