"""SDEI state across a PE's power cycle (PSCI CPU_OFF, CPU_ON) and a system reset.

DEN0054C 5.1.12: "The initial state for every PE is to have SDEI events masked ...
following powerup or resume from power down state" (Arm's ACS test_047 checks PE_MASK
after CPU_OFF/CPU_ON); a PE that comes back from power-down has no private event
registered (TF-A sdei_main.c sdei_cpu_on_init()), while shared events, which belong to
no PE, stay. After a system reset the whole SDEI state is the power-on one
(docs/reference/sdei-dispatch.md).
"""

from __future__ import annotations

from apflab.abi import sdei
from apflab.testing import EventInfo, Expect, Guest, Known, spec
from testcases.sdei.helpers import ARG, arm

NO_RESET = "no_reset_on_cpu_on_or_reboot"


def _cycle(guest: Guest, pe: int) -> None:
    guest.require("pe-power", "PSCI CPU_OFF and CPU_ON of another PE")
    guest.select_pe(0)
    guest.power_cycle_pe(pe)
    guest.select_pe(pe)


@spec("DEN0054C 5.1.12 (ACS test_047)", "a PE turned off and on again starts masked: PE_MASK answers 0")
def test_cpu_on_starts_masked(multi_pe: Guest, expect: Expect) -> None:
    guest = multi_pe
    guest.select_pe(1)
    expect(guest.sdei.pe_unmask().ret, sdei.SUCCESS, "PE_UNMASK on PE 1")
    _cycle(guest, 1)
    expect(guest.sdei.pe_mask().ret, 0, "PE_MASK on PE 1 after CPU_ON (already masked)")


@spec("DEN0054C 5.1.12; TF-A sdei_cpu_on_init()", "a PE turned off and on again has no private event registered")
def test_cpu_on_drops_private(multi_pe: Guest, expect: Expect, private_event: EventInfo) -> None:
    guest = multi_pe
    guest.select_pe(1)
    expect(guest.sdei.register(private_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER on PE 1")
    _cycle(guest, 1)
    r = guest.sdei.register(private_event.number, arg=ARG)
    expect(r.ret, sdei.SUCCESS, "EVENT_REGISTER on PE 1 after CPU_ON", Known(NO_RESET, sdei.DENIED))


@spec("DEN0054C 5.1.12, 5.1.19", "another PE's power cycle leaves a shared registration alone")
def test_cpu_on_keeps_shared(multi_pe: Guest, expect: Expect, shared_event: EventInfo) -> None:
    guest = multi_pe
    expect(guest.sdei.register(shared_event.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER")
    _cycle(guest, 1)
    guest.select_pe(0)
    expect(guest.sdei.register(shared_event.number, arg=ARG).ret, sdei.DENIED, "EVENT_REGISTER again: still there")


@spec("DEN0054C 5.1.12", "after a system reset the PE is masked and no event is registered")
def test_system_reset(guest: Guest, expect: Expect, private_event: EventInfo) -> None:
    guest.require("system-reset", "the guest resets the machine with PSCI SYSTEM_RESET")
    arm(guest, expect, private_event)
    guest.system_reset()
    guest.select_pe(0)
    r = guest.sdei.register(private_event.number, arg=ARG)
    expect(r.ret, sdei.SUCCESS, "EVENT_REGISTER after the reset", Known(NO_RESET, sdei.DENIED))
    expect(guest.sdei.pe_mask().ret, 0, "PE_MASK after the reset (already masked)")
