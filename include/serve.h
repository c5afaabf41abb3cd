/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_SERVE_H
#define VRNG_SERVE_H

/*
 * The data path of one guest: entropy requests taken from its virtqueue,
 * granted by the rate limit, filled from the source and completed
 * (VIRTIO 1.x 5.4.6: the device writes random bytes into the driver's
 * writable buffers and reports how many in used.len).  Owned by the guest
 * thread (guest.c), which calls serve_ring() whenever the ring may have
 * work and sleeps on what serve_ring() asks for (budget timer, source).
 *
 * Requests move in batches: gather (pop up to SERVE_GATHER_MAX), grant
 * (rate limit), fill (one read of the source, or the CSPRNG pool), then
 * complete.  One rule ends every batch, whatever happened (serve.c,
 * batch_end): a request popped but not completed goes back to the ring,
 * and bytes granted but not delivered go back to the budget.  That holds
 * when the front-end pulls guest memory away mid-batch (SIGBUS) too.
 */

#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "entropy.h"
#include "guest.h"
#include "virtq.h"
#include "vu_dev.h"

/* Requests filled by one read of the source (iovecs <= IOV_MAX). */
#define SERVE_GATHER_MAX	16
/* Largest read of a health-tested source (the bounce buffer). */
#define SERVE_BOUNCE_SIZE	4096

/* One batch; fields are volatile: a SIGBUS may cut in anywhere. */
struct serve_batch {
	volatile unsigned	 popped;	/* reqs[0..popped) */
	volatile unsigned	 completed;	/* reqs[0..completed) pushed */
	volatile uint64_t	 granted;	/* bytes the budget gave */
	volatile uint64_t	 delivered;	/* bytes in completed requests */
	uint64_t		 grant_ns;	/* when granted */
};

struct serve {
	struct vu_dev		*dev;
	struct guest_slot	*slot;
	struct entropy		*source;
	struct ratelimit	*rl;		/* NULL: unlimited */
	int			 timer_fd;	/* budget and back-off waits */

	/* What the guest thread must wait for before calling again: */
	bool			 timer_wait;	/* timer_fd armed */
	bool			 source_wait;	/* poll entropy_fd() */
	bool			 more;		/* batch limit hit: at once */
	/*
	 * --poll-us: the thread spins on the avail ring, so the driver
	 * need not kick (notifications stay off).
	 */
	bool			 polling;

	bool			 throttled;	/* timer_wait for the budget */
	uint64_t		 throttle_start;
	uint64_t		 backoff_ns;	/* device source said EAGAIN */
	uint64_t		 retry_ns;	/* a failed source's back-off */
	unsigned		 breaks_reported;	/* vq->breaks */

	struct serve_batch	 batch;
	struct virtq_req	 reqs[SERVE_GATHER_MAX];
	struct iovec		 iov[SERVE_GATHER_MAX * VIRTQ_MAX_IOV];
	struct entropy_pool	 pool;		/* CSPRNG sources only */
	/*
	 * A health-tested source (src->tested) is read here, tested, and
	 * only then copied to the guest: bytes that fail reach no guest.
	 */
	unsigned char		 bounce[SERVE_BOUNCE_SIZE];
};

/*
 * Sets up s for dev, owned by the calling guest thread.  timer_fd is a
 * CLOCK_MONOTONIC timerfd the thread polls while s->timer_wait.
 */
void	serve_init(struct serve *, struct vu_dev *, struct guest_slot *,
	    int timer_fd);
/* Wipes what the pool holds (the thread is leaving). */
void	serve_fini(struct serve *);

/*
 * Serves available requests until the ring is empty, a batch limit
 * (256 requests or 4 MiB) is hit (s->more), the budget is spent
 * (s->timer_wait), or the source has nothing (s->timer_wait or
 * s->source_wait); then interrupts the guest once if the driver wants it
 * (EVENT_IDX, VIRTIO 1.x 2.7.10).  Does nothing while a wait is pending or
 * the ring is not runnable.  Never blocks.  Returns the requests completed.
 */
unsigned serve_ring(struct serve *);
/*
 * --poll-us: spins on the avail ring until until_ns (CLOCK_MONOTONIC)
 * with the driver's notifications off, looking at epoll_fd (poll(2), every
 * 50 us) so that messages and stop requests are not held up.  Returns
 * SPIN_FOUND when the ring has buffers (call serve_ring), SPIN_EVENT when
 * epoll_fd has something (handle it, then spin on: notifications stay
 * off), SPIN_TIMEOUT when the time ran out or the ring cannot run
 * (notifications are on again after the next serve_ring).
 */
enum serve_spin_result {
	SPIN_FOUND,
	SPIN_EVENT,
	SPIN_TIMEOUT,
};
enum serve_spin_result serve_spin(struct serve *, uint64_t until_ns,
	    int epoll_fd);

/*
 * The connection was restored or resumed after a handover: look at the
 * ring at once (its kick may have gone to the predecessor), count a ring
 * that came broken as reported already, and interrupt the guest once in
 * case the predecessor completed requests it did not signal (a spurious
 * interrupt is harmless, VIRTIO 1.x 2.7.7).
 */
void	serve_resumed(struct serve *);
/* The timer fired: the budget wait or source back-off is over. */
void	serve_timer_fired(struct serve *);
/* entropy_fd() polled readable: look at the source again. */
void	serve_source_ready(struct serve *);
/* The front-end stopped the ring (GET_VRING_BASE): forget the waits. */
void	serve_ring_stopped(struct serve *);

/*
 * The one place a broken ring is reported: if the virtqueue is latched
 * broken and this has not been reported yet, logs the reason once, counts
 * one error in the guest's statistics and signals the err eventfd
 * (vhost-user.rst, VHOST_USER_SET_VRING_ERR).  Cheap when nothing is
 * broken; every path that breaks a ring ends here.
 */
void	serve_report_broken(struct serve *);
/* Latches the ring broken for why (a static string) and reports it. */
void	serve_break_ring(struct serve *, const char *why);

/*
 * Turns SIGBUS on guest memory into a broken ring for the thread inside
 * serve_ring().  Call once, before any guest thread starts.  Returns 0 or
 * -1 with errno (sigaction).
 */
int	serve_install_fault_handler(void);

#endif
