/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Logging: guest errors are rate limited per thread, and the levels and
 * guest tags come out as documented.  stderr (fd 2) is sent to a
 * temporary file while a test logs, and the lines are counted there.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "unit.h"

static struct unit_capture capture = { NULL, -1 };
static char out[65536];

static void
capture_start(void)
{
	unit_capture_start(&capture);
}

/* Restores stderr; returns the number of lines logged meanwhile. */
static unsigned
capture_end(void)
{
	unsigned lines = 0;
	char *p;

	unit_capture_end(&capture, out, sizeof(out));
	for (p = out; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	return lines;
}

/* Restores stderr: n lines were logged meanwhile, one of them with has. */
static void
logged(unsigned n, const char *has)
{
	ck_assert_uint_eq(capture_end(), n);
	ck_assert(strstr(out, has) != NULL);
}

static void
teardown(void)
{
	if (capture.saved >= 0)
		(void)capture_end();
	log_init(0);
}

struct burst {
	int		 guest;
	unsigned	 calls;
};

/*
 * A fresh thread has a fresh budget (it is thread-local): the other
 * suites have used up the main thread's in CK_FORK=no mode.
 */
static void *
burst_thread(void *arg)
{
	struct burst *b = arg;
	unsigned i;

	log_set_guest(b->guest);
	for (i = 0; i < b->calls; i++)
		log_guest_err("hostile thing number %u", i);
	return NULL;
}

static void
run_burst(int guest, unsigned calls)
{
	struct burst b = { guest, calls };
	pthread_t th;

	ck_assert_int_eq(pthread_create(&th, NULL, burst_thread, &b), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
}

START_TEST(guest_err_burst_then_suppressed)
{
	unsigned few, many;

	capture_start();
	run_burst(3, 5);
	few = capture_end();
	ck_assert_msg(few == 5, "5 errors gave %u lines", few);
	ck_assert_msg(strstr(out, "guest 3") != NULL, "\"%s\"", out);
	ck_assert_msg(strstr(out, "hostile thing number 4") != NULL, "\"%s\"",
	    out);

	capture_start();
	run_burst(3, 1000);
	many = capture_end();
	ck_assert_msg(many > 0 && many <= 20, "1000 errors gave %u lines",
	    many);
	/* The first lines pass; the later ones are the suppressed ones. */
	ck_assert(strstr(out, "hostile thing number 0") != NULL);
	ck_assert(strstr(out, "hostile thing number 999") == NULL);
}
END_TEST

/* The budget is per thread, so one guest cannot silence another. */
START_TEST(guest_err_budget_per_thread)
{
	unsigned a, ab;

	capture_start();
	run_burst(1, 1000);
	a = capture_end();
	capture_start();
	run_burst(1, 1000);
	run_burst(2, 1000);
	ab = capture_end();
	ck_assert_uint_eq(ab, 2 * a);
	ck_assert(strstr(out, "guest 2: hostile thing number 0") != NULL);
}
END_TEST

START_TEST(levels)
{
	capture_start();
	log_init(0);
	log_info("info at 0");
	log_debug("debug at 0");
	DPRINTF("dprintf at 0");
	log_warnx("warnx at 0");
	logged(1, "warnx at 0");

	capture_start();
	log_init(1);
	log_info("info at 1");
	log_debug("debug at 1");
	logged(1, "info at 1");

	capture_start();
	log_init(2);
	ck_assert_int_eq(log_verbosity(), 2);
	log_debug("debug at 2");
	DPRINTF("dprintf at %d", 2);
	logged(2, "debug: debug at 2");
	ck_assert(strstr(out, "dprintf at 2") != NULL);
}
END_TEST

START_TEST(warn_appends_errno)
{
	capture_start();
	log_set_guest(-1);
	errno = ENOENT;
	log_warn("opening %s", "thing");
	ck_assert_int_eq(errno, ENOENT);	/* kept for the caller */
	log_set_guest(4);
	errno = EACCES;
	log_warn("again");
	log_set_guest(-1);
	ck_assert_uint_eq(capture_end(), 2);
	ck_assert_msg(strstr(out, "opening thing: No such file or directory")
	    != NULL, "\"%s\"", out);
	ck_assert_msg(strstr(out, "guest 4: again: Permission denied") !=
	    NULL, "\"%s\"", out);
}
END_TEST

/* fatal() exits 1 (run in a child so that the runner survives). */
START_TEST(fatalx_exits)
{
	fatalx("the end");
}
END_TEST

Suite *
log_suite(void)
{
	Suite *s = add_cases(suite_create("log"), UNIT_TIMEOUT, NULL, teardown,
	    "log", TESTS(guest_err_burst_then_suppressed,
		guest_err_budget_per_thread, levels, warn_appends_errno),
	    NULL);

	/* Exit tests need fork isolation (CK_FORK=no turns it off). */
	if (getenv("CK_FORK") == NULL || strcmp(getenv("CK_FORK"), "no")
	    != 0)
		tcase_add_exit_test(add_case(s, "fatal", UNIT_TIMEOUT, NULL,
		    NULL, NULL), fatalx_exits, 1);
	return s;
}
