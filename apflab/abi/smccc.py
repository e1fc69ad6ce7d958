"""SMC Calling Convention (Arm DEN0028) function IDs, encoders and return codes.

Data and encoders only: nothing here decides behaviour. Every value is from
DEN0028 as Linux's ``include/linux/arm-smccc.h`` and TF-A's ``smccc.h`` encode it (docs/reference/smccc.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1


def to_u64(value: int) -> int:
    """Two's complement 64-bit register image of a (possibly negative) int."""
    return value & MASK64


def to_s64(value: int) -> int:
    """Signed view of a 64-bit register image."""
    value &= MASK64
    return value - (1 << 64) if value & (1 << 63) else value


class CallType(enum.IntEnum):
    """Bit 31 of a function ID (DEN0028 2.5)."""

    YIELDING = 0
    FAST = 1


class Convention(enum.IntEnum):
    """Bit 30 of a function ID: SMC32/HVC32 or SMC64/HVC64."""

    SMC32 = 0
    SMC64 = 1


class Owner(enum.IntEnum):
    """Owning Entity Numbers, bits 29:24 (DEN0028)."""

    ARCH = 0
    CPU = 1
    SIP = 2
    OEM = 3
    STANDARD_SECURE = 4
    STANDARD_HYP = 5
    VENDOR_HYP = 6


@dataclass(frozen=True)
class FunctionId:
    """A decoded SMCCC function ID (DEN0028)."""

    call_type: CallType
    convention: Convention
    owner: int
    number: int
    reserved: int = 0

    def encode(self) -> int:
        return call_val(self.call_type, self.convention, self.owner, self.number) | ((self.reserved & 0xFF) << 16)

    @property
    def is_fast(self) -> bool:
        return self.call_type == CallType.FAST


def call_val(call_type: int, convention: int, owner: int, number: int) -> int:
    """ARM_SMCCC_CALL_VAL: type<<31 | conv<<30 | (owner&0x3F)<<24 | (fn&0xFFFF)."""
    return (int(call_type) & 1) << 31 | (int(convention) & 1) << 30 | (owner & 0x3F) << 24 | (number & 0xFFFF)


def decode(fid: int) -> FunctionId:
    """Split a 32-bit function ID into its fields (bits 23:16 kept as ``reserved``)."""
    fid &= MASK32
    return FunctionId(
        call_type=CallType((fid >> 31) & 1),
        convention=Convention((fid >> 30) & 1),
        owner=(fid >> 24) & 0x3F,
        number=fid & 0xFFFF,
        reserved=(fid >> 16) & 0xFF,
    )


# Return codes (DEN0028 "Return codes").
SUCCESS = 0
NOT_SUPPORTED = -1
NOT_REQUIRED = -2
INVALID_PARAMETER = -3
ARCH_WORKAROUND_RET_UNAFFECTED = 1

# Architecture calls (DEN0028).
SMCCC_VERSION = 0x80000000
SMCCC_ARCH_FEATURES = 0x80000001
SMCCC_ARCH_SOC_ID = 0x80000002
SMCCC_ARCH_WORKAROUND_1 = 0x80008000
SMCCC_ARCH_WORKAROUND_2 = 0x80007FFF

#: Function number of the per-owner "Call UID" query.
CALL_UID_FUNCTION = 0xFF01


def version(major: int, minor: int) -> int:
    """SMCCC_VERSION result: (major << 16) | minor."""
    return (major & 0x7FFF) << 16 | (minor & 0xFFFF)


def version_fields(value: int) -> tuple[int, int]:
    return (value >> 16) & 0x7FFF, value & 0xFFFF


VERSION_1_0 = version(1, 0)
VERSION_1_1 = version(1, 1)
VERSION_1_2 = version(1, 2)

# KVM vendor hypervisor service (Linux arm-smccc.h; KVM APF v4 08/15).
VENDOR_HYP_CALL_UID = 0x8600FF01
KVM_UID_WORDS = (0xB66FB428, 0xE911C52E, 0x564BCAA9, 0x743A004D)
KVM_UUID = "28b46fb6-2ec5-11e9-a9ca-4b564d003a74"
KVM_FUNC_FEATURES = 0x86000000
KVM_FUNC_PTP = 0x86000001
KVM_FUNC_ASYNC_PF = 0x86000002


class KvmFeature(enum.IntEnum):
    """Bits of the ARM_SMCCC_KVM_FUNC_FEATURES bitmap (Linux arm-smccc.h; KVM APF v4 08/15)."""

    FEATURES = 0
    PTP = 1
    ASYNC_PF = 2


KVM_FUNC_FEATURES_2 = 127
KVM_NUM_FUNCS = 128
