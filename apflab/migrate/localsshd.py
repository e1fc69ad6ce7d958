"""A throwaway OpenSSH server on 127.0.0.1: the "remote host" of the project's own tests.

It is Debian's real sshd (package openssh-server), started on a free port with a host
key and a client key made for this run only, so the migration code is exercised over a
real SSH connection with strict host-key checking against a known_hosts file that holds
exactly that host key. Nothing of the machine's own sshd configuration is used.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from apflab.migrate import HostError
from apflab.safetext import from_target

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def find_sshd() -> str:
    for cand in (shutil.which("sshd"), *SSHD_CANDIDATES):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise HostError("sshd not found: install Debian's openssh-server (apt-get install openssh-server)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_keypair(path: Path, comment: str) -> str:
    """An ed25519 key in OpenSSH format at ``path`` (0600) and ``path``.pub; returns the public line."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    line = f"{pub} {comment}"
    Path(f"{path}.pub").write_text(line + "\n")
    return line


class LocalSSHServer:
    """sshd on 127.0.0.1:<free port>; ``keyfile`` logs in as the current user; ``known_hosts`` pins its key."""

    def __init__(self, workdir: Path | None = None, start_timeout: float = 15.0) -> None:
        self.dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="apflab-sshd-"))
        self._own_dir = workdir is None
        self.address = "127.0.0.1"
        self.port = 0
        self.username = getpass.getuser()
        self.keyfile = self.dir / "id_client"
        self.known_hosts = self.dir / "known_hosts"
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen | None = None
        self._log = self.dir / "sshd.log"

    def start(self) -> LocalSSHServer:
        sshd = find_sshd()
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        host_pub = write_keypair(self.host_key, "apflab-throwaway-host")
        client_pub = write_keypair(self.keyfile, "apflab-throwaway-client")
        (self.dir / "authorized_keys").write_text(client_pub + "\n")
        os.chmod(self.dir / "authorized_keys", 0o600)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        self.port = free_port()
        config = self.dir / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress {self.address}\nHostKey {self.host_key}\n"
            f"PidFile {self.dir / 'sshd.pid'}\nAuthorizedKeysFile {self.dir / 'authorized_keys'}\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nAllowTcpForwarding yes\n"
            "Subsystem sftp internal-sftp\nLogLevel VERBOSE\nMaxStartups 50\nMaxSessions 50\n"
        )
        key_type, key_b64 = host_pub.split()[:2]
        self.known_hosts.write_text(f"[{self.address}]:{self.port} {key_type} {key_b64}\n")
        log = open(self._log, "wb")  # noqa: SIM115 (sshd keeps writing to it)
        self._proc = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise HostError(f"sshd exited with status {self._proc.returncode} at start: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((self.address, self.port), timeout=1) as s:
                s.settimeout(2)
                if s.recv(64).startswith(b"SSH-"):
                    return self
            time.sleep(0.05)
        self.stop()
        raise HostError(
            f"sshd on {self.address}:{self.port} did not answer within {self.start_timeout:.0f} s: {self.log_tail()}"
        )

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return from_target(self._log.read_bytes()[-chars:], chars).strip()
        except OSError:
            return "(no sshd log)"

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(5)
        self._proc = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalSSHServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
