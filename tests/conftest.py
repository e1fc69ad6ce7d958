"""Shared helpers for the framework's own tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run pytest in a child process, as a user would, and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_apflab(*args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "apflab", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
        check=False,
    )


def apflab_run(
    out: Path, targets: list[str], *pytest_args: str, history: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``apflab run`` on ``targets`` into ``out`` (and a night of ``history``), extra
    arguments passed on to pytest."""
    chosen = [a for t in targets for a in ("--target", t)]
    if history is not None:
        chosen += ["--history", str(history)]
    return subprocess.run(
        [sys.executable, "-m", "apflab", "run", "--out", str(out), *chosen, "--", *pytest_args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless chromium (tests/browser.py); skipped without it unless root."""
    from tests.browser import install_or_skip

    return install_or_skip()


@pytest.fixture
def root() -> Path:
    return ROOT
