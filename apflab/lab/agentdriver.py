"""AgentDriver: the bare-metal guest agent on a console, as a Guest that survives wedges.

It binds a console and a power driver (QEMUProcessDriver provides both; a board has a
serial port and a PDU). ``guest()`` powers the target on, waits a bounded time for the
agent's ready line, and exchanges HELLO. When the target wedges or dies (a hang, an
interrupt storm, a firmware panic), the failing call raises TargetError carrying the
console tail, the crash UART's tail and QEMU's status; the next reset() restarts the
target fresh, so a wedge costs one case and a bounded wait, not the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory

from apflab.abi.sdei import EventType, Priority
from apflab.agent.client import AgentGuest, ByteStream
from apflab.guest import CallResult, EventInfo, Guest, Handler, Regs, TargetError, TargetInfo
from apflab.lab.guestprotocol import GuestProtocol
from apflab.profiles import PROFILES, effective_profile

READY_LINE = b"APFLAB-AGENT READY"


class ConsoleStream(ByteStream):
    """A labgrid ConsoleProtocol as the byte stream AgentGuest reads and writes."""

    def __init__(self, console: Any, power: Any) -> None:
        self.console = console
        self.power = power

    def write(self, data: bytes) -> None:
        try:
            self.console.write(data)
        except OSError as exc:
            raise TargetError(f"console write failed: {exc}") from None

    def read(self, timeout: float) -> bytes:
        try:
            return self.console.read(size=4096, timeout=timeout, max_size=65536) or b""
        except Exception as exc:  # labgrid consoles raise pexpect's TIMEOUT when nothing came
            if type(exc).__name__ == "TIMEOUT":
                return b""
            raise

    def alive(self) -> bool:
        alive = getattr(self.power, "alive", None)
        return alive() if callable(alive) else True


def parse_events(items: list[dict]) -> tuple[EventInfo, ...]:
    """The target's event catalogue from lab.yaml (SDEI has no discovery: DT/ACPI say it)."""
    events = []
    for i, item in enumerate(items):
        try:
            events.append(EventInfo(
                number=int(item["number"]),
                type=EventType[str(item.get("type", "private")).upper()],
                priority=Priority[str(item.get("priority", "normal")).upper()],
                signalable=bool(item.get("signalable", False)),
                intid=item.get("intid"),
                dynamic=bool(item.get("dynamic", False)),
            ))  # fmt: skip
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"events[{i}] in lab.yaml is malformed ({exc}): {item!r}") from None
    return tuple(events)


class RecoveringGuest(Guest):
    """An AgentGuest that is rebooted fresh after it wedged."""

    def __init__(self, boot: Callable[[], AgentGuest], describe: Callable[[], str]) -> None:
        self._boot = boot
        self._describe = describe
        self.inner = boot()
        self.broken = False
        self.restarts = 0

    @property
    def info(self) -> TargetInfo:  # type: ignore[override]
        return self.inner.info

    @info.setter
    def info(self, value: TargetInfo) -> None:
        self.inner.info = value

    def _guard(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.broken:
            raise TargetError("the target wedged earlier in this case and is restarted before the next one")
        try:
            return fn(*args)
        except TargetError as exc:
            self.broken = True
            raise TargetError(f"{exc}; {self._describe()}") from None

    def discard(self) -> None:
        """The case may have left the target in a state RESET cannot undo: restart before the next."""
        self.broken = True

    def restart(self) -> None:
        info = self.inner.info
        self.inner.close()
        self.inner = self._boot()
        self.inner.info = info  # keep what the session probed
        self.broken = False
        self.restarts += 1

    def call(self, fid: int, *args: int) -> CallResult:
        return self._guard(self.inner.call, fid, *args)

    def set_handler(self, arg: int, handler: Handler) -> None:
        self._guard(self.inner.set_handler, arg, handler)

    def select_pe(self, pe: int) -> None:
        self._guard(self.inner.select_pe, pe)

    def regs(self) -> Regs:
        return self._guard(self.inner.regs)

    def inject(self, event: int, pe: int = 0) -> CallResult:
        return self._guard(self.inner.inject, event, pe)

    def raise_irq(self, intid: int, pe: int = 0) -> CallResult:
        return self._guard(self.inner.raise_irq, intid, pe)

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


@target_factory.reg_driver
@attr.s(eq=False)
class AgentDriver(Driver, GuestProtocol):
    """Binds to:
        console: ConsoleProtocol (the agent's UART)
        power: PowerProtocol (to start and restart the target)

    Args:
        profile (str): the behaviour profile the target claims (spec, kvm-v4)
        deviations (list): known deviations of this target (names in apflab/profiles.py)
        capabilities (list): what the target can do beyond the protocol's HELLO (e.g. kvm-vendor-hyp)
        events (list): the target's SDEI events: number, type, priority, signalable, intid, dynamic
        ready_timeout (float): seconds from power-on to the agent's ready line
        reply_timeout (float): seconds to wait for each protocol reply
    """

    bindings: ClassVar[dict] = {"console": "ConsoleProtocol", "power": "PowerProtocol"}

    profile = attr.ib(default="spec", validator=attr.validators.in_(sorted(PROFILES)))
    deviations = attr.ib(factory=list, validator=attr.validators.instance_of(list))
    capabilities = attr.ib(factory=list, validator=attr.validators.instance_of(list))
    events = attr.ib(factory=list, validator=attr.validators.instance_of(list))
    ready_timeout = attr.ib(default=20.0, converter=float)
    reply_timeout = attr.ib(default=5.0, converter=float)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._guest: RecoveringGuest | None = None
        self._profile = effective_profile(self.profile, self.deviations)
        self._events = parse_events(self.events)
        self.boot_seconds: list[float] = []

    def on_deactivate(self) -> None:
        if self._guest is not None:
            self._guest.close()
            self._guest = None
        self.power.off()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        seen = b""
        while time.monotonic() < deadline:
            chunk = ConsoleStream(self.console, self.power).read(min(0.5, deadline - time.monotonic()))
            seen = (seen + chunk)[-8192:]
            if READY_LINE in seen and seen.rstrip(b"\r").endswith(b"\n"):
                return
            if not chunk and not ConsoleStream(self.console, self.power).alive():
                break
        tail = seen.decode(errors="replace").strip().splitlines()[-8:]
        raise TargetError(f"the agent did not report ready within {self.ready_timeout:g} s; "
                          f"console: {' | '.join(tail) or '(silent)'}; {self.describe()}")  # fmt: skip

    def describe(self) -> str:
        parts = []
        status = getattr(self.power, "status", None)
        if callable(status):
            parts.append(f"QEMU {status()}")
        crash = getattr(self.power, "crash_tail", None)
        tail = crash() if callable(crash) else ""
        if tail:
            parts.append(f"crash UART: {tail}")
        return "; ".join(parts) or "no further status"

    def _boot(self) -> AgentGuest:
        t = time.monotonic()
        self.power.off()
        self.power.on()
        self._wait_ready()
        caps = set(self.capabilities)
        use_kvm = getattr(self.power, "use_kvm", None)
        if callable(use_kvm) and use_kvm():
            caps.add("kvm-vendor-hyp")  # a KVM guest: the vendor-hypervisor service is KVM's
        guest = AgentGuest(ConsoleStream(self.console, self.power), self.target.name, events=self._events,
                           timeout=self.reply_timeout, profile=self._profile,
                           extra_capabilities=frozenset(caps))  # fmt: skip
        self.boot_seconds.append(time.monotonic() - t)
        return guest

    @Driver.check_active
    def guest(self) -> Guest:
        if self._guest is None:
            self._guest = RecoveringGuest(self._boot, self.describe)
        return self._guest
