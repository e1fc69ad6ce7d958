"""The conformance matrix: spec section x target/profile, each cell the verdicts and their reasons.

A cell shows how many of the section's testcases ended in each verdict on that target,
worst first, and the distinct reasons of the KFAIL, SKIP, XFAIL and FAIL ones (a KFAIL's
reason names the deviation of the profile that predicts it).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from apflab.report.load import Case

#: worst first: what a cell's colour follows
SEVERITY = ("FAIL", "XPASS", "KFAIL", "XFAIL", "SKIP", "PASS")
WITH_REASON = ("FAIL", "XPASS", "KFAIL", "XFAIL", "SKIP")
NO_SECTION = "(no spec section)"
MAX_REASONS = 6


@dataclass
class Cell:
    counts: Counter[str] = field(default_factory=Counter)
    reasons: dict[str, list[str]] = field(default_factory=dict)

    @property
    def worst(self) -> str:
        return next(v for v in SEVERITY if self.counts.get(v))

    def entries(self) -> list[tuple[str, int]]:
        return [(v, self.counts[v]) for v in SEVERITY if self.counts.get(v)]


@dataclass
class Row:
    section: str
    cells: list[Cell | None]


@dataclass
class Matrix:
    columns: list[tuple[str, str]]  # (target, profile)
    rows: list[Row]

    def column_label(self, i: int) -> str:
        target, profile = self.columns[i]
        return f"{target} ({profile})" if profile else target


def _natural(section: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", section)]


def build_matrix(cases: Iterable[Case], clean: Callable[[str], str]) -> Matrix:
    """``clean`` redacts a reason before it is kept (reasons may quote a console)."""
    cells: dict[tuple[str, tuple[str, str]], Cell] = {}
    columns: dict[tuple[str, str], None] = {}
    for c in cases:
        col = (c.target, c.profile)
        columns.setdefault(col, None)
        cell = cells.setdefault((c.section or NO_SECTION, col), Cell())
        cell.counts[c.verdict] += 1
        if c.verdict in WITH_REASON and c.reason:
            known = cell.reasons.setdefault(c.verdict, [])
            if len(known) < MAX_REASONS and c.reason not in known:
                known.append(c.reason)
    cols = sorted(columns)
    sections = sorted({s for s, _ in cells}, key=_natural)
    rows = [Row(s, [cells.get((s, col)) for col in cols]) for s in sections]
    for row in rows:
        for cell in row.cells:
            if cell is not None:
                cell.reasons = {v: [clean(r) for r in rs] for v, rs in cell.reasons.items()}
    return Matrix(cols, rows)
