/*
 * PSCI CPU_ON in the VMM (mode forward only). With SDEI dispatched on the host, the
 * dispatcher must know when a PE comes back from power-down: DEN0054C 5.1.12 has it
 * start masked, and its private events are gone (TF-A's sdei_cpu_on_init()). KVM's own
 * PSCI would power the vCPU on inside the kernel, unseen, so the SMCCC filter forwards
 * CPU_ON (SMC32 and SMC64 IDs, DEN0022 5.1.4) to the VMM, which does what KVM does
 * (api.rst 4.82: KVM_ARM_VCPU_INIT may be called again and resets the vCPU; its PC and
 * x0 become the entry point and the context ID) and tells the host first: `POWER <vcpu>
 * on` on the channel, before the vCPU runs an instruction. CPU_OFF, AFFINITY_INFO and
 * the rest stay KVM's: a vCPU KVM powered off is in KVM_MP_STATE_STOPPED, which is what
 * CPU_ON checks here.
 */
#include <errno.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <time.h>

#include "vmm.h"

#define PSCI_INVALID_PARAMETERS ((uint64_t)-2)
#define PSCI_ALREADY_ON ((uint64_t)-4)
#define MPIDR_AFF_MASK 0xff00ffffffULL /* Aff3..Aff0 */

int psci_forwarded(uint32_t fid)
{
	return fid == PSCI_CPU_ON_SMC32 || fid == PSCI_CPU_ON_SMC64;
}

/* On the caller's thread: the target's thread does the work (vCPU ioctls belong to it). */
void psci_cpu_on(struct vcpu *v)
{
	uint32_t fid = (uint32_t)reg_get_x(v->fd, 0);
	uint64_t target = reg_get_x(v->fd, 1), entry = reg_get_x(v->fd, 2), context = reg_get_x(v->fd, 3);
	if (fid == PSCI_CPU_ON_SMC32) { /* SMC32: only the low 32 bits of each argument (DEN0028) */
		target &= 0xffffffffULL;
		entry &= 0xffffffffULL;
		context &= 0xffffffffULL;
	}
	uint64_t index = target & MPIDR_AFF_MASK;
	uint64_t result;
	if (index >= (uint64_t)vm.nvcpus) {
		result = PSCI_INVALID_PARAMETERS;
	} else if ((int)index == v->index) {
		result = PSCI_ALREADY_ON;
	} else {
		struct vcpu *t = &vm.vcpus[index];
		pthread_mutex_lock(&t->lock);
		t->power_entry = entry;
		t->power_context = context;
		t->power_state = POWER_REQUESTED;
		pthread_mutex_unlock(&t->lock);
		vcpu_kick(t);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)vm.kick_timeout;
		pthread_mutex_lock(&t->lock);
		while (t->power_state == POWER_REQUESTED && !atomic_load(&vm.stopping))
			if (pthread_cond_timedwait(&t->cond, &t->lock, &until) == ETIMEDOUT)
				break;
		int done = t->power_state == POWER_DONE;
		result = t->power_result;
		t->power_state = POWER_IDLE;
		pthread_mutex_unlock(&t->lock);
		if (!done && !atomic_load(&vm.stopping))
			fail("PSCI CPU_ON of vCPU %d from vCPU %d: the target did not leave KVM_RUN within %.0f s; the "
			     "host kernel may be stuck",
			     t->index, v->index, vm.kick_timeout);
	}
	reg_set_x(v->fd, 0, result);
}

/* On the target's own thread, out of KVM_RUN: power it on if it is off. */
void psci_serve_power(struct vcpu *t)
{
	pthread_mutex_lock(&t->lock);
	int requested = t->power_state == POWER_REQUESTED;
	uint64_t entry = t->power_entry, context = t->power_context;
	pthread_mutex_unlock(&t->lock);
	if (!requested)
		return;
	struct kvm_mp_state mp = {0};
	if (ioctl(t->fd, KVM_GET_MP_STATE, &mp) < 0) /* api.rst 4.38 */
		fail_ioctl("KVM_GET_MP_STATE", errno, "the vCPU fd is not usable");
	uint64_t result = PSCI_ALREADY_ON;
	if (mp.mp_state == KVM_MP_STATE_STOPPED) {
		struct kvm_vcpu_init init = vm.vcpu_init; /* PSCI 0.2, not POWER_OFF: runnable */
		if (ioctl(t->fd, KVM_ARM_VCPU_INIT, &init) < 0)
			fail_ioctl("KVM_ARM_VCPU_INIT (PSCI CPU_ON)", errno, "KVM refused to reset the vCPU");
		reg_set_pc(t->fd, entry); /* PSTATE is the reset value: EL1h, D A I F masked */
		reg_set_x(t->fd, 0, context);
		if (vm.chan)
			channel_send(vm.chan, "POWER %d on", t->index); /* before its first instruction */
		if (t->index == vm.test_stuck_vcpu) { /* from now on KVM_RUN never sees a kick (tests) */
			sigset_t set;
			sigemptyset(&set);
			sigaddset(&set, SIGUSR1);
			pthread_sigmask(SIG_BLOCK, &set, NULL);
		}
		result = 0;
	}
	pthread_mutex_lock(&t->lock);
	t->power_result = result;
	t->power_state = POWER_DONE;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}
