"""The qemu-kvm target through labgrid: its host's failures, each a bounded error the run survives.

A nested L1 (QEMU TCG at EL2, Debian's 6.12, apflab-vmm, the agent) as lab.yaml's
``qemu-kvm`` describes it, with one driver field changed per test. The failures are
provoked in L1 by targets/qemu-kvm/init's ``apflab.fault`` switch (QEMUKvmDriver's
``fault``, first boot only), and what stands in for what is said at each test:

* a host kernel without KVM: QEMU without ``virtualization=on`` (real: no EL2, no /dev/kvm);
* a host kernel that dies: ``panic`` is the kernel's own panic (sysrq c), real;
* a host kernel oops the kernel survives: ``oops-line`` writes an Oops line through
  /dev/kmsg at KERN_EMERG (a stand-in: no kernel bug is at hand; the line reaches the
  console as an oops's first line does);
* a dead VMM: ``kill-vmm`` is a real SIGKILL;
* a vCPU that never leaves KVM_RUN: ``stuck-vcpu`` makes apflab-vmm keep the kick signal
  blocked in that vCPU's thread (a stand-in for a kernel whose KVM_RUN does not return).

Expected: a TargetError naming the failure, with the console's tail; the next reset
(what the plugin does before the next case) gives a fresh VM, or a fresh L1 after a
kernel failure; the fresh target answers SMCCC_VERSION 1.1 from KVM (DEN0028).
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from labgrid import Environment

from apflab.abi import smccc
from apflab.abi.sdei import Fn
from apflab.guest import Guest, TargetError, Unsupported
from apflab.images import cache_dir
from apflab.images.kvm import KVM_HOST
from apflab.model.platform import PLATFORMS
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-aarch64") is None, reason="needs qemu-system-aarch64 (make test installs it)"
)

SMCCC_1_1 = 0x10001


def kvm_env(tmp_path: Path, agent: dict | None = None, **l1: object) -> Environment:
    """lab.yaml's qemu-kvm with QEMUKvmDriver (and AgentDriver) fields changed."""
    if not KVM_HOST.fresh(cache_dir()):
        pytest.skip("the kvm image is not built: `apflab images kvm` (make test builds it)")
    target = copy.deepcopy(yaml.safe_load((ROOT / "lab.yaml").read_text())["targets"]["qemu-kvm"])
    target["drivers"]["QEMUKvmDriver"].update(l1)
    target["drivers"]["AgentDriver"].update(agent or {})
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump({"targets": {"qemu-kvm": target}, "imports": ["apflab.lab"]}, sort_keys=False))
    return Environment(str(path))


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator:
    made: list[Environment] = []

    def make(**kw: object) -> Environment:
        made.append(kvm_env(tmp_path, **kw))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for env in made:
        env.cleanup()


def drivers(env: Environment):
    target = env.get_target("qemu-kvm")
    return target.get_driver("AgentDriver"), target.get_driver("QEMUKvmDriver")


def calls_until_failure(guest: Guest, bound: float) -> TargetError:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            guest.call(smccc.SMCCC_VERSION)
        except TargetError as exc:
            return exc
        time.sleep(0.1)
    pytest.fail(f"the target answered for {bound:g} s: the provoked failure never showed")


def test_a_kernel_without_kvm_is_one_clear_line_within_the_bound(make_env) -> None:
    agent, _ = drivers(make_env(virtualization=False))
    t = time.monotonic()
    with pytest.raises(TargetError, match="apflab-vmm: error: no /dev/kvm") as err:
        agent.guest()
    assert time.monotonic() - t < agent.ready_timeout
    assert "virtualization=on" in str(err.value)  # the line says what to check


def test_a_host_kernel_panic_fails_the_case_and_a_fresh_l1_goes_on(make_env) -> None:
    agent, l1 = drivers(make_env(fault="panic:2"))
    guest = agent.guest()
    err = str(calls_until_failure(guest, 30))
    assert "host kernel failure: " in err and "Kernel panic - not syncing: sysrq triggered crash" in err, err
    assert "console: " in err
    guest.reset()  # what the plugin does before the next case
    assert l1.boots == 2
    assert guest.call(smccc.SMCCC_VERSION).x[0] == SMCCC_1_1


def test_an_oops_the_kernel_survives_still_fails_the_case(make_env) -> None:
    agent, l1 = drivers(make_env(fault="oops-line:2"))
    guest = agent.guest()
    err = str(calls_until_failure(guest, 30))  # the agent still answers: the watch ends it
    assert "Internal error: Oops: apflab.fault stand-in" in err, err
    guest.reset()
    assert l1.boots == 2  # a kernel that oopsed is not trusted with the next case
    assert guest.call(smccc.SMCCC_VERSION).x[0] == SMCCC_1_1


def test_a_killed_vmm_fails_the_case_and_a_fresh_vm_goes_on(make_env) -> None:
    agent, l1 = drivers(make_env(fault="kill-vmm:2"))
    guest = agent.guest()
    err = str(calls_until_failure(guest, 30))
    assert "the VMM exited (init saw status 137)" in err, err
    guest.reset()
    assert (l1.boots, l1.vm_starts) == (1, 2)  # the same L1, a fresh VM
    assert guest.call(smccc.SMCCC_VERSION).x[0] == SMCCC_1_1


def test_a_vcpu_that_never_leaves_kvm_run_is_bounded(make_env) -> None:
    agent, l1 = drivers(make_env(fault="stuck-vcpu:1"))
    guest = agent.guest()
    guest.select_pe(1)
    for fid, *args in ((Fn.EVENT_REGISTER, 0, guest.facts.entry_point, 1, 0, 0), (Fn.EVENT_ENABLE, 0), (Fn.PE_UNMASK,)):
        assert guest.call(fid, *args).x[0] == 0
    guest.select_pe(0)
    t = time.monotonic()
    with pytest.raises(TargetError) as err:
        guest.call(Fn.EVENT_SIGNAL, 0, guest.facts.mpidrs[1])  # the host kicks vCPU 1 to take it
    assert time.monotonic() - t < agent.reply_timeout + 1
    assert "vCPU 1 did not leave KVM_RUN within 5 s of a kick" in str(err.value), err.value
    guest.reset()
    assert (l1.boots, l1.vm_starts) == (1, 2)
    assert guest.call(smccc.SMCCC_VERSION).x[0] == SMCCC_1_1


def test_sdei_in_the_kernel_on_a_kernel_without_it_is_refused_with_the_reason(make_env) -> None:
    """lab.yaml's ``sdei: kernel`` (the series under test) on upstream 6.12: the VMM says what is missing."""
    agent, _ = drivers(make_env(sdei="kernel"))
    with pytest.raises(TargetError, match=r"--sdei kernel: kernel \S+ has no KVM_CAP_ARM_SDEI \(206\)"):
        agent.guest()


def test_the_strategy_and_what_skips_say_the_host_kernel_lacks(make_env) -> None:
    env = make_env()
    agent, l1 = drivers(env)
    strategy = env.get_target("qemu-kvm").get_driver("QEMUKvmStrategy", activate=False)
    strategy.transition("guest")
    guest = agent.guest()
    assert {"inject", "in-handler-inject", "multi-pe", "kvm-vendor-hyp", "sdei"} <= guest.info.capabilities
    assert not guest.info.has("apf-host") and not guest.info.has("migration")
    with pytest.raises(Unsupported, match=r"lacks capability 'apf-host'.*host kernel 6\.\S+ has no KVM_CAP_ARM_SDEI"):
        guest.require("apf-host")
    assert [ev.number for ev in guest.info.events] == [ev.number for ev in PLATFORMS["spec"].events]
    strategy.transition("off")
    assert not l1.alive() and l1.status() == "not started"
