"""RemoteVmmDriver: apflab-vmm with the agent on a lab board's (patched) host kernel, over SSH.

The same VMM as the ``qemu-kvm`` target's, run on a real arm64 board through labgrid's
SSHDriver (its control connection): the VMM and the agent are copied to the board
(``cat`` over SSH: no scp or sftp needed on the board), the VMM runs as the command of
an SSH session whose stdin/stdout are the agent's console here, and its channel listens
on the board's loopback (``--channel listen:127.0.0.1:PORT``), reached through an SSH
port forward (SSHDriver.forward_local_port). SDEI is the kernel's where it has
KVM_CAP_ARM_SDEI (the series under test), else forwarded to the reference model here
(Linux >= 6.4), else absent; the VMM's announce line says which.

It offers ConsoleProtocol, PowerProtocol and TargetHealthProtocol like QEMUKvmDriver, so
AgentDriver drives a board's VM as it drives the nested one: ``on()`` starts a fresh VMM,
``off()`` ends it (BYE on the channel, then EOF, then the SSH session is stopped). When a
run fails, the board's kernel log is searched for an oops (``dmesg`` over SSH).
"""

from __future__ import annotations

import contextlib
import shlex
import socket
import subprocess
from pathlib import Path, PurePosixPath
from typing import ClassVar

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.protocol import ConsoleProtocol, PowerProtocol
from labgrid.step import step

from apflab.images import ImageError, cache_dir
from apflab.images.kvm import DEFAULT_KERNEL, KvmHostImage
from apflab.kvm.console import ConsoleWatch
from apflab.kvm.host import VmmHost
from apflab.kvm.l1 import CONSOLES, SDEI_MODES
from apflab.kvm.link import LineLink
from apflab.lab.qemuprocess import resolve_image, stop_process
from apflab.lab.vmmhealth import VmmHealth
from apflab.profiles import PROFILES

AGENTS = {"fast": "agent-fastcons.elf", "pl011": "agent.elf"}


@target_factory.reg_driver
@attr.s(eq=False)
class RemoteVmmDriver(VmmHealth, Driver, ConsoleProtocol, PowerProtocol):
    """Binds to:
        ssh: SSHDriver (the board's host OS, running the kernel under test)

    Args:
        vmm (str): apflab-vmm here (``recipe:file`` or a path; "" = the kvm image's)
        agent (str): the agent ELF here ("" = the kvm image's build for ``console``)
        upload (bool): copy vmm and agent to ``workdir`` on the board; false: they are
            paths on the board already (a board image that carries them)
        workdir (str): folder on the board for the copies
        vcpus (int): the agent VM's vCPUs
        memory (int): its RAM in MiB
        sdei (str): auto (kernel, else forward, else none), kernel, forward, none
        dispatcher (str): the profile of the reference model that dispatches forwarded SDEI
        console (str): the agent's console: fast or pl011
        channel_port (int): the VMM channel's port on the board's loopback
        start_timeout (float): seconds from starting the VMM to its HELLO on the channel
        stop_timeout (float): seconds for the VMM to end before its session is stopped
    """

    bindings: ClassVar[dict] = {"ssh": "SSHDriver"}

    vmm = attr.ib(default="", validator=attr.validators.instance_of(str))
    agent = attr.ib(default="", validator=attr.validators.instance_of(str))
    upload = attr.ib(default=True, validator=attr.validators.instance_of(bool))
    workdir = attr.ib(default="/tmp/apflab-vmm", validator=attr.validators.instance_of(str))
    vcpus = attr.ib(default=2, validator=attr.validators.instance_of(int))
    memory = attr.ib(default=1024, validator=attr.validators.instance_of(int))
    sdei = attr.ib(default="auto", validator=attr.validators.in_(SDEI_MODES))
    dispatcher = attr.ib(default="spec", validator=attr.validators.in_(sorted(PROFILES)))
    console = attr.ib(default="fast", validator=attr.validators.in_(CONSOLES))
    channel_port = attr.ib(default=5556, validator=attr.validators.instance_of(int))
    start_timeout = attr.ib(default=30.0, converter=float)
    stop_timeout = attr.ib(default=5.0, converter=float)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._proc: subprocess.Popen | None = None
        self._forward: contextlib.ExitStack | None = None
        self._local_port: int | None = None
        self._paths: tuple[str, str] | None = None
        self.host: VmmHost | None = None
        self.vm_starts = 0

    # ----------------------------------------------------------- files and commands

    def local_files(self) -> tuple[Path, Path]:
        """The VMM and agent to copy: lab.yaml's, else the kvm image's (`apflab images kvm`)."""
        image = KvmHostImage(DEFAULT_KERNEL).dir(cache_dir())
        vmm = resolve_image(self.vmm) if self.vmm else image / "apflab-vmm"
        agent = resolve_image(self.agent) if self.agent else image / AGENTS[self.console]
        for path in (vmm, agent):
            if not path.exists():
                raise ImageError(f"{path} is missing: build it with `apflab images kvm`")
        return vmm, agent

    def _ssh_command(self, command: str) -> list[str]:
        """``ssh`` through the SSHDriver's control connection, running ``command`` on the board."""
        ns = self.ssh.networkservice
        tool = self.target.env.config.get_tool("ssh") if self.target.env else "ssh"
        user = self.ssh.username or ns.username
        return [tool, "-x", "-T", *self.ssh.ssh_prefix, "-p", str(ns.port), "-l", user, ns.address, "--", command]

    def _remote(self, command: str) -> str:
        out, err, code = self.ssh.run(command)
        if code != 0:
            raise OSError(f"on the board, `{command}` failed ({code}): {' '.join(err or out)[-300:]}")
        return "\n".join(out)

    def _put(self, local: Path, remote: str) -> None:
        with local.open("rb") as data:
            r = subprocess.run(
                self._ssh_command(f"cat > {shlex.quote(remote)} && chmod 755 {shlex.quote(remote)}"),
                stdin=data,
                capture_output=True,
                timeout=self.start_timeout,
                check=False,
            )
        if r.returncode != 0:
            raise OSError(f"copying {local.name} to the board failed: {r.stderr.decode(errors='replace')[-300:]}")

    def _board_paths(self) -> tuple[str, str]:
        if self._paths is None:
            if self.upload:
                vmm, agent = self.local_files()
                self._remote(f"mkdir -p {shlex.quote(self.workdir)}")
                remote = [str(PurePosixPath(self.workdir) / p.name) for p in (vmm, agent)]
                self._put(vmm, remote[0])
                self._put(agent, remote[1])
                self._paths = (remote[0], remote[1])
            else:
                self._paths = (self.vmm, self.agent)
        return self._paths

    def command(self) -> str:
        vmm, agent = self._board_paths()
        args = [
            vmm,
            "--vcpus",
            str(self.vcpus),
            "--memory",
            str(self.memory),
            "--sdei",
            self.sdei,
            "--channel",
            f"listen:127.0.0.1:{self.channel_port}",
            "--connect-timeout",
            f"{self.start_timeout:g}",
            agent,
        ]
        return "exec " + " ".join(shlex.quote(a) for a in args) + " 2>&1"

    # ----------------------------------------------------------- lifecycle

    def on_deactivate(self) -> None:
        self.off()
        if self._forward is not None:
            self._forward.close()
            self._forward = None
        self._paths = None

    def _connect(self) -> LineLink:
        assert self._local_port is not None
        sock = socket.create_connection(("127.0.0.1", self._local_port), timeout=self.start_timeout)
        return LineLink.from_socket(
            sock, f"VMM channel through the SSH forward to the board's port {self.channel_port}"
        )

    @Driver.check_active
    @step()
    def on(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        command = self.command()
        if self._forward is None:
            self._forward = contextlib.ExitStack()
            self._local_port = self._forward.enter_context(self.ssh.forward_local_port(self.channel_port))
        self.host = VmmHost(self.dispatcher, self.console)
        self.host.serve(self._connect, self.start_timeout, retry=True)
        self._proc = subprocess.Popen(
            self._ssh_command(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.vm_starts += 1

    @Driver.check_active
    @step()
    def off(self) -> None:
        proc, self._proc = self._proc, None
        if self.host is not None:
            self.host.end_vm()
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # EOF: the VMM ends (it is not run with --keep-on-eof)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self.stop_timeout)
        stop_process(proc, self.stop_timeout)
        if self.host is not None:
            self.host.close()

    # ----------------------------------------------------------- console

    @Driver.check_active
    def write(self, data: bytes) -> None:
        if self._proc is None or self._proc.poll() is not None or self._proc.stdin is None:
            raise OSError(f"the VMM on the board is not running ({self.status()})")
        self._proc.stdin.write(data)
        self._proc.stdin.flush()

    # ----------------------------------------------------------- health

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self.failure() is None

    def status(self) -> str:
        if self._proc is None:
            return "not started"
        code = self._proc.poll()
        failure = self.failure()
        state = "VMM running on the board" if code is None else f"the VMM's SSH session ended with status {code}"
        return f"{state}; {failure}" if failure else state

    def crash_tail(self, lines: int = 10) -> str:
        """The VMM's report, and an oops in the board's kernel log if there is one."""
        report = super().crash_tail(lines)
        try:
            out, _, _ = self.ssh.run("dmesg | tail -n 200", timeout=10)
        except Exception as exc:  # the board may be gone: say so, do not hide the rest
            return f"{report}; board's dmesg unreachable: {exc}"
        kernel = ConsoleWatch()
        kernel.feed("\n".join(out).encode())
        return f"{report}; board kernel: {kernel.failure_report()}" if kernel.kind == "kernel" else report
