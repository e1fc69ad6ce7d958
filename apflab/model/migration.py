"""Save and restore a kvm-v4 model's SDEI and APF state, as QEMU migrates a v4 guest.

The saved image carries, per vCPU, exactly what QEMU's vmstate subsections do
(docs/reference/kvm-v4.md, "Migration"), in the v4 uAPI structures of
:mod:`apflab.abi.uapi`, byte-exact:
``cpu/sdei`` (the VM's registered events on CPU 0, each vCPU's queued and running events
and its vCPU state) and ``cpu/async_pf`` (SDEI number, IRQ, control). Around them sit
what QEMU migrates by other means: the vCPU's core registers and the PPI's level (CPU and
GIC state), the guest RAM that was written (the APF shared block lives there), and the
events the VMM exposed with KVM_SDEI_CMD_SET_EVENT, which the destination's VMM exposes
again the same way (kvm_sdei_event_state, notifier included, as the v4 uAPI has it).

Image layout (little endian)::

    "APFLABM1" u32 version=2 u32 ncpus u64 clock_us
    per CPU: core (x0-x30, pc, pstate, elr, spsr, vbar, u32 ppi level, 4 pad)
             u32 kske_num, kske_num x kvm_sdei_kvm_event_state
             u32 ksve_num, ksve_num x kvm_sdei_vcpu_event_state
             u32 ksv_num (1), kvm_sdei_vcpu_state
             u64 sdei, u32 irq, 4 pad, u64 control
    u32 npages, npages x (u64 gpa, 4096 bytes)
    u32 nexposed, nexposed x kvm_sdei_event_state (the VMM's own events)

Restore rebuilds a fresh model in QEMU's post_load order: SET_KEVENT on CPU 0, then per
vCPU SET_VEVENT and SET_VCPU_STATE, then SET_SDEI, SET_IRQ and SET_CONTROL last (enabling
needs the SDEI number and the IRQ). Outstanding async page faults are host-side work that
KVM does not migrate: SET_CONTROL's enable path queues a wake-all (token 0xFFFFFFFF) on the
destination, which is how the guest's waiters are released.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from apflab.abi import apf
from apflab.abi import uapi as u
from apflab.model.machine import Machine
from apflab.model.memory import PAGE
from apflab.model.sdei import Dispatch
from apflab.model.state_table import State
from apflab.profiles import KVM_V4, Profile

MAGIC = b"APFLABM1"
VERSION = 2
HEADER = struct.Struct("<8sIIQ")
CORE = struct.Struct("<31QQQQQQI4x")
COUNT = struct.Struct("<I")
APF_STATE = struct.Struct("<QI4xQ")
PAGE_HEAD = struct.Struct("<Q")

#: QEMU's post_load order for cpu/async_pf: control last.
QEMU_APF_ORDER = ("sdei", "irq", "control")


class MigrationError(ValueError):
    """A saved image that cannot be restored; the message names what and where."""


# ------------------------------------------------------------------------- save


def _kske(machine: Machine) -> list[u.KvmEventState]:
    d = machine.sdei
    out = []
    for ev in machine.platform.events:
        regs = d._registrations(ev)
        if not any(r.state.registered for r in regs) and not d._refcount(ev):
            continue
        state = u.KvmEventState(ev.number, refcount=d._refcount(ev))
        for idx, reg in enumerate(regs):
            if reg.state.registered:
                u.KvmEventState.set_bit(state.registered, idx)
                state.entries[idx], state.params[idx] = reg.ep, reg.arg
                state.route_mode, state.route_affinity = reg.routing, reg.affinity
            if reg.state.enabled:
                u.KvmEventState.set_bit(state.enabled, idx)
        out.append(state)
    return out


def _ksve(machine: Machine, pe: int) -> list[u.VcpuEventState]:
    """Queued and running events of one vCPU: the critical list, then the normal list."""
    d = machine.sdei
    counts: dict[int, int] = {}
    for num in d.pending[pe]:
        counts[num] = counts.get(num, 0) + 1
    for dispatch in d.stacks[pe]:
        counts[dispatch.event.number] = counts.get(dispatch.event.number, 0) + 1
    order = sorted(counts, key=lambda n: not d.events[n].critical)
    return [u.VcpuEventState(n, counts[n]) for n in order]


def _ksv(machine: Machine, pe: int) -> u.VcpuState:
    d = machine.sdei
    state = u.VcpuState(masked=int(d.masked[pe]))
    for dispatch in d.stacks[pe]:
        regs = u.VcpuRegs(list(dispatch.regs), dispatch.pc, dispatch.pstate)
        if dispatch.event.critical:
            state.critical_num, state.critical_regs = dispatch.event.number, regs
        else:
            state.normal_num, state.normal_regs = dispatch.event.number, regs
    return state


def save(machine: Machine) -> bytes:
    if machine.apf is None:
        raise MigrationError("only a kvm-v4 model has the v4 migration state (KVM_SDEI_CMD_*, ASYNC_PF_CMD_*)")
    parts = [HEADER.pack(MAGIC, VERSION, len(machine.pes), machine.apf.clock_us)]
    for cpu in machine.pes:
        v = machine.apf.vcpus[cpu.index]
        parts.append(CORE.pack(*cpu.x, cpu.pc, cpu.pstate, cpu.elr, cpu.spsr, cpu.vbar, int(v.irq_level)))
        kske = _kske(machine) if cpu.index == 0 else []
        ksve = _ksve(machine, cpu.index)
        parts += [COUNT.pack(len(kske)), *(k.pack() for k in kske)]
        parts += [COUNT.pack(len(ksve)), *(k.pack() for k in ksve)]
        parts += [COUNT.pack(1), _ksv(machine, cpu.index).pack()]
        parts.append(APF_STATE.pack(v.sdei, v.irq, v.control))
    pages = list(machine.memory.dump())
    parts.append(COUNT.pack(len(pages)))
    for gpa, data in pages:
        parts += [PAGE_HEAD.pack(gpa), data]
    exposed = [ev for ev in machine.platform.events if ev.number not in machine.platform.builtin_events]
    parts.append(COUNT.pack(len(exposed)))
    for ev in exposed:
        notifier = machine.sdei.notifiers.get(ev.number, 0)
        parts.append(u.EVENT_STATE.pack(ev.number, int(ev.type), 1, int(ev.priority), notifier))
    return b"".join(parts)


# ---------------------------------------------------------------------- restore


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise MigrationError(
                f"truncated image: {what} needs {n} bytes at offset {self.pos}, {len(self.data) - self.pos} left"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def count(self, what: str, limit: int) -> int:
        (n,) = COUNT.unpack(self.take(COUNT.size, what))
        if n > limit:
            raise MigrationError(f"{what} = {n} at offset {self.pos - 4} is more than {limit}")
        return n


def _set_kevent(machine: Machine, k: u.KvmEventState) -> None:
    """KVM_SDEI_CMD_SET_KEVENT: recreate a registered event (-ENOENT if not exposed)."""
    ev = machine.sdei.events.get(k.num)
    if ev is None:
        raise MigrationError(f"SET_KEVENT {k.num:#x}: -ENOENT, the destination does not expose this event")
    regs = machine.sdei._registrations(ev)
    for idx, reg in enumerate(regs):
        registered = u.KvmEventState.bit(k.registered, idx)
        enabled = u.KvmEventState.bit(k.enabled, idx)
        if enabled and not registered:
            raise MigrationError(f"SET_KEVENT {k.num:#x}: vCPU {idx} enabled but not registered (-EINVAL)")
        reg.state = State.rEG if enabled else State.reG if registered else State.reg
        reg.ep, reg.arg = (k.entries[idx], k.params[idx]) if registered else (0, 0)
        reg.routing, reg.affinity = k.route_mode, k.route_affinity


def _set_event(machine: Machine, raw: tuple) -> None:
    """KVM_SDEI_CMD_SET_EVENT: the destination's VMM exposes its event again."""
    num, _type, _signaled, _priority, notifier = raw
    if num not in machine.sdei.events or num in machine.platform.builtin_events:
        raise MigrationError(f"SET_EVENT {num:#x}: the destination cannot expose this event (-EINVAL)")
    if machine.sdei.profile.predicts("set_event_notifier_called"):
        machine.sdei.notifiers[num] = notifier  # the kernel keeps the caller's u64 and calls it later


def _set_vcpu(machine: Machine, pe: int, ksve: Sequence[u.VcpuEventState], ksv: u.VcpuState) -> None:
    """KVM_SDEI_CMD_SET_VEVENT for each, then KVM_SDEI_CMD_SET_VCPU_STATE."""
    d = machine.sdei
    counts = {}
    for e in ksve:
        if e.num not in d.events:
            raise MigrationError(f"SET_VEVENT {e.num:#x} on vCPU {pe}: -ENOENT, no such event")
        if e.num in counts:
            raise MigrationError(f"SET_VEVENT {e.num:#x} on vCPU {pe}: -EEXIST")
        counts[e.num] = e.refcount
    d.masked[pe] = bool(ksv.masked)
    running = []
    for num, regs in ((ksv.normal_num, ksv.normal_regs), (ksv.critical_num, ksv.critical_regs)):
        if num == u.INVALID_NUM:
            continue
        if counts.get(num, 0) < 1:
            raise MigrationError(f"SET_VCPU_STATE on vCPU {pe}: running event {num:#x} has no vCPU event (-EINVAL)")
        counts[num] -= 1
        running.append((num, regs))
    for num, regs in running:  # normal first: a critical handler nests over it
        ev = d.events[num]
        reg = d.registration(pe, ev)
        reg.state = State(reg.state.value | 0b100)
        if ev.shared:
            reg.running_pe = pe
        d.stacks[pe].append(Dispatch(ev, reg, list(regs.regs), regs.pc, regs.pstate))
    for e in ksve:
        d.pending[pe].extend([e.num] * counts[e.num])


def restore(data: bytes, profile: Profile = KVM_V4, order: Sequence[str] = QEMU_APF_ORDER) -> Machine:
    """A fresh model carrying the saved state; raises MigrationError on a bad image."""
    r = _Reader(data)
    magic, version, ncpus, clock = HEADER.unpack(r.take(HEADER.size, "header"))
    if magic != MAGIC:
        raise MigrationError(f"not an apflab migration image (magic {magic!r}, want {MAGIC!r})")
    if version != VERSION:
        raise MigrationError(f"image version {version}, this apflab reads version {VERSION}")
    if not 1 <= ncpus <= 64:
        raise MigrationError(f"image has {ncpus} vCPUs; the model supports 1 to 64")
    machine = Machine(profile, pes=ncpus)
    assert machine.apf is not None
    machine.apf.clock_us = clock
    apf_state = []
    kske_all: list[u.KvmEventState] = []
    for pe in range(ncpus):
        core = CORE.unpack(r.take(CORE.size, f"cpu {pe} core registers"))
        cpu = machine.pes[pe]
        cpu.x = list(core[:31])
        cpu.pc, cpu.pstate, cpu.elr, cpu.spsr, cpu.vbar = core[31:36]
        machine.apf.vcpus[pe].irq_level = bool(core[36])
        kske = [
            u.KvmEventState.unpack(r.take(u.KVM_EVENT_STATE_SIZE, f"cpu {pe} kske[{i}]"))
            for i in range(r.count(f"cpu {pe} kske_num", 64))
        ]
        if kske and pe != 0:
            raise MigrationError(f"cpu {pe} carries VM events: QEMU saves them on CPU 0 only")
        for k in kske:
            _set_kevent(machine, k)
        kske_all += kske
        ksve = [
            u.VcpuEventState.unpack(r.take(u.VCPU_EVENT_STATE.size, f"cpu {pe} ksve[{i}]"))
            for i in range(r.count(f"cpu {pe} ksve_num", 64))
        ]
        if r.count(f"cpu {pe} ksv_num", 1) != 1:
            raise MigrationError(f"cpu {pe} has no kvm_sdei_vcpu_state")
        ksv = u.VcpuState.unpack(r.take(u.VCPU_STATE_SIZE, f"cpu {pe} ksv"))
        _set_vcpu(machine, pe, ksve, ksv)
        apf_state.append(APF_STATE.unpack(r.take(APF_STATE.size, f"cpu {pe} async_pf")))
    for i in range(r.count("npages", 1 << 18)):
        (gpa,) = PAGE_HEAD.unpack(r.take(PAGE_HEAD.size, f"page {i} address"))
        page = r.take(PAGE, f"page {i} data")
        if gpa % PAGE or not machine.memory.contains(gpa, PAGE):
            raise MigrationError(f"page {i} at {gpa:#x} is not a guest RAM page")
        machine.memory.write(gpa, page)
    for i in range(r.count("nexposed", 64)):
        _set_event(machine, u.EVENT_STATE.unpack(r.take(u.EVENT_STATE.size, f"exposed event {i}")))
    if r.pos != len(data):
        raise MigrationError(f"{len(data) - r.pos} bytes of trailing garbage after the image")
    for k in kske_all:  # the VM-wide refcount as saved, whatever the queues say
        ev = machine.sdei.events[k.num]
        machine.sdei.refcount_skew[k.num] = k.refcount - machine.sdei._refcount(ev)
    cmds = {"sdei": apf.Command.SET_SDEI, "irq": apf.Command.SET_IRQ, "control": apf.Command.SET_CONTROL}
    for pe, (sdei_num, irq, control) in enumerate(apf_state):
        values = {"sdei": sdei_num, "irq": irq, "control": control}
        for name in order:  # post_load: each only when non-zero
            if values[name]:
                err, _ = machine.apf.command(pe, cmds[name], values[name])
                if err:
                    raise MigrationError(
                        f"cpu {pe} async_pf: SET_{name.upper()} failed ({err}); QEMU restores "
                        "SDEI and IRQ before CONTROL because enabling needs both"
                    )
    machine.sdei.check_invariants()
    return machine
