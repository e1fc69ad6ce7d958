"""Round trips of the states a simple save/restore can get wrong, and QEMU's restore order.

gwshan/qemu target/arm/machine.c (vmstate cpu/sdei, cpu/async_pf) saves every registered
event, each vCPU's queued and running events and its vCPU state (KVM SDEI v4 16/21,
17/21), and APF's SDEI number, IRQ and control word (APF v4 10/15); docs/reference/kvm-v4.md
"Migration", docs/reference/apf.md "VMM interface". What a restored target must show is
what the original showed: each expectation here is read from the target before the save.
"""

from __future__ import annotations

import pytest

from apflab.abi import apf, sdei
from apflab.abi.sdei import Info, Routing
from apflab.testing import Expect, Guest, Handler, Snapshot, spec
from testcases.apf.conftest import ApfGuest
from testcases.sdei.helpers import check_status

ARG = 0x5EED_0001
EIO = -5


@pytest.fixture
def mig(guest: Guest) -> Guest:
    guest.require("migration", "the target's VMM state cannot be saved and restored from here")
    return guest


@spec(
    "KVM SDEI v4 16/21, 17/21 (kvm_sdei_vcpu_state: critical_num/regs, normal_num/regs); DEN0054C 5.1.18.1",
    "saved in a critical handler nested over a normal one, each COMPLETE on the restored target unwinds one level",
)
def test_round_trip_nested(mig: Guest, expect: Expect) -> None:
    mig.require("in-handler-inject", "the critical event is raised while the normal handler runs")
    normal = next(e for e in mig.info.events if not e.shared and not e.critical)
    critical = next(e for e in mig.info.events if not e.shared and e.critical and e.number != apf.SDEI_EVENT)
    mig.set_handler(ARG + 1, Handler([Snapshot()]))
    mig.set_handler(ARG, Handler([mig.trigger_steps(critical)]))
    for ev, arg in ((critical, ARG + 1), (normal, ARG)):
        expect(mig.sdei.register(ev.number, arg=arg).ret, sdei.SUCCESS, f"EVENT_REGISTER {ev.number:#x}")
        expect(mig.sdei.enable(ev.number).ret, sdei.SUCCESS, f"EVENT_ENABLE {ev.number:#x}")
    expect(mig.sdei.pe_unmask().ret, sdei.SUCCESS, "PE_UNMASK")
    mig.call(sdei.Fn.VERSION, 0x71, 0x72, 0x73, 0x74)  # the interrupted context's registers
    first = mig.trigger(normal)
    if not expect([d.depth for d in first.deliveries], [1, 2], "depths on the original: normal, then critical"):
        expect.stop("the critical handler did not nest")
    original_after = mig.regs()
    mig.restore_snapshot()  # a fresh target, in the critical handler at the snapshot
    check_status(mig, expect, normal, 0b111, "STATUS of the normal event in the restored critical handler")
    check_status(mig, expect, critical, 0b111, "STATUS of the critical event in the restored critical handler")
    mig.sdei.complete()  # the critical handler completes: back in the normal one
    expect(mig.regs().pstate, first.deliveries[0].pstate, "PSTATE back in the normal handler: as at its entry")
    check_status(mig, expect, critical, 0b011, "STATUS of the critical event after its COMPLETE")
    check_status(mig, expect, normal, 0b111, "STATUS of the normal event after the critical COMPLETE")
    mig.sdei.complete()  # the normal handler completes: back in the interrupted context
    expect(mig.regs().x[:18], original_after.x[:18], "x0-x17 after both COMPLETEs, as on the original")
    check_status(mig, expect, normal, 0b011, "STATUS of the normal event after its COMPLETE")


@spec(
    "KVM SDEI v4 16/21 (kvm_sdei_kvm_event_state: route_mode, route_affinity); DEN0054C 5.1.2, 5.1.10",
    "a shared event registered RM_PE keeps its routing: GET_INFO and the PE it is dispatched on",
)
def test_round_trip_rm_pe(mig: Guest, expect: Expect) -> None:
    mig.require("multi-pe", "RM_PE names another PE")
    ev = next(e for e in mig.info.events if e.shared and not e.critical)
    target = mig.info.pes - 1
    r = mig.sdei.register(ev.number, arg=ARG, flags=Routing.RM_PE, affinity=mig.info.mpidrs[target])
    expect(r.ret, sdei.SUCCESS, "EVENT_REGISTER(RM_PE)")
    expect(mig.sdei.enable(ev.number).ret, sdei.SUCCESS, "EVENT_ENABLE")
    for pe in range(mig.info.pes):
        mig.select_pe(pe)
        mig.sdei.pe_unmask()
    mig.select_pe(0)

    def observe() -> tuple:
        info = (
            mig.sdei.get_info(ev.number, Info.EV_ROUTING_MODE).ret,
            mig.sdei.get_info(ev.number, Info.EV_ROUTING_AFF).ret,
        )
        return info, [(d.event, d.pe) for d in mig.trigger(ev, pe=0).deliveries]

    image = mig.save_state()
    before = observe()
    mig.restore_state(image)
    expect(observe(), before, "(ROUTING_MODE, ROUTING_AFF) and the dispatch's PE, as on the original")


@spec(
    "gwshan/qemu target/arm/machine.c cpu/async_pf (post_load: SDEI, IRQ, then CONTROL); APF v4 10/15",
    "on a fresh target the saved control word enables APF only once SDEI and IRQ are restored",
)
def test_restore_order_on_target(mig: Guest, expect: Expect) -> None:
    mig.require("apf-host", "APF state needs the host side")
    ag = ApfGuest(mig, expect)
    ag.bring_up()
    saved = [mig.apf_command(0, c)[1] for c in (apf.Command.GET_SDEI, apf.Command.GET_IRQ, apf.Command.GET_CONTROL)]
    sdei_num, irq, control = saved
    expect(control & apf.CONTROL_ENABLED, apf.CONTROL_ENABLED, "the saved control word has ENABLED")
    mig.reset()  # the destination's fresh vCPU
    expect(mig.apf_command(0, apf.Command.SET_CONTROL, control)[0], EIO, "SET_CONTROL first (no SDEI, no IRQ)")
    expect(mig.apf_command(0, apf.Command.SET_SDEI, sdei_num)[0], 0, "SET_SDEI")
    expect(mig.apf_command(0, apf.Command.SET_IRQ, irq)[0], 0, "SET_IRQ")
    expect(mig.apf_command(0, apf.Command.SET_CONTROL, control)[0], 0, "SET_CONTROL last")
    expect(mig.apf_command(0, apf.Command.GET_CONTROL)[1], control, "GET_CONTROL")
    mig.tick(1)  # the restored vCPU runs
    expect(ag.shared(), (apf.REASON_PAGE_READY, apf.WAKE_ALL_TOKEN), "block: the enable's wake-all")


@spec(
    "KVM SDEI v4 16/21, 17/21 (a shared event running on one vCPU); DEN0054C 5.1.6",
    "a shared event saved while its handler runs completes on the restored target and can run again",
)
def test_round_trip_shared_running(mig: Guest, expect: Expect) -> None:
    ev = next(e for e in mig.info.events if e.shared and not e.critical)
    mig.set_handler(ARG, Handler([Snapshot()], once=True))
    expect(mig.sdei.register(ev.number, arg=ARG).ret, sdei.SUCCESS, "EVENT_REGISTER")
    expect(mig.sdei.enable(ev.number).ret, sdei.SUCCESS, "EVENT_ENABLE")
    expect(mig.sdei.pe_unmask().ret, sdei.SUCCESS, "PE_UNMASK")
    expect(len(mig.trigger(ev).deliveries), 1, "entries on the original")
    mig.restore_snapshot()  # in the shared handler
    mig.sdei.complete()
    again = [(d.event, d.pe) for d in mig.trigger(ev).deliveries]
    expect(again, [(ev.number, 0)], "entries when it is raised again after COMPLETE")
