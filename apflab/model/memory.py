"""Guest physical memory of the model: sparse 4 KiB pages over QEMU virt's RAM window.

Only what a test writes (the APF shared data block, APF v4 07/15) takes space. Little endian,
as the guest sees it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

PAGE = 4096
PAGE_SHIFT = 12
RAM_BASE = 0x40000000
RAM_SIZE = 1 << 30
_U32 = struct.Struct("<I")
_PAIR32 = struct.Struct("<II")


class MemoryError_(ValueError):
    """An access outside guest RAM."""


class Memory:
    def __init__(self, base: int = RAM_BASE, size: int = RAM_SIZE) -> None:
        self.base, self.size = base, size
        self._last32 = base + size - 4  # the highest address a 32-bit access may start at
        self.pages: dict[int, bytearray] = {}

    def contains(self, gpa: int, length: int = 1) -> bool:
        return self.base <= gpa and gpa + length <= self.base + self.size

    def _check(self, gpa: int, length: int) -> None:
        if not self.contains(gpa, length):
            end = self.base + self.size
            raise MemoryError_(f"guest address {gpa:#x}+{length} is outside RAM {self.base:#x}..{end:#x}")

    def read(self, gpa: int, length: int) -> bytes:
        self._check(gpa, length)
        out = bytearray()
        while length:
            page, off = divmod(gpa, PAGE)
            n = min(length, PAGE - off)
            data = self.pages.get(page)
            out += data[off : off + n] if data is not None else bytes(n)
            gpa, length = gpa + n, length - n
        return bytes(out)

    def write(self, gpa: int, data: bytes) -> None:
        self._check(gpa, len(data))
        view = memoryview(data)
        while view:
            page, off = divmod(gpa, PAGE)
            n = min(len(view), PAGE - off)
            buf = self.pages.setdefault(page, bytearray(PAGE))
            buf[off : off + n] = view[:n]
            gpa, view = gpa + n, view[n:]

    def read_pair32(self, gpa: int) -> tuple[int, int]:
        """Two consecutive 32-bit words (the APF block's reason and token) in one access."""
        page, off = gpa >> PAGE_SHIFT, gpa & (PAGE - 1)
        if off <= PAGE - 8 and self.base <= gpa <= self._last32 - 4:
            data = self.pages.get(page)
            return _PAIR32.unpack_from(data, off) if data is not None else (0, 0)
        return _PAIR32.unpack(self.read(gpa, 8))

    def write_pair32(self, gpa: int, first: int, second: int) -> None:
        """Two consecutive 32-bit words at once (one guest-visible update in this model)."""
        page, off = gpa >> PAGE_SHIFT, gpa & (PAGE - 1)
        if off <= PAGE - 8 and self.base <= gpa <= self._last32 - 4:
            buf = self.pages.get(page)
            if buf is None:
                buf = self.pages[page] = bytearray(PAGE)
            _PAIR32.pack_into(buf, off, first & 0xFFFFFFFF, second & 0xFFFFFFFF)
            return
        self.write(gpa, _PAIR32.pack(first & 0xFFFFFFFF, second & 0xFFFFFFFF))

    def read32(self, gpa: int) -> int:
        page, off = gpa >> PAGE_SHIFT, gpa & (PAGE - 1)
        if off <= PAGE - 4 and self.base <= gpa <= self._last32:  # the common case: inside one page
            data = self.pages.get(page)
            return _U32.unpack_from(data, off)[0] if data is not None else 0
        return _U32.unpack(self.read(gpa, 4))[0]

    def write32(self, gpa: int, value: int) -> None:
        page, off = gpa >> PAGE_SHIFT, gpa & (PAGE - 1)
        if off <= PAGE - 4 and self.base <= gpa <= self._last32:
            buf = self.pages.get(page)
            if buf is None:
                buf = self.pages[page] = bytearray(PAGE)
            _U32.pack_into(buf, off, value & 0xFFFFFFFF)
            return
        self.write(gpa, _U32.pack(value & 0xFFFFFFFF))

    def dump(self) -> Iterator[tuple[int, bytes]]:
        """(page-aligned gpa, 4096 bytes) of every page ever written, in address order."""
        for page in sorted(self.pages):
            yield page * PAGE, bytes(self.pages[page])
