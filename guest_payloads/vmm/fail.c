/*
 * One-line diagnostics. Every failure is one line on stderr naming what failed, why
 * (the errno text) and what to check, so a harness can attach it to a failed case.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm.h"

void fail(const char *fmt, ...)
{
	va_list ap;
	char msg[1024];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uart_flush();
	fprintf(stderr, "apflab-vmm: error: %s\n", msg);
	fflush(stderr);
	uart_restore_tty();
	_Exit(1);
}

void fail_ioctl(const char *what, int err, const char *hint)
{
	fail("%s failed: %s (errno %d)%s%s", what, strerror(err), err, hint && *hint ? "; " : "", hint ? hint : "");
}

void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("apflab-vmm: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fflush(stderr);
}

double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
