/*
 * PL011 UART driver (Arm PrimeCell UART, DDI 0183): QEMU virt's console at
 * 0x09000000. Polled: data register at 0x00, flag register at 0x18.
 */
#include "uart.h"

#ifndef UART_BASE
#define UART_BASE 0x09000000UL
#endif

#define UART_DR 0x00
#define UART_FR 0x18
#define FR_RXFE (1u << 4)
#define FR_TXFF (1u << 5)

/* Bound on waiting for room in the TX FIFO: a stuck UART drops the byte, never hangs. */
#define TX_SPIN_LIMIT 1000000

static inline u32 rd(u64 off) { return *(volatile u32 *)(UART_BASE + off); }
static inline void wr(u64 off, u32 v) { *(volatile u32 *)(UART_BASE + off) = v; }

void uart_init(void)
{
	/* Firmware or QEMU left the UART enabled at its reset configuration. */
}

void uart_putc(char c)
{
	for (int i = 0; i < TX_SPIN_LIMIT && (rd(UART_FR) & FR_TXFF); i++)
		;
	wr(UART_DR, (u32)(u8)c);
}

int uart_getc(void)
{
	while (rd(UART_FR) & FR_RXFE)
		;
	return (int)(rd(UART_DR) & 0xff);
}

/* A PL011 says nothing about its host: no host-step call (it may be UNDEFINED there). */
int uart_host_steps(void)
{
	return 0;
}
