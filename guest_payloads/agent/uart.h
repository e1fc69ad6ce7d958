/*
 * The console UART: a small interface so a board's UART can replace the PL011.
 */
#ifndef APFLAB_UART_H
#define APFLAB_UART_H

#include "types.h"

void uart_init(void);
void uart_putc(char c);
/* Blocks until a byte arrives: the agent idles here between requests. */
int uart_getc(void);
/* 1 when the console is apflab-vmm's and its host serves the host-step call (agent.c). */
int uart_host_steps(void);

#endif
