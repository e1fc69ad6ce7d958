/*
 * QEMU's virt machine (machine.h). The PEs: one GICv3 redistributor each (GICR_TYPER.Last
 * marks the last), woken from WFI by SGI 1 (Group 1 non-secure, the only interrupt a
 * sleeping PE has enabled; its IRQ stays masked, so the SGI only ends the WFI).
 *
 * The interrupts the agent can raise, found at boot:
 *
 *   PPI 23  the PMU overflow interrupt: PMOVSSET_EL0 sets the cycle counter's overflow flag
 *   PPI 26  the EL2 physical timer (at EL2 only)
 *   PPI 27  the EL1 virtual timer, PPI 30 the EL1 physical timer: compare value 0, enabled
 *   SPI 34  the PL031 RTC at 0x09010000: its match interrupt, unmasked while RIS is set
 *   SPI 35..38  the INTA line of an `edu` PCIe device (QEMU's test device, -device edu)
 *           on bus 0: slot s raises 35 + s % 4 (virt swizzles INTx by slot), through its
 *           raise (0x60) and acknowledge (0x64) registers
 *
 * Each source goes high and low again at once; its interrupt is configured edge-triggered
 * (GICD_ICFGR, GICR_ICFGR1) while it is still Group 1 non-secure, so the GIC latches one
 * trigger per raise whoever owns the interrupt afterwards (TF-A takes a bound one to
 * Group 0 at EVENT_REGISTER and keeps its configuration). Addresses are virt's memory map;
 * anything that is not there (a probe faults or reads the wrong ID) is left out.
 */
#include "machine.h"

#define GICD_BASE 0x08000000UL
#define GICD_ICFGR 0x0C00
#define GICD_PIDR2 0xFFE8
#define GICR_BASE 0x080A0000UL
#define GICR_STRIDE 0x20000UL
#define GICR_TYPER 0x08
#define GICR_TYPER_LAST (1u << 4)
#define GICR_SGI_FRAME 0x10000
#define GICR_IGROUPR0 (GICR_SGI_FRAME + 0x0080)
#define GICR_ISENABLER0 (GICR_SGI_FRAME + 0x0100)
#define GICR_ICFGR1 (GICR_SGI_FRAME + 0x0C04)
#define WAKE_SGI 1
#define MAX_REDIST 64

#define RTC_BASE 0x09010000UL
#define RTC_DR 0x00
#define RTC_MR 0x04
#define RTC_IMSC 0x10
#define RTC_RIS 0x14
#define RTC_PERIPHID0 0xFE0
#define RTC_PERIPHID1 0xFE4

#define ECAM_HIGH 0x4010000000UL
#define ECAM_LOW 0x3F000000UL
#define PCI_MMIO 0x10000000UL
#define EDU_ID 0x11E81234u /* device 0x11e8, vendor 0x1234 */
#define EDU_RAISE 0x60
#define EDU_ACK 0x64

#define PPI_PMU 23
#define PPI_HYP_TIMER 26
#define PPI_VIRT_TIMER 27
#define PPI_PHYS_TIMER 30
#define SPI_RTC 34
#define SPI_PCIE_INTA 35

enum kind { PMU, HYP_TIMER, VIRT_TIMER, PHYS_TIMER, RTC, EDU };

struct source {
	u32 intid;
	u8 kind;
	u64 base; /* EDU: its BAR 0 */
};

/* The faulting-probe flags of start.S's vectors: an abort while probe_active is set
 * skips the access and sets probe_faulted. */
extern volatile u32 probe_active, probe_faulted;

static struct source sources[TRIG_MAX];
static int nsources, gic_v3;
static u32 el_seen;

static inline u32 rd32(u64 a) { return *(volatile u32 *)a; }
static inline void wr32(u64 a, u32 v) { *(volatile u32 *)a = v; }

/* A 32-bit read of an address that may not exist on this machine: 0 if it faulted. */
static int probe32(u64 a, u32 *out)
{
	u32 v = 0;
	probe_faulted = 0;
	probe_active = 1;
	__asm__ volatile("dsb sy; ldr %w0, [%1]; dsb sy" : "+r"(v) : "r"(a) : "memory");
	probe_active = 0;
	*out = v;
	return !probe_faulted;
}

static void add(u32 intid, u8 kind, u64 base)
{
	if (nsources == TRIG_MAX)
		return;
	for (int i = 0; i < nsources; i++)
		if (sources[i].intid == intid)
			return; /* one source per line */
	int i = nsources++;
	while (i > 0 && sources[i - 1].intid > intid) {
		sources[i] = sources[i - 1];
		i--;
	}
	sources[i].intid = intid;
	sources[i].kind = kind;
	sources[i].base = base;
}

static void drop(int i)
{
	for (; i + 1 < nsources; i++)
		sources[i] = sources[i + 1];
	nsources--;
}

/* ------------------------------------------------------------- the GIC */

static u32 my_affinity(void)
{
	u64 m;
	__asm__ volatile("mrs %0, mpidr_el1" : "=r"(m));
	return (u32)(((m >> 32) & 0xff) << 24 | (m & 0xffffff));
}

/* This PE's redistributor (the frame whose GICR_TYPER names its affinity), or 0. */
static u64 my_redistributor(void)
{
	u32 aff = my_affinity();
	for (int i = 0; gic_v3 && i < MAX_REDIST; i++) {
		u64 frame = GICR_BASE + (u64)i * GICR_STRIDE;
		if (rd32(frame + GICR_TYPER + 4) == aff)
			return frame;
		if (rd32(frame + GICR_TYPER) & GICR_TYPER_LAST)
			break;
	}
	return 0;
}

/* Make the 2-bit Int_config field of ``intid`` in the ICFGR at ``reg`` edge (0b10); 1 if it reads back so. */
static int set_edge(u64 reg, u32 intid)
{
	u32 bit = 1u << (2 * (intid % 16) + 1);
	wr32(reg, rd32(reg) | bit);
	return (rd32(reg) & bit) != 0;
}

int mach_pes(void)
{
	int n = 0;
	for (int i = 0; gic_v3 && i < MAX_REDIST; i++) {
		n++;
		if (rd32(GICR_BASE + (u64)i * GICR_STRIDE + GICR_TYPER) & GICR_TYPER_LAST)
			break;
	}
	return n;
}

/* ------------------------------------------------------------- the devices */

static int pmu_present(void)
{
	u64 dfr0;
	__asm__ volatile("mrs %0, id_aa64dfr0_el1" : "=r"(dfr0));
	u64 ver = (dfr0 >> 8) & 0xf;
	return ver != 0 && ver != 0xf;
}

/* The RTC's raw interrupt status latched (match register = the count): it then stays set,
 * and the line is raised by unmasking it. */
static int rtc_latch(void)
{
	for (int tries = 0; tries < 4 && !(rd32(RTC_BASE + RTC_RIS) & 1); tries++)
		wr32(RTC_BASE + RTC_MR, rd32(RTC_BASE + RTC_DR));
	return rd32(RTC_BASE + RTC_RIS) & 1;
}

static void find_rtc(void)
{
	u32 id0, id1;
	if (!probe32(RTC_BASE + RTC_PERIPHID0, &id0) || !probe32(RTC_BASE + RTC_PERIPHID1, &id1))
		return;
	if (id0 != 0x31 || (id1 & 0xff) != 0x10)
		return;
	wr32(RTC_BASE + RTC_IMSC, 0);
	if (rtc_latch())
		add(SPI_RTC, RTC, RTC_BASE);
}

/* edu devices on PCIe bus 0: each gets a 1 MiB window for BAR 0 and memory decoding. */
static void find_edus(void)
{
	u64 ecam = ECAM_HIGH;
	u32 id;
	if (!probe32(ecam, &id) || id == 0xffffffffu) {
		ecam = ECAM_LOW;
		if (!probe32(ecam, &id) || id == 0xffffffffu)
			return;
	}
	for (u32 slot = 1; slot < 32; slot++) {
		u64 cfg = ecam + ((u64)slot << 15);
		if (!probe32(cfg, &id) || id != EDU_ID)
			continue;
		if (((rd32(cfg + 0x3C) >> 8) & 0xff) != 1)
			continue; /* not on INTA */
		u64 bar = PCI_MMIO + (u64)slot * 0x100000;
		wr32(cfg + 0x04, 0); /* decoding off while the BAR moves */
		wr32(cfg + 0x10, (u32)bar);
		wr32(cfg + 0x04, 0x2); /* memory space on, INTx not disabled */
		wr32(bar + EDU_ACK, 0xffffffffu);
		add(SPI_PCIE_INTA + slot % 4, EDU, bar);
	}
}

/* The wake-up SGI enabled and let through this PE's CPU interface (Group 1, any priority). */
static int wake_setup(u64 rd)
{
	u64 sre;
	if (!rd || !(rd32(rd + GICR_IGROUPR0) & (1u << WAKE_SGI)))
		return 0; /* not a non-secure SGI here */
	if (el_seen == 2) {
		__asm__ volatile("mrs %0, s3_4_c12_c9_5" : "=r"(sre)); /* ICC_SRE_EL2: SRE, Enable */
		__asm__ volatile("msr s3_4_c12_c9_5, %0; isb" ::"r"(sre | 9));
		__asm__ volatile("mrs %0, s3_4_c12_c9_5" : "=r"(sre));
	} else {
		__asm__ volatile("mrs %0, s3_0_c12_c12_5" : "=r"(sre)); /* ICC_SRE_EL1: SRE */
		__asm__ volatile("msr s3_0_c12_c12_5, %0; isb" ::"r"(sre | 1));
		__asm__ volatile("mrs %0, s3_0_c12_c12_5" : "=r"(sre));
	}
	if (!(sre & 1))
		return 0;
	wr32(rd + GICR_ISENABLER0, 1u << WAKE_SGI);
	__asm__ volatile("msr s3_0_c4_c6_0, %0" ::"r"(0xffUL)); /* ICC_PMR_EL1: every priority */
	__asm__ volatile("msr s3_0_c12_c12_7, %0; isb" ::"r"(1UL)); /* ICC_IGRPEN1_EL1 */
	return 1;
}

void mach_sleep(void)
{
	u64 iar;
	__asm__ volatile("wfi");
	__asm__ volatile("mrs %0, s3_0_c12_c12_0" : "=r"(iar)); /* ICC_IAR1_EL1 */
	if ((iar & 0xffffff) < 1020)
		__asm__ volatile("msr s3_0_c12_c12_1, %0; isb" ::"r"(iar)); /* ICC_EOIR1_EL1 */
}

void mach_wake(int pe)
{
	/* ICC_SGI1R_EL1: INTID, Aff1..3 = 0 and the target list (virt: Aff0 = the PE's index). */
	u64 v = ((u64)WAKE_SGI << 24) | ((u64)(pe >> 4) << 44) | (1UL << (pe & 0xf));
	if (gic_v3)
		__asm__ volatile("dsb sy; msr s3_0_c12_c11_5, %0; isb" ::"r"(v));
}

/* This PE's PPIs edge-triggered and its own sources (timers, PMU) quiet. */
static void pe_sources_init(u64 rd)
{
	for (int i = 0; i < nsources; i++) {
		u32 id = sources[i].intid;
		if (id < 32 && rd)
			set_edge(rd + GICR_ICFGR1, id);
		switch (sources[i].kind) {
		case PMU:
			__asm__ volatile("msr pmovsclr_el0, %0" ::"r"(1UL << 31));
			__asm__ volatile("msr pmintenset_el1, %0" ::"r"(1UL << 31));
			__asm__ volatile("mrs x9, pmcr_el0; orr x9, x9, #1; msr pmcr_el0, x9" ::: "x9");
			break;
		case HYP_TIMER:
			__asm__ volatile("msr cnthp_ctl_el2, xzr");
			break;
		case VIRT_TIMER:
			__asm__ volatile("msr cntv_ctl_el0, xzr");
			break;
		case PHYS_TIMER:
			__asm__ volatile("msr cntp_ctl_el0, xzr");
			break;
		}
	}
	__asm__ volatile("isb");
}

int mach_pe_init(void)
{
	u64 rd = my_redistributor();
	pe_sources_init(rd);
	return wake_setup(rd);
}

void mach_init(u32 el)
{
	u32 pidr2;
	el_seen = el;
	gic_v3 = probe32(GICD_BASE + GICD_PIDR2, &pidr2) && (((pidr2 >> 4) & 0xf) == 3 || ((pidr2 >> 4) & 0xf) == 4);
	if (!gic_v3)
		return; /* no GICv3 at virt's address: nothing is raised */
	if (pmu_present())
		add(PPI_PMU, PMU, 0);
	if (el == 2)
		add(PPI_HYP_TIMER, HYP_TIMER, 0);
	add(PPI_VIRT_TIMER, VIRT_TIMER, 0);
	add(PPI_PHYS_TIMER, PHYS_TIMER, 0);
	find_rtc();
	find_edus();
	for (int i = 0; i < nsources;) {
		u32 id = sources[i].intid;
		if (id >= 32 && !set_edge(GICD_BASE + GICD_ICFGR + 4 * (id / 16), id))
			drop(i);
		else
			i++;
	}
	u64 rd = my_redistributor();
	pe_sources_init(rd); /* PE 0 never sleeps: its Group 1 interrupts stay off */
	for (int i = 0; i < nsources;) {
		u32 id = sources[i].intid;
		if (id < 32 && !(rd && (rd32(rd + GICR_ICFGR1) & (1u << (2 * (id % 16) + 1)))))
			drop(i); /* the PPI would stay level-sensitive: a raise could be lost */
		else
			i++;
	}
}

int trig_list(u32 *intids, int max)
{
	int n = 0;
	for (; n < nsources && n < max; n++)
		intids[n] = sources[n].intid;
	return n;
}

int trig_private(u32 intid)
{
	return intid >= 16 && intid < 32;
}

int trig_pulse(u32 intid, struct pulse *p)
{
	struct source *s = NULL;
	for (int i = 0; i < nsources; i++)
		if (sources[i].intid == intid)
			s = &sources[i];
	if (!s)
		return -1;
	p->on_addr = p->off_addr = 0;
	p->on_val = p->off_val = 1;
	switch (s->kind) {
	case PMU:
		p->kind = PULSE_PMU;
		p->on_val = 1UL << 31; /* the cycle counter's overflow flag */
		break;
	case HYP_TIMER:
		p->kind = PULSE_CNTHP;
		break;
	case VIRT_TIMER:
		p->kind = PULSE_CNTV;
		break;
	case PHYS_TIMER:
		p->kind = PULSE_CNTP;
		break;
	case RTC:
		if (!rtc_latch())
			return -1;
		p->kind = PULSE_MMIO;
		p->on_addr = p->off_addr = s->base + RTC_IMSC;
		p->off_val = 0;
		break;
	case EDU:
		p->kind = PULSE_MMIO;
		p->on_addr = s->base + EDU_RAISE;
		p->off_addr = s->base + EDU_ACK;
		break;
	}
	return 0;
}
