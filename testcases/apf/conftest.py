"""Fixtures and guest-side steps for the APF suite (KVM APF v4, docs/reference/apf.md).

The guest side is written here as the v4 Linux guest does it (APF v4 12/15-14/15): the
page-not-present SDEI handler reads reason and token, then clears token, then reason;
the page-ready PPI handler does the same and calls IRQ_ACK. Targets without the v4 APF
interfaces SKIP with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from apflab.abi import apf, sdei
from apflab.testing import EventInfo, Expect, Guest, Handler, Read32, Write32

EVENT = apf.SDEI_EVENT  # KVM_SDEI_ASYNC_PF_NUM, 0x40400001 (docs/reference/kvm-v4.md)
EVENT_INFO = EventInfo(EVENT, sdei.EventType.PRIVATE, sdei.Priority.CRITICAL)
PPI = 23  # any PPI: the VMM chooses it (the series' QEMU patches do not fix one)
BLOCK = 0x4010_0000  # the per-CPU shared data blocks, 64-byte aligned, one per PE
ARG = 0xA9F0_0001
SUCCESS, NOT_SUPPORTED, NOT_REQUIRED, INVALID = 0, -1, -2, -3


def block(pe: int) -> int:
    return BLOCK + pe * 0x100


def hvc(guest: Guest, sub: int, *args: int):
    return guest.call(apf.FUNC_ID, sub, *args)


def enable_args(pe: int, send_always: bool = False, enabled: bool = True) -> tuple[int, int]:
    """ENABLE's x2/x3: the control word split in two 32-bit halves (APF v4 08/15)."""
    word = block(pe) | (apf.CONTROL_ENABLED if enabled else 0) | (apf.CONTROL_SEND_ALWAYS if send_always else 0)
    return word & 0xFFFFFFFF, word >> 32


def consume_steps(pe: int = 0) -> list:
    """The not-present handler's steps: read reason and token, clear token, then reason
    (APF v4 14/15); their results are (reason, token, 0, 0)."""
    return [Read32(block(pe)), Read32(block(pe) + 4), Write32(block(pe) + 4, 0), Write32(block(pe), 0)]


@dataclass
class ApfGuest:
    guest: Guest
    expect: Expect

    def configure(self, pe: int = 0, sdei_num: int = EVENT, irq: int = PPI) -> None:
        """What the VMM does before the guest boots: SET_SDEI and SET_IRQ (APF v4 10/15)."""
        assert self.guest.apf_command(pe, apf.Command.SET_SDEI, sdei_num)[0] == 0
        assert self.guest.apf_command(pe, apf.Command.SET_IRQ, irq)[0] == 0

    def bring_up(self, pe: int = 0, send_always: bool = False) -> None:
        """The guest's bring-up on PE ``pe`` (APF v4 12/15-14/15), then the wake-all it receives."""
        g, expect = self.guest, self.expect
        self.configure(pe)
        g.select_pe(pe)
        g.set_handler(ARG + pe, Handler(consume_steps(pe)))
        expect(g.sdei.register(EVENT, arg=ARG + pe).ret, sdei.SUCCESS, "EVENT_REGISTER(APF event)")
        expect(g.sdei.enable(EVENT).ret, sdei.SUCCESS, "EVENT_ENABLE(APF event)")
        expect(g.sdei.pe_unmask().ret, sdei.SUCCESS, "PE_UNMASK")
        expect(hvc(g, apf.Sub.ENABLE, *enable_args(pe, send_always)).ret, SUCCESS, "ENABLE")
        expect(self.page_ready(pe), (apf.REASON_PAGE_READY, apf.WAKE_ALL_TOKEN), "wake-all after ENABLE")

    def shared(self, pe: int = 0) -> tuple[int, int]:
        return self.guest.mem_read32(block(pe)), self.guest.mem_read32(block(pe) + 4)

    def page_ready(self, pe: int = 0) -> tuple[int, int]:
        """The PPI handler: read, clear token then reason, IRQ_ACK (APF v4 14/15)."""
        reason, token = self.shared(pe)
        self.guest.mem_write32(block(pe) + 4, 0)
        self.guest.mem_write32(block(pe), 0)
        self.guest.select_pe(pe)
        self.expect(hvc(self.guest, apf.Sub.IRQ_ACK).ret, SUCCESS, "IRQ_ACK")
        return reason, token

    def level(self, pe: int = 0) -> int:
        return self.guest.irq_level(pe, PPI)


@pytest.fixture
def ag(guest: Guest, expect: Expect) -> ApfGuest:
    guest.require("apf-host", "the host side of APF (faults, clock, VMM commands) is not reachable")
    guest.require("apf", "KVM's FEATURES bitmap does not advertise ASYNC_PF")
    return ApfGuest(guest, expect)
