"""The model bridge against a scripted fake VMM (docs/vmm-channel.md).

The peer here is a FAKE: a script standing in for apflab-vmm and its real vCPUs, sending
the lines the VMM sends (registers as KVM reports them after a forwarded HVC, PC
already past it) and checking what the host answers. It exists because the real VMM
needs an arm64 KVM host (nested L1 under QEMU TCG), which the end-to-end tests of the
qemu-kvm target exercise (phase 2). Expected values come from DEN0054C (5.1.1 VERSION,
handler dispatch and completion in docs/reference/sdei-dispatch.md), not from the
bridge: dispatch sets x0 = event, x1 = argument, x2 = interrupted PC, x3 = interrupted
PSTATE and PSTATE = EL1h with D, A, I, F masked; COMPLETE restores x0-x17, PC and
PSTATE; COMPLETE_AND_RESUME also sets ELR_EL1/SPSR_EL1 to the interrupted PC/PSTATE and
continues at the resume address.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

from apflab.kvm import channel as ch
from apflab.kvm.bridge import ModelBridge
from apflab.kvm.link import LineLink, LinkTimeout
from apflab.kvm.peer import PeerError, VmmPeer

EP = 0x6000_2580  # the agent's handler entry (any 4-byte aligned address would do)
VBAR = 0x6000_0800
CALL_PC = 0x6000_1004  # the instruction after the agent's HVC, as KVM reports it
HANDLER_PC = 0x6000_25F0
RUNNING = 0x6000_0005  # EL1h, DAIF clear, Z and C set: what the agent runs with
#: EL1h (M=0b0101), D A I F masked, NZCV kept (DEN0054C handler dispatch; docs/reference/sdei-dispatch.md)
HANDLER_PSTATE = 0x6000_03C5
POISON = 0x5DE1_0000_0000_0000

VERSION = 0xC400_0020
REGISTER = 0xC400_0021
ENABLE = 0xC400_0022
COMPLETE = 0xC400_0025
COMPLETE_AND_RESUME = 0xC400_0026
PE_MASK = 0xC400_002B
PE_UNMASK = 0xC400_002C
SIGNAL = 0xC400_002F


class FakeVmm:
    """A scripted stand-in for apflab-vmm (not a real vCPU: see the module docstring)."""

    def __init__(self, vcpus: int = 1, sdei: str = "forward", bridge: ModelBridge | None = None) -> None:
        vmm_sock, host_sock = socket.socketpair()
        self.link = LineLink.from_socket(vmm_sock, "fake VMM")
        self.link.send(f"HELLO 2 vcpus={vcpus} sdei={sdei} kernel=6.12.0-fake")
        self.bridge = bridge if bridge is not None else ModelBridge("spec")
        self.peer = VmmPeer(LineLink.from_socket(host_sock, "host"), self.bridge, hello_timeout=5)
        assert self.link.readline(5) == "HELLO 2"
        self.kicks: list[int] = []

    def _answer(self, vcpu: int) -> ch.Answer:
        while True:
            line = self.link.readline(5)
            kind, index, *rest = line.split()
            if kind == "KICK":
                self.kicks.append(int(index))
                continue
            assert int(index) == vcpu, line
            numbers = [int(t, 16) for t in rest]
            if kind == "RET":
                return ch.Ret(vcpu, tuple(numbers))  # type: ignore[arg-type]
            if kind == "REGS":
                return ch.Regs(vcpu, ch.RegImage.from_fields(numbers))
            assert kind == "KEEP", line
            return ch.Keep(vcpu)

    def call(self, vcpu: int, x: list[int], pc: int = CALL_PC, pstate: int = RUNNING) -> ch.Answer:
        image = ch.RegImage(pc, pstate, 0, 0, tuple(x + [0] * (18 - len(x))))
        self.link.send(f"CALL {vcpu} hvc {VBAR:x} " + " ".join(f"{v:x}" for v in image.fields()))
        return self._answer(vcpu)

    def stop(self, vcpu: int, image: ch.RegImage, running: bool = True) -> ch.Answer:
        state = "on" if running else "off"
        self.link.send(f"STOP {vcpu} {state} {VBAR:x} " + " ".join(f"{v:x}" for v in image.fields()))
        return self._answer(vcpu)

    def wait_kick(self, vcpu: int) -> None:
        deadline = time.monotonic() + 5
        while vcpu not in self.kicks:
            line = self.link.readline(max(deadline - time.monotonic(), 0.01))
            kind, index = line.split()[:2]
            assert kind == "KICK", line
            self.kicks.append(int(index))
        self.kicks.remove(vcpu)

    def close(self) -> None:
        self.link.close()
        self.peer.close()


@pytest.fixture
def vmm():
    fake = FakeVmm()
    yield fake
    fake.close()


def registered(vmm: FakeVmm, vcpu: int, event: int = 0, arg: int = 7) -> None:
    """EVENT_REGISTER(event, EP, arg, RM_ANY), EVENT_ENABLE, PE_UNMASK on ``vcpu``: all SUCCESS."""
    for x in ([REGISTER, event, EP, arg, 0, 0], [ENABLE, event], [PE_UNMASK]):
        answer = vmm.call(vcpu, x)
        assert isinstance(answer, ch.Ret) and answer.x[0] == 0, answer


def test_sdei_version_is_answered_by_the_model(vmm: FakeVmm) -> None:
    answer = vmm.call(0, [VERSION])
    # DEN0054C is SDEI 1.1: major 1 at bit 48, minor 1 at bit 32, vendor 0 (DEN0054C 5.1.1).
    assert answer == ch.Ret(0, (0x0001_0001_0000_0000, 0, 0, 0))


def test_unknown_sdei_function_is_not_supported(vmm: FakeVmm) -> None:
    answer = vmm.call(0, [0xC400_003F])
    assert answer == ch.Ret(0, ((1 << 64) - 1, 0, 0, 0))  # SMCCC NOT_SUPPORTED, -1


def test_signal_dispatches_into_the_handler_and_complete_restores(vmm: FakeVmm) -> None:
    registered(vmm, 0)
    before = [SIGNAL, 0, 0x8000_0000, 0x33, 0x44] + [0x100 + i for i in range(5, 18)]
    entry = vmm.call(0, before)
    assert isinstance(entry, ch.Regs)
    img = entry.image
    assert (img.pc, img.pstate) == (EP, HANDLER_PSTATE)
    assert img.x[:4] == (0, 7, CALL_PC, RUNNING)  # event 0, argument, interrupted PC and PSTATE
    # The handler finishes from its own code with x2..x17 overwritten (the agent poisons them).
    done = vmm.call(0, [COMPLETE, 0] + [POISON | i for i in range(2, 18)], pc=HANDLER_PC, pstate=HANDLER_PSTATE)
    assert isinstance(done, ch.Regs)
    # x0 is SIGNAL's SUCCESS, written before the event was taken; the rest as the caller left them.
    assert done.image == ch.RegImage(CALL_PC, RUNNING, 0, 0, (0, *before[1:]))


def test_complete_and_resume_sets_elr_and_spsr(vmm: FakeVmm) -> None:
    registered(vmm, 0)
    entry = vmm.call(0, [SIGNAL, 0, 0x8000_0000])
    assert isinstance(entry, ch.Regs) and entry.image.pc == EP
    resume_at = 0x6000_13C0
    done = vmm.call(0, [COMPLETE_AND_RESUME, resume_at], pc=HANDLER_PC, pstate=HANDLER_PSTATE)
    assert isinstance(done, ch.Regs)
    img = done.image
    assert (img.pc, img.elr, img.spsr) == (resume_at, CALL_PC, RUNNING)
    assert img.pstate == HANDLER_PSTATE  # "as if an exception were taken": EL1h, DAIF masked


def test_complete_outside_a_handler_is_denied(vmm: FakeVmm) -> None:
    assert vmm.call(0, [COMPLETE, 0]) == ch.Ret(0, ((1 << 64) - 3, 0, 0, 0))  # DENIED, -3


def test_signal_to_another_vcpu_kicks_it_and_its_stop_dispatches() -> None:
    vmm = FakeVmm(vcpus=2)
    try:
        registered(vmm, 1, arg=8)
        assert vmm.call(0, [SIGNAL, 0, 0x8000_0001]) == ch.Ret(0, (0, 0, 0x8000_0001, 0))
        vmm.wait_kick(1)
        idle = ch.RegImage(0x6000_3A0C, RUNNING, 0, 0, tuple(range(18)))
        entry = vmm.stop(1, idle)
        assert isinstance(entry, ch.Regs)
        assert entry.image.pc == EP and entry.image.x[:4] == (0, 8, 0x6000_3A0C, RUNNING)
        done = vmm.call(1, [COMPLETE, 0], pc=HANDLER_PC, pstate=HANDLER_PSTATE)
        assert isinstance(done, ch.Regs) and done.image == idle
        assert vmm.bridge.quiesce(1.0)
    finally:
        vmm.close()


def test_host_injection_kicks_the_vcpu_and_quiesce_waits_for_the_handler(vmm: FakeVmm) -> None:
    registered(vmm, 0, event=8, arg=0x88)  # spec platform: event 8 is private, critical
    assert vmm.bridge.inject(8, 0) == 0
    vmm.wait_kick(0)
    assert not vmm.bridge.quiesce(0.05)  # kicked, not answered yet
    idle = ch.RegImage(0x6000_3000, RUNNING, 0, 0, (0,) * 18)
    entry = vmm.stop(0, idle)
    assert isinstance(entry, ch.Regs) and entry.image.x[:2] == (8, 0x88)
    assert not vmm.bridge.quiesce(0.05)  # the handler runs
    vmm.call(0, [COMPLETE, 0], pc=HANDLER_PC, pstate=HANDLER_PSTATE)
    assert vmm.bridge.quiesce(1.0)


def test_a_powered_off_vcpu_keeps_its_event_pending() -> None:
    vmm = FakeVmm(vcpus=2)
    try:
        registered(vmm, 1)
        assert vmm.bridge.inject(0, 1) == 0
        vmm.wait_kick(1)
        parked = ch.RegImage(0x6000_0000, 0x3C5, 0, 0, (0,) * 18)
        assert vmm.stop(1, parked, running=False) == ch.Keep(1)
        assert vmm.bridge.machine is not None and vmm.bridge.machine.sdei.pending[1] == [0]
    finally:
        vmm.close()


def test_a_vcpu_powered_on_again_starts_masked_without_its_private_events() -> None:
    """DEN0054C 5.1.12: after power-down a PE starts masked; TF-A's sdei_cpu_on_init() drops
    its private registrations. The VMM says POWER before the vCPU runs (psci.c)."""
    vmm = FakeVmm(vcpus=2)
    try:
        registered(vmm, 1)
        vmm.link.send("POWER 1 on")
        answer = vmm.call(1, [PE_MASK])
        assert answer == ch.Ret(1, (0, 0, 0, 0))  # already masked: PE_MASK answers 0 (DEN0054C 5.1.12)
        assert vmm.call(1, [REGISTER, 0, EP, 7, 0, 0]).x[0] == 0  # event 0 is unregistered again
        assert vmm.peer.alive
    finally:
        vmm.close()


def test_a_restarted_vmm_meets_a_fresh_model() -> None:
    bridge = ModelBridge("spec")
    first = FakeVmm(bridge=bridge)
    registered(first, 0)
    first.close()
    second = FakeVmm(bridge=bridge)
    try:
        # Registered on the first VMM; after a restart REGISTER succeeds again (power-on state).
        registered(second, 0)
    finally:
        second.close()


def test_malformed_line_ends_the_session_with_the_reason(vmm: FakeVmm) -> None:
    vmm.link.send("CALL 0 hvc 1 2 3")
    deadline = time.monotonic() + 5
    while vmm.peer.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert vmm.peer.error is not None and "CALL has 6 tokens" in vmm.peer.error


def test_call_from_a_vcpu_the_vmm_did_not_announce_is_an_error(vmm: FakeVmm) -> None:
    vmm.link.send(f"CALL 3 hvc 0 {' '.join(['0'] * ch.IMAGE_LEN)}")
    deadline = time.monotonic() + 5
    while vmm.peer.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert vmm.peer.error is not None and "vCPU 3 does not exist" in vmm.peer.error


def test_other_channel_version_is_refused() -> None:
    vmm_sock, host_sock = socket.socketpair()
    fake = LineLink.from_socket(vmm_sock, "fake VMM")
    fake.send("HELLO 3 vcpus=1 sdei=forward kernel=x")
    with pytest.raises(PeerError, match="version 3"):
        VmmPeer(LineLink.from_socket(host_sock, "host"), ModelBridge(), hello_timeout=5)
    assert fake.readline(5).startswith("ERR channel version 3 not supported")
    fake.close()


def test_silent_vmm_fails_the_handshake_within_its_bound() -> None:
    vmm_sock, host_sock = socket.socketpair()
    t = time.monotonic()
    with pytest.raises(PeerError, match=r"nothing within 0\.2 s"):
        VmmPeer(LineLink.from_socket(host_sock, "host"), ModelBridge(), hello_timeout=0.2)
    assert time.monotonic() - t < 2
    vmm_sock.close()


def test_kernel_mode_host_commands_round_trip() -> None:
    vmm_sock, host_sock = socket.socketpair()
    fake = LineLink.from_socket(vmm_sock, "fake VMM")
    fake.send("HELLO 2 vcpus=2 sdei=kernel kernel=5.14.0-sdei-v4")
    peer = VmmPeer(LineLink.from_socket(host_sock, "host"), None, hello_timeout=5)
    assert fake.readline(5) == "HELLO 2"
    try:
        import threading

        def vmm_side() -> None:
            assert fake.readline(5) == "SDEI vm 0"
            fake.send("RES vm 0 00000100")  # kvm_sdei_cmd.version = 0x10000, little endian
            assert fake.readline(5) == "APF 1 4 40400001"
            fake.send("RES 1 0 40400001")

        t = threading.Thread(target=vmm_side)
        t.start()
        status, data = peer.sdei("vm", 0)
        assert status == 0 and int.from_bytes(data[:4], "little") == 0x10000
        assert peer.apf(1, 4, 0x40400001) == (0, 0x40400001)
        t.join(5)
        with pytest.raises(PeerError, match="no answer"):
            peer.apf(0, 1, timeout=0.2)
    finally:
        fake.close()
        peer.close()


def test_answer_for_is_minimal() -> None:
    before = ch.RegImage(1, 2, 3, 4, tuple(range(18)))
    assert ch.answer_for(0, before, before) == ch.Keep(0)
    ret = ch.RegImage(1, 2, 3, 4, (9, 9, 9, 9, *range(4, 18)))
    assert ch.answer_for(0, before, ret) == ch.Ret(0, (9, 9, 9, 9))
    moved = ch.RegImage(5, 2, 3, 4, tuple(range(18)))
    assert ch.answer_for(0, before, moved) == ch.Regs(0, moved)


@pytest.mark.parametrize(
    "line, why",
    [
        ("HELLO x vcpus=1 sdei=none", "without a version"),
        ("HELLO 2 vcpus=1 sdei=maybe", "unknown sdei mode"),
        ("POWER 1 up", "POWER takes a vCPU and on or off"),
        ("STOP 0 sleeping 0 " + " ".join(["0"] * 22), "not on or off"),
        ("CALL 0 svc 0 " + " ".join(["0"] * 22), "not hvc or smc"),
        ("CALL 0 hvc 0 " + " ".join(["0"] * 21 + ["1" * 17]), "not a 64-bit hex number"),
        ("RES vm zero", "not a number"),
        ("WHAT 1", "unknown message"),
    ],
)
def test_malformed_vmm_lines_are_named(line: str, why: str) -> None:
    with pytest.raises(ch.ChannelError, match=why):
        ch.parse_vmm_line(line)


def test_the_channel_runs_over_a_plain_fd_pair() -> None:
    """Pipes, as an SSH channel's descriptors would be on a lab board."""
    to_host_r, to_host_w = os.pipe()
    to_vmm_r, to_vmm_w = os.pipe()
    vmm_end = LineLink.from_fds(to_vmm_r, to_host_w, "fake VMM on pipes")
    vmm_end.send("HELLO 2 vcpus=1 sdei=forward kernel=x")
    peer = VmmPeer(LineLink.from_fds(to_host_r, to_vmm_w, "host on pipes"), ModelBridge(), hello_timeout=5)
    try:
        assert vmm_end.readline(5) == "HELLO 2"
        vmm_end.send(f"CALL 0 smc {VBAR:x} {CALL_PC:x} {RUNNING:x} 0 0 {VERSION:x} " + " ".join(["0"] * 17))
        assert vmm_end.readline(5) == "RET 0 1000100000000 0 0 0"
    finally:
        vmm_end.close()
        peer.close()


def test_readline_has_a_bound() -> None:
    a, b = socket.socketpair()
    link = LineLink.from_socket(a, "quiet")
    with pytest.raises(LinkTimeout):
        link.readline(0.05)
    link.close()
    b.close()
