"""The kvm image's kernel setting and the nested L1's command line (apflab/images/kvm.py, apflab/kvm/l1.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from apflab.images import ImageError
from apflab.images.kvm import INIT, parse_kernel
from apflab.kvm.l1 import L1Config, kernel_append, qemu_command


def test_debian_suite_and_package() -> None:
    k = parse_kernel("debian:trixie")
    assert (k.suite, k.package, k.path, k.slug) == ("trixie", None, None, "debian-trixie")
    k = parse_kernel("debian:bookworm:linux-image-6.1.0-50-arm64")
    assert k.package == "linux-image-6.1.0-50-arm64" and k.slug == "debian-bookworm-linux-image-6.1.0-50-arm64"


def test_a_kernel_file(tmp_path: Path) -> None:
    image = tmp_path / "Image-sdei-v4"
    image.write_bytes(b"\0" * 64)
    k = parse_kernel(str(image))
    assert k.path == image and k.slug.startswith("file-Image-sdei-v4-")


@pytest.mark.parametrize(
    "spec, why",
    [
        ("debian:", "expected debian:SUITE"),
        ("debian:Trixie!", "expected debian:SUITE"),
        ("debian:trixie:busybox", "not a linux-image-"),
        ("/no/such/Image", "no such file"),
    ],
)
def test_bad_kernel_settings_are_named(spec: str, why: str) -> None:
    with pytest.raises(ImageError, match=why):
        parse_kernel(spec)


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    (tmp_path / "Image").write_bytes(b"")
    (tmp_path / "initramfs.cpio.gz").write_bytes(b"")
    return tmp_path


def test_l1_runs_at_el2_with_a_gicv3(image_dir: Path) -> None:
    cmd = qemu_command(L1Config(image_dir, channel="virtio", channel_port=4444, ssh_port=2222))
    machine = cmd[cmd.index("-M") + 1]
    assert "virtualization=on" in machine and "gic-version=3" in machine  # docs/reference/lab.md, nested KVM
    assert "socket,id=apflab-channel,host=127.0.0.1,port=4444" in cmd
    assert any("hostfwd=tcp:127.0.0.1:2222-:22" in a for a in cmd)
    assert "apflab.channel=virtio:apflab.channel" in cmd[-1]


def test_tcp_channel_and_no_sshd(image_dir: Path) -> None:
    words = kernel_append(L1Config(image_dir, channel="tcp", channel_port=5555, console="pl011")).split()
    assert "apflab.channel=tcp:10.0.2.2:5555" in words and "apflab.sshd=0" in words
    assert "apflab.console=pl011" in words


def test_every_switch_the_host_sets_is_read_by_init(image_dir: Path) -> None:
    cfg = L1Config(image_dir, channel="tcp", channel_port=1, start_vmm=False)
    keys = {w.split("=")[0] for w in kernel_append(cfg).split() if w.startswith("apflab.")}
    read = set(re.findall(r"arg (apflab\.\w+)", INIT.read_text()))
    assert keys and keys <= read, keys - read


@pytest.mark.parametrize(
    "kw, why",
    [
        ({"channel": "serial"}, "channel 'serial'"),
        ({"channel": "tcp"}, "needs channel_port"),
        ({"console": "vga", "channel": "none"}, "console 'vga'"),
        ({"vcpus": 9, "channel": "none"}, "1 to 8 PEs"),
    ],
)
def test_bad_l1_settings_are_named(image_dir: Path, kw: dict, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        qemu_command(L1Config(image_dir, **kw))


def test_missing_image_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="apflab images kvm"):
        qemu_command(L1Config(tmp_path, channel="none"))
