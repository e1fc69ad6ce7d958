"""The model's migration image beyond what the lab's 4-PE model targets can show.

The v4 structures keep one bit per vCPU in u64 words (kvm_sdei_kvm_event_state's
registered[8] and enabled[8], KVM SDEI v4 16/21; docs/reference/kvm-v4.md "uAPI"): a vCPU
index of 32 or more is where a 32-bit slip shows, and the lab targets have 4 PEs. QEMU's
restore order (control last, gwshan/qemu target/arm/machine.c) is a property of the
restore itself, which a target case cannot choose.
"""

from __future__ import annotations

import pytest

from apflab.abi import uapi
from apflab.lab.targetinfo import describe
from apflab.model.guest import ModelGuest
from apflab.model.migration import MigrationError, restore
from apflab.model.platform import PLATFORMS
from apflab.profiles import get_profile

EVENT = 0x4040_0010  # the kvm-v4 platform's private normal event (docs/targets.md)
ARG = 0xA000


def _guest(pes: int) -> ModelGuest:
    profile = get_profile("kvm-v4")
    guest = ModelGuest("model-wide", profile, pes, 1)
    guest.info = describe("model-wide", guest, profile=profile, events=PLATFORMS["kvm-v4"].events)
    return guest


def _kske(image: bytes, number: int) -> uapi.KvmEventState:
    at = next(i for i in range(0, len(image), 4) if image[i : i + 8] == number.to_bytes(8, "little"))
    return uapi.KvmEventState.unpack(image[at : at + 8344])


def test_bitmaps_above_32_vcpus() -> None:
    guest = _guest(40)
    for pe in (0, 33, 39):
        guest.select_pe(pe)
        assert guest.sdei.register(EVENT, arg=ARG + pe).ret == 0
        guest.sdei.pe_unmask()
    guest.select_pe(33)
    assert guest.sdei.enable(EVENT).ret == 0
    image = guest.save_state()
    k = _kske(image, EVENT)
    assert k.registered == [1 | 1 << 33 | 1 << 39, 0, 0, 0, 0, 0, 0, 0]
    assert k.enabled == [1 << 33, 0, 0, 0, 0, 0, 0, 0]
    assert (k.params[33], k.params[39], k.params[32]) == (ARG + 33, ARG + 39, 0)
    guest.restore_state(image)
    assert guest.save_state()[24:] == image[24:]  # all but the header's host clock
    entries = guest.trigger(next(e for e in guest.info.events if e.number == EVENT), pe=33).deliveries
    assert [(d.pe, d.arg) for d in entries] == [(33, ARG + 33)]


def test_bitmap_words_above_64() -> None:
    """KvmEventState's bit helpers: vCPU n is bit n % 64 of word n // 64 (KVM SDEI v4 16/21)."""
    words = [0] * 8
    for index in (1, 63, 64, 130, 511):
        uapi.KvmEventState.set_bit(words, index)
    assert words == [1 << 1 | 1 << 63, 1, 1 << 2, 0, 0, 0, 0, 1 << 63]
    assert [uapi.KvmEventState.bit(words, i) for i in (0, 1, 63, 64, 65, 130, 511)] == [
        False,
        True,
        True,
        True,
        False,
        True,
        True,
    ]


def test_restore_order_control_last() -> None:
    guest = _guest(4)
    assert guest.apf_command(0, 4, 0x4040_0001)[0] == 0  # SET_SDEI (APF v4 10/15)
    assert guest.apf_command(0, 5, 23)[0] == 0  # SET_IRQ
    assert guest.apf_command(0, 6, 0x4010_0001)[0] == 0  # SET_CONTROL: block | ENABLED
    image = guest.save_state()
    with pytest.raises(MigrationError, match="SET_CONTROL failed"):
        restore(image, get_profile("kvm-v4"), order=("control", "sdei", "irq"))
    assert restore(image, get_profile("kvm-v4")).apf.vcpus[0].control == 0x4010_0001


def test_image_vcpu_count_bounds() -> None:
    """The image's vCPU count is checked before anything is built from it."""
    image = _guest(1).save_state()
    for bad in (0, 65):
        forged = image[:12] + bad.to_bytes(4, "little") + image[16:]
        with pytest.raises(MigrationError, match="vCPUs"):
            restore(forged, get_profile("kvm-v4"))
    assert len(restore(_guest(64).save_state(), get_profile("kvm-v4")).pes) == 64
