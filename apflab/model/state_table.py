"""The SDEI handler state machine, written as data.

DEN0054A section 6.1 / 6.1.2 as Trusted Firmware-A encodes it in
``services/std_svc/sdei/sdei_state.c`` (docs/reference/sdei-states.md): six reachable states, named by
TF-A's mnemonics (R = running, E = enabled, G = registered; upper case = set), and ten
actions. Each cell is DENY (the call fails), NOP (allowed, no change) or the new state.
"""

from __future__ import annotations

import enum
from typing import Final


class State(enum.Enum):
    """Handler states; the value is the EVENT_STATUS bitmap (bit0 G, bit1 E, bit2 R)."""

    reg = 0b000
    reG = 0b001
    rEG = 0b011
    Reg = 0b100
    ReG = 0b101
    REG = 0b111

    @property
    def registered(self) -> bool:
        return bool(self.value & 0b001)

    @property
    def enabled(self) -> bool:
        return bool(self.value & 0b010)

    @property
    def running(self) -> bool:
        return bool(self.value & 0b100)


class Action(enum.Enum):
    REGISTER = "REGISTER"
    RELEASE = "RELEASE"
    ENABLE = "ENABLE"
    DISABLE = "DISABLE"
    UNREGISTER = "UNREGISTER"
    ROUTING_SET = "ROUTING_SET"
    CONTEXT = "CONTEXT"
    COMPLETE = "COMPLETE"
    COMPLETE_AND_RESUME = "COMPLETE_AND_RESUME"
    DISPATCH = "DISPATCH"


class Outcome(enum.Enum):
    DENY = "X"
    NOP = "="


Cell = State | Outcome

# Short names so each row reads like a row of TF-A's table: X denies, = is a no-op.
X = Outcome.DENY
N = Outcome.NOP
reg, reG, rEG, Reg, ReG, REG = State.reg, State.reG, State.rEG, State.Reg, State.ReG, State.REG

#: Columns in the order of TF-A's table (docs/reference/sdei-states.md).
COLUMNS: Final = (
    Action.REGISTER,
    Action.RELEASE,
    Action.ENABLE,
    Action.DISABLE,
    Action.UNREGISTER,
    Action.ROUTING_SET,
    Action.CONTEXT,
    Action.COMPLETE,
    Action.COMPLETE_AND_RESUME,
    Action.DISPATCH,
)

#: State x action -> outcome. Rows transcribe DEN0054A 6.1.2 / sdei_state.c cell by cell.
# fmt: off
_ROWS: Final[dict[State, tuple[Cell, ...]]] = {
    #      REGISTER RELEASE ENABLE  DISABLE UNREG   ROUTING CONTEXT COMPL   C_AND_R DISPATCH
    reg: (reG,     N,      X,      X,      X,      X,      X,      X,      X,      X),
    reG: (X,       X,      rEG,    N,      reg,    N,      X,      X,      X,      X),
    rEG: (X,       X,      N,      reG,    reg,    X,      X,      X,      X,      REG),
    ReG: (X,       X,      REG,    N,      Reg,    X,      N,      reG,    reG,    X),
    REG: (X,       X,      N,      ReG,    Reg,    X,      N,      rEG,    rEG,    X),
    Reg: (X,       X,      X,      X,      X,      X,      N,      reg,    reg,    X),
}
# fmt: on

TABLE: Final[dict[State, dict[Action, Cell]]] = {
    state: dict(zip(COLUMNS, row, strict=True)) for state, row in _ROWS.items()
}


def transition(state: State, action: Action) -> State | None:
    """The state after ``action``, or None when the table denies it."""
    cell = TABLE[state][action]
    if cell is Outcome.DENY:
        return None
    if cell is Outcome.NOP:
        return state
    return cell
