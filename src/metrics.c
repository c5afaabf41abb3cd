/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The metrics file (--metrics-file): the statistics in the Prometheus
 * text exposition format, replaced atomically every --metrics-interval
 * seconds, at start and at a clean exit.  See metrics.h.
 *
 * The format: https://prometheus.io/docs/instrumenting/exposition_formats/
 * (text format 0.0.4).  Samples of one metric stand together under its
 * # HELP and # TYPE lines; counters end in _total; label values are
 * quoted.  Our label values are a decimal index and fixed words, and the
 * help texts hold neither '\' nor a newline, so nothing needs escaping.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

/*
 * The per-guest counters, one metric each, in struct guest_stats order.
 * Names are what follows METRICS_PREFIX.
 */
static const struct family {
	const char	*name;
	const char	*help;
	size_t		 field;		/* offsetof in struct guest_stats */
	bool		 ns;		/* nanoseconds, written as seconds */
} families[] = {
	{ "bytes_total", "Bytes of entropy delivered to the guest.",
	    offsetof(struct guest_stats, bytes), false },
	{ "requests_total", "Requests of the guest completed.",
	    offsetof(struct guest_stats, requests), false },
	{ "throttled_seconds_total", "Seconds during which a request of "
	    "the guest was held by the rate limit.",
	    offsetof(struct guest_stats, throttled_ns), true },
	{ "connects_total", "Front-end connections of the guest accepted.",
	    offsetof(struct guest_stats, connects), false },
	{ "errors_total", "Malformed or refused messages, broken rings and "
	    "rings that cannot run, of the guest.",
	    offsetof(struct guest_stats, errors), false },
	{ "health_failures_total", "Reads for the guest that failed a "
	    "health test of the entropy source.",
	    offsetof(struct guest_stats, health_failures), false },
};
#define NFAMILIES	(sizeof(families) / sizeof(families[0]))

/* The label values of source_state, indexed by enum entropy_state. */
static const char *const source_states[] = {
	[ENTROPY_STATE_OK] = "ok",
	[ENTROPY_STATE_ERROR] = "error",
	[ENTROPY_STATE_CUT_OFF] = "cut_off",
	[ENTROPY_STATE_EOF] = "eof",
};
#define NSTATES		(sizeof(source_states) / sizeof(source_states[0]))

/*
 * Bounds for metrics_format_size(): the # HELP and # TYPE lines of one
 * metric, and one sample line (prefix, the longest name, guest="<10
 * digits>", 20 digits, '.', 9 digits: about 100).  The unit suite checks
 * the largest figures fit.
 */
#define HEADER_MAX	512
#define SAMPLE_MAX	128
/* Metrics of the daemon (not per guest) and their samples. */
#define DAEMON_METRICS	2
#define DAEMON_SAMPLES	(1 + NSTATES)

/*
 * The file is created new (O_EXCL: never through a link someone left
 * there) and write-only; the sandbox allows exactly these flags in the
 * metrics directory.  0644: the node exporter runs as another user; the
 * umask has the last word.
 */
#define TMP_FLAGS	(O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC)
#define TMP_MODE	0644
#define TMP_SUFFIX	".tmp"

/*
 * Live upgrade (upgrade.h): the seccomp filter of the image that execs
 * stays in force in the new one, and it names the metrics directory by
 * its descriptor number.  So the descriptor is kept open across exec (no
 * close-on-exec), its number goes into the environment, and the new image
 * takes it over when it is still the same directory: the same number, the
 * same filter.  A directory opened afresh would get whatever number is
 * free, which the filter in force would refuse.
 */
#define METRICS_ENV_DIR_FD	"VRNG_METRICS_DIR_FD"

size_t
metrics_format_size(unsigned nguests)
{
	return (NFAMILIES + DAEMON_METRICS) * HEADER_MAX +
	    (NFAMILIES * (size_t)nguests + DAEMON_SAMPLES) * SAMPLE_MAX + 1;
}

/* Text appended to a fixed buffer; full once something did not fit. */
struct out {
	char	*buf;
	size_t	 len;
	size_t	 off;
	bool	 full;
};

static void __attribute__((format(printf, 2, 3)))
put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->off, o->len - o->off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->off) {
		o->full = true;
		return;
	}
	o->off += (size_t)n;
}

static void
put_header(struct out *o, const char *name, const char *help,
    const char *type)
{
	put(o, "# HELP " METRICS_PREFIX "%s %s\n", name, help);
	put(o, "# TYPE " METRICS_PREFIX "%s %s\n", name, type);
}

ssize_t
metrics_format(char *buf, size_t len, const struct metrics_figures *f)
{
	struct out o = { buf, len, 0, len == 0 };
	const struct family *fam;
	uint64_t v;
	unsigned i, s;

	for (fam = families; fam < families + NFAMILIES; fam++) {
		put_header(&o, fam->name, fam->help, "counter");
		for (i = 0; i < f->nguests; i++) {
			memcpy(&v, (const char *)&f->guests[i] + fam->field,
			    sizeof(v));
			if (fam->ns)
				put(&o, METRICS_PREFIX "%s{guest=\"%u\"} "
				    "%llu.%09llu\n", fam->name, i,
				    (unsigned long long)(v / 1000000000u),
				    (unsigned long long)(v % 1000000000u));
			else
				put(&o, METRICS_PREFIX "%s{guest=\"%u\"} %llu\n",
				    fam->name, i, (unsigned long long)v);
		}
	}
	put_header(&o, "guests_connected", "Guests whose front-end is "
	    "connected now.", "gauge");
	put(&o, METRICS_PREFIX "guests_connected %u\n", f->connected);
	/* One sample per state, 1 for the current one (a state set). */
	put_header(&o, "source_state", "State of the entropy source, 1 for "
	    "the current one: ok; error, reads fail and are retried; cut_off, "
	    "failed a health test, retried after a back-off; eof, used up.",
	    "gauge");
	for (s = 0; s < NSTATES; s++)
		put(&o, METRICS_PREFIX "source_state{state=\"%s\"} %d\n",
		    source_states[s], s == (unsigned)f->source);
	if (o.full) {
		errno = ENOSPC;
		return -1;
	}
	return (ssize_t)o.off;
}

static int
open_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n, e = errno;

	va_start(ap, fmt);
	n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (e != 0 && n >= 0 && (size_t)n < errlen)
		snprintf(err + n, errlen - (size_t)n, ": %s", strerror(e));
	return -1;
}

/*
 * path's directory into dir (len bytes) and its last component into name
 * (NAME_MAX + 1 bytes).  Returns 0, or -1 with errno set (EINVAL: no file
 * name; ENAMETOOLONG).
 */
static int
split_path(const char *path, char *dir, size_t len, char *name)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash != NULL ? slash + 1 : path;
	size_t dirlen;

	if (base[0] == '\0' || strcmp(base, ".") == 0 ||
	    strcmp(base, "..") == 0) {
		errno = EINVAL;
		return -1;
	}
	if (strlen(base) > NAME_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strlcpy(name, base, NAME_MAX + 1);
	if (slash == NULL)
		return strlcpy(dir, ".", len) < len ? 0 : -1;
	/* "/x" is in "/"; "a/b/x" in "a/b". */
	dirlen = slash == path ? 1 : (size_t)(slash - path);
	if (dirlen >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dir, path, dirlen);
	dir[dirlen] = '\0';
	return 0;
}

/* The directory's descriptor the previous image left us, or -1. */
static int
inherited_dir(const char *dir)
{
	const char *env = getenv(METRICS_ENV_DIR_FD);
	struct stat a, b;
	char *end;
	long fd;

	if (env == NULL || *env < '0' || *env > '9')
		return -1;
	errno = 0;
	fd = strtol(env, &end, 10);
	if (*end != '\0' || errno != 0 || fd <= STDERR_FILENO || fd > INT_MAX)
		return -1;
	if (fstat((int)fd, &a) < 0 || stat(dir, &b) < 0 ||
	    !S_ISDIR(a.st_mode) || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		return -1;
	return (int)fd;
}

int
metrics_open(struct metrics *m, const char *path, unsigned interval_s,
    char *err, size_t errlen)
{
	char dir[PATH_MAX], num[16];

	memset(m, 0, sizeof(*m));
	m->dir_fd = -1;
	m->timer_fd = -1;
	if (path == NULL)
		return 0;
	m->interval_s = interval_s;
	errno = 0;
	if (split_path(path, dir, sizeof(dir), m->name) < 0)
		return open_fail(err, errlen, "--metrics-file %s: not a file "
		    "name", path);
	/* Hidden, and not *.prom: the textfile collector skips it. */
	if ((size_t)snprintf(m->tmp, sizeof(m->tmp), ".%s" TMP_SUFFIX,
	    m->name) >= sizeof(m->tmp)) {
		errno = 0;
		return open_fail(err, errlen, "--metrics-file %s: file name "
		    "too long (at most %zu bytes, for its temporary name)",
		    path, (size_t)NAME_MAX - 1 - strlen(TMP_SUFFIX));
	}
	/*
	 * Checked now, not at the first write: a read-only file system
	 * (systemd's ProtectSystem= without ReadWritePaths=) or a directory
	 * of someone else is a configuration error.  access(2), with the
	 * real ids (the daemon's are the same), not faccessat(2): glibc makes
	 * that faccessat2, which the filter a live upgrade starts in refuses.
	 */
	if (access(dir, W_OK | X_OK) < 0)
		return open_fail(err, errlen, "--metrics-file %s: cannot "
		    "create files in %s", path, dir);
	/* Open across exec on purpose: see METRICS_ENV_DIR_FD. */
	if ((m->dir_fd = inherited_dir(dir)) < 0)
		m->dir_fd = open(dir, O_PATH | O_DIRECTORY);
	if (m->dir_fd < 0)
		return open_fail(err, errlen, "--metrics-file %s: directory "
		    "%s", path, dir);
	snprintf(num, sizeof(num), "%d", m->dir_fd);
	if (setenv(METRICS_ENV_DIR_FD, num, 1) < 0) {
		open_fail(err, errlen, "--metrics-file: environment");
		metrics_close(m);
		return -1;
	}
	m->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK |
	    TFD_CLOEXEC);
	if (m->timer_fd < 0) {
		open_fail(err, errlen, "--metrics-file: timerfd");
		metrics_close(m);
		return -1;
	}
	m->path = path;
	if (strlen(m->name) < 5 ||
	    strcmp(m->name + strlen(m->name) - 5, ".prom") != 0)
		log_warnx("metrics file %s does not end in .prom: the node "
		    "exporter's textfile collector reads only *.prom", path);
	return 0;
}

int
metrics_dir_fd(const struct metrics *m)
{
	return m->dir_fd;
}

int
metrics_fd(const struct metrics *m)
{
	return m->timer_fd;
}

int
metrics_start(struct metrics *m, const struct guest_slot *slots,
    unsigned nslots, struct entropy *src)
{
	struct itimerspec its = {
		.it_interval = { .tv_sec = m->interval_s },
		.it_value = { .tv_sec = m->interval_s },
	};

	if (m->path == NULL)
		return 0;
	m->slots = slots;
	m->nslots = nslots;
	m->source = src;
	m->size = metrics_format_size(nslots);
	m->stats = calloc(nslots > 0 ? nslots : 1, sizeof(*m->stats));
	m->buf = malloc(m->size);
	if (m->stats == NULL || m->buf == NULL) {
		free(m->stats);
		free(m->buf);
		m->stats = NULL;
		m->buf = NULL;
		errno = ENOMEM;
		return -1;
	}
	metrics_write(m);
	if (timerfd_settime(m->timer_fd, 0, &its, NULL) < 0)
		log_warn("metrics file %s: timer (written at exit only)",
		    m->path);
	log_info("metrics file %s: written every %u s", m->path,
	    m->interval_s);
	return 0;
}

void
metrics_timer(struct metrics *m)
{
	uint64_t expirations;

	/* Several missed intervals are one write now, not a burst. */
	if (read(m->timer_fd, &expirations, sizeof(expirations)) < 0 &&
	    errno != EAGAIN)
		log_warn("metrics timer");
	metrics_write(m);
}

/*
 * Writes len bytes of m->buf to the temporary file and renames it over
 * the file.  *step says which step failed.  Returns 0 or -1 (errno); the
 * temporary file is gone either way.
 */
static int
replace_file(struct metrics *m, size_t len, const char **step)
{
	size_t off = 0;
	ssize_t n;
	int fd, e;

	*step = "creating its temporary file";
	fd = openat(m->dir_fd, m->tmp, TMP_FLAGS, TMP_MODE);
	if (fd < 0 && errno == EEXIST) {
		/* Left by a daemon that died between create and rename. */
		if (unlinkat(m->dir_fd, m->tmp, 0) == 0 || errno == ENOENT)
			fd = openat(m->dir_fd, m->tmp, TMP_FLAGS, TMP_MODE);
	}
	if (fd < 0)
		return -1;
	*step = "writing its temporary file";
	while (off < len) {
		n = write(fd, m->buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			goto fail;
		}
		off += (size_t)n;
	}
	/*
	 * No fsync(2): the rename alone makes a reader see the old file or
	 * the new one.  Only a crash of the host could leave an empty or old
	 * file behind, and the next start writes it again; a disk flush per
	 * interval is not worth figures that are stale seconds later.
	 */
	n = close(fd);
	fd = -1;
	if (n < 0)
		goto fail;
	*step = "renaming its temporary file over it";
	if (renameat(m->dir_fd, m->tmp, m->dir_fd, m->name) < 0)
		goto fail;
	return 0;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlinkat(m->dir_fd, m->tmp, 0);
	errno = e;
	return -1;
}

int
metrics_write(struct metrics *m)
{
	struct metrics_figures f;
	const char *step;
	ssize_t len;
	unsigned i;
	int e;

	if (m->path == NULL || m->buf == NULL)
		return 0;
	f.guests = m->stats;
	f.nguests = m->nslots;
	f.connected = 0;
	for (i = 0; i < m->nslots; i++) {
		guest_stats_read(&m->slots[i], &m->stats[i]);
		if (m->slots[i].busy)
			f.connected++;
	}
	f.source = entropy_state(m->source);
	step = "formatting";
	if ((len = metrics_format(m->buf, m->size, &f)) < 0 ||
	    replace_file(m, (size_t)len, &step) < 0) {
		e = errno;
		if (!m->failing)
			log_warn("metrics file %s: %s (tried again every %u "
			    "s)", m->path, step, m->interval_s);
		m->failing = true;
		errno = e;
		return -1;
	}
	if (m->failing)
		log_warnx("metrics file %s: written again", m->path);
	m->failing = false;
	return 0;
}

void
metrics_close(struct metrics *m)
{
	if (m->dir_fd >= 0)
		close(m->dir_fd);
	if (m->timer_fd >= 0)
		close(m->timer_fd);
	m->dir_fd = -1;
	m->timer_fd = -1;
	free(m->stats);
	free(m->buf);
	m->stats = NULL;
	m->buf = NULL;
	m->path = NULL;
}
