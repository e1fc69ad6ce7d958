"""The seed's workload table: Time-, Calculation-, Time+, Output (docs/reference/apf-seed-results.md).

``-`` columns are runs without APF, ``+`` columns with APF; Output is the relative
change of time (and of calculation where both sides have one). Where the target cannot
switch APF, the ``+`` cells say ``skip`` and the reason is given under the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from apflab.linux.workload import WorkloadResult

COLUMNS = ("Time-", "Calculation-", "Time+", "Output")


@dataclass
class Row:
    minus: WorkloadResult | None
    plus: WorkloadResult | None = None


def _time(r: WorkloadResult | None) -> str:
    return "" if r is None else f"{r.time_s:.3f} s"


def _calc(r: WorkloadResult | None) -> str:
    return "" if r is None or r.threads < 2 else f"{r.calc_millions}m"


def output(row: Row) -> str:
    """Relative change of time from ``-`` to ``+`` (e.g. ``-36.3%``); empty when a side is missing.

    Cut (not rounded) to one decimal, as the seed's table does: 13.214 s -> 14.072 s is +6.49%,
    printed ``+6.4%``.
    """
    if row.minus is None or row.plus is None or row.minus.time_s <= 0:
        return ""
    change = (row.plus.time_s - row.minus.time_s) / row.minus.time_s * 100.0
    tenths = math.trunc(round(change * 10, 6))
    return f"{'-' if tenths < 0 else '+'}{abs(tenths) // 10}.{abs(tenths) % 10}%"


def render(rows: list[Row], title: str = "", plus_skip: str = "", notes: list[str] | None = None) -> str:
    """A Markdown table with the seed's columns; ``plus_skip`` is why the ``+`` columns were skipped."""
    lines = [f"{title}", ""] if title else []
    lines += ["| " + " | ".join(COLUMNS) + " |", "|---|---|---|---|"]
    for row in rows:
        plus = "skip" if row.plus is None and plus_skip else _time(row.plus)
        lines.append(f"| {_time(row.minus)} | {_calc(row.minus)} | {plus} | {output(row)} |")
    if plus_skip:
        lines += ["", f"`+` columns skipped: {plus_skip}"]
    for note in notes or []:
        lines.append(note)
    return "\n".join(lines)
