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
 *
 * A source that is not the kernel's CSPRNG is health-tested by default
 * (entropy_set_health, health.h): it is read into a host buffer under the
 * lock and tested there, and a source that fails is cut off for a
 * back-off (entropy_read_tested).  The CSPRNG is read as before: no lock,
 * no copy, no test.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "health.h"

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
	/*
	 * Turns on a scarce source (not the CSPRNG), protected by lock:
	 * bytes each guest took, and whether it waits for the source now.
	 */
	unsigned	 nguests;
	struct entropy_share {
		uint64_t	 taken;
		bool		 waiting;
		unsigned	 yields;	/* in a row */
	}		*share;		/* NULL: no turns (CSPRNG) */
	/*
	 * The SP 800-90B continuous health tests (health.h) on every byte
	 * read, for a source that is not the CSPRNG: set by
	 * entropy_set_health() before the guest threads start.
	 */
	bool		 tested;
	/* protected by lock: */
	struct health	 health;
	bool		 cut_off;	/* failed: not read before retry_ns */
	uint64_t	 retry_ns;	/* CLOCK_MONOTONIC */
	uint64_t	 backoff_ns;	/* the last back-off, 0: none */
	unsigned	 probation;	/* bytes to pass (dropped) after it */
};

/* Opens and checks the source; on error fills err with a full sentence. */
int	entropy_open(struct entropy *, const char *path, char *err,
	    size_t errlen);
/*
 * The same for an fd already open on path (a live upgrade hands the
 * source over, so a FIFO's writer never sees it without a reader and a
 * file goes on from its offset).  Takes ownership of fd, closed on error.
 */
int	entropy_adopt(struct entropy *, const char *path, int fd, char *err,
	    size_t errlen);
void	entropy_close(struct entropy *);

/*
 * What a read that delivered nothing says.  The reads below return
 * ssize_t: the bytes read (> 0), or one of these, all negative so that
 * "n > 0" means bytes and "n <= 0" means a result.  A caller that has
 * checked n <= 0 may convert n to this enum.
 */
enum entropy_result {
	ENTROPY_ERROR = -1,	/* read(2) failed: retry later */
	ENTROPY_AGAIN = -2,	/* nothing now: poll entropy_fd() */
	ENTROPY_EOF = -3,	/* regular file used up */
	ENTROPY_FAULT = -4,	/* the buffers were not writable (EFAULT) */
	ENTROPY_YIELD = -5,	/* not this guest's turn: try again soon */
	ENTROPY_UNHEALTHY = -6,	/* bytes read failed a health test */
	ENTROPY_CUT_OFF = -7,	/* cut off after a failure: wait */
};

/*
 * Sets up turns for nguests guests (0..nguests-1) on a scarce source
 * (a FIFO, a hardware device, a file: anything but the CSPRNG), so that
 * when the source, not the rate limit, is the bottleneck, every waiting
 * guest gets its share.  Returns 0, or -1 with errno (ENOMEM).  Nothing
 * to do (0) for a CSPRNG source, which is never scarce.
 */
int	entropy_set_guests(struct entropy *, unsigned nguests);
/*
 * entropy_read for guest (< nguests) with turns: returns ENTROPY_YIELD
 * without reading when the guest is more than ENTROPY_FAIR_QUANTUM bytes
 * ahead of another guest that waits for the source; the caller tries
 * again a little later (a millisecond) and the waiting guest reads
 * meanwhile.  A guest yields at most ENTROPY_FAIR_YIELDS times in a row:
 * then it reads, and every guest must say again that it waits (one that
 * stopped reading without saying so cannot hold the others up).  Same as
 * entropy_read without turns.
 */
#define ENTROPY_FAIR_QUANTUM	4096
#define ENTROPY_FAIR_YIELDS	20
ssize_t	entropy_read_turn(struct entropy *, unsigned guest,
	    const struct iovec *, unsigned niov);
/* The guest stopped waiting for the source (ring stopped, disconnect). */
void	entropy_leave(struct entropy *, unsigned guest);

/*
 * Health tests: on (and the source is not the CSPRNG, which is never
 * tested) makes src->tested true; the guest threads must then read it
 * with entropy_read_tested().  Call before the threads start.
 */
void	entropy_set_health(struct entropy *, bool on);

/*
 * A source that failed a health test is cut off for a back-off that
 * starts at the first of these and doubles at each failure in a row, up
 * to the second.
 */
#define ENTROPY_HEALTH_BACKOFF_MIN_NS	1000000000ull
#define ENTROPY_HEALTH_BACKOFF_MAX_NS	60000000000ull

/*
 * The read of a tested source (src->tested), with turns as
 * entropy_read_turn: reads up to len bytes into buf (host memory, the
 * caller's bounce buffer), under the source's lock, and runs the health
 * tests on them in the order they were read.  Returns:
 *
 *   n > 0		n bytes in buf that passed: the caller copies them to
 *			the guest (and wipes buf);
 *   ENTROPY_UNHEALTHY	this read failed a test (logged once, with the test
 *			and the count): its bytes are wiped, the source is cut
 *			off until *retry_ns (CLOCK_MONOTONIC); the caller
 *			counts the failure and waits until then;
 *   ENTROPY_CUT_OFF	the source is cut off (an earlier failure): nothing
 *			read, wait until *retry_ns;
 *   otherwise		as entropy_read_turn.
 *
 * After the back-off the tests start afresh and the first
 * HEALTH_APT_WINDOW bytes must pass before any is handed out: they are
 * read, tested and dropped (a fresh window).  Then the source is used
 * again and the back-off is reset.  now_ns is CLOCK_MONOTONIC.
 */
ssize_t	entropy_read_tested(struct entropy *, unsigned guest, void *buf,
	    size_t len, uint64_t now_ns, uint64_t *retry_ns);

/*
 * Reads into the iovecs (guest memory, no bounce buffer).  Returns the
 * bytes read (> 0) or an enum entropy_result.
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
 * bytes written (> 0), or an enum entropy_result when the pool was empty
 * and the read failed.  A copy into guest memory may raise SIGBUS (memory
 * file shrunk): the caller's guard handles that; the bytes are lost.
 */
ssize_t	entropy_read_pooled(struct entropy *, struct entropy_pool *,
	    const struct iovec *, unsigned niov, size_t len);
/* Wipes the pool's unused bytes (the thread is leaving). */
void	entropy_pool_clear(struct entropy_pool *);
bool	entropy_exhausted(struct entropy *);

/* What the source does now, for the statistics (metrics.h). */
enum entropy_state {
	ENTROPY_STATE_OK,	/* read as usual (or not read yet) */
	ENTROPY_STATE_ERROR,	/* the last read or reopen failed: retried */
	ENTROPY_STATE_CUT_OFF,	/* failed a health test: retried after back-off */
	ENTROPY_STATE_EOF,	/* used up for good (regular file) */
};

/*
 * The source's state, under its lock (from any thread; costs a mutex).
 * Takes the open source; returns one of the above, never fails.  A source
 * that is at once used up and failing says EOF: that one is for good.
 */
enum entropy_state entropy_state(struct entropy *);

#endif
