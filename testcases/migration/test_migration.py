"""Migration of SDEI and APF state: the v4 uAPI layouts, round trips, restore order, bad images.

KVM SDEI v4 16/21-17/21 and APF v4 10/15 give the structures (sizes derived from their field
lists with LP64 alignment), gwshan/qemu's target/arm/machine.c QEMU's save/restore order
(docs/reference/kvm-v4.md, apf.md). A restored target must answer the following calls as
the original would have.
"""

from __future__ import annotations

import pytest

from apflab.abi import apf, sdei, uapi
from apflab.abi.sdei import Fn, Info
from apflab.model.migration import MigrationError
from apflab.testing import WEDGED, Expect, Guest, Handler, Known, Snapshot, TargetError, spec
from testcases.apf.conftest import BLOCK, EVENT, ApfGuest, hvc
from testcases.sdei.helpers import STATUS_WEDGES, arm, check_status, status_steps

#: Events the v4 host creates itself (KVM_SDEI_DEFAULT_NUM, KVM_SDEI_ASYNC_PF_NUM): not the VMM's.
BUILTIN = (0x40400000, EVENT)
#: The image's fixed header (magic, version, ncpus) and the host's clock, which moves.
MAGIC_HEADER = bytes(8 + 4 + 4 + 8)

ARG = 0xC0FFEE


@pytest.fixture
def mig(guest: Guest) -> Guest:
    guest.require("migration", "the target's VMM state cannot be saved and restored from here")
    return guest


# ------------------------------------------------------------------ byte layouts


LAYOUTS = {
    "kvm_sdei_event_state": (uapi.EVENT_STATE.size, 24),
    "kvm_sdei_kvm_event_state": (uapi.KVM_EVENT_STATE_SIZE, 8344),
    "kvm_sdei_vcpu_event_state": (uapi.VCPU_EVENT_STATE.size, 16),
    "kvm_sdei_vcpu_regs": (uapi.VCPU_REGS.size, 160),
    "kvm_sdei_vcpu_state": (uapi.VCPU_STATE_SIZE, 344),
    "kvm_sdei_cmd": (uapi.SDEI_CMD_SIZE, 8352),
    "kvm_arm_async_pf_cmd": (uapi.ASYNC_PF_CMD.size, 16),
    "kvm_vcpu_pv_apf_data": (uapi.APF_DATA.size, 68),
}


@spec(
    "KVM SDEI v4 16/21, 17/21; APF v4 07/15, 10/15; docs/reference/kvm-v4.md, docs/reference/apf.md",
    "the v4 uAPI structures have the sizes the layouts give",
)
@pytest.mark.parametrize("name", LAYOUTS)
def test_struct_size(name: str, expect: Expect) -> None:
    got, want = LAYOUTS[name]
    expect(got, want, f"sizeof({name})")


@spec(
    "KVM SDEI v4 16/21, 17/21; APF v4 10/15; docs/reference/kvm-v4.md, docs/reference/apf.md",
    "the ioctl numbers: KVM_ARM_SDEI_COMMAND 0xE0A0AECE, KVM_ARM_ASYNC_PF_COMMAND 0xC010AECF",
)
def test_ioctl_numbers(expect: Expect) -> None:
    expect((uapi.KVM_ARM_SDEI_COMMAND, uapi.KVM_ARM_ASYNC_PF_COMMAND), (0xE0A0AECE, 0xC010AECF), "ioctl numbers")


@spec(
    "KVM SDEI v4 16/21, 17/21; docs/reference/kvm-v4.md",
    "kvm_sdei_kvm_event_state: entries at 24, params at 4120, registered at 8216, enabled at 8280",
)
def test_kvm_event_offsets(expect: Expect) -> None:
    k = uapi.KvmEventState(0x40400000, refcount=2, route_mode=1, route_affinity=0x80000001)
    k.entries[0], k.params[3] = 0x1111, 0x2222
    uapi.KvmEventState.set_bit(k.registered, 3)
    uapi.KvmEventState.set_bit(k.enabled, 64)
    raw = k.pack()
    got = (
        int.from_bytes(raw[24:32], "little"),
        int.from_bytes(raw[4120 + 24 : 4128 + 24], "little"),
        raw[8216],
        raw[8280 + 8],
        raw[8:12],
        raw[12],
    )
    expect(got, (0x1111, 0x2222, 0b1000, 1, b"\x02\x00\x00\x00", 1), "fields at their offsets")


@spec(
    "KVM SDEI v4 16/21, 17/21; docs/reference/kvm-v4.md",
    "kvm_sdei_vcpu_state: masked at 0, critical_num 8, normal_num 16, regs at 24 and 184",
)
def test_vcpu_state_offsets(expect: Expect) -> None:
    crit = uapi.VcpuRegs([i for i in range(18)], pc=0xAAAA, pstate=0x3C5)
    s = uapi.VcpuState(masked=1, critical_num=0x40400000, normal_num=0x40400010, critical_regs=crit)
    raw = s.pack()

    def word(offset: int) -> int:
        return int.from_bytes(raw[offset : offset + 8], "little")

    got = (raw[0], word(8), word(16), word(24 + 17 * 8), word(24 + 144))
    expect(got, (1, 0x40400000, 0x40400010, 17, 0xAAAA), "(masked, critical, normal, x17, pc)")
    expect(uapi.VcpuState.unpack(raw), s, "unpack(pack(state))")


@spec("APF v4 10/15; docs/reference/apf.md", "kvm_arm_async_pf_cmd: u32 cmd at 0, the value at 8")
def test_async_pf_cmd_layout(expect: Expect) -> None:
    raw = uapi.AsyncPfCmd(apf.Command.SET_CONTROL, 0x4010_0001).pack()
    expect((raw[0], int.from_bytes(raw[8:], "little")), (6, 0x4010_0001), "(cmd, control)")


# ------------------------------------------------------------------ round trips


def _observe(g: Guest, expect: Expect, events: list[int]) -> list:
    """What a guest can see of SDEI state: STATUS and routing of every event on every PE.

    Where STATUS of a registered event would wedge the target, only the routing is read
    (the STATUS checks are recorded as known) and the image saved again stands in for it.
    """
    status = not expect.wedges("EVENT_STATUS of the events", STATUS_WEDGES)
    seen: list = []
    for pe in range(g.info.pes):
        g.select_pe(pe)
        for ev in events:
            st = g.sdei.status(ev).ret if status else None
            seen.append((pe, ev, st, g.sdei.get_info(ev, Info.EV_ROUTING_MODE).ret))
    g.select_pe(0)
    if not status:
        seen.append(g.save_state()[len(MAGIC_HEADER) :])
    return seen


def _catalogue(g: Guest) -> list[int]:
    return [e.number for e in g.info.events]


@spec(
    "gwshan/qemu target/arm/machine.c cpu/sdei; docs/reference/kvm-v4.md",
    "an idle target restores to the same observable SDEI state",
)
def test_round_trip_idle(mig: Guest, expect: Expect) -> None:
    before = _observe(mig, expect, _catalogue(mig))
    mig.restore_state(mig.save_state())
    expect(_observe(mig, expect, _catalogue(mig)), before, "STATUS/ROUTING of every event on every PE")


@spec(
    "KVM SDEI v4 16/21, 17/21; gwshan/qemu target/arm/machine.c cpu/sdei; docs/reference/kvm-v4.md",
    "registrations on several vCPUs survive: STATUS per vCPU, then delivery with the argument",
)
def test_round_trip_registered(mig: Guest, expect: Expect) -> None:
    ev = next(e for e in mig.info.events if not e.shared and not e.critical)
    for pe in range(mig.info.pes):
        mig.select_pe(pe)
        mig.sdei.register(ev.number, arg=ARG + pe)
        if pe % 2 == 0:
            mig.sdei.enable(ev.number)
        mig.sdei.pe_unmask()
    before = _observe(mig, expect, _catalogue(mig))
    mig.restore_state(mig.save_state())
    expect(_observe(mig, expect, _catalogue(mig)), before, "STATUS after restore")
    entries = mig.trigger(ev, pe=2).deliveries
    expect([(d.event, d.arg, d.pe) for d in entries], [(ev.number, ARG + 2, 2)], "delivery after restore")


@spec(
    "KVM SDEI v4 16/21, 17/21 (kske); docs/reference/kvm-v4.md",
    "the registered-event structure saved carries the registration bits of each vCPU",
)
def test_saved_kske_bits(mig: Guest, expect: Expect) -> None:
    ev = next(e for e in mig.info.events if not e.shared)
    for pe in (0, 2):
        mig.select_pe(pe)
        mig.sdei.register(ev.number, arg=ARG)
    image = mig.save_state()
    raw = next(
        image[i : i + uapi.KVM_EVENT_STATE_SIZE]
        for i in range(len(image))
        if image[i : i + 8] == ev.number.to_bytes(8, "little") and i % 4 == 0
    )
    k = uapi.KvmEventState.unpack(raw)
    expect([uapi.KvmEventState.bit(k.registered, i) for i in range(4)], [True, False, True, False], "registered bits")


@spec("KVM SDEI v4 16/21, 17/21 (ksv); docs/reference/kvm-v4.md", "the mask of each vCPU survives")
def test_round_trip_mask(mig: Guest, expect: Expect) -> None:
    mig.select_pe(1)
    mig.sdei.pe_unmask()
    mig.restore_state(mig.save_state())
    results = []
    for pe in range(mig.info.pes):
        mig.select_pe(pe)
        results.append(mig.sdei.pe_unmask().ret)  # v4: DENIED when already unmasked (KVM SDEI v4 11/21)
    expect(results[1] != results[0], True, f"PE 1 differs from PE 0 after restore ({results})")


def _mid_handler(g: Guest, expect: Expect) -> tuple[int, int]:
    """A normal handler snapshots itself mid-way, with a second event queued behind it."""
    normal = next(e for e in g.info.events if not e.shared and not e.critical)
    other = next(e for e in g.info.events if e.shared and not e.critical)
    status = status_steps(expect, normal, "STATUS in the handler after the snapshot")
    g.set_handler(ARG, Handler([g.trigger_steps(other), Snapshot(), *status]))
    g.sdei.register(normal.number, arg=ARG)
    g.sdei.enable(normal.number)
    g.sdei.register(other.number, arg=ARG + 1)
    g.sdei.enable(other.number)
    g.sdei.pe_unmask()
    g.call(Fn.VERSION, 0x11, 0x22, 0x33, 0x44)  # registers the interrupted context will hold
    return normal.number, other.number


@spec(
    "gwshan/qemu target/arm/machine.c cpu/sdei; docs/reference/kvm-v4.md",
    "saved mid-handler, the event completes on the restored target and the context comes back",
)
def test_mid_handler_complete(mig: Guest, expect: Expect) -> None:
    normal, _ = _mid_handler(mig, expect)
    event = next(e for e in mig.info.events if e.number == normal)
    before = mig.regs()
    mig.trigger(event)
    original_after = mig.regs()
    mig.restore_snapshot()  # a fresh target, in the handler at the snapshot
    check_status(mig, expect, event, 0b111, "STATUS: running after restore")
    r = mig.sdei.complete()
    expect(
        (mig.regs().x[:18], mig.regs().x[4]),
        (original_after.x[:18], before.x[4]),
        "registers after COMPLETE on the restored target",
    )
    check_status(mig, expect, event, 0b011, "STATUS after COMPLETE")
    expect(r.x[0], original_after.x[0], "x0 seen by the interrupted code")


@spec(
    "KVM SDEI v4 16/21, 17/21 (ksve); gwshan/qemu target/arm/machine.c cpu/sdei; docs/reference/kvm-v4.md",
    "an event queued at save time is delivered after the restored handler completes",
)
def test_mid_handler_pending(mig: Guest, expect: Expect) -> None:
    _, other = _mid_handler(mig, expect)
    mig.trigger(next(e for e in mig.info.events if not e.shared and not e.critical))
    mig.restore_snapshot()
    r = mig.sdei.complete()
    expect([d.event for d in r.deliveries], [other], "entries after COMPLETE on the restored target")


def _apf_target(g: Guest, expect: Expect) -> ApfGuest:
    g.require("apf-host", "APF state needs the host side")
    ag = ApfGuest(g, expect)
    ag.bring_up()
    return ag


@spec(
    "gwshan/qemu target/arm/machine.c cpu/async_pf; docs/reference/apf.md",
    "APF's SDEI number, IRQ and control word survive, and the guest reads them back",
)
def test_round_trip_apf(mig: Guest, expect: Expect) -> None:
    ag = _apf_target(mig, expect)
    before = [mig.apf_command(0, c) for c in (apf.Command.GET_SDEI, apf.Command.GET_IRQ, apf.Command.GET_CONTROL)]
    mig.restore_state(mig.save_state())
    after = [mig.apf_command(0, c) for c in (apf.Command.GET_SDEI, apf.Command.GET_IRQ, apf.Command.GET_CONTROL)]
    expect(after, before, "GET_SDEI/IRQ/CONTROL")
    expect(hvc(mig, apf.Sub.SDEI).x[1], EVENT, "the guest's SDEI query")
    expect(ag.shared(), (apf.REASON_PAGE_READY, apf.WAKE_ALL_TOKEN), "block: SET_CONTROL's wake-all")


@spec(
    "gwshan/qemu target/arm/machine.c cpu/async_pf; APF v4 07/15, 09/15; docs/reference/apf.md",
    "faults outstanding at save time end on the destination with a wake-all (0xFFFFFFFF)",
)
def test_outstanding_faults_wake_all(mig: Guest, expect: Expect) -> None:
    ag = _apf_target(mig, expect)
    outcomes = [mig.fault(0, 0x60000 + i, False, 1000).x[0] for i in range(3)]
    if not expect(outcomes, [1, 1, 1], "the faults started before the save are asynchronous"):
        expect.stop("no fault was outstanding at the save")
    mig.restore_state(mig.save_state())
    mig.tick(10_000)
    expect(ag.page_ready(), (apf.REASON_PAGE_READY, apf.WAKE_ALL_TOKEN), "first page-ready after restore")
    expect((ag.shared(), ag.level()), ((0, 0), 0), "no page-ready for the old tokens")


@spec("APF v4 07/15; docs/reference/apf.md", "the shared block is guest memory and migrates with it")
def test_block_migrates(mig: Guest, expect: Expect) -> None:
    ag = _apf_target(mig, expect)
    ag.guest.set_handler(0xA9F00001, Handler())  # leave the not-present notification in the block
    token = mig.fault(0, 0x60000).x[1]
    mig.restore_state(mig.save_state())
    expect((mig.mem_read32(BLOCK), mig.mem_read32(BLOCK + 4)), (apf.REASON_PAGE_NOT_PRESENT, token), "block")


@spec(
    "gwshan/qemu target/arm/machine.c cpu/sdei; docs/reference/kvm-v4.md",
    "after restore the target answers a sequence of calls exactly as the original",
)
def test_same_answers_after_restore(mig: Guest, expect: Expect) -> None:
    events = _catalogue(mig)
    mig.sdei.register(events[0], arg=1)
    mig.sdei.enable(events[0])
    image = mig.save_state()
    script = [(fn, ev) for ev in events for fn in (Fn.EVENT_ENABLE, Fn.EVENT_DISABLE, Fn.EVENT_UNREGISTER)]

    def run() -> list[int]:
        return [mig.call(fn, ev).ret for fn, ev in script] + [mig.sdei.pe_unmask().ret, mig.sdei.pe_mask().ret]

    original = run()
    mig.restore_state(image)
    expect(run(), original, "results of the same calls")


# ------------------------------------------------------------- order, bad images


BAD = {
    "truncated": lambda img: img[: len(img) // 2],
    "bad magic": lambda img: b"XXXXXXXX" + img[8:],
    "bad version": lambda img: img[:8] + (9).to_bytes(4, "little") + img[12:],
    "trailing garbage": lambda img: img + b"\0" * 3,
    "empty": lambda img: b"",
}


@spec(
    "KVM SDEI v4 16/21, 17/21; docs/reference/kvm-v4.md",
    "a malformed or truncated image is refused with a clear error, the target unchanged",
)
@pytest.mark.parametrize("kind", BAD)
def test_bad_image(mig: Guest, expect: Expect, kind: str) -> None:
    mig.sdei.register(_catalogue(mig)[0], arg=7)
    image = BAD[kind](mig.save_state())
    with pytest.raises((MigrationError, TargetError), match=r"truncated|magic|version|garbage"):
        mig.restore_state(image)
    r = mig.sdei.register(_catalogue(mig)[0], arg=7)
    expect(r.ret, sdei.DENIED, "EVENT_REGISTER again on the unchanged target: still registered")


@spec(
    "KVM SDEI v4 16/21, 17/21 (SET_KEVENT -ENOENT); docs/reference/kvm-v4.md",
    "an image naming an event the destination does not expose is refused",
)
def test_unknown_event_refused(mig: Guest, expect: Expect) -> None:
    ev = _catalogue(mig)[0]
    mig.sdei.register(ev, arg=7)
    image = mig.save_state()
    forged = image.replace(
        ev.to_bytes(8, "little") + (0).to_bytes(4, "little"),
        (0x40400FFF).to_bytes(8, "little") + (0).to_bytes(4, "little"),
        1,
    )
    with pytest.raises((MigrationError, TargetError), match="ENOENT"):
        mig.restore_state(forged)
    expect(mig.sdei.register(ev, arg=7).ret, sdei.DENIED, "EVENT_REGISTER again on the unchanged target")


#: A value no kernel may call: what a forged or stale image could carry as a notifier.
BOGUS_NOTIFIER = 0xFFFF_0000_DEAD_BEE0


@pytest.mark.fresh_target
@spec(
    "KVM SDEI v4 15/21, 16/21 (kvm_sdei_event_state.notifier); docs/reference/kvm-v4.md",
    "a notifier value in a restored image is never called: the event is delivered as usual",
)
def test_restored_notifier_not_called(mig: Guest, expect: Expect) -> None:
    ev = next(e for e in mig.info.events if not e.shared and not e.critical and e.number not in BUILTIN)
    image = mig.save_state()
    at = image.rfind(ev.number.to_bytes(8, "little"))  # the exposed events come last
    num, type_, signaled, priority, notifier = uapi.EVENT_STATE.unpack(image[at : at + uapi.EVENT_STATE.size])
    expect((num, notifier), (ev.number, 0), "the saved kvm_sdei_event_state")
    forged = uapi.EVENT_STATE.pack(num, type_, signaled, priority, BOGUS_NOTIFIER)
    try:
        mig.restore_state(image[:at] + forged + image[at + uapi.EVENT_STATE.size :])
    except (MigrationError, TargetError) as refused:  # refusing the image is as good as ignoring it
        expect("notifier" in str(refused) or "refused" in str(refused), True, f"restore refused: {refused}")
        return
    arm(mig, expect, ev)
    r = expect.survives(
        lambda: mig.trigger(ev), "delivery of the restored event", Known("set_event_notifier_called", WEDGED)
    )
    expect([d.event for d in r.deliveries], [ev.number], "entries")
