"""The v4 series' KVM uAPI structures, byte-exact (KVM SDEI v4 16/21-17/21, APF v4 10/15; LP64, little endian).

Layouts and sizes derive from the field lists with natural
alignment: kvm_sdei_event_state 24, kvm_sdei_kvm_event_state 8344,
kvm_sdei_vcpu_event_state 16, kvm_sdei_vcpu_regs 160, kvm_sdei_vcpu_state 344,
kvm_sdei_cmd 8352, kvm_arm_async_pf_cmd 16, kvm_vcpu_pv_apf_data 68.
Data and codecs only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAX_VCPUS = 512  # KVM_SDEI_MAX_VCPUS
BITMAP_WORDS = MAX_VCPUS // 64
INVALID_NUM = 0  # KVM_SDEI_INVALID_NUM
SAVED_GPRS = 18


class LayoutError(ValueError):
    """Bytes that are not the structure they claim to be (the message says which and where)."""


def _ioc(direction: int, type_: int, nr: int, size: int) -> int:
    """Linux _IOC(): dir << 30 | size << 16 | type << 8 | nr."""
    return direction << 30 | (size & 0x3FFF) << 16 | type_ << 8 | nr


_IOC_READ_WRITE = 3
KVMIO = 0xAE

EVENT_STATE = struct.Struct("<QBBB5xQ")  # num, type, signaled, priority, notifier
KVM_EVENT_HEAD = struct.Struct("<QIB3xQ")  # num, refcount, route_mode, route_affinity
KVM_EVENT_STATE_SIZE = KVM_EVENT_HEAD.size + 8 * (2 * MAX_VCPUS + 2 * BITMAP_WORDS)
VCPU_EVENT_STATE = struct.Struct("<QI4x")  # num, refcount
VCPU_REGS = struct.Struct("<18QQQ")  # regs[18], pc, pstate
VCPU_STATE_HEAD = struct.Struct("<B7xQQ")  # masked, critical_num, normal_num
VCPU_STATE_SIZE = VCPU_STATE_HEAD.size + 2 * VCPU_REGS.size
SDEI_CMD_SIZE = 8 + KVM_EVENT_STATE_SIZE  # u32 cmd (+pad) then the largest union member
ASYNC_PF_CMD = struct.Struct("<I4xQ")  # cmd, union {version, sdei, irq, control}
APF_DATA = struct.Struct("<II56sI")  # reason, token, pad[56], enabled

KVM_ARM_SDEI_COMMAND = _ioc(_IOC_READ_WRITE, KVMIO, 0xCE, SDEI_CMD_SIZE)
KVM_ARM_ASYNC_PF_COMMAND = _ioc(_IOC_READ_WRITE, KVMIO, 0xCF, ASYNC_PF_CMD.size)


def _need(data: bytes, size: int, what: str) -> None:
    if len(data) != size:
        raise LayoutError(f"{what} is {size} bytes, got {len(data)}")


@dataclass
class VcpuRegs:
    """kvm_sdei_vcpu_regs: the context saved when an event was dispatched."""

    regs: list[int] = field(default_factory=lambda: [0] * SAVED_GPRS)
    pc: int = 0
    pstate: int = 0

    def pack(self) -> bytes:
        return VCPU_REGS.pack(*self.regs, self.pc, self.pstate)

    @classmethod
    def unpack(cls, data: bytes) -> VcpuRegs:
        _need(data, VCPU_REGS.size, "kvm_sdei_vcpu_regs")
        v = VCPU_REGS.unpack(data)
        return cls(list(v[:SAVED_GPRS]), v[18], v[19])


@dataclass
class KvmEventState:
    """kvm_sdei_kvm_event_state: one registered (VM-wide) event."""

    num: int
    refcount: int = 0
    route_mode: int = 0
    route_affinity: int = 0
    entries: list[int] = field(default_factory=lambda: [0] * MAX_VCPUS)
    params: list[int] = field(default_factory=lambda: [0] * MAX_VCPUS)
    registered: list[int] = field(default_factory=lambda: [0] * BITMAP_WORDS)
    enabled: list[int] = field(default_factory=lambda: [0] * BITMAP_WORDS)

    def pack(self) -> bytes:
        head = KVM_EVENT_HEAD.pack(self.num, self.refcount, self.route_mode & 0xFF, self.route_affinity)
        body = struct.pack(
            f"<{2 * MAX_VCPUS + 2 * BITMAP_WORDS}Q", *self.entries, *self.params, *self.registered, *self.enabled
        )
        return head + body

    @classmethod
    def unpack(cls, data: bytes) -> KvmEventState:
        _need(data, KVM_EVENT_STATE_SIZE, "kvm_sdei_kvm_event_state")
        num, refcount, mode, aff = KVM_EVENT_HEAD.unpack_from(data)
        words = struct.unpack_from(f"<{2 * MAX_VCPUS + 2 * BITMAP_WORDS}Q", data, KVM_EVENT_HEAD.size)
        n = MAX_VCPUS
        return cls(
            num,
            refcount,
            mode,
            aff,
            list(words[:n]),
            list(words[n : 2 * n]),
            list(words[2 * n : 2 * n + BITMAP_WORDS]),
            list(words[2 * n + BITMAP_WORDS :]),
        )

    @staticmethod
    def bit(bitmap: list[int], index: int) -> bool:
        return bool(bitmap[index // 64] >> (index % 64) & 1)

    @staticmethod
    def set_bit(bitmap: list[int], index: int) -> None:
        bitmap[index // 64] |= 1 << (index % 64)


@dataclass
class VcpuEventState:
    """kvm_sdei_vcpu_event_state: an event queued or running on one vCPU."""

    num: int
    refcount: int

    def pack(self) -> bytes:
        return VCPU_EVENT_STATE.pack(self.num, self.refcount)

    @classmethod
    def unpack(cls, data: bytes) -> VcpuEventState:
        _need(data, VCPU_EVENT_STATE.size, "kvm_sdei_vcpu_event_state")
        return cls(*VCPU_EVENT_STATE.unpack(data))


@dataclass
class VcpuState:
    """kvm_sdei_vcpu_state: mask, the running critical/normal events and their saved contexts."""

    masked: int = 1
    critical_num: int = INVALID_NUM
    normal_num: int = INVALID_NUM
    critical_regs: VcpuRegs = field(default_factory=VcpuRegs)
    normal_regs: VcpuRegs = field(default_factory=VcpuRegs)

    def pack(self) -> bytes:
        head = VCPU_STATE_HEAD.pack(self.masked, self.critical_num, self.normal_num)
        return head + self.critical_regs.pack() + self.normal_regs.pack()

    @classmethod
    def unpack(cls, data: bytes) -> VcpuState:
        _need(data, VCPU_STATE_SIZE, "kvm_sdei_vcpu_state")
        masked, crit, normal = VCPU_STATE_HEAD.unpack_from(data)
        o = VCPU_STATE_HEAD.size
        return cls(
            masked,
            crit,
            normal,
            VcpuRegs.unpack(data[o : o + VCPU_REGS.size]),
            VcpuRegs.unpack(data[o + VCPU_REGS.size :]),
        )


@dataclass
class AsyncPfCmd:
    """kvm_arm_async_pf_cmd: the command and its one value."""

    cmd: int
    value: int = 0

    def pack(self) -> bytes:
        return ASYNC_PF_CMD.pack(self.cmd, self.value)

    @classmethod
    def unpack(cls, data: bytes) -> AsyncPfCmd:
        _need(data, ASYNC_PF_CMD.size, "kvm_arm_async_pf_cmd")
        return cls(*ASYNC_PF_CMD.unpack(data))
