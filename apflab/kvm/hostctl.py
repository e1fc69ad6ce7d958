"""Host controls of an in-kernel SDEI/APF implementation, through apflab-vmm (mode ``kernel``).

The v4 series' uAPI (docs/reference/kvm-v4.md "uAPI", docs/reference/apf.md "VMM
interface"; Message-Ids <20210815001352.81927-17-gshan@redhat.com> for the VM commands,
v3's <20210507083124.43347-18-gshan@redhat.com> for the vCPU ones,
<20210815005947.83699-11-gshan@redhat.com> for KVM_ARM_ASYNC_PF_COMMAND): the VMM runs
each command's ioctl on the VM fd or on a vCPU's fd (docs/vmm-channel.md, "Host
commands") and this module packs and unpacks the structures with apflab.abi.uapi.
Errors come back as negative errno values, as the kernel returned them.

Known hazards of v4 (docs/reference/kvm-v4.md, "The deviations apflab names"), which a
caller must expect as a wedge, not a value: INJECT_EVENT on a registered and enabled
event takes the vCPU lock twice (the VMM's bound then ends it: "a host command ... has
been in its ioctl"), and SET_EVENT with a non-zero ``notifier`` makes the kernel call
that address.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator

from apflab.abi import apf
from apflab.abi.uapi import (
    EVENT_STATE,
    KVM_EVENT_STATE_SIZE,
    VCPU_EVENT_STATE,
    VCPU_STATE_SIZE,
    KvmEventState,
    VcpuEventState,
    VcpuState,
)
from apflab.kvm.peer import VmmPeer

ENOENT = 2


class SdeiCmd(enum.IntEnum):
    """kvm_sdei_cmd.cmd (KVM SDEI v4 16/21, 17/21): 0-4 on the VM fd, 5-10 on a vCPU fd."""

    GET_VERSION = 0
    SET_EVENT = 1
    GET_KEVENT_COUNT = 2
    GET_KEVENT = 3
    SET_KEVENT = 4
    GET_VEVENT_COUNT = 5
    GET_VEVENT = 6
    SET_VEVENT = 7
    GET_VCPU_STATE = 8
    SET_VCPU_STATE = 9
    INJECT_EVENT = 10


class HostCommandError(RuntimeError):
    """A command the kernel refused: ``errno`` is its (positive) error number."""

    def __init__(self, what: str, status: int) -> None:
        super().__init__(f"{what} failed with errno {-status}")
        self.errno = -status


class KernelSdei:
    """The v4 SDEI and APF controls of one VM, over a VMM peer."""

    def __init__(self, peer: VmmPeer, timeout: float = 10.0) -> None:
        self.peer = peer
        self.timeout = timeout

    def _sdei(self, target: int | str, cmd: SdeiCmd, payload: bytes = b"") -> bytes:
        status, data = self.peer.sdei(target, int(cmd), payload, timeout=self.timeout)
        if status:
            raise HostCommandError(f"KVM_ARM_SDEI_COMMAND {cmd.name} on {target}", status)
        return data

    # ---------------------------------------------------------------- VM

    def version(self) -> int:
        return struct.unpack_from("<I", self._sdei("vm", SdeiCmd.GET_VERSION))[0]

    def expose_event(self, num: int, shared: bool, critical: bool, signaled: bool = True) -> None:
        """SET_EVENT: a new event the guest may register.

        The notifier is always 0: v4 calls a non-zero one (KVM SDEI v4 15/21).
        """
        self._sdei("vm", SdeiCmd.SET_EVENT, EVENT_STATE.pack(num, int(shared), int(signaled), int(critical), 0))

    def kevent_count(self) -> int:
        return struct.unpack_from("<I", self._sdei("vm", SdeiCmd.GET_KEVENT_COUNT))[0]

    def kevents(self) -> Iterator[KvmEventState]:
        """GET_KEVENT as an iterator: from num 0 (the first) until ENOENT (KVM SDEI v4 16/21)."""
        num = 0
        while True:
            try:
                data = self._sdei("vm", SdeiCmd.GET_KEVENT, struct.pack("<Q", num))
            except HostCommandError as exc:
                if exc.errno == ENOENT:
                    return
                raise
            state = KvmEventState.unpack(data[:KVM_EVENT_STATE_SIZE])
            yield state
            num = state.num

    def set_kevent(self, state: KvmEventState) -> None:
        self._sdei("vm", SdeiCmd.SET_KEVENT, state.pack())

    # -------------------------------------------------------------- vCPU

    def inject(self, vcpu: int, num: int) -> None:
        """INJECT_EVENT (v4 deadlocks here once the event is registered and enabled: KVM SDEI v4 17/21, 18/21)."""
        self._sdei(vcpu, SdeiCmd.INJECT_EVENT, struct.pack("<Q", num))

    def vevent_count(self, vcpu: int) -> int:
        return struct.unpack_from("<I", self._sdei(vcpu, SdeiCmd.GET_VEVENT_COUNT))[0]

    def vevents(self, vcpu: int) -> Iterator[VcpuEventState]:
        num = 0
        while True:
            try:
                data = self._sdei(vcpu, SdeiCmd.GET_VEVENT, VCPU_EVENT_STATE.pack(num, 0))
            except HostCommandError as exc:
                if exc.errno == ENOENT:
                    return
                raise
            state = VcpuEventState.unpack(data[: VCPU_EVENT_STATE.size])
            yield state
            num = state.num

    def set_vevent(self, vcpu: int, state: VcpuEventState) -> None:
        self._sdei(vcpu, SdeiCmd.SET_VEVENT, state.pack())

    def vcpu_state(self, vcpu: int) -> VcpuState:
        return VcpuState.unpack(self._sdei(vcpu, SdeiCmd.GET_VCPU_STATE)[:VCPU_STATE_SIZE])

    def set_vcpu_state(self, vcpu: int, state: VcpuState) -> None:
        self._sdei(vcpu, SdeiCmd.SET_VCPU_STATE, state.pack())

    # --------------------------------------------------------------- APF

    def apf(self, target: int | str, cmd: apf.Command, value: int | None = None) -> int:
        """KVM_ARM_ASYNC_PF_COMMAND; the value the kernel copied back."""
        status, out = self.peer.apf(target, int(cmd), value, timeout=self.timeout)
        if status:
            raise HostCommandError(f"KVM_ARM_ASYNC_PF_COMMAND {cmd.name} on {target}", status)
        return out
