/*
 * KVM uAPI that Debian 12's cross headers (Linux 6.1) lack, written from the
 * kernel's documentation and the series' patches; nothing here is copied.
 *
 * 1. The SMCCC filter (Linux >= 6.4, Oliver Upton's "userspace SMCCC filtering"):
 *    Documentation/virt/kvm/devices/vm.rst, "GROUP: KVM_ARM_VM_SMCCC_CTRL",
 *    attribute KVM_ARM_VM_SMCCC_FILTER; Documentation/virt/kvm/api.rst,
 *    KVM_EXIT_HYPERCALL "For arm64" (flags KVM_HYPERCALL_EXIT_SMC / _16BIT).
 * 2. The SDEI virtualization v4 series (Gavin Shan, 2021-08-15,
 *    Message-Id <20210815001352.81927-17-gshan@redhat.com> "ioctls on VM",
 *    v3 <20210507083124.43347-18-gshan@redhat.com> "ioctls on vCPU",
 *    -21- KVM_CAP_ARM_SDEI): arch/arm64/include/uapi/asm/kvm_sdei.h as posted.
 * 3. The asynchronous page fault v4 series (Message-Id
 *    <20210815005947.83699-8-gshan@redhat.com> and -11-): KVM_ARM_ASYNC_PF_COMMAND.
 *
 * Sizes are checked at compile time against the values the series' layouts give
 * (LP64): struct kvm_sdei_cmd 8352 bytes, struct kvm_arm_async_pf_cmd 16 bytes.
 */
#ifndef APFLAB_VMM_UAPI_EXT_H
#define APFLAB_VMM_UAPI_EXT_H

#include <linux/kvm.h>
#include <linux/types.h>

/* ---- 1. SMCCC filter (vm.rst section "KVM_ARM_VM_SMCCC_CTRL") ---- */
#define APFLAB_KVM_ARM_VM_SMCCC_CTRL 0   /* device-attribute group on the VM fd */
#define APFLAB_KVM_ARM_VM_SMCCC_FILTER 0 /* attribute: one range per KVM_SET_DEVICE_ATTR */

enum apflab_smccc_filter_action {
	APFLAB_SMCCC_FILTER_HANDLE = 0,      /* KVM handles the call (the default) */
	APFLAB_SMCCC_FILTER_DENY = 1,        /* KVM answers NOT_SUPPORTED */
	APFLAB_SMCCC_FILTER_FWD_TO_USER = 2, /* KVM exits with KVM_EXIT_HYPERCALL */
};

/* Half-open range [base, base + nr_functions) of SMCCC function IDs. */
struct apflab_smccc_filter {
	__u32 base;
	__u32 nr_functions;
	__u8 action;
	__u8 pad[15];
};

/* KVM_EXIT_HYPERCALL on arm64: run->hypercall.nr is the function ID; the u64 that
 * Linux 6.1's header calls "longmode" (+ pad) is "flags" since 6.4. */
#define APFLAB_KVM_HYPERCALL_EXIT_SMC (1ULL << 0)
#define APFLAB_KVM_HYPERCALL_EXIT_16BIT (1ULL << 1)

/* ---- 2. SDEI v4 (abi facts: KVM_CAP_ARM_SDEI is 206 in the series, not upstream:
 * upstream reused 206 for an x86-only capability, so arm64 answers 0 there) ---- */
#define APFLAB_KVM_CAP_ARM_SDEI 206

enum apflab_sdei_cmd {
	APFLAB_SDEI_CMD_GET_VERSION = 0,       /* VM */
	APFLAB_SDEI_CMD_SET_EVENT = 1,         /* VM */
	APFLAB_SDEI_CMD_GET_KEVENT_COUNT = 2,  /* VM */
	APFLAB_SDEI_CMD_GET_KEVENT = 3,        /* VM */
	APFLAB_SDEI_CMD_SET_KEVENT = 4,        /* VM */
	APFLAB_SDEI_CMD_GET_VEVENT_COUNT = 5,  /* vCPU */
	APFLAB_SDEI_CMD_GET_VEVENT = 6,        /* vCPU */
	APFLAB_SDEI_CMD_SET_VEVENT = 7,        /* vCPU */
	APFLAB_SDEI_CMD_GET_VCPU_STATE = 8,    /* vCPU */
	APFLAB_SDEI_CMD_SET_VCPU_STATE = 9,    /* vCPU */
	APFLAB_SDEI_CMD_INJECT_EVENT = 10,     /* vCPU */
	APFLAB_SDEI_CMD_COUNT = 11,
};

/* struct kvm_sdei_cmd: u32 cmd, then (8-byte aligned) a union whose largest member is
 * struct kvm_sdei_kvm_event_state (8344 bytes). The VMM moves the union as bytes: the
 * host (apflab/abi/uapi.py) knows the members. */
#define APFLAB_SDEI_CMD_PAYLOAD 8344
struct apflab_kvm_sdei_cmd {
	__u32 cmd;
	__u32 pad;
	__u8 payload[APFLAB_SDEI_CMD_PAYLOAD];
};
#define APFLAB_KVM_ARM_SDEI_COMMAND _IOWR(KVMIO, 0xce, struct apflab_kvm_sdei_cmd)

/* ---- 3. APF v4: KVM_CAP_ASYNC_PF (59) / KVM_CAP_ASYNC_PF_INT (183) report it ---- */
enum apflab_apf_cmd {
	APFLAB_APF_CMD_GET_VERSION = 0, /* the only command accepted on the VM fd */
	APFLAB_APF_CMD_GET_SDEI = 1,
	APFLAB_APF_CMD_GET_IRQ = 2,
	APFLAB_APF_CMD_GET_CONTROL = 3,
	APFLAB_APF_CMD_SET_SDEI = 4,
	APFLAB_APF_CMD_SET_IRQ = 5,
	APFLAB_APF_CMD_SET_CONTROL = 6,
	APFLAB_APF_CMD_COUNT = 7,
};

struct apflab_kvm_arm_async_pf_cmd {
	__u32 cmd;
	__u32 pad;
	__u64 value; /* union { u32 version; u64 sdei; u32 irq; u64 control; } */
};
#define APFLAB_KVM_ARM_ASYNC_PF_COMMAND _IOWR(KVMIO, 0xcf, struct apflab_kvm_arm_async_pf_cmd)

_Static_assert(sizeof(struct apflab_smccc_filter) == 24, "kvm_smccc_filter is 24 bytes");
_Static_assert(sizeof(struct apflab_kvm_sdei_cmd) == 8352, "kvm_sdei_cmd is 8352 bytes (v4)");
_Static_assert(sizeof(struct apflab_kvm_arm_async_pf_cmd) == 16, "kvm_arm_async_pf_cmd is 16 bytes (v4)");
_Static_assert(APFLAB_KVM_ARM_SDEI_COMMAND == 0xE0A0AECEu, "KVM_ARM_SDEI_COMMAND value");
_Static_assert(APFLAB_KVM_ARM_ASYNC_PF_COMMAND == 0xC010AECFu, "KVM_ARM_ASYNC_PF_COMMAND value");

#endif
