"""What the qemu-kvm driver reads off the L1 console besides the agent (apflab.kvm.console).

The kernel lines here are written in the formats of Linux's arm64 fault and die paths
(arch/arm64/mm/fault.c "Unable to handle kernel %s at virtual address %016lx",
arch/arm64/kernel/traps.c "Internal error: %s: %016lx [#%d] ...", kernel/panic.c
"Kernel panic - not syncing: %s") with printk's time prefix; no kernel produced them.
A real host kernel failure goes through the same code in tests/test_kvm_target.py.
"""

from __future__ import annotations

from apflab.kvm.console import FAILURE_LINES, ConsoleWatch

ANNOUNCE = (
    "APFLAB-VMM 1 sdei=forward vcpus=2 kernel=6.12.117+deb13-arm64 ipa=40 "
    "caps=vgic-v3,psci-0.2,smccc-filter channel=fd:3 setup_ms=9.5"
)
OOPS = [
    "[   41.102030] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008",
    "[   41.102090] Mem abort info:",
    "[   41.102111]   ESR = 0x0000000096000004",
    "[   41.102300] Internal error: Oops: 0000000096000004 [#1] SMP",
]


def watch_of(*lines: str) -> ConsoleWatch:
    w = ConsoleWatch()
    w.feed(("\r\n".join(lines) + "\r\n").encode())
    return w


def test_the_agent_and_the_announce_are_no_failure() -> None:
    w = watch_of("APFLAB-INIT uptime=1.20 kernel=6.12 kvm=yes", ANNOUNCE, "APFLAB-AGENT READY protocol=1", "OK 0 0 0 0")
    assert w.failure is None
    assert w.announce is not None and w.announce.sdei == "forward" and w.announce.vcpus == 2


def test_an_oops_is_a_kernel_failure_with_its_lines() -> None:
    w = watch_of(ANNOUNCE, "OK 10001 0 0 0", *OOPS, "OK 0 0 0 0")
    assert w.kind == "kernel"
    assert w.failure is not None and "Unable to handle kernel NULL pointer dereference" in w.failure
    report = w.failure_report()
    assert "Internal error: Oops: 0000000096000004 [#1] SMP" in report and "Mem abort info" in report


def test_an_oops_in_the_middle_of_an_agent_line_is_seen() -> None:
    w = ConsoleWatch()
    w.feed(b"OK 100")  # the agent's line, interrupted by the kernel's
    w.feed(b"01 0 0 0[   41.1] Internal error: Oops: 0000000096000004 [#1] SMP\r\n")
    assert w.kind == "kernel" and "Internal error: Oops" in (w.failure or "")


def test_a_panic_is_a_kernel_failure() -> None:
    w = watch_of(ANNOUNCE, "[   12.5] Kernel panic - not syncing: sysrq triggered crash")
    assert w.kind == "kernel" and "sysrq triggered crash" in (w.failure or "")


def test_the_failure_text_is_bounded() -> None:
    w = watch_of(OOPS[0], *[f"line {i}" for i in range(3 * FAILURE_LINES)])
    assert len(w.failure_text) == FAILURE_LINES + 1


def test_the_vmm_error_and_exit_lines_end_the_run() -> None:
    w = watch_of(
        ANNOUNCE,
        "apflab-vmm: error: vCPU 1 did not leave KVM_RUN within 5 s of a kick; the host kernel may be stuck",
        "APFLAB-INIT vmm exited status=1",
    )
    assert w.kind == "vmm" and (w.failure or "").startswith("apflab-vmm: error: vCPU 1 did not leave KVM_RUN")
    assert w.vmm_exit == (1, "no exit line (killed?)")


def test_a_killed_vmm_is_seen_by_inits_line() -> None:
    w = watch_of(ANNOUNCE, "APFLAB-INIT vmm exited status=137", "APFLAB-INIT waiting: a line starts a fresh VMM")
    assert w.kind == "vmm" and "status 137" in (w.failure or "") and w.init_waiting


def test_the_first_failure_is_kept() -> None:
    w = watch_of("APFLAB-VMM-EXIT status=0 reason=the host said BYE", *OOPS)
    assert w.kind == "vmm" and w.vmm_exit == (0, "the host said BYE")
