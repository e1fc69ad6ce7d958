#!/usr/bin/env python3
"""qemu-linux speed, measured (not asserted): boot through labgrid next to raw QEMU, SSH round trip.

* boot to the shell prompt through labgrid (QEMULinuxStrategy: QEMUDriver + ShellDriver)
  next to the same QEMU command line started by hand and read until the same prompt
  (goal: ratio under 1.3);
* an SSH command round trip through labgrid's SSHDriver (ControlMaster) to the guest's
  dropbear, and a paramiko exec round trip to the local throwaway sshd (the migration host).

Usage: python bench/linux_boot.py [--runs N]   (needs `apflab images linux`)
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from labgrid import Environment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import apflab.lab  # noqa: E402,F401  (registers the drivers)
from apflab.migrate.localsshd import LocalSSHServer  # noqa: E402
from apflab.migrate.remote import RemoteHost  # noqa: E402

PROMPT = b"apflab-guest# "


def raw_boot(argv: list[str], timeout: float = 120.0) -> float:
    """Seconds from spawning QEMU to the shell prompt on its stdio serial."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = b""
    try:
        while PROMPT not in seen:
            if time.perf_counter() - t0 > timeout:
                sys.exit(f"bench: raw QEMU showed no prompt within {timeout:.0f} s: {seen[-500:]!r}")
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    sys.exit(f"bench: raw QEMU exited: {seen[-500:]!r}")
                seen += chunk
        return time.perf_counter() - t0
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    env = Environment(str(ROOT / "lab.yaml"))
    target = env.get_target("qemu-linux")
    strategy = target.get_driver("QEMULinuxStrategy", activate=False)
    try:
        labgrid_s = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            strategy.boot()
            labgrid_s.append(time.perf_counter() - t0)
        base = strategy.qemu.get_qemu_base_args()
        base[0] = strategy.real_qemu
        # The same machine, console on stdio instead of labgrid's socket, no QMP, no SSH forward.
        argv = [a for a in base if a != "-nographic"]
        qmp = argv.index("-qmp")
        del argv[qmp : qmp + 2]
        argv += ["-display", "none", "-serial", "stdio", "-monitor", "none"]
        raw_s = [raw_boot(argv) for _ in range(args.runs)]
        strategy.boot()
        ssh = [_timed(lambda: strategy.ssh.run_check("true")) for _ in range(20)]
        shell = [_timed(lambda: strategy.shell.run_check("true")) for _ in range(20)]
    finally:
        strategy.transition("off")
        env.cleanup()
    with LocalSSHServer() as server:
        host = RemoteHost(server.address, server.port, server.username, server.keyfile, server.known_hosts)
        host.run("true")
        paramiko_s = [_timed(lambda: host.run("true", check=True)) for _ in range(20)]
        host.close()
    lg, raw = statistics.median(labgrid_s), statistics.median(raw_s)
    print(f"boot to shell, labgrid (QEMUDriver+ShellDriver+SSH up): median {lg:.2f} s  runs {_fmt(labgrid_s)}")
    print(f"boot to shell, raw QEMU (same command line, stdio):     median {raw:.2f} s  runs {_fmt(raw_s)}")
    print(f"ratio labgrid/raw: {lg / raw:.2f}  (goal < 1.3)")
    print(f"SSH round trip (SSHDriver -> guest dropbear, `true`): median {statistics.median(ssh) * 1e3:.1f} ms")
    print(f"shell round trip (ShellDriver on the console, `true`): median {statistics.median(shell) * 1e3:.1f} ms")
    print(f"SSH round trip (paramiko -> local sshd, `true`):      median {statistics.median(paramiko_s) * 1e3:.1f} ms")


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _fmt(xs: list[float]) -> str:
    return " ".join(f"{x:.2f}" for x in xs)


if __name__ == "__main__":
    main()
