"""One live migration, pre-copy or post-copy, from a source QMP to a destination QEMU.

The sequence follows QEMU's own migration tests (tests/qtest/migration, tests/functional/
migration.py; docs/reference/lab.md): capabilities ``events`` (+ ``postcopy-ram`` on both sides and
``postcopy-blocktime`` on the destination), ``migrate-incoming`` on a port the
destination picks, ``migrate`` on the source, ``migrate-start-postcopy`` once the
configured share of RAM has been sent, then the MIGRATION event ``completed``. The event
wakes the waiter directly (no polling for completion); while it waits, progress is
sampled once a second only to tell a stalled migration (no bytes moving) from a slow
one. Afterwards the source must be ``postmigrate`` and the destination ``running``.
Every failure raises :class:`~apflab.migrate.MigrationError` with both sides' state.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from apflab.migrate import MigrationError
from apflab.migrate.destination import Destination
from apflab.migrate.figures import MigrationFigures
from apflab.migrate.qmp import Event, QMPCommandError, QMPSession, QMPTimeout

FINAL = ("completed", "failed", "cancelled")
#: QEMU's own defaults (qapi/migration.json): sent when a plan does not say, because a QEMU
#: keeps the parameters of its last migration attempt.
DEFAULT_MAX_BANDWIDTH = 128 << 20  # bytes/s
DEFAULT_DOWNTIME_LIMIT_MS = 300


class MigrationStalled(MigrationError):
    """No RAM moved for longer than the stall bound."""


class MigrationTimeout(MigrationError):
    """The migration did not finish within its overall bound (e.g. pre-copy never converged)."""


@dataclass
class MigrationPlan:
    mode: str = "precopy"  # or "postcopy"
    max_bandwidth: int | None = None  # bytes/s for pre-copy (QEMU 7.2's default is 128 MiB/s)
    downtime_limit_ms: int | None = None
    postcopy_at: float = 0.0  # share of guest RAM sent before migrate-start-postcopy (0: as soon as active)
    timeout: float = 300.0  # whole migration
    stall_timeout: float = 20.0  # no transferred bytes for this long: stalled
    resume_timeout: float = 15.0  # destination RESUME after completion
    listen_address: str = ""  # destination listen address (default: the address the source connects to)
    connect_address: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if self.mode not in ("precopy", "postcopy"):
            raise ValueError(f"migration mode must be precopy or postcopy, not {self.mode!r}")
        if not 0.0 <= self.postcopy_at <= 1.0:
            raise ValueError(f"postcopy_at is a share of RAM between 0 and 1, not {self.postcopy_at}")


class Migration:
    """Runs ``plan`` from ``src`` (a connected QMP session) to ``dst`` (a started Destination)."""

    def __init__(
        self,
        src: QMPSession,
        dst: Destination,
        plan: MigrationPlan,
        describe_source: Callable[[], str],
        after_start: Callable[[Destination], None] | None = None,
    ) -> None:
        self.after_start = after_start
        self.src = src
        self.dst = dst
        self.plan = plan
        self.describe_source = describe_source
        self.log: list[str] = []  # what happened, with times, for error messages
        self._t0 = time.monotonic()

    def _note(self, text: str) -> None:
        self.log.append(f"+{time.monotonic() - self._t0:7.3f} s {text}")

    def _fail(self, cls: type[MigrationError], why: str) -> MigrationError:
        src_state = self._safe(lambda: self.src.execute("query-migrate", timeout=5))
        status = self._safe(lambda: self.src.execute("query-status", timeout=5))
        return cls(
            f"{why}\nsource query-status: {status}\nsource query-migrate: {src_state}\n"
            f"{self.describe_source()}\n{self.dst.describe()}\nsteps:\n" + "\n".join(self.log[-15:])
        )

    @staticmethod
    def _safe(fn: Callable[[], object]) -> object:
        try:
            return fn()
        except Exception as exc:
            return f"unavailable ({exc})"

    # --------------------------------------------------------------- phases

    def _configure(self) -> int:
        plan, dst = self.plan, self.dst
        assert dst.qmp is not None
        caps = [{"capability": "events", "state": True}]
        if plan.mode == "postcopy":
            caps.append({"capability": "postcopy-ram", "state": True})
        self.src.execute("migrate-set-capabilities", {"capabilities": caps})
        dst_caps = list(caps)
        if plan.mode == "postcopy":
            dst_caps.append({"capability": "postcopy-blocktime", "state": True})
        dst.qmp.execute("migrate-set-capabilities", {"capabilities": dst_caps})
        params = {
            "max-bandwidth": int(plan.max_bandwidth or DEFAULT_MAX_BANDWIDTH),
            "downtime-limit": int(plan.downtime_limit_ms or DEFAULT_DOWNTIME_LIMIT_MS),
        }
        self.src.execute("migrate-set-parameters", params)
        listen = plan.listen_address or plan.connect_address
        dst.qmp.execute("migrate-incoming", {"uri": f"tcp:{listen}:0"})
        info = dst.qmp.execute("query-migrate")
        for addr in info.get("socket-address", []):
            if addr.get("type") == "inet" and addr.get("port"):
                self._note(f"destination listens on {listen}:{addr['port']}")
                return int(addr["port"])
        raise self._fail(MigrationError, f"destination reported no listening port after migrate-incoming: {info}")

    def _progress(self) -> tuple[str, int, int]:
        try:
            info = self.src.execute("query-migrate", timeout=10)
        except MigrationError as exc:
            raise self._fail(MigrationError, f"the source stopped answering QMP during the migration: {exc}") from None
        ram = info.get("ram", {})
        return str(info.get("status", "none")), int(ram.get("transferred", 0)), int(ram.get("total", 0))

    def _switch_to_postcopy(self, mark: int) -> float:
        """Poll progress (the only thing QEMU does not send as an event) until the switch point."""
        plan = self.plan
        deadline = self._t0 + plan.timeout
        while True:
            status, sent, total = self._progress()
            share = sent / total if total else 0.0
            if status in FINAL:
                self._note(f"migration ended ({status}) before the switch to post-copy")
                return share
            if status == "active" and share >= plan.postcopy_at:
                self.src.execute("migrate-start-postcopy")
                self._note(f"migrate-start-postcopy at {share:.1%} of RAM sent")
                return share
            if time.monotonic() > deadline:
                why = (
                    f"post-copy switch point {plan.postcopy_at:.0%} not reached in {plan.timeout:.0f} s "
                    f"(status {status}, {share:.1%} sent)"
                )
                raise self._fail(MigrationTimeout, why)
            self._check_destination_alive()
            time.sleep(0.01)

    def _check_destination_alive(self) -> None:
        code = self.dst.exit_status()
        if code is not None:
            raise self._fail(MigrationError, f"destination QEMU exited with status {code} during the migration")

    def _await_end(self, mark: int) -> tuple[Event, float]:
        plan = self.plan
        last_sent, last_move = -1, time.monotonic()
        while True:
            event = self.src.wait_event(
                lambda e: e.name == "MIGRATION" and e.data.get("status") in FINAL, timeout=1.0, start=mark
            )
            if event is not None:
                noticed = time.time()
                self._note(f"source event MIGRATION {event.data['status']}")
                return event, noticed
            now = time.monotonic()
            status, sent, total = self._progress()
            if sent != last_sent:
                last_sent, last_move = sent, now
            elif now - last_move > plan.stall_timeout:
                why = (
                    f"migration stalled: {sent} of {total} bytes sent and nothing moved for "
                    f"{plan.stall_timeout:.0f} s (status {status})"
                )
                raise self._fail(MigrationStalled, why)
            if now - self._t0 > plan.timeout:
                why = (
                    f"migration did not finish within {plan.timeout:.0f} s (status {status}, "
                    f"{sent / 2**20:.0f} MiB sent of {total / 2**20:.0f} MiB RAM)"
                )
                raise self._fail(MigrationTimeout, why)
            self._check_destination_alive()

    def _final_info(self, bound: float = 2.0) -> dict:
        """The source's query-migrate once QEMU has filled in its totals.

        QEMU emits the "completed" event before it computes total time and downtime (the
        migration thread does that right after), so a query at once can read zeros.
        """
        deadline = time.monotonic() + bound
        while True:
            info = self.src.execute("query-migrate")
            if info.get("total-time", 0) > 0 or time.monotonic() > deadline:
                return info
            time.sleep(0.01)

    def _cancel(self) -> None:
        with contextlib.suppress(Exception):
            self.src.execute("migrate_cancel", timeout=5)

    # ------------------------------------------------------------------ run

    def run(self) -> MigrationFigures:
        try:
            return self._run()
        except (QMPTimeout, QMPCommandError) as exc:
            self._cancel()
            raise self._fail(MigrationError, f"QMP failed during the migration: {exc}") from None

    def _run(self) -> MigrationFigures:
        plan = self.plan
        port = self._configure()
        mark = self.src.mark()
        dst_mark = self.dst.qmp.mark() if self.dst.qmp else 0
        self.src.execute("migrate", {"uri": f"tcp:{plan.connect_address}:{port}"})
        self._note(f"migrate tcp:{plan.connect_address}:{port} ({plan.mode})")
        switch = None
        try:
            if self.after_start is not None:
                self.after_start(self.dst)
            if plan.mode == "postcopy":
                switch = self._switch_to_postcopy(mark)
            event, noticed = self._await_end(mark)
        except MigrationError:
            self._cancel()
            raise
        if event.data["status"] != "completed":
            info = self._safe(lambda: self.src.execute("query-migrate", timeout=5))
            desc = info.get("error-desc", "") if isinstance(info, dict) else ""
            raise self._fail(MigrationError, f"migration {event.data['status']}: {desc or 'no error description'}")
        src_info = self._final_info()
        assert self.dst.qmp is not None
        resumed = self.dst.qmp.wait_event(lambda e: e.name == "RESUME", plan.resume_timeout, start=dst_mark)
        dst_status = self.dst.status()
        if resumed is None and dst_status != "running":
            raise self._fail(
                MigrationError,
                f"destination did not resume within {plan.resume_timeout:.0f} s after completion (status {dst_status})",
            )
        dst_info = self.dst.qmp.execute("query-migrate")
        figures = MigrationFigures.from_qmp(plan.mode, src_info, dst_info)
        figures.notice_latency_ms = (noticed - event.qemu_time) * 1000.0
        figures.switchover_at = switch
        src_status = self.src.execute("query-status")["status"]
        if src_status != "postmigrate":
            raise self._fail(MigrationError, f"source is {src_status!r} after the migration, not 'postmigrate'")
        dst_status = self.dst.status()
        if dst_status != "running":
            raise self._fail(MigrationError, f"destination is {dst_status!r} after the migration, not 'running'")
        return figures
