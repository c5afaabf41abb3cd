/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench: figures for the daemon, measured, never asserted (the machines
 * are shared and noisy).  scripts/bench runs it and renders the table.
 *
 * Usage: build/bench [-o RAW.tsv] [-p PARTS] DAEMON [BASE_DAEMON]
 *
 * Every figure is written as one tab-separated row (see row()): the
 * daemon's median and spread, a baseline measured in the same run (or a
 * fixed reference, said so), and the BASE daemon's figure when one is
 * given.  Where both daemons are measured, the runs are interleaved
 * (ours, base, baseline, ours, ...) so that a noisy neighbour hurts all
 * of them alike.  Progress goes to stderr.
 *
 * The front-end is the integration tests' (frontend.c): real sockets,
 * memfd memory, eventfds, EVENT_IDX negotiated as QEMU does.  It behaves
 * as a Linux driver: it asks for a call for the next used entry
 * (used_event) and kicks only when avail_event says the device wants it.
 *
 *  1. System calls per request: strace -f -c attached to the running
 *     daemon around exactly N requests, minus an idle attach of the same
 *     daemon (what attaching and detaching cost by themselves).
 *  2. 64 B round trip (kick -> call) percentiles, against an eventfd
 *     ping-pong with a forked child, interleaved in blocks.
 *  3. Bulk MB/s with the ring kept full, against read(2) of the source.
 *  4. 256 guests, one 64 B buffer in flight each, one epoll loop.
 *  5. RSS with 1 and 64 guests; CPU and wake-ups over 10 s idle.
 *  6. Rate-limit accuracy and fairness (configured vs delivered).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "frontend.h"

#define MAX_DAEMONS	2
#define MAX_RUNS	32
#define SOURCE		"/dev/urandom"

struct daemon {
	const char	*bin;
	const char	*name;		/* "ours" or "base" */
};

static struct daemon dm[MAX_DAEMONS];
static unsigned ndm;
static FILE *out;

/*
 * Runs of one figure: the median and the spread are printed; n == 0: not
 * measured.  has_mid: print mid instead of the median of v (the
 * percentile of all round trips, v holding the blocks' percentiles).
 */
struct fig {
	double		 v[MAX_RUNS];
	unsigned	 n;
	bool		 has_mid;
	double		 mid;
};

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", fe_errstr());
	exit(1);
}

static void __attribute__((format(printf, 1, 2)))
note(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
}

static void
fig_add(struct fig *f, double v)
{
	if (f->n < MAX_RUNS)
		f->v[f->n++] = v;
}

static struct fig
fig1(double v)
{
	struct fig f = { .n = 0, .has_mid = false };

	fig_add(&f, v);
	return f;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median, minimum and maximum ("-" each when not measured). */
static void
put_fig(const struct fig *f)
{
	double s[MAX_RUNS], med;

	if (f == NULL || f->n == 0) {
		fprintf(out, "\t-\t-\t-");
		return;
	}
	memcpy(s, f->v, f->n * sizeof(s[0]));
	qsort(s, f->n, sizeof(s[0]), cmp_double);
	med = f->n % 2 ? s[f->n / 2] : (s[f->n / 2 - 1] + s[f->n / 2]) / 2;
	if (f->has_mid)
		med = f->mid;
	fprintf(out, "\t%.6g\t%.6g\t%.6g", med, s[0], s[f->n - 1]);
}

/*
 * One row: section, figure, unit, ours (median, min, max), baseline kind,
 * baseline (median, min, max), base (median, min, max), runs.
 * scripts/bench computes the ratios and renders the table.
 */
static void
row(const char *sec, const char *figure, const char *unit,
    const struct fig *ours, const char *kind, const struct fig *ref,
    const struct fig *base)
{
	fprintf(out, "%s\t%s\t%s", sec, figure, unit);
	put_fig(ours);
	fprintf(out, "\t%s", kind);
	put_fig(ref);
	put_fig(ndm > 1 ? base : NULL);
	fprintf(out, "\t%u\n", ours != NULL ? ours->n : 0);
	fflush(out);
}

/* ---- the daemon and its guests ------------------------------------- */

static void
start(struct vd *vd, const struct daemon *d, unsigned nsock,
    const char *const *args)
{
	struct vd_opts o;
	unsigned i;

	vd_opts_init(&o);
	o.nsock = nsock;
	o.quiet = true;
	for (i = 0; args != NULL && args[i] != NULL && i < 15; i++)
		o.args[i] = args[i];
	setenv("VRNG_BIN", d->bin, 1);
	if (vd_init(vd) < 0 || vd_spawn(vd, &o) < 0)
		die("starting %s (%s)", d->name, d->bin);
}

static void
stop(struct vd *vd)
{
	vd_stop(vd, 3000);
	vd_cleanup(vd);
}

/* Guest i of vd with a ring of qsize and mem bytes of memory. */
static void
attach(struct fe *fe, struct vd *vd, unsigned i, uint16_t qsize,
    uint64_t mem)
{
	struct fe_cfg c;
	char path[256];

	fe_cfg_init(&c);
	c.qsize = qsize;
	c.mem_size = mem;
	c.event_idx = true;
	fe_init(fe);
	if (fe_open(fe, vd_sock(vd, i, path, sizeof(path)), &c) < 0)
		die("front-end %u", i);
	if (!(fe->acked & FE_BIT(FE_F_EVENT_IDX)))
		die("EVENT_IDX not offered");
}

/* vring_need_event(): kick only if the device asked for this one. */
static void
kick_if_needed(struct fe *fe, uint16_t old)
{
	uint16_t new = fe->avail_idx, ev;

	if (new == old)
		return;
	/* avail->idx must be visible before we read avail_event. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	ev = fe_avail_event(fe);
	if ((uint16_t)(new - ev - 1) < (uint16_t)(new - old))
		fe_kick(fe);
}

/* Asks for a call when the next entry is used (virtqueue_enable_cb). */
static void
want_call(struct fe *fe)
{
	fe_set_used_event(fe, fe->used_idx);
}

/*
 * Waits for the call eventfd and reads it.  A completion that came
 * without a call would hang a Linux guest: it is counted, not waited for
 * again.  Returns false if the daemon died or nothing came for 10 s.
 */
static unsigned missed_calls, late_kicks;

static bool
wait_call(struct fe *fe)
{
	struct pollfd p = { fe->call, POLLIN, 0 };
	uint64_t v;
	int tries;

	for (tries = 0; tries < 10; tries++) {
		if (poll(&p, 1, 1000) > 0) {
			if (read(fe->call, &v, sizeof(v)) == (ssize_t)sizeof(v))
				fe->ncalls += v;
			return true;
		}
		if (fe_used_pending(fe) > 0) {
			missed_calls++;
			return true;
		}
		/* A kick the device did not ask for must not stop the run. */
		fe_kick(fe);
		late_kicks++;
	}
	return false;
}

/* Consumes used entries; returns their bytes. */
static uint64_t
reap(struct fe *fe, uint64_t *nreq, bool *zero)
{
	struct fe_used_elem u;
	uint64_t bytes = 0;

	while (fe_get_used(fe, &u)) {
		bytes += u.len;
		(*nreq)++;
		if (u.len == 0)
			*zero = true;
	}
	return bytes;
}

/* One request, one buffer in flight: post, kick, wait for the call. */
static int64_t
round_trip(struct fe *fe, uint64_t gpa, uint32_t len)
{
	uint16_t old = fe->avail_idx;
	uint64_t n = 0;
	int64_t t0, t1;
	bool zero = false;

	want_call(fe);
	if (fe_post1(fe, gpa, len) < 0)
		die("post");
	t0 = fe_now_ns();
	kick_if_needed(fe, old);
	if (!wait_call(fe))
		die("no completion in 10 s");
	t1 = fe_now_ns();
	while (n == 0) {
		reap(fe, &n, &zero);
		if (n == 0 && !wait_call(fe))
			die("no used entry after the call");
	}
	if (zero)
		die("zero-length completion");
	return t1 - t0;
}

/*
 * Keeps the ring full of len-byte buffers (all pointing at gpa) until
 * nreq requests completed (nreq > 0), or until end_ns.  Bytes are
 * counted from from_ns on; *t_from gets the time the count started.
 */
struct pumped {
	uint64_t	 bytes;		/* completed from from_ns on */
	uint64_t	 reqs;
	int64_t		 t_from, t_end;
	bool		 zero;
};

static void
pump(struct fe *fe, uint64_t gpa, uint32_t len, uint64_t nreq,
    int64_t from_ns, int64_t end_ns, struct pumped *p)
{
	uint64_t posted = 0, done = 0, b;
	int64_t now;

	memset(p, 0, sizeof(*p));
	p->t_from = -1;
	for (;;) {
		uint16_t old = fe->avail_idx;

		b = reap(fe, &done, &p->zero);
		now = fe_now_ns();
		if (nreq == 0 && now >= from_ns) {
			if (p->t_from < 0) {
				p->t_from = now;
				b = 0;
			}
			p->bytes += b;
		}
		if (nreq > 0 ? done >= nreq : now >= end_ns)
			break;
		while (fe_free_descs(fe) > 0 && (nreq == 0 || posted < nreq)) {
			if (fe_post1(fe, gpa, len) < 0)
				die("post");
			posted++;
		}
		kick_if_needed(fe, old);
		want_call(fe);
		/* used_event must be visible before we look at used->idx. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (fe_used_pending(fe) > 0)
			continue;
		if (!wait_call(fe))
			die("ring stalled");
	}
	p->reqs = done;
	p->t_end = now;
}

/* Waits until every buffer in flight came back. */
static void
settle(struct fe *fe)
{
	uint64_t n = 0;
	bool zero = false;

	while (fe_free_descs(fe) < fe->qsize) {
		reap(fe, &n, &zero);
		if (fe_free_descs(fe) == fe->qsize)
			break;
		want_call(fe);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (fe_used_pending(fe) == 0 && !wait_call(fe))
			die("ring does not drain");
	}
}

/* ---- /proc ---------------------------------------------------------- */

/* Every thread of pid is traced by tracer. */
static bool
all_traced(pid_t pid, pid_t tracer)
{
	char path[300];
	struct dirent *de;
	bool all = true;
	int64_t t;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	if ((d = opendir(path)) == NULL)
		return false;
	while (all && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/task/%s/status",
		    (long)pid, de->d_name);
		/* A thread that ended meanwhile (-1) is not one to wait for. */
		t = proc_status_file(path, "TracerPid:");
		if (t != -1 && t != (int64_t)tracer)
			all = false;
	}
	closedir(d);
	return all;
}

/* ---- 1. system calls per request ------------------------------------ */

#define MAX_SYSCALLS	64

struct sysc {
	char		 name[32];
	double		 calls;
};

struct straced {
	struct sysc	 s[MAX_SYSCALLS];
	unsigned	 n;
	double		 total;
};

/* The summary of strace -c: "... calls [errors] name", then "total". */
static void
parse_strace(const char *file, struct straced *r)
{
	char line[256];
	FILE *fp;

	memset(r, 0, sizeof(*r));
	if ((fp = fopen(file, "r")) == NULL)
		die("strace output %s", file);
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *tok[8], *save = NULL, *t;
		unsigned nt = 0;

		for (t = strtok_r(line, " \t\n", &save); t != NULL && nt < 8;
		    t = strtok_r(NULL, " \t\n", &save))
			tok[nt++] = t;
		if ((nt != 5 && nt != 6) || strspn(tok[3], "0123456789") !=
		    strlen(tok[3]))
			continue;
		if (strcmp(tok[nt - 1], "total") == 0)
			r->total = atof(tok[3]);
		else if (r->n < MAX_SYSCALLS) {
			snprintf(r->s[r->n].name, sizeof(r->s[0].name), "%s",
			    tok[nt - 1]);
			r->s[r->n++].calls = atof(tok[3]);
		}
	}
	fclose(fp);
}

static double
calls_of(const struct straced *r, const char *name)
{
	unsigned i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->s[i].name, name) == 0)
			return r->s[i].calls;
	return 0;
}

/* Subtracts the idle attach, name by name. */
static void
sc_net(struct straced *r, const struct straced *idle)
{
	unsigned i;

	for (i = 0; i < r->n; i++)
		r->s[i].calls -= calls_of(idle, r->s[i].name);
	r->total -= idle->total;
}

/* Most calls first. */
static int
cmp_sysc(const void *a, const void *b)
{
	double x = ((const struct sysc *)a)->calls;
	double y = ((const struct sysc *)b)->calls;

	return x > y ? -1 : x < y;
}

/* name is among the first 4 of r (sorted). */
static bool
top4_of(const struct straced *r, const char *name)
{
	unsigned i;

	for (i = 0; i < 4 && i < r->n; i++)
		if (strcmp(r->s[i].name, name) == 0)
			return true;
	return false;
}

struct sc_case {
	uint32_t	 len;
	uint64_t	 nreq;
	bool		 one;		/* one in flight, else ring full */
};

static void
sc_work(struct fe *fe, uint64_t gpa, const struct sc_case *c)
{
	struct pumped p;
	uint64_t i;

	if (c->nreq == 0) {
		fe_sleep_ms(200);
		return;
	}
	if (c->one)
		for (i = 0; i < c->nreq; i++)
			round_trip(fe, gpa, c->len);
	else {
		pump(fe, gpa, c->len, c->nreq, 0, 0, &p);
		if (p.reqs != c->nreq)
			die("pump: %llu of %llu", (unsigned long long)p.reqs,
			    (unsigned long long)c->nreq);
	}
}

/* strace -f -c attached to vd's daemon around sc_work(). */
static void
straced_run(struct vd *vd, struct fe *fe, uint64_t gpa,
    const struct sc_case *c, struct straced *r)
{
	char file[256], pidbuf[32];
	int64_t deadline;
	pid_t tr;
	int st, fd;

	vd_path(vd, "strace.out", file, sizeof(file));
	unlink(file);
	snprintf(pidbuf, sizeof(pidbuf), "%ld", (long)vd->pid);
	fflush(NULL);
	if ((tr = fork()) < 0)
		die("fork");
	if (tr == 0) {
		if ((fd = open("/dev/null", O_RDWR)) >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("strace", "strace", "-f", "-c", "-o", file, "-p",
		    pidbuf, (char *)NULL);
		_exit(127);
	}
	deadline = fe_now_ms() + 10000;
	while (!all_traced(vd->pid, tr)) {
		if (fe_now_ms() > deadline || waitpid(tr, &st, WNOHANG) == tr)
			die("strace did not attach (is strace installed?)");
		fe_sleep_ms(10);
	}
	/* Whatever the attach interrupted has settled again. */
	fe_sleep_ms(50);
	sc_work(fe, gpa, c);
	fe_sleep_ms(50);
	/* strace detaches, writes the summary and dies of the SIGINT. */
	kill(tr, SIGINT);
	if (waitpid(tr, &st, 0) != tr || (WIFEXITED(st) && WEXITSTATUS(st)
	    != 0) || (WIFSIGNALED(st) && WTERMSIG(st) != SIGINT))
		die("strace failed (status 0x%x)", st);
	parse_strace(file, r);
}

static void
bench_syscalls(void)
{
	static const struct sc_case cases[] = {
		{ 64, 16384, true },
		{ 64, 16384, false },
		{ 4096, 4096, false },
		{ 65536, 2048, false },
	};
	static const struct sc_case idle = { 64, 0, true };
	struct straced one[MAX_DAEMONS], idl[MAX_DAEMONS], r;
	struct straced one_idle[MAX_DAEMONS];
	struct fig f[MAX_DAEMONS], floor2 = fig1(2.0);
	unsigned c, d, i, k;

	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const struct sc_case *sc = &cases[c];
		char name[96];

		for (d = 0; d < ndm; d++) {
			struct vd vd;
			struct fe fe;
			uint64_t gpa;

			note("syscalls: %s, %u B, %s, %llu requests", dm[d].name,
			    sc->len, sc->one ? "one in flight" : "ring full",
			    (unsigned long long)sc->nreq);
			start(&vd, &dm[d], 1, NULL);
			attach(&fe, &vd, 0, 256, 4u << 20);
			if ((gpa = fe_alloc(&fe, sc->len, 64)) == UINT64_MAX)
				die("guest buffer");
			/* Warm: the thread has served before we count. */
			for (i = 0; i < 64; i++)
				round_trip(&fe, gpa, sc->len);
			straced_run(&vd, &fe, gpa, &idle, &idl[d]);
			straced_run(&vd, &fe, gpa, sc, &r);
			if (c == 0) {
				one[d] = r;
				one_idle[d] = idl[d];
			}
			f[d] = fig1((r.total - idl[d].total) /
			    (double)sc->nreq);
			fe_close(&fe);
			stop(&vd);
		}
		snprintf(name, sizeof(name), "syscalls/request, %u B, %s "
		    "(N=%llu)", sc->len, sc->one ? "1 in flight" :
		    "ring of 256 full", (unsigned long long)sc->nreq);
		row("syscalls", name, "calls", &f[0], sc->one ? "floor" : "-",
		    sc->one ? &floor2 : NULL, &f[1]);
	}

	/*
	 * The top 4 of the 64 B one-in-flight case: ours, then those of
	 * base's top 4 that are not among ours.
	 */
	for (d = 0; d < ndm; d++) {
		sc_net(&one[d], &one_idle[d]);
		qsort(one[d].s, one[d].n, sizeof(one[d].s[0]), cmp_sysc);
	}
	for (d = 0; d < ndm; d++)
		for (k = 0; k < 4 && k < one[d].n; k++) {
			const char *sn = one[d].s[k].name;
			char name[96];

			if (d == 1 && top4_of(&one[0], sn))
				continue;
			for (i = 0; i < ndm; i++)
				f[i] = fig1(calls_of(&one[i], sn) /
				    (double)cases[0].nreq);
			snprintf(name, sizeof(name), "  64 B 1 in flight, "
			    "top %u (%.8s): %.31s", k + 1, dm[d].name, sn);
			row("syscalls", name, "calls", &f[0], "-", NULL,
			    &f[1]);
		}
}

/* ---- 2. round trip vs eventfd ping-pong ------------------------------ */

#define RT_WARM		1000
#define RT_N		20000
#define RT_BLOCK	1000

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct_us(int64_t *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);

	qsort(v, n, sizeof(*v), cmp_i64);
	return (double)v[i] / 1000.0;
}

struct pingpong {
	pid_t	 child;
	int	 a, b;		/* we write a, the child writes b */
};

static void
pp_start(struct pingpong *pp)
{
	uint64_t v;

	pp->a = eventfd(0, EFD_CLOEXEC);
	pp->b = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (pp->a < 0 || pp->b < 0)
		die("eventfd");
	fflush(NULL);
	if ((pp->child = fork()) < 0)
		die("fork");
	if (pp->child == 0) {
		/* Blocking read of a, as a daemon thread sleeps on a kick. */
		for (;;) {
			if (read(pp->a, &v, sizeof(v)) != (ssize_t)sizeof(v))
				_exit(0);
			if (v == UINT64_MAX - 1)
				_exit(0);
			v = 1;
			if (write(pp->b, &v, sizeof(v)) != (ssize_t)sizeof(v))
				_exit(1);
		}
	}
}

static int64_t
pp_round_trip(struct pingpong *pp)
{
	struct pollfd p = { pp->b, POLLIN, 0 };
	uint64_t one = 1, v;
	int64_t t0, t1;

	t0 = fe_now_ns();
	if (write(pp->a, &one, sizeof(one)) != (ssize_t)sizeof(one))
		die("ping");
	if (poll(&p, 1, 10000) != 1 ||
	    read(pp->b, &v, sizeof(v)) != (ssize_t)sizeof(v))
		die("pong");
	t1 = fe_now_ns();
	return t1 - t0;
}

static void
pp_stop(struct pingpong *pp)
{
	uint64_t v = UINT64_MAX - 1;
	int st;

	if (write(pp->a, &v, sizeof(v)) != (ssize_t)sizeof(v))
		kill(pp->child, SIGKILL);
	waitpid(pp->child, &st, 0);
	close(pp->a);
	close(pp->b);
}

static void
bench_latency(void)
{
	static int64_t lat[MAX_DAEMONS + 1][RT_N], tmp[RT_BLOCK];
	struct fig p50[MAX_DAEMONS + 1], p99[MAX_DAEMONS + 1];
	struct vd vd[MAX_DAEMONS];
	struct fe fe[MAX_DAEMONS];
	uint64_t gpa[MAX_DAEMONS];
	struct pingpong pp;
	unsigned d, i, blk, who;
	char name[96];

	note("round trip: 64 B, one in flight, %d per source, blocks of %d",
	    RT_N, RT_BLOCK);
	memset(p50, 0, sizeof(p50));
	memset(p99, 0, sizeof(p99));
	for (d = 0; d < ndm; d++) {
		start(&vd[d], &dm[d], 1, NULL);
		attach(&fe[d], &vd[d], 0, 256, 4u << 20);
		if ((gpa[d] = fe_alloc(&fe[d], 64, 64)) == UINT64_MAX)
			die("guest buffer");
		for (i = 0; i < RT_WARM; i++)
			round_trip(&fe[d], gpa[d], 64);
	}
	pp_start(&pp);
	for (i = 0; i < RT_WARM; i++)
		pp_round_trip(&pp);
	/* Blocks: ours, base, ping-pong, ours, ... */
	for (blk = 0; blk < RT_N / RT_BLOCK; blk++)
		for (who = 0; who <= ndm; who++) {
			int64_t *v = &lat[who][blk * RT_BLOCK];

			for (i = 0; i < RT_BLOCK; i++)
				v[i] = who < ndm ?
				    round_trip(&fe[who], gpa[who], 64) :
				    pp_round_trip(&pp);
			memcpy(tmp, v, sizeof(tmp));
			fig_add(&p50[who], pct_us(tmp, RT_BLOCK, 0.50));
			fig_add(&p99[who], pct_us(tmp, RT_BLOCK, 0.99));
		}
	pp_stop(&pp);
	for (d = 0; d < ndm; d++) {
		fe_close(&fe[d]);
		stop(&vd[d]);
	}
	/*
	 * The median column is the percentile of all RT_N round trips; the
	 * spread is that of the blocks' percentiles.
	 */
	for (who = 0; who <= ndm; who++) {
		double a = pct_us(lat[who], RT_N, 0.50);
		double b = pct_us(lat[who], RT_N, 0.99);

		p50[who].has_mid = p99[who].has_mid = true;
		p50[who].mid = a;
		p99[who].mid = b;
	}
	snprintf(name, sizeof(name), "64 B round trip kick->call p50");
	row("latency", name, "us", &p50[0], "eventfd ping-pong", &p50[ndm],
	    &p50[1]);
	snprintf(name, sizeof(name), "64 B round trip kick->call p99");
	row("latency", name, "us", &p99[0], "eventfd ping-pong", &p99[ndm],
	    &p99[1]);
}

/* ---- 3. bulk throughput --------------------------------------------- */

#define BULK_RUNS	3
#define BULK_WARM_MS	200
#define BULK_MS		700

static double
read_rate(uint32_t len, int ms)
{
	static char buf[1 << 16];
	int64_t t0, end, t1;
	uint64_t total = 0;
	int fd = open(SOURCE, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("%s", SOURCE);
	t0 = fe_now_ns();
	end = t0 + (int64_t)ms * 1000000;
	while ((t1 = fe_now_ns()) < end) {
		ssize_t n = read(fd, buf, len);

		if (n <= 0)
			break;
		total += (uint64_t)n;
	}
	close(fd);
	return (double)total * 1e3 / (double)(t1 - t0);	/* MB/s */
}

static void
bench_bulk(void)
{
	static const uint32_t sizes[] = { 64, 4096, 65536 };
	struct fig f[MAX_DAEMONS + 1];
	struct vd vd[MAX_DAEMONS];
	struct fe fe[MAX_DAEMONS];
	uint64_t gpa[MAX_DAEMONS];
	unsigned s, r, d;
	bool zero = false;

	for (d = 0; d < ndm; d++) {
		start(&vd[d], &dm[d], 1, NULL);
		attach(&fe[d], &vd[d], 0, 256, 4u << 20);
		if ((gpa[d] = fe_alloc(&fe[d], 65536, 64)) == UINT64_MAX)
			die("guest buffer");
	}
	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		char name[96];

		note("bulk: %u B, %d runs of %d ms each", sizes[s], BULK_RUNS,
		    BULK_MS);
		memset(f, 0, sizeof(f));
		for (r = 0; r < BULK_RUNS; r++) {
			for (d = 0; d < ndm; d++) {
				struct pumped p;
				int64_t t = fe_now_ns();

				pump(&fe[d], gpa[d], sizes[s], 0,
				    t + BULK_WARM_MS * 1000000ll,
				    t + (BULK_WARM_MS + BULK_MS) * 1000000ll,
				    &p);
				settle(&fe[d]);
				zero |= p.zero;
				fig_add(&f[d], (double)p.bytes * 1e3 /
				    (double)(p.t_end - p.t_from));
			}
			fig_add(&f[ndm], read_rate(sizes[s], BULK_MS));
		}
		snprintf(name, sizeof(name), "bulk, %u B buffers, ring of 256 "
		    "full", sizes[s]);
		row("bulk", name, "MB/s", &f[0], "read() " SOURCE, &f[ndm],
		    &f[1]);
	}
	for (d = 0; d < ndm; d++) {
		fe_close(&fe[d]);
		stop(&vd[d]);
	}
	if (zero)
		note("WARNING: a zero-length completion was seen");
}

/* ---- 4. 256 guests at once ------------------------------------------ */

#define MANY		256
#define MANY_WARM_MS	500
#define MANY_MS		5000

static void
bench_many(void)
{
	static struct fe fe[MANY];
	static uint64_t gpa[MANY];
	struct fig mbs[MAX_DAEMONS], rss[MAX_DAEMONS], thr[MAX_DAEMONS];
	const char *args[] = { NULL };
	struct epoll_event ev, evs[64];
	unsigned d, i;
	int ep;

	memset(mbs, 0, sizeof(mbs));
	memset(rss, 0, sizeof(rss));
	memset(thr, 0, sizeof(thr));
	for (d = 0; d < ndm; d++) {
		uint64_t bytes = 0;
		int64_t t0, from, end, now, t_from = -1;
		bool zero = false;
		struct vd vd;

		note("%u guests: %s, %d ms", MANY, dm[d].name, MANY_MS);
		start(&vd, &dm[d], MANY, args);
		if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
			die("epoll");
		for (i = 0; i < MANY; i++) {
			/* QEMU 7.2's queue size; one page of buffer. */
			attach(&fe[i], &vd, i, 4, 64u << 10);
			if ((gpa[i] = fe_alloc(&fe[i], 64, 64)) == UINT64_MAX)
				die("guest buffer");
			ev.events = EPOLLIN;
			ev.data.u32 = i;
			if (epoll_ctl(ep, EPOLL_CTL_ADD, fe[i].call, &ev) < 0)
				die("epoll_ctl");
		}
		t0 = fe_now_ns();
		from = t0 + MANY_WARM_MS * 1000000ll;
		end = from + MANY_MS * 1000000ll;
		for (i = 0; i < MANY; i++) {
			want_call(&fe[i]);
			if (fe_post1(&fe[i], gpa[i], 64) < 0)
				die("post");
			kick_if_needed(&fe[i], (uint16_t)(fe[i].avail_idx - 1));
		}
		while ((now = fe_now_ns()) < end) {
			int n = epoll_wait(ep, evs, 64, 1000), k;

			if (n < 0 && errno != EINTR)
				die("epoll_wait");
			if (n == 0 && !vd_alive(&vd))
				die("daemon died");
			if (t_from < 0 && now >= from) {
				t_from = now;
				bytes = 0;
			}
			for (k = 0; k < n; k++) {
				struct fe *f = &fe[evs[k].data.u32];
				uint64_t got = 0, v;
				uint16_t old = f->avail_idx;

				if (read(f->call, &v, sizeof(v)) < 0)
					continue;
				bytes += reap(f, &got, &zero);
				if (got == 0)
					continue;
				want_call(f);
				if (fe_post1(f, gpa[evs[k].data.u32], 64) < 0)
					die("post");
				kick_if_needed(f, old);
			}
		}
		fig_add(&mbs[d], (double)bytes * 1e3 / (double)(now - t_from));
		fig_add(&rss[d], (double)proc_status(vd.pid, "VmRSS:") / 1024);
		fig_add(&thr[d], (double)proc_status(vd.pid, "Threads:"));
		for (i = 0; i < MANY; i++)
			fe_close(&fe[i]);
		close(ep);
		stop(&vd);
		if (zero)
			note("WARNING: a zero-length completion was seen");
	}
	row("256 guests", "256 guests, 64 B each, 1 in flight: aggregate",
	    "MB/s", &mbs[0], "-", NULL, &mbs[1]);
	row("256 guests", "256 guests reading: daemon RSS", "MiB", &rss[0],
	    "-", NULL, &rss[1]);
	row("256 guests", "256 guests reading: daemon threads", "threads",
	    &thr[0], "-", NULL, &thr[1]);
}

/* ---- 5. idle ---------------------------------------------------------- */

#define IDLE_GUESTS	64
#define IDLE_MS		10000

static void
bench_idle(void)
{
	static struct fe fe[MAX_DAEMONS][IDLE_GUESTS];
	struct fig rss1[MAX_DAEMONS], rss64[MAX_DAEMONS], cpu[MAX_DAEMONS];
	struct fig own64[MAX_DAEMONS], shm64[MAX_DAEMONS], four = fig1(4);
	struct fig cs[MAX_DAEMONS], zero = fig1(0);
	int64_t cpu0[MAX_DAEMONS], cs0[MAX_DAEMONS];
	struct vd vd[MAX_DAEMONS];
	unsigned d, i;

	note("idle: RSS with 1 and %d guests, %d ms idle (all daemons at "
	    "once)", IDLE_GUESTS, IDLE_MS);
	for (d = 0; d < ndm; d++) {
		start(&vd[d], &dm[d], IDLE_GUESTS, NULL);
		for (i = 0; i < IDLE_GUESTS; i++) {
			uint64_t gpa;

			/* A ring set up and one request served: idle after. */
			attach(&fe[d][i], &vd[d], i, 4, 64u << 10);
			if ((gpa = fe_alloc(&fe[d][i], 64, 64)) == UINT64_MAX)
				die("guest buffer");
			round_trip(&fe[d][i], gpa, 64);
			if (i == 0) {
				fe_sleep_ms(100);
				rss1[d] = fig1((double)proc_status(vd[d].pid,
				    "VmRSS:") / 1024);
			}
		}
	}
	fe_sleep_ms(200);
	for (d = 0; d < ndm; d++) {
		rss64[d] = fig1((double)proc_status(vd[d].pid, "VmRSS:") /
		    1024);
		/*
		 * RssShmem is the guests' own memory (rings and buffers the
		 * daemon touched, and the kernel's fault-around neighbours):
		 * the front-end's pages, not the daemon's allocation.
		 */
		shm64[d] = fig1((double)proc_status(vd[d].pid, "RssShmem:") /
		    1024);
		own64[d] = fig1(rss64[d].v[0] - shm64[d].v[0]);
		cpu0[d] = vd_cpu_ms(&vd[d]);
		cs0[d] = vd_ctxt_switches(&vd[d]);
	}
	fe_sleep_ms(IDLE_MS);
	for (d = 0; d < ndm; d++) {
		cpu[d] = fig1((double)(vd_cpu_ms(&vd[d]) - cpu0[d]));
		cs[d] = fig1((double)(vd_ctxt_switches(&vd[d]) - cs0[d]));
		for (i = 0; i < IDLE_GUESTS; i++)
			fe_close(&fe[d][i]);
		stop(&vd[d]);
	}
	row("idle", "daemon RSS, 1 guest connected", "MiB", &rss1[0], "-",
	    NULL, &rss1[1]);
	row("idle", "daemon RSS, 64 guests connected", "MiB", &rss64[0], "-",
	    NULL, &rss64[1]);
	row("idle", "  of which guest memory mapped (RssShmem)", "MiB",
	    &shm64[0], "-", NULL, &shm64[1]);
	row("idle", "  the daemon's own (RssAnon + RssFile)", "MiB",
	    &own64[0], "target", &four, &own64[1]);
	row("idle", "CPU over 10 s idle, 64 guests", "ms", &cpu[0], "target",
	    &zero, &cpu[1]);
	row("idle", "wake-ups over 10 s idle, 64 guests (vol. ctxsw)",
	    "switches", &cs[0], "target", &zero, &cs[1]);
}

/* ---- 6. rate limit ---------------------------------------------------- */

#define RL_MAX_GUESTS	4

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
	unsigned s, i, d;

	for (s = 0; s < sizeof(set) / sizeof(set[0]); s++) {
		const struct setting *t = &set[s];
		const char *args[] = { "-m", t->max, "-p", t->period, NULL };
		int period = atoi(t->period);
		double win_ms = (double)period * t->periods;
		struct fig rate[MAX_DAEMONS], jain[MAX_DAEMONS];
		struct fig conf = fig1(atof(t->max) * 1000.0 / period);
		struct fig one = fig1(1.0);
		char name[96];

		note("rate limit: -m %s -p %s, %u guest(s)", t->max, t->period,
		    t->guests);
		for (d = 0; d < ndm; d++) {
			struct fe fe[RL_MAX_GUESTS];
			uint64_t gpa[RL_MAX_GUESTS], bytes[RL_MAX_GUESTS];
			double x[RL_MAX_GUESTS], sum = 0;
			int64_t t0 = -1, from = 0, to = 0, now;
			struct vd vd;

			start(&vd, &dm[d], t->guests, args);
			for (i = 0; i < t->guests; i++) {
				attach(&fe[i], &vd, i, 64, 1u << 20);
				gpa[i] = fe_alloc(&fe[i], 4096, 64);
				bytes[i] = 0;
			}
			/*
			 * Rings kept full; the window starts half a period
			 * after the first completion and lasts whole periods.
			 */
			for (;;) {
				struct pollfd pfd[RL_MAX_GUESTS];

				for (i = 0; i < t->guests; i++) {
					uint16_t old = fe[i].avail_idx;
					uint64_t n = 0, b;
					bool z = false;

					b = reap(&fe[i], &n, &z);
					now = fe_now_ns();
					if (n > 0 && t0 < 0) {
						t0 = now;
						from = t0 + period * 500000ll;
						to = from + (int64_t)(win_ms *
						    1e6);
					}
					if (t0 >= 0 && now >= from && now < to)
						bytes[i] += b;
					while (fe_free_descs(&fe[i]) > 0)
						if (fe_post1(&fe[i], gpa[i],
						    4096) < 0)
							die("post");
					kick_if_needed(&fe[i], old);
					want_call(&fe[i]);
					pfd[i].fd = fe[i].call;
					pfd[i].events = POLLIN;
				}
				now = fe_now_ns();
				if (t0 >= 0 && now >= to)
					break;
				if (poll(pfd, t->guests, 5) < 0)
					die("poll");
				for (i = 0; i < t->guests; i++)
					fe_drain_calls(&fe[i]);
				if (t0 < 0 && !vd_alive(&vd))
					die("daemon died");
			}
			for (i = 0; i < t->guests; i++) {
				x[i] = (double)bytes[i] * 1e3 / win_ms;
				sum += x[i];
				fe_close(&fe[i]);
			}
			stop(&vd);
			rate[d] = fig1(sum);
			jain[d] = fig1(fe_jain(x, t->guests));
		}
		snprintf(name, sizeof(name), "rate limit -m %s -p %s, %u "
		    "guest%s: delivered", t->max, t->period, t->guests,
		    t->guests > 1 ? "s" : "");
		row("rate limit", name, "B/s", &rate[0], "configured", &conf,
		    &rate[1]);
		if (t->guests > 1) {
			snprintf(name, sizeof(name), "rate limit -m %s -p %s, "
			    "%u guests: Jain fairness", t->max, t->period,
			    t->guests);
			row("rate limit", name, "index", &jain[0], "ideal",
			    &one, &jain[1]);
		}
	}
}

/* ---- main ------------------------------------------------------------- */

static void
raise_nofile(void)
{
	struct rlimit rl;

	/* 256 front-ends take five fds each. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			note("cannot raise the fd limit: %s", strerror(errno));
	}
}

static void
usage(void)
{
	fprintf(stderr, "usage: bench [-o RAW.tsv] [-p PARTS] DAEMON "
	    "[BASE_DAEMON]\n"
	    "  PARTS: letters of s(yscalls) l(atency) b(ulk) m(any) i(dle) "
	    "r(ate limit); default all\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	char rundir[] = "/tmp/vrng-bench.XXXXXX", cmd[64];
	const char *parts = "slbmir", *outpath = NULL;
	int ch;

	while ((ch = getopt(argc, argv, "o:p:")) != -1)
		switch (ch) {
		case 'o':
			outpath = optarg;
			break;
		case 'p':
			parts = optarg;
			break;
		default:
			usage();
		}
	argc -= optind;
	argv += optind;
	if (argc < 1 || argc > 2)
		usage();
	dm[ndm].bin = argv[0];
	dm[ndm++].name = "ours";
	if (argc == 2) {
		dm[ndm].bin = argv[1];
		dm[ndm++].name = "base";
	}
	out = stdout;
	if (outpath != NULL && (out = fopen(outpath, "w")) == NULL) {
		perror(outpath);
		return 1;
	}
	if (mkdtemp(rundir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	setenv("VRNG_IT_RUNDIR", rundir, 1);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	if (strchr(parts, 's') != NULL)
		bench_syscalls();
	if (strchr(parts, 'l') != NULL)
		bench_latency();
	if (strchr(parts, 'b') != NULL)
		bench_bulk();
	if (strchr(parts, 'm') != NULL)
		bench_many();
	if (strchr(parts, 'i') != NULL)
		bench_idle();
	if (strchr(parts, 'r') != NULL)
		bench_ratelimit();
	if (missed_calls > 0)
		note("WARNING: %u completions came without a call",
		    missed_calls);
	if (late_kicks > 0)
		note("WARNING: %u times nothing happened for 1 s until an "
		    "unrequested kick", late_kicks);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rundir);
	if (system(cmd) != 0)
		note("could not remove %s", rundir);
	if (out != stdout)
		fclose(out);
	return 0;
}
