"""QEMULinuxStrategy: boot the qemu-linux target to its shell, with labgrid's own drivers.

The target is labgrid's QEMUDriver (kernel + initramfs, no disk), ShellDriver on its
console and, optionally, SSHDriver through a port QEMU's user network forwards to the
guest's dropbear (as labgrid's examples/qemu-networking does). What lab.yaml cannot know
is filled in here at boot: the image files of ``apflab images linux`` (unless lab.yaml's
``images:`` name others), ``-initrd``, the accelerator (KVM on an arm64 host with
/dev/kvm, TCG elsewhere) and the client key. QEMU is started through a small launcher
that keeps its stderr in a file and can put it into a cgroup (scenario A).

Every wait is bounded: QEMU's start (``start_timeout``), the shell (the ShellDriver's
``login_timeout``), SSH (the SSHDriver's ``connection_timeout``), stopping
(``stop_timeout``, then QEMU is killed). A failure raises :class:`GuestBootError` with
QEMU's state, its stderr and the console's last lines, after stopping QEMU so the next
test can boot again.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import os
import platform
import shlex
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import ClassVar

import attr
from labgrid.binding import BindingState
from labgrid.factory import target_factory
from labgrid.strategy.common import Strategy, StrategyError
from labgrid.util.helper import get_free_port

from apflab.lab import keys
from apflab.lab.consolelog import ConsoleTail
from apflab.lab.qemustate import qemu_state
from apflab.safetext import from_target


class Status(enum.Enum):
    unknown = 0
    off = 1
    shell = 2


class GuestBootError(StrategyError):
    """The Linux guest did not come up; the message says where it stopped and shows the console."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)

    def __str__(self) -> str:
        return self.msg


def host_has_kvm() -> bool:
    return platform.machine() in ("aarch64", "arm64") and os.access("/dev/kvm", os.R_OK | os.W_OK)


@target_factory.reg_driver
@attr.s(eq=False)
class QEMULinuxStrategy(Strategy):
    """States ``off`` and ``shell``; :meth:`boot` reboots with other memory, command line or cgroup.

    Args:
        image (str): apflab image recipe that provides kernel, initramfs and client key
        initramfs (str): images key of the initramfs (filled from the recipe when absent)
        accel (str): ``auto`` (KVM on an arm64 host with /dev/kvm, else TCG), ``tcg`` or ``kvm``
        apf (bool): the guest kernel carries the APF series, so ``no-kvmapf`` switches APF off
        netdev (str): id of the user-mode netdev that forwards SSH
        guest_address (str): the guest's address on that network (set by its init)
        start_timeout (float): seconds for QEMU to open its console and QMP
        stop_timeout (float): seconds for QEMU to quit before it is killed
    """

    bindings: ClassVar[dict] = {"qemu": "QEMUDriver", "shell": "ShellDriver", "ssh": {"SSHDriver", None}}

    image = attr.ib(default="linux", validator=attr.validators.instance_of(str))
    initramfs = attr.ib(default="linux-initramfs", validator=attr.validators.instance_of(str))
    accel = attr.ib(default="auto", validator=attr.validators.in_(["auto", "tcg", "kvm"]))
    apf = attr.ib(default=False, validator=attr.validators.instance_of(bool))
    netdev = attr.ib(default="net0", validator=attr.validators.instance_of(str))
    guest_address = attr.ib(default="10.0.2.15", validator=attr.validators.instance_of(str))
    start_timeout = keys.timeout(30.0)
    stop_timeout = keys.timeout(15.0)
    status = attr.ib(default=Status.unknown)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._rundir = Path(tempfile.mkdtemp(prefix="apflab-qemu-linux-"))
        atexit.register(shutil.rmtree, self._rundir, True)
        self.stderr_path = self._rundir / "qemu.stderr"
        self._user: dict[str, str | None] | None = None
        self._ssh_port = 0
        self._tail: ConsoleTail | None = None
        self._boot_mark = 0
        self.boot_seconds: float | None = None  # QEMU start to shell prompt, last boot
        self.boot_config: dict[str, object] = {}
        self.cgroup: Path | None = None  # the cgroup QEMU runs in, when booted with one

    # ----------------------------------------------------------- properties

    @property
    def accelerator(self) -> str:
        if self.accel == "auto":
            return "kvm" if host_has_kvm() else "tcg"
        return self.accel

    def apf_switch(self) -> tuple[bool, str]:
        """Whether APF can be switched on and off here, and the reason when it cannot."""
        if self.accelerator != "kvm":
            return False, (
                f"{self.target.name} runs under TCG on a {platform.machine()} host: asynchronous page "
                "faults need KVM on an arm64 host with the out-of-tree APF series"
            )
        if not self.apf:
            return False, (
                f"{self.target.name}'s guest kernel is Debian's stock kernel without the APF series "
                "(set apf: true for a patched kernel, which no-kvmapf switches off)"
            )
        return True, ""

    @property
    def command(self):  # a labgrid CommandProtocol driver
        """The SSHDriver when bound, else the ShellDriver."""
        return self.ssh if self.ssh is not None else self.shell

    @property
    def ssh_port(self) -> int:
        return self._ssh_port

    def console_tail(self, chars: int = 2000) -> str:
        return self._tail.tail(chars, since=self._boot_mark) if self._tail else ""

    def stderr_tail(self, chars: int = 1500) -> str:
        try:
            return from_target(self.stderr_path.read_bytes()[-chars:], chars).strip()
        except OSError:
            return ""

    def qemu_state(self) -> str:
        """QEMU's run state, or how its process ended (bounded: see apflab.lab.qemustate)."""
        return qemu_state(self.qemu)

    def describe(self) -> str:
        parts = [f"source QEMU ({self.target.name}): {self.qemu_state()}"]
        err = self.stderr_tail(800)
        if err:
            parts.append(f"source QEMU stderr: {err}")
        parts.append(f"source console tail:\n{self.console_tail(1500)}")
        return "\n".join(parts)

    # ---------------------------------------------------------- transitions

    def transition(self, status: Status | str) -> None:  # type: ignore[override]
        if not isinstance(status, Status):
            status = Status[status]
        if status is Status.unknown:
            raise StrategyError(f"can not transition to {status}")
        if status is Status.off:
            self._stop()
        elif status is Status.shell:
            if self.status is Status.shell and self.qemu_state() == "running" and not self.boot_config:
                # Still up; the ShellDriver may have been released by another console user.
                try:
                    self.target.activate(self.shell)
                    return
                except Exception:
                    pass  # not answering: boot afresh
            self.boot()

    def force(self, status: Status | str) -> None:  # type: ignore[override]
        self.transition(status)

    def boot(
        self, memory: str | None = None, boot_args: str = "", apf: bool | None = None, cgroup: Path | None = None
    ) -> float:
        """(Re)boot to the shell; ``memory`` overrides lab.yaml's, ``boot_args`` are appended.

        ``apf=False`` adds ``no-kvmapf`` (only meaningful where :meth:`apf_switch` allows it);
        ``cgroup`` is a cgroup v2 directory QEMU is started in. Returns seconds to the shell.
        """
        self._stop()
        user = self._user_settings()
        extra_boot = boot_args.split()
        if apf is False:
            extra_boot.append("no-kvmapf")
        self.boot_config = {
            k: v for k, v in (("memory", memory), ("boot_args", " ".join(extra_boot)), ("cgroup", cgroup)) if v
        }
        self._configure(user, memory, " ".join(extra_boot), cgroup)
        self._boot_mark = self._tail.mark() if self._tail else 0
        t0 = time.monotonic()
        try:
            self.target.activate(self.qemu)
            self.qemu._socket.settimeout(self.start_timeout)  # labgrid's accept() would wait forever
            self.qemu.on()
        except Exception as exc:
            raise self._boot_failed("QEMU did not start", exc) from None
        if self.ssh is not None:
            self._forward_ssh()
        try:
            self.target.activate(self.shell)
        except Exception as exc:
            raise self._boot_failed("the guest did not reach its shell prompt", exc) from None
        self.boot_seconds = time.monotonic() - t0
        if self.ssh is not None:
            try:
                self.target.activate(self.ssh)
            except Exception as exc:
                log = self._shell_text("cat /tmp/dropbear.log")
                raise self._boot_failed(
                    f"the shell is up but SSH to 127.0.0.1:{self._ssh_port} failed "
                    f"(guest dropbear log: {log or 'empty'})",
                    exc,
                ) from None
        self.status = Status.shell
        self.cgroup = cgroup
        return self.boot_seconds

    # -------------------------------------------------------------- helpers

    def _user_settings(self) -> dict[str, str | None]:
        """lab.yaml's QEMUDriver settings, captured once before the strategy changes them."""
        if self._user is None:
            q = self.qemu
            self._user = {
                "extra_args": q.extra_args or "",
                "boot_args": q.boot_args,
                "memory": q.memory,
                "cpu": q.cpu,
                "kernel": q.kernel,
                "qemu_bin": q.qemu_bin,
            }
            self._tail = ConsoleTail(self.qemu)
        return self._user

    def _image_paths(self, kernel_key: str) -> tuple[str, str, str]:
        """Kernel and initramfs paths (lab.yaml's ``images:`` first, else the recipe) and the client key."""
        env = self.target.env
        images = env.config.data.setdefault("images", {}) if env else {}
        built: dict[str, Path] = {}
        if kernel_key not in images or self.initramfs not in images or (self.ssh is not None and not self.ssh.keyfile):
            from apflab.images import ImageError, ensure

            try:
                outputs = ensure([self.image])[self.image]
            except ImageError as exc:
                raise GuestBootError(f"{self.target.name}: image {self.image!r} could not be built: {exc}") from None
            built = {p.name: p for p in outputs}
            images.setdefault(kernel_key, str(built["Image"]))
            images.setdefault(self.initramfs, str(built["initramfs.cpio.gz"]))
        resolve = env.config.resolve_path if env else str
        key = str(built.get("id_ed25519", ""))
        return resolve(images[kernel_key]), resolve(images[self.initramfs]), key

    def _configure(self, user: dict[str, str | None], memory: str | None, extra_boot: str, cgroup: Path | None) -> None:
        q = self.qemu
        q.kernel = user["kernel"] or "linux-kernel"
        _, initramfs, key = self._image_paths(q.kernel)
        if self.ssh is not None and not self.ssh.keyfile:
            self.ssh.keyfile = key
        accel = self.accelerator
        q.cpu = "host" if accel == "kvm" else str(user["cpu"])
        q.memory = memory or str(user["memory"])
        q.boot_args = " ".join(a for a in (user["boot_args"] or "", extra_boot) if a) or None
        q.extra_args = f"{user['extra_args']} -initrd {shlex.quote(initramfs)} -accel {accel}".strip()
        self._install_launcher(str(user["qemu_bin"]), cgroup)

    def _install_launcher(self, tool_key: str, cgroup: Path | None) -> None:
        """Point the QEMUDriver's tool at a launcher that logs stderr (and joins ``cgroup``)."""
        env = self.target.env
        if env is None:
            return
        tools = env.config.data.setdefault("tools", {})
        real = getattr(self, "_real_qemu", None)
        if real is None:
            configured = str(tools.get(tool_key, tool_key))
            real = shutil.which(configured) or configured
            self._real_qemu = real
        launcher = self._rundir / "qemu-launcher"
        join = ""
        if cgroup is not None:
            join = f"echo $$ > {shlex.quote(str(cgroup / 'cgroup.procs'))} || exit 97\n"
        launcher.write_text(
            "#!/bin/sh\n# apflab: QEMU for the qemu-linux target; stderr kept for error messages\n"
            f'{join}exec {shlex.quote(real)} "$@" 2>>{shlex.quote(str(self.stderr_path))}\n'
        )
        launcher.chmod(0o755)
        self.stderr_path.write_text("")
        tools[tool_key] = str(launcher)

    @property
    def real_qemu(self) -> str:
        """The QEMU binary behind the launcher."""
        return getattr(self, "_real_qemu", "") or str(self.qemu.qemu_bin)

    def _forward_ssh(self) -> None:
        if not self._ssh_port:
            self._ssh_port = get_free_port()
            self.qemu.add_port_forward("tcp", "127.0.0.1", self._ssh_port, self.guest_address, 22, self.netdev)
        ns = self.ssh.networkservice
        ns.address, ns.port = "127.0.0.1", self._ssh_port

    def _shell_text(self, cmd: str) -> str:
        try:
            out, _, _ = self.shell.run(cmd, timeout=10)
            return " | ".join(out)[-500:]
        except Exception:
            return ""

    def _boot_failed(self, what: str, exc: Exception) -> GuestBootError:
        text = " ".join(str(exc).split())[:400] or type(exc).__name__
        msg = (
            f"{self.target.name}: {what}: {type(exc).__name__}: {text}\nQEMU: {self.qemu_state()}\n"
            f"QEMU stderr: {self.stderr_tail() or '(empty)'}\nconsole tail:\n{self.console_tail() or '(silent)'}"
        )
        self._stop()
        return GuestBootError(msg)

    def _stop(self) -> None:
        """Stop QEMU (quit, or kill after ``stop_timeout``) and leave every driver inactive."""
        ssh_active = self.ssh is not None and self.ssh.state is BindingState.active
        if ssh_active and self.qemu_state() == "running":
            with contextlib.suppress(Exception):
                self.target.deactivate(self.ssh)
        if self.shell.state is BindingState.active:
            with contextlib.suppress(Exception):
                self.target.deactivate(self.shell)
        q = self.qemu
        child = getattr(q, "_child", None)
        if child is not None and child.poll() is not None:
            q.status = 0  # already dead: nothing to quit
        if q.state is BindingState.active:
            timer = None
            if child is not None:
                timer = threading.Timer(self.stop_timeout, lambda: child.poll() is None and child.kill())
                timer.start()
            try:
                self.target.deactivate(q)
            except Exception:
                if child is not None and child.poll() is None:
                    child.kill()
                q.status = 0
                with contextlib.suppress(Exception):
                    self.target.deactivate(q)
            finally:
                if timer is not None:
                    timer.cancel()
        if child is not None and child.poll() is None:
            child.kill()
            with contextlib.suppress(Exception):
                child.wait(5)
        q._child = None
        # A frozen guest's SSH (e.g. a migrated source) goes last: with QEMU gone its connection
        # ends at once, where labgrid would otherwise wait 60 s for its keepalive session.
        if self.ssh is not None and self.ssh.state is BindingState.active:
            with contextlib.suppress(Exception):
                self.target.deactivate(self.ssh)
        self.status = Status.off
