"""The linux image: the newc writer, module dependencies, and the built initramfs itself."""

from __future__ import annotations

import gzip
import stat
from pathlib import Path

import pytest

from apflab.images import cache_dir, ensure
from apflab.images import linux as recipe
from apflab.linux.initramfs import Tree, read_newc

EM_AARCH64 = 183  # ELF e_machine of AArch64 (ELF for the Arm 64-bit Architecture)


def test_newc_round_trip_with_modes_and_root_ownership() -> None:
    tree = Tree()
    tree.add_file("root/.ssh/authorized_keys", b"ssh-ed25519 AAAA x\n", 0o600)
    tree.symlink("bin/sh", "busybox")
    tree.mkdir("root", 0o700)
    data = tree.newc()
    entries = read_newc(data)
    assert entries["root/.ssh/authorized_keys"].data == b"ssh-ed25519 AAAA x\n"
    assert stat.S_IMODE(entries["root/.ssh/authorized_keys"].mode) == 0o600
    assert stat.S_ISLNK(entries["bin/sh"].mode) and entries["bin/sh"].data == b"busybox"
    assert stat.S_IMODE(entries["root"].mode) == 0o700 and stat.S_ISDIR(entries["root/.ssh"].mode)
    names = list(entries)
    assert names.index("root") < names.index("root/.ssh") < names.index("root/.ssh/authorized_keys")
    assert data == tree.newc(), "the archive depends only on its content"
    assert data.endswith(b"\0" * (-len(data) % 4)) and len(data) % 4 == 0


def test_tree_refuses_escaping_paths() -> None:
    with pytest.raises(ValueError):
        Tree().add_file("../etc/passwd", b"")


def test_module_closure_orders_dependencies_first(tmp_path: Path) -> None:
    def module(name: str, depends: str) -> Path:
        path = tmp_path / f"{name}.ko"
        path.write_bytes(b"\x7fELF junk\0license=GPL\0depends=" + depends.encode() + b"\0name=" + name.encode() + b"\0")
        return path

    index = {
        "virtio_net": module("virtio_net", "net_failover"),
        "net_failover": module("net-failover", "failover"),
        "failover": module("failover", ""),
        "virtio_pci": module("virtio_pci", "virtio_pci_modern_dev"),
        "virtio_pci_modern_dev": module("virtio_pci_modern_dev", ""),
    }
    order = [name for name, _ in recipe.module_closure(index, ["virtio_pci", "virtio_net", "builtin_one"])]
    assert order == ["virtio_pci_modern_dev", "virtio_pci", "failover", "net_failover", "virtio_net"]


def test_inputs_digest_follows_the_init_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = recipe.LinuxImage().inputs_digest()
    init = tmp_path / "init"
    init.write_text(recipe.INIT.read_text() + "# changed\n")
    monkeypatch.setattr(recipe, "INIT", init)
    assert recipe.LinuxImage().inputs_digest() != before


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    """The image `make test` builds before the tests (built here if missing: Debian's mirror is needed)."""
    return {p.name: p for p in ensure(["linux"], progress=lambda _m: None)["linux"]}


def test_built_initramfs_has_what_the_target_needs(built: dict[str, Path]) -> None:
    entries = read_newc(gzip.decompress(built["initramfs.cpio.gz"].read_bytes()))
    assert stat.S_IMODE(entries["init"].mode) == 0o755
    assert entries["init"].data == recipe.INIT.read_bytes()
    for path in ("bin/busybox", "usr/sbin/dropbear", "bin/async_pf", "lib/ld-linux-aarch64.so.1"):
        assert path in entries, path
        assert entries[path].data[:4] == b"\x7fELF"
        if path != "lib/ld-linux-aarch64.so.1":
            assert int.from_bytes(entries[path].data[18:20], "little") == EM_AARCH64, f"{path} is not AArch64"
    assert stat.S_IMODE(entries["root/.ssh/authorized_keys"].mode) == 0o600
    assert entries["root/.ssh/authorized_keys"].data == built["id_ed25519.pub"].read_bytes()
    load = entries["lib/modules/load.list"].data.decode().split()
    assert load[-1] == "virtio_net.ko" and "virtio_pci.ko" in load and "failover.ko" in load
    assert all(f"lib/modules/{m}" in entries for m in load)
    needed = {"libtomcrypt.so.1", "libtommath.so.1", "libz.so.1", "libcrypt.so.1", "libc.so.6", "libgmp.so.10"}
    assert needed <= {Path(n).name for n in entries if n.startswith("lib/aarch64-linux-gnu/")}


def test_built_kernel_is_an_arm64_image(built: dict[str, Path]) -> None:
    head = built["Image"].read_bytes()[:64]
    assert head[56:60] == b"ARM\x64", "arm64 boot protocol magic (Documentation/arch/arm64/booting.rst)"
    assert recipe.LinuxImage().fresh(cache_dir())
