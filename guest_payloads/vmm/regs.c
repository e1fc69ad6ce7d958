/*
 * vCPU registers through KVM_GET_ONE_REG / KVM_SET_ONE_REG (api.rst 4.68/4.69 and its
 * "ARM64 registers" table): core registers are KVM_REG_ARM64 | KVM_REG_SIZE_U64 |
 * KVM_REG_ARM_CORE | the u32 offset of the field in struct kvm_regs; system registers
 * are ARM64_SYS_REG(op0, op1, CRn, CRm, op2). arm64 has no KVM_GET_REGS.
 */
#include <errno.h>
#include <stddef.h>
#include <sys/ioctl.h>

#include <asm/kvm.h>

#include "vmm.h"

#define CORE_REG(field) (KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(field))
#define REG_VBAR_EL1 ARM64_SYS_REG(3, 0, 12, 0, 0)

static const uint64_t x_ids[18] = {
	CORE_REG(regs.regs[0]),  CORE_REG(regs.regs[1]),  CORE_REG(regs.regs[2]),  CORE_REG(regs.regs[3]),
	CORE_REG(regs.regs[4]),  CORE_REG(regs.regs[5]),  CORE_REG(regs.regs[6]),  CORE_REG(regs.regs[7]),
	CORE_REG(regs.regs[8]),  CORE_REG(regs.regs[9]),  CORE_REG(regs.regs[10]), CORE_REG(regs.regs[11]),
	CORE_REG(regs.regs[12]), CORE_REG(regs.regs[13]), CORE_REG(regs.regs[14]), CORE_REG(regs.regs[15]),
	CORE_REG(regs.regs[16]), CORE_REG(regs.regs[17]),
};

/* The channel's order of the writable image: pc, pstate, elr, spsr, x0..x17. */
static uint64_t field_id(int i)
{
	switch (i) {
	case 0:
		return CORE_REG(regs.pc);
	case 1:
		return CORE_REG(regs.pstate);
	case 2:
		return CORE_REG(elr_el1);
	case 3:
		return CORE_REG(spsr[KVM_SPSR_EL1]);
	default:
		return x_ids[i - 4];
	}
}

static const char *field_name(int i)
{
	static const char *names[IMAGE_WRITABLE] = {"PC", "PSTATE", "ELR_EL1", "SPSR_EL1", "x0", "x1", "x2",
						    "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11",
						    "x12", "x13", "x14", "x15", "x16", "x17"};
	return names[i];
}

uint64_t *image_field(struct reg_image *img, int i)
{
	switch (i) {
	case 0:
		return &img->pc;
	case 1:
		return &img->pstate;
	case 2:
		return &img->elr;
	case 3:
		return &img->spsr;
	default:
		return &img->x[i - 4];
	}
}

uint64_t reg_get(int vcpu_fd, uint64_t id, const char *name)
{
	uint64_t value = 0;
	struct kvm_one_reg reg = {.id = id, .addr = (uint64_t)(uintptr_t)&value};
	if (ioctl(vcpu_fd, KVM_GET_ONE_REG, &reg) < 0) {
		char what[96];
		snprintf(what, sizeof(what), "KVM_GET_ONE_REG(%s, id %#llx)", name, (unsigned long long)id);
		fail_ioctl(what, errno, "the vCPU must be initialised (KVM_ARM_VCPU_INIT) first");
	}
	return value;
}

void reg_set(int vcpu_fd, uint64_t id, uint64_t value, const char *name)
{
	struct kvm_one_reg reg = {.id = id, .addr = (uint64_t)(uintptr_t)&value};
	if (ioctl(vcpu_fd, KVM_SET_ONE_REG, &reg) < 0) {
		char what[128];
		snprintf(what, sizeof(what), "KVM_SET_ONE_REG(%s = %#llx)", name, (unsigned long long)value);
		fail_ioctl(what, errno, "KVM refuses values it cannot represent (e.g. a PSTATE mode it does not allow)");
	}
}

void reg_set_pc(int vcpu_fd, uint64_t pc)
{
	reg_set(vcpu_fd, CORE_REG(regs.pc), pc, "PC");
}

void image_read(int vcpu_fd, struct reg_image *img)
{
	for (int i = 0; i < IMAGE_WRITABLE; i++)
		*image_field(img, i) = reg_get(vcpu_fd, field_id(i), field_name(i));
	img->vbar = reg_get(vcpu_fd, REG_VBAR_EL1, "VBAR_EL1");
}

int image_write(int vcpu_fd, const struct reg_image *have, const struct reg_image *want)
{
	int written = 0;
	for (int i = 0; i < IMAGE_WRITABLE; i++) {
		uint64_t v = *image_field((struct reg_image *)want, i);
		if (v != *image_field((struct reg_image *)have, i)) {
			reg_set(vcpu_fd, field_id(i), v, field_name(i));
			written++;
		}
	}
	return written;
}

uint64_t reg_get_x(int vcpu_fd, int n)
{
	return reg_get(vcpu_fd, x_ids[n], field_name(4 + n));
}

void reg_set_x(int vcpu_fd, int n, uint64_t value)
{
	reg_set(vcpu_fd, x_ids[n], value, field_name(4 + n));
}
