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
bool	entropy_exhausted(struct entropy *);

#endif
