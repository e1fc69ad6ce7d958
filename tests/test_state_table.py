"""The model's state table against the transcription in docs/reference/sdei-states.md."""

from __future__ import annotations

import re

from apflab.model.state_table import COLUMNS, TABLE, Outcome, State
from tests.conftest import ROOT

PAGE = ROOT / "docs" / "reference" / "sdei-states.md"


def test_table_shape() -> None:
    assert set(TABLE) == set(State)
    assert all(set(row) == set(COLUMNS) for row in TABLE.values())
    assert len(COLUMNS) == 10


def test_table_matches_the_reference_page() -> None:
    text = PAGE.read_text()
    header = next(line for line in text.splitlines() if line.startswith("| State \\ call"))
    names = [c.strip() for c in header.strip("|").split("|")][1:]
    assert names == [a.name.replace("DISPATCH", "dispatch") for a in COLUMNS]
    rows = [line for line in text.splitlines() if re.match(r"\| (reg|reG|rEG|ReG|REG|Reg) \|", line)]
    assert len(rows) == 6
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        state = State[cells[0]]
        for action, cell in zip(COLUMNS, cells[1:], strict=True):
            got = TABLE[state][action]
            want = Outcome.DENY if cell == "X" else Outcome.NOP if cell == "=" else State[cell.removeprefix("→")]
            assert got == want, f"{state.name} x {action.name}: model {got}, docs/reference/sdei-states.md {cell}"
