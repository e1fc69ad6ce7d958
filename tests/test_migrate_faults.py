"""MigrationDriver end to end on real QEMUs, through a real local sshd, and the ways it fails.

One 256 MB guest is booted for the module; every fault below leaves the source running
(a failed or cancelled pre-copy resumes it), so the next test reuses it; the last test
migrates it for real. Each fault is one MigrationError within its bound, naming both
sides' state and showing the console tails. Fakes: none -- a stall is a SIGSTOPped
destination, a failed migration a destination with a different RAM size.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from labgrid import Environment

from apflab.lab.linux import MigrationDriver, QEMULinuxStrategy
from apflab.migrate import DestinationError, MigrationError
from apflab.migrate.session import MigrationStalled, MigrationTimeout
from tests.conftest import ROOT

MISSING = shutil.which("qemu-system-aarch64") is None or not Path("/usr/sbin/sshd").exists()
pytestmark = pytest.mark.skipif(MISSING, reason="needs qemu-system-aarch64 and openssh-server (make test has them)")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    data = yaml.safe_load((ROOT / "lab.yaml").read_text())
    target = data["targets"]["qemu-linux"]
    target["drivers"]["QEMUDriver"]["memory"] = "256M"
    target["drivers"]["MigrationDriver"].update({"handshake_timeout": 5, "start_timeout": 20})
    path = tmp_path_factory.mktemp("lab") / "lab.yaml"
    path.write_text(yaml.safe_dump({"targets": {"qemu-linux": target}, "imports": ["apflab.lab"]}, sort_keys=False))
    environment = Environment(str(path))
    yield environment
    environment.get_target("qemu-linux").get_driver("QEMULinuxStrategy", activate=False).transition("off")
    environment.cleanup()


@pytest.fixture
def linux_guest(env: Environment) -> QEMULinuxStrategy:
    s = env.get_target("qemu-linux").get_driver("QEMULinuxStrategy", activate=False)
    s.transition("shell")
    return s


@pytest.fixture
def mig(env: Environment, linux_guest: QEMULinuxStrategy) -> Iterator[MigrationDriver]:
    driver = env.get_target("qemu-linux").get_driver("MigrationDriver")
    yield driver
    driver.finish()


def both_sides(text: str) -> None:
    assert "source QEMU (qemu-linux):" in text and "source console tail:" in text
    assert "destination" in text


def test_destination_that_does_not_start(mig: MigrationDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    argv, uploads = mig.destination_argv()
    monkeypatch.setattr(mig, "destination_argv", lambda: ([*argv, "-device", "no-such-device"], uploads))
    with pytest.raises(DestinationError) as e:
        mig.migrate("precopy")
    text = str(e.value)
    assert "did not start (exit status 1)" in text and "no-such-device" in text
    assert "source QEMU (qemu-linux): running" in text
    assert mig.source_state() == "running"


def test_migration_that_fails(mig: MigrationDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    argv, uploads = mig.destination_argv()
    smaller = [("128M" if a == "256M" else a) for a in argv]
    monkeypatch.setattr(mig, "destination_argv", lambda: (smaller, uploads))
    with pytest.raises(MigrationError, match="migration failed") as e:
        mig.migrate("precopy")
    text = str(e.value)
    both_sides(text)
    assert "destination stderr" in text, "the destination says why it refused the stream"
    assert mig.source_state() == "running", "a failed pre-copy leaves the guest running on the source"


def test_migration_that_stalls(mig: MigrationDriver) -> None:
    with pytest.raises(MigrationStalled, match="nothing moved for 3 s") as e:
        mig.migrate("precopy", max_bandwidth=4 << 20, stall_timeout=3, during=lambda dst: dst.kill("STOP"))
    both_sides(str(e.value))
    assert mig.source_state() == "running", "the stalled migration was cancelled"


def test_precopy_that_never_converges(mig: MigrationDriver, linux_guest: QEMULinuxStrategy) -> None:
    linux_guest.qemu.sendline("/bin/async_pf -l 100000 -m 96 -q")
    with pytest.raises(MigrationTimeout, match="did not finish within 6 s") as e:
        mig.migrate("precopy", max_bandwidth=4 << 20, timeout=6)
    both_sides(str(e.value))
    assert mig.source_state() == "running"
    linux_guest.qemu.sendcontrol("c")


def test_guest_that_never_prints_the_handshake(mig: MigrationDriver) -> None:
    with pytest.raises(MigrationError, match="never printed the handshake 'NEVER-PRINTED' within 5 s") as e:
        mig.migrate("precopy", handshake="NEVER-PRINTED")
    both_sides(str(e.value))


def test_migration_and_progress_on_the_destination(mig: MigrationDriver, linux_guest: QEMULinuxStrategy) -> None:
    linux_guest.qemu.sendline("printf 'Now %s the VM\\n' migrate; read k; echo ALIVE-$((40+2))")
    figures = mig.migrate("precopy", handshake="Now migrate the VM", release="\n")
    assert figures.status == "completed" and figures.page_size == 4096
    assert mig.source_state() == "postmigrate"
    dst = mig.destination
    assert dst is not None and dst.status() == "running"
    dst.console.expect(re.escape("ALIVE-42"), timeout=30)
    assert figures.notice_latency_ms is not None and figures.notice_latency_ms >= 0
