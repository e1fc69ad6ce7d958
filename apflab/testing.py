"""What a testcase imports: the spec marker, the Guest vocabulary, and Known deviations.

    from apflab.testing import spec, Known, Handler, Call

    @spec("DEN0054C 5.1.3", "Enabling an enabled event is permitted and has no effect")
    def test_enable_twice(guest, expect, event): ...
"""

from __future__ import annotations

import pytest

from apflab.guest import Call, CallResult, Delivery, EventInfo, Guest, Handler, Inject, Irq, Unsupported
from apflab.verdict import Expect, Known


def spec(section: str, claim: str) -> pytest.MarkDecorator:
    """Mark a testcase with the spec section it checks and the claim in the spec's words."""
    if not section or not claim:
        raise ValueError("spec() needs a section and a claim")
    return pytest.mark.spec(section=section, claim=claim)


__all__ = [
    "Call",
    "CallResult",
    "Delivery",
    "EventInfo",
    "Expect",
    "Guest",
    "Handler",
    "Inject",
    "Irq",
    "Known",
    "Unsupported",
    "spec",
]
