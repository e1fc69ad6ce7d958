"""A bounded client of labgrid's coordinator: places, reservations, acquire and release.

apflab schedules nothing itself: places, tags, reservations and who holds what live in
labgrid's coordinator. This wraps labgrid's own ``ClientSession`` (the same gRPC stream
and identity ``host/user`` as ``labgrid-client``, so pytest workers started afterwards
find the places acquired by their own user) and gives every call a deadline: an
unreachable or stuck coordinator is an error after ``timeout`` seconds, never a hang.
Calls from one process cost milliseconds, where each ``labgrid-client`` run costs ~0.45 s
of start-up (measured here).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

T = TypeVar("T")
DEFAULT_PORT = 20408


class LabError(Exception):
    """The coordinator refused or could not do what was asked; the message says why."""


class CoordinatorUnreachable(LabError):
    """No coordinator answered at the address within the bound."""


@dataclass(frozen=True)
class PlaceState:
    """What the coordinator says about one place."""

    name: str
    tags: dict[str, str]
    acquired: str | None
    reservation: str | None
    matches: tuple[str, ...]
    resources: tuple[tuple[str, bool], ...] = ()  # (exporter/group/cls/name, available) while acquired

    def matches_tags(self, tags: dict[str, str]) -> bool:
        return all(self.tags.get(k) == v or (k == "name" and v == self.name) for k, v in tags.items())

    def describe(self) -> str:
        """Why this place is or is not free, in a few words."""
        if self.acquired:
            return f"{self.name}: acquired by {self.acquired}"
        if self.reservation:
            return f"{self.name}: reserved ({self.reservation})"
        return f"{self.name}: free"


@dataclass(frozen=True)
class ReservationState:
    token: str
    state: str  # waiting, allocated, acquired, expired, invalid
    place: str | None = None


@dataclass
class CoordinatorSession:
    """One connection to the coordinator; use as a context manager or call close()."""

    address: str
    timeout: float = 10.0
    _session: Any = field(default=None, init=False, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)

    # ------------------------------------------------------------ connection

    def __post_init__(self) -> None:
        from labgrid.remote.client import ClientSession, ServerError, ensure_event_loop
        from labgrid.remote.generated import labgrid_coordinator_pb2_grpc

        if ":" not in self.address:
            self.address = f"{self.address}:{DEFAULT_PORT}"
        # gRPC's aio channel belongs to the thread's loop, the one labgrid's own sessions use too
        self._loop = ensure_event_loop()
        self._session = ClientSession(self.address, self._loop)
        # The coordinator tells clients apart by their connection's peer address, and gRPC
        # shares one connection between channels to the same address in a process: a
        # channel of its own keeps this session apart from labgrid's RemotePlace session.
        options = [
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.keepalive_time_ms", 7500),
            ("grpc.keepalive_timeout_ms", 10000),
            ("grpc.http2.ping_timeout_ms", 10000),
            ("grpc.http2.max_pings_without_data", 0),
        ]
        unused = self._session.channel
        self._session.channel = grpc.aio.insecure_channel(target=self.address, options=options)
        self._session.stub = labgrid_coordinator_pb2_grpc.CoordinatorStub(self._session.channel)
        self._run(unused.close(), what="set up")
        try:
            self._run(self._session.start(), what="connect")
        except (ServerError, LabError, OSError) as exc:
            self.close()
            raise CoordinatorUnreachable(
                f"no labgrid coordinator answers at {self.address} (within {self.timeout:g} s): {exc}"
            ) from None

    def __enter__(self) -> CoordinatorSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def user(self) -> str:
        """The identity places are acquired under: ``host/user`` (LG_HOSTNAME, LG_USERNAME)."""
        return f"{self._session.gethostname()}/{self._session.getuser()}"

    @property
    def connected(self) -> bool:
        return self._session is not None and not self._session.stopping.is_set()

    def close(self) -> None:
        if self._loop is None or self._loop.is_closed() or self._session is None:
            return
        if self._session is not None:
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(asyncio.wait_for(self._session.stop(), 2))
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(asyncio.wait_for(self._session.close(), 2))
            self._session = None

    def _run(self, coro: Awaitable[T], what: str) -> T:
        assert self._loop is not None
        try:
            return self._loop.run_until_complete(asyncio.wait_for(coro, self.timeout))
        except asyncio.TimeoutError:
            raise LabError(f"coordinator {self.address}: {what} got no answer within {self.timeout:g} s") from None
        except grpc.aio.AioRpcError as exc:
            raise LabError(f"coordinator {self.address}: {what}: {exc.details()}") from None

    def _call(self, method: str, request: Any, what: str) -> Any:
        stub = getattr(self._session.stub, method)
        return self._run(stub(request, timeout=self.timeout), what)

    def sync(self) -> None:
        """Let the coordinator's place and resource updates arrive."""
        if not self.connected:
            raise LabError(f"lost the connection to the coordinator at {self.address}")
        self._run(self._session.sync_with_coordinator(), "sync")

    # ------------------------------------------------------------ places

    def places(self) -> dict[str, PlaceState]:
        self.sync()
        return {name: self._state(place) for name, place in self._session.places.items()}

    def place(self, name: str) -> PlaceState:
        places = self.places()
        if name not in places:
            raise LabError(f"there is no place {name!r} (places: {', '.join(sorted(places)) or 'none'})")
        return places[name]

    def _state(self, place: Any) -> PlaceState:
        resources = []
        for path in place.acquired_resources:
            exporter, group, _cls, name = path
            entry = self._session.resources.get(exporter, {}).get(group, {}).get(name)
            resources.append(("/".join(path), bool(entry is not None and entry.data and entry.avail)))
        return PlaceState(
            place.name,
            dict(place.tags),
            place.acquired,
            place.reservation,
            tuple(str(m) for m in place.matches),
            tuple(resources),
        )

    def exported(self) -> list[tuple[str, bool]]:
        """Every resource the exporters publish now: (exporter/group/cls/name, available)."""
        self.sync()
        out = []
        for exporter, groups in self._session.resources.items():
            for group, entries in groups.items():
                for name, entry in entries.items():
                    if entry.data:
                        out.append((f"{exporter}/{group}/{entry.cls}/{name}", bool(entry.avail)))
        return sorted(out)

    def add_place(self, name: str, matches: Iterable[str], tags: dict[str, str]) -> None:
        """Create a place with resource matches and tags (an administrator's step)."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        self._call("AddPlace", pb2.AddPlaceRequest(name=name), f"create place {name}")
        for pattern in matches:
            if not 2 <= pattern.count("/") <= 3:
                raise LabError(f"invalid match {pattern!r} (use exporter/group/cls[/name])")
            request = pb2.AddPlaceMatchRequest(placename=name, pattern=pattern)
            self._call("AddPlaceMatch", request, f"add match {pattern} to {name}")
        self._call("SetPlaceTags", pb2.SetPlaceTagsRequest(placename=name, tags=tags), f"tag place {name}")
        self.sync()

    def acquire(self, name: str) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        self._call("AcquirePlace", pb2.AcquirePlaceRequest(placename=name), f"acquire {name}")
        self.sync()

    def release(self, name: str) -> None:
        """Release a place this user holds (a place held by someone else is left alone)."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        request = pb2.ReleasePlaceRequest(placename=name, fromuser=self.user)
        self._call("ReleasePlace", request, f"release {name}")
        self.sync()

    # ------------------------------------------------------------ reservations

    def reserve(self, tags: dict[str, str], prio: float = 0.0) -> str:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        fltr = {"main": pb2.Reservation.Filter(filter=tags)}
        request = pb2.CreateReservationRequest(filters=fltr, prio=prio)
        return self._call("CreateReservation", request, "reserve").reservation.token

    def poll(self, token: str) -> ReservationState:
        """Poll (and so keep alive) a reservation."""
        from labgrid.remote.common import Reservation
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        response = self._call("PollReservation", pb2.PollReservationRequest(token=token), f"poll {token}")
        res = Reservation.from_pb2(response.reservation)
        places = res.allocations.get("main") or [None]
        return ReservationState(res.token, res.state.name, places[0])

    def cancel(self, token: str) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        self._call("CancelReservation", pb2.CancelReservationRequest(token=token), f"cancel {token}")

    def reservations(self) -> list[ReservationState]:
        from labgrid.remote.common import Reservation
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        response = self._call("GetReservations", pb2.GetReservationsRequest(), "list reservations")
        out = []
        for item in response.reservations:
            res = Reservation.from_pb2(item)
            out.append(ReservationState(res.token, res.state.name, (res.allocations.get("main") or [None])[0]))
        return out


def coordinator_address(explicit: str | None, lab_file: str | None) -> str:
    """Where the coordinator is: the argument, else LG_COORDINATOR, else lab.yaml's
    ``options: coordinator_address``, else labgrid's default 127.0.0.1:20408."""
    if explicit:
        return explicit
    if os.environ.get("LG_COORDINATOR"):
        return os.environ["LG_COORDINATOR"]
    if lab_file and os.path.exists(lab_file):
        from labgrid.util.yaml import load  # knows labgrid's !template tag

        with open(lab_file) as f:
            doc = load(f)
        address = ((doc or {}).get("options") or {}).get("coordinator_address")
        if address:
            return str(address)
    return f"127.0.0.1:{DEFAULT_PORT}"
