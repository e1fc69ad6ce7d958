"""Headless Chromium (Debian's chromium) for the report tests: load a page, read what it
recorded, take a screenshot.

A report logs nothing to the console by itself, so every console line a load produces
(a script error, a plot that did not load) is returned for the test to refuse. Pages
record what they check as ``data-*`` attributes of <body> once loaded; Chromium runs
them with a virtual time budget, then dumps the DOM.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: What "one screen" means for the matrix: a 1400x900 window.
SCREEN = "1400,900"


@dataclass
class Page:
    console: list[str]  # console lines the load produced
    attrs: dict[str, str]  # <body>'s data-* attributes
    dom: str


def find() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def install_or_skip() -> str:
    """chromium, installed through the project's set-up when it is missing and we are root."""
    found = find()
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed (Debian package chromium): `make target-packages` as root installs it")
    r = subprocess.run(
        [str(ROOT / "targets" / "host-packages.sh"), "chromium:chromium"],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    found = find()
    if r.returncode != 0 or not found:
        pytest.fail(f"installing chromium failed ({r.returncode}): {(r.stdout + r.stderr)[-1500:]}")
    return found


def _run(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load(binary: str, profile: Path, url: str, window: str = SCREEN) -> Page:
    r = _run(binary, profile, "--enable-logging=stderr", "--v=0", f"--window-size={window}", "--dump-dom", url)
    assert r.returncode == 0, r.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", r.stdout)
    assert body, r.stdout[:500]
    attrs = dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', body.group(1)))
    return Page([ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln], attrs, r.stdout)


def screenshot(binary: str, profile: Path, url: str, png: Path, window: str = SCREEN) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    r = _run(binary, profile, "--hide-scrollbars", f"--window-size={window}", f"--screenshot={png}", url)
    assert r.returncode == 0, r.stderr[-2000:]
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 20_000
