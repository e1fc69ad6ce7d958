/*
 * What the agent knows of the machine it runs on, beyond the console and the conduit:
 * `make MACHINE=` picks machine_virt.c (QEMU virt: its GICv3, timers, PMU, PL031 and PCIe
 * edu devices) or machine_none.c (nothing: apflab-vmm's guest, where the agent keeps to
 * what every machine has).
 *
 * Two jobs:
 *  - the PEs: how many the interrupt controller serves, and a wake-up a secondary PE can
 *    sleep on (WFI) instead of spinning, so idle PEs leave the host's CPUs to the busy one;
 *  - the interrupts the agent raises itself, so a target without a host-side hook (TF-A on
 *    QEMU) still triggers the SDEI events bound to them (docs/targets.md, "Triggers the
 *    agent raises"). Every source is raised as one rising edge: its interrupt is configured
 *    edge-triggered in the GIC while it is still the non-secure world's, so one raise is one
 *    trigger, latched pending in the GIC, as an EVENT_SIGNAL is.
 */
#ifndef APFLAB_MACHINE_H
#define APFLAB_MACHINE_H

#define TRIG_MAX 16

/* How one raise of an interrupt is made (pulse.S): a write that takes the source high,
 * one that takes it low again. PULSE_MMIO writes 32-bit *on_addr = on_val, then
 * *off_addr = off_val; the others are system registers of this PE (the PMU's overflow
 * flag on_val, a timer enabled with its compare value 0, then disabled). struct pulse's
 * fields are 8 bytes each, in this order: kind, on_addr, on_val, off_addr, off_val. */
#define PULSE_MMIO 0
#define PULSE_PMU 1
#define PULSE_CNTV 2
#define PULSE_CNTP 3
#define PULSE_CNTHP 4

#ifndef __ASSEMBLER__
#include "types.h"

/* Boot CPU, once, at the agent's EL: find the GIC and the sources, configure the SPIs. */
void mach_init(u32 el);
/* Every PE when it comes up (again): its PPIs edge-triggered, its sources quiet, its
 * wake-up armed. Returns 1 when the PE can sleep with mach_sleep(). */
int mach_pe_init(void);
/* How many PEs the interrupt controller serves (redistributors), 0 if unknown. */
int mach_pes(void);
/* Sleep until mach_wake() names this PE (or any interrupt arrives); IRQs stay masked. */
void mach_sleep(void);
/* Wake PE ``pe`` (Aff0) from mach_sleep(). */
void mach_wake(int pe);

/* The interrupts that can be raised, ascending; returns how many (intids may be NULL). */
int trig_list(u32 *intids, int max);
/* Whether ``intid`` is a PPI: raised by the PE it belongs to. */
int trig_private(u32 intid);

struct pulse {
	u64 kind;
	u64 on_addr, on_val;
	u64 off_addr, off_val;
};

/* How to raise ``intid`` on this PE: 0 and ``p`` filled, or -1 when it cannot be raised here. */
int trig_pulse(u32 intid, struct pulse *p);
/* Raise it (pulse.S) with x0..x17 = ``regs`` from just before the raise until just after
 * it: the event the edge triggers interrupts the agent holding the registers of its last
 * call, as a host's trigger finds a guest idling after that call. */
void pulse_with_regs(const u64 *regs, const struct pulse *p);
#endif /* __ASSEMBLER__ */

#endif
