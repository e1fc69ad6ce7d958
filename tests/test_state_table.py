"""The model's state table against the table printed in shared/reference/abi.md 2.5."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from apflab.model.state_table import COLUMNS, TABLE, Outcome, State

ABI = Path(__file__).resolve().parents[2] / "shared" / "reference" / "abi.md"


def test_table_shape() -> None:
    assert set(TABLE) == set(State)
    assert all(set(row) == set(COLUMNS) for row in TABLE.values())
    assert len(COLUMNS) == 10


def test_table_matches_abi_md() -> None:
    if not ABI.exists():
        pytest.skip(f"{ABI} is not beside this checkout (it is in the project's shared folder)")
    text = ABI.read_text()
    section = text[text.index("### 2.5") : text.index("### 2.6")]
    rows = [line for line in section.splitlines() if re.match(r"\| (reg|reG|rEG|ReG|REG|Reg) ", line)]
    assert len(rows) == 6
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        state = State[cells[0].split()[0]]
        for action, cell in zip(COLUMNS, cells[1:], strict=True):
            got = TABLE[state][action]
            want = Outcome.DENY if cell == "X" else Outcome.NOP if cell == "=" else State[cell.removeprefix("→")]
            assert got == want, f"{state.name} x {action.name}: model {got}, abi.md {cell}"
