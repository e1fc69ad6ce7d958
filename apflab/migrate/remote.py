"""A host reached over SSH with paramiko: commands, uploads, long-running processes.

Used for the migration destination's host (a lab host, or the throwaway local sshd of
the project's tests). Host keys are checked strictly against a known_hosts file that
must already hold the host's key: an unknown key and a changed key are both refused
with a message naming the host, the file and the fingerprints, never accepted
silently. Every network wait has a bound.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from apflab.migrate import HostError
from apflab.safetext import visible


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return f"{key.get_name()} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


class _RejectUnknown(paramiko.MissingHostKeyPolicy):
    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key) -> None:
        raise HostError(
            f"ssh {hostname}: host key {fingerprint(key)} is not in {self.known_hosts}; refusing to trust an "
            "unknown host key (check the fingerprint on the host, then add it: ssh-keyscan -p PORT HOST >> FILE)"
        )


@dataclass(frozen=True)
class CommandResult:
    status: int
    stdout: str
    stderr: str


class RemoteHost:
    """One SSH connection to ``username@address:port``, authenticated by ``keyfile`` only."""

    def __init__(
        self, address: str, port: int, username: str, keyfile: Path, known_hosts: Path, connect_timeout: float = 15.0
    ) -> None:
        self.address = address
        self.port = port
        self.username = username
        self.keyfile = Path(keyfile)
        self.known_hosts = Path(known_hosts)
        self.connect_timeout = connect_timeout
        self._client: paramiko.SSHClient | None = None

    def __str__(self) -> str:
        return f"{self.username}@{self.address}:{self.port}"

    @property
    def client(self) -> paramiko.SSHClient:
        if self._client is None:
            self.connect()
        assert self._client is not None
        return self._client

    def connect(self) -> None:
        if not self.known_hosts.is_file():
            raise HostError(
                f"ssh {self}: known_hosts file {self.known_hosts} does not exist; host keys are "
                "checked strictly, so the file must hold this host's key"
            )
        if not self.keyfile.is_file():
            raise HostError(f"ssh {self}: key file {self.keyfile} does not exist")
        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(_RejectUnknown(self.known_hosts))
        t = self.connect_timeout
        try:
            client.connect(
                self.address,
                self.port,
                self.username,
                key_filename=str(self.keyfile),
                look_for_keys=False,
                allow_agent=False,
                timeout=t,
                banner_timeout=t,
                auth_timeout=t,
            )
        except HostError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostError(
                f"ssh {self}: host key CHANGED: the server offered {fingerprint(exc.key)} but {self.known_hosts} "
                f"has {fingerprint(exc.expected_key)}; refusing to connect (a reinstalled host, or someone in "
                "between): check it and fix known_hosts"
            ) from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise HostError(
                f"ssh {self}: login refused for user {self.username} with key {self.keyfile}: {exc} "
                "(is the public key in the host's authorized_keys?)"
            ) from None
        except (paramiko.ssh_exception.NoValidConnectionsError, ConnectionRefusedError) as exc:
            client.close()
            raise HostError(f"ssh {self}: connection refused ({exc}); is sshd running on that port?") from None
        except TimeoutError:
            client.close()
            raise HostError(f"ssh {self}: no answer within {t:.0f} s") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            client.close()
            raise HostError(f"ssh {self}: {type(exc).__name__}: {exc}") from None
        self._client = client

    def run(self, command: str, timeout: float = 60.0, check: bool = False) -> CommandResult:
        """Run a shell command, wait at most ``timeout`` for it; stdout/stderr decoded."""
        try:
            chan = self.client.get_transport().open_session(timeout=self.connect_timeout)
            chan.settimeout(timeout)
            chan.exec_command(command)
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + timeout
            while not (chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready()):
                if time.monotonic() > deadline:
                    chan.close()
                    raise HostError(f"ssh {self}: {command!r} did not finish within {timeout:.0f} s")
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                else:
                    time.sleep(0.005)
            status = chan.recv_exit_status()
            chan.close()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostError(f"ssh {self}: running {command!r}: {type(exc).__name__}: {exc}") from None
        result = CommandResult(status, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and status != 0:
            raise HostError(f"ssh {self}: {command!r} exited {status}: {visible(result.stderr.strip()[-500:])}")
        return result

    def open_exec(self, command: str) -> paramiko.Channel:
        """Start a command and hand back its channel (stdin/stdout/stderr, exit status)."""
        try:
            chan = self.client.get_transport().open_session(timeout=self.connect_timeout)
            chan.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostError(f"ssh {self}: starting {command!r}: {type(exc).__name__}: {exc}") from None
        return chan

    def upload(self, local: Path, remote_dir: str) -> str:
        """Copy ``local`` into ``remote_dir`` under a content-addressed name; skip when already there."""
        data = Path(local).read_bytes()
        name = f"{hashlib.sha256(data).hexdigest()[:16]}-{Path(local).name}"
        remote = f"{remote_dir}/{name}"
        probe = self.run(f"test -f {shlex.quote(remote)} && wc -c < {shlex.quote(remote)}", timeout=30)
        if probe.status == 0 and probe.stdout.strip() == str(len(data)):
            return remote
        self.run(f"mkdir -p {shlex.quote(remote_dir)}", timeout=30, check=True)
        try:
            with self.client.open_sftp() as sftp:
                sftp.putfo(_BytesReader(data), remote + ".part", file_size=len(data))
                sftp.posix_rename(remote + ".part", remote)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostError(f"ssh {self}: uploading {local} to {remote}: {type(exc).__name__}: {exc}") from None
        return remote

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        chunk = self._data[self._pos : end].tobytes()
        self._pos += len(chunk)
        return chunk
