"""What a testcase imports: the spec marker, the Guest vocabulary, and Known deviations.

from apflab.testing import spec, Known, Handler, Call

@spec("DEN0054C 5.1.3", "Enabling an enabled event is permitted and has no effect")
def test_enable_twice(guest, expect, event): ...
"""

from __future__ import annotations

from typing import NoReturn

import pytest

from apflab.guest import (
    Call,
    CallResult,
    Delivery,
    EventInfo,
    Fault,
    Guest,
    Handler,
    Inject,
    Irq,
    Read32,
    Snapshot,
    TargetError,
    TargetInfo,
    Tick,
    Unsupported,
    Vevent,
    Write32,
)
from apflab.verdict import WEDGED, Expect, Known


def not_applicable(guest: Guest, reason: str) -> NoReturn:
    """SKIP a case that does not apply to this target (not a missing capability: a property of it)."""
    raise Unsupported(f"target {guest.name}: {reason}")


def spec(section: str, claim: str) -> pytest.MarkDecorator:
    """Mark a testcase with the spec section it checks and the claim in the spec's words."""
    if not section or not claim:
        raise ValueError("spec() needs a section and a claim")
    return pytest.mark.spec(section=section, claim=claim)


__all__ = [
    "WEDGED",
    "Call",
    "CallResult",
    "Delivery",
    "EventInfo",
    "Expect",
    "Fault",
    "Guest",
    "Handler",
    "Inject",
    "Irq",
    "Known",
    "Read32",
    "Snapshot",
    "TargetError",
    "TargetInfo",
    "Tick",
    "Unsupported",
    "Vevent",
    "Write32",
    "not_applicable",
    "spec",
]
