"""The board path (lab.yaml's lab-board-vmm template) against a nested L1 standing in for the board.

The template is taken from lab.yaml as a user would fill it; only what a lab place
provides is replaced: the PDU and the serial console by a QEMUKvmDriver that boots the
L1 (``vmm: false``: a shell, dropbear on a forwarded port, no VMM), the RemotePlace by a
NetworkService on that port. Everything else runs for real and unchanged: labgrid's
SSHDriver to dropbear in L1, HostKernelStrategy (SSH up, ``uname -r`` is the kernel
under test, /dev/kvm present), RemoteVmmDriver copying apflab-vmm and the agent over SSH
and starting the VMM there, the VMM channel through the SSH port forward to the model
bridge here, AgentDriver on the VMM's SSH session.

Expected values: KVM's SMCCC_VERSION 1.1 and vendor UID (DEN0028; Linux arm-smccc.h), SDEI 1.1
from the spec model (DEN0054C), the handler entry of DEN0054C 5.1.2 (x0 event, x1 argument).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from labgrid import Environment
from labgrid.util.helper import get_free_port

from apflab.abi import smccc
from apflab.abi.sdei import Fn
from apflab.guest import Handler
from apflab.images import cache_dir
from apflab.images.kvm import KVM_HOST
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-aarch64") is None or shutil.which("ssh") is None,
    reason="needs qemu-system-aarch64 and an OpenSSH client (make test installs them)",
)


def template() -> str:
    text = (ROOT / "lab.yaml").read_text()
    block = text[text.index("# @@KVM-BOARD-TEMPLATE-BEGIN@@") : text.index("# @@KVM-BOARD-TEMPLATE-END@@")]
    return "\n".join(line[1:] for line in block.splitlines() if line.startswith("#  "))


def standin_env(tmp_path: Path) -> Environment:
    if not KVM_HOST.fresh(cache_dir()):
        pytest.skip("the kvm image is not built: `apflab images kvm` (make test builds it)")
    image = KVM_HOST.dir(cache_dir())
    release = json.loads((image / "manifest.json").read_text())["kernel_release"]
    values = {
        "SSH_KEYFILE": str(image / "id_ed25519"),
        "KERNEL_RELEASE": release,
        "KERNEL_IMAGE": "",
        "PROFILE": "spec",
    }
    text = re.sub(r"@@([A-Z_]+)@@", lambda m: values[m.group(1)], template())
    targets = yaml.safe_load(text)
    board = targets["lab-board-vmm"]
    port = get_free_port()
    board["resources"] = {"NetworkService": {"address": "127.0.0.1", "port": port, "username": "root"}}
    drivers = board["drivers"]
    assert [next(iter(d)) for d in drivers[:2]] == ["NetworkPowerDriver", "SerialDriver"]
    drivers[:2] = [{"QEMUKvmDriver": {"name": "board", "vmm": False, "ssh_port": port}}]
    strategy = drivers[-1]["HostKernelStrategy"]
    strategy["bindings"].update(power="board", console="board")
    strategy["boot_timeout"] = 120.0
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump({"targets": targets, "imports": ["apflab.lab"]}, sort_keys=False))
    return Environment(str(path))


def test_the_vmm_over_ssh_on_the_standin_board(tmp_path: Path) -> None:
    env = standin_env(tmp_path)
    target = env.get_target("lab-board-vmm")
    try:
        strategy = target.get_driver("HostKernelStrategy", activate=False)
        strategy.transition("guest")  # L1 up, SSH, the kernel checked, the VMM started over SSH
        vmm = target.get_driver("RemoteVmmDriver")
        guest = target.get_driver("AgentDriver").guest()
        assert vmm.host is not None and vmm.host.watch.announce is not None
        assert vmm.host.watch.announce.sdei == "forward" and vmm.host.watch.announce.channel is not None
        assert guest.facts.pes == 2 and guest.info.has("kvm-vendor-hyp") and guest.info.has("sdei")
        assert guest.call(smccc.SMCCC_VERSION).x[0] == 0x10001
        assert guest.call(smccc.VENDOR_HYP_CALL_UID).x == smccc.KVM_UID_WORDS
        assert guest.call(Fn.VERSION).x[0] == 0x0001_0001_0000_0000  # from the model, through the forward
        guest.set_handler(0x55, Handler())
        ep = guest.facts.entry_point
        for fid, *args in ((Fn.EVENT_REGISTER, 0, ep, 0x55, 0, 0), (Fn.EVENT_ENABLE, 0), (Fn.PE_UNMASK,)):
            assert guest.call(fid, *args).x[0] == 0
        entries = guest.call(Fn.EVENT_SIGNAL, 0, guest.facts.mpidrs[0]).deliveries
        assert [(d.event, d.arg) for d in entries] == [(0, 0x55)]
        guest.restart()  # a fresh VM: another VMM over SSH, its HELLO on a new forwarded connection
        assert vmm.vm_starts == 2
        assert guest.call(Fn.EVENT_REGISTER, 0, ep, 0x55, 0, 0).x[0] == 0  # a fresh model: power-on state
    finally:
        env.cleanup()
