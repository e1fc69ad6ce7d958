"""The model's guest memory: little-endian words at any address of its RAM window, pages or not.

The fast paths (a word or a pair inside one page) and the general path (an access that
straddles two pages, or a page never written) must agree; a guest sees bytes, little endian
(Arm ARM: data accesses are little endian with SCTLR_ELx.EE = 0), zeros where nothing was written.
"""

from __future__ import annotations

import pytest

from apflab.model.memory import Memory, MemoryError_

BASE = 0x4000_0000
SIZE = 1 << 20


@pytest.mark.parametrize("gpa", [BASE, BASE + 0x1000 - 4, BASE + 0x1000 - 2, BASE + 0x1000 - 1, BASE + 0x2001])
def test_word_round_trip(gpa: int) -> None:
    mem = Memory(BASE, SIZE)
    mem.write32(gpa, 0x4433_2211)
    assert mem.read32(gpa) == 0x4433_2211
    assert mem.read(gpa, 4) == b"\x11\x22\x33\x44"
    assert mem.read32(gpa + 1) == 0x0044_3322  # the next byte up is unwritten: zero


@pytest.mark.parametrize("gpa", [BASE + 0x40, BASE + 0x1000 - 8, BASE + 0x1000 - 4, BASE + 0x1000 - 6])
def test_pair_round_trip(gpa: int) -> None:
    mem = Memory(BASE, SIZE)
    mem.write_pair32(gpa, 0x1111_1111, 0x2222_2222)
    assert mem.read_pair32(gpa) == (0x1111_1111, 0x2222_2222)
    assert (mem.read32(gpa), mem.read32(gpa + 4)) == (0x1111_1111, 0x2222_2222)


def test_unwritten_is_zero_and_bounds() -> None:
    mem = Memory(BASE, SIZE)
    assert mem.read32(BASE + 0x5000) == 0 and mem.read_pair32(BASE + 0xFFC) == (0, 0)
    assert mem.read32(BASE + SIZE - 4) == 0
    for gpa in (BASE - 4, BASE + SIZE - 3, BASE + SIZE):
        with pytest.raises(MemoryError_):
            mem.read32(gpa)
    for gpa in (BASE - 8, BASE + SIZE - 4):
        with pytest.raises(MemoryError_):
            mem.read_pair32(gpa)
    assert (mem.contains(BASE, 4), mem.contains(BASE + SIZE - 4, 4), mem.contains(BASE + SIZE - 3, 4)) == (
        True,
        True,
        False,
    )
