/*
 * apflab's fast console (docs/vmm-channel.md, "The fast console"): whole lines through
 * guest memory, for an agent built with `make UART=vmm` (guest_payloads/agent/
 * uart_vmm.c). Under nested KVM each MMIO exit costs tens of microseconds, and a
 * PL011 takes two per character (FR, then DR); this device takes one per line out and
 * one per batch of input:
 *
 *   0x00 TX_BUF  (w, 64-bit)  guest-physical address of the guest's output buffer
 *   0x08 RX_BUF  (w, 64-bit)  guest-physical address of the guest's input buffer
 *   0x10 TX_SEND (w)          send that many bytes of the output buffer (<= 1024)
 *   0x18 RX_FILL (r)          copy pending input (<= 1024 bytes) into the input buffer,
 *                             waiting at most 50 ms for some; returns the count (0: none)
 *   0x20 SIZE    (r)          1024, the largest buffer either way
 *   0x28 HOST    (r)          bit 0: the host serves the host-step call (SDEI forwarded
 *                             to a dispatcher on the channel), so the agent may relay
 *                             INJECT to it
 *
 * The guest runs with its MMU off (Device/non-cacheable accesses) while the VMM maps
 * RAM cacheable: the VMM cleans and invalidates the buffers' cache lines around each
 * copy (DC CIVAC, allowed at EL0 under Linux), as a host without FEAT_S2FWB needs.
 */
#include <string.h>

#include "vmm.h"

#define REG_TX_BUF 0x00
#define REG_RX_BUF 0x08
#define REG_TX_SEND 0x10
#define REG_RX_FILL 0x18
#define REG_SIZE 0x20
#define REG_HOST 0x28

static uint64_t tx_buf, rx_buf; /* guest-physical; 0 until the guest sets them */

static uint8_t *guest_range(uint64_t gpa, uint64_t len)
{
	if (gpa < RAM_BASE || len > vm.ram_size || gpa - RAM_BASE > vm.ram_size - len)
		return NULL;
	return vm.ram + (gpa - RAM_BASE);
}

static void sync_lines(const uint8_t *p, size_t len)
{
	uint64_t ctr;
	__asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
	size_t line = 4u << ((ctr >> 16) & 0xF); /* DminLine: log2 of words */
	uintptr_t a = (uintptr_t)p & ~(uintptr_t)(line - 1);
	for (; a < (uintptr_t)p + len; a += line)
		__asm__ volatile("dc civac, %0" ::"r"(a) : "memory");
	__asm__ volatile("dsb sy" ::: "memory");
}

static uint64_t load_le(const uint8_t *data, uint32_t len)
{
	uint64_t v = 0;
	for (uint32_t i = 0; i < len && i < 8; i++)
		v |= (uint64_t)data[i] << (8 * i);
	return v;
}

void fastcons_access(uint64_t offset, uint8_t *data, uint32_t len, int is_write, atomic_int *abort_wait)
{
	if (is_write) {
		uint64_t v = load_le(data, len);
		if (offset == REG_TX_BUF) {
			tx_buf = v;
		} else if (offset == REG_RX_BUF) {
			rx_buf = v;
		} else if (offset == REG_TX_SEND) {
			uint8_t *p = v <= FASTCONS_BUF ? guest_range(tx_buf, v) : NULL;
			if (!p) {
				note("fast console: TX_SEND of %llu bytes at %#llx is outside RAM or over %d: ignored",
				     (unsigned long long)v, (unsigned long long)tx_buf, FASTCONS_BUF);
				return;
			}
			sync_lines(p, v);
			uart_tx_bytes(p, v);
		}
		return;
	}
	uint64_t result = 0;
	if (offset == REG_SIZE) {
		result = FASTCONS_BUF;
	} else if (offset == REG_HOST) {
		result = vm.mode == SDEI_FORWARD && vm.chan ? 1 : 0;
	} else if (offset == REG_RX_FILL) {
		uint8_t *p = guest_range(rx_buf, FASTCONS_BUF);
		if (p) {
			uint8_t tmp[FASTCONS_BUF];
			result = uart_rx_take(tmp, sizeof(tmp), abort_wait);
			memcpy(p, tmp, result);
			sync_lines(p, result);
		}
	}
	memset(data, 0, len);
	for (uint32_t i = 0; i < len && i < 8; i++)
		data[i] = (uint8_t)(result >> (8 * i));
}
