/*
 * SDEI and APF in the host kernel: the v4 series' uAPI (uapi_ext.h), reached from the
 * host through the channel. KVM_ARM_SDEI_COMMAND (Message-Id
 * <20210815001352.81927-17-gshan@redhat.com>, vCPU commands from v3's
 * <20210507083124.43347-18-gshan@redhat.com>) and KVM_ARM_ASYNC_PF_COMMAND
 * (<20210815005947.83699-11-gshan@redhat.com>) run on the VM fd or on a vCPU fd; the
 * VMM moves the command's union as bytes and the host decodes it (apflab/abi/uapi.py).
 *
 *   SDEI <vm|vcpu> <cmd 0..10> [<payload hex>]  ->  RES <vm|vcpu> <0|-errno> <payload hex|->
 *   APF  <vm|vcpu> <cmd 0..6>  [<value hex>]    ->  RES <vm|vcpu> <0|-errno> <value hex>
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "uapi_ext.h"
#include "vmm.h"

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int sdei_kernel_probe(uint32_t *version)
{
	static struct apflab_kvm_sdei_cmd c;
	memset(&c, 0, sizeof(c));
	c.cmd = APFLAB_SDEI_CMD_GET_VERSION;
	if (ioctl(vm.vm_fd, APFLAB_KVM_ARM_SDEI_COMMAND, &c) < 0)
		return 0;
	memcpy(version, c.payload, sizeof(*version));
	return 1;
}

int apf_probe(uint32_t *version)
{
	struct apflab_kvm_arm_async_pf_cmd c = {.cmd = APFLAB_APF_CMD_GET_VERSION};
	if (ioctl(vm.vm_fd, APFLAB_KVM_ARM_ASYNC_PF_COMMAND, &c) < 0)
		return 0;
	*version = (uint32_t)c.value;
	return 1;
}

static void reply_bad(const char *target, const char *why)
{
	note("host command refused: %s", why);
	channel_send(vm.chan, "RES %s %d", target, -EINVAL);
}

static void sdei_command(int fd, const char *target, long cmd, const char *hex)
{
	static struct apflab_kvm_sdei_cmd c;
	static char out[2 * APFLAB_SDEI_CMD_PAYLOAD + 1];
	memset(&c, 0, sizeof(c));
	c.cmd = (uint32_t)cmd;
	size_t len = hex ? strlen(hex) : 0;
	if (len % 2 || len / 2 > APFLAB_SDEI_CMD_PAYLOAD) {
		reply_bad(target, "SDEI payload must be an even number of hex digits, at most 8344 bytes");
		return;
	}
	for (size_t i = 0; i < len / 2; i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			reply_bad(target, "SDEI payload is not hex");
			return;
		}
		c.payload[i] = (uint8_t)(hi << 4 | lo);
	}
	int status = ioctl(fd, APFLAB_KVM_ARM_SDEI_COMMAND, &c) < 0 ? -errno : 0;
	size_t used = APFLAB_SDEI_CMD_PAYLOAD;
	while (used > 0 && c.payload[used - 1] == 0)
		used--; /* trailing zero bytes are implied */
	for (size_t i = 0; i < used; i++)
		snprintf(out + 2 * i, 3, "%02x", c.payload[i]);
	channel_send(vm.chan, "RES %s %d %s", target, status, used ? out : "-");
}

static void apf_command(int fd, const char *target, long cmd, const char *value)
{
	struct apflab_kvm_arm_async_pf_cmd c = {.cmd = (uint32_t)cmd};
	if (value) {
		char *end;
		errno = 0;
		c.value = strtoull(value, &end, 16);
		if (*end || errno) {
			reply_bad(target, "APF value is not a hex number");
			return;
		}
	}
	int status = ioctl(fd, APFLAB_KVM_ARM_ASYNC_PF_COMMAND, &c) < 0 ? -errno : 0;
	channel_send(vm.chan, "RES %s %d %" PRIx64, target, status, (uint64_t)c.value);
}

void kernel_command(int fd, const char *target, char *args, int is_apf)
{
	char *save = NULL;
	char *cmd_tok = strtok_r(args, " ", &save);
	char *arg = strtok_r(NULL, " ", &save);
	char *end;
	long cmd = cmd_tok ? strtol(cmd_tok, &end, 10) : -1;
	long limit = is_apf ? APFLAB_APF_CMD_COUNT : APFLAB_SDEI_CMD_COUNT;
	if (!cmd_tok || *end || cmd < 0 || cmd >= limit) {
		reply_bad(target, is_apf ? "APF command must be 0..6" : "SDEI command must be 0..10");
		return;
	}
	/* Always the real ioctl: a kernel without the series answers it itself (ENOTTY or
	 * EINVAL), so the host sees the kernel's word, not the VMM's guess. */
	if (is_apf)
		apf_command(fd, target, cmd, arg);
	else
		sdei_command(fd, target, cmd, arg);
}
