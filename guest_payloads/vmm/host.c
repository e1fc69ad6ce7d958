/*
 * The host end of the channel as the VMM sees it (docs/vmm-channel.md): the version
 * handshake, and one reader thread that routes each host line: answers to the vCPU
 * that asked, KICK to the vCPU named, SDEI/APF host commands to the VM fd at once or
 * to the vCPU's own thread (a vCPU ioctl waits for KVM_RUN to return: the vCPU lock).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm.h"

static char line[CHANNEL_LINE_MAX];

static const char *mode_name(void)
{
	return vm.mode == SDEI_KERNEL ? "kernel" : vm.mode == SDEI_FORWARD ? "forward" : "none";
}

void host_hello(void)
{
	channel_send(vm.chan, "HELLO %d vcpus=%d sdei=%s kernel=%s", CHANNEL_VERSION, vm.nvcpus, mode_name(),
		     vm.kernel_release);
	/* A stream that outlives a VMM (a virtio-serial port) may still hold lines the host
	 * sent the previous one; the answer to this HELLO is the first HELLO or ERR. */
	double deadline = now_seconds() + vm.answer_timeout;
	int r;
	for (;;) {
		double left = deadline - now_seconds();
		r = left > 0 ? channel_readline(vm.chan, line, sizeof(line), left) : -2;
		if (r != 0 || !strncmp(line, "HELLO", 5) || !strncmp(line, "ERR", 3))
			break;
		note("channel: skipped \"%.60s\", meant for an earlier VMM", line);
	}
	if (r == -2)
		fail("channel %s: the host did not answer HELLO within %.0f s", channel_describe(vm.chan),
		     vm.answer_timeout);
	if (r < 0)
		fail("channel %s: the host closed the connection during HELLO", channel_describe(vm.chan));
	int version = 0;
	if (strncmp(line, "ERR", 3) == 0)
		fail("the host refused the channel: %s", line);
	if (sscanf(line, "HELLO %d", &version) != 1 || version != CHANNEL_VERSION)
		fail("the host answered \"%.80s\" to HELLO; this VMM speaks channel version %d", line, CHANNEL_VERSION);
}

static struct vcpu *vcpu_named(const char *tok, const char *whole)
{
	char *end;
	long i = tok ? strtol(tok, &end, 10) : -1;
	if (!tok || *end || i < 0 || i >= vm.nvcpus)
		fail("the host sent \"%.80s\": no vCPU \"%s\" (this VM has %d)", whole, tok ? tok : "", vm.nvcpus);
	return &vm.vcpus[i];
}

static void deliver_answer(struct vcpu *v, const char *whole)
{
	pthread_mutex_lock(&v->lock);
	snprintf(v->answer, sizeof(v->answer), "%s", whole);
	v->answered = 1;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

static void queue_command(struct vcpu *v, const char *whole)
{
	pthread_mutex_lock(&v->lock);
	int busy = v->cmd_pending;
	if (!busy) {
		snprintf(v->cmd, sizeof(v->cmd), "%s", whole);
		v->cmd_pending = 1;
	}
	pthread_mutex_unlock(&v->lock);
	if (busy)
		channel_send(vm.chan, "RES %d %d", v->index, -EBUSY);
	else
		vcpu_kick(v);
}

static void route(char *whole)
{
	char copy[CHANNEL_LINE_MAX];
	snprintf(copy, sizeof(copy), "%s", whole);
	char *save = NULL;
	char *kind = strtok_r(copy, " ", &save);
	char *target = strtok_r(NULL, " ", &save);
	if (!kind)
		return;
	if (!strcmp(kind, "RET") || !strcmp(kind, "REGS") || !strcmp(kind, "KEEP")) {
		deliver_answer(vcpu_named(target, whole), whole);
	} else if (!strcmp(kind, "KICK")) {
		/* Synchronous: a later line (another vCPU's answer) must not let a guest see the
		 * effect of this call before this vCPU has stopped to take its event (e.g. the
		 * agent pinging the PE it just signalled). */
		struct vcpu *v = vcpu_named(target, whole);
		atomic_store(&v->stop_wanted, 1);
		vcpu_kick_sync(v);
	} else if (!strcmp(kind, "SDEI") || !strcmp(kind, "APF")) {
		if (target && !strcmp(target, "vm"))
			kernel_command(vm.vm_fd, "vm", save, !strcmp(kind, "APF"));
		else
			queue_command(vcpu_named(target, whole), whole);
	} else if (!strcmp(kind, "BYE")) {
		vm_stop(0, "the host said BYE");
	} else if (!strcmp(kind, "ERR")) {
		fail("the host reported an error: %.200s", whole);
	} else {
		fail("the host sent \"%.80s\": unknown message (channel version %d)", whole, CHANNEL_VERSION);
	}
}

static void *reader(void *arg)
{
	(void)arg;
	for (;;) {
		if (channel_readline(vm.chan, line, sizeof(line), -1) < 0) {
			if (atomic_load(&vm.stopping))
				return NULL;
			if (vm.mode == SDEI_FORWARD)
				fail("channel %s: the host closed the connection; SDEI calls have no dispatcher now",
				     channel_describe(vm.chan));
			note("channel %s closed by the host: host controls are gone", channel_describe(vm.chan));
			return NULL;
		}
		route(line);
	}
}

void host_reader_start(void)
{
	pthread_t t;
	int err = pthread_create(&t, NULL, reader, NULL);
	if (err)
		fail_ioctl("pthread_create(channel reader)", err, "out of threads or memory");
	pthread_detach(t);
}

void host_run_vcpu_command(struct vcpu *v)
{
	char cmd[CHANNEL_LINE_MAX];
	pthread_mutex_lock(&v->lock);
	int pending = v->cmd_pending;
	if (pending)
		snprintf(cmd, sizeof(cmd), "%s", v->cmd);
	pthread_mutex_unlock(&v->lock);
	if (!pending)
		return;
	char *save = NULL;
	char *kind = strtok_r(cmd, " ", &save);
	char *target = strtok_r(NULL, " ", &save);
	atomic_store(&v->busy_since, now_seconds());
	kernel_command(v->fd, target, save, !strcmp(kind, "APF"));
	atomic_store(&v->busy_since, 0.0);
	pthread_mutex_lock(&v->lock);
	v->cmd_pending = 0;
	pthread_mutex_unlock(&v->lock);
}
