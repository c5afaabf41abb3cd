/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_GUEST_H
#define VRNG_GUEST_H

/*
 * One guest: the thread that serves one front-end connection.  The thread
 * owns the connection and everything behind it (vhost-user device, memory
 * table, virtqueue, eventfds, throttle timer) and frees it all when the
 * front-end goes away.
 *
 * The main thread owns struct guest_slot; the guest thread only reads the
 * fields set before it was started, writes its statistics with relaxed
 * atomics, and sets 'finished' last.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "entropy.h"
#include "handover.h"
#include "log.h"
#include "ratelimit.h"

/* Longest single completion: a huge guest buffer is served in parts. */
#define GUEST_MAX_REQUEST	(256 * 1024)

struct guest_stats {
	uint64_t	bytes;		/* entropy delivered */
	uint64_t	requests;	/* used entries written */
	uint64_t	throttled_ns;	/* time spent waiting on the budget */
	uint64_t	connects;
	uint64_t	errors;		/* bad messages, broken rings */
	/* reads of this guest that failed a source health test (health.h) */
	uint64_t	health_failures;
};

/* What every guest thread shares: read-only after start, but for rl. */
struct guest_shared {
	struct entropy		*source;
	struct ratelimit	*rl;		/* NULL: unlimited */
	int			 wake_main_fd;	/* written when a thread ends */
	uint32_t		 poll_us;	/* --poll-us: spin after work */
};

struct guest;

struct guest_slot {
	unsigned		 index;
	const struct guest_shared *shared;
	int			 stop_fd;	/* eventfd: main asks to stop */
	/*
	 * eventfd: main asks the thread to park (live upgrade): finish the
	 * batch and the message at hand, then end, keeping the connection.
	 */
	int			 park_fd;

	/* Guest-error log budget: used by one guest thread at a time. */
	struct log_budget	 log_budget;

	/* main thread only: */
	pthread_t		 thread;
	bool			 busy;
	int			 conn_fd;	/* handed to the thread */
	/*
	 * A connection no thread serves now: left by a thread that parked
	 * (set before 'finished'), or restored from a handover; main owns
	 * it until guest_resume() or guest_discard().
	 */
	struct guest		*parked;

	/* written by the guest thread, read by main (atomics): */
	struct guest_stats	 stats;
	bool			 finished;
};

/* Adds v to one statistics counter (guest thread; main reads atomically). */
#define GUEST_STAT_ADD(slot, field, v)					\
	__atomic_fetch_add(&(slot)->stats.field, (v), __ATOMIC_RELAXED)

/* Turns SIGBUS on guest memory into a broken ring (call before threads). */
int	guest_install_fault_handler(void);
/* Starts the thread for slot->conn_fd; the thread owns the fd from here. */
int	guest_start(struct guest_slot *);
/*
 * Starts a thread on slot->parked (which it then owns).  Returns 0, or -1
 * with errno (the guest stays parked).
 */
int	guest_resume(struct guest_slot *);
/* Ends a parked connection: the front-end sees it closed. */
void	guest_discard(struct guest_slot *);
/*
 * Handover of a parked connection (handover.h): its statistics and its
 * vhost-user device.  guest_each_fd calls fn for every fd it holds, with
 * the name the blob uses (see vu_dev_each_fd).
 */
void	guest_save(const struct guest_slot *, struct handover_buf *);
int	guest_each_fd(const struct guest_slot *,
	    int (*fn)(const char *name, int fd, uint32_t gen, void *arg),
	    void *arg);
/*
 * Rebuilds slot->parked from a blob written by guest_save, taking
 * duplicates of its fds from fds; the statistics become the slot's.
 * Returns 0, or -1 with a sentence in err (nothing is left behind).
 */
int	guest_restore(struct guest_slot *, struct handover_cursor *,
	    struct handover_fds *, char *err, size_t errlen);
/*
 * Asks the thread of every busy slot among n to stop (GUEST_STOP: the
 * connection ends) or park (GUEST_PARK: guest_resume() may go on), and
 * joins each within ms milliseconds in all.  Returns how many did not end
 * in time (those slots stay busy).  Main thread only.
 */
enum guest_end {
	GUEST_STOP,
	GUEST_PARK,
};
unsigned guests_end(struct guest_slot *, unsigned n, enum guest_end,
	    unsigned ms);
/* Reads the statistics (from any thread). */
void	guest_stats_read(const struct guest_slot *, struct guest_stats *);

#endif
