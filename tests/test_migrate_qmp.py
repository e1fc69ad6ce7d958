"""QMPSession against a real QEMU: commands with bounds, events kept with timestamps."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apflab.migrate.qmp import QMPCommandError, QMPSession

QEMU = shutil.which("qemu-system-aarch64")
pytestmark = pytest.mark.skipif(QEMU is None, reason="needs qemu-system-aarch64 (make test installs it)")


@pytest.fixture
def qmp(tmp_path: Path) -> Iterator[QMPSession]:
    sock = tmp_path / "qmp.sock"
    proc = subprocess.Popen(
        [QEMU, "-M", "virt", "-S", "-display", "none", "-nodefaults", "-qmp", f"unix:{sock},server=on,wait=off"],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 15
    while not sock.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    session = QMPSession("test")
    session.connect(str(sock), timeout=15)
    yield session
    session.close()
    proc.kill()
    proc.wait(10)


def test_commands_and_errors(qmp: QMPSession) -> None:
    assert qmp.execute("query-status")["status"] == "prelaunch"
    with pytest.raises(QMPCommandError, match="no-such-command"):
        qmp.execute("no-such-command")


def test_events_are_kept_with_qemu_and_host_times(qmp: QMPSession) -> None:
    mark = qmp.mark()
    before = time.time()
    qmp.execute("cont")
    qmp.execute("stop")
    resume = qmp.wait_event(lambda e: e.name == "RESUME", timeout=10, start=mark)
    stop = qmp.wait_event(lambda e: e.name == "STOP", timeout=10, start=mark)
    assert resume is not None and stop is not None
    assert before - 1 <= resume.qemu_time <= resume.received, "QEMU stamps the event before we receive it"
    assert qmp.events.index(resume) < qmp.events.index(stop)


def test_waiting_for_an_event_that_never_comes_is_bounded(qmp: QMPSession) -> None:
    t0 = time.monotonic()
    assert qmp.wait_event(lambda e: e.name == "SHUTDOWN", timeout=0.3) is None
    assert time.monotonic() - t0 < 5


def test_connect_to_nothing_is_an_error(tmp_path: Path) -> None:
    session = QMPSession("nothing")
    try:
        with pytest.raises(QMPCommandError, match="QMP connect"):
            session.connect(str(tmp_path / "absent.sock"), timeout=5)
    finally:
        session.close()
