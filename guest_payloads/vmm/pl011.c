/*
 * A PL011 (Arm PrimeCell UART, DDI 0183) at QEMU virt's 0x09000000, emulated through
 * KVM_EXIT_MMIO (api.rst 5, "KVM_EXIT_MMIO") and relayed to the VMM's stdin/stdout,
 * so the agent protocol runs over the VMM's stdio unchanged (the L1 console, or an
 * SSH channel on a board). The relay (input ring, output buffer) also serves the fast
 * console of fastcons.c through uart_rx_take() and uart_tx_bytes().
 *
 * What the agent uses: DR (0x000) and FR (0x018). The identification registers read
 * as a PL011's; every other register reads 0 and ignores writes. No interrupt line:
 * the agent polls. Output is buffered and flushed at each newline, before the guest
 * waits for input, and every 20 ms by the main thread. A guest polling FR for input
 * (two FR reads in a row, no DR write between: a transmitter reads FR once before each
 * DR write) waits, bounded (50 ms), for stdin, so an idle agent does not spin the host.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "vmm.h"

#define UART_DR 0x000
#define UART_FR 0x018
#define FR_RXFE (1u << 4)
#define FR_TXFE (1u << 7)
#define RX_SIZE 4096
#define TX_SIZE 4096
#define RX_WAIT_NS 50000000L

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rx_ready = PTHREAD_COND_INITIALIZER;
static pthread_cond_t rx_room = PTHREAD_COND_INITIALIZER;
static uint8_t rx[RX_SIZE];
static size_t rx_head, rx_count;
static int rx_eof, eof_exits;
static int polling_fr; /* the last access was an FR read: a further one is an input poll */
static char tx[TX_SIZE];
static size_t tx_len;
static struct termios saved_tty;
static int tty_saved;

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* stdout gone: nothing to tell it */
		}
		p += w;
		n -= (size_t)w;
	}
}

static void flush_locked(void)
{
	if (tx_len) {
		write_all(1, tx, tx_len);
		tx_len = 0;
	}
}

void uart_flush(void)
{
	pthread_mutex_lock(&lock);
	flush_locked();
	pthread_mutex_unlock(&lock);
}

void uart_wake(void)
{
	pthread_mutex_lock(&lock);
	pthread_cond_broadcast(&rx_ready);
	pthread_mutex_unlock(&lock);
}

void uart_restore_tty(void)
{
	if (tty_saved) {
		tcflush(0, TCIFLUSH); /* a request this VM did not take is not the next reader's input */
		tcsetattr(0, TCSANOW, &saved_tty);
	}
}

static void *stdin_reader(void *arg)
{
	(void)arg;
	uint8_t buf[512];
	for (;;) {
		ssize_t n = read(0, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		pthread_mutex_lock(&lock);
		if (n <= 0) {
			rx_eof = 1;
			pthread_cond_broadcast(&rx_ready);
			pthread_mutex_unlock(&lock);
			if (eof_exits)
				vm_stop(0, "stdin closed");
			return NULL;
		}
		for (ssize_t i = 0; i < n; i++) {
			while (rx_count == RX_SIZE)
				pthread_cond_wait(&rx_room, &lock); /* the guest drains it: back-pressure */
			rx[(rx_head + rx_count) % RX_SIZE] = buf[i];
			rx_count++;
		}
		pthread_cond_broadcast(&rx_ready);
		pthread_mutex_unlock(&lock);
	}
}

void uart_start(int exit_on_eof)
{
	eof_exits = exit_on_eof;
	if (isatty(0) && tcgetattr(0, &saved_tty) == 0) {
		/* Raw: bytes as sent, no echo, no line editing (the agent does its own). */
		struct termios raw = saved_tty;
		raw.c_iflag &= ~(unsigned)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
		raw.c_oflag &= ~(unsigned)OPOST;
		raw.c_lflag &= ~(unsigned)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
		raw.c_cflag &= ~(unsigned)(CSIZE | PARENB);
		raw.c_cflag |= CS8;
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(0, TCSANOW, &raw) == 0)
			tty_saved = 1;
	}
	pthread_t t;
	int err = pthread_create(&t, NULL, stdin_reader, NULL);
	if (err)
		fail_ioctl("pthread_create(stdin reader)", err, "out of threads or memory");
	pthread_detach(t);
}

/* FR with no input pending: wait a bounded time for some (or for a kick). */
static void wait_rx_locked(atomic_int *abort_wait)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += RX_WAIT_NS;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (rx_count == 0 && !rx_eof && !atomic_load(abort_wait) && !atomic_load(&vm.stopping))
		if (pthread_cond_timedwait(&rx_ready, &lock, &until) == ETIMEDOUT)
			break;
}

static uint32_t read_reg(uint64_t offset, atomic_int *abort_wait)
{
	switch (offset) {
	case UART_DR: {
		if (rx_count == 0)
			return 0;
		uint8_t c = rx[rx_head];
		rx_head = (rx_head + 1) % RX_SIZE;
		rx_count--;
		pthread_cond_signal(&rx_room);
		return c;
	}
	case UART_FR:
		if (rx_count == 0 && polling_fr) {
			flush_locked(); /* the guest waits for input: show what it said */
			wait_rx_locked(abort_wait);
		}
		polling_fr = 1;
		return FR_TXFE | (rx_count ? 0 : FR_RXFE);
	/* PeriphID0-3 and PCellID0-3 of a PL011 r1p5 (DDI 0183, 3.3.14-15) */
	case 0xFE0: return 0x11;
	case 0xFE4: return 0x10;
	case 0xFE8: return 0x34;
	case 0xFEC: return 0x00;
	case 0xFF0: return 0x0D;
	case 0xFF4: return 0xF0;
	case 0xFF8: return 0x05;
	case 0xFFC: return 0xB1;
	default:
		return 0;
	}
}

size_t uart_rx_take(uint8_t *dst, size_t max, atomic_int *abort_wait)
{
	size_t n = 0;
	pthread_mutex_lock(&lock);
	if (rx_count == 0) {
		flush_locked(); /* the guest waits for input: show what it said */
		wait_rx_locked(abort_wait);
	}
	while (n < max && rx_count > 0) {
		dst[n++] = rx[rx_head];
		rx_head = (rx_head + 1) % RX_SIZE;
		rx_count--;
	}
	pthread_cond_signal(&rx_room);
	pthread_mutex_unlock(&lock);
	return n;
}

void uart_tx_bytes(const uint8_t *src, size_t n)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n; i++) {
		if (tx_len == TX_SIZE)
			flush_locked();
		tx[tx_len++] = (char)src[i];
	}
	flush_locked();
	pthread_mutex_unlock(&lock);
}

void uart_access(uint64_t offset, uint8_t *data, uint32_t len, int is_write, atomic_int *abort_wait)
{
	pthread_mutex_lock(&lock);
	if (is_write) {
		polling_fr = 0;
		if (offset == UART_DR) {
			char c = (char)data[0];
			if (tx_len == TX_SIZE)
				flush_locked();
			tx[tx_len++] = c;
			if (c == '\n')
				flush_locked();
		}
	} else {
		uint32_t v = read_reg(offset & ~3ULL, abort_wait);
		if ((offset & ~3ULL) != UART_FR)
			polling_fr = 0;
		memset(data, 0, len);
		for (uint32_t i = 0; i < len && i < 4; i++)
			data[i] = (uint8_t)(v >> (8 * i));
	}
	pthread_mutex_unlock(&lock);
}
