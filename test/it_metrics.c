/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: --metrics-file against the real daemon.  The file is there
 * at start, follows the requests a front-end makes (bytes, requests,
 * connects, guests connected), says when the source is cut off by a
 * health test, is written a last time at exit, and passes Prometheus' own
 * checker (promtool check metrics; Debian's package prometheus, which
 * scripts/install-deps installs: without it these tests fail, they do not
 * skip).  Off, the metrics cost an idle daemon no wake-up; on, one per
 * interval.  A live upgrade goes on writing it.  A directory that does not
 * exist is a start-up error.
 */
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it.h"

Suite	*it_metrics_suite(void);

#define FILE_NAME	"rng.prom"
#define TMP_NAME	".rng.prom.tmp"

/*
 * A daemon with nsock sockets writing <its dir>/rng.prom every second;
 * with fifo, its source is a FIFO made in its directory, whose path is
 * returned (else NULL).
 */
static const char *
start_with_metrics(struct vd *vd, unsigned nsock, bool fifo)
{
	static char path[256], fifo_path[256];
	struct vd_opts o;

	IT_OK(vd_init(vd));
	vd_opts_init(&o);
	o.nsock = nsock;
	o.args[0] = "--metrics-file";
	o.args[1] = vd_path(vd, FILE_NAME, path, sizeof(path));
	o.args[2] = "--metrics-interval=1";
	if (fifo) {
		vd_path(vd, "entropy.fifo", fifo_path, sizeof(fifo_path));
		ck_assert_int_eq(mkfifo(fifo_path, 0600), 0);
		o.args[3] = "-f";
		o.args[4] = fifo_path;
	}
	IT_OK(vd_spawn(vd, &o));
	return fifo ? fifo_path : NULL;
}

/* The file's text now ("" if there is none), in a static buffer. */
static const char *
metrics_text(const struct vd *vd)
{
	static char buf[16384];
	char path[256];
	ssize_t n;
	int fd;

	buf[0] = '\0';
	fd = open(vd_path(vd, FILE_NAME, path, sizeof(path)), O_RDONLY |
	    O_CLOEXEC);
	if (fd < 0)
		return buf;
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	return buf;
}

/* Waits until the file has every line of want (up to timeout_ms). */
static void
expect_lines(const struct vd *vd, const char *const *want, int timeout_ms)
{
	int64_t deadline = fe_now_ms() + timeout_ms;
	const char *text, *const *w;
	char line[256];

	for (;;) {
		text = metrics_text(vd);
		for (w = want; *w != NULL; w++) {
			snprintf(line, sizeof(line), "\n%s\n", *w);
			if (strstr(text, line) == NULL)
				break;
		}
		if (*w == NULL)
			return;
		ck_assert_msg(fe_now_ms() < deadline, "no line '%s' in the "
		    "metrics file after %d ms:\n%s%s", *w, timeout_ms, text,
		    vd_log_text(vd));
		fe_sleep_ms(50);
	}
}

#define EXPECT_LINES(vd, ms, ...)					\
	expect_lines((vd), (const char *const[]){ __VA_ARGS__, NULL }, (ms))

/*
 * promtool from $PROMTOOL or the PATH into buf; a test that needs it and
 * does not find it fails, saying where to get it.
 */
static void
find_promtool(char *buf, size_t len)
{
	const char *env = getenv("PROMTOOL"), *p, *end;
	char *path;

	if (env != NULL && env[0] != '\0') {
		snprintf(buf, len, "%s", env);
		ck_assert_msg(access(buf, X_OK) == 0, "PROMTOOL=%s: not "
		    "executable", env);
		return;
	}
	ck_assert_ptr_nonnull(path = getenv("PATH"));
	for (p = path; *p != '\0'; p = *end == ':' ? end + 1 : end) {
		end = strchrnul(p, ':');
		snprintf(buf, len, "%.*s/promtool", (int)(end - p), p);
		if (end > p && access(buf, X_OK) == 0)
			return;
	}
	ck_abort_msg("promtool not found in PATH: these tests check the "
	    "metrics file with Prometheus' own checker; install Debian's "
	    "package prometheus (scripts/install-deps does) or set PROMTOOL");
}

/*
 * `promtool check metrics < file`: exits 0 and prints nothing when the
 * file parses and has no lint problem (1: parse error, 3: lint).
 */
static void
expect_promtool_clean(const struct vd *vd)
{
	char tool[PATH_MAX], path[256], outpath[256], out[4096];
	int in, fd, st;
	ssize_t n;
	pid_t pid;

	find_promtool(tool, sizeof(tool));
	vd_path(vd, FILE_NAME, path, sizeof(path));
	vd_path(vd, "promtool.out", outpath, sizeof(outpath));
	ck_assert_int_ge(in = open(path, O_RDONLY | O_CLOEXEC), 0);
	ck_assert_int_ge(fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0600), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (dup2(in, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execl(tool, "promtool", "check", "metrics", (char *)NULL);
		_exit(127);
	}
	close(in);
	close(fd);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_int_ge(fd = open(outpath, O_RDONLY | O_CLOEXEC), 0);
	n = read(fd, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0 && out[0] == '\0',
	    "%s check metrics: status 0x%x: %s\nthe file:\n%s", tool, st, out,
	    metrics_text(vd));
}

/*
 * Two guests; guest 0 is served ten 64-byte requests: the file says so
 * within an interval or two, promtool finds nothing wrong, and the write
 * at exit has the same counters with nobody connected.
 */
START_TEST(file_follows_the_requests)
{
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	char tmp[256];
	int i;

	start_with_metrics(&vd, 2, false);
	/* Written once at start, before any interval. */
	EXPECT_LINES(&vd, 5000,
	    "vhost_device_rng_bytes_total{guest=\"0\"} 0",
	    "vhost_device_rng_bytes_total{guest=\"1\"} 0",
	    "vhost_device_rng_guests_connected 0",
	    "vhost_device_rng_source_state{state=\"ok\"} 1");
	fe_cfg_init(&cfg);
	IT_OPEN(&fe, &vd, 0, &cfg);
	for (i = 0; i < 10; i++)
		IT_SERVE(&fe, 64, &vd);
	EXPECT_LINES(&vd, 5000,
	    "vhost_device_rng_bytes_total{guest=\"0\"} 640",
	    "vhost_device_rng_requests_total{guest=\"0\"} 10",
	    "vhost_device_rng_connects_total{guest=\"0\"} 1",
	    "vhost_device_rng_errors_total{guest=\"0\"} 0",
	    "vhost_device_rng_health_failures_total{guest=\"0\"} 0",
	    "vhost_device_rng_throttled_seconds_total{guest=\"0\"} 0.000000000",
	    "vhost_device_rng_bytes_total{guest=\"1\"} 0",
	    "vhost_device_rng_connects_total{guest=\"1\"} 0",
	    "vhost_device_rng_guests_connected 1",
	    "vhost_device_rng_source_state{state=\"ok\"} 1",
	    "vhost_device_rng_source_state{state=\"cut_off\"} 0");
	expect_promtool_clean(&vd);
	ck_assert_int_eq(vd_log_count(&vd, "metrics file"), 1);	/* info */
	IT_STOP(&vd);
	fe_close(&fe);
	/* The write at exit: the guest's thread is stopped, gone. */
	EXPECT_LINES(&vd, 0,
	    "vhost_device_rng_bytes_total{guest=\"0\"} 640",
	    "vhost_device_rng_guests_connected 0");
	ck_assert_int_ne(access(vd_path(&vd, TMP_NAME, tmp, sizeof(tmp)),
	    F_OK), 0);
	vd_cleanup(&vd);
}
END_TEST

/*
 * A FIFO source whose writer sends one stuck value: the health test cuts
 * it off, and the file says so (the state, and the guest's failure).
 */
START_TEST(file_shows_a_cut_off_source)
{
	uint8_t stuck[64];
	struct fe_cfg cfg;
	const char *fifo;
	struct vd vd;
	struct fe fe;
	int w;

	fifo = start_with_metrics(&vd, 1, true);
	fe_cfg_init(&cfg);
	IT_OPEN(&fe, &vd, 0, &cfg);
	ck_assert(fe_post1(&fe, fe_alloc(&fe, 4096, 64), 4096) >= 0);
	fe_kick(&fe);
	ck_assert_int_ge(w = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC),
	    0);
	memset(stuck, 0x42, sizeof(stuck));
	ck_assert_int_eq(write(w, stuck, sizeof(stuck)), sizeof(stuck));
	EXPECT_LINES(&vd, 5000,
	    "vhost_device_rng_source_state{state=\"ok\"} 0",
	    "vhost_device_rng_source_state{state=\"cut_off\"} 1",
	    "vhost_device_rng_health_failures_total{guest=\"0\"} 1",
	    "vhost_device_rng_bytes_total{guest=\"0\"} 0");
	expect_promtool_clean(&vd);
	close(w);
	IT_END(&vd, &fe);
}
END_TEST

/*
 * A live upgrade (SIGUSR2) execs the daemon inside the seccomp filter it
 * loaded, which names the metrics directory by its descriptor: the new
 * image takes that very descriptor over and goes on writing (the guest's
 * counters with it), with no descriptor more than before.
 */
START_TEST(file_survives_a_live_upgrade)
{
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int fds0, i;

	start_with_metrics(&vd, 1, false);
	fe_cfg_init(&cfg);
	IT_OPEN(&fe, &vd, 0, &cfg);
	for (i = 0; i < 5; i++)
		IT_SERVE(&fe, 64, &vd);
	EXPECT_LINES(&vd, 5000,
	    "vhost_device_rng_requests_total{guest=\"0\"} 5");
	fds0 = vd_count_fds(&vd);
	ck_assert_int_eq(kill(vd.pid, SIGUSR2), 0);
	ck_assert_msg(vd_log_wait(&vd, "guest(s) restored", 1, 10000), "%s",
	    vd_log_text(&vd));
	for (i = 0; i < 5; i++)
		IT_SERVE(&fe, 64, &vd);
	EXPECT_LINES(&vd, 5000,
	    "vhost_device_rng_bytes_total{guest=\"0\"} 640",
	    "vhost_device_rng_requests_total{guest=\"0\"} 10",
	    "vhost_device_rng_guests_connected 1");
	/* Two "written every" lines, one per image; no failure. */
	ck_assert_msg(vd_log_count(&vd, "metrics file") == 2, "%s",
	    vd_log_text(&vd));
	/* Under valgrind the new image runs without it, and its fds. */
	if (getenv("VRNG_UNDER_VALGRIND") == NULL)
		ck_assert_int_eq(vd_count_fds(&vd), fds0);
	IT_END(&vd, &fe);
}
END_TEST

/*
 * The cost: an idle daemon without --metrics-file is never woken (as
 * before metrics existed); with --metrics-interval 1 it wakes about once
 * a second, and the file is rewritten each time.
 */
START_TEST(one_wakeup_per_interval_none_when_off)
{
	struct stat st0, st1;
	char path[256];
	struct vd off, on;
	int64_t a0, a1, b0, b1;

	IT_SKIP_UNDER_VALGRIND("counts wake-ups over 3 s");

	IT_START(&off, 1, NULL);
	start_with_metrics(&on, 1, false);
	EXPECT_LINES(&on, 3000, "vhost_device_rng_guests_connected 0");
	fe_sleep_ms(300);
	vd_path(&on, FILE_NAME, path, sizeof(path));
	ck_assert_int_eq(stat(path, &st0), 0);
	a0 = vd_ctxt_switches(&off);
	b0 = vd_ctxt_switches(&on);
	fe_sleep_ms(3000);
	a1 = vd_ctxt_switches(&off);
	b1 = vd_ctxt_switches(&on);
	ck_assert_int_eq(stat(path, &st1), 0);
	ck_assert_int_ge(a0, 0);
	ck_assert_int_ge(b0, 0);
	ck_assert_msg(a1 - a0 == 0, "%lld wake-ups in 3 s of idle without "
	    "--metrics-file", (long long)(a1 - a0));
	/*
	 * 3 intervals (4 if one is delayed across the edge), each a timer
	 * wake-up and, on ext4, perhaps a second sleep in renameat(2): the
	 * rename over the old file starts the new one's write-back
	 * (auto_da_alloc).
	 */
	ck_assert_msg(b1 - b0 >= 2 && b1 - b0 <= 8, "%lld wake-ups in 3 s "
	    "with --metrics-interval 1", (long long)(b1 - b0));
	ck_assert_uint_ne(st0.st_ino, st1.st_ino);
	IT_STOP(&off);
	IT_STOP(&on);
	vd_cleanup(&off);
	vd_cleanup(&on);
}
END_TEST

/*
 * A directory that is not there: exit 1 before any socket is made, with
 * a line that names the option and the directory.
 */
START_TEST(missing_directory_is_a_startup_error)
{
	struct vd_opts o;
	char path[256], sock[256];
	struct vd vd;

	IT_OK(vd_init(&vd));
	vd_opts_init(&o);
	o.nsock = 1;
	o.no_wait = true;
	o.args[0] = "--metrics-file";
	o.args[1] = vd_path(&vd, "no/such/dir/rng.prom", path, sizeof(path));
	IT_OK(vd_spawn(&vd, &o));
	ck_assert_int_eq(vd_wait_exit(&vd, 10000), 1);
	ck_assert_msg(vd_log_count(&vd, "--metrics-file") == 1 &&
	    vd_log_count(&vd, "no/such/dir: No such file or directory") == 1,
	    "%s", vd_log_text(&vd));
	ck_assert_int_ne(access(vd_sock(&vd, 0, sock, sizeof(sock)), F_OK), 0);
	vd_cleanup(&vd);
}
END_TEST

Suite *
it_metrics_suite(void)
{
	return add_cases(suite_create("it_metrics"), IT_TIMEOUT, NULL, NULL,
	    "file", TESTS(file_follows_the_requests,
		file_shows_a_cut_off_source, file_survives_a_live_upgrade),
	    "cost", TESTS(one_wakeup_per_interval_none_when_off),
	    "refusals", TESTS(missing_directory_is_a_startup_error),
	    NULL);
}
