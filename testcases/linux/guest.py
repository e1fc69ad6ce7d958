"""Steps the Linux-guest suites repeat: run the workload, start it on the console, read figures.

Helpers drive the guest through labgrid's command drivers and the MigrationDriver; they
hold no expectations of their own.
"""

from __future__ import annotations

import re

from labgrid.driver import QEMUDriver

from apflab.lab.linux import QEMULinuxStrategy
from apflab.linux import workload
from apflab.linux.workload import WorkloadResult

#: The kvm-unit-tests handshake line (lib/migrate.c), printed by the guest before it waits for a key.
HANDSHAKE = "Now migrate the VM, then press a key to continue..."
RESUMED = re.compile(r"APFLAB-RESUMED ([0-9.]+)")
FIRST_PASS = r"async_pf: pass 1/\d+ done"


def run_workload(
    strategy: QEMULinuxStrategy, passes: int = 1, mem_mb: int | None = None, calc: bool = False, timeout: float = 900.0
) -> WorkloadResult:
    """Run async_pf in the guest (over SSH when the target has it) and parse its result line."""
    cmd = workload.command(passes, mem_mb, calc, quiet=True)
    out, err, code = strategy.command.run(cmd, timeout=timeout)
    text = "\n".join(out + (err or []))
    if code != 0:
        raise workload.WorkloadError(f"{cmd} exited {code}: {text[-400:]}")
    return workload.parse(text)


def uptime(strategy: QEMULinuxStrategy) -> float:
    return float(strategy.command.run_check("cut -d' ' -f1 /proc/uptime")[0])


def start_handshake(qemu: QEMUDriver) -> None:
    """On the source console: print the handshake, wait for a key, then print the uptime.

    The line is assembled by printf, so the echoed command does not match the handshake.
    """
    qemu.sendline(
        "printf 'Now %s the VM, then press a key to continue...\\n' migrate; read key; "
        "echo APFLAB-RESUMED $(cut -d' ' -f1 /proc/uptime)"
    )


def start_workload(qemu: QEMUDriver, passes: int, mem_mb: int | None, calc: bool) -> str:
    """Start async_pf in the foreground of the source console (progress lines on); returns the command."""
    cmd = workload.command(passes, mem_mb, calc, quiet=False)
    qemu.sendline(cmd)
    return cmd
