"""MigrationDriver: live-migrate the guest of a labgrid QEMUDriver to a QEMU on another host.

labgrid's QEMUDriver starts one QEMU and its QMP helper drops events, so this driver
adds a QMP socket of its own to the source's command line when it is bound, starts the
destination with the same machine (``-incoming defer``) on a host reached over SSH
(:class:`~apflab.lab.sshhost.MigrationHostProtocol`), and runs pre-copy or post-copy
through qemu.qmp with event listeners (:mod:`apflab.migrate.session`). It supports the
kvm-unit-tests handshake: wait for a line on the source console, migrate, then send a
key on the destination console. Like the QEMUDriver's other clients it uses the source
console exclusively while active (labgrid deactivates the ShellDriver meanwhile).
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory

from apflab.lab import keys
from apflab.lab.consolelog import ConsoleDrain, ConsoleTail
from apflab.lab.qemustate import qemu_state
from apflab.lab.sshhost import MigrationHostProtocol
from apflab.migrate import MigrationError
from apflab.migrate.destination import Destination
from apflab.migrate.figures import MigrationFigures
from apflab.migrate.qmp import QMPSession
from apflab.migrate.session import Migration, MigrationPlan

FILE_OPTIONS = ("-kernel", "-initrd", "-dtb", "-bios")


def strip_hostfwd(netdev: str) -> str:
    """A -netdev/-nic value without hostfwd= (the destination must not take the source's ports)."""
    return ",".join(p for p in netdev.split(",") if not p.startswith("hostfwd="))


@target_factory.reg_driver
@attr.s(eq=False)
class MigrationDriver(Driver):
    """Migrates the bound QEMUDriver's guest; keeps the destination until the next migration.

    Args:
        mode (str): default mode, ``precopy`` or ``postcopy``
        max_bandwidth (int): pre-copy bandwidth in bytes/s (0: QEMU's default, 128 MiB/s in 7.2)
        downtime_limit (int): pre-copy downtime limit in ms (0: QEMU's default, 300 ms)
        postcopy_at (float): share of guest RAM sent before switching to post-copy
        timeout (float): seconds for the whole migration (pre-copy that never converges ends here)
        stall_timeout (float): seconds without a transferred byte before the migration counts as stalled
        start_timeout (float): seconds for the destination QEMU to answer QMP
        handshake_timeout (float): seconds to wait for the guest's handshake line
        resume_timeout (float): seconds for the destination to resume after completion
    """

    bindings: ClassVar[dict] = {"source": "QEMUDriver", "host": MigrationHostProtocol}

    mode = attr.ib(default="precopy", validator=attr.validators.in_(["precopy", "postcopy"]))
    max_bandwidth = attr.ib(default=0, converter=int)
    downtime_limit = attr.ib(default=0, converter=int)
    postcopy_at = attr.ib(default=0.1, converter=float)
    timeout = keys.timeout(300.0)
    stall_timeout = keys.timeout(20.0)
    start_timeout = keys.timeout(30.0)
    handshake_timeout = keys.timeout(120.0)
    resume_timeout = keys.timeout(15.0)

    def __attrs_post_init__(self) -> None:
        # Set up before binding: labgrid binds (and calls on_supplier_bound) in the base class.
        self._rundir = Path(tempfile.mkdtemp(prefix="apflab-migration-"))
        atexit.register(shutil.rmtree, self._rundir, True)
        self.qmp_path = self._rundir / "source.qmp"
        self.destination: Destination | None = None
        self.history: list[MigrationFigures] = []
        self._tail: ConsoleTail | None = None
        super().__attrs_post_init__()

    def on_supplier_bound(self, supplier: object) -> None:
        if supplier is self.source:
            arg = f"-qmp unix:{self.qmp_path},server=on,wait=off"
            if arg not in (supplier.extra_args or ""):
                supplier.extra_args = f"{supplier.extra_args or ''} {arg}".strip()
            self._tail = ConsoleTail(supplier)

    def on_deactivate(self) -> None:
        self.finish()

    # ------------------------------------------------------------ helpers

    def source_state(self) -> str:
        return qemu_state(self.source)

    def describe_source(self) -> str:
        tail = self._tail.tail(1500) if self._tail else ""
        return f"source QEMU ({self.target.name}): {self.source_state()}\nsource console tail:\n{tail}"

    def destination_argv(self) -> tuple[list[str], list[Path]]:
        """The source's QEMU command line for the destination host, and the files it loads."""
        base = self.source.get_qemu_base_args()
        argv, uploads = [self.host.qemu_binary()], []
        args = iter(base[1:])
        for arg in args:
            if arg == "-nographic":
                continue  # the destination gets -display none and its own serial/QMP
            if arg == "-qmp":
                next(args, None)
                continue
            if arg in FILE_OPTIONS:
                value = next(args)
                argv += [arg, value]
                uploads.append(Path(value))
                continue
            if arg in ("-netdev", "-nic"):
                argv += [arg, strip_hostfwd(next(args))]
                continue
            argv.append(arg)
        return argv, uploads

    def _with_source(self, exc: MigrationError) -> MigrationError:
        return type(exc)(f"{exc}\n{self.describe_source()}")

    # -------------------------------------------------------------- use

    @Driver.check_active
    def start_destination(self) -> Destination:
        """Start the destination QEMU (``-incoming defer``) on the host; errors carry the source's state."""
        self.finish()
        try:
            host = self.host.remote()
            argv, uploads = self.destination_argv()
            self.destination = Destination(
                host, argv, uploads, f"{self.target.name}-destination", self.start_timeout
            ).start()
        except MigrationError as exc:
            raise self._with_source(exc) from None
        return self.destination

    @Driver.check_active
    def migrate(
        self,
        mode: str | None = None,
        *,
        handshake: str | None = None,
        release: str | None = None,
        max_bandwidth: int | None = None,
        downtime_limit: int | None = None,
        postcopy_at: float | None = None,
        timeout: float | None = None,
        stall_timeout: float | None = None,
        during: Callable[[Destination], None] | None = None,
    ) -> MigrationFigures:
        """Migrate the running guest; returns the figures after checking both sides.

        ``handshake``: a regex the guest prints on the source console before the harness
        migrates; ``release``: text sent to the destination console afterwards (the
        kvm-unit-tests "press a key"). ``during`` is called with the destination right
        after ``migrate`` was issued (tests use it to inject faults).
        """
        if not self.source.status:
            raise MigrationError(f"{self.target.name}: the source QEMU is not running; boot the guest first")
        plan = MigrationPlan(
            mode=mode or self.mode,
            max_bandwidth=self.max_bandwidth or None if max_bandwidth is None else max_bandwidth,
            downtime_limit_ms=self.downtime_limit or None if downtime_limit is None else downtime_limit,
            postcopy_at=self.postcopy_at if postcopy_at is None else postcopy_at,
            timeout=self.timeout if timeout is None else timeout,
            stall_timeout=self.stall_timeout if stall_timeout is None else stall_timeout,
            resume_timeout=self.resume_timeout,
            connect_address=self.host.migration_address(),
        )
        src = QMPSession(f"{self.target.name}-source")
        try:
            try:
                src.connect(str(self.qmp_path), timeout=self.start_timeout)
            except MigrationError as exc:
                raise self._with_source(MigrationError(f"source QMP socket {self.qmp_path}: {exc}")) from None
            dst = self.start_destination()
            if handshake:
                self._await_handshake(handshake, dst)
            # Keep reading the source console while migrating: a full console socket blocks the
            # guest's UART write in QEMU with the big lock held, and with it QMP.
            with ConsoleDrain(self.source, self._tail):
                figures = Migration(src, dst, plan, self.describe_source, during).run()
            if release is not None and dst.console is not None:
                dst.console.write(release)
        finally:
            src.close()
        self.history.append(figures)
        return figures

    def _await_handshake(self, pattern: str, dst: Destination) -> None:
        try:
            self.source.expect(re.compile(pattern.encode()), timeout=self.handshake_timeout)
        except Exception as exc:
            raise MigrationError(
                f"the guest never printed the handshake {pattern!r} within "
                f"{self.handshake_timeout:.0f} s ({type(exc).__name__})\n{self.describe_source()}\n"
                f"{dst.describe()}"
            ) from None

    def finish(self) -> None:
        """Stop the last destination QEMU (the guest that lives there ends)."""
        if self.destination is not None:
            self.destination.stop()
            self.destination = None
