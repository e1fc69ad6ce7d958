/*
 * apflab bare-metal guest agent: speaks docs/agent-protocol.md (version 1) on the
 * console UART, makes SMCCC calls through the target's conduit, and runs the SDEI
 * handlers the harness configures. Freestanding: no libc, MMU off.
 *
 * What it reports is what the hardware and the dispatcher did; it decides nothing
 * about conformance (that is the harness's job).
 */
#include "machine.h"
#include "types.h"
#include "uart.h"

#define PROTOCOL_VERSION 1
#define MAX_LINE 512
#define MAX_TOKENS 80
#define MAX_STEPS 24
#define MAX_ARGS 17
#define MAX_HANDLERS 16
#define MAX_RECORDS 64
#define MAX_LANDINGS 4
#define MAX_CPUS 8
#define STACK_SIZE 0x4000

#define FN_VERSION 0xC4000020UL
#define FN_REGISTER 0xC4000021UL
#define FN_ENABLE 0xC4000022UL
#define FN_COMPLETE 0xC4000025UL
#define FN_COMPLETE_AND_RESUME 0xC4000026UL
#define FN_UNREGISTER 0xC4000027UL
#define FN_PE_MASK 0xC400002BUL
#define FN_PE_UNMASK 0xC400002CUL
#define FN_PRIVATE_RESET 0xC4000031UL
#define FN_SHARED_RESET 0xC4000032UL
#define PSCI_VERSION 0x84000000UL
#define PSCI_CPU_ON 0xC4000003UL
#define PSCI_CPU_OFF 0x84000002UL
#define PSCI_AFFINITY_INFO 0xC4000004UL
#define SDEI_DENIED ((u64)-3)
#define SDEI_PENDING ((u64)-5)
#define NOT_SUPPORTED ((u64)-1)
#define DRAIN_ARG 0xD5A10000UL
/* The host-step call (docs/vmm-channel.md): an OEM-service SMC64 ID the host of apflab-vmm
 * serves when it dispatches SDEI. x1 = kind << 32 | PE (kind 1 INJECT, 2 IRQ), x2 = event or
 * INTID, x3 = the x0 to return; it returns x0 = x3 and x1 = the host's status, x2..x17 as
 * they were, so the context an event interrupts there holds the caller's registers (the
 * model's host acts between two instructions). */
#define FN_HOST_STEP 0xC3000AF1UL
#define HOST_INJECT 1UL
#define HOST_IRQ 2UL

extern u32 agent_el, agent_conduit, probe_active, probe_faulted;
extern volatile u32 handler_depth[MAX_CPUS];
extern char vectors_el1[], vectors_el2[], resume_pad_el1[], resume_pad_el2[], sdei_entry[];
extern char stack[], secondary_entry[];
void call_smc(const u64 *in, u64 *out);
void call_hvc(const u64 *in, u64 *out);

enum step_kind { STEP_CALL, STEP_INJECT, STEP_IRQ };

struct step {
	u8 kind;
	u8 nargs;
	u64 fid;
	u64 args[MAX_ARGS];
};

struct handler {
	u8 used, once, resume, has_addr;
	u64 arg;
	u64 value; /* COMPLETE status or resume address */
	u32 runs;
	int nsteps;
	struct step steps[MAX_STEPS];
};

struct record {
	u64 stamp; /* CNTVCT at entry: orders records of all PEs */
	u32 pe, depth;
	u64 x[4];
	u64 pstate;
	int nresults;
	u64 results[MAX_STEPS];
	int has_fin, failures;
	u64 fin;
	int landed;
	u64 lpc, lelr, lspsr, lpstate;
};

struct finish {
	u64 fid;
	u64 arg;
};

/* What a call leaves: x0..x17, the return PC, DAIF, NZCV, SPSel (start.S), then read in C
 * right after it: ELR_ELx, SPSR_ELx and the PSTATE bits beyond those (PAN, UAO, DIT, SSBS). */
#define OUT_WORDS 25
#define OUT_ELR 22
#define OUT_SPSR 23
#define OUT_PBITS 24

/* PSTATE bits at their SPSR positions (Arm ARM SPSR_ELx). */
#define PSTATE_SSBS (1UL << 12)
#define PSTATE_PAN (1UL << 22)
#define PSTATE_UAO (1UL << 23)
#define PSTATE_DIT (1UL << 24)

/* A call the boot CPU hands to another PE: it polls its box (MMU off: all Device memory). */
struct mailbox {
	volatile u32 busy;
	u64 in[18];
	u64 out[OUT_WORDS];
};

static struct handler handlers[MAX_HANDLERS];
/* Everything a handler touches is per PE: PEs take events at the same time. */
static struct record records[MAX_CPUS][MAX_RECORDS];
static volatile int nrecords[MAX_CPUS];
static int records_dropped[MAX_CPUS];
static int current_record[MAX_CPUS][4];
static int landings[MAX_CPUS][MAX_LANDINGS], nlandings[MAX_CPUS];
static u64 last_regs[MAX_CPUS][OUT_WORDS]; /* x0..x17, pc, daif, nzcv, spsel, elr, spsr, pstate bits */
static int host_steps; /* the console says the host serves the host-step call */
static u32 unexpected_irqs;
static struct mailbox mbox[MAX_CPUS];
static volatile u32 cpu_online[MAX_CPUS];
static int ncpus = 1, selected;
static char line[MAX_LINE + 2];
static char *tokens[MAX_TOKENS];

/* ------------------------------------------------------------------ output */

static void puts_(const char *s)
{
	while (*s)
		uart_putc(*s++);
}

static void put_hex(u64 v)
{
	char buf[17];
	int i = 16;
	buf[i] = 0;
	do {
		buf[--i] = "0123456789abcdef"[v & 0xf];
		v >>= 4;
	} while (v);
	puts_(&buf[i]);
}

static void put_kv(const char *key, u64 v)
{
	uart_putc(' ');
	puts_(key);
	uart_putc('=');
	put_hex(v);
}

static void reply_err(const char *why)
{
	puts_("ERR ");
	puts_(why);
	uart_putc('\n');
}

/* ------------------------------------------------------------------- state */

static u64 compose_pstate(u64 daif, u64 nzcv, u64 currentel, u64 spsel)
{
	return (nzcv & 0xF0000000UL) | (daif & 0x3C0UL) | (currentel & 0xCUL) | (spsel & 1UL);
}

static u64 read_mpidr(void)
{
	u64 v;
	__asm__ volatile("mrs %0, mpidr_el1" : "=r"(v));
	return v;
}

static int cpu(void)
{
	return (int)(read_mpidr() & (MAX_CPUS - 1));
}

static u64 counter(void)
{
	u64 v;
	__asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(v));
	return v;
}

static u64 counter_freq(void)
{
	u64 v;
	__asm__ volatile("mrs %0, cntfrq_el0" : "=r"(v));
	return v ? v : 62500000;
}

/* Which of PAN, UAO, DIT, SSBS this PE implements (ID_AA64MMFR1/MMFR2/PFR0/PFR1). */
static u64 pstate_bits_implemented(void)
{
	u64 mmfr1, mmfr2, pfr0, pfr1, bits = 0;
	__asm__ volatile("mrs %0, id_aa64mmfr1_el1" : "=r"(mmfr1));
	__asm__ volatile("mrs %0, s3_0_c0_c7_2" : "=r"(mmfr2)); /* ID_AA64MMFR2_EL1 */
	__asm__ volatile("mrs %0, id_aa64pfr0_el1" : "=r"(pfr0));
	__asm__ volatile("mrs %0, s3_0_c0_c4_1" : "=r"(pfr1)); /* ID_AA64PFR1_EL1 */
	if ((mmfr1 >> 20) & 0xf)
		bits |= PSTATE_PAN;
	if ((mmfr2 >> 4) & 0xf)
		bits |= PSTATE_UAO;
	if ((pfr0 >> 48) & 0xf)
		bits |= PSTATE_DIT;
	if (((pfr1 >> 4) & 0xf) >= 2) /* FEAT_SSBS2: the MSR/MRS SSBS forms */
		bits |= PSTATE_SSBS;
	return bits;
}

static u64 pstate_impl;

/* PAN, UAO, DIT, SSBS as the PE has them now (those it implements). */
static u64 read_pstate_bits(void)
{
	u64 v, bits = 0;
	if (pstate_impl & PSTATE_PAN) {
		__asm__ volatile("mrs %0, s3_0_c4_c2_3" : "=r"(v)); /* PAN */
		bits |= v & PSTATE_PAN;
	}
	if (pstate_impl & PSTATE_UAO) {
		__asm__ volatile("mrs %0, s3_0_c4_c2_4" : "=r"(v)); /* UAO */
		bits |= v & PSTATE_UAO;
	}
	if (pstate_impl & PSTATE_DIT) {
		__asm__ volatile("mrs %0, s3_3_c4_c2_5" : "=r"(v)); /* DIT */
		bits |= v & PSTATE_DIT;
	}
	if (pstate_impl & PSTATE_SSBS) {
		__asm__ volatile("mrs %0, s3_3_c4_c2_6" : "=r"(v)); /* SSBS */
		bits |= v & PSTATE_SSBS;
	}
	return bits;
}

static void write_pstate_bits(u64 bits)
{
	if (pstate_impl & PSTATE_PAN)
		__asm__ volatile("msr s3_0_c4_c2_3, %0" ::"r"(bits & PSTATE_PAN));
	if (pstate_impl & PSTATE_UAO)
		__asm__ volatile("msr s3_0_c4_c2_4, %0" ::"r"(bits & PSTATE_UAO));
	if (pstate_impl & PSTATE_DIT)
		__asm__ volatile("msr s3_3_c4_c2_5, %0" ::"r"(bits & PSTATE_DIT));
	if (pstate_impl & PSTATE_SSBS)
		__asm__ volatile("msr s3_3_c4_c2_6, %0" ::"r"(bits & PSTATE_SSBS));
}

static void read_elr_spsr(u64 *elr, u64 *spsr)
{
	if (agent_el == 2) {
		__asm__ volatile("mrs %0, elr_el2" : "=r"(*elr));
		__asm__ volatile("mrs %0, spsr_el2" : "=r"(*spsr));
	} else {
		__asm__ volatile("mrs %0, elr_el1" : "=r"(*elr));
		__asm__ volatile("mrs %0, spsr_el1" : "=r"(*spsr));
	}
}

static void write_elr_spsr(u64 elr, u64 spsr)
{
	if (agent_el == 2) {
		__asm__ volatile("msr elr_el2, %0" ::"r"(elr));
		__asm__ volatile("msr spsr_el2, %0" ::"r"(spsr));
	} else {
		__asm__ volatile("msr elr_el1, %0" ::"r"(elr));
		__asm__ volatile("msr spsr_el1, %0" ::"r"(spsr));
	}
}

/* SCTLR_ELx.SPAN = 1 (PAN kept on exception entry) and DSSBS = 0 (SSBS cleared): the
 * configuration the suites' expectations of a handler's PSTATE assume. */
static void set_exception_entry_config(void)
{
	u64 v;
	if (agent_el == 2) {
		__asm__ volatile("mrs %0, sctlr_el2" : "=r"(v));
		v = (v | (1UL << 23)) & ~(1UL << 44);
		__asm__ volatile("msr sctlr_el2, %0; isb" ::"r"(v));
	} else {
		__asm__ volatile("mrs %0, sctlr_el1" : "=r"(v));
		v = (v | (1UL << 23)) & ~(1UL << 44);
		__asm__ volatile("msr sctlr_el1, %0; isb" ::"r"(v));
	}
}

static void conduit_call(const u64 *in, u64 *out)
{
	if (agent_conduit)
		call_hvc(in, out);
	else
		call_smc(in, out);
	read_elr_spsr(&out[OUT_ELR], &out[OUT_SPSR]);
	out[OUT_PBITS] = read_pstate_bits();
}

#define MBOX_CALL 1
#define MBOX_PING 2
#define MBOX_OFF 3
#define MBOX_RAISE 4

/* Bound on waiting for another PE to take and finish a call (counter ticks set at start). */
static u64 pe_call_ticks;
/* Which PEs sleep in mach_sleep() (IRQ masked) rather than spin on WFE. */
static volatile u32 cpu_sleeps[MAX_CPUS];

/* Wait until ``*flag == want``, at most until ``deadline`` (counter ticks); 1 if it came.
 * Yields while it waits: under QEMU's single-threaded TCG the other PEs run only then. */
static int wait_for(volatile u32 *flag, u32 want, u64 deadline)
{
	while (*flag != want) {
		if (counter() > deadline)
			return 0;
		__asm__ volatile("yield");
	}
	return 1;
}

/* Hand PE ``c`` a mailbox request (its in[] already filled) and wake it. */
static void post(int c, u32 kind)
{
	__asm__ volatile("dsb sy" ::: "memory");
	mbox[c].busy = kind;
	__asm__ volatile("dsb sy; sev" ::: "memory");
	if (cpu_sleeps[c])
		mach_wake(c);
}

/* Raise ``intid`` on this PE with x0..x17 = ``regs`` (machine.h): 0, or NOT_SUPPORTED. */
static u64 raise_here(u32 intid, const u64 *regs)
{
	struct pulse p;
	if (trig_pulse(intid, &p))
		return NOT_SUPPORTED;
	pulse_with_regs(regs, &p);
	return 0;
}

/* Run a call on PE ``c``: the boot CPU directly, others through their mailbox. */
static int call_on(int c, const u64 *in, u64 *out)
{
	if (c == 0) {
		conduit_call(in, out);
		return 0;
	}
	struct mailbox *m = &mbox[c];
	for (int i = 0; i < 18; i++)
		m->in[i] = in[i];
	post(c, MBOX_CALL);
	if (!wait_for(&m->busy, 0, counter() + pe_call_ticks))
		return -1;
	for (int i = 0; i < OUT_WORDS; i++)
		out[i] = m->out[i];
	return 0;
}

static u64 simple_call_on(int c, u64 fid, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5)
{
	u64 in[18] = {fid, a1, a2, a3, a4, a5};
	u64 out[OUT_WORDS];
	if (call_on(c, in, out))
		return NOT_SUPPORTED;
	return out[0];
}

static u64 simple_call(u64 fid, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5)
{
	return simple_call_on(0, fid, a1, a2, a3, a4, a5);
}

/* Other PEs take events asynchronously. A PE answers a ping from its loop only, so it has
 * taken whatever interrupt was already pending for it (taken at its next instruction) and
 * finished the handler first: after a ping round, a reply carries every entry the request
 * caused. Bounded: a PE that does not answer is reported, not waited for. */
static void wait_quiet(void)
{
	u64 deadline = counter() + pe_call_ticks;
	for (int c = 1; c < ncpus; c++)
		post(c, MBOX_PING);
	for (int c = 1; c < ncpus; c++) {
		if (!wait_for(&mbox[c].busy, 0, deadline)) {
			puts_("NOTE PE ");
			put_hex((u64)c);
			puts_(" did not answer a ping\n");
		}
	}
}

void secondary_loop(void)
{
	int c = cpu();
	for (;;) {
		while (!mbox[c].busy) {
			if (cpu_sleeps[c])
				mach_sleep();
			else
				__asm__ volatile("wfe");
		}
		if (mbox[c].busy == MBOX_PING) {
			__asm__ volatile("dsb sy" ::: "memory");
			mbox[c].busy = 0;
			continue;
		}
		if (mbox[c].busy == MBOX_RAISE) {
			mbox[c].out[0] = raise_here((u32)mbox[c].in[0], last_regs[c]);
			__asm__ volatile("dsb sy" ::: "memory");
			mbox[c].busy = 0;
			continue;
		}
		if (mbox[c].busy == MBOX_OFF) {
			u64 in[18] = {PSCI_CPU_OFF}, out[OUT_WORDS];
			cpu_online[c] = 0;
			__asm__ volatile("dsb sy" ::: "memory");
			mbox[c].busy = 0;
			__asm__ volatile("dsb sy; sev" ::: "memory");
			conduit_call(in, out); /* does not return when it succeeds */
			for (;;)
				__asm__ volatile("wfe");
		}
		u64 out[OUT_WORDS];
		conduit_call((const u64 *)mbox[c].in, out);
		for (int i = 0; i < OUT_WORDS; i++) {
			mbox[c].out[i] = out[i];
			last_regs[c][i] = out[i];
		}
		__asm__ volatile("dsb sy" ::: "memory");
		mbox[c].busy = 0;
	}
}

void secondary_main(void)
{
	int c = cpu();
	set_exception_entry_config();
	cpu_sleeps[c] = (u32)mach_pe_init();
	if (cpu_sleeps[c])
		__asm__ volatile("msr daifset, #2"); /* the wake-up SGI only ends a WFI */
	cpu_online[c] = 1;
	secondary_loop();
}

/* PSCI CPU_ON every further PE, then wait (bounded) until each runs the agent's loop. The
 * PEs are those the GIC has redistributors for (firmware may accept CPU_ON for a core the
 * machine lacks: TF-A's qemu platform counts 4 whatever -smp says); without that count,
 * Aff0 = 1, 2, ... are tried one by one until one is refused or does not come up. A PE that
 * does not come up in 2 s is left out with a NOTE, and so are those after it. */
static void start_secondaries(void)
{
	int known = mach_pes();
	int last = known > 0 ? (known < MAX_CPUS ? known : MAX_CPUS) : MAX_CPUS;
	u64 deadline = counter() + 2 * counter_freq();
	for (int c = 1; c < last; c++) {
		if (simple_call(PSCI_CPU_ON, (u64)c, (u64)secondary_entry, 0, 0, 0) != 0) {
			last = c;
			break;
		}
		if (known > 0)
			continue; /* all of them start at once; waited for below */
		if (!wait_for(&cpu_online[c], 1, deadline)) {
			last = c + 1;
			break;
		}
	}
	for (int c = 1; c < last; c++) {
		if (!wait_for(&cpu_online[c], 1, deadline)) {
			puts_("NOTE PE ");
			put_hex((u64)c);
			puts_(" did not come up within 2 s: left out\n");
			break;
		}
		ncpus = c + 1;
	}
}

static u64 resume_pad(void)
{
	return agent_el == 2 ? (u64)resume_pad_el2 : (u64)resume_pad_el1;
}

static u64 vbar(void)
{
	return agent_el == 2 ? (u64)vectors_el2 : (u64)vectors_el1;
}

static struct handler *find_handler(u64 arg)
{
	for (int i = 0; i < MAX_HANDLERS; i++)
		if (handlers[i].used && handlers[i].arg == arg)
			return &handlers[i];
	return NULL;
}

static void clear_cpu(int c)
{
	nrecords[c] = records_dropped[c] = 0;
	nlandings[c] = 0;
	handler_depth[c] = 0;
	for (int i = 0; i < 4; i++)
		current_record[c][i] = -1;
}

static void clear_session(void)
{
	for (int i = 0; i < MAX_HANDLERS; i++)
		handlers[i].used = 0;
	for (int c = 0; c < MAX_CPUS; c++)
		clear_cpu(c);
}

/* ------------------------------------------------------ raising interrupts */

/* Raise ``intid`` as PE ``pe``: a PPI belongs to that PE, which raises it itself (another PE
 * through its mailbox, a bounded wait); an SPI is raised here. 0, or NOT_SUPPORTED when the
 * agent cannot raise it (triggers.h) or PE 0's (which has no mailbox) from another PE. */
static u64 raise_on(int pe, u32 intid, const u64 *regs)
{
	int here = cpu();
	if (pe < 0 || pe >= ncpus)
		return NOT_SUPPORTED;
	if (!trig_private(intid) || pe == here)
		return raise_here(intid, regs);
	if (pe == 0)
		return NOT_SUPPORTED;
	struct mailbox *m = &mbox[pe];
	m->in[0] = intid;
	post(pe, MBOX_RAISE);
	if (!wait_for(&m->busy, 0, counter() + pe_call_ticks))
		return NOT_SUPPORTED;
	return m->out[0];
}

/* ------------------------------------------------------ SDEI handler side */

/* Called from the trampoline with x0..x3 as the dispatcher set them. */
struct finish agent_sdei_handler(u64 event, u64 arg, u64 pc, u64 pstate, u64 daif, u64 nzcv, u64 currentel,
				 u64 spsel)
{
	int c = cpu();
	u32 depth = handler_depth[c];
	int idx = -1;
	struct record *rec = NULL;
	if (nrecords[c] < MAX_RECORDS) {
		idx = nrecords[c];
		rec = &records[c][idx];
		rec->stamp = counter();
		rec->pe = (u32)c;
		rec->depth = depth;
		rec->x[0] = event;
		rec->x[1] = arg;
		rec->x[2] = pc;
		rec->x[3] = pstate;
		rec->pstate = compose_pstate(daif, nzcv, currentel, spsel) | read_pstate_bits();
		rec->nresults = 0;
		rec->has_fin = rec->failures = rec->landed = 0;
		nrecords[c] = idx + 1;
	} else {
		records_dropped[c]++;
	}
	if (depth < 4)
		current_record[c][depth] = idx;

	struct handler *h = find_handler(arg);
	int run_steps = h && !(h->once && h->runs > 0);
	/* The handler's x0..x17 as its steps leave them: an IRQ step raises with these. */
	u64 regs[18] = {event, arg, pc, pstate};
	if (h)
		h->runs++;
	u64 x0 = event; /* x0 as the handler's steps leave it (the host step keeps it) */
	for (int i = 0; run_steps && i < h->nsteps; i++) {
		struct step *s = &h->steps[i];
		u64 result = NOT_SUPPORTED; /* host-side steps where the host has no hook */
		u64 in[18] = {0};
		u64 out[OUT_WORDS];
		if (s->kind == STEP_CALL) {
			in[0] = s->fid;
			for (int a = 0; a < s->nargs; a++)
				in[a + 1] = s->args[a];
			conduit_call(in, out);
			result = x0 = out[0];
			for (int r = 0; r < 18; r++)
				regs[r] = out[r];
		} else if (host_steps) {
			in[0] = FN_HOST_STEP;
			in[1] = (s->kind == STEP_INJECT ? HOST_INJECT : HOST_IRQ) << 32 | (s->args[0] & 0xffffffffUL);
			in[2] = s->args[1];
			in[3] = x0;
			conduit_call(in, out);
			result = out[1];
		} else if (s->kind == STEP_IRQ) {
			result = raise_on((int)s->args[0], (u32)s->args[1], regs);
		}
		if (rec)
			rec->results[rec->nresults++] = result;
	}
	struct finish f = {FN_COMPLETE, h ? h->value : 0};
	if (h && h->resume) {
		f.fid = FN_COMPLETE_AND_RESUME;
		f.arg = h->has_addr ? h->value : resume_pad();
		if (nlandings[c] < MAX_LANDINGS)
			landings[c][nlandings[c]++] = idx;
	}
	return f;
}

static void recover(void);

/* The finishing call returned (failed): record it, then complete plainly. */
struct finish agent_finish_failed(u64 x0)
{
	int c = cpu();
	u32 depth = handler_depth[c];
	int idx = depth < 4 ? current_record[c][depth] : -1;
	struct record *rec = idx >= 0 ? &records[c][idx] : NULL;
	if (nlandings[c] > 0 && landings[c][nlandings[c] - 1] == idx)
		nlandings[c]--;
	if (rec) {
		if (rec->failures++ > 0) {
			reply_err("wedged: the handler cannot complete (EVENT_COMPLETE failed twice)");
			recover();
		}
		if (!rec->has_fin) {
			rec->has_fin = 1;
			rec->fin = x0;
		}
	}
	struct finish f = {FN_COMPLETE, 0};
	return f;
}

static void write_spsr(u64 v)
{
	if (agent_el == 2)
		__asm__ volatile("msr spsr_el2, %0" ::"r"(v));
	else
		__asm__ volatile("msr spsr_el1, %0" ::"r"(v));
}

/* Where COMPLETE_AND_RESUME continued (the landing pad, or the IRQ vector on v4). */
void agent_landing(u64 pc, u64 elr, u64 spsr, u64 daif, u64 nzcv, u64 currentel, u64 spsel)
{
	int c = cpu();
	if (nlandings[c] == 0) {
		/* A real IRQ nobody asked for: return with IRQs masked so it cannot storm. */
		unexpected_irqs++;
		write_spsr(spsr | 0x80);
		return;
	}
	int idx = landings[c][--nlandings[c]];
	if (idx < 0)
		return;
	struct record *rec = &records[c][idx];
	rec->landed = 1;
	rec->lpc = pc;
	rec->lelr = elr;
	rec->lspsr = spsr;
	rec->lpstate = compose_pstate(daif, nzcv, currentel, spsel);
}

/* ------------------------------------------------------------- reporting */

static void print_record(const struct record *r, int seq)
{
	puts_("EV");
	put_kv("seq", (u64)seq);
	put_kv("pe", r->pe);
	put_kv("depth", r->depth);
	put_kv("x0", r->x[0]);
	put_kv("x1", r->x[1]);
	put_kv("x2", r->x[2]);
	put_kv("x3", r->x[3]);
	put_kv("pstate", r->pstate);
	puts_(" results=");
	if (r->nresults == 0)
		uart_putc('-');
	for (int j = 0; j < r->nresults; j++) {
		if (j)
			uart_putc(',');
		put_hex(r->results[j]);
	}
	if (r->has_fin)
		put_kv("fin", r->fin);
	if (r->landed) {
		put_kv("landed", r->lpc);
		put_kv("elr", r->lelr);
		put_kv("spsr", r->lspsr);
		put_kv("lpstate", r->lpstate);
	}
	uart_putc('\n');
}

/* Every PE's handler records, in the order they were entered, then forgotten. */
static void print_records(void)
{
	int next[MAX_CPUS] = {0};
	for (int seq = 0;; seq++) {
		int best = -1;
		for (int c = 0; c < ncpus; c++)
			if (next[c] < nrecords[c] &&
			    (best < 0 || records[c][next[c]].stamp < records[best][next[best]].stamp))
				best = c;
		if (best < 0)
			break;
		print_record(&records[best][next[best]++], seq);
	}
	for (int c = 0; c < ncpus; c++) {
		if (records_dropped[c]) {
			puts_("NOTE dropped ");
			put_hex((u64)records_dropped[c]);
			puts_(" handler records\n");
		}
		nrecords[c] = records_dropped[c] = 0;
	}
}

void agent_loop(void) __attribute__((noreturn));

void secondary_loop(void) __attribute__((noreturn));

/* After a fault: report (boot CPU), forget handler state, back to the loop on a fresh stack. */
static void recover(void)
{
	int c = cpu();
	char *top = stack + (u64)(c + 1) * STACK_SIZE;
	nlandings[c] = 0;
	handler_depth[c] = 0;
	for (int i = 0; i < 4; i++)
		current_record[c][i] = -1;
	if (c != 0) {
		mbox[c].out[0] = NOT_SUPPORTED;
		mbox[c].busy = 0;
		__asm__ volatile("mov sp, %0" ::"r"(top));
		secondary_loop();
	}
	print_records();
	__asm__ volatile("mov sp, %0" ::"r"(top));
	agent_loop();
}

void agent_exception(u64 esr, u64 elr, u64 far, u64 spsr, u64 kind)
{
	if (cpu() != 0)
		recover(); /* only the boot CPU prints; the call on this PE answers NOT_SUPPORTED */
	print_records();
	puts_("ERR exception");
	put_kv("vector", kind);
	put_kv("esr", esr);
	put_kv("elr", elr);
	put_kv("far", far);
	put_kv("spsr", spsr);
	uart_putc('\n');
	recover();
}

/* ------------------------------------------------------------- parsing */

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* 0 on success; otherwise the ERR reason. */
static const char *parse_hex(const char *s, u64 *out)
{
	u64 v = 0;
	int n = 0;
	for (; *s; s++, n++) {
		if (!is_hex(*s))
			return "not a hex number";
		if (n >= 16)
			return "number over 64 bits";
		char c = *s;
		v = (v << 4) | (u64)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	if (n == 0)
		return "not a hex number";
	*out = v;
	return 0;
}

static int streq_ci(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if ((*a | 0x20) != (*b | 0x20))
			return 0;
	return *a == *b;
}

static int tokenize(char *s)
{
	int n = 0;
	while (*s) {
		while (*s == ' ')
			s++;
		if (!*s)
			break;
		if (n == MAX_TOKENS)
			return -1;
		if (*s == ';') {
			tokens[n++] = ";";
			s++;
			continue;
		}
		tokens[n++] = s;
		while (*s && *s != ' ' && *s != ';')
			s++;
		if (*s == ';') {
			/* split "a;" into "a" ";" */
			*s = 0;
			if (n == MAX_TOKENS)
				return -1;
			tokens[n++] = ";";
			s++;
			continue;
		}
		if (*s)
			*s++ = 0;
	}
	return n;
}

/* ------------------------------------------------------------- commands */

/* HELLO's irqs=: the interrupts IRQ can raise (triggers.h); how many. */
static int put_irqs(void)
{
	u32 ids[TRIG_MAX];
	int n = trig_list(ids, TRIG_MAX);
	if (n == 0)
		return 0;
	puts_(" irqs=");
	for (int i = 0; i < n; i++) {
		if (i)
			uart_putc(',');
		put_hex(ids[i]);
	}
	return n;
}

static void cmd_hello(void)
{
	puts_("HELLO 1 agent=baremetal conduit=");
	puts_(agent_conduit ? "hvc" : "smc");
	put_kv("el", agent_el);
	put_kv("pes", (u64)ncpus);
	puts_(" mpidr=");
	for (int c = 0; c < ncpus; c++) {
		if (c)
			uart_putc(',');
		put_hex(((read_mpidr() & 0xff00ffff00UL) | (u64)c) | 0x80000000UL);
	}
	puts_(" profile=-");
	put_kv("ep", (u64)sdei_entry);
	put_kv("resume", resume_pad());
	put_kv("vbar", vbar());
	int raisable = put_irqs();
	puts_(ncpus > 1 ? " caps=context,multi-pe,pe-power,reset" : " caps=context,reset");
	if (host_steps)
		puts_(",inject,in-handler-inject"); /* the host raises events and lines (HOST_IRQ) */
	else if (raisable)
		puts_(",in-handler-inject,irq"); /* the agent raises the lines of irqs= itself */
	uart_putc('\n');
}

/* tokens[first..first+count-1] as hex numbers into out[]; 0 (and the ERR sent) if one is not. */
static int parse_words(int first, int count, u64 *out)
{
	for (int i = 0; i < count; i++) {
		const char *why = parse_hex(tokens[first + i], &out[i]);
		if (why) {
			reply_err(why);
			return 0;
		}
	}
	return 1;
}

/* Run in[] (x0..x17) on the selected PE and print the handler records it caused; on PE 0
 * keep the registers it returned for REGS. 1 when it finished, else 0 with the ERR ``late``
 * sent (after the records). */
static int call_selected(const u64 *in, u64 *out, const char *late)
{
	int unfinished = call_on(selected, in, out);
	if (!unfinished && selected == 0)
		for (int i = 0; i < OUT_WORDS; i++)
			last_regs[0][i] = out[i];
	wait_quiet();
	print_records();
	if (unfinished)
		reply_err(late);
	return !unfinished;
}

static void cmd_call(int n)
{
	u64 in[18] = {0};
	u64 out[OUT_WORDS];
	if (n < 2) {
		reply_err("CALL needs a function ID");
		return;
	}
	if (n - 2 > MAX_ARGS) {
		reply_err("CALL takes at most 17 arguments (x1..x17)");
		return;
	}
	if (!parse_words(1, n - 1, in) || !call_selected(in, out, "PE did not finish the call in time"))
		return;
	puts_("OK");
	for (int i = 0; i < 4; i++) {
		uart_putc(' ');
		put_hex(out[i]);
	}
	uart_putc('\n');
}

/* IRQ <pe> <intid>: raise the interrupt as PE <pe> (raise_on), report what it caused. */
static void cmd_irq(int n)
{
	u64 v[2];
	if (n != 3) {
		reply_err("IRQ takes <pe> <intid>, got a different number of argument(s)");
		return;
	}
	if (!parse_words(1, 2, v))
		return;
	if (v[0] >= (u64)ncpus) {
		reply_err("no such PE");
		return;
	}
	u64 status = raise_on((int)v[0], (u32)v[1], last_regs[0]);
	wait_quiet();
	print_records();
	if (status) {
		reply_err("not supported: the agent cannot raise this interrupt on that PE (HELLO irqs=)");
		return;
	}
	puts_("OK 0 0 0 0\n");
}

/* INJECT/IRQ <pe> <n> where the host serves host steps: the selected PE makes the host-step
 * call with the registers of its last call (x0 kept, x4..x17 as they were), so an event the
 * host makes pending for it interrupts that context, as on the model, where the PE idles with
 * its last call's registers; another PE is kicked out of KVM_RUN by the host. */
static void cmd_host_step(int n, u64 kind)
{
	u64 v[2]; /* pe, event or INTID */
	if (n != 3) {
		reply_err("INJECT/IRQ take 2 argument(s)");
		return;
	}
	if (!parse_words(1, 2, v))
		return;
	u64 in[18], out[OUT_WORDS];
	u64 *last = last_regs[selected];
	for (int i = 0; i < 18; i++)
		in[i] = last[i];
	in[0] = FN_HOST_STEP;
	in[1] = kind << 32 | (v[0] & 0xffffffffUL);
	in[2] = v[1];
	in[3] = last[0];
	if (!call_selected(in, out, "PE did not finish the host step in time"))
		return;
	puts_("OK ");
	put_hex(out[1]); /* the host's status */
	puts_(" 0 0 0\n");
}

static void cmd_regs(void)
{
	u64 el = (u64)agent_el << 2;
	puts_("REGS ");
	u64 *r = last_regs[selected];
	put_hex(r[18]);
	uart_putc(' ');
	put_hex(compose_pstate(r[19], r[20], el, r[21]) | r[OUT_PBITS]);
	for (int i = 0; i < 18; i++) {
		uart_putc(' ');
		put_hex(r[i]);
	}
	uart_putc(' ');
	put_hex(r[OUT_ELR]);
	uart_putc(' ');
	put_hex(r[OUT_SPSR]);
	uart_putc('\n');
}

/* CTX <pstate bits> <elr> <spsr>: the main context (PE 0) runs with these from now on. */
static void cmd_ctx(int n)
{
	u64 v[3];
	if (n != 4) {
		reply_err("CTX takes <pstate_bits> <elr> <spsr>");
		return;
	}
	if (!parse_words(1, 3, v))
		return;
	if (selected != 0) {
		reply_err("not supported: CTX sets PE 0's context only");
		return;
	}
	if (v[0] & ~pstate_impl) {
		reply_err("not supported: this PE lacks one of the PSTATE bits (PAN, UAO, DIT, SSBS)");
		return;
	}
	write_pstate_bits(v[0]);
	write_elr_spsr(v[1], v[2]);
	puts_("OK\n");
}

/* PSCI CYCLE <pe>: PE <pe> calls CPU_OFF, PE 0 turns it on again with CPU_ON (bounded waits). */
static void cmd_psci(int n)
{
	u64 pe;
	if (n < 2 || !streq_ci(tokens[1], "CYCLE")) {
		reply_err("not supported: PSCI takes CYCLE <pe> here (no system reset)");
		return;
	}
	const char *why = n == 3 ? parse_hex(tokens[2], &pe) : "PSCI CYCLE takes <pe>";
	if (why) {
		reply_err(why);
		return;
	}
	if (pe == 0 || pe >= (u64)ncpus) {
		reply_err("no such PE to cycle (PE 0 turns the others off and on)");
		return;
	}
	int c = (int)pe;
	u64 deadline = counter() + pe_call_ticks;
	post(c, MBOX_OFF);
	wait_for(&cpu_online[c], 0, deadline);
	while (simple_call(PSCI_AFFINITY_INFO, pe, 0, 0, 0, 0) != 1 && counter() < deadline)
		__asm__ volatile("yield"); /* 1: OFF */
	if (cpu_online[c] || simple_call(PSCI_AFFINITY_INFO, pe, 0, 0, 0, 0) != 1) {
		reply_err("the PE did not turn off within 1 s");
		return;
	}
	clear_cpu(c);
	for (int i = 0; i < OUT_WORDS; i++)
		last_regs[c][i] = 0;
	if (simple_call(PSCI_CPU_ON, pe, (u64)secondary_entry, 0, 0, 0) != 0) {
		reply_err("CPU_ON refused");
		return;
	}
	if (!wait_for(&cpu_online[c], 1, counter() + pe_call_ticks)) {
		reply_err("the PE did not come back within 1 s");
		return;
	}
	puts_("OK\n");
}

static void cmd_handler(int n)
{
	/* HANDLER <arg> COMPLETE <status>|RESUME <addr|-> [ONCE] [; step]... */
	struct handler h = {0};
	int i = 4;
	if (n < 4) {
		reply_err("HANDLER <arg> COMPLETE <status> [ONCE] | HANDLER <arg> RESUME <address|-> [ONCE]");
		return;
	}
	const char *why = parse_hex(tokens[1], &h.arg);
	if (why) {
		reply_err(why);
		return;
	}
	if (streq_ci(tokens[2], "COMPLETE")) {
		why = parse_hex(tokens[3], &h.value);
	} else if (streq_ci(tokens[2], "RESUME")) {
		h.resume = 1;
		if (!(tokens[3][0] == '-' && tokens[3][1] == 0)) {
			h.has_addr = 1;
			why = parse_hex(tokens[3], &h.value);
		}
	} else {
		why = "a handler finishes with COMPLETE or RESUME";
	}
	if (!why && i < n && streq_ci(tokens[i], "ONCE")) {
		h.once = 1;
		i++;
	}
	while (!why && i < n) {
		if (tokens[i][0] != ';') {
			why = "handler steps are separated by ';'";
			break;
		}
		i++;
		int start = i;
		while (i < n && tokens[i][0] != ';')
			i++;
		int len = i - start;
		if (len == 0) {
			why = "empty handler step";
			break;
		}
		if (h.nsteps == MAX_STEPS) {
			why = "a handler makes at most 24 calls";
			break;
		}
		struct step *s = &h.steps[h.nsteps++];
		int first = start;
		if (streq_ci(tokens[start], "INJECT") || streq_ci(tokens[start], "IRQ")) {
			s->kind = streq_ci(tokens[start], "INJECT") ? STEP_INJECT : STEP_IRQ;
			if (len != 3) {
				why = "INJECT/IRQ steps take 2 arguments";
				break;
			}
			first = start + 1;
		} else {
			s->kind = STEP_CALL;
			if (len - 1 > MAX_ARGS) {
				why = "a call takes at most 17 arguments";
				break;
			}
			why = parse_hex(tokens[start], &s->fid);
			first = start + 1;
		}
		for (int a = first; !why && a < i; a++)
			why = parse_hex(tokens[a], &s->args[s->nargs++]);
	}
	if (why) {
		reply_err(why);
		return;
	}
	struct handler *slot = find_handler(h.arg);
	for (int k = 0; !slot && k < MAX_HANDLERS; k++)
		if (!handlers[k].used)
			slot = &handlers[k];
	if (!slot) {
		reply_err("handler table full (16 handlers)");
		return;
	}
	h.used = 1;
	*slot = h;
	puts_("OK\n");
}

static void cmd_reset(void)
{
	/* Back to the power-on SDEI state on every PE: nothing registered, bindings released, masked. */
	int denied = 0;
	write_pstate_bits(0); /* and PE 0's context without the bits a CTX planted */
	for (int c = 0; c < ncpus; c++) {
		simple_call_on(c, FN_PE_MASK, 0, 0, 0, 0, 0);
		denied |= simple_call_on(c, FN_PRIVATE_RESET, 0, 0, 0, 0, 0) == SDEI_DENIED;
	}
	denied |= simple_call(FN_SHARED_RESET, 0, 0, 0, 0, 0) == SDEI_DENIED;
	wait_quiet();
	if (denied) {
		clear_session();
		reply_err("reset denied: an SDEI handler is still running");
		return;
	}
	/* A signalled event 0 may still be pending in the interrupt controller: let it run out.
	 * Not where the host dispatches SDEI (host_steps): its state is all in the dispatcher,
	 * which the resets above cleared. */
	clear_session();
	for (int c = 0; c < ncpus && !host_steps; c++) {
		if (simple_call_on(c, FN_REGISTER, 0, (u64)sdei_entry, DRAIN_ARG, 0, 0) == 0) {
			simple_call_on(c, FN_ENABLE, 0, 0, 0, 0, 0);
			simple_call_on(c, FN_PE_UNMASK, 0, 0, 0, 0, 0);
			simple_call_on(c, FN_PE_MASK, 0, 0, 0, 0, 0);
			simple_call_on(c, FN_UNREGISTER, 0, 0, 0, 0, 0);
		}
	}
	wait_quiet();
	clear_session();
	for (int c = 0; c < MAX_CPUS; c++)
		for (int i = 0; i < OUT_WORDS; i++)
			last_regs[c][i] = 0;
	selected = 0;
	puts_("OK\n");
}

static void dispatch_line(void)
{
	int n = tokenize(line);
	if (n < 0) {
		reply_err("too many tokens");
		return;
	}
	if (n == 0)
		return;
	const char *c = tokens[0];
	if (streq_ci(c, "HELLO")) {
		if (n != 1)
			reply_err("HELLO takes 0 argument(s)");
		else
			cmd_hello();
	} else if (streq_ci(c, "CALL")) {
		cmd_call(n);
	} else if (streq_ci(c, "REGS")) {
		cmd_regs();
	} else if (streq_ci(c, "HANDLER")) {
		cmd_handler(n);
	} else if (streq_ci(c, "RESET")) {
		cmd_reset();
	} else if (streq_ci(c, "CTX")) {
		cmd_ctx(n);
	} else if (streq_ci(c, "PSCI")) {
		cmd_psci(n);
	} else if (streq_ci(c, "PE")) {
		u64 pe;
		const char *why = n == 2 ? parse_hex(tokens[1], &pe) : "PE takes 1 argument(s)";
		if (why)
			reply_err(why);
		else if (pe >= (u64)ncpus)
			reply_err("no such PE");
		else {
			selected = (int)pe;
			puts_("OK\n");
		}
	} else if ((streq_ci(c, "INJECT") || streq_ci(c, "IRQ")) && host_steps) {
		cmd_host_step(n, streq_ci(c, "INJECT") ? HOST_INJECT : HOST_IRQ);
	} else if (streq_ci(c, "IRQ")) {
		cmd_irq(n);
	} else if (streq_ci(c, "INJECT")) {
		reply_err("not supported: this target has no host-side injection");
	} else {
		reply_err("unknown command");
	}
}

void agent_loop(void)
{
	for (;;) {
		int len = 0, bad = 0, overlong = 0;
		for (;;) {
			int c = uart_getc();
			if (c == '\n')
				break;
			if (c == '\r')
				continue;
			if (len >= MAX_LINE) {
				overlong = 1;
				continue;
			}
			if (c < 0x20 || c > 0x7e)
				bad = 1;
			line[len++] = (char)c;
		}
		line[len] = 0;
		if (overlong)
			reply_err("line too long (more than 512 characters)");
		else if (bad)
			reply_err("line has non-printable or non-ASCII characters");
		else
			dispatch_line();
	}
}

static void probe_conduit(void)
{
	/* At EL2 there is no hypervisor above us: SMC. At EL1 try HVC, fall back to SMC. */
	if (agent_el == 2) {
		agent_conduit = 0;
		return;
	}
	agent_conduit = 1;
	probe_faulted = 0;
	probe_active = 1;
	simple_call(PSCI_VERSION, 0, 0, 0, 0, 0);
	probe_active = 0;
	if (probe_faulted)
		agent_conduit = 0;
}

void agent_main(void)
{
	uart_init();
	host_steps = uart_host_steps();
	pstate_impl = pstate_bits_implemented();
	set_exception_entry_config();
	clear_session();
	probe_conduit();
	pe_call_ticks = counter_freq(); /* 1 s */
	mach_init(agent_el);
	start_secondaries();
	puts_("\nAPFLAB-AGENT READY protocol=1\n");
	agent_loop();
}

/* gcc may emit these for struct copies even when freestanding. */
void *memset(void *d, int c, unsigned long n)
{
	u8 *p = d;
	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	u8 *p = d;
	const u8 *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}
