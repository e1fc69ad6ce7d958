"""KVM_ARM_ASYNC_PF_COMMAND, the VMM's side (KVM APF v4 10/15; docs/reference/apf.md)."""

from __future__ import annotations

import pytest

from apflab.abi import apf
from apflab.testing import Expect, spec
from testcases.apf.conftest import BLOCK, EVENT, PPI, ApfGuest

EIO, EINVAL = -5, -22


@spec("APF v4 10/15; docs/reference/apf.md", "GET_VERSION on the VM fd answers 0x010000")
def test_vm_get_version(ag: ApfGuest, expect: Expect) -> None:
    expect(ag.guest.apf_command(None, apf.Command.GET_VERSION), (0, 0x010000), "(errno, version)")


@spec("APF v4 10/15; docs/reference/apf.md", "GET_VERSION is the only command the VM fd accepts: others are -EINVAL")
@pytest.mark.parametrize("cmd", [apf.Command.GET_SDEI, apf.Command.SET_CONTROL], ids=lambda c: c.name)
def test_vm_other_command(ag: ApfGuest, expect: Expect, cmd: apf.Command) -> None:
    expect(ag.guest.apf_command(None, cmd, 1)[0], EINVAL, f"{cmd.name} on the VM fd")


@spec("APF v4 10/15; docs/reference/apf.md", "an unknown command on a vCPU fd is -EINVAL")
def test_vcpu_unknown_command(ag: ApfGuest, expect: Expect) -> None:
    expect(ag.guest.apf_command(0, 7)[0], EINVAL, "command 7")


@spec("APF v4 10/15; docs/reference/apf.md", "SET_SDEI/SET_IRQ are read back by GET_SDEI/GET_IRQ, with no validation")
def test_vcpu_set_get(ag: ApfGuest, expect: Expect) -> None:
    g = ag.guest
    g.apf_command(0, apf.Command.SET_SDEI, 0x12345)
    g.apf_command(0, apf.Command.SET_IRQ, 999)
    expect(
        (g.apf_command(0, apf.Command.GET_SDEI), g.apf_command(0, apf.Command.GET_IRQ)),
        ((0, 0x12345), (0, 999)),
        "(GET_SDEI, GET_IRQ)",
    )


@spec("APF v4 10/15; docs/reference/apf.md", "SET_CONTROL runs the enable logic: SUCCESS is 0 and the vCPU is enabled")
def test_set_control_enables(ag: ApfGuest, expect: Expect) -> None:
    ag.configure()
    word = BLOCK | apf.CONTROL_ENABLED
    expect(ag.guest.apf_command(0, apf.Command.SET_CONTROL, word)[0], 0, "SET_CONTROL")
    expect(ag.guest.apf_command(0, apf.Command.GET_CONTROL)[1], word, "GET_CONTROL")


@spec("APF v4 10/15; docs/reference/apf.md", "SET_CONTROL that ENABLE would answer NOT_REQUIRED fails with -EIO")
def test_set_control_not_required(ag: ApfGuest, expect: Expect) -> None:
    ag.configure()
    expect(ag.guest.apf_command(0, apf.Command.SET_CONTROL, 0)[0], EIO, "SET_CONTROL(0) while disabled")


@spec(
    "APF v4 10/15; docs/reference/apf.md",
    "SET_CONTROL before SET_SDEI/SET_IRQ fails with -EIO (INVALID_PARAMETER inside)",
)
def test_set_control_unconfigured(ag: ApfGuest, expect: Expect) -> None:
    expect(ag.guest.apf_command(0, apf.Command.SET_CONTROL, BLOCK | 1)[0], EIO, "SET_CONTROL")


@spec("APF v4 10/15, 08/15; docs/reference/apf.md", "what the VMM sets is what the guest's hypercalls read")
def test_vmm_and_guest_agree(ag: ApfGuest, expect: Expect) -> None:
    ag.configure()
    sdei_num = ag.guest.call(apf.FUNC_ID, apf.Sub.SDEI).x[1]
    irq = ag.guest.call(apf.FUNC_ID, apf.Sub.IRQ).x[1]
    expect((sdei_num, irq), (EVENT, PPI), "(SDEI, IRQ) seen by the guest")
