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

/*
 * A daemon on a FIFO in its directory (extra: one more argument or
 * NULL), one guest with one LEN-byte buffer posted at *gpa, and the FIFO's
 * writer, returned.
 */
static int
start_on_fifo(struct vd *vd, struct fe *fe, const char *extra, uint64_t *gpa)
{
	struct vd_opts o;
	char path[256];
	int w;

	IT_OK(vd_init(vd));
	vd_path(vd, "entropy.fifo", path, sizeof(path));
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	vd_opts_init(&o);
	o.nsock = 1;
	o.args[0] = "-f";
	o.args[1] = path;
	o.args[2] = extra;
	IT_OK(vd_spawn(vd, &o));
	IT_OPEN(fe, vd, 0, NULL);
	*gpa = fe_alloc(fe, LEN, 64);
	ck_assert(fe_post1(fe, *gpa, LEN) >= 0);
	fe_kick(fe);
	w = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(w, 0);
	return w;
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
expect_held(struct fe *fe, struct vd *vd, uint64_t gpa, int ms)
{
	ck_assert_msg(fe_wait_used(fe, 1, ms) == 0, "a request was "
	    "completed from a failing source%s", vd_log_text(vd));
	ck_assert_uint_eq(fe_canary_count(fe, gpa, LEN), LEN);
}

START_TEST(stuck_fifo_is_cut_off)
{
	uint8_t stuck[STUCK];
	struct vd vd;
	struct fe fe;
	uint64_t a;
	int w;

	w = start_on_fifo(&vd, &fe, NULL, &a);
	memset(stuck, 0x42, sizeof(stuck));
	ck_assert_int_eq(write(w, stuck, sizeof(stuck)), sizeof(stuck));
	ck_assert_msg(vd_log_wait(&vd, "failed the Repetition Count Test "
	    "(SP 800-90B 4.4.1) at count 21 (cut-off 21)", 1, 3000), "%s",
	    vd_log_text(&vd));
	expect_held(&fe, &vd, a, 300);
	expect_counted(&vd, "health_failures 1");
	/* Once: one failure, one line. */
	ck_assert_int_eq(vd_log_count(&vd, "failed the"), 1);
	close(w);
	IT_END(&vd, &fe);
}
END_TEST

/*
 * Three bytes in four are 0xaa, never four in a row: the RCT passes it,
 * the APT fails it at the 311th 0xaa of the first window.
 */
START_TEST(biased_fifo_is_cut_off)
{
	uint8_t biased[LEN];
	struct vd vd;
	struct fe fe;
	uint64_t a;
	size_t i;
	int w;

	fe_fill_prng(biased, sizeof(biased), 11);
	for (i = 0; i < sizeof(biased); i++)
		biased[i] = i % 4 != 3 ? 0xaa : (uint8_t)(biased[i] | 1);
	w = start_on_fifo(&vd, &fe, NULL, &a);
	/* One atomic write (<= PIPE_BUF): one read of the daemon. */
	ck_assert_int_eq(write(w, biased, sizeof(biased)), sizeof(biased));
	ck_assert_msg(vd_log_wait(&vd, "failed the Adaptive Proportion "
	    "Test (SP 800-90B 4.4.2) at count 311 (cut-off 311)", 1, 3000),
	    "%s", vd_log_text(&vd));
	expect_held(&fe, &vd, a, 300);
	expect_counted(&vd, "health_failures 1");
	ck_assert_int_eq(vd_log_count(&vd, "Repetition Count"), 0);
	close(w);
	IT_END(&vd, &fe);
}
END_TEST

/*
 * Stuck, then good bytes: nothing until the back-off (1 s) is over, then
 * the first 512 good bytes are a fresh window, tested and dropped, and the
 * guest gets the good bytes after them, in order.
 */
START_TEST(fifo_that_recovers_is_used_again)
{
	uint8_t stuck[STUCK], good[LEN];
	struct fe_used_elem u;
	struct vd vd;
	struct fe fe;
	int64_t failed_ms, served_ms;
	uint64_t a;
	int w;

	w = start_on_fifo(&vd, &fe, NULL, &a);
	memset(stuck, 0x00, sizeof(stuck));
	ck_assert_int_eq(write(w, stuck, sizeof(stuck)), sizeof(stuck));
	ck_assert_msg(vd_log_wait(&vd, "Repetition Count Test", 1, 3000),
	    "%s", vd_log_text(&vd));
	failed_ms = fe_now_ms();
	fe_fill_prng(good, sizeof(good), 0x5eed);
	ck_assert_int_eq(write(w, good, sizeof(good)), sizeof(good));
	/* Still cut off: the good bytes wait for the back-off. */
	expect_held(&fe, &vd, a, 400);
	ck_assert_msg(fe_wait_used(&fe, 1, 3000) == 1, "not used again%s",
	    vd_log_text(&vd));
	served_ms = fe_now_ms();
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_int_ge(served_ms - failed_ms, 800);
	ck_assert_uint_eq(u.len, LEN - WINDOW);
	ck_assert(memcmp(fe_host(&fe, a), good + WINDOW, u.len) == 0);
	ck_assert_int_eq(vd_log_count(&vd, "passes the health tests again"),
	    1);
	expect_counted(&vd, "health_failures 1");
	close(w);
	IT_END(&vd, &fe);
}
END_TEST

/* --health-tests=off: the stuck bytes go to the guest as they are. */
START_TEST(health_tests_off_passes_stuck_bytes)
{
	uint8_t stuck[STUCK], want[STUCK];
	struct fe_used_elem u;
	struct vd vd;
	struct fe fe;
	uint64_t a;
	int w;

	w = start_on_fifo(&vd, &fe, "--health-tests=off", &a);
	memset(stuck, 0x42, sizeof(stuck));
	memset(want, 0x42, sizeof(want));
	ck_assert_int_eq(write(w, stuck, sizeof(stuck)), sizeof(stuck));
	ck_assert_msg(fe_wait_used(&fe, 1, 3000) == 1, "%s",
	    vd_log_text(&vd));
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.len, STUCK);
	ck_assert(memcmp(fe_host(&fe, a), want, STUCK) == 0);
	ck_assert_int_eq(vd_log_count(&vd, "failed the"), 0);
	expect_counted(&vd, "health_failures 0");
	close(w);
	IT_END(&vd, &fe);
}
END_TEST

Suite *
it_health_suite(void)
{
	Suite *s = suite_create("it_health");
	TCase *tc;

	tc = tcase_create("fifo");
	tcase_set_timeout(tc, IT_TIMEOUT);
	tcase_add_test(tc, stuck_fifo_is_cut_off);
	tcase_add_test(tc, biased_fifo_is_cut_off);
	tcase_add_test(tc, fifo_that_recovers_is_used_again);
	tcase_add_test(tc, health_tests_off_passes_stuck_bytes);
	suite_add_tcase(s, tc);
	return s;
}
