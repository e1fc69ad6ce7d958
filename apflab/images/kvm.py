"""The ``kvm`` image: an arm64 KVM host (L1) that runs apflab-vmm with the bare-metal agent.

Outputs, per host kernel, in ``<cache>/kvm/<kernel slug>/``: the kernel ``Image``, an
initramfs of apflab's own (busybox-static, dropbear and its libraries, the virtio-net
modules of that kernel, the VMM from guest_payloads/vmm, the agent ELF from the
``agent`` recipe and the same agent built for the VMM's fast console (``make UART=vmm``),
targets/qemu-kvm/init), ``apflab-vmm`` and both agent builds themselves (for a board:
RemoteVmmDriver copies them there), a root login key and a manifest. Rebuilt when an input
changes (init, VMM or agent sources, the kernel setting, this recipe's version).

The host kernel is one setting (:data:`KERNEL_ENV`, phase 2 makes it a lab.yaml key):

* ``debian:SUITE`` (default ``debian:trixie``): what Debian's ``linux-image-arm64`` of that
  suite depends on. trixie's is 6.12 (6.12.117+deb13 when this was written); bookworm's
  own 6.12 (``+deb12``) is only in bookworm-security, which the isolated APT
  configuration leaves out (apflab/images/apt.py), and bookworm's main kernel is 6.1,
  which lacks the SMCCC filter (SDEI forwarding needs Linux >= 6.4).
* ``debian:SUITE:PACKAGE``: that exact package.
* a path to a kernel Image (e.g. the SDEI/APF series built by hand): used as is, with no
  modules (build virtio-net in if the channel or SSH is wanted).

Everything comes from Debian through :class:`~apflab.images.apt.IsolatedApt` and the
project's own sources. Facts: docs/reference/lab.md, "Nested KVM under QEMU TCG" (measured).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from apflab.images import ImageError, Progress, Recipe, register
from apflab.images.agent import AGENT, source_hash
from apflab.images.apt import IsolatedApt, unpack_deb
from apflab.images.linux import (
    NET_MODULES,
    USERSPACE,
    add_modules,
    debian_suites,
    ensure_client_key,
    fetch,
    find_kernel,
    resolve_kernel_package,
    shell_tree,
)

RECIPE_VERSION = 2
ROOT = Path(__file__).resolve().parents[2]
INIT = ROOT / "targets" / "qemu-kvm" / "init"
VMM_DIR = ROOT / "guest_payloads" / "vmm"
AGENT_DIR = ROOT / "guest_payloads" / "agent"
KERNEL_ENV = "APFLAB_KVM_KERNEL"
DEFAULT_KERNEL = "debian:trixie"


@dataclass(frozen=True)
class KernelChoice:
    """Where the host kernel comes from: a Debian suite (and package), or a file."""

    spec: str
    suite: str | None = None
    package: str | None = None
    path: Path | None = None

    @property
    def slug(self) -> str:
        """A folder name for this kernel's outputs."""
        if self.path is not None:
            digest = hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:10]
            return f"file-{self.path.name}-{digest}"
        return "-".join(["debian", str(self.suite), *([self.package] if self.package else [])])


def parse_kernel(spec: str) -> KernelChoice:
    """``debian:SUITE[:PACKAGE]`` or a path to an Image; anything else is an error that says so."""
    if spec.startswith("debian:"):
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not re.fullmatch(r"[a-z][a-z0-9-]*", parts[1]):
            raise ImageError(f"kernel {spec!r}: expected debian:SUITE or debian:SUITE:PACKAGE (e.g. debian:trixie)")
        package = parts[2] if len(parts) == 3 else None
        if package is not None and not re.fullmatch(r"linux-image-[\w.+-]+", package):
            raise ImageError(f"kernel {spec!r}: {package!r} is not a linux-image-* package name")
        return KernelChoice(spec, suite=parts[1], package=package)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ImageError(f"kernel {spec!r}: no such file; give debian:SUITE[:PACKAGE] or a path to an arm64 Image")
    return KernelChoice(spec, path=path)


def vmm_sources() -> list[Path]:
    return sorted(p for p in VMM_DIR.iterdir() if p.suffix in (".c", ".h") or p.name == "Makefile")


def run_make(source: Path, out: Path, what: str, progress: Progress, *variables: str) -> None:
    """make -C source OUT=out [variables]: the cross-compiled guest_payloads builds."""
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        raise ImageError("aarch64-linux-gnu-gcc is missing: apt-get install gcc-aarch64-linux-gnu")
    progress(f"kvm: building {what} ({source.relative_to(ROOT)} {' '.join(variables)})".rstrip())
    r = subprocess.run(
        ["make", "-s", "-C", str(source), f"OUT={out}", *variables],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if r.returncode != 0:
        raise ImageError(f"building {what} failed: {(r.stderr or r.stdout).strip()[-800:]}")


def build_vmm(out: Path, progress: Progress) -> Path:
    """A static aarch64 apflab-vmm."""
    if not Path("/usr/aarch64-linux-gnu/lib/libc.a").exists():
        raise ImageError("the static arm64 libc is missing: apt-get install libc6-dev-arm64-cross")
    run_make(VMM_DIR, out, "apflab-vmm", progress)
    return out / "apflab-vmm"


def build_fast_agent(out: Path, progress: Progress) -> Path:
    """The agent with apflab-vmm's fast console (uart_vmm.c) instead of the PL011."""
    run_make(AGENT_DIR, out, "the agent for the fast console", progress, "UART=vmm")
    return out / "agent.elf"


def modules_root(kroot: Path) -> Path:
    """The unpacked package's root of lib/modules: ``/usr`` on merged-/usr releases (trixie)."""
    return kroot / "usr" if (kroot / "usr" / "lib" / "modules").is_dir() else kroot


class KvmHostImage(Recipe):
    name = "kvm"
    description = "arm64 KVM host (L1): kernel + initramfs with apflab-vmm and the agent, for qemu-kvm"

    def __init__(self, kernel: str | None = None) -> None:
        self._kernel = kernel

    @property
    def kernel(self) -> KernelChoice:
        return parse_kernel(self._kernel or os.environ.get(KERNEL_ENV) or DEFAULT_KERNEL)

    def dir(self, cache: Path) -> Path:
        return cache / "kvm" / self.kernel.slug

    def outputs(self, cache: Path) -> list[Path]:
        d = self.dir(cache)
        return [
            d / n
            for n in (
                "Image",
                "initramfs.cpio.gz",
                "apflab-vmm",
                "agent.elf",
                "agent-fastcons.elf",
                "id_ed25519",
                "id_ed25519.pub",
                "manifest.json",
            )
        ]

    def inputs_digest(self) -> str:
        k = self.kernel
        h = hashlib.sha256(f"recipe {RECIPE_VERSION} {k.spec} {USERSPACE} {NET_MODULES}".encode())
        if k.path is not None:
            h.update(k.path.read_bytes())
        for path in (INIT, *vmm_sources()):
            h.update(path.name.encode() + b"\0" + path.read_bytes())
        h.update(source_hash().encode())
        return h.hexdigest()

    def fresh(self, cache: Path) -> bool:
        if not super().fresh(cache) or not AGENT.fresh(cache):
            return False
        try:
            manifest = json.loads((self.dir(cache) / "manifest.json").read_text())
        except (OSError, ValueError):
            return False
        return manifest.get("inputs") == self.inputs_digest()

    def build(self, cache: Path, progress: Progress) -> None:
        k = self.kernel
        d = self.dir(cache)
        work = d / "work"
        if work.exists():
            shutil.rmtree(work)
        if not AGENT.fresh(cache):
            AGENT.build(cache, progress)
        vmm = build_vmm(work / "vmm", progress)
        fast_agent = build_fast_agent(work / "agent-fast", progress)

        user_apt = IsolatedApt(cache / "apt-arm64", "arm64", debian_suites())
        user_apt.update(progress)
        paths = fetch(user_apt, USERSPACE, d / "debs", progress)
        uroot = work / "userspace"
        for pkg in USERSPACE:
            unpack_deb(paths[pkg], uroot)

        kernel_info: dict[str, object]
        if k.path is not None:
            image, kver, kroot = k.path, "custom", None
            kernel_info = {"kernel_file": str(k.path)}
            progress(f"kvm: host kernel from {k.path} (no modules)")
        else:
            kapt = IsolatedApt(cache / f"apt-arm64-{k.suite}", "arm64", [str(k.suite)])
            kapt.update(progress)
            package = k.package or resolve_kernel_package(kapt)
            kpaths = fetch(kapt, [package], d / "debs", progress)
            kroot = work / "kernel"
            progress(f"kvm: unpacking {package}")
            unpack_deb(kpaths[package], kroot)
            kver, image = find_kernel(kroot)
            kernel_info = {"kernel_package": package, "kernel_deb": kpaths[package].name}
        key = ensure_client_key(d, progress)

        progress("kvm: assembling the initramfs")
        tree = shell_tree(INIT, uroot, key, "apflab-kvm")
        tree.copy_file("bin/apflab-vmm", vmm, 0o755)
        tree.copy_file("lib/apflab/agent.elf", AGENT.outputs(cache)[0], 0o644)
        tree.copy_file("lib/apflab/agent-fastcons.elf", fast_agent, 0o644)
        modules = add_modules(tree, modules_root(kroot), kver, NET_MODULES) if kroot is not None else []
        size = tree.write_gzip(d / "initramfs.cpio.gz")
        shutil.copyfile(image, d / "Image")
        shutil.copy2(vmm, d / "apflab-vmm")
        shutil.copy2(AGENT.outputs(cache)[0], d / "agent.elf")
        shutil.copy2(fast_agent, d / "agent-fastcons.elf")
        manifest = {
            "inputs": self.inputs_digest(),
            "kernel": k.spec,
            **kernel_info,
            "kernel_release": kver,
            "packages": {p: paths[p].name for p in paths},
            "modules": modules,
            "initramfs_bytes": size,
            "image_bytes": (d / "Image").stat().st_size,
            "vmm_bytes": (d / "apflab-vmm").stat().st_size,
        }
        (d / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        shutil.rmtree(work)
        progress(f"kvm: kernel {kver}, initramfs {size / 1e6:.1f} MB ({len(tree.entries)} entries) in {d}")


KVM_HOST = register(KvmHostImage())
