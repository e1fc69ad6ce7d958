"""Scenario A's host side: QEMU in a cgroup v2 memory limit, and whether this host allows it.

Scenario A (docs/reference/apf-seed-results.md) limits QEMU to 512 MB while its guest
writes 1024 MB, so the host swaps guest pages out and every touch swaps one in. That
needs a cgroup v2 hierarchy with the memory controller, the rights to make a group in
it, and swap on the host (without swap the limit OOM-kills QEMU). :func:`support` says
which of these is missing; :class:`MemoryCgroup` makes the group where all are there.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Support:
    ok: bool
    reason: str
    root: Path | None = None


def cgroup2_mounts(mountinfo: str) -> list[Path]:
    """Mount points of cgroup2 file systems in /proc/self/mountinfo text."""
    mounts = []
    for line in mountinfo.splitlines():
        pre, sep, post = line.partition(" - ")
        if sep and post.split()[:1] == ["cgroup2"]:
            mounts.append(Path(pre.split()[4]))
    return mounts


def swap_total_kb(meminfo: str) -> int:
    m = re.search(r"^SwapTotal:\s+(\d+) kB", meminfo, re.M)
    return int(m.group(1)) if m else 0


def support(proc: Path = Path("/proc")) -> Support:
    """Whether QEMU can be put in a cgroup v2 memory limit here, and if not, why."""
    try:
        mounts = cgroup2_mounts((proc / "self" / "mountinfo").read_text())
        meminfo = (proc / "meminfo").read_text()
    except OSError as exc:
        return Support(False, f"cannot read {proc}: {exc}")
    if not mounts:
        return Support(False, "no cgroup v2 hierarchy is mounted on this host")
    found = []
    for root in mounts:
        try:
            controllers = (root / "cgroup.controllers").read_text().split()
        except OSError:
            controllers = []
        found.append(f"{root}: {' '.join(controllers) or 'none'}")
        if "memory" not in controllers:
            continue
        if not (os.access(root, os.W_OK) and os.access(root / "cgroup.subtree_control", os.W_OK)):
            return Support(False, f"no rights to create a cgroup under {root} (run as root, or delegate a subtree)")
        if swap_total_kb(meminfo) == 0:
            return Support(
                False,
                "the host has no swap: QEMU limited below its guest's memory would be OOM-killed "
                "instead of swapping the guest's pages in and out",
            )
        return Support(True, "", root)
    return Support(
        False,
        "the cgroup v2 hierarchy has no memory controller (controllers "
        f"{'; '.join(found)}); on this host memory is managed by cgroup v1",
    )


class MemoryCgroup:
    """A cgroup with ``memory.max`` under ``root``; processes are moved in by writing their pid."""

    def __init__(self, root: Path, name: str, limit_bytes: int) -> None:
        self.root = root
        self.path = root / name
        self.limit_bytes = limit_bytes

    def create(self) -> MemoryCgroup:
        with contextlib.suppress(OSError):
            (self.root / "cgroup.subtree_control").write_text("+memory")
        self.path.mkdir(exist_ok=True)
        (self.path / "memory.max").write_text(str(self.limit_bytes))
        return self

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()
