/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The shared rate-limit budget.  This is the only state guest threads
 * share, and every access to it is under rl->lock.  Unlimited daemons
 * never create one (the guest threads skip it, no lock per request).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "handover.h"
#include "ratelimit.h"

int
ratelimit_init(struct ratelimit *rl, uint64_t max_bytes, uint32_t period_ms,
    unsigned nguests, uint64_t now_ns)
{
	memset(rl, 0, sizeof(*rl));
	if (nguests == 0 || period_ms == 0 || max_bytes == 0) {
		errno = EINVAL;
		return -1;
	}
	rl->max_bytes = max_bytes;
	rl->period_ns = (uint64_t)period_ms * 1000000ull;
	rl->nguests = nguests;
	rl->epoch_ns = now_ns;
	if ((rl->used = calloc(nguests, sizeof(*rl->used))) == NULL)
		return -1;
	if ((errno = pthread_mutex_init(&rl->lock, NULL)) != 0) {
		free(rl->used);
		rl->used = NULL;
		return -1;
	}
	return 0;
}

void
ratelimit_destroy(struct ratelimit *rl)
{
	if (rl->used == NULL)
		return;
	pthread_mutex_destroy(&rl->lock);
	free(rl->used);
	rl->used = NULL;
}

uint64_t
ratelimit_share(const struct ratelimit *rl, unsigned guest, uint64_t period)
{
	uint64_t n = rl->nguests;
	uint64_t base = rl->max_bytes / n;
	uint64_t rem = rl->max_bytes % n;
	/*
	 * The rem remainder bytes go to rem consecutive guests, starting at
	 * guest (period * rem) mod n: the window moves on by rem guests each
	 * period, so each guest's turn comes every ceil(n / rem) periods.
	 * (rem < n <= CONFIG_MAX_SOCKETS: the product cannot overflow.)
	 */
	uint64_t first = (period % n) * rem % n;
	uint64_t slot = (guest + n - first) % n;

	return base + (slot < rem ? 1 : 0);
}

static uint64_t
period_of(const struct ratelimit *rl, uint64_t now_ns)
{
	if (now_ns < rl->epoch_ns)
		return 0;
	return (now_ns - rl->epoch_ns) / rl->period_ns;
}

/* Start of period p, saturating instead of wrapping. */
static uint64_t
period_start(const struct ratelimit *rl, uint64_t p)
{
	if (p > (UINT64_MAX - rl->epoch_ns) / rl->period_ns)
		return UINT64_MAX;
	return rl->epoch_ns + p * rl->period_ns;
}

/*
 * Called with the lock held: move to the period that now_ns is in.  Only
 * forward: a thread that read the clock just before a boundary may get the
 * lock after another moved on; its stale time counts as the current
 * period, it must not wipe what the others took in it.
 */
static void
roll(struct ratelimit *rl, uint64_t now_ns)
{
	uint64_t p = period_of(rl, now_ns);

	if (p > rl->period) {
		rl->period = p;
		memset(rl->used, 0, rl->nguests * sizeof(*rl->used));
	}
}

uint64_t
ratelimit_take(struct ratelimit *rl, unsigned guest, uint64_t want,
    uint64_t now_ns, uint64_t *wake_ns)
{
	uint64_t share, left, got, p;

	if (guest >= rl->nguests || want == 0)
		return 0;
	pthread_mutex_lock(&rl->lock);
	roll(rl, now_ns);
	share = ratelimit_share(rl, guest, rl->period);
	left = share > rl->used[guest] ? share - rl->used[guest] : 0;
	got = want < left ? want : left;
	rl->used[guest] += got;
	p = rl->period;
	pthread_mutex_unlock(&rl->lock);

	if (got == 0 && wake_ns != NULL) {
		uint64_t cur = p;

		/* The next period in which this guest has a byte to take. */
		do {
			p++;
		} while (ratelimit_share(rl, guest, p) == 0 &&
		    p - cur < rl->nguests);
		*wake_ns = period_start(rl, p);
	}
	return got;
}

void
ratelimit_give_back(struct ratelimit *rl, unsigned guest, uint64_t bytes,
    uint64_t now_ns)
{
	if (guest >= rl->nguests || bytes == 0)
		return;
	pthread_mutex_lock(&rl->lock);
	/* A grant of an earlier period died with that period. */
	if (period_of(rl, now_ns) == rl->period)
		rl->used[guest] -= bytes < rl->used[guest] ? bytes :
		    rl->used[guest];
	pthread_mutex_unlock(&rl->lock);
}

void
ratelimit_save(struct ratelimit *rl, struct handover_buf *b)
{
	unsigned i;

	pthread_mutex_lock(&rl->lock);
	handover_put_u64(b, rl->max_bytes);
	handover_put_u64(b, rl->period_ns);
	handover_put_u32(b, rl->nguests);
	handover_put_u64(b, rl->epoch_ns);
	handover_put_u64(b, rl->period);
	for (i = 0; i < rl->nguests; i++)
		handover_put_u64(b, rl->used[i]);
	pthread_mutex_unlock(&rl->lock);
}

int
ratelimit_restore(struct ratelimit *rl, struct handover_cursor *cur)
{
	uint64_t max_bytes, period_ns, epoch_ns, period, used, now;
	uint32_t i, n;
	bool same;

	max_bytes = handover_get_u64(cur);
	period_ns = handover_get_u64(cur);
	n = handover_get_count(cur, 1u << 20);
	epoch_ns = handover_get_u64(cur);
	period = handover_get_u64(cur);
	/*
	 * On the same clock neither the epoch nor the period can be ahead
	 * of now: a period ahead would never roll over (nothing refills).
	 */
	now = monotonic_ns();
	same = max_bytes == rl->max_bytes && period_ns == rl->period_ns &&
	    n == rl->nguests && period_ns != 0 && epoch_ns <= now &&
	    period <= (now - epoch_ns) / period_ns;
	for (i = 0; i < n && !cur->failed; i++) {
		used = handover_get_u64(cur);
		/* A guest cannot have taken more than the whole budget. */
		if (same && used <= max_bytes)
			rl->used[i] = used;
	}
	if (cur->failed)
		return -1;
	if (!same)
		return 1;
	/*
	 * The same CLOCK_MONOTONIC (one boot), so the period numbering goes
	 * on; the next ratelimit_take moves to the current period.
	 */
	rl->epoch_ns = epoch_ns;
	rl->period = period;
	return 0;
}
