/*
 * SDEI forwarded to the host (docs/vmm-channel.md, "forward"): a call the SMCCC filter
 * sent to userspace (KVM_EXIT_HYPERCALL; KVM has already moved PC past the HVC/SMC,
 * api.rst "For arm64") goes to the host with the registers a dispatcher needs, and the
 * host's answer is applied before the next KVM_RUN: x0..x3 (RET), the whole register
 * image (REGS: a dispatch, COMPLETE, COMPLETE_AND_RESUME), or nothing (KEEP). A STOP
 * exchange does the same for a vCPU the host kicked (an event for it became pending).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "uapi_ext.h"
#include "vmm.h"

#define HEX "%" PRIx64

static int format_image(char *out, size_t size, const struct reg_image *img)
{
	int n = snprintf(out, size, HEX, img->vbar);
	for (int i = 0; i < IMAGE_WRITABLE && n < (int)size; i++)
		n += snprintf(out + n, size - (size_t)n, " " HEX, *image_field((struct reg_image *)img, i));
	return n;
}

void await_answer(struct vcpu *v, const char *what)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)vm.answer_timeout;
	atomic_store(&v->waiting_host, 1);
	pthread_mutex_lock(&v->lock);
	while (!v->answered && !atomic_load(&vm.stopping))
		if (pthread_cond_timedwait(&v->cond, &v->lock, &until) == ETIMEDOUT)
			break;
	int answered = v->answered;
	pthread_mutex_unlock(&v->lock);
	atomic_store(&v->waiting_host, 0);
	if (!answered && !atomic_load(&vm.stopping))
		fail("the host did not answer %s for vCPU %d within %.0f s (channel %s); is its dispatcher alive?", what,
		     v->index, vm.answer_timeout, channel_describe(vm.chan));
}

static void request(struct vcpu *v, const char *what, const char *line)
{
	pthread_mutex_lock(&v->lock);
	v->answered = 0;
	pthread_mutex_unlock(&v->lock);
	channel_send(vm.chan, "%s", line);
	await_answer(v, what);
}

static uint64_t parse_u64(const char *tok, const char *answer)
{
	char *end;
	if (!tok)
		fail("the host's answer \"%.80s\" has too few numbers", answer);
	errno = 0;
	uint64_t v = strtoull(tok, &end, 16);
	if (*end || end == tok || errno)
		fail("the host's answer \"%.80s\" has a bad hex number \"%s\"", answer, tok);
	return v;
}

/* Apply RET / REGS / KEEP (already checked to be addressed to this vCPU by host.c). */
static void apply_answer(struct vcpu *v, const struct reg_image *have)
{
	char copy[CHANNEL_LINE_MAX];
	snprintf(copy, sizeof(copy), "%s", v->answer);
	char *save = NULL;
	char *kind = strtok_r(copy, " ", &save);
	strtok_r(NULL, " ", &save); /* the vCPU index */
	struct reg_image want = *have;
	if (strcmp(kind, "KEEP") == 0)
		return;
	if (strcmp(kind, "RET") == 0) {
		for (int i = 0; i < 4; i++)
			want.x[i] = parse_u64(strtok_r(NULL, " ", &save), v->answer);
	} else if (strcmp(kind, "REGS") == 0) {
		for (int i = 0; i < IMAGE_WRITABLE; i++)
			*image_field(&want, i) = parse_u64(strtok_r(NULL, " ", &save), v->answer);
	} else {
		fail("the host answered \"%.80s\" to a call of vCPU %d; expected RET, REGS or KEEP", v->answer, v->index);
	}
	if (strtok_r(NULL, " ", &save))
		fail("the host's answer \"%.80s\" has too many numbers", v->answer);
	image_write(v->fd, have, &want);
}

void forward_call(struct vcpu *v)
{
	struct reg_image img;
	char line[1024];
	image_read(v->fd, &img);
	/* run->hypercall: nr = function ID; the u64 after "ret" is "flags" (Linux >= 6.4). */
	uint64_t flags;
	memcpy(&flags, &v->run->hypercall.longmode, sizeof(flags));
	int n = snprintf(line, sizeof(line), "CALL %d %s ", v->index,
			 (flags & APFLAB_KVM_HYPERCALL_EXIT_SMC) ? "smc" : "hvc");
	format_image(line + n, sizeof(line) - (size_t)n, &img);
	request(v, "a forwarded SDEI call", line);
	apply_answer(v, &img);
}

void forward_stop(struct vcpu *v)
{
	struct reg_image img;
	struct kvm_mp_state mp = {0};
	char line[1024];
	if (ioctl(v->fd, KVM_GET_MP_STATE, &mp) < 0) /* api.rst 4.38 */
		fail_ioctl("KVM_GET_MP_STATE", errno, "the vCPU fd is not usable");
	image_read(v->fd, &img);
	int n = snprintf(line, sizeof(line), "STOP %d %s ", v->index,
			 mp.mp_state == KVM_MP_STATE_STOPPED ? "off" : "on");
	format_image(line + n, sizeof(line) - (size_t)n, &img);
	request(v, "a STOP (kick) exchange", line);
	apply_answer(v, &img);
}
