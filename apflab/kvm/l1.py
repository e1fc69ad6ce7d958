"""The nested KVM host (L1): the QEMU command line that boots the ``kvm`` image at EL2.

QEMU TCG with ``-M virt,virtualization=on,gic-version=3`` enters the arm64 kernel at EL2,
so it brings KVM up (VHE) and /dev/kvm appears; without ``virtualization=on`` the kernel
says "HYP mode not available" (measured: docs/reference/lab.md, "Nested KVM under QEMU TCG"). The kernel
command line carries targets/qemu-kvm/init's switches (``apflab.*``). The VMM channel
to the host is either a virtio-serial port whose QEMU chardev connects to a TCP port on
the host's loopback (``virtio``: measured about half the round trip of the other), or
TCP from L1 to 10.0.2.2 through QEMU's user network (``tcp``). User networking also
forwards a host port to L1's dropbear for the board path.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from apflab.images import ImageError

CHANNEL_PORT_NAME = "apflab.channel"
CHANNELS = ("virtio", "tcp", "none")
#: The agent's console: ``fast`` (apflab-vmm's fast console: a line per MMIO exit) or ``pl011``
#: (the agent exactly as the agent recipe builds it: two MMIO exits per character).
CONSOLES = ("fast", "pl011")
SDEI_MODES = ("auto", "kernel", "forward", "none")


@dataclass(frozen=True)
class L1Config:
    image_dir: Path  # a ``kvm`` recipe output folder: Image, initramfs.cpio.gz
    smp: int = 2
    memory_mb: int = 2048
    vcpus: int = 2
    sdei: str = "auto"
    channel: str = "virtio"
    channel_port: int | None = None  # the host's listening port for the VMM channel
    ssh_port: int | None = None  # host port forwarded to L1's dropbear
    console: str = "fast"
    start_vmm: bool = True
    qemu_bin: str = "qemu-system-aarch64"
    cpu: str = "max,pauth-impdef=on"  # pointer auth by QEMU's cheap algorithm: ~3x faster boot under TCG
    extra_append: str = ""
    virtualization: bool = True  # EL2 for the L1 kernel; False: a host kernel without KVM (tests)
    after: str = "shell"  # init's action when the VMM exits: shell, poweroff, wait (for a line "go")

    def check(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"channel {self.channel!r}: expected one of {', '.join(CHANNELS)}")
        if self.console not in CONSOLES:
            raise ValueError(f"console {self.console!r}: expected one of {', '.join(CONSOLES)}")
        if self.sdei not in SDEI_MODES:
            raise ValueError(f"sdei {self.sdei!r}: expected one of {', '.join(SDEI_MODES)}")
        if self.channel != "none" and self.channel_port is None:
            raise ValueError(f"channel {self.channel} needs channel_port (the host's listening port)")
        if not 1 <= self.vcpus <= 8:
            raise ValueError(f"vcpus {self.vcpus}: the agent knows 1 to 8 PEs")
        for name in ("Image", "initramfs.cpio.gz"):
            if not (self.image_dir / name).exists():
                raise ImageError(f"{self.image_dir / name} is missing: build it with `apflab images kvm`")


def kernel_append(cfg: L1Config) -> str:
    words = [
        "console=ttyAMA0",
        "quiet",
        "rdinit=/init",
        f"apflab.vcpus={cfg.vcpus}",
        f"apflab.sdei={cfg.sdei}",
        f"apflab.console={cfg.console}",
    ]
    if cfg.channel == "virtio":
        words.append(f"apflab.channel=virtio:{CHANNEL_PORT_NAME}")
    elif cfg.channel == "tcp":
        words.append(f"apflab.channel=tcp:10.0.2.2:{cfg.channel_port}")
    if not cfg.start_vmm:
        words.append("apflab.vmm=0")
    if cfg.ssh_port is None:
        words.append("apflab.sshd=0")
    if cfg.after != "shell":
        words.append(f"apflab.after={cfg.after}")
    return " ".join([*words, cfg.extra_append]).strip()


def qemu_command(cfg: L1Config) -> list[str]:
    """The L1 command line; its console (the agent protocol) is QEMU's stdio."""
    cfg.check()
    qemu = shutil.which(cfg.qemu_bin)
    if qemu is None:
        raise ImageError(f"{cfg.qemu_bin} not found: install qemu-system-arm (apt-get install qemu-system-arm)")
    net = "user,id=apflab-net" + (f",hostfwd=tcp:127.0.0.1:{cfg.ssh_port}-:22" if cfg.ssh_port else "")
    cmd = [
        qemu,
        "-M",
        "virt,virtualization=on,gic-version=3" if cfg.virtualization else "virt,gic-version=3",
        "-cpu",
        cfg.cpu,
        "-m",
        str(cfg.memory_mb),
        "-smp",
        str(cfg.smp),
        "-accel",
        "tcg",
        "-nographic",
        "-monitor",
        "none",
        "-no-reboot",
        "-kernel",
        str(cfg.image_dir / "Image"),
        "-initrd",
        str(cfg.image_dir / "initramfs.cpio.gz"),
        "-netdev",
        net,
        "-device",
        "virtio-net-pci,netdev=apflab-net,romfile=",
    ]
    if cfg.channel == "virtio":
        cmd += [
            "-device",
            "virtio-serial-pci,romfile=",
            "-chardev",
            f"socket,id=apflab-channel,host=127.0.0.1,port={cfg.channel_port}",
            "-device",
            f"virtserialport,chardev=apflab-channel,name={CHANNEL_PORT_NAME}",
        ]
    return [*cmd, "-append", kernel_append(cfg)]
