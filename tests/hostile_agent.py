#!/usr/bin/env python3
"""A FAKE: a hostile guest agent, started in QEMU's place by QEMUProcessDriver.

No real agent misbehaves on demand, so this stands in for one; everything around it
(labgrid, AgentDriver, the client, the pytest plugin, the result files, ``apflab run``)
is the real thing. It takes QEMU's command line (and ignores it, but for the crash
UART's ``-serial file:PATH``) plus, from the target's ``extra_args``:

    --hostile CHANNEL    where the fault is said (tests/hostile.py CHANNELS)
    --state DIR          boot counter and the log of faults served

Boot 0 (the session's probe) is a well-behaved agent. Boot N >= 1 (a test's fresh
target) serves payload N-1 of tests/hostile.py on its channel at its first CALL (or,
for ``ready`` and ``hello``, while it boots), logs it to DIR/served, and then falls
silent or dies, as broken targets do.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile import faults, payload

HELLO = (
    b"HELLO 1 agent=hostile conduit=smc el=1 pes=1 mpidr=0 profile=- ep=40081000 resume=40081800 "
    b"vbar=40082000 caps=reset"
)
#: Answers of the well-behaved boot: SDEI 1.0, SMCCC 1.1, no bind slots, 0 otherwise.
ANSWERS = {0xC4000020: 0x1000000000000, 0x80000000: 0x10001}


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def crash_file(argv: list[str]) -> Path | None:
    for arg in argv:
        if arg.startswith("file:"):
            return Path(arg.removeprefix("file:"))
    return None


def out(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def silent() -> None:
    while True:  # a hung target: killed by the driver's power off
        time.sleep(60)


def serve(channel: str, fault: str | None, crash: Path | None, log: Path) -> None:
    data = payload(fault) if fault else b""
    if fault:
        with log.open("a") as f:
            f.write(f"{channel} {fault}\n")
    if fault and channel == "ready":
        out(data + b"\n")
        os._exit(4)  # dies before its ready line
    out(b"\nAPFLAB-AGENT READY protocol=1\n")
    for line in sys.stdin.buffer:
        words = line.split()
        head = words[0].upper() if words else b""
        if head == b"HELLO":
            out((HELLO + (b" banner=" + data if fault and channel == "hello" else b"")) + b"\n")
        elif head == b"CALL" and fault:
            fault_at_call(channel, data, crash)
        elif head == b"CALL":
            fid = int(words[1], 16) if len(words) > 1 else 0
            out(f"OK {ANSWERS.get(fid, 0):x} 0 0 0\n".encode())
        else:
            out(b"OK\n")


def fault_at_call(channel: str, data: bytes, crash: Path | None) -> None:
    if channel == "err":
        out(b"ERR " + data + b"\n")
        return
    if channel == "noise":
        out(data + b"\n")
        silent()
    if channel == "stderr":
        sys.stderr.buffer.write(data + b"\n")
        sys.stderr.buffer.flush()
        os._exit(3)
    if channel == "crash" and crash is not None:
        crash.write_bytes(data + b"\n")
        os._exit(3)
    if channel == "flood":
        out(data)
        while True:
            out(b"F" * 65536)
    silent()


def main(argv: list[str]) -> None:
    channel = option(argv, "--hostile") or "err"
    state = Path(option(argv, "--state") or ".")
    counter = state / f"boots-{channel}"
    boot = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(boot + 1))
    names = faults(channel)
    fault = names[boot - 1] if 1 <= boot <= len(names) else None
    serve(channel, fault, crash_file(argv), state / "served")


if __name__ == "__main__":
    main(sys.argv[1:])
