/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The SP 800-90B 4.4 health tests (health.c): each test at its cut-off
 * (one byte below passes, at it fails), counts that carry across feeds
 * and restart with each window, the failures a broken source shows
 * (stuck, biased), and no false alarm on megabytes of the kernel's
 * CSPRNG; then the source's side (entropy_read_tested on a FIFO): cut
 * off, back-off, recovery, and the CSPRNG never tested.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "entropy.h"
#include "health.h"
#include "unit.h"

Suite	*health_suite(void);

static struct health h;

static void
setup(void)
{
	health_init(&h);
}

/*
 * Feeding len bytes of p fails test r at byte offset of this feed, with
 * the count at r's cut-off.
 */
static void
feed_fails(const uint8_t *p, size_t len, enum health_result r,
    size_t offset)
{
	ck_assert_int_eq(health_feed(&h, p, len), r);
	ck_assert_uint_eq(h.fail_count, r == HEALTH_RCT_FAIL ?
	    HEALTH_RCT_CUTOFF : HEALTH_APT_CUTOFF);
	ck_assert_uint_eq(h.fail_offset, offset);
}

/* C - 1 equal bytes in a row pass; the next byte differs. */
START_TEST(rct_below_cutoff_passes)
{
	uint8_t buf[HEALTH_RCT_CUTOFF];

	memset(buf, 0x5a, HEALTH_RCT_CUTOFF - 1);
	buf[HEALTH_RCT_CUTOFF - 1] = 0x5b;
	ck_assert_int_eq(health_feed(&h, buf, sizeof(buf)), HEALTH_PASS);
	/* And again: the run starts over at the byte that differed. */
	ck_assert_int_eq(health_feed(&h, buf, sizeof(buf)), HEALTH_PASS);
}
END_TEST

/* C equal bytes in a row fail, at the C-th byte, count C. */
START_TEST(rct_at_cutoff_fails)
{
	uint8_t buf[HEALTH_RCT_CUTOFF + 5];

	memset(buf, 0x5a, sizeof(buf));
	buf[0] = 0x01;
	feed_fails(buf, 1 + HEALTH_RCT_CUTOFF, HEALTH_RCT_FAIL,
	    HEALTH_RCT_CUTOFF);
	ck_assert_uint_eq(health_cutoff(HEALTH_RCT_FAIL), 21);
	ck_assert_str_eq(health_test_name(HEALTH_RCT_FAIL),
	    "Repetition Count Test");
}
END_TEST

/* A run is counted across feeds (one byte at a time too). */
START_TEST(rct_run_spans_feeds)
{
	uint8_t b = 0xee;
	unsigned i;

	for (i = 1; i < HEALTH_RCT_CUTOFF; i++)
		ck_assert_int_eq(health_feed(&h, &b, 1), HEALTH_PASS);
	feed_fails(&b, 1, HEALTH_RCT_FAIL, 0);
	/* health_init starts over: C - 1 pass again. */
	health_init(&h);
	for (i = 1; i < HEALTH_RCT_CUTOFF; i++)
		ck_assert_int_eq(health_feed(&h, &b, 1), HEALTH_PASS);
}
END_TEST

/*
 * A window of W bytes whose first byte a appears n times, never more
 * than twice in a row (so the RCT cannot fire), the others all different
 * from a and from their neighbours.
 */
static void
apt_window(uint8_t *w, uint8_t a, unsigned n)
{
	unsigned i, seen = 0, other = 0;

	for (i = 0; i < HEALTH_APT_WINDOW; i++) {
		if (seen < n && i % 3 != 2) {
			w[i] = a;
			seen++;
		} else
			w[i] = (uint8_t)(a + 1 + other++ % 200);
	}
	ck_assert_uint_eq(seen, n);
}

/* C - 1 of W equal to the window's first byte pass, window after window. */
START_TEST(apt_below_cutoff_passes)
{
	uint8_t w[HEALTH_APT_WINDOW];
	unsigned k;

	apt_window(w, 0x33, HEALTH_APT_CUTOFF - 1);
	for (k = 0; k < 4; k++)
		ck_assert_int_eq(health_feed(&h, w, sizeof(w)), HEALTH_PASS);
	/* Fed in odd pieces the windows are the same. */
	health_init(&h);
	for (k = 0; k < 4 * HEALTH_APT_WINDOW; k += 7) {
		size_t n = 4 * HEALTH_APT_WINDOW - k < 7 ?
		    4 * HEALTH_APT_WINDOW - k : 7;
		uint8_t piece[7];
		size_t j;

		for (j = 0; j < n; j++)
			piece[j] = w[(k + j) % HEALTH_APT_WINDOW];
		ck_assert_int_eq(health_feed(&h, piece, n), HEALTH_PASS);
	}
}
END_TEST

/* C of W equal to the window's first byte fail, at the C-th, count C. */
START_TEST(apt_at_cutoff_fails)
{
	uint8_t w[HEALTH_APT_WINDOW];
	unsigned i, last = 0;

	apt_window(w, 0x33, HEALTH_APT_CUTOFF);
	for (i = 0; i < HEALTH_APT_WINDOW; i++)
		if (w[i] == 0x33)
			last = i;
	feed_fails(w, sizeof(w), HEALTH_APT_FAIL, last);
	ck_assert_uint_eq(health_cutoff(HEALTH_APT_FAIL), 311);
	ck_assert_str_eq(health_test_name(HEALTH_APT_FAIL),
	    "Adaptive Proportion Test");
}
END_TEST

/*
 * Only the window's first byte is counted: a value that fills a window
 * but is not its first byte passes there, and fails in the next window,
 * which it starts.
 */
START_TEST(apt_counts_the_first_byte_of_each_window)
{
	uint8_t w[HEALTH_APT_WINDOW];

	apt_window(w, 0x33, HEALTH_APT_CUTOFF);
	w[0] = 0x99;	/* 0x33 appears C - 1 times after it */
	ck_assert_int_eq(health_feed(&h, w, sizeof(w)), HEALTH_PASS);
	w[0] = 0x33;
	ck_assert_int_eq(health_feed(&h, w, sizeof(w)), HEALTH_APT_FAIL);
	ck_assert_uint_eq(h.fail_count, HEALTH_APT_CUTOFF);
}
END_TEST

/* A source stuck at one value fails the RCT after C bytes. */
START_TEST(stuck_stream_fails_rct)
{
	static uint8_t buf[4096];

	memset(buf, 0xff, sizeof(buf));
	feed_fails(buf, sizeof(buf), HEALTH_RCT_FAIL, HEALTH_RCT_CUTOFF - 1);
}
END_TEST

/*
 * Three bytes in four are 0xaa (never more than three in a row), the
 * fourth is pseudo-random: the RCT cannot see it, the APT must.
 */
START_TEST(biased_stream_fails_apt)
{
	static uint8_t buf[4096];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	size_t i;

	for (i = 0; i < sizeof(buf); i++) {
		uint8_t r = (uint8_t)(unit_xorshift(&x) >> 24);

		/* Odd: never 0xaa. */
		buf[i] = i % 4 != 3 ? 0xaa : r | 1;
	}
	/* The 311th 0xaa of the first window: 3 in every 4 bytes. */
	feed_fails(buf, sizeof(buf), HEALTH_APT_FAIL,
	    (HEALTH_APT_CUTOFF - 1) / 3 * 4 + (HEALTH_APT_CUTOFF - 1) % 3);
}
END_TEST

/* 16 MiB of /dev/urandom pass (a false alarm is ~2^-20 per window at H). */
START_TEST(urandom_passes_for_megabytes)
{
	static uint8_t buf[65536];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	enum health_result r;
	unsigned k;

	ck_assert_int_ge(fd, 0);
	for (k = 0; k < 256; k++) {
		ck_assert_int_eq(read(fd, buf, sizeof(buf)), sizeof(buf));
		r = health_feed(&h, buf, sizeof(buf));
		ck_assert_msg(r == HEALTH_PASS, "%s failed at count %u after "
		    "%u KiB", health_test_name(r), h.fail_count, k * 64);
	}
	close(fd);
}
END_TEST

/*
 * The source's side (entropy_read_tested), with an injected clock: a FIFO
 * source that fails is cut off for 1 s, 2 s, 4 s ... up to 60 s, reads
 * nothing meanwhile, drops the fresh window after each back-off, and
 * starts over at 1 s once it passed.
 */
#define SEC	1000000000ull
#define T0	(1000 * SEC)

static struct entropy src;
static char dir[64], fifo[128];
static int writer = -1;

static void
src_setup(void)
{
	char err[256];

	snprintf(dir, sizeof(dir), "/tmp/vrng-health.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(entropy_open(&src, fifo, err, sizeof(err)), 0);
	entropy_set_health(&src, true);
	ck_assert(src.tested);
	writer = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(writer, 0);
}

static void
src_teardown(void)
{
	if (writer >= 0)
		close(writer);
	writer = -1;
	entropy_close(&src);
	unlink(fifo);
	rmdir(dir);
}

static void
put(const void *p, size_t len)
{
	ck_assert_int_eq(write(writer, p, len), (ssize_t)len);
}

static void
put_stuck(void)
{
	uint8_t stuck[64];

	memset(stuck, 0x07, sizeof(stuck));
	put(stuck, sizeof(stuck));
}

/* Bytes left in the FIFO (the writer's side of it). */
static int
queued(void)
{
	int n = -1;

	ck_assert_int_eq(ioctl(writer, FIONREAD, &n), 0);
	return n;
}

START_TEST(source_fails_waits_and_backs_off)
{
	static const uint64_t want[] = { 1, 2, 4, 8, 16, 32, 60, 60 };
	uint8_t buf[4096];
	uint64_t now = T0, retry = 0;
	unsigned i;

	ck_assert_int_eq(entropy_state(&src), ENTROPY_STATE_OK);
	put_stuck();
	ck_assert_int_eq(entropy_read_tested(&src, 0, buf, sizeof(buf), now,
	    &retry), ENTROPY_UNHEALTHY);
	ck_assert_uint_eq(retry, now + SEC);
	ck_assert_int_eq(entropy_state(&src), ENTROPY_STATE_CUT_OFF);
	/* The failed bytes were wiped from the caller's buffer. */
	for (i = 0; i < 64; i++)
		ck_assert_uint_eq(buf[i], 0);
	/* Cut off: nothing is read, however much is there. */
	put_stuck();
	ck_assert_int_eq(entropy_read_tested(&src, 0, buf, sizeof(buf),
	    now + SEC - 1, &retry), ENTROPY_CUT_OFF);
	ck_assert_uint_eq(retry, now + SEC);
	ck_assert_int_eq(queued(), 64);
	/* Each failure in a row doubles the wait, up to 60 s. */
	for (i = 1; i < sizeof(want) / sizeof(want[0]); i++) {
		now = retry;
		if (i > 1)
			put_stuck();
		ck_assert_int_eq(entropy_read_tested(&src, 0, buf, sizeof(buf),
		    now, &retry), ENTROPY_UNHEALTHY);
		ck_assert_uint_eq(retry - now, want[i] * SEC);
	}
}
END_TEST

START_TEST(source_recovers_after_a_fresh_window)
{
	static uint8_t good[HEALTH_APT_WINDOW + 100];
	uint8_t buf[4096];
	uint64_t now = T0, retry = 0;
	uint64_t x = 0x1234567;
	size_t i;

	for (i = 0; i < sizeof(good); i++)
		good[i] = (uint8_t)(unit_xorshift(&x) >> 24);
	put_stuck();
	ck_assert_int_eq(entropy_read_tested(&src, 0, buf, sizeof(buf), now,
	    &retry), ENTROPY_UNHEALTHY);
	/* Half a window, then nothing: still on probation, nothing out. */
	put(good, HEALTH_APT_WINDOW / 2);
	now = retry;
	ck_assert_int_eq(entropy_read_tested(&src, 0, buf, sizeof(buf), now,
	    &retry), ENTROPY_AGAIN);
	/* The rest of the window is dropped, the bytes after it pass. */
	put(good + HEALTH_APT_WINDOW / 2, sizeof(good) -
	    HEALTH_APT_WINDOW / 2);
	ck_assert_int_eq(entropy_read_tested(&src, 0, buf, sizeof(buf), now,
	    &retry), 100);
	ck_assert_mem_eq(buf, good + HEALTH_APT_WINDOW, 100);
	ck_assert_int_eq(entropy_state(&src), ENTROPY_STATE_OK);
	/* Passed: the next failure waits 1 s again, not 2 s. */
	put_stuck();
	ck_assert_int_eq(entropy_read_tested(&src, 0, buf, sizeof(buf),
	    now + 5, &retry), ENTROPY_UNHEALTHY);
	ck_assert_uint_eq(retry, now + 5 + SEC);
}
END_TEST

/* The kernel's CSPRNG is never tested, whatever the option says. */
START_TEST(csprng_is_never_tested)
{
	struct entropy u;
	char err[256];

	ck_assert_int_eq(entropy_open(&u, "/dev/urandom", err, sizeof(err)),
	    0);
	entropy_set_health(&u, true);
	ck_assert(u.csprng);
	ck_assert(!u.tested);
	entropy_close(&u);
}
END_TEST

Suite *
health_suite(void)
{
	Suite *s = suite_create("health");

	add_cases(s, UNIT_TIMEOUT, setup, NULL,
	    "rct", TESTS(rct_below_cutoff_passes, rct_at_cutoff_fails,
		rct_run_spans_feeds, stuck_stream_fails_rct),
	    "apt", TESTS(apt_below_cutoff_passes, apt_at_cutoff_fails,
		apt_counts_the_first_byte_of_each_window,
		biased_stream_fails_apt),
	    "good", TESTS(urandom_passes_for_megabytes),
	    NULL);
	add_case(s, "source", UNIT_TIMEOUT, src_setup, src_teardown, TESTS(
	    source_fails_waits_and_backs_off,
	    source_recovers_after_a_fresh_window, csprng_is_never_tested));
	return s;
}
