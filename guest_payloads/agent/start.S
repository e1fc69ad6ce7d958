/*
 * apflab bare-metal guest agent: entry, vectors, the SMCCC call stubs, the SDEI
 * handler trampoline and the COMPLETE_AND_RESUME landing pad.
 *
 * Runs at EL1 or EL2 with the MMU off, whichever EL it is entered at. The SDEI
 * dispatcher saves and restores only x0-x17 (DEN0054C handler dispatch; TF-A save_event_ctx), so the
 * trampoline saves x18-x30 and SP itself, on a stack of its own per nesting depth.
 */

#define STACK_SIZE      0x4000
#define HSTACK_SIZE     0x2000
#define MAX_DEPTH       2
#define MAX_CPUS        8
#define HSTACK_PER_CPU  (HSTACK_SIZE * (MAX_DEPTH + 1))

.macro adr_l reg, sym
	adrp	\reg, \sym
	add	\reg, \reg, :lo12:\sym
.endm

/* x2..x17 <- marker | index, so a dispatcher that does not restore them is seen. */
.macro poison_x2_x17
	.irp n, 2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17
	movz	x\n, #\n
	movk	x\n, #0x5de1, lsl #48
	.endr
.endm

/* \reg = this CPU's index (Aff0 of MPIDR, QEMU virt's CPU number). */
.macro cpu_index reg
	mrs	\reg, mpidr_el1
	and	\reg, \reg, #(MAX_CPUS - 1)
.endm

/* \reg = &handler_depth[this CPU]; clobbers \tmp. */
.macro depth_addr reg, tmp
	cpu_index \tmp
	adr_l	\reg, handler_depth
	add	\reg, \reg, \tmp, lsl #2
.endm

/* sp = top of this CPU's main stack; clobbers \a, \b. */
.macro cpu_stack_top a, b
	cpu_index \b
	add	\b, \b, #1
	adr_l	\a, stack
	mov	x17, #STACK_SIZE
	madd	\a, \b, x17, \a
	mov	sp, \a
.endm

/*
 * Switch to this CPU's stack for the current nesting depth (x10, already counted) and
 * save there what the dispatcher does not restore: x18-x30 and the interrupted SP
 * (which the caller left in x12). Clobbers x11, x13, x14.
 */
.macro push_handler_frame
	cpu_index x14
	adr_l	x11, handler_stacks
	mov	x13, #HSTACK_PER_CPU
	madd	x11, x14, x13, x11
	mov	x13, #HSTACK_SIZE
	madd	x11, x10, x13, x11	/* top of this depth's stack */
	mov	sp, x11
	stp	x12, x30, [sp, #-16]!
	stp	x28, x29, [sp, #-16]!
	stp	x26, x27, [sp, #-16]!
	stp	x24, x25, [sp, #-16]!
	stp	x22, x23, [sp, #-16]!
	stp	x20, x21, [sp, #-16]!
	stp	x18, x19, [sp, #-16]!
.endm

	.section .text.entry, "ax"
	.global _start
_start:
	/* Only the boot CPU runs the agent; others park (PSCI leaves them off anyway). */
	mrs	x0, mpidr_el1
	and	x0, x0, #0xffffff
	cbz	x0, 1f
0:	wfe
	b	0b
1:	adr_l	x0, __bss_start
	adr_l	x1, __bss_end
2:	cmp	x0, x1
	b.hs	3f
	str	xzr, [x0], #8
	b	2b
3:	cpu_stack_top x0, x1
	mrs	x0, CurrentEL
	lsr	x0, x0, #2
	adr_l	x1, agent_el
	str	w0, [x1]
	cmp	x0, #2
	b.eq	4f
	adr_l	x1, vectors_el1
	msr	vbar_el1, x1
	b	5f
4:	adr_l	x1, vectors_el2
	msr	vbar_el2, x1
5:	isb
	msr	daifclr, #0xf		/* run unmasked: a handler's masked DAIF then means something */
	bl	agent_main
	b	.

/* Secondary CPUs, started by the boot CPU with PSCI CPU_ON, at the boot CPU's EL. */
	.global secondary_entry
secondary_entry:
	cpu_stack_top x0, x1
	adr_l	x1, agent_el
	ldr	w1, [x1]
	cmp	w1, #2
	b.eq	6f
	adr_l	x1, vectors_el1
	msr	vbar_el1, x1
	b	7f
6:	adr_l	x1, vectors_el2
	msr	vbar_el2, x1
7:	isb
	msr	daifclr, #0xf
	bl	secondary_main
	b	.

/* ---------------------------------------------------------------- vectors */

.macro vector_entry label
	.balign 0x80
	b	\label
.endm

.macro vectors el
	.balign 0x800
	.global vectors_el\el
vectors_el\el:
	vector_entry exc_el\el\()_0	/* current EL, SP0: sync */
	vector_entry exc_el\el\()_1	/*   irq */
	vector_entry exc_el\el\()_2	/*   fiq */
	vector_entry exc_el\el\()_3	/*   serror */
	vector_entry exc_el\el\()_4	/* current EL, SPx: sync */
	vector_entry irq_el\el		/*   irq: where v4's COMPLETE_AND_RESUME lands */
	vector_entry exc_el\el\()_6	/*   fiq */
	vector_entry exc_el\el\()_7	/*   serror */
	.rept 8
	vector_entry exc_el\el\()_8	/* lower EL: never expected */
	.endr

	.irp k, 0,1,2,3,4,6,7,8
exc_el\el\()_\k:
	sub	sp, sp, #32
	stp	x0, x1, [sp]
	stp	x2, x3, [sp, #16]
	mrs	x0, esr_el\el
	mrs	x1, elr_el\el
	/* A probed conduit that is UNDEFINED here: skip the instruction, flag it. */
	adr_l	x2, probe_active
	ldr	w3, [x2]
	cbz	w3, 6f
	str	wzr, [x2]
	adr_l	x2, probe_faulted
	mov	w3, #1
	str	w3, [x2]
	add	x1, x1, #4
	msr	elr_el\el, x1
	ldp	x2, x3, [sp, #16]
	ldp	x0, x1, [sp]
	add	sp, sp, #32
	eret
6:	mrs	x2, far_el\el
	mrs	x3, spsr_el\el
	mov	x4, #\k
	/* Report and go back to the command loop on a fresh stack (never returns). */
	cpu_stack_top x5, x6
	bl	agent_exception
	b	.
	.endr

irq_el\el:
	sub	sp, sp, #176
	stp	x0, x1, [sp]
	stp	x2, x3, [sp, #16]
	adr_l	x0, vectors_el\el
	add	x0, x0, #0x280
	b	landing_common_el\el

	.global resume_pad_el\el
	.balign 8
resume_pad_el\el:
	sub	sp, sp, #176
	stp	x0, x1, [sp]
	stp	x2, x3, [sp, #16]
	adr_l	x0, resume_pad_el\el
landing_common_el\el:
	/* Save what a C call may clobber, record the landing, return where SDEI was taken. */
	stp	x4, x5, [sp, #32]
	stp	x6, x7, [sp, #48]
	stp	x8, x9, [sp, #64]
	stp	x10, x11, [sp, #80]
	stp	x12, x13, [sp, #96]
	stp	x14, x15, [sp, #112]
	stp	x16, x17, [sp, #128]
	stp	x18, x30, [sp, #144]
	mrs	x1, elr_el\el
	mrs	x2, spsr_el\el
	mrs	x3, daif
	mrs	x4, nzcv
	mrs	x5, CurrentEL
	mrs	x6, spsel
	bl	agent_landing
	ldp	x2, x3, [sp, #16]
	ldp	x4, x5, [sp, #32]
	ldp	x6, x7, [sp, #48]
	ldp	x8, x9, [sp, #64]
	ldp	x10, x11, [sp, #80]
	ldp	x12, x13, [sp, #96]
	ldp	x14, x15, [sp, #112]
	ldp	x16, x17, [sp, #128]
	ldp	x18, x30, [sp, #144]
	ldp	x0, x1, [sp]
	add	sp, sp, #176
	eret
.endm

	.text
	vectors 1
	vectors 2

/* -------------------------------------------------------------- SMCCC calls */

/*
 * void call_smc(const u64 in[18], u64 out[22]) / call_hvc(...)
 * x0..x17 <- in[0..17]; conduit; out[0..17] <- x0..x17 at once, before anything can
 * change them, then out[18] = the return address, out[19..21] = DAIF, NZCV, SPSel.
 */
.macro call_stub name, insn
	.global \name
	.balign 16
\name:
	stp	x29, x30, [sp, #-96]!
	stp	x19, x20, [sp, #16]
	stp	x21, x22, [sp, #32]
	stp	x23, x24, [sp, #48]
	stp	x25, x26, [sp, #64]
	stp	x27, x28, [sp, #80]
	mov	x19, x1
	mov	x20, x0
	ldp	x2, x3, [x20, #16]
	ldp	x4, x5, [x20, #32]
	ldp	x6, x7, [x20, #48]
	ldp	x8, x9, [x20, #64]
	ldp	x10, x11, [x20, #80]
	ldp	x12, x13, [x20, #96]
	ldp	x14, x15, [x20, #112]
	ldp	x16, x17, [x20, #128]
	ldp	x0, x1, [x20]
	\insn	#0
\name\()_return:
	stp	x0, x1, [x19]
	stp	x2, x3, [x19, #16]
	stp	x4, x5, [x19, #32]
	stp	x6, x7, [x19, #48]
	stp	x8, x9, [x19, #64]
	stp	x10, x11, [x19, #80]
	stp	x12, x13, [x19, #96]
	stp	x14, x15, [x19, #112]
	stp	x16, x17, [x19, #128]
	adr	x0, \name\()_return
	mrs	x1, daif
	stp	x0, x1, [x19, #144]
	mrs	x0, nzcv
	mrs	x1, spsel
	stp	x0, x1, [x19, #160]
	ldp	x19, x20, [sp, #16]
	ldp	x21, x22, [sp, #32]
	ldp	x23, x24, [sp, #48]
	ldp	x25, x26, [sp, #64]
	ldp	x27, x28, [sp, #80]
	ldp	x29, x30, [sp], #96
	ret
.endm

	call_stub call_smc, smc
	call_stub call_hvc, hvc

/* ------------------------------------------------------ the SDEI trampoline */

/*
 * Entered by the dispatcher at the client EL with SP_ELx = the interrupted SP,
 * x0..x3 = event, argument, interrupted PC, interrupted PSTATE.
 */
	.global sdei_entry
	.balign 16
sdei_entry:
	mov	x12, sp
	depth_addr x9, x11
	ldr	w10, [x9]
	add	w10, w10, #1
	str	w10, [x9]
	cmp	w10, #MAX_DEPTH
	b.hi	.			/* deeper than the spec allows: hang here visibly */
	push_handler_frame
	mrs	x4, daif
	mrs	x5, nzcv
	mrs	x6, CurrentEL
	mrs	x7, spsel
	bl	agent_sdei_handler	/* returns x0 = finishing function ID, x1 = its argument */
finish:
	mov	x16, x0
	mov	x17, x1
	ldp	x18, x19, [sp], #16
	ldp	x20, x21, [sp], #16
	ldp	x22, x23, [sp], #16
	ldp	x24, x25, [sp], #16
	ldp	x26, x27, [sp], #16
	ldp	x28, x29, [sp], #16
	ldp	x12, x30, [sp], #16
	depth_addr x9, x13
	ldr	w10, [x9]
	sub	w10, w10, #1
	str	w10, [x9]
	mov	sp, x12
	adr_l	x9, agent_conduit
	ldr	w9, [x9]
	mov	x0, x16
	mov	x1, x17
	cbnz	w9, finish_hvc
	poison_x2_x17
	smc	#0
	b	finish_failed
finish_hvc:
	poison_x2_x17
	hvc	#0
finish_failed:
	/* COMPLETE or COMPLETE_AND_RESUME returned: it failed. Rebuild the frame, ask C. */
	mov	x12, sp
	depth_addr x9, x11
	ldr	w10, [x9]
	add	w10, w10, #1
	str	w10, [x9]
	push_handler_frame
	bl	agent_finish_failed	/* records x0 as fin=, returns COMPLETE(EV_HANDLED) */
	b	finish

/* ----------------------------------------------------------------- data */

	.bss
	.balign 16
	.global agent_el, agent_conduit, handler_depth, probe_active, probe_faulted
agent_el:	.word 0
agent_conduit:	.word 0
	.balign 8
handler_depth:	.space 4 * MAX_CPUS
probe_active:	.word 0
probe_faulted:	.word 0
	.balign 16
	.global stack
stack:		.space STACK_SIZE * MAX_CPUS
	.balign 16
handler_stacks:	.space HSTACK_PER_CPU * MAX_CPUS
