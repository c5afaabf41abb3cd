/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_RATELIMIT_H
#define VRNG_RATELIMIT_H

/*
 * The daemon-wide rate limit: at most max_bytes per period, split equally
 * between the nguests guests (--socket-count), on CLOCK_MONOTONIC.
 *
 * Split rule: each guest gets max_bytes / nguests per period.  The
 * remainder r = max_bytes % nguests goes one byte each to r consecutive
 * guests, a window that moves on by r guests each period, so every byte of
 * the budget is usable and, when max_bytes < nguests, every guest still
 * gets a byte every ceil(nguests / max_bytes) periods: nobody starves.
 *
 * Time is passed in (nanoseconds on CLOCK_MONOTONIC) so that the tests can
 * inject a clock.  Periods are counted from rl->epoch.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Callers pass monotonic_ns() as now_ns. */
#include "clock.h"

struct ratelimit {
	uint64_t	 max_bytes;
	uint64_t	 period_ns;
	unsigned	 nguests;
	uint64_t	 epoch_ns;	/* start of period 0 */

	pthread_mutex_t	 lock;
	/* protected by lock: */
	uint64_t	 period;	/* number of the current period */
	uint64_t	*used;		/* bytes each guest took in it */
};

int	ratelimit_init(struct ratelimit *, uint64_t max_bytes,
	    uint32_t period_ms, unsigned nguests, uint64_t now_ns);
void	ratelimit_destroy(struct ratelimit *);

/* Bytes guest may take per period number 'period' (pure arithmetic). */
uint64_t ratelimit_share(const struct ratelimit *, unsigned guest,
	    uint64_t period);

/*
 * Takes up to want bytes of the guest's share of the current period and
 * returns how many it got.  When it returns 0, *wake_ns is the start of the
 * next period in which this guest has a non-zero share.
 */
uint64_t ratelimit_take(struct ratelimit *, unsigned guest, uint64_t want,
	    uint64_t now_ns, uint64_t *wake_ns);
/* Returns unused bytes of a grant taken in the current period. */
void	ratelimit_give_back(struct ratelimit *, unsigned guest, uint64_t bytes,
	    uint64_t now_ns);

/*
 * Handover (handover.h): the limit, the current period and what each guest
 * took in it.  Restore checks that the limit is the one configured now
 * (else it starts afresh, returning 1); 0 if restored, -1 on a malformed
 * blob (the cursor failed).
 */
struct handover_buf;
struct handover_cursor;
void	ratelimit_save(struct ratelimit *, struct handover_buf *);
int	ratelimit_restore(struct ratelimit *, struct handover_cursor *);

#endif
