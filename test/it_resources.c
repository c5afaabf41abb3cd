/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: what the daemon shares with the rest of the machine.
 *
 * Descriptors: with RLIMIT_NOFILE used up, accept(2) fails with EMFILE
 * while the connection stays queued and the listener readable; the daemon
 * must back off (a bounded number of log lines, little CPU) and accept
 * the front-end once descriptors are free again.
 *
 * Socket files: a second daemon on the same --socket-path must not take
 * a socket someone listens on, and a daemon at exit removes only the
 * socket file it created, not one that replaced it.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "it.h"


/* How long the daemon is watched while it cannot accept. */
#define STARVED_MS		2000
/*
 * Bounds for that time: before the back-off it logged ~230,000 lines and
 * burnt ~1.5 s of CPU per second; backing off it logs one line and sleeps.
 */
#define STARVED_MAX_LINES	5
#define STARVED_MAX_CPU_MS	300

/* The lowest fd number the daemon does not use: where accept4 would go. */
static int
lowest_free_fd(const struct vd *vd)
{
	static bool used[4096];
	char path[64];
	struct dirent *de;
	DIR *d;
	int i;

	memset(used, 0, sizeof(used));
	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)vd->pid);
	d = opendir(path);
	ck_assert_msg(d != NULL, "%s: %s", path, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		long fd = strtol(de->d_name, NULL, 10);

		if (de->d_name[0] != '.' && fd >= 0 && fd < 4096)
			used[fd] = true;
	}
	closedir(d);
	for (i = 0; i < 4096 && used[i]; i++)
		;
	return i;
}

/* Sets the daemon's soft RLIMIT_NOFILE; returns the old one. */
static rlim_t
set_nofile(const struct vd *vd, rlim_t soft)
{
	struct rlimit old, new;

	ck_assert_int_eq(prlimit(vd->pid, RLIMIT_NOFILE, NULL, &old), 0);
	new = old;
	new.rlim_cur = soft;
	ck_assert_msg(prlimit(vd->pid, RLIMIT_NOFILE, &new, NULL) == 0,
	    "prlimit: %s", strerror(errno));
	return old.rlim_cur;
}

/*
 * The daemon vd serves fe once more, then exits on SIGTERM and removes
 * its socket path.
 */
static void
serves_then_exits_removing(struct vd *vd, struct fe *fe, const char *path)
{
	IT_SERVE(fe, 64, vd);
	fe_close(fe);
	IT_STOP(vd);
	ck_assert_int_eq(access(path, F_OK), -1);
}

/* Issue 8: 692,000 log lines and 2.2 CPU-seconds in 3 s. */
START_TEST(emfile_backs_off_then_accepts)
{
	struct vd vd;
	struct fe fe;
	char path[256];
	int64_t cpu0, cpu;
	rlim_t old;
	int lines;

	IT_START(&vd, 1, NULL);
	old = set_nofile(&vd, (rlim_t)lowest_free_fd(&vd));
	fe_init(&fe);
	/* Queued in the backlog: the daemon cannot take it. */
	IT_OK(fe_connect(&fe, vd_sock(&vd, 0, path, sizeof(path)), 3000));
	ck_assert_msg(vd_log_wait(&vd, "Too many open files", 1, 3000),
	    "accept did not fail%s", vd_log_text(&vd));
	cpu0 = vd_cpu_ms(&vd);
	fe_sleep_ms(STARVED_MS);
	cpu = vd_cpu_ms(&vd) - cpu0;
	lines = vd_log_count(&vd, "accept on");
	ck_assert_msg(lines >= 1 && lines <= STARVED_MAX_LINES,
	    "%d accept lines logged in %d ms", lines, STARVED_MS);
	ck_assert_msg(cpu0 >= 0 && cpu <= STARVED_MAX_CPU_MS,
	    "%lld ms of CPU in %d ms without descriptors",
	    (long long)cpu, STARVED_MS);
	ck_assert(vd_alive(&vd));

	/* Descriptors again: the queued front-end is taken and served. */
	set_nofile(&vd, old);
	ck_assert_msg(fe_setup(&fe, NULL) == 0, "front-end after the "
	    "shortage: %s%s", fe_errstr(), vd_log_text(&vd));
	IT_SERVE(&fe, 64, &vd);
	ck_assert_int_eq(vd_log_count(&vd, "accepting again"), 1);
	IT_END(&vd, &fe);
}
END_TEST

static ino_t
inode_of(const char *path)
{
	struct stat st;

	ck_assert_msg(lstat(path, &st) == 0, "%s: %s", path, strerror(errno));
	return st.st_ino;
}

/* Starts a second daemon on first's socket base; returns its exit code. */
static int
second_daemon(struct vd *second, const struct vd *first, bool wait_ready)
{
	struct vd_opts o;

	vd_opts_init(&o);
	o.args[0] = "-s";
	o.args[1] = first->base;
	o.no_wait = !wait_ready;
	ck_assert_int_eq(vd_init(second), 0);
	ck_assert_msg(vd_spawn(second, &o) == 0, "second daemon: %s",
	    fe_errstr());
	return wait_ready ? 0 : vd_wait_exit(second, 5000);
}

/* The first daemon, of one socket: its path in path. */
static void
first_daemon(struct vd *a, char *path, size_t len)
{
	IT_START(a, 1, NULL);
	vd_sock(a, 0, path, len);
}

/*
 * Issue 8: a second daemon unlinked the first one's live socket; when the
 * first exited it unlinked the second's, which ran on unreachable.
 */
START_TEST(live_socket_not_taken_over)
{
	struct vd a, b;
	struct fe fe;
	char path[256];
	ino_t ino;

	first_daemon(&a, path, sizeof(path));
	ino = inode_of(path);
	ck_assert_int_eq(second_daemon(&b, &a, false), 1);
	ck_assert_msg(vd_log_count(&b, "another process is listening") == 1,
	    "no clear error%s", vd_log_text(&b));
	ck_assert_uint_eq(inode_of(path), ino);

	/* The first daemon still serves on it. */
	IT_OPEN(&fe, &a, 0, NULL);
	serves_then_exits_removing(&a, &fe, path);
	vd_cleanup(&b);
	vd_cleanup(&a);
}
END_TEST

/* A socket file that replaced ours is not ours to remove at exit. */
START_TEST(exit_removes_only_own_socket)
{
	struct vd a, b;
	struct fe fe;
	char path[256];
	ino_t theirs;

	first_daemon(&a, path, sizeof(path));
	/* Someone removes the first daemon's socket; a second one starts. */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(second_daemon(&b, &a, true), 0);
	theirs = inode_of(path);
	IT_STOP(&a);
	ck_assert_msg(vd_log_count(&a, "no longer the socket") == 1, "%s",
	    vd_log_text(&a));
	ck_assert_uint_eq(inode_of(path), theirs);

	/* The second daemon is still reachable, and cleans up after itself. */
	ck_assert_msg(fe_open(&fe, path, NULL) == 0, "second daemon: %s%s",
	    fe_errstr(), vd_log_text(&b));
	serves_then_exits_removing(&b, &fe, path);
	vd_cleanup(&b);
	vd_cleanup(&a);
}
END_TEST

/* A socket file nobody listens on (a crashed daemon's) is replaced. */
START_TEST(stale_socket_still_replaced)
{
	struct vd a, b;
	struct fe fe;
	char path[256];

	first_daemon(&a, path, sizeof(path));
	ck_assert_int_eq(kill(a.pid, SIGKILL), 0);
	ck_assert_int_eq(vd_wait_exit(&a, 5000), -1);
	ck_assert_int_eq(access(path, F_OK), 0);
	ck_assert_int_eq(second_daemon(&b, &a, true), 0);
	ck_assert_msg(fe_open(&fe, path, NULL) == 0, "%s%s", fe_errstr(),
	    vd_log_text(&b));
	IT_SERVE(&fe, 64, &b);
	IT_END(&b, &fe);
	vd_cleanup(&a);
}
END_TEST

SUITE(it_resources, IT_TIMEOUT, NULL, NULL,
    "descriptors", TESTS(emfile_backs_off_then_accepts),
    "socket_files", TESTS(live_socket_not_taken_over,
	exit_removes_only_own_socket, stale_socket_still_replaced))
