/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The entropy source: regular files are read once, in order, then
 * exhausted; FIFOs never block and survive their writers; errors say
 * which file and why.
 */
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "entropy.h"
#include "unit.h"

static char dir[PATH_MAX];
static char path[PATH_MAX];
static struct entropy src;
static char err[PATH_MAX + 256];

static const char *const names[] = { "file", "empty", "fifo" };

static void
remove_files(void)
{
	char p[PATH_MAX];
	unsigned i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (snprintf(p, sizeof(p), "%s/%s", dir, names[i]) <
		    (int)sizeof(p))
			(void)unlink(p);
}

/*
 * The directory is made and removed by an unchecked fixture: that runs in
 * the runner itself, so a test that fails (and exits its forked child
 * before any checked teardown) leaves nothing behind.
 */
static void
dir_setup(void)
{
	const char *tmp = getenv("TMPDIR");

	ck_assert_int_lt(snprintf(dir, sizeof(dir), "%s/vrng-unit-XXXXXX",
	    tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp"), (int)sizeof(dir));
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
dir_teardown(void)
{
	remove_files();
	rmdir(dir);
}

static void
setup(void)
{
	remove_files();		/* what a failed test may have left */
	memset(&src, 0, sizeof(src));
	src.fd = -1;
	err[0] = '\0';
}

static void
teardown(void)
{
	entropy_close(&src);
	remove_files();
}

static const char *
in_dir(const char *name)
{
	ck_assert_int_lt(snprintf(path, sizeof(path), "%s/%s", dir, name),
	    (int)sizeof(path));
	return path;
}

/* Writes len bytes of a known pattern to dir/name. */
static void
make_file(const char *name, const unsigned char *data, size_t len)
{
	int fd;

	fd = open(in_dir(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static ssize_t
read_into(void *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	return entropy_read(&src, &iov, 1);
}

START_TEST(file_in_order)
{
	unsigned char data[300], a[10], b[20], c[30], rest[1000];
	struct iovec iov[3] = {
		{ .iov_base = a, .iov_len = sizeof(a) },
		{ .iov_base = b, .iov_len = sizeof(b) },
		{ .iov_base = c, .iov_len = sizeof(c) },
	};
	unsigned i;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7 + 3);
	make_file("file", data, sizeof(data));
	ck_assert_int_eq(entropy_open(&src, in_dir("file"), err, sizeof(err)),
	    0);
	ck_assert_int_eq(src.kind, ENTROPY_FILE);
	ck_assert_int_ge(entropy_fd(&src), 0);
	ck_assert(!entropy_exhausted(&src));
	ck_assert_int_eq(entropy_state(&src), ENTROPY_STATE_OK);

	ck_assert_int_eq(entropy_read(&src, iov, 3), 60);
	ck_assert_mem_eq(a, data, 10);
	ck_assert_mem_eq(b, data + 10, 20);
	ck_assert_mem_eq(c, data + 30, 30);
	ck_assert_int_eq(read_into(rest, 1), 1);
	ck_assert_uint_eq(rest[0], data[60]);
	ck_assert_int_eq(read_into(rest, sizeof(rest)), 239);
	ck_assert_mem_eq(rest, data + 61, 239);
	ck_assert(!entropy_exhausted(&src));

	ck_assert_int_eq(read_into(rest, sizeof(rest)), ENTROPY_EOF);
	ck_assert(entropy_exhausted(&src));
	ck_assert_int_eq(read_into(rest, sizeof(rest)), ENTROPY_EOF);
	ck_assert(entropy_exhausted(&src));
	ck_assert_int_eq(entropy_state(&src), ENTROPY_STATE_EOF);
}
END_TEST

START_TEST(empty_file)
{
	unsigned char buf[16] = { 0 };

	make_file("empty", buf, 0);
	ck_assert_int_eq(entropy_open(&src, in_dir("empty"), err,
	    sizeof(err)), 0);
	ck_assert_int_eq(read_into(buf, sizeof(buf)), ENTROPY_EOF);
	ck_assert(entropy_exhausted(&src));
}
END_TEST

START_TEST(directory_refused)
{
	ck_assert_int_eq(entropy_open(&src, dir, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, dir) != NULL, "\"%s\" lacks the path", err);
	ck_assert_msg(strstr(err, "directory") != NULL, "\"%s\"", err);
	ck_assert_int_eq(entropy_fd(&src), -1);
}
END_TEST

START_TEST(missing_file_refused)
{
	const char *p = in_dir("no-such-source");

	ck_assert_int_eq(entropy_open(&src, p, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, p) != NULL, "\"%s\" lacks the path", err);
	ck_assert_msg(strstr(err, strerror(ENOENT)) != NULL,
	    "\"%s\" lacks the reason", err);
	ck_assert_int_eq(entropy_fd(&src), -1);
}
END_TEST

/*
 * The message is a sentence that says what is wrong even in the 512
 * bytes main() gives it: a path longer than that must not push the
 * reason out of the buffer.
 */
START_TEST(long_path_refused)
{
	static char p[5000];
	char small[512];

	memset(p, 'a', sizeof(p) - 1);
	p[0] = '/';
	ck_assert_int_eq(entropy_open(&src, p, err, sizeof(err)), -1);
	ck_assert_int_eq(entropy_fd(&src), -1);
	ck_assert_int_eq(entropy_open(&src, p, small, sizeof(small)), -1);
	ck_assert_msg(strstr(small, "too long") != NULL, "the reason is cut "
	    "off: \"%.40s...\" (%zu bytes)", small, strlen(small));
}
END_TEST

START_TEST(urandom)
{
	static unsigned char a[1000], b[3096], zero[3096];
	struct iovec iov[2] = {
		{ .iov_base = a, .iov_len = sizeof(a) },
		{ .iov_base = b, .iov_len = sizeof(b) },
	};

	ck_assert_int_eq(entropy_open(&src, "/dev/urandom", err, sizeof(err)),
	    0);
	ck_assert_int_eq(src.kind, ENTROPY_CHARDEV);
	ck_assert_int_eq(entropy_read(&src, iov, 2), 4096);
	/* 3096 zero bytes from urandom: a broken read, not bad luck. */
	ck_assert(memcmp(b, zero, sizeof(b)) != 0);
	ck_assert(!entropy_exhausted(&src));
}
END_TEST

/* A device that says EOF is used up too (it would poll readable). */
START_TEST(dev_null_exhausted)
{
	unsigned char buf[8];

	ck_assert_int_eq(entropy_open(&src, "/dev/null", err, sizeof(err)),
	    0);
	ck_assert_int_eq(src.kind, ENTROPY_CHARDEV);
	ck_assert_int_eq(read_into(buf, sizeof(buf)), ENTROPY_EOF);
	ck_assert(entropy_exhausted(&src));
}
END_TEST

/*
 * A buffer the daemon cannot write (guest memory gone, a read-only
 * mapping) is the guest's fault, not the source's: ENTROPY_FAULT, and
 * nothing of the source is used up.
 */
START_TEST(unwritable_buffer_is_fault)
{
	unsigned char data[64], buf[64];
	void *ro;
	unsigned i;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(0x80 + i);
	make_file("file", data, sizeof(data));
	ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(ro, MAP_FAILED);
	ck_assert_int_eq(entropy_open(&src, in_dir("file"), err, sizeof(err)),
	    0);
	ck_assert_int_eq(read_into(ro, 16), ENTROPY_FAULT);
	ck_assert(!entropy_exhausted(&src));
	ck_assert_int_eq(read_into(buf, 16), 16);
	ck_assert_mem_eq(buf, data, 16);
	entropy_close(&src);

	ck_assert_int_eq(entropy_open(&src, "/dev/urandom", err, sizeof(err)),
	    0);
	ck_assert_int_eq(read_into(ro, 16), ENTROPY_FAULT);
	ck_assert_int_eq(read_into(buf, 16), 16);
	munmap(ro, 4096);
}
END_TEST

/* Nothing readable and no hang-up: what the guest thread polls for. */
static short
poll_now(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	ck_assert_int_ge(poll(&pfd, 1, 0), 0);
	return pfd.revents;
}

START_TEST(fifo_writers_come_and_go)
{
	unsigned char buf[64];
	int fd, w;

	ck_assert_int_eq(mkfifo(in_dir("fifo"), 0600), 0);
	/* Opening does not wait for a writer. */
	ck_assert_int_eq(entropy_open(&src, in_dir("fifo"), err, sizeof(err)),
	    0);
	ck_assert_int_eq(src.kind, ENTROPY_FIFO);
	fd = entropy_fd(&src);

	/* No writer: nothing now, and no blocking. */
	ck_assert_int_eq(read_into(buf, sizeof(buf)), ENTROPY_AGAIN);
	ck_assert_int_eq(entropy_fd(&src), fd);
	ck_assert(!entropy_exhausted(&src));
	ck_assert_int_eq(poll_now(fd), 0);

	/* A writer with data. */
	ck_assert_int_ge(w = open(in_dir("fifo"), O_WRONLY | O_NONBLOCK |
	    O_CLOEXEC), 0);
	ck_assert_int_eq(write(w, "hello", 5), 5);
	ck_assert_int_eq(read_into(buf, sizeof(buf)), 5);
	ck_assert_mem_eq(buf, "hello", 5);
	/* Writer still there, no data. */
	ck_assert_int_eq(read_into(buf, sizeof(buf)), ENTROPY_AGAIN);

	/* The writer goes: reopened on the same fd number, no POLLHUP spin. */
	close(w);
	ck_assert_int_eq(read_into(buf, sizeof(buf)), ENTROPY_AGAIN);
	ck_assert_int_eq(entropy_fd(&src), fd);
	ck_assert_int_ne(fcntl(fd, F_GETFD), -1);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
	ck_assert_int_eq(poll_now(fd), 0);
	ck_assert(!entropy_exhausted(&src));

	/* The next writer is heard, even if it is gone before we read. */
	ck_assert_int_ge(w = open(in_dir("fifo"), O_WRONLY | O_NONBLOCK |
	    O_CLOEXEC), 0);
	ck_assert_int_eq(write(w, "world", 5), 5);
	close(w);
	ck_assert(poll_now(fd) & POLLIN);
	ck_assert_int_eq(read_into(buf, 3), 3);
	ck_assert_mem_eq(buf, "wor", 3);
	ck_assert_int_eq(read_into(buf, sizeof(buf)), 2);
	ck_assert_mem_eq(buf, "ld", 2);
	ck_assert_int_eq(read_into(buf, sizeof(buf)), ENTROPY_AGAIN);
	ck_assert_int_eq(entropy_fd(&src), fd);
	ck_assert_int_eq(poll_now(fd), 0);
}
END_TEST

/*
 * The FIFO is removed while its writer is gone, so the reopen fails.  The
 * guest thread polls the source fd after ENTROPY_AGAIN: if that fd still
 * reports POLLHUP, poll returns at once, the read says EOF again, and the
 * thread spins (logging a warning on every turn).  After a failed reopen,
 * either the result must not be ENTROPY_AGAIN (ENTROPY_ERROR makes the
 * thread retry on a timer) or the fd must be quiet.
 */
START_TEST(fifo_removed_does_not_spin)
{
	unsigned char buf[16];
	ssize_t r;
	int fd, w, k;

	ck_assert_int_eq(mkfifo(in_dir("fifo"), 0600), 0);
	ck_assert_int_eq(entropy_open(&src, in_dir("fifo"), err, sizeof(err)),
	    0);
	fd = entropy_fd(&src);
	ck_assert_int_ge(w = open(in_dir("fifo"), O_WRONLY | O_NONBLOCK |
	    O_CLOEXEC), 0);
	ck_assert_int_eq(write(w, "x", 1), 1);
	ck_assert_int_eq(read_into(buf, sizeof(buf)), 1);
	ck_assert_int_eq(unlink(in_dir("fifo")), 0);
	close(w);
	for (k = 0; k < 3; k++) {
		r = read_into(buf, sizeof(buf));
		ck_assert_int_eq(entropy_fd(&src), fd);
		ck_assert_int_ne(fcntl(fd, F_GETFD), -1);
		ck_assert_msg(r != ENTROPY_AGAIN || poll_now(fd) == 0,
		    "read %d: ENTROPY_AGAIN, but the fd polls 0x%x at once: "
		    "the guest thread would spin", k, poll_now(fd));
	}
	/* Cannot be reopened: failing, retried. */
	ck_assert_int_eq(entropy_state(&src), ENTROPY_STATE_ERROR);
}
END_TEST

START_TEST(two_reads_disjoint)
{
	unsigned char data[200], a[100], b[100];
	unsigned i;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)i;
	make_file("file", data, sizeof(data));
	ck_assert_int_eq(entropy_open(&src, in_dir("file"), err, sizeof(err)),
	    0);
	ck_assert_int_eq(read_into(a, sizeof(a)), 100);
	ck_assert_int_eq(read_into(b, sizeof(b)), 100);
	ck_assert_mem_eq(a, data, 100);
	ck_assert_mem_eq(b, data + 100, 100);
}
END_TEST

/*
 * Two guest threads read one file at the same time.  The file is made of
 * numbered 16-byte records and every read asks for one record, so each
 * read gets one whole record; every record must arrive exactly once.
 */
#define RECORDS		4096
#define RECORD_SIZE	16

static unsigned char seen[RECORDS];

static void *
reader(void *arg)
{
	unsigned char rec[RECORD_SIZE];
	uint32_t idx;
	ssize_t n;

	(void)arg;
	while ((n = read_into(rec, sizeof(rec))) > 0) {
		if (n != RECORD_SIZE)
			return (void *)"short read";
		memcpy(&idx, rec, sizeof(idx));
		if (idx >= RECORDS)
			return (void *)"bad record";
		__atomic_fetch_add(&seen[idx], 1, __ATOMIC_RELAXED);
	}
	return n == ENTROPY_EOF ? NULL : (void *)"read error";
}

START_TEST(two_threads_never_share)
{
	static unsigned char data[RECORDS * RECORD_SIZE];
	pthread_t th[2];
	void *res;
	uint32_t i;

	for (i = 0; i < RECORDS; i++) {
		memcpy(data + i * RECORD_SIZE, &i, sizeof(i));
		memset(data + i * RECORD_SIZE + 4, 0x5a, RECORD_SIZE - 4);
	}
	make_file("file", data, sizeof(data));
	ck_assert_int_eq(entropy_open(&src, in_dir("file"), err, sizeof(err)),
	    0);
	memset(seen, 0, sizeof(seen));
	ck_assert_int_eq(pthread_create(&th[0], NULL, reader, NULL), 0);
	ck_assert_int_eq(pthread_create(&th[1], NULL, reader, NULL), 0);
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(pthread_join(th[i], &res), 0);
		ck_assert_msg(res == NULL, "reader %u: %s", i, (char *)res);
	}
	for (i = 0; i < RECORDS; i++)
		if (seen[i] != 1)
			ck_abort_msg("record %u read %u times", i, seen[i]);
	ck_assert(entropy_exhausted(&src));
}
END_TEST

START_TEST(close_twice)
{
	ck_assert_int_eq(entropy_open(&src, "/dev/urandom", err, sizeof(err)),
	    0);
	entropy_close(&src);
	ck_assert_int_eq(entropy_fd(&src), -1);
	entropy_close(&src);
}
END_TEST

/* --- the kernel's CSPRNG and the pool ------------------------------ */

/* Opens p, returns src.csprng, closes it again. */
static bool
csprng_of(const char *p)
{
	bool c;

	ck_assert_msg(entropy_open(&src, p, err, sizeof(err)) == 0, "%s: %s",
	    p, err);
	c = src.csprng;
	entropy_close(&src);
	return c;
}

/*
 * Only /dev/random (1:8) and /dev/urandom (1:9) are the CSPRNG; other
 * character devices, FIFOs and files are not.
 */
START_TEST(csprng_detected_by_device_number)
{
	unsigned char data[16] = { 1 };

	ck_assert(csprng_of("/dev/urandom"));
	ck_assert(csprng_of("/dev/random"));
	ck_assert(!csprng_of("/dev/zero"));	/* 1:5 */
	ck_assert(!csprng_of("/dev/null"));	/* 1:3 */
	ck_assert_int_eq(mkfifo(in_dir("fifo"), 0600), 0);
	ck_assert(!csprng_of(in_dir("fifo")));
	make_file("file", data, sizeof(data));
	ck_assert(!csprng_of(in_dir("file")));
}
END_TEST

static struct entropy_pool pool;

static bool
all_zero(const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static unsigned char
pat(size_t i)
{
	return (unsigned char)(i * 29 + i / 256 + 1);
}

/* dir/file with len bytes of pat(), opened as the source; pool empty. */
static void
pattern_source(size_t len)
{
	static unsigned char data[8192];
	size_t i;

	ck_assert_uint_le(len, sizeof(data));
	for (i = 0; i < len; i++)
		data[i] = pat(i);
	make_file("file", data, len);
	ck_assert_int_eq(entropy_open(&src, in_dir("file"), err, sizeof(err)),
	    0);
	memset(&pool, 0, sizeof(pool));
}

static void
assert_pat(const unsigned char *p, size_t from, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		ck_assert_msg(p[i] == pat(from + i), "byte %zu: 0x%02x, "
		    "expected 0x%02x (byte %zu of the source)", i, p[i],
		    pat(from + i), from + i);
}

/*
 * The pool is read once (ENTROPY_POOL_SIZE bytes) and hands out bytes in
 * order across the iovecs, no more than len; what it handed out is
 * wiped from it.
 */
START_TEST(pooled_across_iovecs)
{
	unsigned char a[10], b[20], c[70];
	struct iovec iov[3] = {
		{ .iov_base = a, .iov_len = sizeof(a) },
		{ .iov_base = b, .iov_len = sizeof(b) },
		{ .iov_base = c, .iov_len = sizeof(c) },
	};

	pattern_source(5000);
	ck_assert_int_eq(entropy_read_pooled(&src, &pool, iov, 3, 100), 100);
	assert_pat(a, 0, 10);
	assert_pat(b, 10, 20);
	assert_pat(c, 30, 70);
	ck_assert_uint_eq(pool.len, ENTROPY_POOL_SIZE);
	ck_assert_uint_eq(pool.off, 100);
	ck_assert(all_zero(pool.buf, pool.off));
	assert_pat(pool.buf + pool.off, 100, pool.len - pool.off);

	/* len below the iovecs' total: the rest is not touched. */
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	memset(c, 0, sizeof(c));
	ck_assert_int_eq(entropy_read_pooled(&src, &pool, iov, 3, 15), 15);
	assert_pat(a, 100, 10);
	assert_pat(b, 110, 5);
	ck_assert(all_zero(b + 5, 15));
	ck_assert(all_zero(c, sizeof(c)));
	ck_assert_uint_eq(pool.off, 115);
	ck_assert(all_zero(pool.buf, pool.off));
}
END_TEST

/*
 * Fewer bytes in the pool than asked for: what is left is kept (first),
 * the rest is read in; once the source runs short the call is partial,
 * and with nothing left at all the source's code comes back.
 */
START_TEST(pooled_refill_and_partial)
{
	static unsigned char big[ENTROPY_POOL_SIZE];
	struct iovec iov = { .iov_base = big, .iov_len = sizeof(big) };

	pattern_source(5000);
	ck_assert_int_eq(entropy_read_pooled(&src, &pool, &iov, 1, 100), 100);
	/* 3996 in the pool, 4000 wanted: 100 more are read. */
	ck_assert_int_eq(entropy_read_pooled(&src, &pool, &iov, 1, 4000),
	    4000);
	assert_pat(big, 100, 4000);
	ck_assert_uint_eq(pool.len, ENTROPY_POOL_SIZE);
	ck_assert_uint_eq(pool.off, 4000);
	ck_assert(all_zero(pool.buf, pool.off));
	/* 96 in the pool, 804 in the file, 1000 wanted: 900. */
	ck_assert_int_eq(entropy_read_pooled(&src, &pool, &iov, 1, 1000),
	    900);
	assert_pat(big, 4100, 900);
	ck_assert_uint_eq(pool.off, 0);
	ck_assert_uint_eq(pool.len, 0);
	ck_assert_int_eq(entropy_read_pooled(&src, &pool, &iov, 1, 1),
	    ENTROPY_EOF);
}
END_TEST

/* The source fails while the pool still holds some: those come out. */
START_TEST(pooled_source_fails_pool_not_empty)
{
	static unsigned char big[ENTROPY_POOL_SIZE];
	struct iovec iov = { .iov_base = big, .iov_len = sizeof(big) };

	pattern_source(ENTROPY_POOL_SIZE);
	ck_assert_int_eq(entropy_read_pooled(&src, &pool, &iov, 1, 4000),
	    4000);
	ck_assert_int_eq(entropy_read_pooled(&src, &pool, &iov, 1, 200), 96);
	assert_pat(big, 4000, 96);
	ck_assert_uint_eq(pool.off, 0);
	ck_assert_uint_eq(pool.len, 0);
}
END_TEST

/* Boundary: a whole pool's worth, from empty and from a pool of 10. */
START_TEST(pooled_whole_pool)
{
	static unsigned char big[ENTROPY_POOL_SIZE];
	struct iovec iov = { .iov_base = big, .iov_len = sizeof(big) };

	pattern_source(3 * ENTROPY_POOL_SIZE / 2);
	ck_assert_int_eq(entropy_read_pooled(&src, &pool, &iov, 1,
	    ENTROPY_POOL_SIZE), ENTROPY_POOL_SIZE);
	assert_pat(big, 0, ENTROPY_POOL_SIZE);
	ck_assert_uint_eq(pool.off, 0);
	ck_assert_uint_eq(pool.len, 0);
	ck_assert(all_zero(pool.buf, sizeof(pool.buf)));
	entropy_close(&src);

	pattern_source(2 * ENTROPY_POOL_SIZE);
	ck_assert_int_eq(entropy_read_pooled(&src, &pool, &iov, 1,
	    ENTROPY_POOL_SIZE - 10), ENTROPY_POOL_SIZE - 10);
	ck_assert_int_eq(entropy_read_pooled(&src, &pool, &iov, 1,
	    ENTROPY_POOL_SIZE), ENTROPY_POOL_SIZE);
	assert_pat(big, ENTROPY_POOL_SIZE - 10, ENTROPY_POOL_SIZE);
}
END_TEST

/*
 * The CSPRNG through the pool: two calls never give the same bytes, and
 * the pool holds nothing it handed out (all before off is zero).
 */
START_TEST(pooled_urandom_never_repeats)
{
	unsigned char x[64], y[64];
	struct iovec ix = { .iov_base = x, .iov_len = sizeof(x) };
	struct iovec iy = { .iov_base = y, .iov_len = sizeof(y) };
	int i;

	ck_assert_int_eq(entropy_open(&src, "/dev/urandom", err, sizeof(err)),
	    0);
	memset(&pool, 0, sizeof(pool));
	for (i = 0; i < 100; i++) {
		ck_assert_int_eq(entropy_read_pooled(&src, &pool, &ix, 1, 64),
		    64);
		ck_assert_int_eq(entropy_read_pooled(&src, &pool, &iy, 1, 64),
		    64);
		ck_assert(memcmp(x, y, 64) != 0);
		ck_assert(all_zero(pool.buf, pool.off));
	}
}
END_TEST

/* entropy_pool_clear: every byte of the pool zero, nothing left. */
START_TEST(pool_clear_wipes)
{
	unsigned char x[64];
	struct iovec ix = { .iov_base = x, .iov_len = sizeof(x) };

	ck_assert_int_eq(entropy_open(&src, "/dev/urandom", err, sizeof(err)),
	    0);
	memset(&pool, 0, sizeof(pool));
	ck_assert_int_eq(entropy_read_pooled(&src, &pool, &ix, 1, 64), 64);
	ck_assert(!all_zero(pool.buf + pool.off, pool.len - pool.off));
	entropy_pool_clear(&pool);
	ck_assert(all_zero(pool.buf, sizeof(pool.buf)));
	ck_assert_uint_eq(pool.off, 0);
	ck_assert_uint_eq(pool.len, 0);
	/* And it fills again. */
	ck_assert_int_eq(entropy_read_pooled(&src, &pool, &ix, 1, 64), 64);
	ck_assert_uint_eq(pool.len, ENTROPY_POOL_SIZE);
}
END_TEST

/* A case of this suite: its tests share one directory (dir_setup). */
static void
dir_case(Suite *s, const char *name, const TTest *const *t)
{
	tcase_add_unchecked_fixture(add_case(s, name, UNIT_TIMEOUT, setup,
	    teardown, t), dir_setup, dir_teardown);
}

Suite *
entropy_suite(void)
{
	Suite *s = suite_create("entropy");

	dir_case(s, "open", TESTS(directory_refused, missing_file_refused,
	    long_path_refused, close_twice));
	dir_case(s, "read", TESTS(file_in_order, empty_file, urandom,
	    dev_null_exhausted, unwritable_buffer_is_fault,
	    fifo_writers_come_and_go, fifo_removed_does_not_spin,
	    two_reads_disjoint, two_threads_never_share));
	dir_case(s, "pool", TESTS(csprng_detected_by_device_number,
	    pooled_across_iovecs, pooled_refill_and_partial,
	    pooled_source_fails_pool_not_empty, pooled_whole_pool,
	    pooled_urandom_never_repeats, pool_clear_wipes));
	return s;
}
