/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_TEST_IT_H
#define VRNG_TEST_IT_H

/*
 * Shorthands for the integration suites (test/it_*.c).  Every helper of
 * frontend.c returns 0 on success; these turn a failure into a Check
 * failure that carries fe_errstr() (and so the daemon's log).
 */

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon.h"
#include "frontend.h"
#include "suite.h"

/* Generous: a test is a few seconds at most, but the machine is noisy. */
#define IT_TIMEOUT	30

#define IT_OK(expr)							\
	ck_assert_msg((expr) == 0, "%s failed: %s", #expr, fe_errstr())

/* Starts a daemon with n sockets and extra arguments (NULL-terminated). */
#define IT_START(vd, n, ...)						\
	ck_assert_msg(vd_start((vd), (n), __VA_ARGS__) == 0,		\
	    "starting the daemon: %s", fe_errstr())

/*
 * Connects a front-end to socket i of vd and runs the QEMU sequence with
 * the settings of cfg (NULL: fe_cfg_init()'s).
 */
#define IT_OPEN(fe, vd, i, cfg) do {					\
	char it_path_[256];						\
									\
	ck_assert_msg(fe_open((fe), vd_sock((vd), (i), it_path_,	\
	    sizeof(it_path_)), (cfg)) == 0, "front-end on socket %u: %s%s", \
	    (unsigned)(i), fe_errstr(), vd_log_text(vd));		\
} while (0)

/*
 * The one-guest set-up: a daemon with one socket and extra arguments
 * (NULL-terminated), and the front-end fe on its socket 0 with the
 * settings of cfg (fe_cfg_init() and whatever the test changes; NULL:
 * the defaults).
 */
#define IT_ONE_GUEST(vd, fe, cfg, ...) do {				\
	IT_START((vd), 1, __VA_ARGS__);					\
	IT_OPEN((fe), (vd), 0, (cfg));					\
} while (0)

/* SIGTERM; the daemon must exit 0 with no sanitizer report. */
#define IT_STOP(vd)							\
	ck_assert_msg(vd_stop_clean(vd) == 0, "daemon exit: %s",	\
	    fe_errstr())

/* The usual end: close fe, stop the daemon (IT_STOP), remove it. */
#define IT_END(vd, fe) do {						\
	fe_close(fe);							\
	IT_STOP(vd);							\
	vd_cleanup(vd);							\
} while (0)

/*
 * The end of a daemon given its connection (--fd): closing fe ends it,
 * with exit 0 and no sanitizer report; then it is removed.
 */
#define IT_END_CONNECTED(vd, fe) do {					\
	fe_close(fe);							\
	ck_assert_msg(vd_wait_exit((vd), 3000) == 0, "%s%s",		\
	    fe_errstr(), vd_log_text(vd));				\
	IT_STOP(vd);							\
	vd_cleanup(vd);							\
} while (0)

#define IT_SERVE(fe, len, vd)						\
	ck_assert_msg(fe_serve_one((fe), (len), 3000) == 0,		\
	    "serving %u bytes: %s%s", (unsigned)(len), fe_errstr(),	\
	    vd_log_text(vd))

/* The whole guest memory but the rings and these holes kept its canary. */
#define IT_NO_DAMAGE(fe, holes, n) do {					\
	uint64_t it_first_, it_bad_;					\
									\
	it_bad_ = fe_canary_damage((fe), (holes), (n), &it_first_);	\
	ck_assert_msg(it_bad_ == 0, "%llu bytes outside the buffers were " \
	    "written, the first at gpa 0x%llx",				\
	    (unsigned long long)it_bad_, (unsigned long long)it_first_); \
} while (0)

/*
 * make check-valgrind runs the suites with the daemon under memcheck
 * (VRNG_UNDER_VALGRIND set), many times slower and inside valgrind's own
 * address space.  These checks are skipped there, and only there:
 *
 *   it_ratelimit  ratelimit_one_guest_4096_per_100ms: counts the bytes
 *                 delivered in a 2 s window (timing).
 *   it_addrspace  mem_address_space_capped_per_guest: maps 1 TiB of
 *                 guest memory; valgrind manages a smaller address space.
 *   it_sandbox    daemon_confined_after_start: scripts/valgrind-daemon
 *                 runs the daemon with --no-sandbox.
 *   it_upgrade    every test that sends SIGUSR2: the daemon execs
 *                 itself, and the new image is valgrind's business.
 *   it_metrics    one_wakeup_per_interval_none_when_off: counts the
 *                 daemon's wake-ups over 3 s (timing);
 *                 file_survives_a_live_upgrade: the descriptor count
 *                 only (the image after the exec runs without valgrind,
 *                 whose own descriptors were counted before).
 */
#define IT_SKIP_UNDER_VALGRIND(why) do {				\
	if (getenv("VRNG_UNDER_VALGRIND") != NULL) {			\
		printf("skipped under valgrind: %s: %s\n", __func__,	\
		    (why));						\
		return;							\
	}								\
} while (0)

#endif
