#!/usr/bin/env python3
"""The agent under real KVM (nested L1 under QEMU TCG), measured (not asserted).

* L1 boot to the agent's ready line: QEMU start, Linux at EL2, init, apflab-vmm, the
  agent's PSCI CPU_ON of its other PEs                              (goal: <= 5 s)
* the agent round trip per CALL over L1's console:
  SMCCC_VERSION, answered by KVM in L1                              (goal: <= 1 ms)
  SDEI_VERSION, forwarded by the SMCCC filter to the host's model   (goal: <= 2 ms)
* one EVENT_SIGNAL dispatched into the real agent's handler by the model, then COMPLETE
  (register, enable, unmask once; then SIGNAL per sample)

The host's model serves the channel (apflab.kvm.bridge); ``--channel`` picks a
virtio-serial port (default) or TCP through QEMU's user network.
Needs `apflab images kvm`. Usage:
python bench/kvm_roundtrip.py [--boots N] [--calls N] [--channel virtio|tcp] [--console fast|pl011]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apflab.abi.sdei import Fn  # noqa: E402
from apflab.abi.smccc import SMCCC_VERSION  # noqa: E402
from apflab.agent.client import AgentGuest, ProcessStream  # noqa: E402
from apflab.guest import Handler  # noqa: E402
from apflab.images import cache_dir, ensure  # noqa: E402
from apflab.kvm.announce import find_announce  # noqa: E402
from apflab.kvm.bridge import ModelBridge, accept_vmm  # noqa: E402
from apflab.kvm.l1 import L1Config, qemu_command  # noqa: E402
from apflab.kvm.link import Listener  # noqa: E402
from apflab.kvm.peer import VmmPeer  # noqa: E402
from apflab.profiles import SPEC  # noqa: E402

READY = b"APFLAB-AGENT READY"


Booted = tuple[AgentGuest, ModelBridge, float, str]


def boot(image_dir: Path, channel: str, console: str, timeout: float = 60.0) -> Booted:
    listener = Listener()
    bridge = ModelBridge("spec")
    peers: list[VmmPeer] = []
    threading.Thread(target=lambda: peers.append(accept_vmm(listener, bridge, timeout)), daemon=True).start()
    cfg = L1Config(image_dir, channel=channel, channel_port=listener.port, sdei="forward", console=console)
    t = time.perf_counter()
    stream = ProcessStream(qemu_command(cfg))
    seen = b""
    while READY not in seen or not seen.rstrip(b"\r").endswith(b"\n"):
        if time.perf_counter() - t > timeout:
            raise SystemExit(f"no ready line within {timeout:g} s: {seen[-600:].decode(errors='replace')}")
        seen += stream.read(0.2)
    ready = time.perf_counter() - t
    announce = find_announce(seen.decode(errors="replace"))
    listener.close()
    return AgentGuest(stream, "qemu-kvm", timeout=10, profile=SPEC), bridge, ready, str(announce)


def sample(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return sorted(out)


def show(name: str, xs: list[float], goal_ms: float | None = None) -> None:
    med = statistics.median(xs) * 1e3
    p90 = xs[int(len(xs) * 0.9) - 1] * 1e3 if len(xs) >= 10 else max(xs) * 1e3
    goal = f"  (goal <= {goal_ms:g} ms: {'met' if med <= goal_ms else 'NOT met'})" if goal_ms else ""
    print(f"{name:44s} median {med:8.2f} ms  min {xs[0] * 1e3:8.2f}  p90 {p90:8.2f}  n={len(xs)}{goal}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boots", type=int, default=3)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--channel", choices=("virtio", "tcp"), default="virtio")
    ap.add_argument("--console", choices=("fast", "pl011"), default="fast")
    args = ap.parse_args()
    image_dir = ensure(["kvm"])["kvm"][0].parent
    print(f"image: {image_dir} (cache {cache_dir()})")
    boots: list[float] = []
    for i in range(args.boots):
        guest, bridge, ready, announce = boot(image_dir, args.channel, args.console)
        boots.append(ready)
        if i < args.boots - 1:
            guest.close()
    print(f"VMM: {announce}; agent console: {args.console}")
    show("L1 boot to agent ready", sorted(boots), 5000)
    try:
        show("CALL SMCCC_VERSION (KVM in L1)", sample(lambda: guest.call(SMCCC_VERSION), args.calls), 1)
        show(f"CALL SDEI_VERSION (forwarded, {args.channel})", sample(lambda: guest.call(Fn.VERSION), args.calls), 2)
        ep = guest.info.entry_point
        for fid, *a in ((Fn.EVENT_REGISTER, 0, ep, 7, 0, 0), (Fn.EVENT_ENABLE, 0), (Fn.PE_UNMASK,)):
            assert guest.call(fid, *a).x[0] == 0, fid
        guest.set_handler(7, Handler())

        def signal() -> None:
            result = guest.call(Fn.EVENT_SIGNAL, 0, guest.info.mpidrs[0])
            assert len(result.deliveries) == 1 and result.deliveries[0].x[1] == 7, result

        show("SIGNAL + dispatch + COMPLETE (model)", sample(signal, max(args.calls // 4, 10)))
        print(f"bridge: {bridge.calls} calls, {bridge.stops} stops, {bridge.dispatches} dispatches")
    finally:
        guest.close()


if __name__ == "__main__":
    main()
