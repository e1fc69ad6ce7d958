"""The qemu-linux target booted for real through labgrid: shell, SSH, and the ways a boot fails.

Each failure must be one clear GuestBootError within its bound, with QEMU's state, its
stderr and the console's last lines, and must leave no QEMU behind so the run goes on.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from labgrid import Environment

from apflab.lab.linux import GuestBootError, QEMULinuxStrategy
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-aarch64") is None, reason="needs qemu-system-aarch64 (make test installs it)"
)


def lab(tmp_path: Path, qemu: dict | None = None, shell: dict | None = None, name: str = "qemu-linux") -> Path:
    """lab.yaml's qemu-linux target with some QEMUDriver/ShellDriver keys changed."""
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    target = data["targets"]["qemu-linux"]
    target["drivers"]["QEMUDriver"].update(qemu or {})
    target["drivers"]["ShellDriver"].update(shell or {})
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump({"targets": {name: target}, "imports": ["apflab.lab"]}, sort_keys=False))
    return path


@pytest.fixture
def boot(tmp_path: Path) -> Iterator:
    made: list[Environment] = []

    def make(**kw: object) -> QEMULinuxStrategy:
        env = Environment(str(lab(tmp_path, **kw)))  # type: ignore[arg-type]
        made.append(env)
        return env.get_target("qemu-linux").get_driver("QEMULinuxStrategy", activate=False)

    yield make
    for env in made:
        env.get_target("qemu-linux").get_driver("QEMULinuxStrategy", activate=False).transition("off")
        env.cleanup()


def test_shell_ssh_and_qmp(boot) -> None:
    s = boot(qemu={"memory": "256M"})
    s.transition("shell")
    assert s.shell.run_check("uname -m") == ["aarch64"]
    assert s.ssh.run_check("cat /proc/cmdline")[0].startswith("console=ttyAMA0")
    assert s.qemu.monitor_command("query-status")["status"] == "running"
    assert s.boot_seconds is not None and s.boot_seconds > 0
    s.transition("off")
    assert s.qemu_state() == "not running"


def test_qemu_that_does_not_start(boot) -> None:
    extra = yaml.safe_load((ROOT / "lab.yaml").read_text())["targets"]["qemu-linux"]["drivers"]["QEMUDriver"]
    s = boot(qemu={"extra_args": extra["extra_args"] + " -device no-such-device"})
    with pytest.raises(GuestBootError) as e:
        s.transition("shell")
    text = str(e.value)
    assert "QEMU did not start" in text
    assert "no-such-device" in text, "QEMU's own error from its stderr"
    assert s.qemu_state() == "not running"


def test_guest_that_never_reaches_its_shell(boot) -> None:
    s = boot(qemu={"boot_args": "console=ttyAMA0 rdinit=/no/such/init"}, shell={"login_timeout": 20})
    with pytest.raises(GuestBootError) as e:
        s.transition("shell")
    text = str(e.value)
    assert "did not reach its shell prompt" in text
    assert "Kernel panic" in text, "the console tail shows why"
    assert s.qemu_state() == "not running", "the failed guest's QEMU was stopped"


def test_silent_console(boot) -> None:
    s = boot(qemu={"boot_args": "console=ttyS0 quiet"}, shell={"login_timeout": 8})
    with pytest.raises(GuestBootError) as e:
        s.transition("shell")
    assert "did not reach its shell prompt" in str(e.value) and "QEMU: running" in str(e.value)
    assert s.qemu_state() == "not running"
