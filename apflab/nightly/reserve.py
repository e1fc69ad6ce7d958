"""Getting places for a run: N reservations by tags, a deadline, a minimum, then acquire.

Everything is reserved and acquired *before* pytest starts, and pytest then gets exactly
as many workers as there are places: per-worker reservations deadlock as soon as there
are more workers than free places, because pytest-xdist starts no test until every
worker is configured (measured: docs/reference/lab.md). Reservations not allocated by the deadline
are cancelled; fewer places than asked is fine down to ``minimum``, and the reasons the
others were not had (acquired by whom, reserved, no resources) are kept for the report.
Whatever goes wrong half-way, what was acquired is released and every reservation made
is cancelled before the error leaves.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from apflab.nightly.session import CoordinatorSession, LabError


class NoPlaces(LabError):
    """Fewer places than the minimum could be had by the deadline."""


@dataclass(frozen=True)
class Lease:
    """A place this run holds: acquired under a reservation."""

    place: str
    token: str
    tags: dict[str, str]


@dataclass
class Allocation:
    asked: int
    leases: list[Lease] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    places_s: float = 0.0  # first reservation until the last place was acquired (or the deadline)
    acquire_s: float = 0.0  # of that, the time in AcquirePlace and the resource check


def _tags_text(tags: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in tags.items())


def _why_not(session: CoordinatorSession, tags: dict[str, str], held: set[str]) -> list[str]:
    """One line per matching place this run did not get, saying why."""
    places = session.places()
    return [p.describe() for n, p in sorted(places.items()) if p.matches_tags(tags) and n not in held]


def _check_resources(session: CoordinatorSession, place: str) -> str | None:
    """None if the acquired place has its resources, else why it is unusable."""
    state = session.place(place)
    if not state.resources:
        return f"{place}: acquired but no resource matched (is its exporter running?)"
    gone = [path for path, avail in state.resources if not avail]
    if gone:
        return f"{place}: resources unavailable: {', '.join(gone)}"
    return None


def acquire_places(
    session: CoordinatorSession,
    tags: dict[str, str],
    count: int,
    minimum: int,
    deadline_s: float,
    poll_s: float = 0.5,
    log: Callable[[str], None] = lambda _: None,
) -> Allocation:
    """Reserve ``count`` places matching ``tags``, acquire each as soon as it is allocated,
    give up waiting after ``deadline_s`` seconds; raise NoPlaces below ``minimum``."""
    if count < 1 or not 1 <= minimum <= count:
        raise LabError(f"asked for {count} places with minimum {minimum}: need 1 <= minimum <= count")
    candidates = [p for p in session.places().values() if p.matches_tags(tags)]
    if not candidates:
        raise NoPlaces(
            f"no place has the tags {_tags_text(tags)} (places: {', '.join(sorted(session.places())) or 'none'})"
        )
    alloc = Allocation(asked=count)
    tokens: list[str] = []
    waiting: list[str] = []
    t0 = time.monotonic()
    try:
        for _ in range(count):
            tokens.append(session.reserve(tags))
        waiting = list(tokens)
        deadline = t0 + deadline_s
        while waiting:
            for token in list(waiting):
                state = session.poll(token)
                if state.state in ("expired", "invalid"):
                    waiting.remove(token)
                    alloc.notes.append(f"reservation {token} became {state.state}")
                elif state.state in ("allocated", "acquired") and state.place:
                    waiting.remove(token)
                    _take(session, alloc, state.place, token, log)
                    alloc.places_s = time.monotonic() - t0
            if not waiting or time.monotonic() >= deadline:
                break
            if len(alloc.leases) >= len(candidates):
                break  # every place with these tags is this run's: nothing left to wait for
            time.sleep(min(poll_s, max(deadline - time.monotonic(), 0.0)))
        if waiting:
            alloc.places_s = time.monotonic() - t0
        for token in waiting:
            session.cancel(token)  # not allocated by the deadline: give the slot up
        if len(alloc.leases) < count:
            if len(candidates) < count:
                alloc.notes.append(f"only {len(candidates)} places have the tags {_tags_text(tags)}")
            alloc.notes.extend(_why_not(session, tags, {lease.place for lease in alloc.leases}))
        if len(alloc.leases) < minimum:
            raise NoPlaces(
                f"{len(alloc.leases)} of {count} places with {_tags_text(tags)} within "
                f"{deadline_s:g} s, minimum {minimum}; " + "; ".join(alloc.notes)
            )
    except BaseException:
        give_back(session, alloc.leases, tokens)
        raise
    return alloc


def _take(session: CoordinatorSession, alloc: Allocation, place: str, token: str, log: Callable[[str], None]) -> None:
    t = time.monotonic()
    try:
        session.acquire(place)
    except LabError as exc:
        alloc.notes.append(f"{place}: allocated but not acquired: {exc}")
        session.cancel(token)
        return
    finally:
        alloc.acquire_s += time.monotonic() - t
    problem = _check_resources(session, place)
    if problem:
        alloc.notes.append(problem)
        session.release(place)
        session.cancel(token)
        return
    tags = session.place(place).tags
    alloc.leases.append(Lease(place, token, tags))
    log(f"acquired {place} ({_tags_text(tags)})")


def give_back(session: CoordinatorSession, leases: list[Lease], tokens: list[str]) -> list[str]:
    """Release every lease and cancel every reservation; go on past errors, return them."""
    errors = []
    for lease in leases:
        try:
            session.release(lease.place)
        except LabError as exc:
            errors.append(str(exc))
    for token in tokens:
        with contextlib.suppress(LabError):  # already gone (cancelled, expired) is fine
            session.cancel(token)
    return errors
