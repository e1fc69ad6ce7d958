/*
 * vCPU threads: KVM_RUN (api.rst 4.10) and its exits (api.rst 5, "The kvm_run
 * structure"): KVM_EXIT_MMIO (the UART), KVM_EXIT_HYPERCALL (SDEI forwarded by the
 * SMCCC filter), KVM_EXIT_SYSTEM_EVENT (PSCI SYSTEM_OFF / SYSTEM_RESET), KVM_EXIT_INTR
 * (a kick). Kicking is api.rst's idiom: set kvm_run.immediate_exit, then a signal to
 * the thread, so a kick between the check and KVM_RUN is not lost.
 *
 * MMIO completes at the next KVM_RUN (api.rst: "the corresponding operations are
 * complete ... only after userspace has re-entered the kernel with KVM_RUN"): before
 * any register change from the host, vcpu_complete_mmio() re-enters with
 * immediate_exit set, so the MMIO's destination register and PC are final first.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "uapi_ext.h"
#include "vmm.h"

#define KICK_SIGNAL SIGUSR1

static void on_kick_signal(int sig)
{
	(void)sig; /* only interrupts KVM_RUN */
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->run)
		return;
	if (atomic_exchange(&v->kick, 1) == 0)
		v->kick_time = now_seconds();
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (v->thread)
		pthread_kill(v->thread, KICK_SIGNAL);
	uart_wake(); /* a vCPU waiting for console input inside an MMIO read */
}

void vcpu_kick_sync(struct vcpu *v)
{
	unsigned before = atomic_load(&v->run_returns);
	vcpu_kick(v);
	double deadline = now_seconds() + vm.kick_timeout;
	while (atomic_load(&v->in_run) && atomic_load(&v->run_returns) == before) {
		if (now_seconds() > deadline)
			fail("vCPU %d did not leave KVM_RUN within %.0f s of a kick; the host kernel may be stuck (look "
			     "for an Oops or a lockup on the console)",
			     v->index, vm.kick_timeout);
		sched_yield();
	}
}

void vcpu_complete_mmio(struct vcpu *v)
{
	if (!v->mmio_pending)
		return;
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	int r = ioctl(v->fd, KVM_RUN, 0);
	if (r == 0 || (errno != EINTR && errno != EAGAIN))
		fail("KVM_RUN with immediate_exit did not return EINTR on vCPU %d (%s): cannot complete its MMIO "
		     "access before changing its registers",
		     v->index, r == 0 ? "it ran" : strerror(errno));
	v->mmio_pending = 0;
}

static void handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint64_t addr = run->mmio.phys_addr;
	if (addr >= UART_BASE && addr < UART_BASE + UART_SIZE) {
		uart_access(addr - UART_BASE, run->mmio.data, run->mmio.len, run->mmio.is_write, &v->kick);
	} else if (addr >= FASTCONS_BASE && addr < FASTCONS_BASE + FASTCONS_SIZE) {
		fastcons_access(addr - FASTCONS_BASE, run->mmio.data, run->mmio.len, run->mmio.is_write, &v->kick);
	} else if (!run->mmio.is_write) {
		memset(run->mmio.data, 0, sizeof(run->mmio.data)); /* nothing there: reads as zero */
	}
	v->mmio_pending = 1;
}

static void handle_system_event(struct vcpu *v)
{
	uint32_t type = v->run->system_event.type;
	switch (type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		vm_stop(0, "system-off");
		break;
	case KVM_SYSTEM_EVENT_RESET:
		vm_stop(3, "system-reset");
		break;
	case KVM_SYSTEM_EVENT_CRASH:
		vm_stop(4, "crash");
		break;
	default:
		note("vCPU %d: system event %u ignored", v->index, type);
		break;
	}
}

static void handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	switch (run->exit_reason) {
	case KVM_EXIT_MMIO:
		handle_mmio(v);
		break;
	case KVM_EXIT_HYPERCALL:
		if (vm.mode != SDEI_FORWARD)
			fail("vCPU %d: KVM_EXIT_HYPERCALL for %#llx without a forwarding filter", v->index,
			     (unsigned long long)run->hypercall.nr);
		if (psci_forwarded((uint32_t)run->hypercall.nr))
			psci_cpu_on(v);
		else
			forward_call(v);
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		handle_system_event(v);
		break;
	case KVM_EXIT_INTR:
		break;
	case KVM_EXIT_FAIL_ENTRY:
		fail("vCPU %d: KVM_EXIT_FAIL_ENTRY (hardware_entry_failure_reason %#llx): the host could not enter "
		     "the guest",
		     v->index, (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
	case KVM_EXIT_INTERNAL_ERROR:
		fail("vCPU %d: KVM_EXIT_INTERNAL_ERROR suberror %u: a KVM bug or an unsupported guest access",
		     v->index, run->internal.suberror);
	case KVM_EXIT_ARM_NISV:
		fail("vCPU %d: KVM_EXIT_ARM_NISV at %#llx: an MMIO access KVM cannot decode (the agent uses plain "
		     "LDR/STR)",
		     v->index, (unsigned long long)run->arm_nisv.fault_ipa);
	default:
		fail("vCPU %d: unexpected exit reason %u", v->index, run->exit_reason);
	}
}

/* The host asked for this vCPU: run its command and/or a STOP exchange (forward mode). */
static void serve_kick(struct vcpu *v)
{
	vcpu_complete_mmio(v);
	psci_serve_power(v);
	host_run_vcpu_command(v);
	if (atomic_exchange(&v->stop_wanted, 0) && vm.mode == SDEI_FORWARD)
		forward_stop(v);
}

static void *vcpu_main(void *arg)
{
	struct vcpu *v = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	while (!atomic_load(&vm.stopping)) {
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		if (atomic_exchange(&v->kick, 0)) {
			serve_kick(v);
			continue;
		}
		atomic_store(&v->in_run, 1);
		int r = ioctl(v->fd, KVM_RUN, 0);
		int e = errno;
		atomic_store(&v->in_run, 0);
		atomic_fetch_add(&v->run_returns, 1);
		errno = e;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue; /* kicked: the loop serves it */
			if (e == ENOEXEC)
				fail_ioctl("KVM_RUN", e, "the vCPU was not initialised with KVM_ARM_VCPU_INIT");
			fail_ioctl("KVM_RUN", e, "look for a host kernel Oops on the console");
		}
		v->mmio_pending = 0;
		handle_exit(v);
	}
	return NULL;
}

void vcpus_start(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_kick_signal; /* no SA_RESTART: KVM_RUN returns EINTR */
	sigemptyset(&sa.sa_mask);
	if (sigaction(KICK_SIGNAL, &sa, NULL) < 0)
		fail_ioctl("sigaction(SIGUSR1)", errno, "cannot install the kick handler");
	for (int i = 0; i < vm.nvcpus; i++) {
		int err = pthread_create(&vm.vcpus[i].thread, NULL, vcpu_main, &vm.vcpus[i]);
		if (err)
			fail_ioctl("pthread_create(vCPU)", err, "out of threads or memory");
	}
}
