/*
 * A machine the agent knows nothing of (machine.h): apflab-vmm's guest. No PE count (the
 * agent tries CPU_ON until it is refused), no wake-up (idle PEs wait in WFE) and no
 * interrupt the agent raises itself (the host raises what it needs).
 */
#include "machine.h"

void mach_init(u32 el)
{
	(void)el;
}

int mach_pe_init(void)
{
	return 0;
}

int mach_pes(void)
{
	return 0;
}

void mach_sleep(void)
{
	__asm__ volatile("wfe");
}

void mach_wake(int pe)
{
	(void)pe;
}

int trig_list(u32 *intids, int max)
{
	(void)intids;
	(void)max;
	return 0;
}

int trig_private(u32 intid)
{
	return intid >= 16 && intid < 32;
}

int trig_pulse(u32 intid, struct pulse *p)
{
	(void)intid;
	(void)p;
	return -1;
}
