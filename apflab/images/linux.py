"""The ``linux`` image: Debian's arm64 kernel and an initramfs for the qemu-linux target.

The initramfs carries the project's init (targets/qemu-linux/init), busybox-static, the
virtio-net modules of that kernel (with their dependencies, in load order), dropbear and
the shared libraries it needs, a client key for SSH logins as root, and the async_pf
workload (guest_payloads/async_pf, cross-compiled here). Every package comes from
Debian through :class:`~apflab.images.apt.IsolatedApt`, so no foreign architecture is
ever added to the machine's dpkg. The recipe is rebuilt when any of its inputs (init,
workload sources, this recipe's version) changes. Measured recipe:
docs/reference/lab.md.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
from pathlib import Path

from apflab.images import ImageError, Progress, Recipe, register
from apflab.images.apt import IsolatedApt, unpack_deb
from apflab.linux.initramfs import Tree

RECIPE_VERSION = 1
ROOT = Path(__file__).resolve().parents[2]
INIT = ROOT / "targets" / "qemu-linux" / "init"
WORKLOAD_DIR = ROOT / "guest_payloads" / "async_pf"

KERNEL_META = "linux-image-arm64"
#: dropbear-bin and what it links against (libc6 brings libgcc-s1); busybox is static.
USERSPACE = [
    "busybox-static",
    "dropbear-bin",
    "libc6",
    "libgcc-s1",
    "libcrypt1",
    "libtomcrypt1",
    "libtommath1",
    "zlib1g",
    "libgmp10",
]
#: Modules for a virtio-net NIC on QEMU virt's PCI bus (built as modules in Debian's 6.1 kernel).
NET_MODULES = ["virtio_pci", "virtio_net"]
LIB_DIRS = ("lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu", "lib", "usr/lib")
INTERP = "ld-linux-aarch64.so.1"


def debian_suites() -> list[str]:
    """The machine's Debian release (its own packages' suite), plus its updates."""
    codename = os.environ.get("APFLAB_DEBIAN_SUITE", "")
    if not codename:
        try:
            text = Path("/etc/os-release").read_text()
        except OSError:
            text = ""
        m = re.search(r"^VERSION_CODENAME=(\w+)", text, re.M)
        codename = m.group(1) if m else "bookworm"
    return [codename, f"{codename}-updates"]


class LinuxImage(Recipe):
    name = "linux"
    description = "arm64 Debian kernel + initramfs (init, virtio-net, dropbear, async_pf) for qemu-linux"

    def dir(self, cache: Path) -> Path:
        return cache / "linux"

    def outputs(self, cache: Path) -> list[Path]:
        d = self.dir(cache)
        return [d / "Image", d / "initramfs.cpio.gz", d / "id_ed25519", d / "id_ed25519.pub", d / "manifest.json"]

    def inputs_digest(self) -> str:
        h = hashlib.sha256(f"recipe {RECIPE_VERSION} {KERNEL_META} {USERSPACE} {NET_MODULES}".encode())
        for path in (INIT, *sorted(WORKLOAD_DIR.glob("*.c")), WORKLOAD_DIR / "Makefile"):
            h.update(path.name.encode() + b"\0" + path.read_bytes())
        return h.hexdigest()

    def fresh(self, cache: Path) -> bool:
        if not super().fresh(cache):
            return False
        try:
            manifest = json.loads((self.dir(cache) / "manifest.json").read_text())
        except (OSError, ValueError):
            return False
        return manifest.get("inputs") == self.inputs_digest()

    def build(self, cache: Path, progress: Progress) -> None:
        d = self.dir(cache)
        work = d / "work"
        debs = d / "debs"
        apt = IsolatedApt(cache / "apt-arm64", "arm64", debian_suites())
        apt.update(progress)
        kernel_pkg = resolve_kernel_package(apt)
        paths = fetch(apt, [kernel_pkg, *USERSPACE], debs, progress)
        if work.exists():
            shutil.rmtree(work)
        kroot, uroot = work / "kernel", work / "userspace"
        progress(f"unpacking {kernel_pkg} and {len(USERSPACE)} userspace packages")
        unpack_deb(paths[kernel_pkg], kroot)
        for pkg in USERSPACE:
            unpack_deb(paths[pkg], uroot)
        kver, image = find_kernel(kroot)
        workload = build_workload(work / "payload", progress)
        key = ensure_client_key(d, progress)

        progress("assembling the initramfs")
        tree = shell_tree(INIT, uroot, key, "apflab-guest")
        tree.copy_file("bin/async_pf", workload, 0o755)
        modules = add_modules(tree, kroot, kver, NET_MODULES)
        size = tree.write_gzip(d / "initramfs.cpio.gz")
        shutil.copyfile(image, d / "Image")
        manifest = {
            "inputs": self.inputs_digest(),
            "kernel_package": kernel_pkg,
            "kernel_release": kver,
            "packages": {p: paths[p].name for p in paths},
            "modules": modules,
            "initramfs_bytes": size,
            "image_bytes": (d / "Image").stat().st_size,
        }
        (d / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        shutil.rmtree(work)
        progress(f"kernel {kver}, initramfs {size / 1e6:.1f} MB ({len(tree.entries)} entries)")


def shell_tree(init: Path, uroot: Path, key: Path, hostname: str) -> Tree:
    """What every apflab initramfs holds: ``init``, busybox, dropbear with its libraries,
    a root account whose SSH login is ``key``; ``uroot`` is the unpacked USERSPACE."""
    tree = Tree()
    for sub in ("proc", "sys", "dev", "tmp", "run", "etc/dropbear", "var/log", "usr/bin", "usr/sbin", "sbin"):
        tree.mkdir(sub)
    tree.mkdir("root", 0o700)
    tree.copy_file("init", init, 0o755)
    tree.copy_file("bin/busybox", uroot / "bin" / "busybox", 0o755)
    tree.symlink("bin/sh", "busybox")
    tree.copy_file("usr/sbin/dropbear", uroot / "usr" / "sbin" / "dropbear", 0o755)
    add_libraries(tree, uroot, [uroot / "usr" / "sbin" / "dropbear"])
    tree.add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    tree.add_file("etc/group", b"root:x:0:\n")
    tree.add_file("etc/shells", b"/bin/sh\n")
    tree.add_file("etc/hosts", f"127.0.0.1 localhost {hostname}\n".encode())
    tree.mkdir("root/.ssh", 0o700)
    tree.add_file("root/.ssh/authorized_keys", key.with_suffix(".pub").read_bytes(), 0o600)
    return tree


def _apt_query(apt: IsolatedApt, args: list[str]) -> str:
    env = dict(os.environ, APT_CONFIG=str(apt.config))
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    if r.returncode != 0:
        raise ImageError(f"{' '.join(args)} failed: {r.stderr.strip()[-300:]}")
    return r.stdout


def resolve_kernel_package(apt: IsolatedApt) -> str:
    """The versioned kernel package Debian's linux-image-arm64 currently points at."""
    out = _apt_query(apt, ["apt-cache", "depends", KERNEL_META])
    m = re.search(r"Depends:\s*(linux-image-[\w.+-]+-arm64)\b", out)
    if not m:
        raise ImageError(f"{KERNEL_META} names no kernel package in this Debian release: {out.strip()[:200]}")
    return m.group(1)


def fetch(apt: IsolatedApt, packages: list[str], dest: Path, progress: Progress) -> dict[str, Path]:
    """Download what is not in ``dest`` yet (.debs are kept between builds)."""
    have = {p: sorted(dest.glob(f"{p}_*_arm64.deb")) for p in packages}
    missing = [p for p in packages if not have[p]]
    if missing:
        apt.download(missing, dest, progress)
    else:
        progress(f"apt: all {len(packages)} packages already downloaded")
    found: dict[str, Path] = {}
    for p in packages:
        hits = sorted(dest.glob(f"{p}_*_arm64.deb")) or sorted(dest.glob(f"{p}_*.deb"))
        if not hits:
            raise ImageError(f"no .deb for {p} in {dest} after downloading")
        found[p] = hits[-1]
    return found


def find_kernel(kroot: Path) -> tuple[str, Path]:
    images = sorted((kroot / "boot").glob("vmlinuz-*"))
    if not images:
        raise ImageError(f"the kernel package has no boot/vmlinuz-* (looked in {kroot / 'boot'})")
    image = images[-1]
    return image.name.removeprefix("vmlinuz-"), image


def build_workload(out: Path, progress: Progress) -> Path:
    progress("building guest_payloads/async_pf for aarch64")
    r = subprocess.run(
        ["make", "-s", "-C", str(WORKLOAD_DIR), f"OUT={out}", "aarch64"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if r.returncode != 0:
        raise ImageError(f"building async_pf failed: {(r.stderr or r.stdout).strip()[-500:]}")
    return out / "aarch64" / "async_pf"


def ensure_client_key(d: Path, progress: Progress) -> Path:
    """An ed25519 key pair for root logins into the guest (kept across rebuilds)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = d / "id_ed25519"
    if key.exists() and key.with_suffix(".pub").exists():
        return key
    progress("generating the guest's root login key")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    pub = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    key.with_suffix(".pub").write_bytes(pub + b" apflab-guest-root\n")
    return key


def needed_libraries(binary: Path) -> list[str]:
    """DT_NEEDED entries of an ELF file (read with the cross binutils' readelf)."""
    readelf = shutil.which("aarch64-linux-gnu-readelf") or shutil.which("readelf")
    if readelf is None:
        raise ImageError("readelf is missing: apt-get install binutils-aarch64-linux-gnu")
    r = subprocess.run([readelf, "-d", str(binary)], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise ImageError(f"readelf -d {binary} failed: {r.stderr.strip()[-200:]}")
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)


def _find_library(uroot: Path, name: str) -> Path | None:
    for sub in LIB_DIRS:
        cand = uroot / sub / name
        if cand.exists():
            return cand
    return None


def add_libraries(tree: Tree, uroot: Path, binaries: list[Path]) -> list[str]:
    """Copy the shared-library closure of ``binaries`` (and the dynamic loader)."""
    loader = _find_library(uroot, INTERP)
    if loader is None:
        raise ImageError(f"{INTERP} not found in the unpacked libc6")
    tree.copy_file(f"lib/{INTERP}", loader, 0o755)
    todo = [lib for b in binaries for lib in needed_libraries(b)]
    done: list[str] = []
    while todo:
        name = todo.pop()
        if name in done or name == INTERP:
            continue
        path = _find_library(uroot, name)
        if path is None:
            raise ImageError(f"shared library {name} is not in the downloaded packages ({', '.join(USERSPACE)})")
        tree.copy_file(f"lib/aarch64-linux-gnu/{name}", path, 0o755)
        done.append(name)
        todo.extend(needed_libraries(path))
    return sorted(done)


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        raise ImageError(f"{path.name} is zstd-compressed; this recipe reads plain and xz modules only")
    return data


def module_depends(data: bytes) -> list[str]:
    """The ``depends=`` field of a module's .modinfo (modules.dep is made by depmod at install)."""
    m = re.search(rb"(?:^|\0)depends=([\w,-]*)\0", data)
    return [d.decode() for d in m.group(1).split(b",") if d] if m else []


def module_closure(index: dict[str, Path], wanted: list[str]) -> list[tuple[str, bytes]]:
    """(name, content) of ``wanted`` and what they depend on, dependencies first.

    A wanted module missing from ``index`` is built into the kernel: nothing to load.
    """
    order: list[tuple[str, bytes]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        path = index.get(name)
        if path is None:
            return
        data = _module_bytes(path)
        for dep in module_depends(data):
            visit(dep.replace("-", "_"))
        order.append((name, data))

    for name in wanted:
        visit(name.replace("-", "_"))
    return order


def add_modules(tree: Tree, kroot: Path, kver: str, wanted: list[str]) -> list[str]:
    """Copy the modules (decompressed) flat into /lib/modules and list them in load order."""
    mdir = kroot / "lib" / "modules" / kver / "kernel"
    if not mdir.is_dir():
        raise ImageError(f"{mdir} missing from the kernel package")
    index = {p.name.split(".ko")[0].replace("-", "_"): p for p in mdir.rglob("*.ko*")}
    names = []
    for name, data in module_closure(index, wanted):
        tree.add_file(f"lib/modules/{name}.ko", data)
        names.append(f"{name}.ko")
    tree.add_file("lib/modules/load.list", "".join(f"{n}\n" for n in names).encode())
    return names


register(LinuxImage())
