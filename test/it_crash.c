/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: crash recovery through the fd store (--fd-store,
 * fdstore.h) under test/supervisor.c, which plays systemd's part
 * (Type=notify, Restart=on-failure, FileDescriptorStoreMax=).  The daemon
 * is killed with SIGKILL in the middle of a guest's read; the supervisor
 * starts it again with the stored descriptors, and the read completes on
 * the same connection.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "it.h"

#define CRASHES		3
#define READ_BUFS	64
#define READ_LEN	4096

/* A "key=value" number of the supervisor's status file, or -1. */
static long
status_get(const struct vd *vd, const char *key)
{
	char path[256], line[512];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f;

	vd_path(vd, "status", path, sizeof(path));
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, klen) == 0 && line[klen] == '=')
			v = strtol(line + klen + 1, NULL, 10);
	fclose(f);
	return v;
}

static bool
status_wait(const struct vd *vd, const char *key, long want, int ms)
{
	int64_t end = fe_now_ms() + ms;

	while (fe_now_ms() < end) {
		if (status_get(vd, key) == want)
			return true;
		fe_sleep_ms(10);
	}
	return false;
}

/* The daemon under the supervisor, with the fd store and a rate limit. */
static void
start_supervised(struct vd *vd)
{
	static char status[256], sup[256];
	static const char *const wrap[] = { sup, "--fdstore-max", "4096",
	    "--restart-delay-ms", "50", "--status", status, "--", NULL };
	/* 640 KB/s: the read below takes about 0.4 s. */
	static const char *const args[] = { "--fd-store", "--max-bytes",
	    "65536", "--period", "100", NULL };
	const char *env = getenv("VRNG_SUPERVISOR");
	struct vd_opts o;
	_Static_assert(sizeof(wrap) <= sizeof(o.wrap) &&
	    sizeof(args) <= sizeof(o.args), "the lists fit in vd_opts");

	ck_assert_int_eq(vd_init(vd), 0);
	vd_path(vd, "status", status, sizeof(status));
	snprintf(sup, sizeof(sup), "%s", env != NULL ? env :
	    "./build/test-supervisor");
	vd_opts_init(&o);
	o.nsock = 1;
	memcpy(o.wrap, wrap, sizeof(wrap));
	memcpy(o.args, args, sizeof(args));
	ck_assert_msg(vd_spawn(vd, &o) == 0, "%s", fe_errstr());
	ck_assert_msg(status_wait(vd, "ready", 1, 10000), "not ready: %s",
	    vd_log_text(vd));
}

/* Kills the daemon (not the supervisor) and waits for its successor. */
static void
crash_daemon(struct vd *vd, long restarts)
{
	long pid = status_get(vd, "pid");

	ck_assert_int_gt(pid, 1);
	ck_assert_int_eq(kill((pid_t)pid, SIGKILL), 0);
	ck_assert_msg(status_wait(vd, "restarts", restarts, 10000),
	    "no restart %ld: %s", restarts, vd_log_text(vd));
	ck_assert_msg(status_wait(vd, "ready", 1, 10000), "not ready after "
	    "restart %ld: %s", restarts, vd_log_text(vd));
}

/* Closes fe; SIGTERM to the supervisor ends it and the daemon, 0. */
static void
stop_supervised(struct vd *vd, struct fe *fe)
{
	fe_close(fe);
	ck_assert_int_eq(vd_stop(vd, 5000), 0);
	vd_cleanup(vd);
}

START_TEST(crash_three_times_mid_read)
{
	struct fe_used_elem u;
	struct vd vd;
	struct fe fe;
	unsigned round, i, got;
	uint16_t used = 0;
	char path[256];

	start_supervised(&vd);
	IT_OPEN(&fe, &vd, 0, NULL);
	IT_SERVE(&fe, 64, &vd);
	used++;
	/*
	 * QEMU sends its call eventfd twice, the same file each time: the
	 * store must still hold it afterwards (systemd refuses a file it
	 * holds under one name when it comes under another).  Once more is
	 * the case: a second time would hide a loss of the first.
	 */
	{
		uint64_t v = 0;

		IT_OK(fe_request(&fe, FE_SET_VRING_CALL, &v, sizeof(v),
		    &fe.call, 1, false));
		IT_OK(fe_sync(&fe));
		fe_sleep_ms(50);
	}
	for (round = 1; round <= CRASHES; round++) {
		for (i = 0; i < READ_BUFS; i++)
			ck_assert_int_ge(fe_post1(&fe, fe_alloc(&fe, READ_LEN,
			    64), READ_LEN), 0);
		fe_kick(&fe);
		fe_sleep_ms(100);
		/* Some of the read is done, not all of it. */
		ck_assert_uint_lt(fe_used_pending(&fe), READ_BUFS);
		crash_daemon(&vd, (long)round);
		got = fe_wait_used(&fe, READ_BUFS, 20000);
		ck_assert_msg(got >= READ_BUFS, "round %u: %u of %u buffers "
		    "after the restart: %s", round, got, READ_BUFS,
		    vd_log_text(&vd));
		for (i = 0; i < READ_BUFS; i++) {
			ck_assert(fe_get_used(&fe, &u));
			/* The budget may end inside a buffer: served short. */
			ck_assert_uint_gt(u.len, 0);
			ck_assert_uint_le(u.len, READ_LEN);
		}
		used += READ_BUFS;
		/* The same connection answers. */
		IT_OK(fe_sync(&fe));
		fe.heap = fe.heap_start;	/* the buffers again */
	}
	ck_assert_uint_eq(fe_used_idx(&fe), used);
	ck_assert_int_eq(vd_log_count(&vd, "guest(s) restored"), CRASHES);
	IT_SERVE(&fe, 64, &vd);
	/* The socket file is the one the first daemon made. */
	ck_assert_int_eq(access(vd_sock(&vd, 0, path, sizeof(path)), F_OK),
	    0);
	stop_supervised(&vd, &fe);
}
END_TEST

/* No guest yet: the listening socket survives, and QEMU can connect. */
START_TEST(crash_keeps_listening_socket)
{
	struct stat before, after;
	struct vd vd;
	struct fe fe;
	char path[256];

	start_supervised(&vd);
	ck_assert_int_eq(stat(vd_sock(&vd, 0, path, sizeof(path)), &before),
	    0);
	crash_daemon(&vd, 1);
	ck_assert_int_eq(stat(path, &after), 0);
	ck_assert_uint_eq(before.st_ino, after.st_ino);
	ck_assert_int_ge(vd_log_count(&vd, "listening socket(s) taken back"),
	    1);
	IT_OPEN(&fe, &vd, 0, NULL);
	IT_SERVE(&fe, 64, &vd);
	stop_supervised(&vd, &fe);
}
END_TEST

Suite *
it_crash_suite(void)
{
	return add_cases(suite_create("crash"), 120, NULL, NULL,
	    "crash", TESTS(crash_three_times_mid_read,
		crash_keeps_listening_socket),
	    NULL);
}
