/*
 * void pulse_with_regs(const u64 regs[18], const struct pulse *p) (machine.h)
 *
 * One raise of an interrupt the agent triggers itself, made with x0..x17 = regs[0..17]:
 * the source goes high, an ISB lets the PE take what that caused (the SDEI event the edge
 * triggers is dispatched here, at EL3's say), then it goes low. Only x19..x25 carry the
 * pulse, so an event taken here sees the registers of the agent's last call in its
 * interrupted context (EVENT_CONTEXT), as a host's trigger of an idling guest would.
 */
#include "machine.h"

	.text
	.global pulse_with_regs
	.balign 16
pulse_with_regs:
	stp	x29, x30, [sp, #-80]!	/* x29, x30, then x19..x25, one slot each */
	stp	x19, x20, [sp, #16]
	stp	x21, x22, [sp, #32]
	stp	x23, x24, [sp, #48]
	str	x25, [sp, #64]
	mov	x25, x0
	ldp	x19, x20, [x1]		/* kind, on_addr */
	ldp	x21, x22, [x1, #16]	/* on_val, off_addr */
	ldr	x23, [x1, #32]		/* off_val */
	ldp	x0, x1, [x25]
	ldp	x2, x3, [x25, #16]
	ldp	x4, x5, [x25, #32]
	ldp	x6, x7, [x25, #48]
	ldp	x8, x9, [x25, #64]
	ldp	x10, x11, [x25, #80]
	ldp	x12, x13, [x25, #96]
	ldp	x14, x15, [x25, #112]
	ldp	x16, x17, [x25, #128]
	cmp	x19, #PULSE_PMU
	b.eq	pmu
	cmp	x19, #PULSE_CNTV
	b.eq	cntv
	cmp	x19, #PULSE_CNTP
	b.eq	cntp
	cmp	x19, #PULSE_CNTHP
	b.eq	cnthp
	str	w21, [x20]		/* PULSE_MMIO */
	dsb	sy
	isb
	str	w23, [x22]
	b	done
pmu:	msr	pmovsset_el0, x21
	isb
	msr	pmovsclr_el0, x21
	b	done
cntv:	msr	cntv_cval_el0, xzr
	msr	cntv_ctl_el0, x21
	isb
	msr	cntv_ctl_el0, xzr
	b	done
cntp:	msr	cntp_cval_el0, xzr
	msr	cntp_ctl_el0, x21
	isb
	msr	cntp_ctl_el0, xzr
	b	done
cnthp:	msr	cnthp_cval_el2, xzr
	msr	cnthp_ctl_el2, x21
	isb
	msr	cnthp_ctl_el2, xzr
done:	dsb	sy
	isb
	ldp	x19, x20, [sp, #16]
	ldp	x21, x22, [sp, #32]
	ldp	x23, x24, [sp, #48]
	ldr	x25, [sp, #64]
	ldp	x29, x30, [sp], #80
	ret
