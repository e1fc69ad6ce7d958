"""GuestProtocol: what a labgrid driver offers when it can hand out a Guest.

Every kind of target (the model, the bare-metal agent on a console, a Linux guest)
has a driver implementing this protocol, so the pytest plugin asks the target for
``GuestProtocol`` and never for a concrete driver class, nor for attributes only some
drivers have: what a driver measured of its session comes through ``session_figures``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from apflab.agent.client import RoundTrips
from apflab.guest import Guest
from apflab.results import Metric


@dataclass(frozen=True)
class SessionFigures:
    """A driver's own measurements of the session: each boot's seconds to the guest's ready
    line, and the protocol's round trips (the agent on QEMU, the model over a pipe)."""

    boot_seconds: tuple[float, ...] = ()
    round_trips: RoundTrips | None = None

    def metrics(self, target: str) -> list[Metric]:
        """The figures as the run's metrics, which a trend follows from night to night."""
        out = []
        if self.boot_seconds:
            boots = self.boot_seconds
            out.append(Metric("session.boot_s", sum(boots) / len(boots), "s", "", target))
            out.append(Metric("session.boots", float(len(boots)), "count", "", target))
        trips = self.round_trips
        if trips is not None and trips.count:
            out.append(Metric("session.round_trip_us", trips.seconds / trips.count * 1e6, "us", "", target))
            out.append(Metric("session.round_trips", float(trips.count), "count", "", target))
        return out


class GuestProtocol(abc.ABC):
    @abc.abstractmethod
    def guest(self) -> Guest:
        """The Guest for this target, ready for use (booted, hello exchanged)."""

    def session_figures(self) -> SessionFigures:
        """What the driver measured this session; by default nothing (an in-process guest
        neither boots nor makes round trips)."""
        return SessionFigures()
