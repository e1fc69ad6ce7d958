/*
 * apflab-vmm: apflab's own minimal VMM for the bare-metal agent under KVM/arm64.
 *
 * One VM, QEMU virt's memory map for what the agent touches (RAM at 0x40000000, the
 * PL011 at 0x09000000, the GICv3 distributor at 0x08000000 and redistributors at
 * 0x080A0000), N vCPUs with a thread each, and SDEI three ways (docs/vmm-channel.md):
 * in the kernel (the v4 series' KVM_CAP_ARM_SDEI), forwarded to the host through the
 * SMCCC filter (Linux >= 6.4), or none. Written from Documentation/virt/kvm/api.rst
 * and devices/{vm,arm-vgic-v3}.rst; sections are cited where each call is made.
 */
#ifndef APFLAB_VMM_H
#define APFLAB_VMM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include <linux/kvm.h>

#define VMM_MAX_VCPUS 8 /* the agent's MAX_CPUS */
#define RAM_BASE 0x40000000ULL
#define UART_BASE 0x09000000ULL
#define UART_SIZE 0x1000ULL
#define FASTCONS_BUF 1024 /* the largest line buffer the fast console moves at once */
#define GICD_BASE 0x08000000ULL
#define GICR_BASE 0x080A0000ULL
#define CHANNEL_VERSION 2
#define CHANNEL_LINE_MAX 17408 /* an SDEI payload (8344 bytes) in hex, and some */
#define HOST_STEP_FID 0xC3000AF1u /* the agent's host-step call, forwarded with the SDEI range */
#define PSCI_CPU_ON_SMC32 0x84000003u
#define PSCI_CPU_ON_SMC64 0xC4000003u

enum sdei_mode { SDEI_NONE, SDEI_FORWARD, SDEI_KERNEL };

/* ------------------------------------------------------------------ fail.c */
void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void fail_ioctl(const char *what, int err, const char *hint) __attribute__((noreturn));
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
double now_seconds(void);

/* ------------------------------------------------------------------ regs.c */
/* What a dispatcher needs of a vCPU (abi: DEN0054 dispatch saves x0-x17, PC, PSTATE;
 * COMPLETE_AND_RESUME sets ELR/SPSR of the client EL; v4's resume goes to VBAR+0x280). */
struct reg_image {
	uint64_t pc, pstate, elr, spsr;
	uint64_t x[18];
	uint64_t vbar; /* read only: a dispatcher never writes it */
};
#define IMAGE_WRITABLE 22 /* pc, pstate, elr, spsr, x0..x17 */

uint64_t reg_get(int vcpu_fd, uint64_t id, const char *name);
void reg_set(int vcpu_fd, uint64_t id, uint64_t value, const char *name);
void image_read(int vcpu_fd, struct reg_image *img);
/* Write the fields of ``want`` that differ from ``have``; returns how many were written. */
int image_write(int vcpu_fd, const struct reg_image *have, const struct reg_image *want);
uint64_t *image_field(struct reg_image *img, int i); /* 0..21 in channel order */
void reg_set_pc(int vcpu_fd, uint64_t pc);
uint64_t reg_get_x(int vcpu_fd, int n);
void reg_set_x(int vcpu_fd, int n, uint64_t value);

/* ------------------------------------------------------------------ pl011.c */
void uart_start(int exit_on_eof);
/* An MMIO access to the UART page (offset within it); ``data`` in/out, little endian. */
void uart_access(uint64_t offset, uint8_t *data, uint32_t len, int is_write, atomic_int *abort_wait);
void uart_flush(void);
/* The relay for other console devices: take pending input (waiting, bounded, when there is
 * none), or send bytes out (flushed at once). */
size_t uart_rx_take(uint8_t *dst, size_t max, atomic_int *abort_wait);
void uart_tx_bytes(const uint8_t *src, size_t n);

/* ------------------------------------------------------------------ fastcons.c */
#define FASTCONS_BASE 0x09100000ULL
#define FASTCONS_SIZE 0x1000ULL
void fastcons_access(uint64_t offset, uint8_t *data, uint32_t len, int is_write, atomic_int *abort_wait);
void uart_wake(void);
void uart_restore_tty(void);

/* ------------------------------------------------------------------ channel.c */
struct channel;
struct channel *channel_open(const char *spec, double connect_timeout);
void channel_send(struct channel *ch, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line from the host (without '\n'): 0, -1 at EOF or error, -2 when none came within
 * ``timeout`` seconds (negative: wait as long as it takes). */
int channel_readline(struct channel *ch, char *buf, size_t size, double timeout);
const char *channel_describe(const struct channel *ch);

/* ------------------------------------------------------------------ the VM */
struct vcpu {
	int index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	atomic_int kick;          /* the host wants this vCPU out of KVM_RUN */
	atomic_int stop_wanted;   /* forward mode: a KICK asked for a STOP exchange */
	double kick_time;         /* when the oldest unserved kick was sent */
	int mmio_pending;         /* the last exit was MMIO: complete it before touching registers */
	atomic_int waiting_host;  /* blocked on the host's answer (bounded by the answer timeout) */
	atomic_int in_run;        /* inside the KVM_RUN ioctl */
	atomic_uint run_returns;  /* KVM_RUN returns so far */
	_Atomic double busy_since; /* in a host command's ioctl since then (0: not) */
	/* One outstanding request to the host and its answer. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int answered;
	char answer[CHANNEL_LINE_MAX];
	/* One host command to run on this vCPU's fd (kernel mode), from the channel reader. */
	int cmd_pending;
	char cmd[CHANNEL_LINE_MAX];
	/* A PSCI CPU_ON for this vCPU from another one (mode forward; psci.c), under ``lock``. */
	enum { POWER_IDLE, POWER_REQUESTED, POWER_DONE } power_state;
	uint64_t power_entry, power_context, power_result;
};

struct vm {
	int kvm_fd, vm_fd, vgic_fd;
	struct kvm_vcpu_init vcpu_init; /* the target and features of every vCPU but POWER_OFF */
	int nvcpus;
	uint8_t *ram;
	uint64_t ram_size;
	uint64_t entry;
	enum sdei_mode mode;
	int has_filter, has_sdei_kernel, has_apf;
	uint32_t sdei_kernel_version, apf_version;
	int ipa_bits;
	char kernel_release[65];
	struct channel *chan;
	double answer_timeout, kick_timeout;
	int test_stuck_vcpu; /* --test-stuck-vcpu: this vCPU ignores kicks (-1: none) */
	atomic_int stopping;
	atomic_int exit_status;
	const char *exit_reason;
	struct vcpu vcpus[VMM_MAX_VCPUS];
};

extern struct vm vm;

/* vm.c */
void vm_open(void);
void vm_probe(void);
void vm_create(uint64_t ram_mib);
void vm_load_elf(const char *path);
void vm_create_vcpus(int n);
void vm_create_vgic(void);
void vm_install_sdei_filter(void);
void vm_stop(int status, const char *reason);

/* run.c */
void vcpus_start(void);
void vcpu_kick(struct vcpu *v);
/* Kick, then wait (bounded) until the vCPU is out of KVM_RUN: it executes no guest
 * instruction until it has served the kick. */
void vcpu_kick_sync(struct vcpu *v);
void vcpu_complete_mmio(struct vcpu *v);

/* psci.c: CPU_ON in the VMM (mode forward), so the host's dispatcher sees a PE come back */
int psci_forwarded(uint32_t fid);
void psci_cpu_on(struct vcpu *v);
void psci_serve_power(struct vcpu *t);

/* forward.c: SDEI calls to the host's dispatcher */
void forward_call(struct vcpu *v);
void forward_stop(struct vcpu *v);
/* Wait for the answer to this vCPU's request; fails (bounded) when none comes. */
void await_answer(struct vcpu *v, const char *what);

/* host.c: the channel's reader, host commands */
void host_hello(void);
void host_reader_start(void);
void host_run_vcpu_command(struct vcpu *v);

/* sdei_kernel.c: the v4 uAPI */
int sdei_kernel_probe(uint32_t *version);
int apf_probe(uint32_t *version);
/* Run "SDEI <target> <cmd> [hex]" / "APF <target> <cmd> [value]" on fd; reply on the channel. */
void kernel_command(int fd, const char *target, char *args_line, int is_apf);

#endif
