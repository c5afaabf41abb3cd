/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: the SP 800-90B health tests on a FIFO source (health.h,
 * entropy_read_tested).  A FIFO that delivers a stuck byte or a heavily
 * biased stream is cut off: the request waits, not one of those bytes
 * lands in guest memory, one log line names the test and the count, and
 * the guest's statistics count the failure.  A FIFO that recovers is used
 * again after the back-off (1 s) and a fresh window (512 bytes, dropped).
 * --health-tests=off lets the same stuck bytes through.
 */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "it.h"

Suite	*it_health_suite(void);

#define LEN		4096	/* one guest buffer; <= PIPE_BUF */
#define STUCK		64	/* bytes of one value: RCT fails at 21 */
#define WINDOW		512	/* HEALTH_APT_WINDOW */

/* A daemon whose source is a FIFO, and one guest with a buffer posted. */
struct fifo_guest {
	struct vd	 vd;
	struct fe	 fe;
	uint64_t	 gpa;		/* the guest's one LEN-byte buffer */
	int		 w;		/* the FIFO's writer */
};

/*
 * Starts the daemon on a FIFO in its directory (extra: one more argument
 * or NULL) and the guest, which posts its buffer; opens the writer.
 */
static void
start_on_fifo(struct fifo_guest *g, const char *extra)
{
	struct vd *vd = &g->vd;
	struct fe *fe = &g->fe;
	char path[256];

	IT_OK(vd_init(vd));
	vd_path(vd, "entropy.fifo", path, sizeof(path));
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	IT_OK(vd_spawn_source(vd, 1, path, extra));
	IT_OPEN(fe, vd, 0, NULL);
	g->gpa = fe_alloc(fe, LEN, 64);
	ck_assert(fe_post1(fe, g->gpa, LEN) >= 0);
	fe_kick(fe);
	g->w = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(g->w, 0);
}

/* Writes len bytes into the FIFO, in one write (<= PIPE_BUF: atomic). */
static void
put(struct fifo_guest *g, const void *p, size_t len)
{
	ck_assert_int_eq(write(g->w, p, len), (ssize_t)len);
}

/* STUCK bytes of value v. */
static void
put_stuck(struct fifo_guest *g, uint8_t v)
{
	uint8_t stuck[STUCK];

	memset(stuck, v, sizeof(stuck));
	put(g, stuck, sizeof(stuck));
}

static void
end_fifo(struct fifo_guest *g)
{
	close(g->w);
	IT_END(&g->vd, &g->fe);
}

/* The failure was counted in guest 0's statistics (SIGUSR1). */
static void
expect_counted(struct vd *vd, const char *line)
{
	ck_assert_int_eq(kill(vd->pid, SIGUSR1), 0);
	ck_assert_msg(vd_log_wait(vd, line, 1, 3000), "no '%s'%s", line,
	    vd_log_text(vd));
}

/*
 * The request is held, and the buffer kept its canary: no byte of the
 * failed read reached the guest.
 */
static void
expect_held(struct fifo_guest *g, int ms)
{
	ck_assert_msg(fe_wait_used(&g->fe, 1, ms) == 0, "a request was "
	    "completed from a failing source%s", vd_log_text(&g->vd));
	ck_assert_uint_eq(fe_canary_count(&g->fe, g->gpa, LEN), LEN);
}

/*
 * The source failed a test: the daemon logs line, holds the request,
 * leaves the buffer at gpa alone and counts one failure.
 */
static void
expect_cut_off(struct fifo_guest *g, const char *line)
{
	ck_assert_msg(vd_log_wait(&g->vd, line, 1, 3000), "%s",
	    vd_log_text(&g->vd));
	expect_held(g, 300);
	expect_counted(&g->vd, "health_failures 1");
}

START_TEST(stuck_fifo_is_cut_off)
{
	struct fifo_guest g;

	start_on_fifo(&g, NULL);
	put_stuck(&g, 0x42);
	expect_cut_off(&g, "failed the Repetition Count Test (SP 800-90B "
	    "4.4.1) at count 21 (cut-off 21)");
	/* Once: one failure, one line. */
	ck_assert_int_eq(vd_log_count(&g.vd, "failed the"), 1);
	end_fifo(&g);
}
END_TEST

/*
 * Three bytes in four are 0xaa, never four in a row: the RCT passes it,
 * the APT fails it at the 311th 0xaa of the first window.
 */
START_TEST(biased_fifo_is_cut_off)
{
	uint8_t biased[LEN];
	struct fifo_guest g;
	size_t i;

	fe_fill_prng(biased, sizeof(biased), 11);
	for (i = 0; i < sizeof(biased); i++)
		biased[i] = i % 4 != 3 ? 0xaa : (uint8_t)(biased[i] | 1);
	start_on_fifo(&g, NULL);
	/* One atomic write: one read of the daemon. */
	put(&g, biased, sizeof(biased));
	expect_cut_off(&g, "failed the Adaptive Proportion Test (SP 800-90B "
	    "4.4.2) at count 311 (cut-off 311)");
	ck_assert_int_eq(vd_log_count(&g.vd, "Repetition Count"), 0);
	end_fifo(&g);
}
END_TEST

/*
 * Stuck, then good bytes: nothing until the back-off (1 s) is over, then
 * the first 512 good bytes are a fresh window, tested and dropped, and the
 * guest gets the good bytes after them, in order.
 */
START_TEST(fifo_that_recovers_is_used_again)
{
	uint8_t good[LEN];
	struct fe_used_elem u;
	struct fifo_guest g;
	int64_t failed_ms, served_ms;

	start_on_fifo(&g, NULL);
	put_stuck(&g, 0x00);
	ck_assert_msg(vd_log_wait(&g.vd, "Repetition Count Test", 1, 3000),
	    "%s", vd_log_text(&g.vd));
	failed_ms = fe_now_ms();
	fe_fill_prng(good, sizeof(good), 0x5eed);
	put(&g, good, sizeof(good));
	/* Still cut off: the good bytes wait for the back-off. */
	expect_held(&g, 400);
	ck_assert_msg(fe_wait_used(&g.fe, 1, 3000) == 1, "not used again%s",
	    vd_log_text(&g.vd));
	served_ms = fe_now_ms();
	ck_assert(fe_get_used(&g.fe, &u));
	ck_assert_int_ge(served_ms - failed_ms, 800);
	ck_assert_uint_eq(u.len, LEN - WINDOW);
	ck_assert(memcmp(fe_host(&g.fe, g.gpa), good + WINDOW, u.len) == 0);
	ck_assert_int_eq(vd_log_count(&g.vd, "passes the health tests "
	    "again"), 1);
	expect_counted(&g.vd, "health_failures 1");
	end_fifo(&g);
}
END_TEST

/* --health-tests=off: the stuck bytes go to the guest as they are. */
START_TEST(health_tests_off_passes_stuck_bytes)
{
	uint8_t want[STUCK];
	struct fe_used_elem u;
	struct fifo_guest g;

	start_on_fifo(&g, "--health-tests=off");
	memset(want, 0x42, sizeof(want));
	put_stuck(&g, 0x42);
	ck_assert_msg(fe_wait_used(&g.fe, 1, 3000) == 1, "%s",
	    vd_log_text(&g.vd));
	ck_assert(fe_get_used(&g.fe, &u));
	ck_assert_uint_eq(u.len, STUCK);
	ck_assert(memcmp(fe_host(&g.fe, g.gpa), want, STUCK) == 0);
	ck_assert_int_eq(vd_log_count(&g.vd, "failed the"), 0);
	expect_counted(&g.vd, "health_failures 0");
	end_fifo(&g);
}
END_TEST

Suite *
it_health_suite(void)
{
	Suite *s = suite_create("it_health");

	add_case(s, "fifo", IT_TIMEOUT, NULL, NULL, TESTS(
	    stuck_fifo_is_cut_off, biased_fifo_is_cut_off,
	    fifo_that_recovers_is_used_again,
	    health_tests_off_passes_stuck_bytes));
	return s;
}
