/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_ENTROPY_H
#define VRNG_ENTROPY_H

/*
 * The entropy source (--filename), shared by all guest threads.
 *
 * There is one open file description for the whole daemon, so a file or a
 * FIFO is consumed once: no byte goes to two guests or twice to one.  The
 * fd is non-blocking; a source that has nothing to give (a FIFO without
 * data, /dev/hwrng) returns ENTROPY_AGAIN and the guest thread polls
 * entropy_fd() instead of blocking.
 *
 * At end of file: a FIFO is reopened (dup2 onto the same fd number, so
 * threads polling it keep a valid fd) and waits for a new writer; a
 * regular file is exhausted for good (logged once).
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

enum entropy_kind {
	ENTROPY_CHARDEV,	/* /dev/urandom, /dev/hwrng, ... */
	ENTROPY_FIFO,
	ENTROPY_FILE,		/* regular file: finite */
};

struct entropy {
	char		 path[4096];
	enum entropy_kind kind;
	int		 fd;		/* number fixed for the daemon's life */
	/*
	 * The kernel's CSPRNG (/dev/urandom or /dev/random, character device
	 * 1:9 or 1:8): never runs dry, never blocks once seeded, and costs
	 * the same per byte however it is read, so small requests may be
	 * served from a per-thread pool (struct entropy_pool).
	 */
	bool		 csprng;
	pthread_mutex_t	 lock;		/* serializes reopen */
	/* protected by lock; read lock-free as a hint: */
	bool		 exhausted;
	bool		 failing;	/* last read or reopen failed */
};

/* Opens and checks the source; on error fills err with a full sentence. */
int	entropy_open(struct entropy *, const char *path, char *err,
	    size_t errlen);
void	entropy_close(struct entropy *);

#define ENTROPY_AGAIN	(-2)	/* nothing now: poll entropy_fd() */
#define ENTROPY_EOF	(-3)	/* regular file used up */
#define ENTROPY_ERROR	(-1)
#define ENTROPY_FAULT	(-4)	/* the buffers were not writable (EFAULT) */

/*
 * Reads into the iovecs (guest memory, no bounce buffer).  Returns the
 * bytes read (> 0) or one of the codes above.
 */
ssize_t	entropy_read(struct entropy *, const struct iovec *, unsigned niov);
int	entropy_fd(const struct entropy *);

/*
 * A guest thread's pool of bytes read ahead from a CSPRNG source, so that
 * a stream of 64-byte requests costs one read(2) per ENTROPY_POOL_SIZE
 * bytes instead of one per request.  Every byte is handed out once and
 * wiped from the pool as it is handed out; the pool belongs to one thread.
 */
#define ENTROPY_POOL_SIZE	4096

struct entropy_pool {
	size_t		 off;		/* first unused byte */
	size_t		 len;		/* bytes read into buf */
	unsigned char	 buf[ENTROPY_POOL_SIZE];
};

/*
 * Fills the iovecs (guest memory) with up to len bytes (1..
 * ENTROPY_POOL_SIZE), from the pool, reading the source once first if the
 * pool holds fewer than len.  Only for src->csprng sources.  Returns the
 * bytes written (> 0), or an ENTROPY_* code when the pool was empty and
 * the read failed.  A copy into guest memory may raise SIGBUS (memory
 * file shrunk): the caller's guard handles that; the bytes are lost.
 */
ssize_t	entropy_read_pooled(struct entropy *, struct entropy_pool *,
	    const struct iovec *, unsigned niov, size_t len);
/* Wipes the pool's unused bytes (the thread is leaving). */
void	entropy_pool_clear(struct entropy_pool *);
bool	entropy_exhausted(struct entropy *);

#endif
