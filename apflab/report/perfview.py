"""The report's performance sections: the seed-style tables as the templates show them.

Each :class:`~apflab.report.perfdata.PerfTable` becomes rows of formatted figures, the
lines under the table (mean Output, APF counts, the published bands, the calculation
during the post-copy window) and the migration figures of each half that migrated, so
scenario B's two halves (without and with ``-t``) are never folded into one.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from apflab.report.perfdata import CONFIGS, HEADINGS, MIGRATION_FIGURES, PerfTable

HALF = {"no-t": "without -t", "t": "with -t"}


@dataclass
class PerfSection:
    table: PerfTable
    plot_file: str
    plot_b64: str
    headings: dict[str, str]
    rows: list[dict[str, str]]
    summary: list[str]
    migration_heads: list[str]  # one per (half, side) that has figures
    migration: list[tuple[str, list[str], str]]  # figure, one value per head, unit


def fmt(value: float | None, column: str) -> str:
    """A table figure as the seed prints it: seconds, millions of steps, or a change."""
    if value is None:
        return ""
    if column.startswith("time"):
        return f"{value:.3f} s"
    if column.startswith("calc") or column.startswith("window_calc"):
        return f"{value:.0f}m"
    return f"{value:+.1f}%"


def num(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v:,.0f}" if abs(v) >= 100 or v == int(v) else f"{v:,.2f}"


def _seed_bands(table: PerfTable) -> list[str]:
    if table.scenario != "scenario-a":
        return []
    from apflab.perf import seed

    lo, hi = seed.A_BAND_NO_CALC
    lo_t, hi_t = seed.A_BAND_CALC
    return [
        f"published (APF v4 00/15): without -t +{lo}..+{hi}% time; with -t {lo_t}..{hi_t}% time; "
        f"about {seed.A_ASYNC_FAULTS:,} asynchronous page faults"
    ]


def _window_line(means: dict[str, float]) -> str | None:
    """Scenario B: how much calculation the guest got while post-copy still streamed."""
    minus, plus = means.get("window_calc_minus"), means.get("window_calc_plus")
    if minus is None or plus is None:
        return None
    change = f" ({(plus / minus - 1) * 100:+.1f}%)" if minus else ""
    return (
        f"calculation during the post-copy window: {fmt(minus, 'calc')} without APF, "
        f"{fmt(plus, 'calc')} with APF{change}"
    )


def summary_lines(table: PerfTable) -> list[str]:
    lines = []
    for cfg in CONFIGS:
        means = table.means.get(cfg)
        if not means:
            continue
        line = f"{HALF[cfg]}: mean Output {fmt(means.get('output_time'), 'output')} time"
        if "output_calc" in means:
            line += f", {fmt(means['output_calc'], 'output')} calculation"
        if "async_faults" in means:
            line += f"; asynchronous page faults per run with APF: {means['async_faults']:,.0f}"
        lines.append(line)
        window = _window_line(means)
        if window:
            lines.append(f"{HALF[cfg]}: {window}")
    return lines + _seed_bands(table)


def migration_figures(table: PerfTable) -> tuple[list[str], list[tuple[str, list[str], str]]]:
    """Heads (half and side) and one row per figure; a half shows only if both sides migrated."""
    means = table.migration_means()
    halves = [cfg for cfg in CONFIGS if {"minus", "plus"} <= means.get(cfg, {}).keys()]
    sides = [(cfg, side) for cfg in halves for side in ("minus", "plus")]
    heads = [f"{HALF[cfg]}, {'without' if side == 'minus' else 'with'} APF" for cfg, side in sides]
    if len(halves) == 1:
        heads = [h.split(", ", 1)[1] for h in heads]  # one half: the table's rows already say which
    rows = []
    for key, label, unit in MIGRATION_FIGURES:
        values = [means[cfg][side].get(key) for cfg, side in sides]
        if any(v is not None for v in values):
            rows.append((label, [num(v) for v in values], unit))
    return heads, rows


def perf_section(table: PerfTable, index: int) -> PerfSection:
    from apflab.report.plots import table_plot

    rows = []
    for cfg, run, v in table.rows():
        row = {"config": "-t" if cfg == "t" else "no -t", "run": str(run)}
        row |= {col: fmt(v.get(col), col) for col in HEADINGS}
        rows.append(row)
    heads, migration = migration_figures(table)
    png = table_plot(table)
    name = f"plots/{table.scenario}-{index}.png"
    b64 = base64.b64encode(png).decode("ascii")
    return PerfSection(table, name, b64, HEADINGS, rows, summary_lines(table), heads, migration)
