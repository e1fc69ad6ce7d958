"""The host side of APF: faults, tokens, notifications, cancellation (KVM APF v4 07/15-14/15; docs/reference/apf.md).

A fault is a stage-2 fault on a guest frame whose page needs I/O; the host's clock is
advanced with tick(). Outcomes: 0 the fault was handled synchronously, 1 an async page
fault started (x1 = token), 2 the frame is already in flight.
"""

from __future__ import annotations

from apflab.abi import apf, sdei
from apflab.abi.sdei import Fn
from apflab.testing import Call, Expect, Fault, Handler, Known, Read32, Tick, Write32, spec
from testcases.apf.conftest import (
    ARG,
    BLOCK,
    EVENT,
    EVENT_INFO,
    SUCCESS,
    ApfGuest,
    block,
    consume_steps,
    enable_args,
    hvc,
)
from testcases.sdei.helpers import status_steps

SYNC, ASYNC, IN_FLIGHT = 0, 1, 2
GFN = 0x50000
LATENCY = 1000  # the I/O time each fault is given (the Guest contract's latency), in microseconds


def fault(ag: ApfGuest, gfn: int = GFN, pe: int = 0, privileged: bool = False, latency: int | None = LATENCY):
    return ag.guest.fault(pe, gfn, privileged, latency)


@spec("APF v4 07/15; docs/reference/apf.md", "a fault while APF is disabled is handled synchronously")
def test_fault_disabled(ag: ApfGuest, expect: Expect) -> None:
    expect(fault(ag).x[0], SYNC, "outcome")


@spec("APF v4 07/15; docs/reference/apf.md", "a user-mode fault with APF enabled starts an async page fault")
def test_fault_async(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    expect(fault(ag).x[0], ASYNC, "outcome")


@spec(
    "APF v4 07/15; docs/reference/apf.md", "the token is (sequence << 12) | vCPU id: the first one on vCPU 1 is 0x001"
)
def test_first_token(ag: ApfGuest, expect: Expect) -> None:
    ag.guest.require("multi-pe", "needs vCPU 1")
    ag.bring_up(pe=1)
    expect(fault(ag, pe=1).x[1], 0x001, "token")


@spec("APF v4 07/15; docs/reference/apf.md", "successive tokens on one vCPU step the sequence: +0x1000")
def test_token_sequence(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    first = fault(ag, GFN).x[1]
    tokens = [first]
    for i in range(1, 4):
        fault(ag, GFN + i)
        tokens.append(fault(ag, GFN + i).x[1])  # in flight: answers the same token
    expect([t - first for t in tokens], [0, 0x1000, 0x2000, 0x3000], "token steps")


@spec("APF v4 07/15; docs/reference/apf.md", "the token's bits 11:0 are the vCPU id")
def test_token_vcpu_field(ag: ApfGuest, expect: Expect) -> None:
    ag.guest.require("multi-pe", "needs vCPU 2")
    ag.bring_up(pe=2)
    expect(fault(ag, pe=2).x[1] & 0xFFF, 2, "token bits 11:0")


@spec("APF v4 07/15; docs/reference/apf.md", "page-not-present writes reason 1 and the token into the shared block")
def test_not_present_block(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    ag.guest.set_handler(ARG, Handler())  # a handler that leaves the block as it found it
    token = fault(ag).x[1]
    expect(ag.shared(), (apf.REASON_PAGE_NOT_PRESENT, token), "(reason, token)")


@spec(
    "APF v4 00/15, 07/15; docs/reference/apf.md",
    "page-not-present arrives as the configured SDEI event, with the block filled in",
)
def test_not_present_sdei(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    r = fault(ag)
    entries = [(d.event, d.results[:2]) for d in r.deliveries]
    expect(entries, [(EVENT, (apf.REASON_PAGE_NOT_PRESENT, r.x[1]))], "handler entries: (event, (reason, token))")


@spec(
    "APF v4 14/15; docs/reference/apf.md",
    "the guest's not-present handler leaves the block empty (token, then reason cleared)",
)
def test_not_present_acknowledged(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    fault(ag)
    expect(ag.shared(), (0, 0), "(reason, token) after the handler")


@spec(
    "APF v4 07/15; docs/reference/apf.md",
    "the host writes only reason and token: the pad and the guest's 'enabled' word stay",
)
def test_block_bytes_untouched(ag: ApfGuest, expect: Expect) -> None:
    ag.guest.mem_write32(BLOCK + apf.DATA_ENABLED_OFFSET, 1)
    ag.guest.mem_write32(BLOCK + 8, 0xA5A5A5A5)
    ag.bring_up()
    fault(ag)
    ag.guest.tick(LATENCY)
    values = (ag.guest.mem_read32(BLOCK + 8), ag.guest.mem_read32(BLOCK + apf.DATA_ENABLED_OFFSET))
    expect(values, (0xA5A5A5A5, 1), "(pad word, enabled)")


@spec(
    "APF v4 07/15; docs/reference/apf.md",
    "when the I/O completes, page-ready writes reason 2 and the same token and asserts the PPI",
)
def test_page_ready(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    token = fault(ag).x[1]
    ag.guest.tick(LATENCY)
    expect((ag.shared(), ag.level()), ((apf.REASON_PAGE_READY, token), 1), "(block, PPI)")


@spec("APF v4 07/15; docs/reference/apf.md", "nothing is ready before the I/O time has passed")
def test_page_not_ready_early(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    fault(ag)
    ag.guest.tick(LATENCY - 1)
    expect((ag.shared(), ag.level()), ((0, 0), 0), "(block, PPI)")


@spec("APF v4 14/15; docs/reference/apf.md", "IRQ_ACK de-asserts the page-ready PPI")
def test_irq_ack_deasserts(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    fault(ag)
    ag.guest.tick(LATENCY)
    ag.page_ready()
    expect(ag.level(), 0, "PPI after IRQ_ACK")


@spec(
    "APF v4 07/15; docs/reference/apf.md",
    "a second page-ready waits while the block holds the first, and IRQ_ACK posts it at once",
)
def test_page_ready_held(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    t1, t2 = fault(ag, GFN).x[1], fault(ag, GFN + 1).x[1]
    ag.guest.tick(LATENCY)
    expect(ag.shared(), (apf.REASON_PAGE_READY, t1), "block: the first page-ready")
    expect(ag.page_ready(), (apf.REASON_PAGE_READY, t1), "acknowledged first")
    expect((ag.shared(), ag.level()), ((apf.REASON_PAGE_READY, t2), 1), "second posted on IRQ_ACK: (block, PPI)")


@spec("APF v4 07/15; docs/reference/apf.md", "a fault on a frame already in flight starts nothing new")
def test_fault_in_flight(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    first = fault(ag)
    again = fault(ag)
    expect((again.x[0], again.x[1], len(again.deliveries)), (IN_FLIGHT, first.x[1], 0), "(outcome, token, entries)")


@spec("APF v4 07/15; docs/reference/apf.md", "a kernel-mode fault without SEND_ALWAYS is handled synchronously")
def test_kernel_fault_user_only(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    expect(fault(ag, privileged=True).x[0], SYNC, "outcome")


@spec("APF v4 07/15, 09/15; docs/reference/apf.md", "with SEND_ALWAYS a kernel-mode fault starts an async page fault")
def test_kernel_fault_send_always(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up(send_always=True)
    expect(fault(ag, privileged=True).x[0], ASYNC, "outcome")


@spec("APF v4 07/15; docs/reference/apf.md", "no async page fault while an SDEI event runs on the vCPU")
def test_fault_in_handler(ag: ApfGuest, expect: Expect) -> None:
    guest = ag.guest
    ag.bring_up()
    other = next(e for e in guest.info.events if e.number != EVENT and not e.shared)
    guest.set_handler(0xB0B0, Handler([Fault(0, GFN, False)]))
    expect(guest.sdei.register(other.number, arg=0xB0B0).ret, sdei.SUCCESS, "EVENT_REGISTER")
    expect(guest.sdei.enable(other.number).ret, sdei.SUCCESS, "EVENT_ENABLE")
    entries = guest.trigger(other).deliveries
    expect(entries[0].results[0], SYNC, "fault outcome inside the handler")


@spec(
    "APF v4 07/15; docs/reference/apf.md", "no new async page fault until the guest consumed the previous notification"
)
def test_fault_block_busy(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    ag.guest.set_handler(ARG, Handler())  # does not clear the block
    fault(ag, GFN)
    expect(fault(ag, GFN + 1).x[0], SYNC, "outcome while the block holds a notification")


@spec(
    "APF v4 07/15; docs/reference/apf.md",
    "at most 64 async page faults are outstanding per vCPU: the 65th is synchronous",
)
def test_slot_limit(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    outcomes = [fault(ag, GFN + i).x[0] for i in range(apf.SLOTS_PER_VCPU + 1)]
    expect((outcomes[:64].count(ASYNC), outcomes[64]), (64, SYNC), "(async of the first 64, the 65th)")


@spec("APF v4 07/15; docs/reference/apf.md", "a frame can fault asynchronously again once its page-ready was posted")
def test_slot_freed(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    fault(ag)
    ag.guest.tick(LATENCY)
    ag.page_ready()
    expect(fault(ag).x[0], ASYNC, "outcome of the second fault on the frame")


@spec(
    "APF v4 07/15; docs/reference/apf.md",
    "a page ready before its not-present was delivered cancels it: no PPI, the block emptied",
)
def test_cancellation(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    r = fault(ag, latency=0)  # the I/O is done before the vCPU runs again
    expect((len(r.deliveries), ag.shared(), ag.level()), (0, (0, 0), 0), "(entries, block, PPI)")


@spec("APF v4 07/15; docs/reference/apf.md", "a page ready after its not-present was delivered is posted with the PPI")
def test_no_cancel_after_delivery(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    token = fault(ag).x[1]
    ag.guest.tick(LATENCY)
    expect((ag.shared(), ag.level()), ((apf.REASON_PAGE_READY, token), 1), "(block, PPI)")


@spec(
    "APF v4 09/15 (disable path); docs/reference/apf.md",
    "disabling APF drops the queue: no page-ready for faults outstanding then",
)
def test_disable_clears_queue(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    token = fault(ag).x[1]
    expect(hvc(ag.guest, apf.Sub.ENABLE, 0, 0).ret, SUCCESS, "ENABLE(0)")
    ag.guest.tick(LATENCY)
    expect(
        (ag.shared(), ag.level()),
        ((0, 0), 0),
        "(block, PPI)",
        Known("apf_page_ready_after_disable", ((apf.REASON_PAGE_READY, token), 1), certain=True),
    )


@spec("APF v4 07/15, 09/15; docs/reference/apf.md", "re-enabling sends a new wake-all with token 0xFFFFFFFF")
def test_reenable_wake_all(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    hvc(ag.guest, apf.Sub.ENABLE, 0, 0)
    hvc(ag.guest, apf.Sub.ENABLE, *enable_args(0))
    expect(ag.shared(), (apf.REASON_PAGE_READY, apf.WAKE_ALL_TOKEN), "block")


@spec(
    "DEN0054C 5.1.4.1; APF v4 07/15",
    "a not-present raised while its SDEI event is disabled fills the block and is delivered at EVENT_ENABLE",
)
def test_not_present_event_disabled(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    expect(ag.guest.sdei.disable(EVENT).ret, sdei.SUCCESS, "EVENT_DISABLE")
    r = fault(ag)
    expect(
        (r.x[0], len(r.deliveries), ag.shared()[0]),
        (ASYNC, 0, apf.REASON_PAGE_NOT_PRESENT),
        "(outcome, entries, reason)",
    )
    entries = [d.event for d in ag.guest.sdei.enable(EVENT).deliveries]
    expect(entries, [EVENT], "entries at EVENT_ENABLE", Known("masked_injection_dropped", []))


@spec("APF v4 07/15; docs/reference/apf.md", "each vCPU has its own block, queue and PPI")
def test_per_vcpu(ag: ApfGuest, expect: Expect) -> None:
    ag.guest.require("multi-pe", "needs two vCPUs")
    ag.bring_up(pe=0)
    ag.bring_up(pe=1)
    token = fault(ag, pe=1).x[1]
    ag.guest.tick(LATENCY)
    expect(
        (ag.shared(0), ag.level(0), ag.shared(1), ag.level(1)),
        ((0, 0), 0, (apf.REASON_PAGE_READY, token), 1),
        "(block 0, PPI 0, block 1, PPI 1)",
    )


@spec(
    "APF v4 14/15 (guest handler); DEN0054C 5.1.9",
    "the not-present handler runs with the event's argument and can read the block itself",
)
def test_handler_reads_block(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    status = status_steps(expect, EVENT_INFO, "STATUS in the not-present handler")
    ag.guest.set_handler(ARG, Handler([Read32(block(0) + 4), Write32(block(0) + 4, 0), Write32(block(0), 0), *status]))
    r = fault(ag)
    if not expect(len(r.deliveries), 1, "not-present entries"):
        expect.stop("no handler ran")
    d = r.deliveries[0]
    expect((d.arg, d.results[0]), (ARG, r.x[1]), "(x1, token read)")
    if status:
        expect(d.results[3], 0b111, "STATUS: registered, enabled, running")


@spec(
    "APF v4 07/15 (kvm_arch_can_dequeue_async_page_present); docs/reference/apf.md",
    "page-ready is asynchronous: it is posted while the not-present handler still runs, once the block is clear",
)
def test_page_ready_during_not_present_handler(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    consume = consume_steps()
    ag.guest.set_handler(ARG, Handler([*consume, Tick(500), Read32(BLOCK)]))
    r = fault(ag, latency=500)
    expect(r.x[0], ASYNC, "outcome")
    entries = [d for d in r.deliveries if d.event == EVENT]
    expect(len(entries), 1, "not-present handler entries")
    # The tick finishes the one fault's I/O; the block then holds KVM_PV_REASON_PAGE_READY (2).
    expect(entries[0].results[4:], (1, 2), "TICK inside the handler, then the block's reason")


@spec(
    "APF v4 07/15 (kvm_arch_setup_async_pf); docs/reference/apf.md",
    "a fault on a frame already in flight returns without mapping it, even when no new not-present may be sent",
)
def test_in_flight_while_not_allowed(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    ag.guest.set_handler(ARG, Handler())  # leaves the not-present in the block: no new one is allowed
    first = fault(ag, GFN)
    expect(first.x[0], ASYNC, "first fault")
    again = fault(ag, GFN)
    expect(
        (again.x[0], again.x[1]),
        (IN_FLIGHT, first.x[1]),
        "(outcome, token) of a second fault on the frame",
        Known("apf_slots_checked_only_when_allowed", (SYNC, 0)),
    )


@spec(
    "APF v4 07/15 (kvm_arch_async_not_present_allowed); docs/reference/apf.md",
    "a not-present may be sent once the guest emptied the block, before it acknowledged the page-ready",
)
def test_not_present_after_block_emptied(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    fault(ag, GFN)
    ag.guest.tick(LATENCY)
    expect(ag.shared()[0], apf.REASON_PAGE_READY, "page-ready posted")
    ag.guest.mem_write32(BLOCK + 4, 0)  # the PPI handler clears token, then reason ...
    ag.guest.mem_write32(BLOCK, 0)  # ... and has not made IRQ_ACK yet
    expect(
        fault(ag, GFN + 1).x[0],
        ASYNC,
        "a fault with the block empty, IRQ_ACK not yet made",
        Known("apf_not_present_refused_while_page_ready_pending", SYNC),
    )


@spec(
    "DEN0054C 5.1.12, 5.1.13; APF v4 07/15 (kvm_sdei_inject)",
    "a not-present raised while the vCPU is masked is delivered at PE_UNMASK",
)
def test_not_present_while_masked(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    expect(ag.guest.sdei.pe_mask().ret, 1, "PE_MASK", Known("pe_mask_returns_zero", 0))
    r = fault(ag)
    expect((r.x[0], len(r.deliveries)), (ASYNC, 0), "(outcome, entries) while masked")
    entries = [d.event for d in ag.guest.sdei.pe_unmask().deliveries]
    expect(entries, [EVENT], "entries at PE_UNMASK", Known("masked_injection_dropped", []))


@spec(
    "DEN0054C 5.1.4.1; KVM SDEI v4 05/21",
    "DISABLE of the running not-present event succeeds (the handler goes on, the event is disabled)",
)
def test_not_present_handler_disables(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    consume = consume_steps()
    ag.guest.set_handler(ARG, Handler([*consume, Call(Fn.EVENT_DISABLE, EVENT)]))
    d = fault(ag).deliveries
    if not expect(len(d), 1, "not-present entries"):
        expect.stop("no handler ran")
    expect(
        d[0].results[4],
        sdei.SUCCESS,
        "EVENT_DISABLE in the handler",
        Known("enable_disable_pending_while_running", sdei.PENDING),
    )


@spec(
    "DEN0054C 5.1.8; KVM SDEI v4 07/21",
    "UNREGISTER of the running not-present event is PENDING, and done when the handler completes",
)
def test_not_present_handler_unregisters(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    ag.guest.set_handler(ARG, Handler([Call(Fn.EVENT_UNREGISTER, EVENT)]))
    d = fault(ag).deliveries
    if not expect(len(d), 1, "not-present entries"):
        expect.stop("no handler ran")
    expect(d[0].results[0], sdei.PENDING, "EVENT_UNREGISTER in the handler")
    r = ag.guest.sdei.register(EVENT, arg=ARG)
    expect(r.ret, sdei.SUCCESS, "EVENT_REGISTER after COMPLETE", Known("unregister_running_not_recorded", sdei.DENIED))


@spec(
    "DEN0054C 5.1.4, 5.1.8 (private events are per PE); KVM SDEI v4 05/21",
    "a PE that never registered the not-present event gets DENIED, while another PE runs its handler",
)
def test_unregistered_pe_while_not_present_runs(ag: ApfGuest, expect: Expect) -> None:
    guest = ag.guest
    guest.require("multi-pe", "PE 1 asks while PE 0 runs the handler")
    other = next(e for e in guest.info.events if not e.shared and e.number != EVENT and not e.critical)
    ag.bring_up(pe=0)
    guest.select_pe(1)
    guest.set_handler(0xB1B1, Handler([Call(Fn.EVENT_DISABLE, EVENT), Call(Fn.EVENT_UNREGISTER, EVENT)]))
    expect(guest.sdei.register(other.number, arg=0xB1B1).ret, sdei.SUCCESS, "EVENT_REGISTER on PE 1")
    expect(guest.sdei.enable(other.number).ret, sdei.SUCCESS, "EVENT_ENABLE on PE 1")
    expect(guest.sdei.pe_unmask().ret, sdei.SUCCESS, "PE_UNMASK on PE 1")
    guest.select_pe(0)
    consume = consume_steps()
    guest.set_handler(ARG, Handler([*consume, guest.trigger_steps(other, pe=1)]))
    entries = [d for d in fault(ag).deliveries if d.pe == 1]
    if not expect(len(entries), 1, "entries on PE 1"):
        expect.stop("PE 1's handler did not run")
    pending = Known("pending_before_registration_check", sdei.PENDING)
    expect(entries[0].results[0], sdei.DENIED, "EVENT_DISABLE on PE 1", pending)
    expect(entries[0].results[1], sdei.DENIED, "EVENT_UNREGISTER on PE 1", pending)
