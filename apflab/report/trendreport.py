"""trend.html and trend.md: a :class:`~apflab.report.trend.Trend` as people read it.

Rendered with the report's templates and escaping (apflab.report.build), written
atomically with the plots beside the Markdown, the HTML self-contained, as the report is.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import apflab
from apflab.report.build import environment, write_files
from apflab.report.matrix import Cell
from apflab.report.trend import PLOTTED, Night, Trend
from apflab.report.trendplots import relative, trend_plot


@dataclass
class FigureRow:
    name: str
    unit: str
    values: list[str]
    moved: list[bool]
    changes: list[str]  # against the run before, where both have it


@dataclass
class TargetView:
    target: str
    plot_file: str
    plot_b64: str
    headline: list[FigureRow]
    others: list[FigureRow]


@dataclass
class TrendView:
    title: str
    generated: str
    version: str
    trend: Trend
    rows: list[tuple[Night, list[Cell | None]]]
    targets: list[TargetView] = field(default_factory=list)
    plots: dict[str, bytes] = field(default_factory=dict)


def sig(v: float | None) -> str:
    """Five significant digits: enough to see a moved figure, short enough for a table."""
    return "" if v is None else format(v, ",.5g")


def _row(trend: Trend, target: str, name: str) -> FigureRow:
    values = trend.series(target, name)
    changes = [""]
    for x, y in pairwise(values):
        changes.append(f"{(y / x - 1) * 100:+.1f}%" if x and y is not None and y != x else "")
    return FigureRow(name, trend.unit(target, name), [sig(v) for v in values], trend.moved(target, name), changes)


def _spread(values: list[float | None]) -> float:
    rel = [v for v in relative(values) if v is not None]
    return max(rel) - min(rel) if rel else 0.0


def target_view(trend: Trend, target: str) -> TargetView:
    headline = trend.headline(target)
    moving = sorted(headline, key=lambda n: -_spread(trend.series(target, n)))
    lines = {n: trend.series(target, n) for n in moving[:PLOTTED] if _spread(trend.series(target, n)) > 0}
    counts = [dict(n.counts.get(target, {})) for n in trend.nights]
    png = trend_plot(target, [n.label for n in trend.nights], counts, lines)
    rows = [_row(trend, target, n) for n in trend.figure_names(target)]
    name = f"plots/trend-{trend.targets.index(target) + 1}.png"
    return TargetView(target, name, base64.b64encode(png).decode("ascii"), rows[: len(headline)], rows[len(headline) :])


def make_view(trend: Trend, title: str) -> TrendView:
    rows = []
    for night in trend.nights:
        cells: list[Cell | None] = []
        for t in trend.targets:
            counts = night.counts.get(t)
            cells.append(Cell(counts=counts) if counts else None)
        rows.append((night, cells))
    view = TrendView(title, time.strftime("%Y-%m-%d %H:%M:%S %z"), apflab.__version__, trend, rows)
    view.targets = [target_view(trend, t) for t in trend.targets]
    view.plots = {v.plot_file: base64.b64decode(v.plot_b64) for v in view.targets}
    return view


def write_trend(trend: Trend, out: Path, title: str = "apflab trend") -> tuple[Path, Path]:
    view = make_view(trend, title)
    env = environment()
    html = env.get_template("trend.html.j2").render(t=view)
    markdown = env.get_template("trend.md.j2").render(t=view)
    files = {**view.plots, "trend.md": markdown.encode("utf-8"), "trend.html": html.encode("utf-8")}
    write_files(out, files, "the trend")
    return out / "trend.html", out / "trend.md"
