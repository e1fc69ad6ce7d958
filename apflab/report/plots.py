"""Plots of the performance tables (matplotlib, headless): time and calculation per run, -/+ APF.

One PNG per table: time per run without and with APF for each configuration, the
calculation thread's progress where it ran, and for a migration scenario the post-copy
request count. matplotlib is imported only when a report has performance data, so a
conformance-only report does not pay its start-up.
"""

from __future__ import annotations

import io

from apflab.report.perfdata import CONFIGS, PerfTable

MINUS, PLUS = "#8c8c8c", "#1f6fb2"


def _bars(ax, labels: list[str], minus: list[float], plus: list[float], title: str, unit: str) -> None:
    xs = range(len(labels))
    width = 0.38
    ax.bar([x - width / 2 for x in xs], minus, width, color=MINUS, label="without APF")
    ax.bar([x + width / 2 for x in xs], plus, width, color=PLUS, label="with APF")
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit, fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def table_plot(table: PerfTable) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    rows = table.rows()
    labels = [f"#{run}\n{'-t' if cfg == 't' else 'no -t'}" for cfg, run, _ in rows]
    calc = [(lbl, v) for lbl, (_, _, v) in zip(labels, rows, strict=True) if "calc_minus" in v and "calc_plus" in v]
    requests = [
        (
            f"#{run}\n{'-t' if cfg == 't' else 'no -t'}",
            per_side["minus"].get("postcopy_requests", 0.0),
            per_side["plus"].get("postcopy_requests", 0.0),
        )
        for cfg in CONFIGS
        for run, per_side in sorted(table.migration.get(cfg, {}).items())
        if "minus" in per_side and "plus" in per_side
    ]
    panels = 1 + bool(calc) + bool(requests)
    fig = Figure(figsize=(4.4 * panels, 3.8), dpi=100, layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    minus = [v.get("time_minus", 0.0) for _, _, v in rows]
    _bars(axes[0], labels, minus, [v.get("time_plus", 0.0) for _, _, v in rows], "job time", "s")
    i = 1
    if calc:
        _bars(
            axes[i],
            [lbl for lbl, _ in calc],
            [v["calc_minus"] for _, v in calc],
            [v["calc_plus"] for _, v in calc],
            "calculation",
            "million steps",
        )
        i += 1
    if requests:
        _bars(
            axes[i],
            [label for label, _, _ in requests],
            [m for _, m, _ in requests],
            [p for _, _, p in requests],
            "post-copy requests",
            "requests",
        )
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="outside lower center", ncols=2)
    fig.suptitle(f"{table.scenario} ({', '.join(table.targets)})", fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
