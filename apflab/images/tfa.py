"""Image recipe ``tfa``: Trusted Firmware-A with SDEI for QEMU virt, the agent as BL33.

The recipe of docs/reference/tfa.md: Debian's source package
arm-trusted-firmware (>= 2.10; trixie has 2.12.1) fetched with ``apt-get source`` under
apflab's own APT configuration, built with SDEI_SUPPORT=1, EL3_EXCEPTION_HANDLING=1 and
the GICv3 driver (with the default GICv2, events are never dispatched: a silent false
negative). DEBUG=1 keeps TF-A's assertions loud. Output: qemu_fw.bios (BL1 + FIP).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from apflab.images import ImageError, Progress, Recipe, register
from apflab.images.agent import AGENT
from apflab.images.apt import IsolatedApt

SOURCE_PACKAGE = "arm-trusted-firmware"
SOURCE_SUITES = ["trixie"]
MIN_VERSION = (2, 10)
BUILD_OPTIONS = [
    "PLAT=qemu",
    "SDEI_SUPPORT=1",
    "EL3_EXCEPTION_HANDLING=1",
    "QEMU_USE_GIC_DRIVER=QEMU_GICV3",
    "DEBUG=1",
    "LOG_LEVEL=20",
]


def _tree_version(tree: Path) -> tuple[int, int]:
    text = (tree / "Makefile").read_text(errors="replace")
    major = re.search(r"^VERSION_MAJOR\s*:?=\s*(\d+)", text, re.M)
    minor = re.search(r"^VERSION_MINOR\s*:?=\s*(\d+)", text, re.M)
    if not (major and minor):
        raise ImageError(f"cannot read TF-A's version from {tree / 'Makefile'}")
    return int(major.group(1)), int(minor.group(1))


class TfaRecipe(Recipe):
    name = "tfa"
    description = "Trusted Firmware-A (SDEI, GICv3) for QEMU virt with the agent as BL33"

    def dir(self, cache: Path) -> Path:
        return cache / "tfa"

    def outputs(self, cache: Path) -> list[Path]:
        return [self.dir(cache) / "qemu_fw.bios"]

    def _stamp(self, cache: Path) -> str:
        agent_bin = AGENT.outputs(cache)[1]
        digest = hashlib.sha256(agent_bin.read_bytes()).hexdigest()[:16] if agent_bin.exists() else "none"
        return f"{digest} {' '.join(BUILD_OPTIONS)}"

    def fresh(self, cache: Path) -> bool:
        stamp = self.dir(cache) / "stamp"
        return (
            super().fresh(cache) and AGENT.fresh(cache) and stamp.exists() and stamp.read_text() == self._stamp(cache)
        )

    def source_tree(self, cache: Path, progress: Progress) -> Path:
        tree = self.dir(cache) / "src" / "src"
        if (tree / "Makefile").exists():
            return tree
        apt = IsolatedApt(self.dir(cache) / "apt", "amd64", SOURCE_SUITES, types="deb-src")
        apt.update(progress)
        return apt.source(SOURCE_PACKAGE, self.dir(cache) / "src", progress)

    def build(self, cache: Path, progress: Progress) -> None:
        for tool, package in (("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"), ("make", "make"), ("gcc", "gcc")):
            if shutil.which(tool) is None:
                raise ImageError(f"{tool} is missing: install {package} (apt-get install {package})")
        if not Path("/usr/include/openssl/evp.h").exists():
            raise ImageError("OpenSSL headers are missing (TF-A's fiptool needs them): apt-get install libssl-dev")
        if not AGENT.fresh(cache):
            AGENT.build(cache, progress)
        tree = self.source_tree(cache, progress)
        version = _tree_version(tree)
        if version < MIN_VERSION:
            raise ImageError(f"TF-A {version[0]}.{version[1]} is older than 2.10 (the qemu SDEI map came later)")
        agent_bin = AGENT.outputs(cache)[1]
        progress(f"tfa: building TF-A {version[0]}.{version[1]} (BL33 = {agent_bin.name})")
        cmd = ["make", "-j2", "CROSS_COMPILE=aarch64-linux-gnu-", *BUILD_OPTIONS, f"BL33={agent_bin}", "all", "fip"]
        r = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, timeout=1200, check=False)
        if r.returncode != 0:
            raise ImageError(f"TF-A build failed: {(r.stderr or r.stdout).strip()[-1200:]}")
        bios = tree / "build" / "qemu" / "debug" / "qemu_fw.bios"
        if not bios.exists():
            raise ImageError(f"TF-A built but {bios} is missing")
        shutil.copy2(bios, self.outputs(cache)[0])
        (self.dir(cache) / "stamp").write_text(self._stamp(cache))


TFA = register(TfaRecipe())
