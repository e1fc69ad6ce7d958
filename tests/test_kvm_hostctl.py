"""Host controls of the v4 uAPI through the VMM channel, against a scripted fake VMM.

The peer is a FAKE standing in for apflab-vmm on a kernel with the v4 series (none runs
here: docs/vmm-channel.md, "What ran where"). It checks the bytes the host sends for
each command against the v4 layouts (KVM SDEI v4 15/21-17/21 and KVM APF v4 10/15: kvm_sdei_cmd's union at offset 8,
num as a little-endian u64; kvm_sdei_vcpu_state: masked at 0, critical_num at 8,
normal_num at 16, then two kvm_sdei_vcpu_regs of 160 bytes) and answers with RES lines.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable

import pytest

from apflab.abi import apf
from apflab.abi.uapi import VcpuRegs, VcpuState
from apflab.kvm.hostctl import HostCommandError, KernelSdei
from apflab.kvm.link import LineLink
from apflab.kvm.peer import PeerError, VmmPeer


def scripted(script: list[tuple[str, str | None]]) -> tuple[KernelSdei, Callable[[], None]]:
    """A fake kernel-mode VMM that expects each line of ``script`` in turn and sends its answer (None: silence)."""
    vmm_sock, host_sock = socket.socketpair()
    fake = LineLink.from_socket(vmm_sock, "fake VMM (v4 kernel)")
    fake.send("HELLO 2 vcpus=2 sdei=kernel kernel=5.14.2-sdei-v4")
    peer = VmmPeer(LineLink.from_socket(host_sock, "host"), None, hello_timeout=5)
    assert fake.readline(5) == "HELLO 2"
    seen: list[str] = []

    def vmm() -> None:
        for expected, answer in script:
            line = fake.readline(5)
            seen.append(line)
            if line != expected:
                return
            if answer is not None:
                fake.send(answer)

    t = threading.Thread(target=vmm)
    t.start()

    def done() -> None:
        t.join(5)
        fake.close()
        peer.close()
        assert seen == [e for e, _ in script]

    return KernelSdei(peer, timeout=2), done


def test_version_and_injection_encodings() -> None:
    ctl, done = scripted(
        [
            ("SDEI vm 0", "RES vm 0 00000100"),  # u32 version 0x10000 (1.0.0), little endian
            ("SDEI 1 10 00004040", "RES 1 0 00004040"),  # INJECT_EVENT num = 0x40400000 (trailing zeros implied)
        ]
    )
    assert ctl.version() == 0x10000
    ctl.inject(1, 0x40400000)
    done()


def test_vcpu_state_round_trip() -> None:
    state = VcpuState(
        masked=0,
        critical_num=0x40400000,
        normal_num=0,
        critical_regs=VcpuRegs(list(range(18)), pc=0x60001000, pstate=0x3C5),
    )
    raw = state.pack()
    assert raw[0] == 0 and struct.unpack_from("<QQ", raw, 8) == (0x40400000, 0)
    assert struct.unpack_from("<QQ", raw, 24 + 144) == (0x60001000, 0x3C5)  # critical_regs.pc, .pstate
    ctl, done = scripted([("SDEI 0 8", f"RES 0 0 {raw.rstrip(bytes(1)).hex()}")])
    assert ctl.vcpu_state(0) == state
    done()


def test_kevent_iteration_ends_at_enoent() -> None:
    first = struct.pack("<QIB3xQ", 0x40400000, 1, 0, 0)
    ctl, done = scripted(
        [
            ("SDEI vm 3", f"RES vm 0 {first.rstrip(bytes(1)).hex()}"),
            (f"SDEI vm 3 {struct.pack('<Q', 0x40400000).rstrip(bytes(1)).hex()}", "RES vm -2 -"),
        ]
    )
    events = list(ctl.kevents())
    assert [(e.num, e.refcount) for e in events] == [(0x40400000, 1)]
    done()


def test_refusals_carry_the_kernels_errno() -> None:
    ctl, done = scripted([("APF 0 6 400000001", "RES 0 -5 400000001")])  # SET_CONTROL -> EIO (KVM APF v4 10/15)
    with pytest.raises(HostCommandError) as info:
        ctl.apf(0, apf.Command.SET_CONTROL, 0x4_0000_0001)
    assert info.value.errno == 5
    done()


def test_a_stuck_command_fails_within_its_bound() -> None:
    ctl, done = scripted([("SDEI 1 10 00004040", None)])  # the fake never answers (v4's INJECT deadlock)
    with pytest.raises(PeerError, match=r"no answer to 'SDEI 1 10 00004040' within 2 s$"):
        ctl.inject(1, 0x40400000)
    assert ctl.peer.alive  # the session itself is fine: only that command is stuck
    done()
