"""The bare-metal agent under real KVM: a nested L1 (QEMU TCG at EL2) runs apflab-vmm.

No fakes: Linux 6.12 with KVM under QEMU, apflab-vmm, the agent, and the model bridge
serving the SDEI calls the SMCCC filter forwards. Expected values are KVM's and the
specs': SMCCC_VERSION 1.1 and KVM's vendor UID (DEN0028; measured on this kernel in
docs/reference/lab.md, "Nested KVM under QEMU TCG"), SDEI 1.1 from the spec model (DEN0054C), and the
handler entry registers of DEN0054 (x0 event, x1 argument, x2/x3 interrupted PC and
PSTATE, PSTATE = EL1h with D, A, I, F masked). The qemu-kvm target's suites (phase 2)
go much further; this is the smoke test of the layers below them.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apflab.abi import smccc
from apflab.abi.sdei import Fn
from apflab.agent.client import AgentGuest, ProcessStream
from apflab.guest import Handler
from apflab.images import cache_dir
from apflab.images.kvm import KVM_HOST
from apflab.kvm.announce import Announce, find_announce
from apflab.kvm.bridge import ModelBridge, accept_vmm
from apflab.kvm.l1 import L1Config, qemu_command
from apflab.kvm.link import Listener

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-aarch64") is None, reason="needs qemu-system-aarch64 (make test installs it)"
)

READY = b"APFLAB-AGENT READY"
BOOT_BOUND = 60.0
HANDLER_PSTATE_BITS = 0x3C5  # EL1h (M = 0b0101) with D, A, I, F set; NZCV may differ


def image_dir() -> Path:
    if not KVM_HOST.fresh(cache_dir()):
        pytest.skip("the kvm image is not built: `apflab images kvm` (make test builds it)")
    return KVM_HOST.dir(cache_dir())


def boot_l1(console: str) -> tuple[AgentGuest, ModelBridge, Announce]:
    listener = Listener()
    bridge = ModelBridge("spec")
    threading.Thread(target=lambda: accept_vmm(listener, bridge, BOOT_BOUND), daemon=True).start()
    cfg = L1Config(image_dir(), channel="virtio", channel_port=listener.port, sdei="forward", console=console)
    stream = ProcessStream(qemu_command(cfg))
    seen, deadline = b"", time.monotonic() + BOOT_BOUND
    while READY not in seen or not seen.rstrip(b"\r").endswith(b"\n"):
        if time.monotonic() > deadline or not stream.alive():
            stream.close()
            pytest.fail(f"L1 did not run the agent within {BOOT_BOUND:g} s: {seen[-800:].decode(errors='replace')}")
        seen += stream.read(0.2)
    listener.close()
    announce = find_announce(seen.decode(errors="replace"))
    assert announce is not None, seen[-800:]
    return AgentGuest(stream, "qemu-kvm", timeout=10), bridge, announce


@pytest.fixture(scope="module")
def l1() -> Iterator[tuple[AgentGuest, ModelBridge, Announce]]:
    guest, bridge, announce = boot_l1("fast")
    yield guest, bridge, announce
    guest.close()


def test_vmm_forwards_sdei_on_a_kernel_with_the_smccc_filter(l1) -> None:
    _, _, announce = l1
    assert announce.sdei == "forward" and "smccc-filter" in announce.caps and announce.vcpus == 2


def test_kvm_answers_the_arm_and_vendor_calls(l1) -> None:
    guest, bridge, _ = l1
    calls = bridge.calls
    assert guest.call(smccc.SMCCC_VERSION).x[0] == 0x10001  # SMCCC 1.1
    assert guest.call(smccc.VENDOR_HYP_CALL_UID).x == smccc.KVM_UID_WORDS
    assert bridge.calls == calls  # none of these reached the host


def test_sdei_version_comes_from_the_model(l1) -> None:
    guest, bridge, _ = l1
    calls = bridge.calls
    assert guest.call(Fn.VERSION).x[0] == 0x0001_0001_0000_0000  # SDEI 1.1, vendor 0
    assert bridge.calls == calls + 1


def test_signal_dispatches_into_the_real_handler(l1) -> None:
    guest, bridge, _ = l1
    guest.reset()
    ep = guest.facts.entry_point
    for fid, *args in ((Fn.EVENT_REGISTER, 0, ep, 0x77, 0, 0), (Fn.EVENT_ENABLE, 0), (Fn.PE_UNMASK,)):
        assert guest.call(fid, *args).x[0] == 0
    guest.set_handler(0x77, Handler())
    result = guest.call(Fn.EVENT_SIGNAL, 0, guest.facts.mpidrs[0])
    assert result.x[0] == 0 and len(result.deliveries) == 1
    d = result.deliveries[0]
    interrupted = guest.regs()  # the agent's registers right after SIGNAL returned
    assert (d.pe, d.x[0], d.x[1]) == (0, 0, 0x77)
    assert (d.x[2], d.x[3]) == (interrupted.pc, interrupted.pstate)
    assert d.pstate & 0x3CF == HANDLER_PSTATE_BITS
    assert bridge.quiesce(2.0)


def test_signal_to_the_other_pe_is_delivered_there(l1) -> None:
    guest, bridge, _ = l1
    guest.reset()
    ep = guest.facts.entry_point
    guest.select_pe(1)
    for fid, *args in ((Fn.EVENT_REGISTER, 0, ep, 0x11, 0, 0), (Fn.EVENT_ENABLE, 0), (Fn.PE_UNMASK,)):
        assert guest.call(fid, *args).x[0] == 0
    guest.select_pe(0)
    result = guest.call(Fn.EVENT_SIGNAL, 0, guest.facts.mpidrs[1])
    assert result.x[0] == 0
    assert [(d.pe, d.x[1]) for d in result.deliveries] == [(1, 0x11)]
    assert bridge.stops >= 1  # PE 1 was kicked out of KVM_RUN to take it


def test_the_agent_as_built_runs_unchanged_on_the_pl011() -> None:
    guest, _, _ = boot_l1("pl011")
    try:
        assert guest.facts.pes == 2 and guest.facts.conduit == "hvc"
        assert guest.call(smccc.SMCCC_VERSION).x[0] == 0x10001
        assert guest.call(Fn.VERSION).x[0] == 0x0001_0001_0000_0000
    finally:
        guest.close()
