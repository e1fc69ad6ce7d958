"""Migration of SDEI and APF state: the v4 uAPI layouts, round trips, restore order, bad images.

abi.md 3.7 and 4.11 give the structures (sizes derived there with LP64 alignment), 3.8 and
4.12 QEMU's save/restore order. A restored target must answer the following calls as
the original would have.
"""

from __future__ import annotations

import pytest

from apflab.abi import apf, uapi
from apflab.abi.sdei import Fn, Info
from apflab.testing import Call, Expect, Guest, Handler, Inject, Snapshot, TargetError, spec
from testcases.apf.conftest import BLOCK, EVENT, ApfGuest, hvc

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


@spec("abi.md 3.7, 4.3, 4.11", "the v4 uAPI structures have the sizes the layouts give")
@pytest.mark.parametrize("name", LAYOUTS)
def test_struct_size(name: str, expect: Expect) -> None:
    got, want = LAYOUTS[name]
    expect(got, want, f"sizeof({name})")


@spec("abi.md 3.7, 4.11", "the ioctl numbers: KVM_ARM_SDEI_COMMAND 0xE0A0AECE, KVM_ARM_ASYNC_PF_COMMAND 0xC010AECF")
def test_ioctl_numbers(expect: Expect) -> None:
    expect((uapi.KVM_ARM_SDEI_COMMAND, uapi.KVM_ARM_ASYNC_PF_COMMAND), (0xE0A0AECE, 0xC010AECF), "ioctl numbers")


@spec("abi.md 3.7", "kvm_sdei_kvm_event_state: entries at 24, params at 4120, registered at 8216, enabled at 8280")
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


@spec("abi.md 3.7", "kvm_sdei_vcpu_state: masked at 0, critical_num 8, normal_num 16, regs at 24 and 184")
def test_vcpu_state_offsets(expect: Expect) -> None:
    crit = uapi.VcpuRegs([i for i in range(18)], pc=0xAAAA, pstate=0x3C5)
    s = uapi.VcpuState(masked=1, critical_num=0x40400000, normal_num=0x40400010, critical_regs=crit)
    raw = s.pack()

    def word(offset: int) -> int:
        return int.from_bytes(raw[offset : offset + 8], "little")

    got = (raw[0], word(8), word(16), word(24 + 17 * 8), word(24 + 144))
    expect(got, (1, 0x40400000, 0x40400010, 17, 0xAAAA), "(masked, critical, normal, x17, pc)")
    expect(uapi.VcpuState.unpack(raw), s, "unpack(pack(state))")


@spec("abi.md 4.11", "kvm_arm_async_pf_cmd: u32 cmd at 0, the value at 8")
def test_async_pf_cmd_layout(expect: Expect) -> None:
    raw = uapi.AsyncPfCmd(apf.Command.SET_CONTROL, 0x4010_0001).pack()
    expect((raw[0], int.from_bytes(raw[8:], "little")), (6, 0x4010_0001), "(cmd, control)")


# ------------------------------------------------------------------ round trips


def _observe(g: Guest, events: list[int]) -> list:
    """What a guest can see of SDEI state: STATUS and routing of every event on every PE."""
    seen = []
    for pe in range(g.info.pes):
        g.select_pe(pe)
        for ev in events:
            seen.append((pe, ev, g.sdei.status(ev).ret, g.sdei.get_info(ev, Info.EV_ROUTING_MODE).ret))
    g.select_pe(0)
    return seen


def _catalogue(g: Guest) -> list[int]:
    return [e.number for e in g.info.events]


@spec("abi.md 3.8", "an idle target restores to the same observable SDEI state")
def test_round_trip_idle(mig: Guest, expect: Expect) -> None:
    before = _observe(mig, _catalogue(mig))
    mig.restore_state(mig.save_state())
    expect(_observe(mig, _catalogue(mig)), before, "STATUS/ROUTING of every event on every PE")


@spec("abi.md 3.7, 3.8", "registrations on several vCPUs survive: STATUS per vCPU, then delivery with the argument")
def test_round_trip_registered(mig: Guest, expect: Expect) -> None:
    ev = next(e for e in mig.info.events if not e.shared and not e.critical)
    for pe in range(mig.info.pes):
        mig.select_pe(pe)
        mig.sdei.register(ev.number, arg=ARG + pe)
        if pe % 2 == 0:
            mig.sdei.enable(ev.number)
        mig.sdei.pe_unmask()
    before = _observe(mig, _catalogue(mig))
    mig.restore_state(mig.save_state())
    expect(_observe(mig, _catalogue(mig)), before, "STATUS after restore")
    entries = mig.trigger(ev, pe=2).deliveries
    expect([(d.event, d.arg, d.pe) for d in entries], [(ev.number, ARG + 2, 2)], "delivery after restore")


@spec("abi.md 3.7 (kske)", "the registered-event structure saved carries the registration bits of each vCPU")
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


@spec("abi.md 3.7 (ksv)", "the mask of each vCPU survives")
def test_round_trip_mask(mig: Guest, expect: Expect) -> None:
    mig.select_pe(1)
    mig.sdei.pe_unmask()
    mig.restore_state(mig.save_state())
    results = []
    for pe in range(mig.info.pes):
        mig.select_pe(pe)
        results.append(mig.sdei.pe_unmask().ret)  # v4: DENIED when already unmasked (abi.md 3.4)
    expect(results[1] != results[0], True, f"PE 1 differs from PE 0 after restore ({results})")


def _mid_handler(g: Guest) -> tuple[int, int]:
    """A normal handler snapshots itself mid-way, with a second event queued behind it."""
    normal = next(e for e in g.info.events if not e.shared and not e.critical)
    other = next(e for e in g.info.events if e.shared and not e.critical)
    g.set_handler(ARG, Handler([Inject(0, other.number), Snapshot(), Call(Fn.EVENT_STATUS, normal.number)]))
    g.sdei.register(normal.number, arg=ARG)
    g.sdei.enable(normal.number)
    g.sdei.register(other.number, arg=ARG + 1)
    g.sdei.enable(other.number)
    g.sdei.pe_unmask()
    g.call(Fn.VERSION, 0x11, 0x22, 0x33, 0x44)  # registers the interrupted context will hold
    return normal.number, other.number


@spec("abi.md 3.8", "saved mid-handler, the event completes on the restored target and the context comes back")
def test_mid_handler_complete(mig: Guest, expect: Expect) -> None:
    normal, _ = _mid_handler(mig)
    before = mig.regs()
    mig.trigger(next(e for e in mig.info.events if e.number == normal))
    original_after = mig.regs()
    mig.restore_snapshot()  # a fresh target, in the handler at the snapshot
    expect(mig.sdei.status(normal).ret, 0b111, "STATUS: running after restore")
    r = mig.sdei.complete()
    expect(
        (mig.regs().x[:18], mig.regs().x[4]),
        (original_after.x[:18], before.x[4]),
        "registers after COMPLETE on the restored target",
    )
    expect(mig.sdei.status(normal).ret, 0b011, "STATUS after COMPLETE")
    expect(r.x[0], original_after.x[0], "x0 seen by the interrupted code")


@spec("abi.md 3.7 (ksve), 3.8", "an event queued at save time is delivered after the restored handler completes")
def test_mid_handler_pending(mig: Guest, expect: Expect) -> None:
    _, other = _mid_handler(mig)
    mig.trigger(next(e for e in mig.info.events if not e.shared and not e.critical))
    mig.restore_snapshot()
    r = mig.sdei.complete()
    expect([d.event for d in r.deliveries], [other], "entries after COMPLETE on the restored target")


def _apf_target(g: Guest, expect: Expect) -> ApfGuest:
    g.require("apf-host", "APF state needs the host side")
    ag = ApfGuest(g, expect)
    ag.bring_up()
    return ag


@spec("abi.md 4.12", "APF's SDEI number, IRQ and control word survive, and the guest reads them back")
def test_round_trip_apf(mig: Guest, expect: Expect) -> None:
    ag = _apf_target(mig, expect)
    before = [mig.apf_command(0, c) for c in (apf.Command.GET_SDEI, apf.Command.GET_IRQ, apf.Command.GET_CONTROL)]
    mig.restore_state(mig.save_state())
    after = [mig.apf_command(0, c) for c in (apf.Command.GET_SDEI, apf.Command.GET_IRQ, apf.Command.GET_CONTROL)]
    expect(after, before, "GET_SDEI/IRQ/CONTROL")
    expect(hvc(mig, apf.Sub.SDEI).x[1], EVENT, "the guest's SDEI query")
    expect(ag.shared(), (apf.REASON_PAGE_READY, apf.WAKE_ALL_TOKEN), "block: SET_CONTROL's wake-all")


@spec("abi.md 4.12, 4.4", "faults outstanding at save time end on the destination with a wake-all (0xFFFFFFFF)")
def test_outstanding_faults_wake_all(mig: Guest, expect: Expect) -> None:
    ag = _apf_target(mig, expect)
    tokens = [mig.fault(0, 0x60000 + i).x[1] for i in range(3)]
    mig.restore_state(mig.save_state())
    mig.tick(10_000)
    expect(ag.page_ready(), (apf.REASON_PAGE_READY, apf.WAKE_ALL_TOKEN), "first page-ready after restore")
    expect((ag.shared(), ag.level()), ((0, 0), 0), "no page-ready for the old tokens")
    expect(len(tokens), 3, "faults started before the save")


@spec("abi.md 4.3", "the shared block is guest memory and migrates with it")
def test_block_migrates(mig: Guest, expect: Expect) -> None:
    ag = _apf_target(mig, expect)
    ag.guest.set_handler(0xA9F00001, Handler())  # leave the not-present notification in the block
    token = mig.fault(0, 0x60000).x[1]
    mig.restore_state(mig.save_state())
    expect((mig.mem_read32(BLOCK), mig.mem_read32(BLOCK + 4)), (apf.REASON_PAGE_NOT_PRESENT, token), "block")


@spec("abi.md 3.8", "after restore the target answers a sequence of calls exactly as the original")
def test_same_answers_after_restore(mig: Guest, expect: Expect) -> None:
    events = _catalogue(mig)
    mig.sdei.register(events[0], arg=1)
    mig.sdei.enable(events[0])
    image = mig.save_state()
    script = [
        (fn, ev)
        for ev in events
        for fn in (Fn.EVENT_STATUS, Fn.EVENT_ENABLE, Fn.EVENT_DISABLE, Fn.EVENT_UNREGISTER, Fn.EVENT_STATUS)
    ]

    def run() -> list[int]:
        return [mig.call(fn, ev).ret for fn, ev in script] + [mig.sdei.pe_unmask().ret, mig.sdei.pe_mask().ret]

    original = run()
    mig.restore_state(image)
    expect(run(), original, "results of the same calls")


# ------------------------------------------------------------- order, bad images


@spec("abi.md 4.12", "restoring CONTROL before SDEI and IRQ fails: enabling needs both (QEMU sets it last)")
def test_restore_order(mig: Guest, expect: Expect) -> None:
    mig.require("apf-host", "APF state needs the host side")
    from apflab.model.migration import MigrationError, restore

    ApfGuest(mig, expect).bring_up()
    image = mig.save_state()
    with pytest.raises(MigrationError, match="SET_CONTROL failed"):
        restore(image, mig.info.profile, order=("control", "sdei", "irq"))
    expect(restore(image, mig.info.profile).apf is not None, True, "QEMU's order restores")


BAD = {
    "truncated": lambda img: img[: len(img) // 2],
    "bad magic": lambda img: b"XXXXXXXX" + img[8:],
    "bad version": lambda img: img[:8] + (9).to_bytes(4, "little") + img[12:],
    "trailing garbage": lambda img: img + b"\0" * 3,
    "empty": lambda img: b"",
}


@spec("abi.md 3.7", "a malformed or truncated image is refused with a clear error, the target unchanged")
@pytest.mark.parametrize("kind", BAD)
def test_bad_image(mig: Guest, expect: Expect, kind: str) -> None:
    from apflab.model.migration import MigrationError

    mig.sdei.register(_catalogue(mig)[0], arg=7)
    image = BAD[kind](mig.save_state())
    with pytest.raises((MigrationError, TargetError), match=r"truncated|magic|version|garbage"):
        mig.restore_state(image)
    expect(mig.sdei.status(_catalogue(mig)[0]).ret, 1, "STATUS on the unchanged target")


@spec("abi.md 3.7 (SET_KEVENT -ENOENT)", "an image naming an event the destination does not expose is refused")
def test_unknown_event_refused(mig: Guest, expect: Expect) -> None:
    from apflab.model.migration import MigrationError

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
    expect(mig.sdei.status(ev).ret, 1, "STATUS on the unchanged target")
