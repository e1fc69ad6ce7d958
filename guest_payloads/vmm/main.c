/*
 * apflab-vmm main: options, the SDEI mode (probed), the announce line, the vCPU
 * threads, and a main loop that flushes the console and bounds every wait on the
 * host kernel (a vCPU that does not leave KVM_RUN when kicked, a host command stuck
 * in an ioctl). docs/vmm-channel.md documents the announce line, the exit statuses
 * and the channel.
 *
 *   apflab-vmm [--vcpus N] [--memory MiB] [--sdei auto|kernel|forward|none]
 *              [--channel tcp:HOST:PORT|listen:ADDR:PORT|fd:R[,W]] [--timeout S]
 *              [--kick-timeout S] [--connect-timeout S] [--keep-on-eof] AGENT.elf
 *
 * --test-stuck-vcpu I makes vCPU I ignore kicks once it has been powered on (its thread
 * then blocks the kick signal): a stand-in, for tests only, for a host kernel whose
 * KVM_RUN never returns.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm.h"

#define ANNOUNCE_VERSION 1

struct options {
	int vcpus;
	long memory_mib;
	const char *sdei;
	const char *channel;
	double connect_timeout;
	int exit_on_eof;
	const char *image;
};

static void usage(const char *why)
{
	fail("%s; usage: apflab-vmm [--vcpus 1..%d] [--memory MiB] [--sdei auto|kernel|forward|none] "
	     "[--channel tcp:HOST:PORT|listen:ADDR:PORT|fd:R[,W]] [--timeout S] [--kick-timeout S] "
	     "[--connect-timeout S] [--keep-on-eof] AGENT.elf",
	     why, VMM_MAX_VCPUS);
}

static double parse_seconds(const char *opt, const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (*end || v <= 0 || v > 3600)
		fail("%s %s: expected seconds, 0 < S <= 3600", opt, s);
	return v;
}

static void parse(int argc, char **argv, struct options *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		int takes = 1;
		if (!strcmp(a, "--vcpus") && val) {
			char *end;
			o->vcpus = (int)strtol(val, &end, 10);
			if (*end || o->vcpus < 1 || o->vcpus > VMM_MAX_VCPUS)
				fail("--vcpus %s: expected 1..%d (the agent knows at most %d PEs)", val, VMM_MAX_VCPUS,
				     VMM_MAX_VCPUS);
		} else if (!strcmp(a, "--memory") && val) {
			char *end;
			o->memory_mib = strtol(val, &end, 10);
			if (*end || o->memory_mib < 544 || o->memory_mib > 3072)
				fail("--memory %s: expected 544..3072 MiB (the agent is linked at 0x60000000, RAM starts "
				     "at 0x40000000)",
				     val);
		} else if (!strcmp(a, "--sdei") && val) {
			o->sdei = val;
			if (strcmp(val, "auto") && strcmp(val, "kernel") && strcmp(val, "forward") && strcmp(val, "none"))
				fail("--sdei %s: expected auto, kernel, forward or none", val);
		} else if (!strcmp(a, "--channel") && val) {
			o->channel = strcmp(val, "none") ? val : NULL;
		} else if (!strcmp(a, "--timeout") && val) {
			vm.answer_timeout = parse_seconds(a, val);
		} else if (!strcmp(a, "--kick-timeout") && val) {
			vm.kick_timeout = parse_seconds(a, val);
		} else if (!strcmp(a, "--connect-timeout") && val) {
			o->connect_timeout = parse_seconds(a, val);
		} else if (!strcmp(a, "--test-stuck-vcpu") && val) {
			char *end;
			vm.test_stuck_vcpu = (int)strtol(val, &end, 10);
			if (*end || vm.test_stuck_vcpu < 0 || vm.test_stuck_vcpu >= VMM_MAX_VCPUS)
				fail("--test-stuck-vcpu %s: expected a vCPU index", val);
			note("test fault: vCPU %d ignores kicks (--test-stuck-vcpu)", vm.test_stuck_vcpu);
		} else if (!strcmp(a, "--keep-on-eof")) {
			o->exit_on_eof = 0;
			takes = 0;
		} else if (a[0] == '-') {
			usage(val || a[1] != '-' ? "unknown option" : "option needs a value");
		} else if (!o->image) {
			o->image = a;
			takes = 0;
		} else {
			usage("more than one agent image given");
		}
		i += takes;
	}
	if (!o->image)
		usage("no agent image given");
}

static enum sdei_mode choose_mode(const struct options *o)
{
	if (!strcmp(o->sdei, "kernel")) {
		if (!vm.has_sdei_kernel)
			fail("--sdei kernel: kernel %s has no KVM_CAP_ARM_SDEI (206) answering KVM_ARM_SDEI_COMMAND "
			     "GET_VERSION (the SDEI virtualization series); use --sdei auto, forward or none",
			     vm.kernel_release);
		return SDEI_KERNEL;
	}
	if (!strcmp(o->sdei, "forward")) {
		if (!vm.has_filter)
			fail("--sdei forward: kernel %s has no SMCCC filter (KVM_ARM_VM_SMCCC_FILTER, Linux >= 6.4); "
			     "use --sdei auto or none",
			     vm.kernel_release);
		if (!o->channel)
			fail("--sdei forward needs --channel: the host's dispatcher answers the SDEI calls");
		return SDEI_FORWARD;
	}
	if (!strcmp(o->sdei, "none"))
		return SDEI_NONE;
	if (vm.has_sdei_kernel)
		return SDEI_KERNEL;
	if (vm.has_filter && o->channel)
		return SDEI_FORWARD;
	return SDEI_NONE;
}

static void announce(const struct options *o, double t0)
{
	char caps[256] = "vgic-v3,psci-0.2";
	if (vm.has_filter)
		strcat(caps, ",smccc-filter");
	if (vm.has_sdei_kernel)
		strcat(caps, ",sdei-kernel");
	if (vm.has_apf)
		strcat(caps, ",async-pf");
	printf("APFLAB-VMM %d sdei=%s vcpus=%d kernel=%s ipa=%d caps=%s channel=%s setup_ms=%.1f", ANNOUNCE_VERSION,
	       vm.mode == SDEI_KERNEL ? "kernel" : vm.mode == SDEI_FORWARD ? "forward" : "none", vm.nvcpus,
	       vm.kernel_release, vm.ipa_bits, caps, o->channel ? o->channel : "-", (now_seconds() - t0) * 1e3);
	if (vm.has_sdei_kernel)
		printf(" sdei_version=%x", vm.sdei_kernel_version);
	if (vm.has_apf)
		printf(" apf_version=%x", vm.apf_version);
	printf("\n");
	fflush(stdout);
}

/* Every wait on the host kernel has a bound: a vCPU that does not leave KVM_RUN when
 * kicked, or a host command stuck in its ioctl, ends the VMM with one line. */
static void watchdog(void)
{
	double t = now_seconds();
	for (int i = 0; i < vm.nvcpus; i++) {
		struct vcpu *v = &vm.vcpus[i];
		if (atomic_load(&v->kick) && !atomic_load(&v->waiting_host) && t - v->kick_time > vm.kick_timeout)
			fail("vCPU %d did not leave KVM_RUN within %.0f s of a kick; the host kernel may be stuck (look "
			     "for an Oops or a lockup on the console)",
			     i, vm.kick_timeout);
		double busy = atomic_load(&v->busy_since);
		if (busy > 0 && t - busy > vm.kick_timeout)
			fail("a host command on vCPU %d has been in its ioctl for more than %.0f s; the host kernel may "
			     "be deadlocked (the v4 series' INJECT_EVENT takes the vCPU lock twice)",
			     i, vm.kick_timeout);
	}
}

int main(int argc, char **argv)
{
	double t0 = now_seconds();
	struct options o = {.vcpus = 1, .memory_mib = 1024, .sdei = "auto", .connect_timeout = 20, .exit_on_eof = 1};
	vm.answer_timeout = 10;
	vm.kick_timeout = 5;
	vm.test_stuck_vcpu = -1;
	parse(argc, argv, &o);

	/* Only vCPU threads take the kick signal; block it everywhere else. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	vm_open();
	vm_create((uint64_t)o.memory_mib);
	vm_probe();
	vm.mode = choose_mode(&o);
	vm_load_elf(o.image);
	vm_create_vcpus(o.vcpus);
	vm_create_vgic();
	if (vm.mode == SDEI_FORWARD)
		vm_install_sdei_filter();
	announce(&o, t0);
	if (o.channel) {
		vm.chan = channel_open(o.channel, o.connect_timeout);
		host_hello();
		host_reader_start();
	}
	uart_start(o.exit_on_eof);
	vcpus_start();
	while (!atomic_load(&vm.stopping)) {
		usleep(20000);
		uart_flush();
		watchdog();
	}
	uart_flush();
	if (vm.chan)
		channel_send(vm.chan, "BYE %s", vm.exit_reason);
	printf("APFLAB-VMM-EXIT status=%d reason=%s\n", atomic_load(&vm.exit_status), vm.exit_reason);
	fflush(stdout);
	uart_restore_tty();
	_Exit(atomic_load(&vm.exit_status));
}
