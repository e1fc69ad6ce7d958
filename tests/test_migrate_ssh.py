"""The SSH side of migration against a real OpenSSH server on 127.0.0.1 (throwaway keys).

Host keys are checked strictly: an unknown key and a changed key are refused with the
fingerprints; a refused login and a closed port are each one clear error.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from apflab.migrate import HostError
from apflab.migrate.localsshd import LocalSSHServer, free_port, write_keypair
from apflab.migrate.remote import RemoteHost

pytestmark = pytest.mark.skipif(
    shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists(),
    reason="needs Debian's openssh-server (make test installs it)",
)


@pytest.fixture(scope="module")
def sshd() -> Iterator[LocalSSHServer]:
    with LocalSSHServer() as server:
        yield server


def host(s: LocalSSHServer, **kw: object) -> RemoteHost:
    args = {
        "address": s.address,
        "port": s.port,
        "username": s.username,
        "keyfile": s.keyfile,
        "known_hosts": s.known_hosts,
        "connect_timeout": 10.0,
    } | kw
    return RemoteHost(**args)  # type: ignore[arg-type]


def test_commands_and_content_addressed_upload(sshd: LocalSSHServer, tmp_path: Path) -> None:
    h = host(sshd)
    try:
        r = h.run("echo out; echo err >&2; exit 3")
        assert (r.status, r.stdout, r.stderr) == (3, "out\n", "err\n")
        src = tmp_path / "blob.bin"
        src.write_bytes(b"apflab" * 1000)
        remote = h.upload(src, str(tmp_path / "remote"))
        assert Path(remote).read_bytes() == src.read_bytes()
        assert h.upload(src, str(tmp_path / "remote")) == remote, "the same content is not sent twice"
    finally:
        h.close()


def test_command_that_never_ends_is_bounded(sshd: LocalSSHServer) -> None:
    h = host(sshd)
    try:
        with pytest.raises(HostError, match="did not finish within 1 s"):
            h.run("sleep 30", timeout=1)
    finally:
        h.close()


def test_unknown_host_key_is_refused(sshd: LocalSSHServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostError, match=r"is not in .*known_hosts; refusing to trust an unknown host key") as e:
        host(sshd, known_hosts=empty).connect()
    assert "ssh-ed25519 SHA256:" in str(e.value), "the message shows the offered key's fingerprint"


def test_changed_host_key_is_refused(sshd: LocalSSHServer, tmp_path: Path) -> None:
    other = write_keypair(tmp_path / "other_host_key", "impostor").split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[{sshd.address}]:{sshd.port} {other[0]} {other[1]}\n")
    with pytest.raises(HostError, match="host key CHANGED") as e:
        host(sshd, known_hosts=known).connect()
    assert str(e.value).count("SHA256:") == 2, "both the offered and the expected fingerprint"


def test_login_with_an_unauthorized_key_is_refused(sshd: LocalSSHServer, tmp_path: Path) -> None:
    write_keypair(tmp_path / "stranger", "stranger")
    with pytest.raises(HostError, match="login refused for user"):
        host(sshd, keyfile=tmp_path / "stranger").connect()


def test_closed_port_is_connection_refused(sshd: LocalSSHServer) -> None:
    with pytest.raises(HostError, match="connection refused"):
        host(sshd, port=free_port()).connect()


def test_missing_known_hosts_file(sshd: LocalSSHServer, tmp_path: Path) -> None:
    with pytest.raises(HostError, match="does not exist"):
        host(sshd, known_hosts=tmp_path / "nope").connect()
