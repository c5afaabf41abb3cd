/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The entropy source: opening it (character device, FIFO or regular
 * file), non-blocking reads shared by all guest threads, a FIFO reopened
 * when its writer leaves, read errors logged once per streak.  See
 * entropy.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "entropy.h"
#include "log.h"

int
entropy_open(struct entropy *src, const char *path, char *err, size_t errlen)
{
	int fd;

	if (strlen(path) >= sizeof(src->path)) {
		snprintf(err, errlen, "entropy source path too long (%zu "
		    "bytes, at most %zu)", strlen(path), sizeof(src->path) - 1);
		return -1;
	}
	/*
	 * O_NONBLOCK: a FIFO without a writer opens at once, and reads that
	 * would block return EAGAIN instead of stalling a guest thread.
	 */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		memset(src, 0, sizeof(*src));
		src->fd = -1;
		snprintf(err, errlen, "cannot open entropy source %s: %s",
		    path, strerror(errno));
		return -1;
	}
	return entropy_adopt(src, path, fd, err, errlen);
}

int
entropy_adopt(struct entropy *src, const char *path, int fd, char *err,
    size_t errlen)
{
	struct stat st;
	int fl;

	memset(src, 0, sizeof(*src));
	src->fd = -1;
	if (strlcpy(src->path, path, sizeof(src->path)) >= sizeof(src->path)) {
		snprintf(err, errlen, "entropy source path too long (%zu "
		    "bytes, at most %zu)", strlen(path), sizeof(src->path) - 1);
		close(fd);
		return -1;
	}
	/* A handed-over fd: the flags open() would have set. */
	if ((fl = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		snprintf(err, errlen, "entropy source %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "entropy source %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "entropy source %s: is a directory",
		    path);
		close(fd);
		return -1;
	}
	if (S_ISFIFO(st.st_mode))
		src->kind = ENTROPY_FIFO;
	else if (S_ISREG(st.st_mode))
		src->kind = ENTROPY_FILE;
	else
		src->kind = ENTROPY_CHARDEV;
	/* Linux Documentation/admin-guide/devices.txt: 1:8 random, 1:9 urandom. */
	src->csprng = S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 &&
	    (minor(st.st_rdev) == 8 || minor(st.st_rdev) == 9);
	/* One byte would be consumed by a probe read: check access only. */
	if (src->kind == ENTROPY_FILE && st.st_size == 0)
		log_warnx("entropy source %s is empty: requests will wait",
		    path);
	if ((errno = pthread_mutex_init(&src->lock, NULL)) != 0) {
		snprintf(err, errlen, "mutex: %s", strerror(errno));
		close(fd);
		return -1;
	}
	src->fd = fd;
	return 0;
}

void
entropy_close(struct entropy *src)
{
	free(src->share);
	src->share = NULL;
	if (src->fd >= 0) {
		close(src->fd);
		pthread_mutex_destroy(&src->lock);
	}
	src->fd = -1;
}

int
entropy_fd(const struct entropy *src)
{
	return src->fd;
}

bool
entropy_exhausted(struct entropy *src)
{
	bool e;

	pthread_mutex_lock(&src->lock);
	e = src->exhausted;
	pthread_mutex_unlock(&src->lock);
	return e;
}

enum entropy_state
entropy_state(struct entropy *src)
{
	enum entropy_state st = ENTROPY_STATE_OK;

	pthread_mutex_lock(&src->lock);
	/* For good first, then what a retry may end, then the retried. */
	if (src->exhausted)
		st = ENTROPY_STATE_EOF;
	else if (src->cut_off)
		st = ENTROPY_STATE_CUT_OFF;
	else if (src->failing)
		st = ENTROPY_STATE_ERROR;
	pthread_mutex_unlock(&src->lock);
	return st;
}

/*
 * The writer of a FIFO went away.  Reopen so that poll() stops reporting
 * POLLHUP (which would spin) and the next writer is read.  Several threads
 * may see the same EOF: the reopen is done once under the lock (held by
 * the caller), and dup2 keeps the fd number so other threads never see a
 * closed fd.
 */
static int
fifo_reopen_locked(struct entropy *src)
{
	struct stat st;
	int fd, ret = 0;

	fd = open(src->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	/*
	 * Still a FIFO: had a regular file taken its place, its bytes would
	 * be served again from the start at every end of file.
	 */
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))) {
		close(fd);
		fd = -1;
		errno = EINVAL;
	}
	if (fd < 0 || dup3(fd, src->fd, O_CLOEXEC) < 0) {
		/*
		 * Gone or unreadable now: the old fd would keep reporting
		 * POLLHUP, so the caller must not poll it (it retries later).
		 */
		if (!src->failing)
			log_warn("reopening entropy FIFO %s (will retry)",
			    src->path);
		__atomic_store_n(&src->failing, true, __ATOMIC_RELAXED);
		ret = -1;
	}
	if (fd >= 0)
		close(fd);
	return ret;
}

/*
 * Logs the first error of a streak only: a broken source cannot flood.
 * Lock held; errno is the read's.
 */
static void
read_failed_locked(struct entropy *src)
{
	if (!src->failing)
		log_warn("reading entropy source %s (will retry)", src->path);
	__atomic_store_n(&src->failing, true, __ATOMIC_RELAXED);
}

static void
read_failed(struct entropy *src)
{
	int saved = errno;

	pthread_mutex_lock(&src->lock);
	errno = saved;
	read_failed_locked(src);
	pthread_mutex_unlock(&src->lock);
}

static void
read_recovered_locked(struct entropy *src)
{
	if (src->failing)
		log_warnx("entropy source %s readable again", src->path);
	__atomic_store_n(&src->failing, false, __ATOMIC_RELAXED);
}

static void
read_recovered(struct entropy *src)
{
	pthread_mutex_lock(&src->lock);
	read_recovered_locked(src);
	pthread_mutex_unlock(&src->lock);
}

/* A read returned 0 (end of file); lock held. */
static enum entropy_result
at_eof_locked(struct entropy *src)
{
	if (src->kind == ENTROPY_FIFO)
		return fifo_reopen_locked(src) == 0 ? ENTROPY_AGAIN :
		    ENTROPY_ERROR;
	/*
	 * A regular file is used up; so is a device that says EOF (/dev/null
	 * would otherwise poll readable and spin).
	 */
	if (!src->exhausted)
		log_warnx("entropy source %s is used up: requests will wait",
		    src->path);
	src->exhausted = true;
	return ENTROPY_EOF;
}

ssize_t
entropy_read(struct entropy *src, const struct iovec *iov, unsigned niov)
{
	ssize_t n;

	do {
		n = readv(src->fd, iov, (int)niov);
	} while (n < 0 && errno == EINTR);
	if (n > 0) {
		/* A racy peek is fine: the lock is taken only to clear it. */
		if (__atomic_load_n(&src->failing, __ATOMIC_RELAXED))
			read_recovered(src);
		return n;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return ENTROPY_AGAIN;
		/* Guest memory gone from under the mapping: not the source. */
		if (errno == EFAULT)
			return ENTROPY_FAULT;
		read_failed(src);
		return ENTROPY_ERROR;
	}
	pthread_mutex_lock(&src->lock);
	n = at_eof_locked(src);
	pthread_mutex_unlock(&src->lock);
	return n;
}

ssize_t
entropy_read_pooled(struct entropy *src, struct entropy_pool *pool,
    const struct iovec *iov, unsigned niov, size_t len)
{
	size_t have = pool->len - pool->off, done = 0;
	unsigned char *from;
	unsigned i;

	if (have < len) {
		struct iovec in;
		ssize_t n;

		/* Keep what is left, at the front; read the rest in. */
		memmove(pool->buf, pool->buf + pool->off, have);
		pool->off = 0;
		pool->len = have;
		in.iov_base = pool->buf + have;
		in.iov_len = sizeof(pool->buf) - have;
		n = entropy_read(src, &in, 1);
		if (n > 0)
			pool->len += (size_t)n;
		else if (have == 0)
			return n;
		have = pool->len;
	}
	if (len > have)
		len = have;
	/*
	 * Taken before the copy: a copy into guest memory that faults
	 * (SIGBUS, the caller's guard jumps out) must not leave bytes that
	 * reached the guest in the pool, to be handed out again.
	 */
	from = pool->buf + pool->off;
	pool->off += len;
	for (i = 0; i < niov && done < len; i++) {
		size_t chunk = iov[i].iov_len < len - done ? iov[i].iov_len :
		    len - done;

		memcpy(iov[i].iov_base, from + done, chunk);
		done += chunk;
	}
	/* Handed out: not kept in our memory a moment longer. */
	explicit_bzero(from, len);
	if (pool->off == pool->len)
		pool->off = pool->len = 0;
	return (ssize_t)done;
}

void
entropy_pool_clear(struct entropy_pool *pool)
{
	explicit_bzero(pool->buf, sizeof(pool->buf));
	pool->off = pool->len = 0;
}

int
entropy_set_guests(struct entropy *src, unsigned nguests)
{
	if (src->csprng || nguests < 2)
		return 0;	/* nobody to be fair to */
	src->share = calloc(nguests, sizeof(*src->share));
	if (src->share == NULL)
		return -1;
	src->nguests = nguests;
	return 0;
}

/*
 * Whether guest is more than a quantum ahead of a guest that waits for
 * the source.  Called with the lock held.
 */
static bool
turn_ahead(const struct entropy *src, unsigned guest)
{
	uint64_t mine = src->share[guest].taken;
	unsigned i;

	for (i = 0; i < src->nguests; i++)
		if (i != guest && src->share[i].waiting &&
		    mine >= src->share[i].taken + ENTROPY_FAIR_QUANTUM)
			return true;
	return false;
}

/*
 * A guest that starts to wait is brought up to a quantum behind the
 * guest that took most: what it did not ask for while it was idle is not
 * owed to it, or it would shut the others out for as long.
 */
static void
turn_wait(struct entropy *src, unsigned guest)
{
	uint64_t top = 0;
	unsigned i;

	if (src->share[guest].waiting)
		return;
	for (i = 0; i < src->nguests; i++)
		if (src->share[i].taken > top)
			top = src->share[i].taken;
	if (top > ENTROPY_FAIR_QUANTUM &&
	    src->share[guest].taken < top - ENTROPY_FAIR_QUANTUM)
		src->share[guest].taken = top - ENTROPY_FAIR_QUANTUM;
	src->share[guest].waiting = true;
}

/*
 * Whether guest may read now (false: ENTROPY_YIELD).  Lock held; turns
 * set up (src->share) and guest < nguests.
 */
static bool
turn_begin_locked(struct entropy *src, unsigned guest)
{
	unsigned i;

	if (turn_ahead(src, guest)) {
		if (++src->share[guest].yields <= ENTROPY_FAIR_YIELDS)
			return false;
		/* Nobody took the bytes: those waiters must say so again. */
		for (i = 0; i < src->nguests; i++)
			src->share[i].waiting = false;
	}
	src->share[guest].yields = 0;
	return true;
}

/* Books what guest's read got (n bytes or an entropy_result); lock held. */
static void
turn_end_locked(struct entropy *src, unsigned guest, ssize_t n)
{
	if (n > 0) {
		src->share[guest].taken += (uint64_t)n;
		src->share[guest].waiting = false;
	} else if (n == ENTROPY_AGAIN)
		turn_wait(src, guest);
}

ssize_t
entropy_read_turn(struct entropy *src, unsigned guest,
    const struct iovec *iov, unsigned niov)
{
	ssize_t n;

	if (src->share == NULL || guest >= src->nguests)
		return entropy_read(src, iov, niov);
	pthread_mutex_lock(&src->lock);
	if (!turn_begin_locked(src, guest)) {
		pthread_mutex_unlock(&src->lock);
		return ENTROPY_YIELD;
	}
	pthread_mutex_unlock(&src->lock);
	n = entropy_read(src, iov, niov);
	pthread_mutex_lock(&src->lock);
	turn_end_locked(src, guest, n);
	pthread_mutex_unlock(&src->lock);
	return n;
}

void
entropy_set_health(struct entropy *src, bool on)
{
	src->tested = on && !src->csprng;
	health_init(&src->health);
}

/* One read(2) into host memory; lock held.  Results as entropy_read. */
static ssize_t
read_locked(struct entropy *src, void *buf, size_t len)
{
	ssize_t n;

	do {
		n = read(src->fd, buf, len);
	} while (n < 0 && errno == EINTR);
	if (n > 0) {
		read_recovered_locked(src);
		return n;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return ENTROPY_AGAIN;
		read_failed_locked(src);
		return ENTROPY_ERROR;
	}
	return at_eof_locked(src);
}

/*
 * n bytes of buf failed test r: they are wiped, and the source is cut off
 * for a back-off that doubles at each failure in a row.  Lock held.
 */
static void
health_failed_locked(struct entropy *src, enum health_result r, void *buf,
    size_t n, uint64_t now_ns)
{
	explicit_bzero(buf, n);
	if (src->backoff_ns == 0)
		src->backoff_ns = ENTROPY_HEALTH_BACKOFF_MIN_NS;
	else if (src->backoff_ns < ENTROPY_HEALTH_BACKOFF_MAX_NS / 2)
		src->backoff_ns *= 2;
	else
		src->backoff_ns = ENTROPY_HEALTH_BACKOFF_MAX_NS;
	src->cut_off = true;
	src->retry_ns = now_ns + src->backoff_ns;
	src->probation = 0;
	log_warnx("entropy source %s failed the %s (SP 800-90B %s) at count "
	    "%u (cut-off %u): %zd bytes dropped, source cut off, retry in "
	    "%llu s", src->path, health_test_name(r),
	    r == HEALTH_RCT_FAIL ? "4.4.1" : "4.4.2", src->health.fail_count,
	    health_cutoff(r), (ssize_t)n,
	    (unsigned long long)(src->backoff_ns / 1000000000ull));
}

/*
 * One read of up to len bytes, fed to the health tests; lock held.  The
 * bytes (> 0) if they pass, else what the read said or ENTROPY_UNHEALTHY
 * (the source is cut off, *retry_ns says until when).
 */
static ssize_t
read_feed_locked(struct entropy *src, void *buf, size_t len,
    uint64_t now_ns, uint64_t *retry_ns)
{
	enum health_result r;
	ssize_t n;

	n = read_locked(src, buf, len);
	if (n <= 0)
		return n;
	r = health_feed(&src->health, buf, (size_t)n);
	if (r != HEALTH_PASS) {
		health_failed_locked(src, r, buf, (size_t)n, now_ns);
		*retry_ns = src->retry_ns;
		return ENTROPY_UNHEALTHY;
	}
	return n;
}

/* Reads up to len bytes and tests them; lock held.  See entropy.h. */
static ssize_t
read_tested_locked(struct entropy *src, void *buf, size_t len,
    uint64_t now_ns, uint64_t *retry_ns)
{
	ssize_t n;

	if (src->cut_off) {
		*retry_ns = src->retry_ns;
		if (now_ns < src->retry_ns)
			return ENTROPY_CUT_OFF;
		/* Back-off over: a fresh start, on probation. */
		src->cut_off = false;
		health_init(&src->health);
		src->probation = HEALTH_APT_WINDOW;
	}
	/* The bytes of the fresh window are tested and dropped. */
	while (src->probation > 0) {
		n = read_feed_locked(src, buf, len < src->probation ? len :
		    src->probation, now_ns, retry_ns);
		if (n <= 0)
			return n;
		explicit_bzero(buf, (size_t)n);
		src->probation -= (unsigned)n;
		if (src->probation == 0) {
			src->backoff_ns = 0;
			log_warnx("entropy source %s passes the health tests "
			    "again: used again", src->path);
		}
	}
	return read_feed_locked(src, buf, len, now_ns, retry_ns);
}

ssize_t
entropy_read_tested(struct entropy *src, unsigned guest, void *buf,
    size_t len, uint64_t now_ns, uint64_t *retry_ns)
{
	bool turns = src->share != NULL && guest < src->nguests;
	ssize_t n;

	/*
	 * The read and the tests under the lock: the tests see the bytes in
	 * the order the source gave them, and no guest reads a source that
	 * another guest's read just cut off.  The fd is non-blocking.
	 */
	pthread_mutex_lock(&src->lock);
	if (turns && !turn_begin_locked(src, guest)) {
		pthread_mutex_unlock(&src->lock);
		return ENTROPY_YIELD;
	}
	n = read_tested_locked(src, buf, len, now_ns, retry_ns);
	if (turns)
		turn_end_locked(src, guest, n);
	pthread_mutex_unlock(&src->lock);
	return n;
}

void
entropy_leave(struct entropy *src, unsigned guest)
{
	if (src->share == NULL || guest >= src->nguests)
		return;
	pthread_mutex_lock(&src->lock);
	src->share[guest].waiting = false;
	pthread_mutex_unlock(&src->lock);
}
