"""The VMM's announce line (docs/vmm-channel.md), as apflab-vmm printed it in a nested L1."""

from __future__ import annotations

import pytest

from apflab.kvm.announce import AnnounceError, find_announce, find_exit, parse_announce

# Verbatim from a run of apflab-vmm on Debian trixie's 6.12 kernel nested under QEMU TCG.
SEEN = (
    "APFLAB-VMM 1 sdei=forward vcpus=2 kernel=6.12.117+deb13-arm64 ipa=52 "
    "caps=vgic-v3,psci-0.2,smccc-filter channel=tcp:10.0.2.2:40123 setup_ms=27.3"
)


def test_forward_mode_line() -> None:
    a = parse_announce(SEEN)
    assert (a.sdei, a.vcpus, a.kernel, a.ipa_bits) == ("forward", 2, "6.12.117+deb13-arm64", 52)
    assert a.caps == {"vgic-v3", "psci-0.2", "smccc-filter"}
    assert a.channel == "tcp:10.0.2.2:40123" and a.sdei_version is None


def test_kernel_mode_versions_are_hex() -> None:
    line = (
        "APFLAB-VMM 1 sdei=kernel vcpus=1 kernel=5.14.2-sdei ipa=40 caps=vgic-v3,psci-0.2,sdei-kernel,async-pf "
        "channel=- setup_ms=9.0 sdei_version=10000 apf_version=10000"
    )
    a = parse_announce(line)
    assert a.channel is None and a.sdei_version == 0x10000 and a.apf_version == 0x10000


def test_found_in_console_text_before_the_agent() -> None:
    text = f"APFLAB-INIT uptime=2.11 kernel=x kvm=yes\r\n{SEEN}\r\n\r\nAPFLAB-AGENT READY protocol=1\r\n"
    a = find_announce(text)
    assert a is not None and a.sdei == "forward"
    assert find_announce("APFLAB-AGENT READY protocol=1\n") is None


@pytest.mark.parametrize(
    "line, why",
    [
        ("APFLAB-VMM 2 sdei=none", "version 2"),
        ("APFLAB-VMM 1 sdei=none vcpus=1", "lacks or garbles"),
        (SEEN.replace("sdei=forward", "sdei=maybe"), "unknown sdei mode"),
        (SEEN.replace("vcpus=2", "vcpus=two"), "lacks or garbles"),
    ],
)
def test_bad_lines_are_named(line: str, why: str) -> None:
    with pytest.raises(AnnounceError, match=why):
        parse_announce(line)


def test_exit_line() -> None:
    assert find_exit("OK 0 0 0 0\r\nAPFLAB-VMM-EXIT status=0 reason=system-off\r\nAPFLAB-INIT vmm exited") == (
        0,
        "system-off",
    )
    assert find_exit("APFLAB-VMM-EXIT status=3 reason=system-reset") == (3, "system-reset")
    assert find_exit("APFLAB-AGENT READY protocol=1") is None
