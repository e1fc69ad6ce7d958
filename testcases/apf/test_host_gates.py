"""What holds a notification back: the shared block, a pending page-ready, re-enabling.

APF v4 07/15 (docs/reference/apf.md "Host rules"): a not-present is sent only while the
block's reason *and* token are both 0; a page-ready is posted only while no page-ready is
pending (asserted, not yet acknowledged by IRQ_ACK) and the block is empty; enabling
empties the slot table and queues a wake-all, disabling empties the completion queue.
Each case here closes one way a host could get these conditions half right.
"""

from __future__ import annotations

from apflab.abi import apf
from apflab.testing import Expect, Fault, Handler, Known, spec
from testcases.apf.conftest import ARG, BLOCK, NOT_SUPPORTED, SUCCESS, ApfGuest, enable_args, hvc

SYNC, ASYNC = 0, 1
GFN = 0x58000
#: The I/O time each case gives its faults (the Guest contract's latency), in microseconds.
IO_US = 700


def _fault(ag: ApfGuest, gfn: int = GFN, latency: int = IO_US):
    return ag.guest.fault(0, gfn, False, latency)


@spec(
    "APF v4 07/15 (kvm_arch_async_not_present_allowed); docs/reference/apf.md",
    "a not-present delivered but left in the block holds back the next not-present and the page-ready",
)
def test_unconsumed_not_present_blocks(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    ag.guest.set_handler(ARG, Handler())  # the handler runs and leaves the block as it found it
    first = _fault(ag)
    if not expect((first.x[0], len(first.deliveries)), (ASYNC, 1), "(outcome, entries) of the first fault"):
        expect.stop("no not-present was delivered")
    expect(_fault(ag, GFN + 1).x[0], SYNC, "outcome of a second fault while the block is full")
    ag.guest.tick(IO_US)
    expect(
        (ag.shared(), ag.level()),
        ((apf.REASON_PAGE_NOT_PRESENT, first.x[1]), 0),
        "(block, PPI) once the first fault's I/O is done",
    )


@spec(
    "APF v4 07/15 (kvm_arch_async_not_present_allowed, kvm_arch_can_dequeue_async_page_present)",
    "a non-zero token alone in the block (reason 0) holds back the next not-present and the page-ready",
)
def test_token_alone_blocks(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    first = _fault(ag)  # the guest's handler consumes it: the block is empty again
    expect((first.x[0], ag.shared()), (ASYNC, (0, 0)), "(outcome, block) of the first fault")
    ag.guest.mem_write32(BLOCK + apf.DATA_TOKEN_OFFSET, 0x5A5A)
    expect(_fault(ag, GFN + 1).x[0], SYNC, "outcome of a fault while the block holds a token alone")
    ag.guest.tick(IO_US)
    expect((ag.shared(), ag.level()), ((0, 0x5A5A), 0), "(block, PPI) once the first fault's I/O is done")
    ag.guest.mem_write32(BLOCK + apf.DATA_TOKEN_OFFSET, 0)
    ag.guest.tick(1)
    expect((ag.shared(), ag.level()), ((apf.REASON_PAGE_READY, first.x[1]), 1), "(block, PPI) once it is cleared")


@spec(
    "APF v4 07/15, 08/15 (IRQ_ACK); docs/reference/apf.md",
    "a second page-ready waits for IRQ_ACK even after the guest emptied the block",
)
def test_second_page_ready_waits_for_ack(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    t1, t2 = _fault(ag, GFN).x[1], _fault(ag, GFN + 1).x[1]
    ag.guest.tick(IO_US)
    expect(ag.shared(), (apf.REASON_PAGE_READY, t1), "block: the first page-ready")
    ag.guest.mem_write32(BLOCK + apf.DATA_TOKEN_OFFSET, 0)  # the PPI handler's clearing, without its IRQ_ACK
    ag.guest.mem_write32(BLOCK + apf.DATA_REASON_OFFSET, 0)
    ag.guest.tick(1)
    expect((ag.shared(), ag.level()), ((0, 0), 1), "(block, PPI) before IRQ_ACK")
    expect(hvc(ag.guest, apf.Sub.IRQ_ACK).ret, SUCCESS, "IRQ_ACK")
    expect((ag.shared(), ag.level()), ((apf.REASON_PAGE_READY, t2), 1), "(block, PPI) after IRQ_ACK")


@spec(
    "APF v4 07/15, 09/15 (disable empties the queue, enable queues a wake-all); docs/reference/apf.md",
    "after disable and enable only the new wake-all is posted: the old faults' page-ready is gone",
)
def test_reenable_drops_old_queue(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    token = _fault(ag).x[1]
    expect(hvc(ag.guest, apf.Sub.ENABLE, 0, 0).ret, SUCCESS, "ENABLE(0)")
    expect(hvc(ag.guest, apf.Sub.ENABLE, *enable_args(0)).ret, SUCCESS, "ENABLE again")
    expect(ag.page_ready(), (apf.REASON_PAGE_READY, apf.WAKE_ALL_TOKEN), "the new wake-all")
    ag.guest.tick(IO_US)
    expect(
        (ag.shared(), ag.level()),
        ((0, 0), 0),
        "(block, PPI) after the old fault's I/O time",
        Known("apf_page_ready_after_disable", ((apf.REASON_PAGE_READY, token), 1), certain=True),
    )


@spec(
    "APF v4 07/15 (the completion's time is the I/O's); docs/reference/apf.md",
    "a page-ready comes when its fault's I/O is done: not a microsecond before, and then at once",
)
def test_page_ready_at_io_time(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    token = _fault(ag, latency=IO_US).x[1]
    ag.guest.tick(IO_US - 1)
    expect((ag.shared(), ag.level()), ((0, 0), 0), "(block, PPI) 1 us before the I/O is done")
    ag.guest.tick(1)
    expect((ag.shared(), ag.level()), ((apf.REASON_PAGE_READY, token), 1), "(block, PPI) when it is done")


@spec(
    "APF v4 10/15 (struct kvm_arm_async_pf_cmd: union { u32 version; u64 sdei; u32 irq; u64 control })",
    "SET_IRQ keeps the union's 32-bit irq: bits 63:32 of the value are not the interrupt",
)
def test_irq_field_width(ag: ApfGuest, expect: Expect) -> None:
    g = ag.guest
    g.apf_command(0, apf.Command.SET_IRQ, 0x1_0000_0017)
    expect(g.apf_command(0, apf.Command.GET_IRQ)[1], 0x17, "GET_IRQ after SET_IRQ(0x1_0000_0017)")
    expect(hvc(g, apf.Sub.IRQ).x[1], 0x17, "the guest's IRQ query")


@spec(
    "APF v4 08/15 (ENABLE: x3 is bits 63:32 of the control word), 07/15; docs/reference/apf.md",
    "a block address above 4 GiB comes from x3: one outside guest RAM is NOT_SUPPORTED, not its low half",
)
def test_enable_high_half(ag: ApfGuest, expect: Expect) -> None:
    ag.configure()
    low, _ = enable_args(0)
    expect(hvc(ag.guest, apf.Sub.ENABLE, low, 0x100).ret, NOT_SUPPORTED, "ENABLE(block at 0x100_xxxx_xxxx)")
    expect(ag.guest.apf_command(0, apf.Command.GET_CONTROL)[1], 0, "GET_CONTROL: nothing was enabled")


@spec(
    "APF v4 09/15 (disable empties the completion queue), 07/15; docs/reference/apf.md",
    "disabling drops a completion that was done but still waiting for IRQ_ACK: the ACK posts nothing",
)
def test_disable_drops_finished_completion(ag: ApfGuest, expect: Expect) -> None:
    ag.bring_up()
    t1, _ = _fault(ag, GFN).x[1], _fault(ag, GFN + 1).x[1]
    ag.guest.tick(IO_US)  # both are done; the second waits behind the first's page-ready
    expect(ag.shared(), (apf.REASON_PAGE_READY, t1), "block: the first page-ready")
    expect(hvc(ag.guest, apf.Sub.ENABLE, 0, 0).ret, SUCCESS, "ENABLE(0)")
    expect(ag.page_ready(), (apf.REASON_PAGE_READY, t1), "the first page-ready, acknowledged")
    expect((ag.shared(), ag.level()), ((0, 0), 0), "(block, PPI) after IRQ_ACK: the second was dropped")


@spec(
    "APF v4 07/15 (no not-present while an SDEI event runs on *that* vCPU); docs/reference/apf.md",
    "a fault on another vCPU, made while a handler runs here, starts an async page fault there",
)
def test_fault_on_other_vcpu_from_handler(ag: ApfGuest, expect: Expect) -> None:
    g = ag.guest
    g.require("multi-pe", "needs a second vCPU")
    ag.bring_up(pe=1)
    expect(g.fault(1, GFN + 1, False, IO_US).x[0], ASYNC, "a first fault on vCPU 1 (its token is then not 1)")
    g.select_pe(0)
    other = next(e for e in g.info.events if e.number != apf.SDEI_EVENT and not e.shared)
    g.set_handler(0xB1B1, Handler([Fault(1, GFN, False)]))
    expect(g.sdei.register(other.number, arg=0xB1B1).ret, SUCCESS, "EVENT_REGISTER on vCPU 0")
    expect(g.sdei.enable(other.number).ret, SUCCESS, "EVENT_ENABLE on vCPU 0")
    expect(g.sdei.pe_unmask().ret, SUCCESS, "PE_UNMASK on vCPU 0")
    entries = [d for d in g.trigger(other).deliveries if d.event == other.number]
    if not expect(len(entries), 1, "handler entries on vCPU 0"):
        expect.stop("the handler did not run")
    expect(entries[0].results[0], ASYNC, "outcome of the fault on vCPU 1, made from vCPU 0's handler")
