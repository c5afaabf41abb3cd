/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The metrics file: the exact text for a small case, the largest figures
 * fit the buffer metrics_format_size() promises, every sample line has
 * the shape Prometheus reads (nothing that would need escaping), the file
 * is replaced atomically (a reader never sees a part; an open reader
 * keeps the old file; no temporary file is left behind, even after a
 * failure), a failing write is logged once, and under the sandbox the
 * daemon may write in the metrics directory and nowhere else.
 */
#include <limits.h>
#include <regex.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "metrics.h"
#include "sandbox.h"
#include "unit.h"

Suite	*metrics_suite(void);

static char dir[PATH_MAX];
static char path[PATH_MAX + 16];
static struct guest_slot slots[2];
static struct entropy src;
static struct metrics m;
static char err[PATH_MAX + 256];

/*
 * Two guests: 0 with a front-end and something of every counter, 1 idle;
 * the source cut off.
 */
static const char want_small[] =
"# HELP vhost_device_rng_bytes_total Bytes of entropy delivered to the "
    "guest.\n"
"# TYPE vhost_device_rng_bytes_total counter\n"
"vhost_device_rng_bytes_total{guest=\"0\"} 20224\n"
"vhost_device_rng_bytes_total{guest=\"1\"} 0\n"
"# HELP vhost_device_rng_requests_total Requests of the guest "
    "completed.\n"
"# TYPE vhost_device_rng_requests_total counter\n"
"vhost_device_rng_requests_total{guest=\"0\"} 316\n"
"vhost_device_rng_requests_total{guest=\"1\"} 0\n"
"# HELP vhost_device_rng_throttled_seconds_total Seconds during which a "
    "request of the guest was held by the rate limit.\n"
"# TYPE vhost_device_rng_throttled_seconds_total counter\n"
"vhost_device_rng_throttled_seconds_total{guest=\"0\"} 2.000500001\n"
"vhost_device_rng_throttled_seconds_total{guest=\"1\"} 0.000000000\n"
"# HELP vhost_device_rng_connects_total Front-end connections of the "
    "guest accepted.\n"
"# TYPE vhost_device_rng_connects_total counter\n"
"vhost_device_rng_connects_total{guest=\"0\"} 3\n"
"vhost_device_rng_connects_total{guest=\"1\"} 0\n"
"# HELP vhost_device_rng_errors_total Malformed or refused messages, "
    "broken rings and rings that cannot run, of the guest.\n"
"# TYPE vhost_device_rng_errors_total counter\n"
"vhost_device_rng_errors_total{guest=\"0\"} 4\n"
"vhost_device_rng_errors_total{guest=\"1\"} 0\n"
"# HELP vhost_device_rng_health_failures_total Reads for the guest that "
    "failed a health test of the entropy source.\n"
"# TYPE vhost_device_rng_health_failures_total counter\n"
"vhost_device_rng_health_failures_total{guest=\"0\"} 5\n"
"vhost_device_rng_health_failures_total{guest=\"1\"} 0\n"
"# HELP vhost_device_rng_guests_connected Guests whose front-end is "
    "connected now.\n"
"# TYPE vhost_device_rng_guests_connected gauge\n"
"vhost_device_rng_guests_connected 1\n"
"# HELP vhost_device_rng_source_state State of the entropy source, 1 for "
    "the current one: ok; error, reads fail and are retried; cut_off, "
    "failed a health test, retried after a back-off; eof, used up.\n"
"# TYPE vhost_device_rng_source_state gauge\n"
"vhost_device_rng_source_state{state=\"ok\"} 0\n"
"vhost_device_rng_source_state{state=\"error\"} 0\n"
"vhost_device_rng_source_state{state=\"cut_off\"} 1\n"
"vhost_device_rng_source_state{state=\"eof\"} 0\n";

static const struct guest_stats small_stats[2] = {
	{ .bytes = 20224, .requests = 316, .throttled_ns = 2000500001,
	    .connects = 3, .errors = 4, .health_failures = 5 },
	{ 0 },
};

/* The last line of every file: a reader that sees it saw it all. */
#define LAST_LINE	"vhost_device_rng_source_state{state=\"eof\"} "

START_TEST(format_small_case_exactly)
{
	struct metrics_figures f = { small_stats, 2, 1,
	    ENTROPY_STATE_CUT_OFF };
	char buf[4096];

	ck_assert_int_eq(metrics_format(buf, sizeof(buf), &f),
	    (ssize_t)strlen(want_small));
	ck_assert_str_eq(buf, want_small);
}
END_TEST

/* The buffer is exact: one byte less (no room for the NUL) is ENOSPC. */
START_TEST(format_too_small_is_enospc)
{
	struct metrics_figures f = { small_stats, 2, 1,
	    ENTROPY_STATE_CUT_OFF };
	size_t len = strlen(want_small);
	char buf[4096];

	ck_assert_int_eq(metrics_format(buf, len + 1, &f), (ssize_t)len);
	errno = 0;
	ck_assert_int_eq(metrics_format(buf, len, &f), -1);
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_uint_lt(strlen(buf), len);
	ck_assert_int_eq(metrics_format(buf, 0, &f), -1);
	ck_assert_int_eq(metrics_format(NULL, 0, &f), -1);
}
END_TEST

/*
 * 1024 guests (the most) with every counter at UINT64_MAX fit in
 * metrics_format_size(1024); and every line is a # HELP or # TYPE line of
 * our prefix or a sample whose label values are plain words and digits:
 * nothing that the format would need escaped.
 */
START_TEST(format_largest_fits_and_needs_no_escaping)
{
	static struct guest_stats max[1024];
	struct metrics_figures f = { max, 1024, 1024, ENTROPY_STATE_EOF };
	size_t size = metrics_format_size(1024);
	char *buf, *line, *next;
	regex_t sample, comment;
	ssize_t len;
	unsigned samples = 0;

	memset(max, 0xff, sizeof(max));
	ck_assert_ptr_nonnull(buf = malloc(size));
	len = metrics_format(buf, size, &f);
	ck_assert_int_gt(len, 0);
	ck_assert_ptr_nonnull(strstr(buf, "vhost_device_rng_throttled_seconds_"
	    "total{guest=\"1023\"} 18446744073.709551615\n"));
	ck_assert_ptr_nonnull(strstr(buf, "vhost_device_rng_bytes_total"
	    "{guest=\"1023\"} 18446744073709551615\n"));
	ck_assert_int_eq(regcomp(&sample, "^vhost_device_rng_[a-z_]+"
	    "(\\{(guest|state)=\"[a-z0-9_]+\"\\})? [0-9]+(\\.[0-9]+)?$",
	    REG_EXTENDED | REG_NOSUB), 0);
	ck_assert_int_eq(regcomp(&comment, "^# (HELP vhost_device_rng_[a-z_]+ "
	    "[^\\\\]+|TYPE vhost_device_rng_[a-z_]+ (counter|gauge))$",
	    REG_EXTENDED | REG_NOSUB), 0);
	ck_assert_int_eq(buf[len - 1], '\n');
	for (line = buf; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		ck_assert_ptr_nonnull(next);
		*next++ = '\0';
		if (line[0] == '#')
			ck_assert_msg(regexec(&comment, line, 0, NULL, 0) == 0,
			    "bad comment line: %s", line);
		else {
			ck_assert_msg(regexec(&sample, line, 0, NULL, 0) == 0,
			    "bad sample line: %s", line);
			samples++;
		}
	}
	ck_assert_uint_eq(samples, 6 * 1024 + 1 + 4);
	regfree(&sample);
	regfree(&comment);
	free(buf);
}
END_TEST

/* A directory per test, made and removed by the runner (unchecked). */
static void
dir_setup(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/vrng-metrics-XXXXXX",
	    tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/rng.prom", dir);
}

static void
remove_in(const char *name)
{
	char p[PATH_MAX + NAME_MAX + 2];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if (unlink(p) < 0 && errno == EISDIR)
		rmdir(p);
}

static void
dir_teardown(void)
{
	remove_in("rng.prom");
	remove_in(".rng.prom.tmp");
	remove_in("other");
	rmdir(dir);
}

/* Two guest slots, a source, and metrics on path, started (file written). */
static void
setup(void)
{
	memset(slots, 0, sizeof(slots));
	memset(&m, 0, sizeof(m));
	ck_assert_int_eq(entropy_open(&src, "/dev/urandom", err,
	    sizeof(err)), 0);
	ck_assert_msg(metrics_open(&m, path, 10, err, sizeof(err)) == 0, "%s",
	    err);
	ck_assert_int_eq(metrics_start(&m, slots, 2, &src), 0);
}

static void
teardown(void)
{
	metrics_close(&m);
	entropy_close(&src);
}

/* The whole file (static buffer). */
static const char *
file_text(void)
{
	static char buf[8192];
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

/* Names in the directory, but "." and "..". */
static int
dir_entries(void)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	ck_assert_ptr_nonnull(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* What the slots say now, as metrics_write() must have written it. */
START_TEST(write_has_the_slots_figures)
{
	char want[4096];

	/* At start: zeros, nobody connected, the source ok. */
	ck_assert_ptr_nonnull(strstr(file_text(),
	    "vhost_device_rng_bytes_total{guest=\"0\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(file_text(),
	    "vhost_device_rng_guests_connected 0\n"));
	ck_assert_ptr_nonnull(strstr(file_text(),
	    "vhost_device_rng_source_state{state=\"ok\"} 1\n"));
	slots[0].stats = small_stats[0];
	slots[0].busy = true;
	src.cut_off = true;
	ck_assert_int_eq(metrics_write(&m), 0);
	ck_assert_str_eq(file_text(), want_small);
	/* The text metrics_format() makes of the same, byte for byte. */
	ck_assert_int_eq(metrics_format(want, sizeof(want),
	    &(struct metrics_figures){ small_stats, 2, 1,
	    ENTROPY_STATE_CUT_OFF }), (ssize_t)strlen(want_small));
	ck_assert_int_eq(dir_entries(), 1);
}
END_TEST

/*
 * Replaced, not rewritten: a reader that has the old file open goes on
 * reading the old figures, the name points to a new inode, and no
 * temporary file is left.  A temporary file a killed daemon left behind
 * is replaced too.
 */
START_TEST(write_replaces_the_file_atomically)
{
	struct stat before, after;
	char old[8192];
	ssize_t n;
	int fd, tmp;

	ck_assert_int_eq(stat(path, &before), 0);
	ck_assert_int_ge(fd = open(path, O_RDONLY | O_CLOEXEC), 0);
	slots[1].stats.bytes = 4096;
	ck_assert_int_eq(metrics_write(&m), 0);
	ck_assert_int_eq(stat(path, &after), 0);
	ck_assert_uint_ne(before.st_ino, after.st_ino);
	ck_assert_ptr_nonnull(strstr(file_text(),
	    "vhost_device_rng_bytes_total{guest=\"1\"} 4096\n"));
	/* The old one, whole, for whoever still reads it. */
	n = read(fd, old, sizeof(old) - 1);
	close(fd);
	ck_assert_int_gt(n, 0);
	old[n] = '\0';
	ck_assert_ptr_nonnull(strstr(old,
	    "vhost_device_rng_bytes_total{guest=\"1\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(old, LAST_LINE));
	ck_assert_int_eq(dir_entries(), 1);

	ck_assert_int_ge(tmp = openat(metrics_dir_fd(&m), ".rng.prom.tmp",
	    O_WRONLY | O_CREAT | O_CLOEXEC, 0600), 0);
	ck_assert_int_eq(write(tmp, "stale", 5), 5);
	close(tmp);
	slots[1].stats.bytes = 8192;
	ck_assert_int_eq(metrics_write(&m), 0);
	ck_assert_ptr_nonnull(strstr(file_text(),
	    "vhost_device_rng_bytes_total{guest=\"1\"} 8192\n"));
	ck_assert_int_eq(dir_entries(), 1);
}
END_TEST

/*
 * A reader in another process opens and reads the file over and over
 * while it is rewritten with texts of changing length: every read is a
 * whole file (starts with # HELP, ends with the last sample).
 */
START_TEST(reader_never_sees_a_part)
{
	int pfd[2], st, bad = -1, i;
	pid_t pid;

	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char buf[8192];
		ssize_t n;
		int fd, torn = 0, k;

		close(pfd[0]);
		for (k = 0; k < 3000; k++) {
			if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
				torn++;	/* never missing, either */
				continue;
			}
			n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			buf[n > 0 ? n : 0] = '\0';
			if (strncmp(buf, "# HELP ", 7) != 0 ||
			    strstr(buf, LAST_LINE) == NULL ||
			    buf[n - 1] != '\n')
				torn++;
		}
		if (write(pfd[1], &torn, sizeof(torn)) != sizeof(torn))
			_exit(2);
		_exit(0);
	}
	close(pfd[1]);
	for (i = 0; i < 3000; i++) {
		/* 1 to 20 digits: the length changes with every write. */
		slots[i % 2].stats.bytes = 1ull << (i % 64);
		slots[i % 2].stats.throttled_ns = (uint64_t)i * 999999937u;
		ck_assert_int_eq(metrics_write(&m), 0);
	}
	ck_assert_int_eq(read(pfd[0], &bad, sizeof(bad)), sizeof(bad));
	close(pfd[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_msg(bad == 0, "%d reads saw a missing or partial file", bad);
}
END_TEST

/*
 * A write that cannot be done (a directory sits at the path: the rename
 * fails) is logged once for the streak and leaves no temporary file; the
 * next good write says so once.
 */
START_TEST(failing_write_logged_once_then_recovers)
{
	struct unit_capture cap = { NULL, -1 };
	char out[2048];

	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	unit_capture_start(&cap);
	ck_assert_int_eq(metrics_write(&m), -1);
	ck_assert_int_eq(metrics_write(&m), -1);
	unit_capture_end(&cap, out, sizeof(out));
	ck_assert_msg(strstr(out, "renaming its temporary file over it") !=
	    NULL, "%s", out);
	ck_assert_ptr_null(strstr(strstr(out, "metrics file") + 1,
	    "metrics file"));
	ck_assert_int_eq(dir_entries(), 1);	/* the directory alone */
	ck_assert_int_eq(rmdir(path), 0);
	unit_capture_start(&cap);
	ck_assert_int_eq(metrics_write(&m), 0);
	ck_assert_int_eq(metrics_write(&m), 0);
	unit_capture_end(&cap, out, sizeof(out));
	ck_assert_msg(strstr(out, "written again") != NULL, "%s", out);
	ck_assert_ptr_null(strstr(strstr(out, "written again") + 1,
	    "written again"));
	ck_assert_int_eq(dir_entries(), 1);
}
END_TEST

/* The refusals of metrics_open() name the path; NULL is off. */
START_TEST(open_refusals_and_off)
{
	struct metrics x;
	char p[PATH_MAX + 300];

	ck_assert_int_eq(metrics_open(&x, NULL, 10, err, sizeof(err)), 0);
	ck_assert_int_eq(metrics_fd(&x), -1);
	ck_assert_int_eq(metrics_dir_fd(&x), -1);
	ck_assert_int_eq(metrics_start(&x, slots, 2, &src), 0);
	ck_assert_int_eq(metrics_write(&x), 0);
	metrics_close(&x);

	snprintf(p, sizeof(p), "%s/", dir);
	ck_assert_int_eq(metrics_open(&x, p, 10, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a file name"));
	snprintf(p, sizeof(p), "%s/..", dir);
	ck_assert_int_eq(metrics_open(&x, p, 10, err, sizeof(err)), -1);
	snprintf(p, sizeof(p), "%s/missing/rng.prom", dir);
	ck_assert_int_eq(metrics_open(&x, p, 10, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "missing") != NULL &&
	    strstr(err, "No such file") != NULL, "%s", err);
	ck_assert_int_eq(metrics_fd(&x), -1);
	/* 251 bytes: ".<name>.tmp" would be 256, over NAME_MAX. */
	snprintf(p, sizeof(p), "%s/%0246d.prom", dir, 0);
	ck_assert_int_eq(metrics_open(&x, p, 10, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
	snprintf(p, sizeof(p), "%s/%0245d.prom", dir, 0);
	ck_assert_msg(metrics_open(&x, p, 10, err, sizeof(err)) == 0, "%s",
	    err);
	metrics_close(&x);
}
END_TEST

/*
 * The directory's descriptor is left open across exec, its number in the
 * environment, and a metrics_open() after the exec (here: a second one)
 * takes it over when it is the same directory, not otherwise.
 */
START_TEST(open_takes_over_the_inherited_directory)
{
	char num[16], p[PATH_MAX + 32];
	struct metrics x;
	int fd = metrics_dir_fd(&m), other;

	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	snprintf(num, sizeof(num), "%d", fd);
	ck_assert_str_eq(getenv("VRNG_METRICS_DIR_FD"), num);
	ck_assert_msg(metrics_open(&x, path, 10, err, sizeof(err)) == 0, "%s",
	    err);
	ck_assert_int_eq(metrics_dir_fd(&x), fd);
	metrics_close(&x);
	m.dir_fd = -1;		/* closed with x */

	/* Some other directory under that number: opened afresh. */
	ck_assert_int_ge(other = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC),
	    0);
	snprintf(num, sizeof(num), "%d", other);
	setenv("VRNG_METRICS_DIR_FD", num, 1);
	snprintf(p, sizeof(p), "%s/rng.prom", dir);
	ck_assert_msg(metrics_open(&x, p, 10, err, sizeof(err)) == 0, "%s",
	    err);
	ck_assert_int_ne(metrics_dir_fd(&x), other);
	ck_assert_int_ne(fcntl(other, F_GETFD), -1);	/* left alone */
	metrics_close(&x);
	close(other);
}
END_TEST

/* What each call in the sandboxed child returned: 0 or errno. */
struct sandbox_report {
	int	entered;
	int	write;		/* metrics_write() */
	int	open_other_dir;	/* a new file elsewhere */
	int	open_trunc;	/* O_TRUNC in the metrics directory */
	int	rename_out;	/* from the directory to elsewhere */
};

static int
rc(int r)
{
	return r < 0 ? errno : 0;
}

static void __attribute__((noreturn))
sandboxed_child(int wfd)
{
	struct sandbox_report rep;
	char other[PATH_MAX + 16];
	int fd;

	memset(&rep, 0, sizeof(rep));
	snprintf(other, sizeof(other), "%s/other", dir);
	sandbox_allow_dir(metrics_dir_fd(&m));
	rep.entered = rc(sandbox_enter(err, sizeof(err)));
	if (rep.entered == 0) {
		slots[0].stats.requests = 77;
		rep.write = rc(metrics_write(&m));
		fd = open(other, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		rep.open_other_dir = rc(fd);
		fd = openat(metrics_dir_fd(&m), "rng.prom", O_WRONLY | O_CREAT |
		    O_TRUNC | O_CLOEXEC, 0600);
		rep.open_trunc = rc(fd);
		rep.rename_out = rc(renameat(metrics_dir_fd(&m), "rng.prom",
		    AT_FDCWD, other));
	}
	if (write(wfd, &rep, sizeof(rep)) != sizeof(rep))
		_exit(2);
	/* No exit handlers (LeakSanitizer) under the filter. */
	_exit(0);
}

START_TEST(sandbox_allows_the_directory_only)
{
	struct sandbox_report rep;
	int pfd[2], st;
	pid_t pid;

	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(pfd[0]);
		sandboxed_child(pfd[1]);
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], &rep, sizeof(rep)), sizeof(rep));
	close(pfd[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_msg(rep.entered == 0, "sandbox_enter: %s",
	    strerror(rep.entered));
	ck_assert_msg(rep.write == 0, "metrics_write under the filter: %s",
	    strerror(rep.write));
	ck_assert_ptr_nonnull(strstr(file_text(),
	    "vhost_device_rng_requests_total{guest=\"0\"} 77\n"));
	ck_assert_int_eq(rep.open_other_dir, EPERM);
	ck_assert_int_eq(rep.open_trunc, EPERM);
	ck_assert_int_eq(rep.rename_out, EPERM);
	ck_assert_int_eq(dir_entries(), 1);
}
END_TEST

Suite *
metrics_suite(void)
{
	Suite *s = add_cases(suite_create("metrics"), UNIT_TIMEOUT, NULL, NULL,
	    "format", TESTS(format_small_case_exactly,
		format_too_small_is_enospc,
		format_largest_fits_and_needs_no_escaping),
	    NULL);

	/* The file case's tests share one directory (dir_setup). */
	tcase_add_unchecked_fixture(add_case(s, "file", UNIT_TIMEOUT, setup,
	    teardown, TESTS(write_has_the_slots_figures,
	    write_replaces_the_file_atomically, reader_never_sees_a_part,
	    failing_write_logged_once_then_recovers, open_refusals_and_off,
	    open_takes_over_the_inherited_directory,
	    sandbox_allows_the_directory_only)), dir_setup, dir_teardown);
	return s;
}
