/*
 * The VM: /dev/kvm, capability probes, guest RAM, the agent's ELF image, the vCPUs,
 * the in-kernel vGICv3 and the SMCCC filter. Each step names its api.rst section.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "uapi_ext.h"
#include "vmm.h"

#define KVM_API_VERSION_EXPECTED 12

struct vm vm;
static int run_size;

static int check_cap(int cap)
{
	int r = ioctl(vm.kvm_fd, KVM_CHECK_EXTENSION, cap); /* api.rst 4.4 */
	return r < 0 ? 0 : r;
}

static int check_vm_cap(int cap)
{
	int r = ioctl(vm.vm_fd, KVM_CHECK_EXTENSION, cap); /* on the VM fd: api.rst 4.4 */
	return r < 0 ? 0 : r;
}

void vm_open(void)
{
	struct utsname u;
	if (uname(&u) == 0)
		snprintf(vm.kernel_release, sizeof(vm.kernel_release), "%s", u.release);
	vm.kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm.kvm_fd < 0) {
		int e = errno;
		if (e == ENOENT)
			fail("no /dev/kvm (kernel %s): boot the host kernel at EL2 (QEMU: -M virt,virtualization=on; a "
			     "board: firmware entering at EL2, kvm-arm.mode not 'none') and look for 'kvm [1]: ... "
			     "initialized successfully' in dmesg",
			     vm.kernel_release);
		if (e == EACCES || e == EPERM)
			fail_ioctl("open(/dev/kvm)", e, "run as root or as a member of the kvm group");
		fail_ioctl("open(/dev/kvm)", e, "is KVM built into this kernel (CONFIG_KVM)?");
	}
	int api = ioctl(vm.kvm_fd, KVM_GET_API_VERSION, 0); /* api.rst 4.1 */
	if (api != KVM_API_VERSION_EXPECTED)
		fail("KVM_GET_API_VERSION is %d, not %d: this VMM speaks the stable KVM API only", api,
		     KVM_API_VERSION_EXPECTED);
	if (!check_cap(KVM_CAP_ARM_PSCI_0_2))
		fail("KVM lacks KVM_CAP_ARM_PSCI_0_2: the agent starts its other PEs with PSCI CPU_ON");
	if (!check_cap(KVM_CAP_IMMEDIATE_EXIT))
		fail("KVM lacks KVM_CAP_IMMEDIATE_EXIT (Linux >= 4.11): needed to kick vCPUs out of KVM_RUN");
	if (!check_cap(KVM_CAP_ONE_REG) || !check_cap(KVM_CAP_DEVICE_CTRL))
		fail("KVM lacks KVM_CAP_ONE_REG or KVM_CAP_DEVICE_CTRL: too old a kernel for this VMM");
	vm.ipa_bits = check_cap(KVM_CAP_ARM_VM_IPA_SIZE);
	run_size = ioctl(vm.kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0); /* api.rst 4.5 */
	if (run_size < (int)sizeof(struct kvm_run))
		fail_ioctl("KVM_GET_VCPU_MMAP_SIZE", errno, "the kvm_run area is smaller than struct kvm_run");
}

void vm_create(uint64_t ram_mib)
{
	/* api.rst 4.2: type 0 = the default 40-bit IPA space, enough for RAM at 1 GiB. */
	vm.vm_fd = ioctl(vm.kvm_fd, KVM_CREATE_VM, 0);
	if (vm.vm_fd < 0)
		fail_ioctl("KVM_CREATE_VM", errno, "out of memory, or KVM not initialised (dmesg: 'kvm [1]')");
	vm.ram_size = ram_mib << 20;
	vm.ram = mmap(NULL, vm.ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm.ram == MAP_FAILED)
		fail_ioctl("mmap(guest RAM)", errno, "ask for less RAM with --memory");
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = RAM_BASE,
		.memory_size = vm.ram_size,
		.userspace_addr = (uint64_t)(uintptr_t)vm.ram,
	};
	if (ioctl(vm.vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) /* api.rst 4.35 */
		fail_ioctl("KVM_SET_USER_MEMORY_REGION(RAM at 0x40000000)", errno, "RAM must fit the IPA space");
}

void vm_probe(void)
{
	/* vm.rst "KVM_ARM_VM_SMCCC_CTRL": KVM_HAS_DEVICE_ATTR on the VM fd (Linux >= 6.4; older
	 * kernels answer EINVAL or ENOTTY: no filter). */
	struct kvm_device_attr attr = {.group = APFLAB_KVM_ARM_VM_SMCCC_CTRL, .attr = APFLAB_KVM_ARM_VM_SMCCC_FILTER};
	vm.has_filter = ioctl(vm.vm_fd, KVM_HAS_DEVICE_ATTR, &attr) == 0;
	vm.has_sdei_kernel = check_vm_cap(APFLAB_KVM_CAP_ARM_SDEI) > 0 && sdei_kernel_probe(&vm.sdei_kernel_version);
	vm.has_apf = (check_vm_cap(KVM_CAP_ASYNC_PF) > 0 || check_vm_cap(KVM_CAP_ASYNC_PF_INT) > 0) &&
		     apf_probe(&vm.apf_version);
}

/* ELF64 little-endian AArch64 executable: each PT_LOAD goes to its physical address. */
void vm_load_elf(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("cannot open the agent image %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr))
		fail("%s is not an ELF file (too small)", path);
	uint8_t *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (img == MAP_FAILED)
		fail_ioctl("mmap(agent image)", errno, "is the file readable?");
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_AARCH64)
		fail("%s is not a little-endian AArch64 ELF64 file (build it with guest_payloads/agent)", path);
	if (eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > (uint64_t)st.st_size)
		fail("%s: program headers lie outside the file", path);
	int loaded = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(img + eh->e_phoff + (uint64_t)i * sizeof(Elf64_Phdr));
		if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
			continue;
		uint64_t at = ph->p_paddr;
		if (at < RAM_BASE || at + ph->p_memsz > RAM_BASE + vm.ram_size || ph->p_filesz > ph->p_memsz ||
		    ph->p_offset + ph->p_filesz > (uint64_t)st.st_size)
			fail("%s: segment %d at %#llx+%#llx is outside RAM %#llx..%#llx (raise --memory)", path, i,
			     (unsigned long long)at, (unsigned long long)ph->p_memsz, (unsigned long long)RAM_BASE,
			     (unsigned long long)(RAM_BASE + vm.ram_size));
		memcpy(vm.ram + (at - RAM_BASE), img + ph->p_offset, ph->p_filesz);
		memset(vm.ram + (at - RAM_BASE) + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
		loaded++;
	}
	if (!loaded)
		fail("%s has no loadable segment", path);
	vm.entry = eh->e_entry;
	if (vm.entry < RAM_BASE || vm.entry >= RAM_BASE + vm.ram_size)
		fail("%s: entry point %#llx is outside RAM", path, (unsigned long long)vm.entry);
	munmap(img, (size_t)st.st_size);
}

void vm_create_vcpus(int n)
{
	struct kvm_vcpu_init init;
	/* api.rst 4.83 KVM_ARM_PREFERRED_TARGET, then 4.82 KVM_ARM_VCPU_INIT per vCPU. */
	if (ioctl(vm.vm_fd, KVM_ARM_PREFERRED_TARGET, &init) < 0)
		fail_ioctl("KVM_ARM_PREFERRED_TARGET", errno, "KVM could not name a CPU target for this host");
	vm.nvcpus = n;
	for (int i = 0; i < n; i++) {
		struct vcpu *v = &vm.vcpus[i];
		v->index = i;
		pthread_mutex_init(&v->lock, NULL);
		pthread_cond_init(&v->cond, NULL);
		v->fd = ioctl(vm.vm_fd, KVM_CREATE_VCPU, i); /* api.rst 4.7 */
		if (v->fd < 0)
			fail_ioctl("KVM_CREATE_VCPU", errno, "too many vCPUs for this host (KVM_CAP_MAX_VCPUS)?");
		v->run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED)
			fail_ioctl("mmap(kvm_run)", errno, "out of memory");
		struct kvm_vcpu_init vi = init;
		memset(vi.features, 0, sizeof(vi.features));
		vi.features[0] |= 1u << KVM_ARM_VCPU_PSCI_0_2; /* PSCI 0.2+ in KVM: CPU_ON, SYSTEM_OFF */
		vm.vcpu_init = vi;
		if (i > 0)
			vi.features[0] |= 1u << KVM_ARM_VCPU_POWER_OFF; /* secondaries wait for CPU_ON */
		if (ioctl(v->fd, KVM_ARM_VCPU_INIT, &vi) < 0)
			fail_ioctl("KVM_ARM_VCPU_INIT", errno, "KVM rejected the target or a feature (PSCI 0.2, POWER_OFF)");
	}
	reg_set_pc(vm.vcpus[0].fd, vm.entry); /* PSTATE is KVM's reset value: EL1h, DAIF masked */
}

static void vgic_attr(uint32_t group, uint64_t attr, uint64_t *value, const char *what, const char *hint)
{
	struct kvm_device_attr a = {.group = group, .attr = attr, .addr = (uint64_t)(uintptr_t)value};
	if (ioctl(vm.vgic_fd, KVM_SET_DEVICE_ATTR, &a) < 0)
		fail_ioctl(what, errno, hint);
}

void vm_create_vgic(void)
{
	/* devices/arm-vgic-v3.rst: create, place the distributor and the redistributors
	 * (two 64 KiB frames per vCPU, contiguous), then KVM_DEV_ARM_VGIC_CTRL_INIT once
	 * every vCPU exists. QEMU virt's addresses, so the agent's view is the same. */
	struct kvm_create_device dev = {.type = KVM_DEV_TYPE_ARM_VGIC_V3};
	if (ioctl(vm.vm_fd, KVM_CREATE_DEVICE, &dev) < 0)
		fail_ioctl("KVM_CREATE_DEVICE(KVM_DEV_TYPE_ARM_VGIC_V3)", errno,
			   "the host needs a GICv3 (QEMU: -M virt,gic-version=3)");
	vm.vgic_fd = (int)dev.fd;
	uint64_t dist = GICD_BASE, redist = GICR_BASE;
	vgic_attr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &dist,
		  "KVM_SET_DEVICE_ATTR(vGICv3 distributor at 0x08000000)", "address must be 64 KiB aligned and free");
	vgic_attr(KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist,
		  "KVM_SET_DEVICE_ATTR(vGICv3 redistributors at 0x080A0000)", "address must be 64 KiB aligned and free");
	vgic_attr(KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL, "KVM_DEV_ARM_VGIC_CTRL_INIT",
		  "all vCPUs must exist before the vGIC is initialised");
}

void vm_install_sdei_filter(void)
{
	/* vm.rst "KVM_ARM_VM_SMCCC_FILTER": one half-open range per call, before any vCPU
	 * has run. The whole SDEI range, SMC64 (0xC4000020) and SMC32 (0x84000020) IDs, and
	 * the host-step call (an OEM-service ID, docs/vmm-channel.md) the agent's INJECT/IRQ
	 * handler steps make, so the host's dispatcher acts while the handler runs; and PSCI
	 * CPU_ON, so the dispatcher knows when a PE comes back (psci.c). */
	static const uint32_t bases[] = {0xC4000020u, 0x84000020u, HOST_STEP_FID, PSCI_CPU_ON_SMC32, PSCI_CPU_ON_SMC64};
	static const uint32_t counts[] = {32, 32, 1, 1, 1};
	for (unsigned i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		struct apflab_smccc_filter f = {.base = bases[i], .nr_functions = counts[i],
						.action = APFLAB_SMCCC_FILTER_FWD_TO_USER};
		struct kvm_device_attr a = {.group = APFLAB_KVM_ARM_VM_SMCCC_CTRL,
					    .attr = APFLAB_KVM_ARM_VM_SMCCC_FILTER,
					    .addr = (uint64_t)(uintptr_t)&f};
		if (ioctl(vm.vm_fd, KVM_SET_DEVICE_ATTR, &a) < 0) {
			char what[96];
			snprintf(what, sizeof(what), "KVM_SET_DEVICE_ATTR(SMCCC filter %#x+%u -> userspace)", bases[i],
				 counts[i]);
			fail_ioctl(what, errno,
				   "EEXIST: overlaps another range; EBUSY: a vCPU already ran; EINVAL: no filter (Linux < 6.4)");
		}
	}
}

void vm_stop(int status, const char *reason)
{
	int expected = 0;
	if (!atomic_compare_exchange_strong(&vm.stopping, &expected, 1))
		return;
	atomic_store(&vm.exit_status, status);
	vm.exit_reason = reason;
	for (int i = 0; i < vm.nvcpus; i++)
		vcpu_kick(&vm.vcpus[i]);
	uart_wake();
}
