/*
 * The byte stream to the host's SDEI dispatcher / controller (docs/vmm-channel.md):
 *   tcp:HOST:PORT     connect (retried until the connect timeout), e.g. tcp:10.0.2.2:PORT
 *                     from a nested L1 through QEMU's user networking;
 *   listen:ADDR:PORT  accept one connection (bounded by the same timeout), e.g. for an
 *                     SSH port forward to a board;
 *   fd:R[,W]          an fd pair the VMM inherited (a pipe, a socketpair, an SSH channel).
 * Lines are written whole under a lock (several vCPU threads send); one reader thread
 * reads them (host.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm.h"

struct channel {
	int rfd, wfd;
	char spec[128];
	pthread_mutex_t wlock;
	char buf[CHANNEL_LINE_MAX * 2];
	size_t have;
};

static void split_host_port(const char *rest, char *host, size_t hsize, char *port, size_t psize, const char *spec)
{
	const char *colon = strrchr(rest, ':');
	if (!colon || colon == rest || !colon[1])
		fail("bad channel %s: expected HOST:PORT after the scheme (e.g. tcp:10.0.2.2:5555)", spec);
	snprintf(host, hsize, "%.*s", (int)(colon - rest), rest);
	snprintf(port, psize, "%s", colon + 1);
}

/* Numeric IPv4 only: a static binary cannot use glibc's resolver (NSS), and the
 * nested guest and the boards are reached by address. */
static struct sockaddr_in address(const char *host, const char *port, const char *spec)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char *end;
	long p = strtol(port, &end, 10);
	if (*end || p <= 0 || p > 65535)
		fail("channel %s: port \"%s\" is not a number 1..65535", spec, port);
	sa.sin_port = htons((uint16_t)p);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		fail("channel %s: \"%s\" is not a numeric IPv4 address (no name lookup in a static VMM)", spec, host);
	return sa;
}

static int fcntl_ok(int fd)
{
	return fcntl(fd, F_GETFD);
}

static void tune(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* one small line per call */
}

static int connect_tcp(const char *spec, const char *rest, double timeout)
{
	char host[96], port[16];
	split_host_port(rest, host, sizeof(host), port, sizeof(port), spec);
	struct sockaddr_in sa = address(host, port, spec);
	double deadline = now_seconds() + timeout;
	int last = 0;
	while (now_seconds() < deadline) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			fail_ioctl("socket(AF_INET)", errno, "the kernel needs IPv4 networking");
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			tune(fd);
			return fd;
		}
		last = errno;
		close(fd);
		usleep(100000); /* the host may not listen yet: retry until the deadline */
	}
	fail("channel %s: could not connect within %.0f s (%s); is the host listening, and is the guest's network up "
	     "(QEMU user networking: the host is 10.0.2.2)?",
	     spec, timeout, strerror(last));
}

static int accept_tcp(const char *spec, const char *rest, double timeout)
{
	char host[96], port[16];
	split_host_port(rest, host, sizeof(host), port, sizeof(port), spec);
	struct sockaddr_in sa = address(host, port, spec);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (lfd < 0)
		fail_ioctl("socket(AF_INET)", errno, "the kernel needs IPv4 networking");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0)
		fail("channel %s: cannot listen on %s:%s (%s); pick a free port", spec, host, port, strerror(errno));
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	int r = poll(&p, 1, (int)(timeout * 1000));
	if (r <= 0)
		fail("channel %s: nobody connected within %.0f s; start the host side (or its SSH port forward) first",
		     spec, timeout);
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		fail_ioctl("accept(channel)", errno, "the listening socket failed");
	close(lfd);
	tune(fd);
	return fd;
}

struct channel *channel_open(const char *spec, double connect_timeout)
{
	struct channel *ch = calloc(1, sizeof(*ch));
	if (!ch)
		fail("out of memory for the channel");
	snprintf(ch->spec, sizeof(ch->spec), "%s", spec);
	pthread_mutex_init(&ch->wlock, NULL);
	if (strncmp(spec, "tcp:", 4) == 0) {
		ch->rfd = ch->wfd = connect_tcp(spec, spec + 4, connect_timeout);
	} else if (strncmp(spec, "listen:", 7) == 0) {
		ch->rfd = ch->wfd = accept_tcp(spec, spec + 7, connect_timeout);
	} else if (strncmp(spec, "fd:", 3) == 0) {
		char *end;
		long r = strtol(spec + 3, &end, 10), w = r;
		if (*end == ',')
			w = strtol(end + 1, &end, 10);
		if (*end || end == spec + 3 || r < 0 || w < 0)
			fail("bad channel %s: expected fd:R or fd:R,W with file descriptor numbers", spec);
		if (fcntl_ok((int)r) < 0 || fcntl_ok((int)w) < 0)
			fail("channel %s: file descriptor %ld or %ld is not open in this process", spec, r, w);
		ch->rfd = (int)r;
		ch->wfd = (int)w;
	} else {
		fail("unknown channel %s: use tcp:HOST:PORT, listen:ADDR:PORT or fd:R[,W]", spec);
	}
	return ch;
}

const char *channel_describe(const struct channel *ch)
{
	return ch->spec;
}

void channel_send(struct channel *ch, const char *fmt, ...)
{
	static char line[CHANNEL_LINE_MAX + 2];
	va_list ap;
	pthread_mutex_lock(&ch->wlock);
	va_start(ap, fmt);
	int n = vsnprintf(line, CHANNEL_LINE_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= CHANNEL_LINE_MAX - 1)
		fail("internal: a channel line of %d characters is over the limit %d", n, CHANNEL_LINE_MAX);
	line[n++] = '\n';
	const char *p = line;
	size_t left = (size_t)n;
	while (left > 0) {
		ssize_t w = write(ch->wfd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fail("channel %s: write failed (%s); the host side went away", ch->spec,
			     w < 0 ? strerror(errno) : "closed");
		p += w;
		left -= (size_t)w;
	}
	pthread_mutex_unlock(&ch->wlock);
}

int channel_readline(struct channel *ch, char *out, size_t size, double timeout)
{
	double deadline = now_seconds() + timeout;
	for (;;) {
		char *nl = memchr(ch->buf, '\n', ch->have);
		if (nl) {
			size_t len = (size_t)(nl - ch->buf);
			if (len >= size)
				fail("channel %s: a line of %zu characters from the host is over the limit %zu", ch->spec,
				     len, size - 1);
			memcpy(out, ch->buf, len);
			out[len] = 0;
			if (len && out[len - 1] == '\r')
				out[len - 1] = 0;
			ch->have -= len + 1;
			memmove(ch->buf, nl + 1, ch->have);
			return 0;
		}
		if (ch->have == sizeof(ch->buf))
			fail("channel %s: no newline in %zu bytes from the host", ch->spec, ch->have);
		if (timeout >= 0) {
			double left = deadline - now_seconds();
			struct pollfd p = {.fd = ch->rfd, .events = POLLIN};
			if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) == 0)
				return -2;
		}
		ssize_t n = read(ch->rfd, ch->buf + ch->have, sizeof(ch->buf) - ch->have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		ch->have += (size_t)n;
	}
}
