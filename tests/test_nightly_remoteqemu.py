"""RemoteQEMUDriver, the lab-board template's guest driver, for real: the agent's QEMU started
over SSH (labgrid's SSHDriver to a throwaway OpenSSH server on 127.0.0.1 standing in for the
board's host OS), its UART reached through the SSH port forward, AgentDriver on top; then a
restart, as after a wedge. TCG here, where a board uses KVM.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from labgrid import Environment

from apflab.abi import psci
from apflab.images import RECIPES, _load_recipes, cache_dir

localsshd = pytest.importorskip("apflab.migrate.localsshd")
_load_recipes()
pytestmark = pytest.mark.skipif(
    not RECIPES["agent"].fresh(cache_dir()), reason="agent image not built: run `apflab images agent` (make test does)"
)


def test_agent_over_ssh(tmp_path: Path) -> None:
    try:
        sshd = localsshd.LocalSSHServer(tmp_path / "sshd").start()
    except Exception as exc:  # no sshd on this machine
        pytest.skip(f"no local sshd: {exc}")
    try:
        env_file = tmp_path / "lab.yaml"
        env_file.write_text(
            yaml.safe_dump(
                {
                    "targets": {
                        "board": {
                            "resources": {
                                "NetworkService": {
                                    "address": sshd.address,
                                    "port": sshd.port,
                                    "username": sshd.username,
                                }
                            },
                            "drivers": {
                                "SSHDriver": {"keyfile": str(sshd.keyfile), "connection_timeout": 20.0},
                                "RemoteQEMUDriver": {
                                    "kernel": "agent:agent.elf",
                                    "accel": "tcg",
                                    "cpu": "max,pauth-impdef=on",
                                    "console_port": localsshd.free_port(),
                                    "workdir": str(tmp_path / "board"),
                                },
                                "AgentDriver": {"profile": "kvm-v4", "reply_timeout": 2.0, "ready_timeout": 20.0},
                            },
                        }
                    },
                    "imports": ["apflab.lab"],
                },
                sort_keys=False,
            )
        )
        env = Environment(str(env_file))
        try:
            target = env.get_target("board")
            guest = target.get_driver("AgentDriver").guest()
            assert guest.info.conduit == "hvc"
            assert guest.call(psci.PSCI_VERSION).ret >= 0x10000  # QEMU's PSCI answered, through SSH
            qemu = target.get_driver("RemoteQEMUDriver")
            assert qemu.status() == "running on the board"
            guest.restart()  # power off/on: a fresh QEMU over SSH, the console forwarded again
            assert guest.call(psci.PSCI_VERSION).ret >= 0x10000
        finally:
            env.cleanup()
        assert not (tmp_path / "board" / "qemu.pid").exists()  # off() stopped it
    finally:
        sshd.stop()
