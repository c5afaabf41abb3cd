/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_UNIT_H
#define VRNG_UNIT_H

/*
 * Shared by the unit test suites: the suite constructors the runner
 * collects, and small helpers for fds and memfds.  Header only, so that
 * every helper is static and a suite can be read on its own.
 */

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "memtable.h"
#include "procself.h"
#include "suite.h"

/* Generous: the suites run under ASan/UBSan on a small, busy machine. */
#define UNIT_TIMEOUT	30

Suite	*config_suite(void);
Suite	*memtable_suite(void);
Suite	*virtq_suite(void);
Suite	*ratelimit_suite(void);
Suite	*entropy_suite(void);
Suite	*vu_proto_suite(void);
Suite	*vu_dev_suite(void);
Suite	*log_suite(void);

/* A memfd of size bytes (zero-filled), or a failed test. */
static inline int
unit_memfd(const char *name, size_t size)
{
	int fd;

	fd = memfd_create(name, MFD_CLOEXEC);
	ck_assert_msg(fd >= 0, "memfd_create: %s", strerror(errno));
	ck_assert_msg(ftruncate(fd, (off_t)size) == 0, "ftruncate: %s",
	    strerror(errno));
	return fd;
}

/* xorshift64: the next pseudo-random value of the state *x (not 0). */
static inline uint64_t
unit_xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Whether fd is no longer open in this process. */
static inline bool
unit_fd_closed(int fd)
{
	return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

/*
 * Whether the memory table took fd: a region holds it, open, for a
 * successor (memtable.h: the table keeps its regions' files).
 */
static inline bool
unit_table_holds_fd(const struct memtable *mt, int fd)
{
	unsigned i;

	for (i = 0; i < mt->nregions; i++)
		if (mt->regions[i].fd == fd)
			return fcntl(fd, F_GETFD) != -1;
	return false;
}

/*
 * Open fds of this process.  Used to prove that fds received over a
 * socket (whose numbers the test never learns) were closed again.
 */
static inline int
unit_count_fds(void)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	d = opendir("/proc/self/fd");
	ck_assert_msg(d != NULL, "/proc/self/fd: %s", strerror(errno));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own fd */
}

/* Mappings of the memfds called name in this process. */
static inline int
unit_count_maps(const char *name)
{
	int n = procself_memfd_maps(name);

	ck_assert_msg(n >= 0, "/proc/self/maps: %s", strerror(errno));
	return n;
}

/*
 * stderr capture: unit_capture_start() sends fd 2 to a temporary file;
 * unit_capture_end() restores it and copies what was written meanwhile
 * into out (NUL-terminated, at most size - 1 bytes).  c->saved is -1
 * when no capture runs (a teardown ends one a failed test left open).
 */
struct unit_capture {
	FILE	*file;
	int	 saved;
};

static inline void
unit_capture_start(struct unit_capture *c)
{
	fflush(stderr);
	ck_assert_ptr_nonnull(c->file = tmpfile());
	ck_assert_int_ge(c->saved = dup(STDERR_FILENO), 0);
	ck_assert_int_ge(dup2(fileno(c->file), STDERR_FILENO), 0);
}

static inline size_t
unit_capture_end(struct unit_capture *c, char *out, size_t size)
{
	size_t n;

	fflush(stderr);
	ck_assert_int_ge(dup2(c->saved, STDERR_FILENO), 0);
	close(c->saved);
	c->saved = -1;
	rewind(c->file);
	n = fread(out, 1, size - 1, c->file);
	out[n] = '\0';
	fclose(c->file);
	c->file = NULL;
	return n;
}

#endif
