/*
 * async_pf: the workload of the APF seed results (docs/reference/apf-seed-results.md).
 *
 *   async_pf [-l PASSES] [-m MB] [-M MARGIN_MB] [-t] [-q]
 *
 * Thread (a) maps MB of anonymous memory (default: MemAvailable minus a margin) and
 * writes every byte of it, PASSES times. With -t, thread (b) runs a calculation while
 * (a) works and counts its steps: when (a) waits on a page fault that the host resolves
 * asynchronously (APF), (b) gets the vCPU, so the count shows what APF buys.
 *
 * Output: a progress line per pass (unless -q), then a human line and one
 * machine-readable line that apflab parses (apflab/linux/workload.py):
 *
 *   ASYNC_PF_RESULT version=1 passes=N mem_mb=M threads=T time_s=S calc=C majflt=F minflt=F apf=A|na
 *
 * time_s is the wall time of thread (a)'s job, calc the calculation steps (printed like
 * the seed's "1806m" in the human line), majflt/minflt come from getrusage, and apf is the
 * growth of the guest's async-PF interrupt counters in /proc/interrupts over the job,
 * "na" when the kernel exposes none (every stock kernel: the APF series is out of tree).
 *
 * Exit status: 0 done, 1 could not run (memory, threads), 2 bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define RESULT_VERSION 1
#define CALC_CHUNK 4096

static atomic_bool stop_calc;
static atomic_uint_fast64_t calc_steps;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Thread (b): xorshift steps, published every CALC_CHUNK so the count is exact to a chunk. */
static void *calculation(void *arg)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL, steps = 0;

	(void)arg;
	while (!atomic_load_explicit(&stop_calc, memory_order_relaxed)) {
		for (int i = 0; i < CALC_CHUNK; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
		steps += CALC_CHUNK;
		atomic_store_explicit(&calc_steps, steps, memory_order_relaxed);
	}
	/* Keep x alive so the loop is not optimised away. */
	__asm__ volatile("" : : "r"(x));
	return NULL;
}

/* MemAvailable in MB, or -1 when /proc/meminfo does not say. */
static long mem_available_mb(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb / 1024;
}

/*
 * Sum of the per-CPU counts of /proc/interrupts lines naming async PF (the page-ready
 * interrupt of the APF series), or -1 when there is no such line.
 */
static long long apf_interrupts(void)
{
	FILE *f = fopen("/proc/interrupts", "r");
	char line[4096];
	long long total = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strcasestr(line, "async") && !strcasestr(line, "apf"))
			continue;
		char *p = strchr(line, ':');
		long long sum = 0;

		if (!p)
			continue;
		p++;
		for (;;) {
			char *end;
			long long v = strtoll(p, &end, 10);

			if (end == p)
				break;
			sum += v;
			p = end;
		}
		total = (total < 0 ? 0 : total) + sum;
	}
	fclose(f);
	return total;
}

static void usage(FILE *to)
{
	fprintf(to, "usage: async_pf [-l PASSES] [-m MB] [-M MARGIN_MB] [-t] [-q]\n"
		    "  -l PASSES  passes of thread (a) over its memory (default 1)\n"
		    "  -m MB      memory thread (a) writes (default: MemAvailable minus the margin)\n"
		    "  -M MB      margin left free when -m is not given (default 64)\n"
		    "  -t         run the calculation thread (b) alongside and count its steps\n"
		    "  -q         quiet: no progress lines, only the two result lines\n");
}

static int parse_long(const char *s, long min, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	long passes = 1, mem_mb = -1, margin_mb = 64;
	int with_calc = 0, quiet = 0, opt;

	while ((opt = getopt(argc, argv, "l:m:M:tqh")) != -1) {
		switch (opt) {
		case 'l':
			if (parse_long(optarg, 1, &passes)) {
				fprintf(stderr, "async_pf: -l wants a pass count >= 1, got '%s'\n", optarg);
				return 2;
			}
			break;
		case 'm':
			if (parse_long(optarg, 1, &mem_mb)) {
				fprintf(stderr, "async_pf: -m wants megabytes >= 1, got '%s'\n", optarg);
				return 2;
			}
			break;
		case 'M':
			if (parse_long(optarg, 0, &margin_mb)) {
				fprintf(stderr, "async_pf: -M wants megabytes >= 0, got '%s'\n", optarg);
				return 2;
			}
			break;
		case 't':
			with_calc = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "async_pf: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (mem_mb < 0) {
		long avail = mem_available_mb();

		if (avail < 0) {
			fprintf(stderr, "async_pf: /proc/meminfo has no MemAvailable: give -m MB\n");
			return 1;
		}
		mem_mb = avail - margin_mb;
		if (mem_mb < 1) {
			fprintf(stderr, "async_pf: only %ld MB available, margin %ld MB: nothing left to write\n",
				avail, margin_mb);
			return 1;
		}
	}

	size_t bytes = (size_t)mem_mb << 20;
	unsigned char *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (mem == MAP_FAILED) {
		fprintf(stderr, "async_pf: cannot map %ld MB: %s\n", mem_mb, strerror(errno));
		return 1;
	}

	pthread_t calc;
	struct rusage ru;
	long long apf_before = apf_interrupts();

	if (with_calc && pthread_create(&calc, NULL, calculation, NULL)) {
		fprintf(stderr, "async_pf: cannot start the calculation thread\n");
		return 1;
	}
	/* Thread (b) runs beside every pass: wait (at most 1 s) for its first chunk, so a short job
	 * on a busy host cannot end before the thread was ever scheduled (calc=0). */
	for (double t0 = now_s(); with_calc && !atomic_load(&calc_steps) && now_s() - t0 < 1.0;)
		sched_yield();
	if (!quiet)
		printf("async_pf: writing %ld MB, %ld pass%s%s\n", mem_mb, passes, passes == 1 ? "" : "es",
		       with_calc ? ", calculation thread on" : "");
	fflush(stdout);

	double start = now_s();

	for (long pass = 1; pass <= passes; pass++) {
		memset(mem, (int)(pass & 0xff), bytes);
		/* The stores must happen: the buffer escapes into an opaque asm. */
		__asm__ volatile("" : : "r"(mem) : "memory");
		if (!quiet) {
			printf("async_pf: pass %ld/%ld done at %.3f s calc=%llu\n", pass, passes, now_s() - start,
			       (unsigned long long)atomic_load(&calc_steps));
			fflush(stdout);
		}
	}

	double elapsed = now_s() - start;

	atomic_store(&stop_calc, 1);
	if (with_calc)
		pthread_join(calc, NULL);

	unsigned long long steps = atomic_load(&calc_steps);
	long long apf_after = apf_interrupts();
	char apf[32] = "na";

	if (apf_before >= 0 && apf_after >= 0)
		snprintf(apf, sizeof(apf), "%lld", apf_after - apf_before);
	getrusage(RUSAGE_SELF, &ru);
	munmap(mem, bytes);

	printf("async_pf: %ld pass%s over %ld MB in %.3f s, calculation %llum, %ld major faults, APF %s\n", passes,
	       passes == 1 ? "" : "es", mem_mb, elapsed, steps / 1000000ULL, ru.ru_majflt, apf);
	printf("ASYNC_PF_RESULT version=%d passes=%ld mem_mb=%ld threads=%d time_s=%.6f calc=%llu majflt=%ld "
	       "minflt=%ld apf=%s\n",
	       RESULT_VERSION, passes, mem_mb, with_calc ? 2 : 1, elapsed, steps, ru.ru_majflt, ru.ru_minflt, apf);
	fflush(stdout);
	return 0;
}
