"""A target's trend as one PNG: verdicts per run, and the figures that moved most.

Left, the cases of each run stacked by verdict (the matrix's colours); right, each
plotted figure as its change against the first run that has it, in percent, so seconds,
megabytes and counts share one axis. The figures plotted are the headline ones
(apflab.report.trend.HEADLINE) that moved most over the runs; a flat line says nothing.
"""

from __future__ import annotations

import io

from apflab.report.matrix import SEVERITY

COLOURS = {
    "PASS": "#2e7d32",
    "FAIL": "#c62828",
    "KFAIL": "#ef6c00",
    "SKIP": "#9e9e9e",
    "XFAIL": "#6a1b9a",
    "XPASS": "#ad1457",
}


def relative(values: list[float | None]) -> list[float | None]:
    """Each value as its change in percent against the first one there is (None: no value)."""
    base = next((v for v in values if v is not None), None)
    if not base:
        return [None if v is None else 0.0 for v in values]
    return [None if v is None else (v / base - 1.0) * 100.0 for v in values]


def trend_plot(
    title: str, labels: list[str], counts: list[dict[str, int]], lines: dict[str, list[float | None]]
) -> bytes:
    """``counts``: per run, verdict -> cases; ``lines``: figure -> its values per run."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.5, 3.9), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.5]})
    xs = list(range(len(labels)))
    bottom = [0] * len(labels)
    for verdict in reversed(SEVERITY):  # PASS at the bottom, failures on top
        heights = [c.get(verdict, 0) for c in counts]
        if any(heights):
            left.bar(xs, heights, 0.6, bottom=bottom, color=COLOURS[verdict], label=verdict)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    left.set_title("cases per verdict", fontsize=10)
    left.set_xticks(xs, labels, fontsize=7, rotation=20, ha="right")
    left.tick_params(axis="y", labelsize=8)
    left.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    for name, values in lines.items():
        points = [(x, v) for x, v in zip(xs, relative(values), strict=True) if v is not None]
        if points:
            right.plot([x for x, _ in points], [v for _, v in points], marker="o", markersize=3, label=name)
    right.axhline(0.0, color="#888", linewidth=0.8)
    right.set_title("figures: change against the first run", fontsize=10)
    right.set_ylabel("%", fontsize=9)
    right.set_xticks(xs, labels, fontsize=7, rotation=20, ha="right")
    right.tick_params(axis="y", labelsize=8)
    right.grid(alpha=0.3)
    if lines:
        right.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title, fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
