"""Every constant of apflab.abi pinned to its literal value from the primary source.

Model and testcases both read apflab.abi, so a wrong constant there is wrong on both sides
and no suite run can see it. This test imports none of the constants it checks: it names
each one as text, looks it up in its module, and compares it with the number the source
gives, written out here. A constant added to apflab.abi without a pin here fails
``test_every_constant_is_pinned``.
"""

from __future__ import annotations

import enum
import importlib
import struct

import pytest

# DEN0028 (SMCCC) "Function Identifier", "Return codes", "Arm Architecture Calls"; Linux
# include/linux/arm-smccc.h; KVM's vendor-hypervisor service (APF v4 08/15).
SMCCC = {
    "MASK64": 0xFFFF_FFFF_FFFF_FFFF,
    "MASK32": 0xFFFF_FFFF,
    "CallType.YIELDING": 0,
    "CallType.FAST": 1,
    "Convention.SMC32": 0,
    "Convention.SMC64": 1,
    "Owner.ARCH": 0,
    "Owner.CPU": 1,
    "Owner.SIP": 2,
    "Owner.OEM": 3,
    "Owner.STANDARD_SECURE": 4,
    "Owner.STANDARD_HYP": 5,
    "Owner.VENDOR_HYP": 6,
    "SUCCESS": 0,
    "NOT_SUPPORTED": -1,
    "NOT_REQUIRED": -2,
    "INVALID_PARAMETER": -3,
    "ARCH_WORKAROUND_RET_UNAFFECTED": 1,
    "SMCCC_VERSION": 0x8000_0000,
    "SMCCC_ARCH_FEATURES": 0x8000_0001,
    "SMCCC_ARCH_SOC_ID": 0x8000_0002,
    "SMCCC_ARCH_WORKAROUND_1": 0x8000_8000,
    "SMCCC_ARCH_WORKAROUND_2": 0x8000_7FFF,
    "CALL_UID_FUNCTION": 0xFF01,
    "VERSION_1_0": 0x1_0000,
    "VERSION_1_1": 0x1_0001,
    "VERSION_1_2": 0x1_0002,
    "VENDOR_HYP_CALL_UID": 0x8600_FF01,
    "KVM_UID_WORDS": (0xB66F_B428, 0xE911_C52E, 0x564B_CAA9, 0x743A_004D),
    "KVM_UUID": "28b46fb6-2ec5-11e9-a9ca-4b564d003a74",
    "KVM_FUNC_FEATURES": 0x8600_0000,
    "KVM_FUNC_PTP": 0x8600_0001,
    "KVM_FUNC_ASYNC_PF": 0x8600_0002,
    "KvmFeature.FEATURES": 0,
    "KvmFeature.PTP": 1,
    "KvmFeature.ASYNC_PF": 2,
    "KVM_FUNC_FEATURES_2": 127,
    "KVM_NUM_FUNCS": 128,
}

# DEN0054C 5.1 (function IDs 0xC4000020 + n, SMC64, OEN 4), 5.1.1 (VERSION layout), 5.1.2
# (REGISTER flags), 5.1.5 (CONTEXT: x0-x17), 5.1.9 (STATUS bits), 5.1.10.2 (GET_INFO),
# 5.1.17 (FEATURES), the return codes of chapter 5; Linux include/uapi/linux/arm_sdei.h.
SDEI = {
    "FN_BASE": 0xC400_0020,
    "FN_MASK": 0xFFFF_FFE0,
    "Fn.VERSION": 0xC400_0020,
    "Fn.EVENT_REGISTER": 0xC400_0021,
    "Fn.EVENT_ENABLE": 0xC400_0022,
    "Fn.EVENT_DISABLE": 0xC400_0023,
    "Fn.EVENT_CONTEXT": 0xC400_0024,
    "Fn.EVENT_COMPLETE": 0xC400_0025,
    "Fn.EVENT_COMPLETE_AND_RESUME": 0xC400_0026,
    "Fn.EVENT_UNREGISTER": 0xC400_0027,
    "Fn.EVENT_STATUS": 0xC400_0028,
    "Fn.EVENT_GET_INFO": 0xC400_0029,
    "Fn.EVENT_ROUTING_SET": 0xC400_002A,
    "Fn.PE_MASK": 0xC400_002B,
    "Fn.PE_UNMASK": 0xC400_002C,
    "Fn.INTERRUPT_BIND": 0xC400_002D,
    "Fn.INTERRUPT_RELEASE": 0xC400_002E,
    "Fn.EVENT_SIGNAL": 0xC400_002F,
    "Fn.FEATURES": 0xC400_0030,
    "Fn.PRIVATE_RESET": 0xC400_0031,
    "Fn.SHARED_RESET": 0xC400_0032,
    "SUCCESS": 0,
    "NOT_SUPPORTED": -1,
    "INVALID_PARAMETERS": -2,
    "DENIED": -3,
    "PENDING": -5,
    "OUT_OF_RESOURCE": -10,
    "VERSION_MAJOR_SHIFT": 48,
    "VERSION_MAJOR_MASK": 0x7FFF,
    "VERSION_MINOR_SHIFT": 32,
    "VERSION_MINOR_MASK": 0xFFFF,
    "VERSION_VENDOR_MASK": 0xFFFF_FFFF,
    "Info.EV_TYPE": 0,
    "Info.EV_SIGNALED": 1,
    "Info.EV_PRIORITY": 2,
    "Info.EV_ROUTING_MODE": 3,
    "Info.EV_ROUTING_AFF": 4,
    "EventType.PRIVATE": 0,
    "EventType.SHARED": 1,
    "Priority.NORMAL": 0,
    "Priority.CRITICAL": 1,
    "Routing.RM_ANY": 0,
    "Routing.RM_PE": 1,
    "REGISTER_FLAG_RELATIVE": 0b10,
    "Feature.BIND_SLOTS": 0,
    "Feature.RELATIVE_MODE": 1,
    "STATUS_REGISTERED": 0b001,
    "STATUS_ENABLED": 0b010,
    "STATUS_RUNNING": 0b100,
    "EV_HANDLED": 0,
    "EV_FAILED": 1,
    "EVENT_0": 0,
    "CONTEXT_REGISTERS": 18,
}

# DEN0022 (PSCI) function IDs, 32- and 64-bit forms, and its NOT_SUPPORTED.
PSCI = {
    "PSCI_VERSION": 0x8400_0000,
    "PSCI_CPU_OFF": 0x8400_0002,
    "PSCI_CPU_ON_64": 0xC400_0003,
    "PSCI_SYSTEM_OFF": 0x8400_0008,
    "PSCI_FEATURES": 0x8400_000A,
    "NOT_SUPPORTED": -1,
}

# APF v4 07/15 (control word, struct kvm_vcpu_pv_apf_data, reasons, the wake-all token),
# 08/15 (the SMCCC call and its sub-functions), 10/15 (KVM_ARM_ASYNC_PF_COMMAND commands);
# the SDEI event is KVM_SDEI_ASYNC_PF_NUM of the v4 static table (docs/reference/apf.md).
APF = {
    "FUNC_ID": 0x8600_0002,
    "KVM_FUNC_ASYNC_PF": 0x8600_0002,
    "Sub.VERSION": 0,
    "Sub.SLOTS": 1,
    "Sub.SDEI": 2,
    "Sub.IRQ": 3,
    "Sub.ENABLE": 4,
    "Sub.IRQ_ACK": 5,
    "VERSION_1_0_0": 0x01_00_00,
    "SLOTS_PER_VCPU": 64,
    "CONTROL_ENABLED": 0b01,
    "CONTROL_SEND_ALWAYS": 0b10,
    "CONTROL_GPA_MASK": 0xFFFF_FFFF_FFFF_FFC0,
    "DATA_REASON_OFFSET": 0,
    "DATA_TOKEN_OFFSET": 4,
    "DATA_ENABLED_OFFSET": 64,
    "DATA_SIZE": 68,
    "REASON_PAGE_NOT_PRESENT": 1,
    "REASON_PAGE_READY": 2,
    "WAKE_ALL_TOKEN": 0xFFFF_FFFF,
    "SDEI_EVENT": 0x4040_0001,
    "Command.GET_VERSION": 0,
    "Command.GET_SDEI": 1,
    "Command.GET_IRQ": 2,
    "Command.GET_CONTROL": 3,
    "Command.SET_SDEI": 4,
    "Command.SET_IRQ": 5,
    "Command.SET_CONTROL": 6,
}

# Arm ARM (DDI 0487) "SPSR_EL1" bit positions, "MPIDR_EL1" (bit 31 RES1, Aff3 at 39:32,
# Aff2-Aff0 at 23:0) and the vector table offsets of D1.10.2.
AARCH64 = {
    "SPSR_DAIF_SHIFT": 6,
    "SPSR_NZCV_SHIFT": 28,
    "DAIF_ALL": 0xF,
    "PSTATE_NRW": 1 << 4,
    "PSTATE_BTYPE": 0b11 << 10,
    "PSTATE_SSBS": 1 << 12,
    "PSTATE_IL": 1 << 20,
    "PSTATE_SS": 1 << 21,
    "PSTATE_PAN": 1 << 22,
    "PSTATE_UAO": 1 << 23,
    "PSTATE_DIT": 1 << 24,
    "PSTATE_TCO": 1 << 25,
    "PSTATE_SETTABLE": 0x01C0_1000,  # SSBS, PAN, UAO, DIT: the MSR (immediate) PSTATE fields
    "MPIDR_RES1": 0x8000_0000,
    "MPIDR_AFFINITY_MASK": 0xFF_00FF_FFFF,
    "VECTOR_IRQ_CURRENT_SP0": 0x080,
    "VECTOR_IRQ_CURRENT_SPX": 0x280,
    "VECTOR_IRQ_LOWER_A64": 0x480,
}

# KVM SDEI v4 16/21-17/21 and APF v4 10/15 uAPI, LP64 (docs/reference/kvm-v4.md "uAPI"):
# _IOWR(KVMIO 0xAE, 0xCE/0xCF, size) and the structure sizes.
UAPI = {
    "MAX_VCPUS": 512,
    "BITMAP_WORDS": 8,
    "INVALID_NUM": 0,
    "SAVED_GPRS": 18,
    "KVMIO": 0xAE,
    "KVM_EVENT_STATE_SIZE": 8344,
    "VCPU_STATE_SIZE": 344,
    "SDEI_CMD_SIZE": 8352,
    "KVM_ARM_SDEI_COMMAND": 0xE0A0_AECE,
    "KVM_ARM_ASYNC_PF_COMMAND": 0xC010_AECF,
    "EVENT_STATE.size": 24,
    "KVM_EVENT_HEAD.size": 24,
    "VCPU_EVENT_STATE.size": 16,
    "VCPU_REGS.size": 160,
    "VCPU_STATE_HEAD.size": 24,
    "ASYNC_PF_CMD.size": 16,
    "APF_DATA.size": 68,
}

PINS = {"smccc": SMCCC, "sdei": SDEI, "psci": PSCI, "apf": APF, "aarch64": AARCH64, "uapi": UAPI}


def _lookup(module: str, dotted: str) -> object:
    value: object = importlib.import_module(f"apflab.abi.{module}")
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(
    ("module", "name", "literal"), [(m, n, v) for m, table in PINS.items() for n, v in table.items()]
)
def test_constant(module: str, name: str, literal: object) -> None:
    value = _lookup(module, name)
    if isinstance(value, enum.Enum):
        value = value.value
    assert value == literal, f"apflab.abi.{module}.{name} is {value!r}; the source says {literal!r}"


def _constants(module: str) -> set[str]:
    """Every public constant of one apflab.abi module: ints, enum members, tuples, strings, Structs."""
    mod = importlib.import_module(f"apflab.abi.{module}")
    names = set()
    for name, value in vars(mod).items():
        if name.startswith("_") or getattr(value, "__module__", mod.__name__) not in (mod.__name__, None):
            continue
        if isinstance(value, type) and issubclass(value, enum.Enum):
            if value.__module__ == mod.__name__:
                names.update(f"{name}.{member.name}" for member in value)
        elif isinstance(value, struct.Struct):
            names.add(f"{name}.size")
        elif isinstance(value, (int, tuple, str)) and not isinstance(value, enum.Enum):
            names.add(name)
    return names


@pytest.mark.parametrize("module", sorted(PINS))
def test_every_constant_is_pinned(module: str) -> None:
    unpinned = sorted(_constants(module) - set(PINS[module]))
    assert not unpinned, f"apflab.abi.{module}: constants without a literal pin here: {', '.join(unpinned)}"


def test_sdei_error_names() -> None:
    """The names the JUnit prints for each return code (Linux arm_sdei.h SDEI_* names)."""
    names = _lookup("sdei", "ERROR_NAMES")
    assert names == {-1: "NOT_SUPPORTED", -2: "INVALID_PARAMETERS", -3: "DENIED", -5: "PENDING", -10: "OUT_OF_RESOURCE"}


def test_sdei_error_name() -> None:
    """What the JUnit shows for an SDEI result: the code's name, or the number for a plain value."""
    name = _lookup("sdei", "error_name")
    assert (name(0), name(-3), name(-10), name(7), name(-4)) == ("SUCCESS", "DENIED", "OUT_OF_RESOURCE", "0x7", "-0x4")


def test_sdei_sections() -> None:
    """DEN0054C 5.1.1-5.1.19 define the 19 calls in function-ID order."""
    sections = _lookup("sdei", "SECTION")
    assert {int(fn): s for fn, s in sections.items()} == {0xC4000020 + n: f"5.1.{n + 1}" for n in range(19)}


# ---------------------------------------------------------------- encoders, by literal


def test_apf_token_layout() -> None:
    """APF v4 07/15: token = (sequence << 12) | vcpu_id, a 16-bit sequence, a 12-bit vCPU id."""
    token = _lookup("apf", "token")
    assert token(1, 3) == 0x1003
    assert token(0xFFFF, 0xFFF) == 0xFFF_FFFF
    assert token(0x1_0000, 0) == 0  # the sequence wraps at 16 bits
    assert token(0, 0x1000) == 0  # the vCPU id has 12 bits
    assert token(0x8000, 0x800) == 0x800_0800


def test_sdei_version_layout() -> None:
    """DEN0054C 5.1.1: major [62:48], minor [47:32], vendor [31:0]."""
    make, fields = _lookup("sdei", "make_version"), _lookup("sdei", "version_fields")
    assert make(1, 0, 0) == 0x0001_0000_0000_0000
    assert make(1, 1, 0x4B564D) == 0x0001_0001_004B_564D
    assert make(0x7FFF, 0xFFFF, 0xFFFF_FFFF) == 0x7FFF_FFFF_FFFF_FFFF
    assert fields(0x0001_0002_0000_0003) == (1, 2, 3)
    assert fields(0xFFFF_0000_0000_0000) == (0x7FFF, 0, 0)  # bit 63 is not the major's


def test_bind_slots_layout() -> None:
    """DEN0054C 5.1.17: FEATURES(BIND_SLOTS) = private slots [15:0], shared slots [31:16]."""
    assert _lookup("sdei", "make_bind_slots")(3, 5) == 0x0005_0003
    assert _lookup("sdei", "bind_slots_fields")(0x0005_0003) == (3, 5)


def test_smccc_encoders() -> None:
    """DEN0028: type [31], convention [30], owner [29:24], number [15:0]; version major [30:16]."""
    call_val, decode = _lookup("smccc", "call_val"), _lookup("smccc", "decode")
    assert call_val(1, 1, 4, 0x20) == 0xC400_0020
    assert call_val(1, 0, 6, 0xFF01) == 0x8600_FF01
    assert call_val(0, 0, 0x3F, 0) == 0x3F00_0000
    d = decode(0xC4AB_0021)
    assert (int(d.call_type), int(d.convention), d.owner, d.number, d.reserved) == (1, 1, 4, 0x21, 0xAB)
    assert d.is_fast and not decode(0x4400_0021).is_fast
    assert _lookup("smccc", "version")(1, 2) == 0x1_0002
    assert _lookup("smccc", "version_fields")(0x0003_0004) == (3, 4)
    assert _lookup("smccc", "to_s64")(0xFFFF_FFFF_FFFF_FFFE) == -2
    assert _lookup("smccc", "to_u64")(-3) == 0xFFFF_FFFF_FFFF_FFFD


def test_psci_encoders() -> None:
    """DEN0022: PSCI_VERSION major [30:16], minor [15:0]; OEN 4's PSCI range 0x00-0x1F."""
    assert _lookup("psci", "version")(1, 1) == 0x1_0001
    is_psci = _lookup("psci", "is_psci")
    assert is_psci(0x8400_001F) and is_psci(0xC400_0003)
    assert not is_psci(0x8400_0020) and not is_psci(0xC400_0020)


def test_pstate_and_mpidr_layouts() -> None:
    """Arm ARM SPSR_ELx: NZCV [31:28], D A I F [9:6], M[3:2] = EL, M[0] = SPSel; MPIDR RES1 [31], Aff0 [7:0]."""
    make = _lookup("aarch64", "make_pstate")
    assert make(el=1, sp=1, daif=0xF, nzcv=0b1010) == 0xA000_03C5
    assert make(el=2, sp=0) == 0x8
    assert make(el=1) == 0x5  # SPSel defaults to 1: ELxh
    assert _lookup("aarch64", "pstate_el")(0x9) == 2
    assert _lookup("aarch64", "pstate_sp")(0x5) == 1
    assert _lookup("aarch64", "pstate_daif")(0x3C0) == 0xF
    assert _lookup("aarch64", "mpidr_for")(2) == 0x8000_0002
    # AArch64.TakeException(): DAIF set, EL and SPSel from the target, NZCV/DIT/PAN kept, SS/IL cleared
    entry = _lookup("aarch64", "exception_entry_pstate")
    assert entry(0x5000_0000 | 1 << 24 | 1 << 22 | 1 << 21 | 1 << 20, 1) == 0x5140_03C5


def test_uapi_offsets() -> None:
    """docs/reference/kvm-v4.md "uAPI": field offsets of the structures the VMM moves."""
    regs = _lookup("uapi", "VcpuRegs")(list(range(18)), pc=0xAA, pstate=0xBB).pack()
    assert len(regs) == 160 and regs[144] == 0xAA and regs[152] == 0xBB and regs[8] == 1
    state = _lookup("uapi", "VcpuState")(masked=1, critical_num=0xC, normal_num=0xD).pack()
    assert len(state) == 344 and (state[0], state[8], state[16]) == (1, 0xC, 0xD)
    kev = _lookup("uapi", "KvmEventState")(num=0x11, refcount=0x22, route_mode=1, route_affinity=0x33)
    kev.entries[1], kev.params[1], kev.registered[1], kev.enabled[1] = 0x44, 0x55, 0x66, 0x77
    raw = kev.pack()
    assert len(raw) == 8344
    assert (raw[0], raw[8], raw[12], raw[16]) == (0x11, 0x22, 1, 0x33)
    assert (raw[24 + 8], raw[4120 + 8], raw[8216 + 8], raw[8280 + 8]) == (0x44, 0x55, 0x66, 0x77)
    cmd = _lookup("uapi", "AsyncPfCmd")(cmd=6, value=0x1234).pack()
    assert cmd == bytes([6, 0, 0, 0, 0, 0, 0, 0, 0x34, 0x12, 0, 0, 0, 0, 0, 0])
    # What the VMM's structures hold before anything is set: zeros, and a vCPU that is masked
    # (DEN0054C 5.1.12: PEs start masked; kvm_sdei_vcpu_state.masked).
    assert _lookup("uapi", "KvmEventState")(num=7).pack() == bytes([7]) + bytes(8343)
    assert _lookup("uapi", "VcpuState")().pack() == bytes([1]) + bytes(343)
    assert _lookup("uapi", "VcpuRegs")().pack() == bytes(160)
    assert _lookup("uapi", "AsyncPfCmd")(cmd=3).pack() == bytes([3]) + bytes(15)
    data = _lookup("uapi", "APF_DATA").pack(2, 0xFFFF_FFFF, b"", 1)
    assert data[0] == 2 and data[4:8] == b"\xff" * 4 and data[64] == 1
