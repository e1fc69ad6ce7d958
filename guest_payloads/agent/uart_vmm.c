/*
 * The console of apflab-vmm's fast console device (docs/vmm-channel.md, "The fast
 * console"), for the agent run under apflab-vmm: `make UART=vmm`. Output is kept in a
 * buffer and sent a line at a time (one MMIO write); input arrives in batches (one MMIO
 * read fills the buffer, the VMM waiting a bounded time for some). A PL011 costs two
 * MMIO exits per character, which dominates a round trip under nested KVM.
 */
#include "uart.h"

#define CONS_BASE 0x09100000UL
#define CONS_TX_BUF 0x00
#define CONS_RX_BUF 0x08
#define CONS_TX_SEND 0x10
#define CONS_RX_FILL 0x18
#define CONS_HOST 0x28
#define BUF_SIZE 1024

static char txbuf[BUF_SIZE], rxbuf[BUF_SIZE];
static u32 txlen, rxlen, rxpos;

static inline void wr64(u64 off, u64 v) { *(volatile u64 *)(CONS_BASE + off) = v; }
static inline u32 rd32(u64 off) { return *(volatile u32 *)(CONS_BASE + off); }

void uart_init(void)
{
	/* MMU off: virtual = physical, so the buffers' addresses are what the VMM needs. */
	wr64(CONS_TX_BUF, (u64)txbuf);
	wr64(CONS_RX_BUF, (u64)rxbuf);
}

void uart_putc(char c)
{
	txbuf[txlen++] = c;
	if (c == '\n' || txlen == BUF_SIZE) {
		__asm__ volatile("dsb sy" ::: "memory");
		wr64(CONS_TX_SEND, txlen);
		txlen = 0;
	}
}

int uart_getc(void)
{
	while (rxpos >= rxlen) {
		u32 n = rd32(CONS_RX_FILL);
		rxlen = n <= BUF_SIZE ? n : 0;
		rxpos = 0;
	}
	return (int)(u8)rxbuf[rxpos++];
}

/* The device says whether apflab-vmm's host serves the host-step call (it does when it
 * dispatches SDEI: docs/vmm-channel.md). */
int uart_host_steps(void)
{
	return rd32(CONS_HOST) & 1;
}
