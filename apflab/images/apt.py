"""An APT configuration of apflab's own, for fetching Debian packages of any architecture.

The machine's apt setup is only *read* (its Debian sources, so the same mirror is used);
state, cache, lists and sources live under a folder of ours, so downloading arm64
packages or source packages never adds a foreign architecture to the machine's dpkg nor
changes its package lists. (The recipe: docs/reference/lab.md.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from apflab.images import ImageError, Progress

SYSTEM_SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))


def debian_uris() -> list[str]:
    """The Debian mirror URIs the machine already uses (deb822 or one-line format)."""
    uris: list[str] = []
    d, legacy = SYSTEM_SOURCES
    texts = [p.read_text() for p in sorted(d.glob("*.sources"))] if d.is_dir() else []
    for text in texts:
        for m in re.finditer(r"^URIs:\s*(.+)$", text, re.M):
            uris += m.group(1).split()
    lines = [p.read_text() for p in sorted(d.glob("*.list"))] if d.is_dir() else []
    if legacy.exists():
        lines.append(legacy.read_text())
    for text in lines:
        for m in re.finditer(r"^\s*deb(?:-src)?\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", text, re.M):
            uris.append(m.group(1))
    main = [u for u in dict.fromkeys(uris) if "security" not in u]
    if not main:
        raise ImageError("no Debian mirror found in /etc/apt/sources.list(.d); apflab fetches packages from it")
    return main


@dataclass
class IsolatedApt:
    """apt-get with its own state under ``root``: ``arch`` packages from ``suites``."""

    root: Path
    arch: str
    suites: list[str]
    types: str = "deb"
    components: str = "main"
    uris: list[str] = field(default_factory=debian_uris)

    @property
    def config(self) -> Path:
        return self.root / "apt.conf"

    def write_config(self) -> None:
        for sub in (
            "state/lists/partial",
            "cache/archives/partial",
            "etc/preferences.d",
            "etc/apt.conf.d",
            "etc/sources",
        ):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "state" / "status").touch()
        sources = (
            f"Types: {self.types}\nURIs: {' '.join(self.uris)}\nSuites: {' '.join(self.suites)}\n"
            f"Components: {self.components}\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )
        (self.root / "etc" / "sources" / "debian.sources").write_text(sources)
        r = self.root
        self.config.write_text(
            f'APT::Architecture "{self.arch}";\nAPT::Architectures {{ "{self.arch}"; }};\n'
            f'Dir::State "{r}/state";\nDir::State::status "{r}/state/status";\nDir::Cache "{r}/cache";\n'
            'Dir::Etc::SourceList "/dev/null";\n'
            f'Dir::Etc::SourceParts "{r}/etc/sources";\nDir::Etc::Preferences "/dev/null";\n'
            f'Dir::Etc::PreferencesParts "{r}/etc/preferences.d";\nDir::Etc::Parts "{r}/etc/apt.conf.d";\n'
            'Acquire::Retries "3";\nAPT::Sandbox::User "root";\n'
        )

    def _run(self, args: list[str], cwd: Path | None = None, timeout: float = 900) -> str:
        env = dict(os.environ, APT_CONFIG=str(self.config), DEBIAN_FRONTEND="noninteractive")
        try:
            r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            what = " ".join(args)
            raise ImageError(f"{what} took more than {timeout:.0f} s (is the package mirror reachable?)") from None
        if r.returncode != 0:
            tail = " | ".join((r.stderr or r.stdout).strip().splitlines()[-4:])
            raise ImageError(f"{' '.join(args)} failed ({r.returncode}): {tail}")
        return r.stdout

    def update(self, progress: Progress) -> None:
        if shutil.which("apt-get") is None:
            raise ImageError("apt-get is not available: apflab fetches Debian packages with it")
        self.write_config()
        progress(f"apt ({self.arch}, {self.types} {' '.join(self.suites)}): updating package lists")
        self._run(["apt-get", "update", "-q"])

    def download(self, packages: list[str], dest: Path, progress: Progress) -> list[Path]:
        """Download .deb files (no install) into ``dest``; returns their paths."""
        dest.mkdir(parents=True, exist_ok=True)
        progress(f"apt: downloading {' '.join(packages)}")
        self._run(["apt-get", "download", "-q", *packages], cwd=dest)
        found = []
        for name in packages:
            base = name.split("=")[0].split(":")[0]
            hits = sorted(dest.glob(f"{base}_*.deb"))
            if not hits:
                raise ImageError(f"apt downloaded nothing for {name}")
            found.append(hits[-1])
        return found

    def source(self, package: str, dest: Path, progress: Progress) -> Path:
        """Fetch and unpack a source package into ``dest``; returns the unpacked tree."""
        if shutil.which("dpkg-source") is None:
            raise ImageError("dpkg-source is missing: install dpkg-dev (apt-get install dpkg-dev)")
        dest.mkdir(parents=True, exist_ok=True)
        progress(f"apt: fetching source package {package}")
        self._run(["apt-get", "source", "-q", "--download-only", package], cwd=dest)
        dscs = sorted(dest.glob(f"{package}_*.dsc"))
        if not dscs:
            raise ImageError(f"apt-get source {package} left no .dsc in {dest}")
        tree = dest / "src"
        if tree.exists():
            shutil.rmtree(tree)
        progress(f"dpkg-source: unpacking {dscs[-1].name}")
        self._run(["dpkg-source", "--no-check", "-x", str(dscs[-1]), str(tree)])
        return tree


def unpack_deb(deb: Path, dest: Path) -> None:
    """Unpack a .deb's data into ``dest`` (dpkg-deb -x: nothing is installed)."""
    dest.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise ImageError(f"dpkg-deb -x {deb.name} failed: {r.stderr.strip()[-300:]}")
