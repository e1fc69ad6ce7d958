"""The APF hypercall 0x86000002, its sub-functions and status codes.

KVM APF v4 08/15, 09/15, 12/15 (docs/reference/apf.md).
"""

from __future__ import annotations

import pytest

from apflab.abi import apf, smccc
from apflab.testing import Expect, Guest, Known, spec
from testcases.apf.conftest import (
    BLOCK,
    EVENT,
    INVALID,
    NOT_REQUIRED,
    NOT_SUPPORTED,
    PPI,
    SUCCESS,
    ApfGuest,
    enable_args,
    hvc,
)


@spec("Linux arm-smccc.h; APF v4 08/15; docs/reference/smccc.md", "KVM's vendor FEATURES bitmap has bit 2, ASYNC_PF")
def test_features_bit(ag: ApfGuest, expect: Expect) -> None:
    expect(ag.guest.call(smccc.KVM_FUNC_FEATURES).x[0] >> 2 & 1, 1, "FEATURES bit 2")


@spec("APF v4 08/15; docs/reference/apf.md", "VERSION answers SUCCESS and x1 = 0x010000 (v1.0.0)")
def test_version(ag: ApfGuest, expect: Expect) -> None:
    r = hvc(ag.guest, apf.Sub.VERSION)
    expect((r.ret, r.x[1]), (SUCCESS, 0x010000), "(x0, x1)")


@spec(
    "APF v4 12/15-14/15; docs/reference/apf.md", "the version passes the guest's check: bits 63:24 zero and major >= 1"
)
def test_version_guest_check(ag: ApfGuest, expect: Expect) -> None:
    x1 = hvc(ag.guest, apf.Sub.VERSION).x[1]
    expect((x1 >> 24, x1 >> 16 & 0xFF >= 1), (0, True), "(bits 63:24, major >= 1)")


@spec("APF v4 08/15, 07/15; docs/reference/apf.md", "SLOTS answers x1 = 64 (ASYNC_PF_PER_VCPU)")
def test_slots(ag: ApfGuest, expect: Expect) -> None:
    r = hvc(ag.guest, apf.Sub.SLOTS)
    expect((r.ret, r.x[1]), (SUCCESS, 64), "(x0, x1)")


@spec("APF v4 08/15; docs/reference/apf.md", "SDEI and IRQ answer 0 while the VMM has not set them")
@pytest.mark.parametrize("sub", [apf.Sub.SDEI, apf.Sub.IRQ], ids=lambda s: s.name)
def test_unset_queries(ag: ApfGuest, expect: Expect, sub: apf.Sub) -> None:
    r = hvc(ag.guest, sub)
    expect((r.ret, r.x[1]), (SUCCESS, 0), "(x0, x1)")


@spec("APF v4 08/15, 10/15; docs/reference/apf.md", "SDEI and IRQ answer what the VMM set with SET_SDEI and SET_IRQ")
def test_queries_after_vmm(ag: ApfGuest, expect: Expect) -> None:
    ag.configure()
    expect((hvc(ag.guest, apf.Sub.SDEI).x[1], hvc(ag.guest, apf.Sub.IRQ).x[1]), (EVENT, PPI), "(SDEI, IRQ)")


@spec("APF v4 08/15; docs/reference/apf.md", "an unknown sub-function answers NOT_SUPPORTED")
@pytest.mark.parametrize("sub", [6, 0xFF, 0xFFFFFFFF])
def test_unknown_sub(ag: ApfGuest, expect: Expect, sub: int) -> None:
    expect(hvc(ag.guest, sub).ret, NOT_SUPPORTED, f"sub-function {sub:#x}")


@spec(
    "APF v4 08/15; docs/reference/apf.md", "ENABLE before the VMM set the SDEI number and the IRQ is INVALID_PARAMETER"
)
def test_enable_unconfigured(ag: ApfGuest, expect: Expect) -> None:
    expect(hvc(ag.guest, apf.Sub.ENABLE, *enable_args(0)).ret, INVALID, "ENABLE")


@spec("APF v4 08/15; docs/reference/apf.md", "ENABLE with only the SDEI number set is INVALID_PARAMETER")
def test_enable_without_irq(ag: ApfGuest, expect: Expect) -> None:
    ag.guest.apf_command(0, apf.Command.SET_SDEI, EVENT)
    expect(hvc(ag.guest, apf.Sub.ENABLE, *enable_args(0)).ret, INVALID, "ENABLE")


@spec("APF v4 08/15; docs/reference/apf.md", "ENABLE with only the IRQ set is INVALID_PARAMETER")
def test_enable_without_sdei(ag: ApfGuest, expect: Expect) -> None:
    ag.guest.apf_command(0, apf.Command.SET_IRQ, PPI)
    expect(hvc(ag.guest, apf.Sub.ENABLE, *enable_args(0)).ret, INVALID, "ENABLE")


@spec("APF v4 08/15; docs/reference/apf.md", "ENABLE after SET_SDEI and SET_IRQ succeeds")
def test_enable(ag: ApfGuest, expect: Expect) -> None:
    ag.configure()
    expect(hvc(ag.guest, apf.Sub.ENABLE, *enable_args(0)).ret, SUCCESS, "ENABLE")


@spec("APF v4 08/15; docs/reference/apf.md", "ENABLE of an enabled vCPU is NOT_REQUIRED")
def test_enable_twice(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    expect(hvc(ag.guest, apf.Sub.ENABLE, *enable_args(0)).ret, NOT_REQUIRED, "second ENABLE")


@spec("APF v4 08/15; docs/reference/apf.md", "disabling a disabled vCPU is NOT_REQUIRED")
def test_disable_disabled(ag: ApfGuest, expect: Expect) -> None:
    ag.configure()
    expect(hvc(ag.guest, apf.Sub.ENABLE, 0, 0).ret, NOT_REQUIRED, "ENABLE(0)")


@spec(
    "APF v4 07/15, 09/15, 10/15; docs/reference/apf.md",
    "ENABLE(0) disables: SUCCESS, and GET_CONTROL reads back the word written",
)
def test_disable(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    expect(hvc(ag.guest, apf.Sub.ENABLE, 0, 0).ret, SUCCESS, "ENABLE(0)")
    expect(ag.guest.apf_command(0, apf.Command.GET_CONTROL), (0, 0), "GET_CONTROL")


@spec("APF v4 08/15; docs/reference/apf.md", "ENABLE with an SDEI number the VM does not expose is NOT_SUPPORTED")
def test_enable_unexposed_event(ag: ApfGuest, expect: Expect) -> None:
    ag.configure(sdei_num=0x40400F00)
    expect(hvc(ag.guest, apf.Sub.ENABLE, *enable_args(0)).ret, NOT_SUPPORTED, "ENABLE")


@spec(
    "APF v4 08/15, 07/15, 09/15; docs/reference/apf.md",
    "ENABLE with a shared block outside guest memory is NOT_SUPPORTED (no hva cache)",
)
def test_enable_bad_address(ag: ApfGuest, expect: Expect) -> None:
    ag.configure()
    expect(hvc(ag.guest, apf.Sub.ENABLE, 0x1000 | apf.CONTROL_ENABLED, 0).ret, NOT_SUPPORTED, "ENABLE")


@spec(
    "DEN0028 (SMC32: W registers only); APF v4 08/15",
    "ENABLE is SMC32: x2 and x3 each carry 32 bits of the control word",
)
def test_enable_smc32_halves(ag: ApfGuest, expect: Expect) -> None:
    ag.configure()
    low, high = enable_args(0)
    unmasked = Known("apf_enable_x2_unmasked", NOT_SUPPORTED)  # the upper half makes the address bad
    expect(hvc(ag.guest, apf.Sub.ENABLE, low | 0xDEAD_0000_0000_0000, high).ret, SUCCESS, "ENABLE", unmasked)
    stored = ag.guest.apf_command(0, apf.Command.GET_CONTROL)[1]
    expect(stored, BLOCK | apf.CONTROL_ENABLED, "control word stored", Known("apf_enable_x2_unmasked", 0))


@spec("DEN0028 (SMC32: W registers only); APF v4 08/15", "the sub-function is W1: x1's upper half is ignored")
def test_sub_function_is_w1(ag: ApfGuest, expect: Expect) -> None:
    r = hvc(ag.guest, 0xFFFF_FFFF_0000_0000 | apf.Sub.VERSION)
    expect((r.ret, r.x[1]), (SUCCESS, 0x010000), "(x0, x1) of VERSION with x1[63:32] set")


@spec(
    "APF v4 07/15, 09/15; docs/reference/apf.md",
    "the control word keeps SEND_ALWAYS (bit 1) and the block address in bits 63:6",
)
def test_control_word_bits(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up(send_always=True)
    word = ag.guest.apf_command(0, apf.Command.GET_CONTROL)[1]
    expect((word & ~0x3F, word & 0x3), (BLOCK, apf.CONTROL_ENABLED | apf.CONTROL_SEND_ALWAYS), "(address, flags)")


@spec("APF v4 08/15; docs/reference/apf.md", "IRQ_ACK with no page-ready pending answers SUCCESS")
def test_irq_ack_idle(ag: ApfGuest, expect: Expect) -> None:
    expect(hvc(ag.guest, apf.Sub.IRQ_ACK).ret, SUCCESS, "IRQ_ACK")


@spec(
    "APF v4 07/15, 09/15; docs/reference/apf.md",
    "ENABLE queues a wake-all: page-ready with token 0xFFFFFFFF, PPI asserted",
)
def test_enable_wake_all(ag: ApfGuest, expect: Expect) -> None:
    ag.configure()
    hvc(ag.guest, apf.Sub.ENABLE, *enable_args(0))
    expect((ag.shared(), ag.level()), ((apf.REASON_PAGE_READY, apf.WAKE_ALL_TOKEN), 1), "(shared block, PPI)")


@spec(
    "APF v4 07/15, 14/15; docs/reference/apf.md",
    "the page-ready PPI is level-triggered: asserted until IRQ_ACK, not until the block is read",
)
def test_ppi_held_until_ack(ag: ApfGuest, expect: Expect) -> None:
    ag.configure()
    hvc(ag.guest, apf.Sub.ENABLE, *enable_args(0))
    ag.guest.mem_write32(BLOCK + 4, 0)
    ag.guest.mem_write32(BLOCK, 0)
    expect(ag.level(), 1, "PPI after the guest cleared the block, before IRQ_ACK")
    hvc(ag.guest, apf.Sub.IRQ_ACK)
    expect(ag.level(), 0, "PPI after IRQ_ACK")


@spec("APF v4 08/15; docs/reference/apf.md", "a profile without APF answers the hypercall with NOT_SUPPORTED")
def test_no_apf_without_block(guest: Guest, expect: Expect) -> None:
    if guest.info.has("kvm-vendor-hyp"):
        pytest.skip(f"target {guest.info.name} is a KVM guest with APF")
    expect(hvc(guest, apf.Sub.VERSION).ret, NOT_SUPPORTED, "0x86000002 VERSION")
