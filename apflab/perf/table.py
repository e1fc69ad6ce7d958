"""A scenario's result as the seed prints it, and as metrics (name, value, unit).

Metric names are ``perf.<scenario>.<config>.<run>.<column>`` with ``config`` ``no-t`` or
``t`` (the workload's ``-t``) and ``run`` 1..N or ``mean``; apflab.report rebuilds the
seed-style tables and plots from them, so the table and the report cannot disagree.
"""

from __future__ import annotations

from dataclasses import asdict
from statistics import mean

from apflab.perf.scenarios import Row, ScenarioResult

#: column -> unit, in the seed's order
COLUMNS = {
    "time_minus": "s",
    "calc_minus": "Msteps",
    "time_plus": "s",
    "calc_plus": "Msteps",
    "output_time": "%",
    "output_calc": "%",
}

MIGRATION_UNITS = {
    "total_time_ms": "ms",
    "downtime_ms": "ms",
    "setup_ms": "ms",
    "transferred_mb": "MB",
    "throughput_mbps": "Mbit/s",
    "dirty_sync_count": "count",
    "page_size": "B",
    "pages_per_second": "pages/s",
    "postcopy_requests": "count",
}


def config_name(calc_thread: bool) -> str:
    return "t" if calc_thread else "no-t"


def row_values(row: Row) -> dict[str, float | None]:
    return {
        "time_minus": row.minus.time_s,
        "calc_minus": row.minus.calc_steps / 1e6 if row.calc_thread else None,
        "time_plus": row.plus.time_s,
        "calc_plus": row.plus.calc_steps / 1e6 if row.calc_thread else None,
        "output_time": row.time_change_pct,
        "output_calc": row.calc_change_pct if row.calc_thread else None,
    }


def metrics(result: ScenarioResult) -> list[tuple[str, float, str]]:
    """Every figure of the table, the APF counts and the migration figures."""
    out: list[tuple[str, float, str]] = []
    base = f"perf.{result.name}"
    for calc in (False, True):
        rows = result.group(calc)
        if not rows:
            continue
        cfg = f"{base}.{config_name(calc)}"
        columns: dict[str, list[float]] = {}
        for i, row in enumerate(rows, 1):
            for col, value in row_values(row).items():
                if value is not None:
                    out.append((f"{cfg}.{i}.{col}", round(value, 6), COLUMNS[col]))
                    columns.setdefault(col, []).append(value)
            if row.migration_minus and row.migration_plus:
                for side, stats in (("minus", row.migration_minus), ("plus", row.migration_plus)):
                    for key, value in asdict(stats).items():
                        out.append((f"{cfg}.{i}.migration_{side}.{key}", round(float(value), 3), MIGRATION_UNITS[key]))
        for col, values in columns.items():
            out.append((f"{cfg}.mean.{col}", round(mean(values), 6), COLUMNS[col]))
        out.append((f"{cfg}.mean.async_faults", mean(r.plus.async_faults for r in rows), "count"))
        for side in ("minus", "plus"):
            window = [getattr(r, side).window_calc_steps for r in rows]
            if calc and None not in window:
                out.append((f"{cfg}.mean.window_calc_{side}", round(mean(window) / 1e6, 6), "Msteps"))
    return out


def _time(v: float) -> str:
    return f"{v:.3f} s"


def _calc(v: float | None) -> str:
    return f"{v:.0f}m" if v is not None else ""


def _output(row: Row) -> str:
    text = f"{row.time_change_pct:+.1f}%"
    if row.calc_change_pct is not None and row.calc_thread:
        text += f" / {row.calc_change_pct:+.1f}%"
    return text


def format_table(result: ScenarioResult) -> str:
    """The seed's table: Time-, Calculation-, Time+, Calculation+, Output, then the means."""
    head = ("Time-", "Calculation-", "Time+", "Calculation+", "Output")
    lines = [result.title, ""]
    body: list[tuple[str, ...]] = []
    for row in result.rows:
        v = row_values(row)
        body.append(
            (
                _time(row.minus.time_s),
                _calc(v["calc_minus"]),
                _time(row.plus.time_s),
                _calc(v["calc_plus"]),
                _output(row),
            )
        )
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(head)]
    fmt = " | ".join(f"{{:>{w}}}" for w in widths)
    lines.append(fmt.format(*head))
    lines.append("-+-".join("-" * w for w in widths))
    lines += [fmt.format(*r) for r in body]
    lines.append("")
    for calc in (False, True):
        rows = result.group(calc)
        if not rows:
            continue
        label = "with -t" if calc else "without -t"
        faults = mean(r.plus.async_faults for r in rows)
        line = f"{label}: mean Output {result.mean_change(calc):+.1f}% time"
        if calc:
            line += f", {mean(r.calc_change_pct or 0.0 for r in rows):+.1f}% calculation"
        line += f"; asynchronous page faults per run: {faults:,.0f}"
        lines.append(line)
        window = [r for r in rows if r.minus.window_calc_steps is not None and r.plus.window_calc_steps is not None]
        if calc and window:
            m = mean(r.minus.window_calc_steps or 0.0 for r in window) / 1e6
            p = mean(r.plus.window_calc_steps or 0.0 for r in window) / 1e6
            change = f" ({(p / m - 1) * 100:+.1f}%)" if m else ""
            lines.append(f"  calculation during the post-copy window: {m:.0f}m without APF, {p:.0f}m with APF{change}")
    for calc in (False, True):
        migration = [(r.migration_minus, r.migration_plus) for r in result.group(calc)]
        if not migration or any(a is None or b is None for a, b in migration):
            continue
        label = "with -t" if calc else "without -t"
        lines.append("")
        lines.append(f"migration {label} (query-migrate, mean of runs)   without APF   with APF")
        for key, unit in MIGRATION_UNITS.items():
            m = mean(getattr(a, key) for a, _ in migration)
            p = mean(getattr(b, key) for _, b in migration)
            lines.append(f"  {key:<43} {m:>11,.1f}   {p:>8,.1f} {unit}")
    return "\n".join(lines)
