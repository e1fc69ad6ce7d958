"""Fixtures the suites share: events of each kind, taken from the target's catalogue.

SDEI has no discovery call (events come from DT/ACPI: docs/reference/sdei-calls.md), so the target's
configuration lists its events; a suite that needs a kind of event the target does not
expose is skipped with that reason.
"""

from __future__ import annotations

import pytest

from apflab.abi.sdei import EventType, Priority
from apflab.testing import EventInfo, Guest, Unsupported


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("apflab").addoption(
        "--perf-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of the performance model's random streams (default 1, the seed the recorded "
        "predictions of docs/perf-model.md use); another seed shows the spread of its figures",
    )


def pick(guest: Guest, what: str, **kw: object) -> EventInfo:
    found = guest.info.find_events(injectable=True, **kw)  # type: ignore[arg-type]
    if not found:
        raise Unsupported(f"target {guest.info.name} exposes no triggerable {what} event")
    return found[0]


@pytest.fixture
def private_event(guest: Guest) -> EventInfo:
    return pick(guest, "private", type=EventType.PRIVATE)


@pytest.fixture
def shared_event(guest: Guest) -> EventInfo:
    return pick(guest, "shared", type=EventType.SHARED)


@pytest.fixture
def normal_event(guest: Guest) -> EventInfo:
    return pick(guest, "private normal-priority", type=EventType.PRIVATE, priority=Priority.NORMAL)


@pytest.fixture
def critical_event(guest: Guest) -> EventInfo:
    return pick(guest, "private critical-priority", type=EventType.PRIVATE, priority=Priority.CRITICAL)


@pytest.fixture
def shared_normal_event(guest: Guest) -> EventInfo:
    return pick(guest, "shared normal-priority", type=EventType.SHARED, priority=Priority.NORMAL)


@pytest.fixture
def multi_pe(guest: Guest) -> Guest:
    guest.require("multi-pe", "needs at least two PEs")
    return guest
