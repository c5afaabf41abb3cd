/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench: figures for the daemon, printed, not asserted (the machines are
 * shared and noisy; see scripts/bench).  Drives the real binary with the
 * test front-end (frontend.c): real sockets, memfd memory, eventfds.
 *
 *  1. Throughput, unlimited, one guest keeping its ring full, for a few
 *     buffer sizes; baseline: read(2) of the same source in this process,
 *     same sizes, same run.  Ratio = daemon / baseline.
 *  2. Rate-limit accuracy: configured vs delivered bytes per second for a
 *     few --max-bytes/--period/--socket-count settings, per-guest figures
 *     and Jain's fairness index.
 *  3. Frugality: the daemon's RSS and its CPU time while guests wait on
 *     the budget.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "frontend.h"

#define MAX_GUESTS	8

struct run {
	struct vd	 vd;
	struct fe	 fe[MAX_GUESTS];
	uint64_t	 buf[MAX_GUESTS];	/* one guest buffer each */
	unsigned	 n;
	uint32_t	 buflen;
};

static void
die(const char *what)
{
	fprintf(stderr, "bench: %s: %s\n", what, fe_errstr());
	exit(1);
}

/* Starts the daemon with n sockets and args, opens n front-ends. */
static void
run_start(struct run *r, unsigned n, uint32_t buflen, uint16_t qsize,
    const char *const *args)
{
	struct vd_opts o;
	struct fe_cfg c;
	char path[256];
	unsigned i;

	memset(r, 0, sizeof(*r));
	r->n = n;
	r->buflen = buflen;
	vd_opts_init(&o);
	o.nsock = n;
	o.quiet = true;
	for (i = 0; args[i] != NULL && i < 15; i++)
		o.args[i] = args[i];
	if (vd_init(&r->vd) < 0 || vd_spawn(&r->vd, &o) < 0)
		die("starting the daemon");
	for (i = 0; i < n; i++) {
		fe_cfg_init(&c);
		c.qsize = qsize;
		c.event_idx = true;
		c.mem_size = 4u << 20;
		fe_init(&r->fe[i]);
		if (fe_open(&r->fe[i], vd_sock(&r->vd, i, path, sizeof(path)),
		    &c) < 0)
			die("front-end");
		r->buf[i] = fe_alloc(&r->fe[i], buflen, 64);
		if (r->buf[i] == UINT64_MAX)
			die("guest buffer");
	}
}

static void
run_stop(struct run *r)
{
	unsigned i;

	for (i = 0; i < r->n; i++)
		fe_close(&r->fe[i]);
	vd_stop(&r->vd, 3000);
	vd_cleanup(&r->vd);
}

/* Every descriptor points at the guest's one buffer: data is not read. */
static void
refill(struct run *r, unsigned i)
{
	struct fe *fe = &r->fe[i];
	bool posted = false;

	while (fe_free_descs(fe) > 0) {
		if (fe_post1(fe, r->buf[i], r->buflen) < 0)
			die("post");
		posted = true;
	}
	if (posted)
		fe_kick(fe);
}

/*
 * Keeps every ring full for dur_ms after the first completion of guest
 * 0; counts bytes completed in [t0 + skip_ms, t0 + skip_ms + win_ms).
 */
static void
pump(struct run *r, int skip_ms, int win_ms, uint64_t *bytes,
    uint64_t *reqs, bool *zero_len)
{
	struct pollfd pfd[MAX_GUESTS];
	int64_t t0 = -1, now, from = 0, to = 0;
	unsigned i;

	memset(bytes, 0, r->n * sizeof(*bytes));
	memset(reqs, 0, r->n * sizeof(*reqs));
	*zero_len = false;
	for (i = 0; i < r->n; i++)
		refill(r, i);
	for (;;) {
		for (i = 0; i < r->n; i++) {
			pfd[i].fd = r->fe[i].call;
			pfd[i].events = POLLIN;
		}
		poll(pfd, r->n, 1);
		now = fe_now_ms();
		for (i = 0; i < r->n; i++) {
			struct fe_used_elem u;

			fe_drain_calls(&r->fe[i]);
			while (fe_get_used(&r->fe[i], &u)) {
				if (t0 < 0) {
					t0 = now;
					from = t0 + skip_ms;
					to = from + win_ms;
				}
				if (u.len == 0)
					*zero_len = true;
				if (now >= from && now < to) {
					bytes[i] += u.len;
					reqs[i]++;
				}
			}
			refill(r, i);
		}
		if (t0 >= 0 && now >= to)
			break;
		if (t0 < 0 && !vd_alive(&r->vd))
			die("daemon died");
	}
}

static double
baseline_rate(const char *path, uint32_t len, int ms)
{
	static char buf[1 << 16];
	int64_t start, end;
	uint64_t total = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0) {
		perror(path);
		exit(1);
	}
	start = fe_now_ns();
	end = start + (int64_t)ms * 1000000;
	while (fe_now_ns() < end) {
		ssize_t n = read(fd, buf, len);

		if (n <= 0)
			break;
		total += (uint64_t)n;
	}
	close(fd);
	return (double)total * 1e9 / (double)(fe_now_ns() - start);
}

/* Field of /proc/<pid>/status in kB. */
static long
proc_status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	long v = -1;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, field, strlen(field)) == 0)
			v = strtol(line + strlen(field) + 1, NULL, 10);
	fclose(fp);
	return v;
}

/* utime + stime of the process, in clock ticks. */
static long
proc_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	if (fgets(buf, sizeof(buf), fp) == NULL) {
		fclose(fp);
		return -1;
	}
	fclose(fp);
	/* Fields after the command name, which ends with ')'. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	    &ut, &st) != 2)
		return -1;
	return (long)(ut + st);
}

static void
bench_throughput(void)
{
	static const uint32_t sizes[] = { 64, 4096, 65536 };
	const char *args[] = { NULL };
	uint64_t bytes[1], reqs[1];
	unsigned i;
	bool zero;

	printf("== throughput, unlimited, 1 guest, ring of 256 kept full, "
	    "source /dev/urandom ==\n");
	printf("%8s %14s %14s %16s %8s %11s\n", "buffer", "daemon MB/s",
	    "requests/s", "baseline MB/s", "ratio", "daemon CPU");
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct run r;
		double rate, base, cpu;
		long cpu0, cpu1;

		run_start(&r, 1, sizes[i], 256, args);
		cpu0 = proc_cpu_ticks(r.vd.pid);
		pump(&r, 100, 1500, bytes, reqs, &zero);
		cpu1 = proc_cpu_ticks(r.vd.pid);
		rate = (double)bytes[0] / 1.5;
		/* The pump's window is 1.5 s, plus the 0.1 s it skips. */
		cpu = 100.0 * (double)(cpu1 - cpu0) /
		    (double)sysconf(_SC_CLK_TCK) / 1.6;
		if (i == sizeof(sizes) / sizeof(sizes[0]) - 1)
			printf("(daemon RSS %ld kB, peak %ld kB, %ld threads "
			    "with one guest connected)\n",
			    proc_status_kb(r.vd.pid, "VmRSS:"),
			    proc_status_kb(r.vd.pid, "VmHWM:"),
			    proc_status_kb(r.vd.pid, "Threads:"));
		run_stop(&r);
		base = baseline_rate("/dev/urandom", sizes[i], 1500);
		printf("%8u %14.2f %14.0f %16.2f %8.2f %10.0f%%%s\n", sizes[i],
		    rate / 1e6, (double)reqs[0] / 1.5, base / 1e6,
		    rate / base, cpu, zero ? "  ZERO-LENGTH ENTRY!" : "");
	}
}

struct setting {
	const char	*max;
	const char	*period;
	unsigned	 guests;
	int		 periods;	/* window length in periods */
};

static void
bench_ratelimit(void)
{
	static const struct setting set[] = {
		{ "4096", "100", 1, 20 },
		{ "5000", "1000", 1, 3 },
		{ "100000", "10", 1, 200 },
		{ "40000", "100", 4, 20 },
		{ "1000000", "50", 2, 40 },
		{ "3", "100", 4, 20 },
	};
	uint64_t bytes[MAX_GUESTS], reqs[MAX_GUESTS];
	unsigned s, i;
	bool zero;

	printf("\n== rate limit: configured vs delivered (window of whole "
	    "periods, rings kept full) ==\n");
	printf("%10s %7s %3s %13s %13s %7s %7s  %s\n", "max-bytes", "period",
	    "n", "config B/s", "deliv B/s", "ratio", "Jain", "per guest B/s");
	for (s = 0; s < sizeof(set) / sizeof(set[0]); s++) {
		const struct setting *t = &set[s];
		const char *args[] = { "-m", t->max, "-p", t->period, NULL };
		int period = atoi(t->period);
		double conf, deliv = 0, x[MAX_GUESTS], sum = 0;
		double win_s = (double)period * t->periods / 1000.0;
		long cpu0, cpu1;
		struct run r;

		run_start(&r, t->guests, 4096, 64, args);
		cpu0 = proc_cpu_ticks(r.vd.pid);
		/* Skip half a period: the first burst is not in the window. */
		pump(&r, period / 2, period * t->periods, bytes, reqs, &zero);
		cpu1 = proc_cpu_ticks(r.vd.pid);
		conf = atof(t->max) * 1000.0 / period;
		for (i = 0; i < t->guests; i++) {
			x[i] = (double)bytes[i] / win_s;
			sum += x[i];
		}
		deliv = sum;
		printf("%10s %7s %3u %13.1f %13.1f %7.3f %7.4f ", t->max,
		    t->period, t->guests, conf, deliv, deliv / conf,
		    fe_jain(x, t->guests));
		for (i = 0; i < t->guests; i++)
			printf(" %.1f", x[i]);
		printf("%s\n", zero ? "  ZERO-LENGTH ENTRY!" : "");
		if (s == 0)
			printf("  (daemon CPU over that %.1f s of throttled "
			    "reading: %ld ticks of %ld/s)\n", win_s +
			    period / 2000.0, cpu1 - cpu0, sysconf(_SC_CLK_TCK));
		run_stop(&r);
	}
}

int
main(void)
{
	char rundir[] = "/tmp/vrng-bench.XXXXXX";

	if (mkdtemp(rundir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	setenv("VRNG_IT_RUNDIR", rundir, 1);
	if (getenv("VRNG_BIN") == NULL)
		setenv("VRNG_BIN", "./vhost-device-rng", 1);
	printf("daemon: %s\n", getenv("VRNG_BIN"));
	bench_throughput();
	bench_ratelimit();
	if (system("rm -rf /tmp/vrng-bench.*") != 0)
		fprintf(stderr, "bench: could not remove %s\n", rundir);
	return 0;
}
