"""The conformance matrix: what is tested x target/profile, at a glance and down to a case.

Three levels, each a row of cells (one per target and profile): an area (a suite: the
SDEI calls, the state table, dispatch, APF, migration, ...), the primary citation inside
it (``DEN0054C 5.1.7``), and each case. A cell counts the cases in each verdict; the
reasons of the KFAIL, SKIP, XFAIL and FAIL ones are kept once each, numbered as
footnotes in the order the rows show them, so a reason shared by a hundred cases is
written once (a KFAIL's reason names the deviation of the profile that predicts it).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from apflab.report.areas import area_of, call_name, natural_key, primary_citation, reference_page
from apflab.report.load import Case

#: worst first: what a cell's colour follows
SEVERITY = ("FAIL", "XPASS", "KFAIL", "XFAIL", "SKIP", "PASS")
WITH_REASON = ("FAIL", "XPASS", "KFAIL", "XFAIL", "SKIP")


@dataclass
class Cell:
    counts: Counter[str] = field(default_factory=Counter)
    notes: list[int] = field(default_factory=list)  # footnote numbers, in order
    _raw: list[tuple[str, str]] = field(default_factory=list, repr=False)  # (verdict, reason) seen

    def add(self, case: Case) -> None:
        self.counts[case.verdict] += 1
        if case.verdict in WITH_REASON and case.reason and (case.verdict, case.reason) not in self._raw:
            self._raw.append((case.verdict, case.reason))

    def merge(self, other: Cell) -> None:
        self.counts.update(other.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def worst(self) -> str:
        return next(v for v in SEVERITY if self.counts.get(v))

    def entries(self) -> list[tuple[str, int]]:
        return [(v, self.counts[v]) for v in SEVERITY if self.counts.get(v)]

    def bar(self) -> list[tuple[str, float]]:
        """(verdict, percent of the cell's cases), worst first: the cell's coloured bar."""
        total = self.total
        return [(v, round(n * 100.0 / total, 2)) for v, n in self.entries()]

    def tooltip(self) -> str:
        return ", ".join(f"{v} {n}" for v, n in self.entries())


@dataclass
class CaseRow:
    test_id: str
    name: str
    claim: str
    anchor: str
    cells: list[Cell | None]

    @property
    def passed_everywhere(self) -> bool:
        return all(c is None or c.worst == "PASS" for c in self.cells)


@dataclass
class SectionRow:
    citation: str
    call: str
    link: str | None  # page.md#anchor under docs/reference/
    anchor: str
    cells: list[Cell | None]
    cases: list[CaseRow]
    href: str | None = None  # the link as the report's reader follows it (apflab.report.build)


@dataclass
class Group:
    title: str
    anchor: str
    cells: list[Cell | None]
    rows: list[SectionRow]

    @property
    def size(self) -> int:
        return len({c.test_id for r in self.rows for c in r.cases})


@dataclass
class Matrix:
    columns: list[tuple[str, str]]  # (target, profile)
    groups: list[Group]
    totals: list[Cell | None]
    reasons: list[tuple[int, str, str]] = field(default_factory=list)  # number, verdict, text

    def column_label(self, i: int) -> str:
        target, profile = self.columns[i]
        return f"{target} ({profile})" if profile else target

    @property
    def rows(self) -> list[SectionRow]:
        return [r for g in self.groups for r in g.rows]

    @property
    def case_count(self) -> int:
        return sum(g.size for g in self.groups)


def anchor(kind: str, *parts: str) -> str:
    """A stable HTML id: the same case has the same id in every build (links survive)."""
    digest = hashlib.blake2s("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()
    return f"{kind}-{digest}"


def _sum(cells: Iterable[list[Cell | None]], width: int) -> list[Cell | None]:
    out: list[Cell | None] = [None] * width
    for row in cells:
        for i, cell in enumerate(row):
            if cell is not None:
                if out[i] is None:
                    out[i] = Cell()
                out[i].merge(cell)  # type: ignore[union-attr]
    return out


def _number_reasons(matrix: Matrix, clean: Callable[[str], str]) -> None:
    """Footnotes in the order the page shows the cases; each distinct reason once."""
    numbers: dict[tuple[str, str], int] = {}
    cleaned: dict[str, str] = {}  # the redactor once per distinct reason, not per cell
    for group in matrix.groups:
        for row in group.rows:
            for case in row.cases:
                for cell in case.cells:
                    if cell is None:
                        continue
                    for verdict, reason in cell._raw:
                        if reason not in cleaned:
                            cleaned[reason] = clean(reason)
                        key = (verdict, cleaned[reason])
                        if key not in numbers:
                            numbers[key] = len(numbers) + 1
                            matrix.reasons.append((numbers[key], *key))
                        cell.notes.append(numbers[key])
                    cell._raw = []


def build_matrix(cases: Iterable[Case], clean: Callable[[str], str]) -> Matrix:
    """``clean`` redacts and bounds a reason before it is kept (reasons may quote a console)."""
    columns: dict[tuple[str, str], None] = {}
    # area -> citation -> test id -> column -> cell
    tree: dict[tuple, dict[str, dict[str, dict[tuple[str, str], Cell]]]] = {}
    sections: dict[tuple[tuple, str], str] = {}  # (area, citation) -> a full @spec section
    claims: dict[str, tuple[str, str]] = {}  # test id -> (name, claim)
    for c in cases:
        col = (c.target, c.profile)
        columns.setdefault(col, None)
        area = area_of(c.classname)
        citation = primary_citation(c.section)
        area_key = (*area.order, area.title)
        sections.setdefault((area_key, citation), c.section)
        per_case = tree.setdefault(area_key, {}).setdefault(citation, {})
        per_case.setdefault(c.test_id, {}).setdefault(col, Cell()).add(c)
        claims.setdefault(c.test_id, (c.name, c.claim))
    cols = sorted(columns)
    groups = []
    for area_key in sorted(tree):
        title = area_key[-1]
        rows = []
        for citation in sorted(tree[area_key], key=natural_key):
            case_rows = []
            for test_id in sorted(tree[area_key][citation], key=natural_key):
                by_col = tree[area_key][citation][test_id]
                name, claim = claims[test_id]
                case_rows.append(
                    CaseRow(test_id, name, clean(claim), anchor("c", test_id), [by_col.get(col) for col in cols])
                )
            link = reference_page(sections[(area_key, citation)])
            cells = _sum((r.cells for r in case_rows), len(cols))
            rows.append(SectionRow(citation, call_name(citation), link, anchor("s", title, citation), cells, case_rows))
        groups.append(Group(title, anchor("g", title), _sum((r.cells for r in rows), len(cols)), rows))
    matrix = Matrix(cols, groups, _sum((g.cells for g in groups), len(cols)))
    _number_reasons(matrix, clean)
    return matrix
