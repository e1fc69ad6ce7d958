"""The host side of APF: faults, tokens, notifications, cancellation (abi.md 4.3-4.8, 4.10).

A fault is a stage-2 fault on a guest frame whose page needs I/O; the host's clock is
advanced with tick(). Outcomes: 0 the fault was handled synchronously, 1 an async page
fault started (x1 = token), 2 the frame is already in flight.
"""

from __future__ import annotations

from apflab.abi import apf, sdei
from apflab.abi.sdei import Fn
from apflab.testing import Call, Expect, Fault, Handler, Read32, Tick, Write32, spec
from testcases.apf.conftest import ARG, BLOCK, EVENT, SUCCESS, ApfGuest, block, enable_args, hvc

SYNC, ASYNC, IN_FLIGHT = 0, 1, 2
GFN = 0x50000
LATENCY = 1000  # the model's default I/O time for a fault, in microseconds


def fault(ag: ApfGuest, gfn: int = GFN, pe: int = 0, privileged: bool = False, latency: int | None = None):
    return ag.guest.fault(pe, gfn, privileged, latency)


@spec("abi.md 4.7", "a fault while APF is disabled is handled synchronously")
def test_fault_disabled(ag: ApfGuest, expect: Expect) -> None:
    expect(fault(ag).x[0], SYNC, "outcome")


@spec("abi.md 4.7", "a user-mode fault with APF enabled starts an async page fault")
def test_fault_async(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    expect(fault(ag).x[0], ASYNC, "outcome")


@spec("abi.md 4.6", "the token is (sequence << 12) | vCPU id: the first one on vCPU 1 is 0x001")
def test_first_token(ag: ApfGuest, expect: Expect) -> None:
    ag.guest.require("multi-pe", "needs vCPU 1")
    ag.bring_up(pe=1)
    expect(fault(ag, pe=1).x[1], 0x001, "token")


@spec("abi.md 4.6", "successive tokens on one vCPU step the sequence: +0x1000")
def test_token_sequence(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    first = fault(ag, GFN).x[1]
    tokens = [first]
    for i in range(1, 4):
        fault(ag, GFN + i)
        tokens.append(fault(ag, GFN + i).x[1])  # in flight: answers the same token
    expect([t - first for t in tokens], [0, 0x1000, 0x2000, 0x3000], "token steps")


@spec("abi.md 4.6", "the token's bits 11:0 are the vCPU id")
def test_token_vcpu_field(ag: ApfGuest, expect: Expect) -> None:
    ag.guest.require("multi-pe", "needs vCPU 2")
    ag.bring_up(pe=2)
    expect(fault(ag, pe=2).x[1] & 0xFFF, 2, "token bits 11:0")


@spec("abi.md 4.3, 4.7", "page-not-present writes reason 1 and the token into the shared block")
def test_not_present_block(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    ag.guest.set_handler(ARG, Handler())  # a handler that leaves the block as it found it
    token = fault(ag).x[1]
    expect(ag.shared(), (apf.REASON_PAGE_NOT_PRESENT, token), "(reason, token)")


@spec("abi.md 4.1, 4.7", "page-not-present arrives as the configured SDEI event, with the block filled in")
def test_not_present_sdei(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    r = fault(ag)
    entries = [(d.event, d.results[:2]) for d in r.deliveries]
    expect(entries, [(EVENT, (apf.REASON_PAGE_NOT_PRESENT, r.x[1]))], "handler entries: (event, (reason, token))")


@spec("abi.md 4.8", "the guest's not-present handler leaves the block empty (token, then reason cleared)")
def test_not_present_acknowledged(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    fault(ag)
    expect(ag.shared(), (0, 0), "(reason, token) after the handler")


@spec("abi.md 4.3", "the host writes only reason and token: the pad and the guest's 'enabled' word stay")
def test_block_bytes_untouched(ag: ApfGuest, expect: Expect) -> None:
    ag.guest.mem_write32(BLOCK + apf.DATA_ENABLED_OFFSET, 1)
    ag.guest.mem_write32(BLOCK + 8, 0xA5A5A5A5)
    ag.bring_up()
    fault(ag)
    ag.guest.tick(LATENCY)
    values = (ag.guest.mem_read32(BLOCK + 8), ag.guest.mem_read32(BLOCK + apf.DATA_ENABLED_OFFSET))
    expect(values, (0xA5A5A5A5, 1), "(pad word, enabled)")


@spec("abi.md 4.7", "when the I/O completes, page-ready writes reason 2 and the same token and asserts the PPI")
def test_page_ready(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    token = fault(ag).x[1]
    ag.guest.tick(LATENCY)
    expect((ag.shared(), ag.level()), ((apf.REASON_PAGE_READY, token), 1), "(block, PPI)")


@spec("abi.md 4.7", "nothing is ready before the I/O time has passed")
def test_page_not_ready_early(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    fault(ag)
    ag.guest.tick(LATENCY - 1)
    expect((ag.shared(), ag.level()), ((0, 0), 0), "(block, PPI)")


@spec("abi.md 4.8", "IRQ_ACK de-asserts the page-ready PPI")
def test_irq_ack_deasserts(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    fault(ag)
    ag.guest.tick(LATENCY)
    ag.page_ready()
    expect(ag.level(), 0, "PPI after IRQ_ACK")


@spec("abi.md 4.7", "a second page-ready waits while the block holds the first, and IRQ_ACK posts it at once")
def test_page_ready_held(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    t1, t2 = fault(ag, GFN).x[1], fault(ag, GFN + 1).x[1]
    ag.guest.tick(LATENCY)
    expect(ag.shared(), (apf.REASON_PAGE_READY, t1), "block: the first page-ready")
    expect(ag.page_ready(), (apf.REASON_PAGE_READY, t1), "acknowledged first")
    expect((ag.shared(), ag.level()), ((apf.REASON_PAGE_READY, t2), 1), "second posted on IRQ_ACK: (block, PPI)")


@spec("abi.md 4.7", "a fault on a frame already in flight starts nothing new")
def test_fault_in_flight(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    first = fault(ag)
    again = fault(ag)
    expect((again.x[0], again.x[1], len(again.deliveries)), (IN_FLIGHT, first.x[1], 0), "(outcome, token, entries)")


@spec("abi.md 4.7", "a kernel-mode fault without SEND_ALWAYS is handled synchronously")
def test_kernel_fault_user_only(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    expect(fault(ag, privileged=True).x[0], SYNC, "outcome")


@spec("abi.md 4.4, 4.7", "with SEND_ALWAYS a kernel-mode fault starts an async page fault")
def test_kernel_fault_send_always(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up(send_always=True)
    expect(fault(ag, privileged=True).x[0], ASYNC, "outcome")


@spec("abi.md 4.7", "no async page fault while an SDEI event runs on the vCPU")
def test_fault_in_handler(ag: ApfGuest, expect: Expect) -> None:
    guest = ag.guest
    ag.bring_up()
    other = next(e for e in guest.info.events if e.number != EVENT and not e.shared)
    guest.set_handler(0xB0B0, Handler([Fault(0, GFN, False)]))
    expect(guest.sdei.register(other.number, arg=0xB0B0).ret, sdei.SUCCESS, "EVENT_REGISTER")
    expect(guest.sdei.enable(other.number).ret, sdei.SUCCESS, "EVENT_ENABLE")
    entries = guest.trigger(other).deliveries
    expect(entries[0].results[0], SYNC, "fault outcome inside the handler")


@spec("abi.md 4.7", "no new async page fault until the guest consumed the previous notification")
def test_fault_block_busy(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    ag.guest.set_handler(ARG, Handler())  # does not clear the block
    fault(ag, GFN)
    expect(fault(ag, GFN + 1).x[0], SYNC, "outcome while the block holds a notification")


@spec("abi.md 4.10", "at most 64 async page faults are outstanding per vCPU: the 65th is synchronous")
def test_slot_limit(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    outcomes = [fault(ag, GFN + i).x[0] for i in range(apf.SLOTS_PER_VCPU + 1)]
    expect((outcomes[:64].count(ASYNC), outcomes[64]), (64, SYNC), "(async of the first 64, the 65th)")


@spec("abi.md 4.7", "a frame can fault asynchronously again once its page-ready was posted")
def test_slot_freed(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    fault(ag)
    ag.guest.tick(LATENCY)
    ag.page_ready()
    expect(fault(ag).x[0], ASYNC, "outcome of the second fault on the frame")


@spec("abi.md 4.7", "a page ready before its not-present was delivered cancels it: no PPI, the block emptied")
def test_cancellation(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    r = fault(ag, latency=0)  # the I/O is done before the vCPU runs again
    expect((len(r.deliveries), ag.shared(), ag.level()), (0, (0, 0), 0), "(entries, block, PPI)")


@spec("abi.md 4.7", "a page ready after its not-present was delivered is posted with the PPI")
def test_no_cancel_after_delivery(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    token = fault(ag).x[1]
    ag.guest.tick(LATENCY)
    expect((ag.shared(), ag.level()), ((apf.REASON_PAGE_READY, token), 1), "(block, PPI)")


@spec("abi.md 4.4", "disabling APF drops the queue: no page-ready for faults outstanding at the time")
def test_disable_clears_queue(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    fault(ag)
    expect(hvc(ag.guest, apf.Sub.ENABLE, 0, 0).ret, SUCCESS, "ENABLE(0)")
    ag.guest.tick(LATENCY)
    expect((ag.shared(), ag.level()), ((0, 0), 0), "(block, PPI)")


@spec("abi.md 4.4, 4.6", "re-enabling sends a new wake-all with token 0xFFFFFFFF")
def test_reenable_wake_all(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    hvc(ag.guest, apf.Sub.ENABLE, 0, 0)
    hvc(ag.guest, apf.Sub.ENABLE, *enable_args(0))
    expect(ag.shared(), (apf.REASON_PAGE_READY, apf.WAKE_ALL_TOKEN), "block")


@spec("abi.md 4.7, 3.5", "the not-present injection needs the SDEI event enabled; the block is filled all the same")
def test_not_present_event_disabled(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    expect(ag.guest.sdei.disable(EVENT).ret, sdei.SUCCESS, "EVENT_DISABLE")
    r = fault(ag)
    expect(
        (r.x[0], len(r.deliveries), ag.shared()[0]),
        (ASYNC, 0, apf.REASON_PAGE_NOT_PRESENT),
        "(outcome, entries, reason)",
    )


@spec("abi.md 4.7", "each vCPU has its own block, queue and PPI")
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


@spec("abi.md 4.8", "the not-present handler runs with the event's argument and can read the block itself")
def test_handler_reads_block(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    ag.guest.set_handler(
        ARG,
        Handler([Read32(block(0) + 4), Write32(block(0) + 4, 0), Write32(block(0), 0), Call(Fn.EVENT_STATUS, EVENT)]),
    )
    r = fault(ag)
    d = r.deliveries[0]
    expect((d.arg, d.results[0], d.results[3]), (ARG, r.x[1], 0b111), "(x1, token read, STATUS)")


@spec(
    "APF v4 07/15 (kvm_arch_can_dequeue_async_page_present); abi.md 4.7",
    "page-ready is asynchronous: it is posted while the not-present handler still runs, once the block is clear",
)
def test_page_ready_during_not_present_handler(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    consume = [Read32(BLOCK), Read32(BLOCK + 4), Write32(BLOCK + 4, 0), Write32(BLOCK, 0)]
    ag.guest.set_handler(ARG, Handler([*consume, Tick(500), Read32(BLOCK)]))
    r = fault(ag, latency=500)
    expect(r.x[0], ASYNC, "outcome")
    entries = [d for d in r.deliveries if d.event == EVENT]
    expect(len(entries), 1, "not-present handler entries")
    # The tick finishes the one fault's I/O; the block then holds KVM_PV_REASON_PAGE_READY (2).
    expect(entries[0].results[4:], (1, 2), "TICK inside the handler, then the block's reason")
