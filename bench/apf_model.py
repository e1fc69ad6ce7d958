#!/usr/bin/env python3
"""The model's APF throughput and its migration cost, measured (not asserted).

* full not-present/page-ready cycles per second (goal: 55,000 cycles, the seed's count
  for scenario A, in under 1 s): a fault, the not-present SDEI event dispatched and
  acknowledged by a minimal guest (block read and cleared, EVENT_COMPLETE), the I/O
  completing, page-ready posted at the next entry, read, cleared and IRQ_ACKed. Measured
  twice: on the machine itself (the model), and through the Guest contract with the
  model's agent emulation on top (what a testcase pays)
* save and restore of a model with 4 PEs and 64 outstanding faults on each

Usage: python bench/apf_model.py [--cycles N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apflab.abi import apf, sdei
from apflab.guest import Handler, Read32, Write32
from apflab.model.guest import ModelGuest
from apflab.model.migration import restore, save
from apflab.profiles import KVM_V4

BLOCK = 0x4010_0000
PPI = 23


def bring_up(g: ModelGuest, pe: int) -> int:
    block = BLOCK + pe * 0x100
    g.apf_command(pe, apf.Command.SET_SDEI, apf.SDEI_EVENT)
    g.apf_command(pe, apf.Command.SET_IRQ, PPI)
    g.select_pe(pe)
    g.set_handler(pe, Handler([Read32(block), Read32(block + 4), Write32(block + 4, 0), Write32(block, 0)]))
    g.sdei.register(apf.SDEI_EVENT, arg=pe)
    g.sdei.enable(apf.SDEI_EVENT)
    g.sdei.pe_unmask()
    g.call(apf.FUNC_ID, apf.Sub.ENABLE, block | apf.CONTROL_ENABLED, 0)
    ack(g, pe, block)  # the wake-all
    return block


def ack(g: ModelGuest, pe: int, block: int) -> None:
    g.mem_write32(block + 4, 0)
    g.mem_write32(block, 0)
    g.call(apf.FUNC_ID, apf.Sub.IRQ_ACK)


def machine_cycles(n: int) -> float:
    """The model alone: Machine, its SMCCC front, dispatcher and AsyncPf, a minimal guest."""
    g = ModelGuest("bench", KVM_V4, pes=1)
    block = bring_up(g, 0)
    m = g.agent.machine
    cpu, mem, host = m.pes[0], m.memory, m.apf
    assert host is not None

    def smc(*regs: int) -> None:
        cpu.x[: len(regs)] = list(regs)
        m.smc(0)

    t = time.perf_counter()
    for i in range(n):
        outcome, token = host.fault(0, 0x100000 + i, False, 10)
        assert outcome == 1 and m.take_pending(0) and cpu.x[0] == apf.SDEI_EVENT
        assert mem.read32(block) == apf.REASON_PAGE_NOT_PRESENT and mem.read32(block + 4) == token
        mem.write32(block + 4, 0)
        mem.write32(block, 0)
        smc(sdei.Fn.EVENT_COMPLETE, sdei.EV_HANDLED)
        host.tick(10)
        m.take_pending(0)
        assert mem.read32(block) == apf.REASON_PAGE_READY and host.vcpus[0].irq_level
        mem.write32(block + 4, 0)
        mem.write32(block, 0)
        smc(apf.FUNC_ID, apf.Sub.IRQ_ACK)
    return time.perf_counter() - t


def cycles(n: int) -> float:
    """Through the Guest contract: what a testcase on the model target pays per cycle."""
    g = ModelGuest("bench", KVM_V4, pes=1)
    block = bring_up(g, 0)
    t = time.perf_counter()
    for i in range(n):
        r = g.fault(0, 0x100000 + i, False, 10)
        assert r.x[0] == 1 and len(r.deliveries) == 1, r
        g.tick(10)
        assert g.mem_read32(block) == apf.REASON_PAGE_READY
        ack(g, 0, block)
    return time.perf_counter() - t


def migration(pes: int = 4, faults: int = 64) -> tuple[float, float, int]:
    g = ModelGuest("bench", KVM_V4, pes=pes)
    for pe in range(pes):
        bring_up(g, pe)
        for i in range(faults):
            assert g.fault(pe, 0x200000 + pe * 1000 + i, False).x[0] == 1
    t = time.perf_counter()
    image = save(g.agent.machine)
    t_save = time.perf_counter() - t
    t = time.perf_counter()
    restored = restore(image, KVM_V4)
    t_restore = time.perf_counter() - t
    assert restored.sdei.masked == g.agent.machine.sdei.masked
    assert sdei.SUCCESS == 0
    return t_save, t_restore, len(image)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=55_000)
    args = ap.parse_args()
    print("apflab APF model benchmark")
    for label, fn in (("the model (machine level)", machine_cycles), ("through the Guest contract", cycles)):
        elapsed = fn(args.cycles)
        print(
            f"  {label:27} {args.cycles} full not-present/page-ready cycles: {elapsed:.2f} s  "
            f"({args.cycles / elapsed:,.0f} cycles/s)"
        )
    t_save, t_restore, size = migration()
    print(
        f"  save of 4 PEs x 64 outstanding faults: {t_save * 1e3:.1f} ms ({size} bytes); "
        f"restore: {t_restore * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
