"""AgentDriver: the bare-metal guest agent on a console, as a Guest that survives wedges.

It binds a console and a power driver (QEMUProcessDriver provides both; a board has a
serial port and a PDU), and optionally the target's health (what its host can tell).
``guest()`` powers the target on, waits a bounded time for the agent's ready line, and
exchanges HELLO. When the target wedges or dies (a hang, an interrupt storm, a firmware
panic, a host kernel oops), the failing call raises TargetError carrying the console
tail, the crash output and the host's status; the next reset() restarts the target
fresh, so a wedge costs one case and a bounded wait, not the run.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from typing import Any, ClassVar

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory

from apflab.abi.sdei import EventType, Priority
from apflab.agent.client import AgentGuest, ByteStream, RoundTrips
from apflab.capabilities import check as check_capabilities
from apflab.guest import EventInfo, Guest, GuestFacts, TargetError, TargetInfo
from apflab.lab import keys
from apflab.lab.guestprotocol import GuestProtocol, SessionFigures
from apflab.lab.health import TargetHealthProtocol
from apflab.lab.targetinfo import describe
from apflab.profiles import PROFILES, effective_profile
from apflab.safetext import HeadTail, from_target

READY_LINE = b"APFLAB-AGENT READY"


class ConsoleStream(ByteStream):
    """A labgrid ConsoleProtocol as the byte stream AgentGuest reads and writes."""

    def __init__(self, console: Any, health: TargetHealthProtocol | None) -> None:
        self.console = console
        self.health = health

    def write(self, data: bytes) -> None:
        try:
            self.console.write(data)
        except OSError as exc:
            raise TargetError(f"console write failed: {exc}") from None

    def read(self, timeout: float) -> bytes:
        try:
            data = self.console.read(size=4096, timeout=timeout, max_size=65536) or b""
        except Exception as exc:  # labgrid consoles raise pexpect's TIMEOUT when nothing came
            if type(exc).__name__ != "TIMEOUT":
                raise
            data = b""
        failure = self.health.failure() if self.health is not None else None
        if failure is not None:  # e.g. a host kernel oops while the agent still answers
            raise TargetError(failure)
        return data

    def alive(self) -> bool:
        return self.health.alive() if self.health is not None else True


def parse_events(items: list[dict]) -> tuple[EventInfo, ...]:
    """The target's event catalogue from lab.yaml (SDEI has no discovery: DT/ACPI say it)."""
    events = []
    for i, item in enumerate(items):
        try:
            events.append(
                EventInfo(
                    number=int(item["number"]),
                    type=EventType[str(item.get("type", "private")).upper()],
                    priority=Priority[str(item.get("priority", "normal")).upper()],
                    signalable=bool(item.get("signalable", False)),
                    intid=item.get("intid"),
                    dynamic=bool(item.get("dynamic", False)),
                )
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"events[{i}] in lab.yaml is malformed ({exc}): {item!r}") from None
    return tuple(events)


class RecoveringGuest(Guest):
    """A Guest that boots its target afresh after it wedged.

    Every target operation (:attr:`Guest.OPERATIONS`) is passed through to the guest of
    the current boot, guarded: a TargetError marks the target broken and carries the
    target's health; the next reset() restarts it. The TargetInfo is the wrapper's, built
    once, and lent to every boot's guest.
    """

    def __init__(self, boot: Callable[[], Guest], describe: Callable[[], str]) -> None:
        self._boot = boot
        self._describe = describe
        self.inner = boot()
        self.name = self.inner.name
        self.broken = False
        self.restarts = 0

    @property
    def facts(self) -> GuestFacts:
        return self.inner.facts

    @Guest.info.setter  # type: ignore[attr-defined]
    def info(self, value: TargetInfo) -> None:
        self._info = value
        self.inner.info = value

    def _guard(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        if self.broken:
            raise TargetError("the target wedged earlier in this case and is restarted before the next one")
        try:
            return getattr(self.inner, operation)(*args, **kwargs)
        except TargetError as exc:
            self.broken = True
            raise TargetError(f"{exc}; {self._describe()}") from None

    def discard(self) -> None:
        """The case may have left the target in a state RESET cannot undo: restart before the next."""
        self.broken = True

    def restart(self) -> None:
        self.inner.close()
        self.inner = self._boot()
        if self._info is not None and self.inner.facts.pes < self._info.pes:
            # A secondary PE that did not come up within the agent's bound (2 s) is left
            # out: that boot is not the target the cases were told of.
            self.inner.close()
            self.inner = self._boot()
        if self._info is not None:
            self.inner.info = self._info
        self.broken = False
        self.restarts += 1

    def reset(self) -> None:
        if not self.broken:
            try:
                self.inner.reset()
                return
            except TargetError:
                pass  # RESET refused (a handler still runs) or no answer: boot afresh
        self.restart()

    def close(self) -> None:
        self.inner.close()


def _guarded(operation: str) -> Callable[..., Any]:
    def passed_through(self: RecoveringGuest, *args: Any, **kwargs: Any) -> Any:
        return self._guard(operation, *args, **kwargs)

    passed_through.__name__ = passed_through.__qualname__ = operation
    passed_through.__doc__ = getattr(Guest, operation).__doc__
    return passed_through


for _operation in Guest.OPERATIONS:
    if _operation != "reset":
        setattr(RecoveringGuest, _operation, _guarded(_operation))
abc.update_abstractmethods(RecoveringGuest)


@target_factory.reg_driver
@attr.s(eq=False)
class AgentDriver(Driver, GuestProtocol):
    """Binds to:
        console: ConsoleProtocol (the agent's UART)
        power: PowerProtocol (to start and restart the target)
        health: TargetHealthProtocol, optional (alive, status, crash tail, host capabilities)

    Args:
        profile (str): the behaviour profile the target claims (spec, kvm-v4)
        deviations (list): known deviations of this target (names in apflab/profiles.py)
        capabilities (list): what the target can do beyond the protocol's HELLO (names in apflab/capabilities.py)
        events (list): the target's SDEI events: number, type, priority, signalable, intid, dynamic
            (default: the host's dispatcher's catalogue, where the health driver knows it)
        secure_intids (list): the PPIs and SPIs the platform's secure world owns (INTERRUPT_BIND
            must refuse them); SDEI cannot discover them
        ready_timeout (float): seconds from power-on to the agent's ready line
        reply_timeout (float): seconds to wait for each protocol reply
        last_words (list): beginnings of console lines after which the target never answers
            again (its firmware's panic): the wait for a reply ends there, not at its timeout
    """

    bindings: ClassVar[dict] = {
        "console": "ConsoleProtocol",
        "power": "PowerProtocol",
        "health": {TargetHealthProtocol, None},
    }

    profile = attr.ib(default="spec", validator=attr.validators.in_(sorted(PROFILES)))
    deviations = attr.ib(factory=list, validator=keys.deviations)
    capabilities = attr.ib(factory=list, validator=keys.capabilities)
    events = attr.ib(factory=list, validator=keys.events)
    secure_intids = attr.ib(factory=list, validator=keys.intids)
    ready_timeout = keys.timeout(20.0)
    reply_timeout = keys.timeout(5.0)
    last_words = attr.ib(factory=list, validator=keys.strings)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._guest: RecoveringGuest | None = None
        self._profile = effective_profile(self.profile, self.deviations)
        self._events = parse_events(self.events)
        self._capabilities = check_capabilities(self.capabilities, "AgentDriver's capabilities")
        self.boot_seconds: list[float] = []
        self.round_trips = RoundTrips()  # every boot's requests: the run's round-trip figure

    def session_figures(self) -> SessionFigures:
        return SessionFigures(tuple(self.boot_seconds), self.round_trips)

    def on_deactivate(self) -> None:
        if self._guest is not None:
            self._guest.close()
            self._guest = None
        self.power.off()

    def _stream(self) -> ConsoleStream:
        return ConsoleStream(self.console, self.health)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        seen = HeadTail(1024, 8192)  # the banner and the last lines, of a console that may flood
        stream = self._stream()
        while time.monotonic() < deadline:
            chunk = stream.read(min(0.5, deadline - time.monotonic()))
            seen.add(chunk)
            recent = seen.recent()
            if READY_LINE in recent and recent.rstrip(b"\r").endswith(b"\n"):
                return
            if not chunk and not stream.alive():
                break
        tail = from_target(seen.kept(), 4000, lines=True).strip().splitlines()[-8:]
        raise TargetError(
            f"the agent did not report ready within {self.ready_timeout:g} s; "
            f"console: {' | '.join(tail) or '(silent)'}; {self.describe()}"
        )

    def describe(self) -> str:
        """The target's health for an error message: its status and crash output."""
        if self.health is None:
            return "no further status (the target has no health driver)"
        parts = [f"target {self.health.status()}"]
        tail = self.health.crash_tail()
        if tail:
            parts.append(f"crash UART: {tail}")
        return "; ".join(parts)

    def _boot(self) -> AgentGuest:
        t = time.monotonic()
        self.power.off()
        self.power.on()
        self._wait_ready()
        guest = AgentGuest(
            self._stream(),
            self.target.name,
            timeout=self.reply_timeout,
            round_trips=self.round_trips,
            last_words=self.last_words,
        )
        self.boot_seconds.append(time.monotonic() - t)
        return guest

    @Driver.check_active
    def guest(self) -> Guest:
        if self._guest is None:
            guest = RecoveringGuest(self._boot, self.describe)
            host = self.health.host_capabilities() if self.health is not None else frozenset()
            events = self._events
            if not self.events and self.health is not None:
                events = self.health.host_events() or ()
            guest.info = describe(
                self.target.name,
                guest,
                profile=self._profile,
                events=events,
                capabilities=self._capabilities | host,
                notes=self.health.capability_notes() if self.health is not None else None,
                secure_intids=self.secure_intids,
            )
            self._guest = guest
        return self._guest
