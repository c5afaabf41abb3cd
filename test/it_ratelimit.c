/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: the rate limit (-m bytes per -p ms, split equally between
 * the guests).  Guests read flat out (rings kept full) and we count what
 * arrives in a two-second window.  The figures are printed so that they
 * can be quoted.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "it.h"

#define LEN	4096
#define Q	64

struct reader {
	struct fe	 fe;
	uint64_t	 slot[Q];	/* head -> buffer gpa */
	uint64_t	 bytes;		/* in the window */
	uint64_t	 completions;	/* all of them */
};

/* Fills the ring with Q buffers of LEN bytes and kicks. */
static void
reader_start(struct reader *r)
{
	uint64_t area = fe_alloc(&r->fe, (uint64_t)Q * LEN, 4096);
	unsigned k;

	ck_assert(area != UINT64_MAX);
	for (k = 0; k < Q; k++) {
		int head = fe_post1(&r->fe, area + (uint64_t)k * LEN, LEN);

		ck_assert_int_ge(head, 0);
		r->slot[head] = area + (uint64_t)k * LEN;
	}
	fe_kick(&r->fe);
}

/*
 * Takes what completed, counting it if now < window_end (ns), and posts
 * the buffers again.  Returns the number of completions.
 */
static unsigned
reader_poll(struct reader *r, int64_t window_end, int64_t *first)
{
	struct fe_used_elem u;
	unsigned n = 0;

	while (fe_get_used(&r->fe, &u)) {
		int64_t now = fe_now_ns();
		int head;

		/* VIRTIO 5.4: never a completion without entropy. */
		ck_assert_msg(u.len >= 1 && u.len <= LEN, "used.len %u", u.len);
		ck_assert_uint_lt(u.id, Q);
		if (first != NULL && *first < 0) {
			*first = now;
			window_end = now + 2000000000ll;
		}
		if (now < window_end)
			r->bytes += u.len;
		r->completions++;
		head = fe_post1(&r->fe, r->slot[u.id], LEN);
		ck_assert_int_eq(head, (int)u.id);
		n++;
	}
	if (n > 0)
		fe_kick(&r->fe);
	return n;
}

/*
 * Timing on a busy machine: a stalled test or daemon can only make a
 * guest receive less, never more.  So more than allowed fails at once,
 * while less is measured again in a fresh window, up to this many times.
 */
#define ATTEMPTS	3

/*
 * Counts what one reader gets in the 2 s from its next completion (what
 * completed before is taken but not counted, unless count_pending).
 */
static uint64_t
window_2s(struct reader *r, struct vd *vd, bool count_pending)
{
	int64_t first = -1, end = fe_now_ns() + 5000000000ll;

	if (!count_pending)
		reader_poll(r, 0, NULL);
	r->bytes = 0;
	while (first < 0 || fe_now_ns() < first + 2000000000ll) {
		ck_assert_msg(fe_now_ns() < end, "stalled%s", vd_log_text(vd));
		fe_wait_used(&r->fe, 1, 5);
		reader_poll(r, first < 0 ? INT64_MAX : first + 2000000000ll,
		    &first);
	}
	return r->bytes;
}

/*
 * -m 4096 -p 100, one guest: in the 2 s from a completion the guest gets
 * the budget of 20 periods plus (depending on where that completion fell
 * in its period) the one it started in: 81920..86016 bytes.  While it is
 * held back, GET_VRING_BASE is still answered within 50 ms.
 */
START_TEST(ratelimit_one_guest_4096_per_100ms)
{
	static struct reader r;
	struct fe_cfg cfg;
	struct vd vd;
	uint64_t bytes = 0;
	int64_t dt = 0;
	uint32_t base;
	int attempt;
	bool ok = false;

	IT_SKIP_UNDER_VALGRIND("bytes per time window");

	fe_cfg_init(&cfg);
	cfg.qsize = Q;
	IT_ONE_GUEST(&vd, &r.fe, &cfg, "-m", "4096", "-p", "100", NULL);
	reader_start(&r);
	for (attempt = 1; attempt <= ATTEMPTS && !ok; attempt++) {
		/* The first window starts at the very first completion. */
		bytes = window_2s(&r, &vd, attempt == 1);
		printf("rate limit -m 4096 -p 100, 1 guest: %llu bytes in the "
		    "2 s from %s completion (attempt %d)\n",
		    (unsigned long long)bytes, attempt == 1 ? "the first" :
		    "a", attempt);
		fflush(stdout);
		ck_assert_msg(bytes <= 86016, "%llu bytes: more than the limit",
		    (unsigned long long)bytes);
		ok = bytes >= 81920;
	}
	ck_assert_msg(ok, "%llu bytes", (unsigned long long)bytes);

	/* Held back right now (the ring is full, the budget spent). */
	ok = false;
	for (attempt = 1; attempt <= ATTEMPTS && !ok; attempt++) {
		int64_t t0 = fe_now_ns();

		IT_OK(fe_get_vring_base(&r.fe, &base));
		dt = fe_now_ns() - t0;
		ok = dt < 50000000;
		/* What was taken is exactly what was completed. */
		reader_poll(&r, 0, NULL);
		ck_assert_uint_eq(base, (uint16_t)r.completions);
		if (!ok) {
			/* Start again where it stopped; throttled again. */
			IT_OK(fe_ring_start(&r.fe, (uint16_t)base));
			fe_kick(&r.fe);
			ck_assert_uint_ge(fe_wait_used(&r.fe, 1, 3000), 1);
			reader_poll(&r, 0, NULL);
			fe_sleep_ms(20);
		}
	}
	ck_assert_msg(ok, "GET_VRING_BASE took %lld us", (long long)dt / 1000);
	IT_END(&vd, &r.fe);
}
END_TEST

/*
 * Starts a daemon of n sockets with -m max_bytes -p period_ms, connects n
 * readers to them and lets them start reading.
 */
static void
readers_open(struct reader *r, unsigned n, struct vd *vd,
    const char *max_bytes, const char *period_ms)
{
	struct fe_cfg cfg;
	unsigned i;

	IT_START(vd, n, "-m", max_bytes, "-p", period_ms, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = Q;
	for (i = 0; i < n; i++) {
		IT_OPEN(&r[i].fe, vd, i, &cfg);
		reader_start(&r[i]);
	}
	fe_sleep_ms(50);
}

/* Counts what every reader gets in one common window of ns. */
static void
readers_window(struct reader *r, unsigned n, int64_t ns)
{
	int64_t end;
	unsigned i;

	for (i = 0; i < n; i++) {
		reader_poll(&r[i], 0, NULL);
		r[i].bytes = 0;
	}
	end = fe_now_ns() + ns;
	while (fe_now_ns() < end) {
		for (i = 0; i < n; i++)
			reader_poll(&r[i], end, NULL);
		fe_wait_used(&r[0].fe, 1, 2);
	}
	for (i = 0; i < n; i++)
		reader_poll(&r[i], end, NULL);
}

/*
 * Windows of ns for the n readers, up to ATTEMPTS, until each got at
 * least min bytes; none may ever get more than max.  report (if not NULL)
 * prints each window.
 */
static void
readers_share(struct reader *r, unsigned n, int64_t ns, uint64_t min,
    uint64_t max, void (*report)(const struct reader *, int attempt))
{
	unsigned i;
	int attempt;
	bool ok = false;

	for (attempt = 1; attempt <= ATTEMPTS && !ok; attempt++) {
		readers_window(r, n, ns);
		ok = true;
		for (i = 0; i < n; i++) {
			ck_assert_msg(r[i].bytes <= max, "guest %u: %llu bytes",
			    i, (unsigned long long)r[i].bytes);
			if (r[i].bytes < min)
				ok = false;
		}
		if (report != NULL)
			report(r, attempt);
	}
	for (i = 0; i < n; i++)
		ck_assert_msg(r[i].bytes >= min, "guest %u: %llu bytes", i,
		    (unsigned long long)r[i].bytes);
}

/* Closes the n readers; the daemon exits 0 on SIGTERM. */
static void
readers_close(struct reader *r, unsigned n, struct vd *vd)
{
	unsigned i;

	for (i = 0; i < n; i++)
		fe_close(&r[i].fe);
	IT_STOP(vd);
	vd_cleanup(vd);
}

/* Jain's fairness index of what the four readers got. */
static double
jain_of_4(const struct reader *r)
{
	double share[4];
	unsigned i;

	for (i = 0; i < 4; i++)
		share[i] = (double)r[i].bytes;
	return fe_jain(share, 4);
}

static void
report_4(const struct reader *r, int attempt)
{
	printf("rate limit -c 4 -m 40000 -p 100, 2 s: guest 0 %llu, "
	    "guest 1 %llu, guest 2 %llu, guest 3 %llu bytes (share "
	    "200000); Jain's fairness index %.4f (attempt %d)\n",
	    (unsigned long long)r[0].bytes, (unsigned long long)r[1].bytes,
	    (unsigned long long)r[2].bytes, (unsigned long long)r[3].bytes,
	    jain_of_4(r), attempt);
	fflush(stdout);
}

/*
 * -c 4 -m 40000 -p 100: four guests reading flat out each get their
 * quarter (10000 bytes per period, 200000 in 2 s) within 10 %.
 */
START_TEST(ratelimit_four_guests_fair_shares)
{
	static struct reader r[4];
	struct vd vd;

	readers_open(r, 4, &vd, "40000", "100");
	/* One window for all, everybody reading already. */
	readers_share(r, 4, 2000000000ll, 180000, 220000, report_4);
	ck_assert(jain_of_4(r) > 0.99);
	readers_close(r, 4, &vd);
}
END_TEST

/*
 * A budget smaller than the number of guests (2 bytes per 20 ms for 3):
 * each guest gets a byte in two periods of three, so about 20 bytes in
 * 600 ms; nobody starves, and every completion carries at least a byte.
 */
START_TEST(ratelimit_tiny_budget_nobody_starves)
{
	static struct reader r[3];
	struct vd vd;

	readers_open(r, 3, &vd, "2", "20");
	readers_share(r, 3, 600000000ll, 10, 23, NULL);
	readers_close(r, 3, &vd);
}
END_TEST

/*
 * Hanging up while held back by the limit, and coming back: served again
 * when the budget allows; and the daemon still exits promptly.
 */
START_TEST(ratelimit_disconnect_while_throttled)
{
	static struct reader r;
	struct fe_cfg cfg;
	struct vd vd;
	int i;

	IT_START(&vd, 1, "-m", "4096", "-p", "100", NULL);
	for (i = 0; i < 3; i++) {
		fe_cfg_init(&cfg);
		cfg.qsize = Q;
		memset(&r, 0, sizeof(r));
		IT_OPEN(&r.fe, &vd, 0, &cfg);
		reader_start(&r);
		ck_assert_uint_ge(fe_wait_used(&r.fe, 1, 3000), 1);
		/* More than one period's worth is waiting: throttled now. */
		fe_sleep_ms(30);
		fe_close(&r.fe);
	}
	memset(&r, 0, sizeof(r));
	fe_cfg_init(&cfg);
	IT_OPEN(&r.fe, &vd, 0, &cfg);
	IT_SERVE(&r.fe, 64, &vd);
	ck_assert_int_eq(vd_stop(&vd, 1000), 0);
	ck_assert_int_lt(vd.stop_ms, 1000);
	IT_STOP(&vd);
	fe_close(&r.fe);
	vd_cleanup(&vd);
}
END_TEST

SUITE(it_ratelimit, IT_TIMEOUT, NULL, NULL,
    "ratelimit", TESTS(ratelimit_one_guest_4096_per_100ms,
	ratelimit_four_guests_fair_shares,
	ratelimit_tiny_budget_nobody_starves,
	ratelimit_disconnect_while_throttled))
