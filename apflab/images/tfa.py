"""Image recipe ``tfa``: Trusted Firmware-A with SDEI for QEMU virt, the agent as BL33.

The recipe of docs/reference/tfa.md: Debian's source package
arm-trusted-firmware (>= 2.10; trixie has 2.12.1) fetched with ``apt-get source`` under
apflab's own APT configuration, built with SDEI_SUPPORT=1, EL3_EXCEPTION_HANDLING=1 and
the GICv3 driver (with the default GICv2, events are never dispatched: a silent false
negative). DEBUG=1 keeps TF-A's assertions loud. Two images (BL1 + FIP each):

* ``qemu_fw.bios``: the qemu platform as shipped (event 0 alone), so the stock
  platform's behaviour stays measured;
* ``qemu_fw_apflab.bios``: the same source with apflab's SDEI event tables
  (guest_payloads/tfa/apflab-sdei.patch: events on interrupts the agent raises, and
  dynamic slots for INTERRUPT_BIND), applied to a copy of the tree, and TF-A's warnings
  printed (LOG_LEVEL=30): a trigger storm on a masked PE announces itself on the console
  (docs/targets.md).

Both are rebuilt when the agent, the build options, the patch or the source version change.
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
BUILD_OPTIONS = ["PLAT=qemu", "SDEI_SUPPORT=1", "EL3_EXCEPTION_HANDLING=1", "QEMU_USE_GIC_DRIVER=QEMU_GICV3", "DEBUG=1"]
#: NOTICE for the stock image (as before); WARNING for apflab's.
STOCK_OPTIONS, APFLAB_OPTIONS = ["LOG_LEVEL=20"], ["LOG_LEVEL=30"]
PATCH = Path(__file__).resolve().parents[2] / "guest_payloads" / "tfa" / "apflab-sdei.patch"
STOCK, APFLAB = "qemu_fw.bios", "qemu_fw_apflab.bios"


def _tree_version(tree: Path) -> tuple[int, int]:
    text = (tree / "Makefile").read_text(errors="replace")
    major = re.search(r"^VERSION_MAJOR\s*:?=\s*(\d+)", text, re.M)
    minor = re.search(r"^VERSION_MINOR\s*:?=\s*(\d+)", text, re.M)
    if not (major and minor):
        raise ImageError(f"cannot read TF-A's version from {tree / 'Makefile'}")
    return int(major.group(1)), int(minor.group(1))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "none"


class TfaRecipe(Recipe):
    name = "tfa"
    description = "Trusted Firmware-A (SDEI, GICv3) for QEMU virt with the agent as BL33: stock and apflab's events"

    def dir(self, cache: Path) -> Path:
        return cache / "tfa"

    def outputs(self, cache: Path) -> list[Path]:
        return [self.dir(cache) / STOCK, self.dir(cache) / APFLAB]

    def _source_version(self, cache: Path) -> str:
        """The Debian source package's version (its .dsc's name), 'none' before it is fetched."""
        dscs = sorted((self.dir(cache) / "src").glob(f"{SOURCE_PACKAGE}_*.dsc"))
        return dscs[-1].stem if dscs else "none"

    def _stamp(self, cache: Path) -> str:
        agent = _digest(AGENT.outputs(cache)[1])
        options = " ".join([*BUILD_OPTIONS, *STOCK_OPTIONS, "/", *APFLAB_OPTIONS])
        return f"{agent} {options} patch={_digest(PATCH)} source={self._source_version(cache)}"

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

    def patched_tree(self, cache: Path, tree: Path, progress: Progress) -> Path:
        """A copy of ``tree`` with apflab's patch applied, made again when either changed."""
        patched = self.dir(cache) / "src-apflab"
        marker = patched / ".apflab-patch"
        wanted = f"{_digest(PATCH)} {self._source_version(cache)}"
        if marker.exists() and marker.read_text() == wanted:
            return patched
        if not PATCH.exists():
            raise ImageError(f"apflab's TF-A patch is missing: {PATCH}")
        progress(f"tfa: applying {PATCH.name} to a copy of the source")
        shutil.rmtree(patched, ignore_errors=True)
        shutil.copytree(tree, patched, symlinks=True, ignore=shutil.ignore_patterns("build"))
        r = subprocess.run(
            ["patch", "-p1", "--forward", "--batch", "-i", str(PATCH)],
            cwd=patched,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if r.returncode != 0:
            said = (r.stdout + r.stderr).strip()[-600:]
            raise ImageError(f"{PATCH.name} does not apply to TF-A {self._source_version(cache)}: {said}")
        marker.write_text(wanted)
        return patched

    def _make(self, tree: Path, agent_bin: Path, output: Path, options: list[str]) -> None:
        """Build in ``tree``; TF-A's make does not notice changed options, so the build folder
        goes when they changed since it was made."""
        cmd = ["make", "-j2", "CROSS_COMPILE=aarch64-linux-gnu-", *BUILD_OPTIONS, *options, f"BL33={agent_bin}"]
        cmd += ["all", "fip"]
        marker = tree / "build" / ".apflab-options"
        if marker.exists() and marker.read_text() != " ".join(cmd):
            shutil.rmtree(tree / "build")
        r = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, timeout=1200, check=False)
        if r.returncode != 0:
            raise ImageError(f"TF-A build in {tree} failed: {(r.stderr or r.stdout).strip()[-1200:]}")
        bios = tree / "build" / "qemu" / "debug" / "qemu_fw.bios"
        if not bios.exists():
            raise ImageError(f"TF-A built but {bios} is missing")
        shutil.copy2(bios, output)
        marker.write_text(" ".join(cmd))

    def build(self, cache: Path, progress: Progress) -> None:
        for tool, package in (
            ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
            ("make", "make"),
            ("gcc", "gcc"),
            ("patch", "patch"),
        ):
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
        progress(f"tfa: building TF-A {version[0]}.{version[1]} as shipped (BL33 = {agent_bin.name})")
        self._make(tree, agent_bin, self.dir(cache) / STOCK, STOCK_OPTIONS)
        patched = self.patched_tree(cache, tree, progress)
        progress(f"tfa: building TF-A {version[0]}.{version[1]} with {PATCH.name}")
        self._make(patched, agent_bin, self.dir(cache) / APFLAB, APFLAB_OPTIONS)
        (self.dir(cache) / "stamp").write_text(self._stamp(cache))


TFA = register(TfaRecipe())
