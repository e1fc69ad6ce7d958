"""Asynchronous page fault ABI of the KVM arm64 v4 series (KVM APF v4; docs/reference/apf.md).

Data only: the SMCCC vendor call, its sub-functions, the control word, the shared
data block layout and the VMM command numbers. Behaviour lives in the model.
"""

from __future__ import annotations

import enum

from apflab.abi.smccc import KVM_FUNC_ASYNC_PF

#: ARM_SMCCC_VENDOR_HYP_KVM_ASYNC_PF_FUNC_ID: fast SMC32, vendor hyp, function 2.
FUNC_ID = KVM_FUNC_ASYNC_PF


class Sub(enum.IntEnum):
    """Sub-functions passed in x1 (APF v4 08/15)."""

    VERSION = 0
    SLOTS = 1
    SDEI = 2
    IRQ = 3
    ENABLE = 4
    IRQ_ACK = 5


#: VERSION sub-function result: v1.0.0 as major[23:16] minor[15:8] revision[7:0].
VERSION_1_0_0 = 0x010000
#: ASYNC_PF_PER_VCPU: size of the host's per-vCPU GFN table.
SLOTS_PER_VCPU = 64

# Control word bits (APF v4 07/15, 09/15).
CONTROL_ENABLED = 1 << 0
CONTROL_SEND_ALWAYS = 1 << 1
CONTROL_GPA_MASK = ~0x3F & ((1 << 64) - 1)

# Shared data block (APF v4 07/15): reason u32 @0, token u32 @4, pad[56] @8, enabled u32 @64.
DATA_REASON_OFFSET = 0
DATA_TOKEN_OFFSET = 4
DATA_ENABLED_OFFSET = 64
DATA_SIZE = 68

REASON_PAGE_NOT_PRESENT = 1
REASON_PAGE_READY = 2
WAKE_ALL_TOKEN = 0xFFFFFFFF

#: KVM_SDEI_ASYNC_PF_NUM: the SDEI event for page-not-present in v4's static table.
SDEI_EVENT = 0x40400001


def token(sequence: int, vcpu_id: int) -> int:
    """Token formula of APF v4 07/15: (sequence << 12) | vCPU id, 16-bit wrapping sequence."""
    return ((sequence & 0xFFFF) << 12) | (vcpu_id & 0xFFF)


class Command(enum.IntEnum):
    """KVM_ARM_ASYNC_PF_COMMAND commands (APF v4 10/15)."""

    GET_VERSION = 0
    GET_SDEI = 1
    GET_IRQ = 2
    GET_CONTROL = 3
    SET_SDEI = 4
    SET_IRQ = 5
    SET_CONTROL = 6
