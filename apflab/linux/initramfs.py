"""An initramfs written from Python: a file tree and the kernel's newc cpio format.

Writing the archive ourselves (instead of ``find | cpio``) gives every entry root
ownership and exact modes without running as root, and the archive's bytes depend only
on its content (fixed mtimes), so a rebuild with the same inputs is byte-identical.
Format: Documentation/driver-api/early-userspace/buffer-format.rst (``070701`` headers).
"""

from __future__ import annotations

import gzip
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    mode: int  # full st_mode: type bits and permissions
    data: bytes = b""  # file content, or the target of a symlink


class Tree:
    """Paths (relative, POSIX) to entries; parent directories are created as needed."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    @staticmethod
    def _norm(path: str) -> str:
        p = PurePosixPath(path.lstrip("/"))
        if ".." in p.parts or not p.parts:
            raise ValueError(f"bad initramfs path {path!r}")
        return str(p)

    def mkdir(self, path: str, perm: int = 0o755) -> None:
        path = self._norm(path)
        parent = str(PurePosixPath(path).parent)
        if parent != ".":
            self.mkdir(parent)
        old = self.entries.get(path)
        if old is not None and not stat.S_ISDIR(old.mode):
            raise ValueError(f"{path} exists and is not a directory")
        if old is None or perm != 0o755:
            self.entries[path] = Entry(stat.S_IFDIR | perm)

    def add_file(self, path: str, data: bytes, perm: int = 0o644) -> None:
        path = self._norm(path)
        parent = str(PurePosixPath(path).parent)
        if parent != ".":
            self.mkdir(parent)
        self.entries[path] = Entry(stat.S_IFREG | perm, data)

    def copy_file(self, path: str, source: Path, perm: int | None = None) -> None:
        """Copy ``source`` (symlinks followed) to ``path``; keeps its permissions unless given."""
        mode = source.stat().st_mode & 0o7777 if perm is None else perm
        self.add_file(path, source.read_bytes(), mode)

    def symlink(self, path: str, target: str) -> None:
        path = self._norm(path)
        parent = str(PurePosixPath(path).parent)
        if parent != ".":
            self.mkdir(parent)
        self.entries[path] = Entry(stat.S_IFLNK | 0o777, target.encode())

    def newc(self) -> bytes:
        """The tree as a newc archive (parents before children, then the trailer)."""
        out = bytearray()
        for ino, name in enumerate(sorted(self.entries), start=1):
            _append_entry(out, ino, name, self.entries[name])
        _append_entry(out, 0, TRAILER, Entry(0))
        return bytes(out)

    def write_gzip(self, out: Path) -> int:
        """Write the gzip-compressed archive; returns its size in bytes."""
        data = gzip.compress(self.newc(), compresslevel=6, mtime=0)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(out)
        return len(data)


def _pad4(out: bytearray) -> None:
    out.extend(b"\0" * (-len(out) % 4))


def _append_entry(out: bytearray, ino: int, name: str, entry: Entry) -> None:
    name_bytes = name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (ino, entry.mode, 0, 0, nlink, 0, len(entry.data), 0, 0, 0, 0, len(name_bytes), 0)
    out.extend(NEWC_MAGIC + b"".join(b"%08X" % f for f in fields))
    out.extend(name_bytes)
    _pad4(out)
    out.extend(entry.data)
    _pad4(out)


def read_newc(data: bytes) -> dict[str, Entry]:
    """Parse a newc archive (used by the tests and to inspect a built image)."""
    entries: dict[str, Entry] = {}
    pos = 0
    while True:
        if data[pos : pos + 6] != NEWC_MAGIC:
            raise ValueError(f"no newc header at offset {pos}")
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        pos += 110
        name = data[pos : pos + namesize - 1].decode()
        pos += namesize
        pos += -pos % 4
        body = data[pos : pos + size]
        pos += size
        pos += -pos % 4
        if name == TRAILER:
            return entries
        entries[name] = Entry(mode, body)
