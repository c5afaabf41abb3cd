/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The shared rate limit, with an injected clock: every call gets now_ns,
 * so periods are crossed without sleeping.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"
#include "unit.h"

#define MS		1000000ull
#define EPOCH		(1000ull * 1000 * MS)	/* 1000 s of uptime */

static struct ratelimit rl;

static void
rl_init(uint64_t max_bytes, uint32_t period_ms, unsigned nguests,
    uint64_t now)
{
	ck_assert_int_eq(ratelimit_init(&rl, max_bytes, period_ms, nguests,
	    now), 0);
}

static void
teardown(void)
{
	ratelimit_destroy(&rl);
}

/* Start of period p of the limiter under test. */
static uint64_t
at(uint64_t p)
{
	return rl.epoch_ns + p * rl.period_ns;
}

static uint64_t
ceil_div(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

START_TEST(init_refuses_zero)
{
	ck_assert_int_eq(ratelimit_init(&rl, 0, 1000, 1, EPOCH), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(ratelimit_init(&rl, 100, 0, 1, EPOCH), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(ratelimit_init(&rl, 100, 1000, 0, EPOCH), -1);
	ck_assert_int_eq(errno, EINVAL);
	/* Destroying a limiter that failed to start is harmless. */
	ratelimit_destroy(&rl);
	rl_init(1, 1, 1, 0);
	ratelimit_destroy(&rl);
	ratelimit_destroy(&rl);
}
END_TEST

START_TEST(share_one_guest)
{
	rl_init(4096, 1000, 1, EPOCH);
	ck_assert_uint_eq(ratelimit_share(&rl, 0, 0), 4096);
	ck_assert_uint_eq(ratelimit_share(&rl, 0, 1), 4096);
	ck_assert_uint_eq(ratelimit_share(&rl, 0, UINT64_MAX), 4096);
}
END_TEST

/* 10 bytes, 3 guests: 3 each, and the tenth byte goes round. */
START_TEST(share_remainder_rotates)
{
	uint64_t p, got4[3] = { 0, 0, 0 };
	unsigned g, prev = 3;

	rl_init(10, 1000, 3, EPOCH);
	for (p = 0; p < 30; p++) {
		uint64_t sum = 0;
		unsigned with4 = 0, who = 3;

		for (g = 0; g < 3; g++) {
			uint64_t s = ratelimit_share(&rl, g, p);

			ck_assert_msg(s == 3 || s == 4, "share %llu",
			    (unsigned long long)s);
			if (s == 4) {
				with4++;
				who = g;
				got4[g]++;
			}
			sum += s;
		}
		ck_assert_uint_eq(sum, 10);
		ck_assert_uint_eq(with4, 1);
		/* Not the same guest two periods running. */
		ck_assert_uint_ne(who, prev);
		prev = who;
	}
	ck_assert_uint_eq(got4[0], 10);
	ck_assert_uint_eq(got4[1], 10);
	ck_assert_uint_eq(got4[2], 10);
}
END_TEST

/*
 * For any budget and guest count: each period hands out exactly the
 * budget, and over nguests consecutive periods every guest gets exactly
 * max_bytes (its fair share of nguests periods).  Sums in 128 bits, so a
 * wrong share near UINT64_MAX shows instead of wrapping.
 */
static const struct {
	uint64_t max;
	unsigned n;
} budgets[] = {
	{ 4096, 1 }, { 10, 3 }, { 2, 5 }, { 3, 7 }, { 1, 4 }, { 3, 4 },
	{ 5, 12 }, { 1023, 1024 }, { 1025, 1024 }, { 1, 1024 },
	{ UINT64_MAX, 1 }, { UINT64_MAX, 7 }, { UINT64_MAX - 1, 1024 },
	{ UINT64_MAX, 1024 },
};

START_TEST(share_sums)
{
	static const uint64_t starts[] = { 0, 1, 12345, UINT64_MAX / 2 };
	uint64_t max = budgets[_i].max, p, s;
	unsigned n = budgets[_i].n, g, k;

	rl_init(max, 1000, n, EPOCH);
	for (k = 0; k < sizeof(starts) / sizeof(starts[0]); k++) {
		for (p = starts[k]; p < starts[k] + n; p++) {
			unsigned __int128 sum = 0;

			for (g = 0; g < n; g++)
				sum += ratelimit_share(&rl, g, p);
			/* if/abort: a passing ck_assert costs a write. */
			if (sum != max)
				ck_abort_msg("period %llu: %llu bytes handed "
				    "out of %llu", (unsigned long long)p,
				    (unsigned long long)sum,
				    (unsigned long long)max);
		}
		for (g = 0; g < n; g++) {
			unsigned __int128 sum = 0;

			for (p = starts[k]; p < starts[k] + n; p++) {
				s = ratelimit_share(&rl, g, p);
				if (s != max / n && s != max / n + 1)
					ck_abort_msg("guest %u period %llu: "
					    "share %llu", g,
					    (unsigned long long)p,
					    (unsigned long long)s);
				sum += s;
			}
			if (sum != max)
				ck_abort_msg("guest %u: %llu over %u periods, "
				    "want %llu", g, (unsigned long long)sum,
				    n, (unsigned long long)max);
		}
	}
}
END_TEST

/*
 * Fewer bytes than guests: ratelimit.h promises every guest a byte at
 * least every ceil(nguests / max_bytes) periods.  (The remainder must be
 * spread, not handed to a block of consecutive guests that moves by one
 * per period: then a guest gets bytes in max_bytes periods running and
 * waits nguests - max_bytes + 1 periods for the next.)
 */
START_TEST(share_few_bytes_never_starve)
{
	uint64_t max = budgets[_i].max, bound, p, last;
	unsigned n = budgets[_i].n, g;

	if (max >= n)
		return;
	bound = ceil_div(n, max);
	rl_init(max, 1000, n, EPOCH);
	for (g = 0; g < n; g++) {
		last = UINT64_MAX;
		for (p = 0; p < 4 * (uint64_t)n + 4; p++) {
			if (ratelimit_share(&rl, g, p) == 0)
				continue;
			if (last != UINT64_MAX && p - last > bound)
				ck_abort_msg("%llu bytes for %u guests: guest "
				    "%u waits %llu periods after period %llu "
				    "(at most %llu)", (unsigned long long)max,
				    n, g, (unsigned long long)(p - last),
				    (unsigned long long)last,
				    (unsigned long long)bound);
			if (last == UINT64_MAX && p >= bound)
				ck_abort_msg("guest %u starts at period %llu",
				    g, (unsigned long long)p);
			last = p;
		}
		if (last == UINT64_MAX)
			ck_abort_msg("guest %u never served", g);
	}
}
END_TEST

/*
 * The same through take: 2 bytes per period for 5 guests that each ask
 * for a byte at every period start.  Nobody starves, the budget is never
 * exceeded, and a refused guest is told when its next byte comes.
 */
START_TEST(take_two_bytes_five_guests)
{
	uint64_t last[5], p, wake, got;
	unsigned g;

	rl_init(2, 1000, 5, EPOCH);
	for (g = 0; g < 5; g++)
		last[g] = 0;
	for (p = 0; p < 40; p++) {
		uint64_t sum = 0;

		for (g = 0; g < 5; g++) {
			wake = 0;
			got = ratelimit_take(&rl, g, 1, at(p) + 5, &wake);
			sum += got;
			if (got > 0) {
				last[g] = p;
				continue;
			}
			/* wake is the start of the next period with a byte. */
			ck_assert_uint_gt(wake, at(p));
			ck_assert_uint_eq((wake - rl.epoch_ns) % rl.period_ns,
			    0);
			{
				uint64_t q = (wake - rl.epoch_ns) /
				    rl.period_ns, r;

				ck_assert_uint_ne(ratelimit_share(&rl, g, q),
				    0);
				for (r = p + 1; r < q; r++)
					ck_assert_uint_eq(ratelimit_share(&rl,
					    g, r), 0);
			}
			ck_assert_msg(p - last[g] < 3, "guest %u: no byte "
			    "since period %llu, now %llu", g,
			    (unsigned long long)last[g],
			    (unsigned long long)p);
		}
		ck_assert_uint_eq(sum, 2);
	}
}
END_TEST

START_TEST(take_capped_at_share)
{
	uint64_t wake = 0, s0;

	rl_init(10, 1000, 3, EPOCH);
	s0 = ratelimit_share(&rl, 1, 0);
	ck_assert_uint_eq(ratelimit_take(&rl, 1, 2, EPOCH, &wake), 2);
	ck_assert_uint_eq(ratelimit_take(&rl, 1, 100, EPOCH, &wake), s0 - 2);
	ck_assert_uint_eq(ratelimit_take(&rl, 1, 1, EPOCH + 1, &wake), 0);
	ck_assert_uint_eq(wake, at(1));
	/* The other guests' shares are theirs. */
	ck_assert_uint_eq(ratelimit_take(&rl, 0, UINT64_MAX, EPOCH, NULL),
	    ratelimit_share(&rl, 0, 0));
	ck_assert_uint_eq(ratelimit_take(&rl, 2, UINT64_MAX, EPOCH, NULL),
	    ratelimit_share(&rl, 2, 0));
	/* A NULL wake_ns is allowed. */
	ck_assert_uint_eq(ratelimit_take(&rl, 2, 1, EPOCH, NULL), 0);
}
END_TEST

START_TEST(take_odd_arguments)
{
	uint64_t wake = 77;

	rl_init(10, 1000, 3, EPOCH);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 0, EPOCH, &wake), 0);
	ck_assert_uint_eq(ratelimit_take(&rl, 3, 5, EPOCH, &wake), 0);
	ck_assert_uint_eq(ratelimit_take(&rl, UINT32_MAX, 5, EPOCH, &wake),
	    0);
	/* Neither used anything. */
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 100, EPOCH, &wake),
	    ratelimit_share(&rl, 0, 0));
	ratelimit_give_back(&rl, 3, 5, EPOCH);	/* ignored, no crash */
}
END_TEST

START_TEST(period_rollover_resets)
{
	uint64_t wake;

	rl_init(100, 1000, 1, EPOCH);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 100, EPOCH, &wake), 100);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 1, at(1) - 1, &wake), 0);
	ck_assert_uint_eq(wake, at(1));
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 60, at(1), &wake), 60);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 60, at(1) + 500 * MS,
	    &wake), 40);
	/* Several idle periods later: one full budget, not a saved-up one. */
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 1000, at(9) + 1, &wake),
	    100);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 1, at(9) + 2, &wake), 0);
	ck_assert_uint_eq(wake, at(10));
}
END_TEST

START_TEST(give_back_same_period)
{
	uint64_t wake;

	rl_init(100, 1000, 2, EPOCH);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 50, EPOCH, &wake), 50);
	ratelimit_give_back(&rl, 0, 30, EPOCH + 10);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 100, EPOCH + 20, &wake), 30);
	/* More than was taken: back to zero used, no extra budget. */
	ratelimit_give_back(&rl, 0, 1000, EPOCH + 30);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 100, EPOCH + 40, &wake), 50);
	ratelimit_give_back(&rl, 0, UINT64_MAX, EPOCH + 50);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, UINT64_MAX, EPOCH + 60,
	    &wake), 50);
	/* Guest 1 was never touched. */
	ck_assert_uint_eq(ratelimit_take(&rl, 1, 100, EPOCH, &wake), 50);
}
END_TEST

/* A grant of period 0 returned in period 1 is lost, not carried over. */
START_TEST(give_back_after_rollover)
{
	uint64_t wake;

	rl_init(100, 1000, 2, EPOCH);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 50, EPOCH, &wake), 50);
	/* Returned at a time of period 1, nobody has rolled yet. */
	ratelimit_give_back(&rl, 0, 50, at(1) + 1);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 100, at(1) + 2, &wake), 50);

	/*
	 * Taken in period 1; the guest takes its period-2 share too, then the
	 * period-1 grant comes back late: it must not refill period 2.
	 */
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 100, at(2), &wake), 50);
	ratelimit_give_back(&rl, 0, 50, at(1) + 3);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 100, at(2) + 1, &wake), 0);
	ck_assert_uint_eq(wake, at(3));
	/* Nor another guest's. */
	ck_assert_uint_eq(ratelimit_take(&rl, 1, 100, at(2) + 2, &wake), 50);
	ratelimit_give_back(&rl, 1, 50, at(1) + 4);
	ck_assert_uint_eq(ratelimit_take(&rl, 1, 100, at(2) + 3, &wake), 0);
}
END_TEST

/*
 * Periods only move forward.  A guest thread reads the clock just before a
 * boundary and gets the lock after another thread moved on to the next
 * period: its stale time must count as the current period, not roll back
 * to the old one and wipe what was taken in the new one (else a guest
 * gets twice its share in one period, once before and once after the
 * stale call).
 */
START_TEST(stale_clock_does_not_roll_back)
{
	uint64_t wake = 0;

	rl_init(2000, 1000, 2, EPOCH);		/* 1000 a guest */
	/* Guest 1 takes its whole share of period 1 early in it. */
	ck_assert_uint_eq(ratelimit_take(&rl, 1, 5000, at(1) + 10, &wake),
	    1000);
	/* Guest 0's thread read the clock in period 0, got the lock now. */
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 1, at(1) - 1, &wake), 1);
	/* Still period 1: guest 1 has nothing left, guest 0 the rest. */
	ck_assert_uint_eq(ratelimit_take(&rl, 1, 5000, at(1) + 20, &wake), 0);
	ck_assert_uint_eq(wake, at(2));
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 5000, at(1) + 30, &wake),
	    999);
	/* A stale give-back resets nothing either (at most its 5 bytes). */
	ratelimit_give_back(&rl, 0, 5, at(1) - 2);
	ck_assert_uint_le(ratelimit_take(&rl, 0, 5000, at(1) + 40, &wake), 5);
	ck_assert_uint_eq(ratelimit_take(&rl, 1, 5000, at(1) + 41, &wake), 0);
	/* Period 2 starts afresh for both. */
	ck_assert_uint_eq(ratelimit_take(&rl, 1, 5000, at(2), &wake), 1000);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 5000, at(2) + 1, &wake),
	    1000);
	/* Far behind (period 0 again, after period 2): still period 2. */
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 1, EPOCH, &wake), 0);
	ck_assert_uint_eq(wake, at(3));
	ck_assert_uint_eq(ratelimit_take(&rl, 1, 1, EPOCH + 1, &wake), 0);
}
END_TEST

START_TEST(huge_budget)
{
	uint64_t wake;

	rl_init(UINT64_MAX, 1000, 1, EPOCH);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, UINT64_MAX, EPOCH, &wake),
	    UINT64_MAX);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 1, EPOCH, &wake), 0);
	ck_assert_uint_eq(wake, at(1));
	ratelimit_give_back(&rl, 0, UINT64_MAX - 1, EPOCH);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, UINT64_MAX, EPOCH, &wake),
	    UINT64_MAX - 1);
	ratelimit_destroy(&rl);

	rl_init(UINT64_MAX, 1000, 7, EPOCH);
	ck_assert_uint_eq(ratelimit_take(&rl, 3, UINT64_MAX, EPOCH, &wake),
	    ratelimit_share(&rl, 3, 0));
	ck_assert_uint_ge(ratelimit_share(&rl, 3, 0), UINT64_MAX / 7);
	ratelimit_destroy(&rl);

	/* 1024 guests sharing UINT64_MAX - 1. */
	rl_init(UINT64_MAX - 1, 65536, 1024, EPOCH);
	ck_assert_uint_eq(ratelimit_take(&rl, 1023, UINT64_MAX, EPOCH, &wake),
	    ratelimit_share(&rl, 1023, 0));
}
END_TEST

/* The clock near its end: the next period start saturates, never wraps. */
START_TEST(epoch_near_clock_end)
{
	uint64_t wake = 0;

	rl_init(10, 65536, 1, UINT64_MAX - 1000);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 10, UINT64_MAX - 1000,
	    &wake), 10);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 10, UINT64_MAX, &wake), 0);
	ck_assert_uint_eq(wake, UINT64_MAX);
}
END_TEST

START_TEST(period_1ms)
{
	uint64_t wake;

	rl_init(5, 1, 1, EPOCH);
	ck_assert_uint_eq(rl.period_ns, MS);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 9, EPOCH, &wake), 5);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 9, EPOCH + MS - 1, &wake), 0);
	ck_assert_uint_eq(wake, EPOCH + MS);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 9, EPOCH + MS, &wake), 5);
	/* A million periods on. */
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 9, EPOCH + 1000000 * MS + 7,
	    &wake), 5);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 9, EPOCH + 1000000 * MS + 8,
	    &wake), 0);
	ck_assert_uint_eq(wake, EPOCH + 1000001 * MS);
}
END_TEST

START_TEST(period_65536ms)
{
	uint64_t wake, len = 65536 * MS;

	rl_init(5, 65536, 1, EPOCH);
	ck_assert_uint_eq(rl.period_ns, len);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 9, EPOCH, &wake), 5);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 9, EPOCH + len - 1, &wake),
	    0);
	ck_assert_uint_eq(wake, EPOCH + len);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 9, EPOCH + len, &wake), 5);
}
END_TEST

/* A clock reading before the epoch counts as period 0, no underflow. */
START_TEST(now_before_epoch)
{
	uint64_t wake = 0;

	rl_init(10, 1000, 2, EPOCH);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 100, EPOCH - 1, &wake),
	    ratelimit_share(&rl, 0, 0));
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 100, 0, &wake), 0);
	ck_assert_uint_eq(wake, at(1));
	ratelimit_give_back(&rl, 0, 2, 0);
	ck_assert_uint_eq(ratelimit_take(&rl, 0, 100, EPOCH, &wake), 2);
}
END_TEST

/* --- concurrency smoke test ---------------------------------------- */

#define NTHREADS	4

struct taker {
	unsigned	 guest;
	uint64_t	 now;
	uint64_t	 got;
};

static void *
take_bytes(void *arg)
{
	struct taker *t = arg;
	uint64_t wake;

	/* One byte at a time until the share is gone. */
	while (ratelimit_take(&rl, t->guest, 1, t->now, &wake) == 1)
		t->got++;
	return NULL;
}

static uint64_t
run_takers(struct taker *t)
{
	pthread_t th[NTHREADS];
	uint64_t sum = 0;
	unsigned i;

	for (i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, take_bytes,
		    &t[i]), 0);
	for (i = 0; i < NTHREADS; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		sum += t[i].got;
	}
	return sum;
}

START_TEST(threads_one_guest)
{
	struct taker t[NTHREADS];
	unsigned i;

	rl_init(200000, 1000, 1, EPOCH);
	for (i = 0; i < NTHREADS; i++) {
		t[i].guest = 0;
		t[i].now = EPOCH + i;
		t[i].got = 0;
	}
	ck_assert_uint_eq(run_takers(t), 200000);
}
END_TEST

START_TEST(threads_four_guests)
{
	struct taker t[NTHREADS];
	unsigned i;

	rl_init(20003, 1000, NTHREADS, EPOCH);
	for (i = 0; i < NTHREADS; i++) {
		t[i].guest = i;
		t[i].now = at(5) + i;
		t[i].got = 0;
	}
	ck_assert_uint_eq(run_takers(t), 20003);
	for (i = 0; i < NTHREADS; i++)
		ck_assert_uint_eq(t[i].got, ratelimit_share(&rl, i, 5));
}
END_TEST

Suite *
ratelimit_suite(void)
{
	Suite *s = suite_create("ratelimit");
	TCase *tc;
	int nbudgets = (int)(sizeof(budgets) / sizeof(budgets[0]));

	tc = add_case(s, "share", UNIT_TIMEOUT, NULL, teardown, TESTS(
	    init_refuses_zero, share_one_guest, share_remainder_rotates));
	tcase_add_loop_test(tc, share_sums, 0, nbudgets);
	tcase_add_loop_test(tc, share_few_bytes_never_starve, 0, nbudgets);

	add_cases(s, UNIT_TIMEOUT, NULL, teardown,
	    "take", TESTS(take_two_bytes_five_guests, take_capped_at_share,
		take_odd_arguments, period_rollover_resets,
		give_back_same_period, give_back_after_rollover,
		stale_clock_does_not_roll_back, huge_budget,
		epoch_near_clock_end, period_1ms, period_65536ms,
		now_before_epoch),
	    "threads", TESTS(threads_one_guest, threads_four_guests),
	    NULL);
	return s;
}
