/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The sandbox seen from outside: the daemon confines itself (the kernel
 * says so in /proc/PID/status) and still serves; --no-sandbox leaves it
 * unconfined.  Sanitizer builds run without the filter and say so; the
 * suites run against the release binary too, where it is checked.  That
 * forbidden calls are refused is shown by the unit suite "sandbox".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it.h"

/*
 * Seccomp_filters (proc_status) counts the filters in force: the test
 * itself may run under some (a container's), which the daemon inherits.
 */

/* Serves one request: the confined daemon can still do its job. */
static void
serve_one(struct vd *vd)
{
	struct fe fe;

	IT_OPEN(&fe, vd, 0, NULL);
	IT_SERVE(&fe, 4096, vd);
	fe_close(&fe);
}

START_TEST(daemon_confined_after_start)
{
	struct vd vd;
	long ours;

	IT_SKIP_UNDER_VALGRIND("run with --no-sandbox");

	IT_START(&vd, 1, NULL);
	ck_assert_msg(vd_log_wait(&vd, "sandbox: ", 1, 3000), "%s",
	    vd_log_text(&vd));
	serve_one(&vd);
	ours = proc_status(0, "Seccomp_filters:");
	ck_assert_int_ge(ours, 0);
	if (vd_log_count(&vd, "sandbox: off in this sanitizer build") == 1) {
		/* ASan's leak check needs what the filter forbids. */
		ck_assert_int_eq(proc_status(vd.pid, "Seccomp_filters:"), ours);
	} else {
		ck_assert_msg(vd_log_count(&vd, "sandbox: on") == 1, "%s",
		    vd_log_text(&vd));
		/* 2: SECCOMP_MODE_FILTER; one filter more than we have. */
		ck_assert_int_eq(proc_status(vd.pid, "Seccomp:"), 2);
		ck_assert_int_eq(proc_status(vd.pid, "Seccomp_filters:"),
		    ours + 1);
		ck_assert_int_eq(proc_status(vd.pid, "NoNewPrivs:"), 1);
	}
	IT_STOP(&vd);
	vd_cleanup(&vd);
}
END_TEST

START_TEST(no_sandbox_leaves_it_off)
{
	struct vd vd;

	IT_START(&vd, 1, "--no-sandbox", NULL);
	ck_assert_msg(vd_log_wait(&vd, "sandbox: off (--no-sandbox)", 1,
	    3000), "%s", vd_log_text(&vd));
	serve_one(&vd);
	ck_assert_int_ge(proc_status(0, "Seccomp_filters:"), 0);
	ck_assert_int_eq(proc_status(vd.pid, "Seccomp_filters:"),
	    proc_status(0, "Seccomp_filters:"));
	IT_STOP(&vd);
	vd_cleanup(&vd);
}
END_TEST

SUITE(it_sandbox, IT_TIMEOUT, NULL, NULL,
    "sandbox", TESTS(daemon_confined_after_start, no_sandbox_leaves_it_off))
