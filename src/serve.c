/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * serve owns a guest's data path: the batch of requests in flight, the
 * rate-limit grant that goes with it, the CSPRNG pool, the budget and
 * back-off timer, and the SIGBUS guard around every touch of guest memory.
 * See include/serve.h for the batch rule.
 *
 * Cost per request is what a guest sees (one 64-byte buffer in flight for
 * Linux's virtio_rng), so the steady state makes no system call but the
 * source read (amortized by the pool for the kernel's CSPRNG) and the call
 * eventfd write, and even that only when the driver asks for it: no
 * timers, no locks without a rate limit, no signal mask changes.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "ratelimit.h"
#include "serve.h"

/*
 * One pass over the ring serves at most this much before the loop looks at
 * the socket again, so a guest with a deep queue of large buffers cannot
 * delay control messages (GET_VRING_BASE, SIGTERM) for long.
 */
#define BATCH_MAX_REQUESTS	256
#define BATCH_MAX_BYTES		(4 * 1024 * 1024)
_Static_assert(SERVE_GATHER_MAX * VIRTQ_MAX_IOV <= IOV_MAX, "one readv");
/*
 * A gather of at most this many bytes is served from the CSPRNG pool; a
 * bigger one is read straight into guest memory (no copy).
 */
#define POOL_MAX_GATHER		1024
_Static_assert(POOL_MAX_GATHER <= ENTROPY_POOL_SIZE, "pool");
/*
 * A device source that says EAGAIN but always polls readable (hw_random's
 * /dev/hwrng has no poll method) is retried after a delay that doubles
 * from the first to the last of these.
 */
#define SOURCE_BACKOFF_MIN_NS	1000000ull
#define SOURCE_BACKOFF_MAX_NS	100000000ull
/* After a read error of the source, try again this much later. */
#define SOURCE_RETRY_NS		1000000000ull
/* Not this guest's turn on a scarce source: look again this much later. */
#define SOURCE_YIELD_NS		1000000ull

void
serve_init(struct serve *s, struct vu_dev *dev, struct guest_slot *slot,
    int timer_fd)
{
	memset(s, 0, offsetof(struct serve, reqs));
	s->dev = dev;
	s->slot = slot;
	s->source = slot->shared->source;
	s->rl = slot->shared->rl;
	s->timer_fd = timer_fd;
	s->pool.off = s->pool.len = 0;
}

void
serve_resumed(struct serve *s)
{
	s->breaks_reported = s->dev->vq.breaks;
	s->more = true;
	if (s->dev->started)
		vu_dev_signal_used(s->dev);
}

void
serve_fini(struct serve *s)
{
	entropy_leave(s->source, s->slot->index);
	entropy_pool_clear(&s->pool);
	explicit_bzero(s->bounce, sizeof(s->bounce));
}

static void
arm_timer(struct serve *s, uint64_t when_ns)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(when_ns / 1000000000ull);
	its.it_value.tv_nsec = (long)(when_ns % 1000000000ull);
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1;	/* zero would disarm */
	if (timerfd_settime(s->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		log_warn("timerfd_settime");
	s->timer_wait = true;
}

void
serve_timer_fired(struct serve *s)
{
	if (s->throttled && s->throttle_start != 0)
		GUEST_STAT_ADD(s->slot, throttled_ns,
		    monotonic_ns() - s->throttle_start);
	s->throttled = false;
	s->throttle_start = 0;
	s->timer_wait = false;
}

void
serve_source_ready(struct serve *s)
{
	s->source_wait = false;
}

void
serve_ring_stopped(struct serve *s)
{
	s->source_wait = false;
	entropy_leave(s->source, s->slot->index);
}

void
serve_report_broken(struct serve *s)
{
	struct virtq *vq = &s->dev->vq;

	/*
	 * Each latch once: a ring restarted and broken again at once (the
	 * same bad request) is a new break, even if no pass saw it running.
	 */
	if (!vq->broken || vq->breaks == s->breaks_reported)
		return;
	s->breaks_reported = vq->breaks;
	entropy_leave(s->source, s->slot->index);
	if (vq->broken_values)
		log_guest_err("virtqueue broken: %s (%u, %u); requests are "
		    "held until the ring is restarted", vq->broken_why,
		    vq->broken_a, vq->broken_b);
	else
		log_guest_err("virtqueue broken: %s; requests are held until "
		    "the ring is restarted", vq->broken_why != NULL ?
		    vq->broken_why : "no reason given");
	GUEST_STAT_ADD(s->slot, errors, 1);
	vu_dev_signal_error(s->dev);
}

void
serve_break_ring(struct serve *s, const char *why)
{
	virtq_break(&s->dev->vq, why);
	serve_report_broken(s);
}

/*
 * The batch rule, the one way every batch ends: requests popped but not
 * completed go back to the ring (newest first, so the avail ring's order
 * is kept), and a grant not delivered goes back to the budget.
 */
static void
batch_end(struct serve *s)
{
	struct serve_batch *b = &s->batch;

	while (b->popped > b->completed) {
		virtq_unpop(&s->dev->vq);
		b->popped--;
	}
	if (s->rl != NULL && b->granted > b->delivered)
		ratelimit_give_back(s->rl, s->slot->index,
		    b->granted - b->delivered, b->grant_ns);
	b->popped = b->completed = 0;
	b->granted = b->delivered = 0;
}

/*
 * Guest memory is a shared mapping of the front-end's file.  If the
 * front-end shrinks that file after handing it over (memtable.c checks the
 * size only at mapping time), touching the lost pages raises SIGBUS, which
 * would kill every guest.  So serve_ring runs under a per-thread guard:
 * the handler jumps back to it and the ring is marked broken instead.
 *
 * The jump keeps the signal mask as it is (sigsetjmp(env, 0): no
 * rt_sigprocmask per batch): the handler runs with SA_NODEFER and an
 * empty sa_mask, so it changes no mask that would need restoring.
 */
static _Thread_local sigjmp_buf *fault_guard;

static void
on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	(void)ctx;
	/*
	 * Only a fault of this thread's own access (si_code > 0; a SIGBUS
	 * sent with kill(2) has si_code <= 0 and may land anywhere, with
	 * locks held).
	 */
	if (fault_guard != NULL && si != NULL && si->si_code > 0)
		siglongjmp(*fault_guard, 1);
	/* Not ours: die as we would have without the handler. */
	signal(sig, SIG_DFL);
	raise(sig);
}

int
serve_install_fault_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL);
}

/*
 * Gather: pops up to SERVE_GATHER_MAX requests into the batch, so that one
 * read of the source fills them all.  Returns their byte count; a broken
 * ring stops the gather (what was popped before is still served).
 */
static size_t
gather(struct serve *s)
{
	struct vu_dev *dev = s->dev;
	struct serve_batch *b = &s->batch;
	size_t total = 0;

	while (b->popped < SERVE_GATHER_MAX && total < GUEST_MAX_REQUEST) {
		int r = virtq_pop(&dev->vq, &dev->mt, &s->reqs[b->popped],
		    GUEST_MAX_REQUEST);

		if (r < 0)
			break;
		if (r == 0) {
			/*
			 * Empty: ask for a kick and go on if buffers came
			 * meanwhile.  A polling thread looks again itself.
			 */
			if (b->popped == 0 && !s->polling &&
			    virtq_enable_notify(&dev->vq))
				continue;
			break;
		}
		total += s->reqs[b->popped].len;
		b->popped++;
	}
	return total;
}

/*
 * Grant: shortens the batch to limit bytes; the request where the limit
 * falls is trimmed, those after it go back to the ring.
 */
static void
batch_limit(struct serve *s, size_t limit)
{
	struct serve_batch *b = &s->batch;
	size_t seen = 0;
	unsigned i;

	for (i = 0; i < b->popped; i++) {
		if (s->reqs[i].len >= limit - seen) {
			virtq_req_trim(&s->reqs[i], limit - seen);
			while (b->popped > i + 1) {
				virtq_unpop(&s->dev->vq);
				b->popped--;
			}
			return;
		}
		seen += s->reqs[i].len;
	}
}

/*
 * A health-tested source: read into the bounce buffer, tested there
 * (entropy.c, under the source's lock), and only bytes that passed are
 * copied to the iovecs.  A copy that faults (SIGBUS) leaves through the
 * guard: memory_vanished wipes the buffer.
 */
static ssize_t
fill_tested(struct serve *s, unsigned niov, size_t total)
{
	size_t len = total < sizeof(s->bounce) ? total : sizeof(s->bounce);
	size_t done = 0, chunk;
	unsigned i;
	ssize_t n;

	n = entropy_read_tested(s->source, s->slot->index, s->bounce, len,
	    monotonic_ns(), &s->retry_ns);
	if (n <= 0)
		return n;
	for (i = 0; i < niov && done < (size_t)n; i++) {
		chunk = s->iov[i].iov_len < (size_t)n - done ?
		    s->iov[i].iov_len : (size_t)n - done;
		memcpy(s->iov[i].iov_base, s->bounce + done, chunk);
		done += chunk;
	}
	explicit_bzero(s->bounce, (size_t)n);
	return n;
}

/* Fill: one read of the source (or the pool) for the whole batch. */
static ssize_t
batch_fill(struct serve *s, size_t total)
{
	struct serve_batch *b = &s->batch;
	unsigned i, niov = 0;

	for (i = 0; i < b->popped; i++) {
		memcpy(&s->iov[niov], s->reqs[i].iov,
		    s->reqs[i].niov * sizeof(s->iov[0]));
		niov += s->reqs[i].niov;
	}
	if (s->source->csprng && total <= POOL_MAX_GATHER)
		return entropy_read_pooled(s->source, &s->pool, s->iov, niov,
		    total);
	if (s->source->tested)
		return fill_tested(s, niov, total);
	/* Straight into guest memory: no bounce buffer. */
	return entropy_read_turn(s->source, s->slot->index, s->iov, niov);
}

/*
 * Complete: the bytes landed in request order; used.len is what really
 * landed in each request (>= 1, VIRTIO 1.x 2.7.8.1).  Requests a short
 * read did not reach stay uncompleted (batch_end gives them back).
 */
static void
batch_complete(struct serve *s, size_t n)
{
	struct serve_batch *b = &s->batch;

	while (b->completed < b->popped && n > 0) {
		struct virtq_req *req = &s->reqs[b->completed];
		size_t got = n < req->len ? n : req->len;

		virtq_push(&s->dev->vq, req->head, (uint32_t)got);
		b->completed++;
		b->delivered += got;
		n -= got;
	}
}

static void
source_failed(struct serve *s, enum entropy_result r)
{
	/* Every result has its case: -Wswitch names a new one left out. */
	switch (r) {
	case ENTROPY_FAULT:
		serve_break_ring(s, "a guest buffer is not writable memory");
		break;
	case ENTROPY_AGAIN:
		if (s->source->kind == ENTROPY_FIFO) {
			s->source_wait = true;	/* poll says when */
			break;
		}
		s->backoff_ns = s->backoff_ns == 0 ? SOURCE_BACKOFF_MIN_NS :
		    s->backoff_ns * 2;
		if (s->backoff_ns > SOURCE_BACKOFF_MAX_NS)
			s->backoff_ns = SOURCE_BACKOFF_MAX_NS;
		arm_timer(s, monotonic_ns() + s->backoff_ns);
		break;
	case ENTROPY_ERROR:
		arm_timer(s, monotonic_ns() + SOURCE_RETRY_NS);
		break;
	case ENTROPY_YIELD:
		/* Another guest's turn on a scarce source (entropy.h). */
		arm_timer(s, monotonic_ns() + SOURCE_YIELD_NS);
		break;
	case ENTROPY_UNHEALTHY:
		/* This guest's read found it (logged by entropy.c). */
		GUEST_STAT_ADD(s->slot, health_failures, 1);
		/* FALLTHROUGH */
	case ENTROPY_CUT_OFF:
		/* Held until the source's back-off is over. */
		arm_timer(s, s->retry_ns);
		break;
	case ENTROPY_EOF:
		/* Wait for the next kick (logged once). */
		break;
	}
}

/* Takes the batch's grant; false if the guest must wait (timer armed). */
static bool
batch_grant(struct serve *s, size_t *total)
{
	struct serve_batch *b = &s->batch;
	uint64_t now = monotonic_ns(), wake, grant;

	grant = ratelimit_take(s->rl, s->slot->index, *total, now, &wake);
	if (grant == 0) {
		/* Held, not completed short: see VIRTIO 5.4. */
		s->throttled = true;
		s->throttle_start = now;
		arm_timer(s, wake);
		DPRINTF("throttled until %llu", (unsigned long long)wake);
		return false;
	}
	b->granted = grant;
	b->grant_ns = now;
	if (grant < *total) {
		batch_limit(s, (size_t)grant);
		*total = (size_t)grant;
	}
	return true;
}

static unsigned
serve_unguarded(struct serve *s)
{
	unsigned pushed = 0;
	size_t served = 0;

	for (;;) {
		size_t total;
		ssize_t n;
		bool ok;

		if (pushed >= BATCH_MAX_REQUESTS || served >= BATCH_MAX_BYTES) {
			s->more = true;
			break;
		}
		total = gather(s);
		if (s->batch.popped == 0)
			break;
		if (s->rl != NULL && !batch_grant(s, &total)) {
			batch_end(s);
			break;
		}
		n = batch_fill(s, total);
		if (n > 0) {
			batch_complete(s, (size_t)n);
			pushed += s->batch.completed;
			GUEST_STAT_ADD(s->slot, bytes, (uint64_t)n);
			GUEST_STAT_ADD(s->slot, requests, s->batch.completed);
			served += (size_t)n;
			s->backoff_ns = 0;
		}
		batch_end(s);
		if (n <= 0) {
			source_failed(s, (enum entropy_result)n);
			break;
		}
		/*
		 * After a short read go on: the next read says whether the
		 * source is used up (logged) or has nothing now (polled).
		 */
		ok = !s->dev->vq.broken;
		if (!ok)
			break;
	}
	if (pushed > 0)
		vu_dev_notify(s->dev);
	return pushed;
}

/* The SIGBUS guard's landing: the batch rule, then a broken ring. */
static void
memory_vanished(struct serve *s)
{
	fault_guard = NULL;
	batch_end(s);
	/* A copy out of the pool may have stopped half way: drop it all. */
	entropy_pool_clear(&s->pool);
	explicit_bzero(s->bounce, sizeof(s->bounce));
	s->more = false;
	s->polling = false;
	serve_break_ring(s, "guest memory vanished under the ring (the "
	    "front-end shrank its memory file)");
}

unsigned
serve_ring(struct serve *s)
{
	sigjmp_buf env;
	unsigned pushed;
	uint64_t errs;

	s->more = false;
	if (s->timer_wait || s->source_wait)
		return 0;
	if (sigsetjmp(env, 0) != 0) {
		memory_vanished(s);
		return 0;
	}
	/* Mapping the rings reads used->idx: guarded too. */
	fault_guard = &env;
	if (vu_dev_ring_runnable(s->dev))
		pushed = serve_unguarded(s);
	else {
		s->polling = false;
		pushed = 0;
	}
	fault_guard = NULL;
	/* A ring that started but cannot map (vu_dev.c) counts too. */
	if ((errs = vu_dev_take_ring_errors(s->dev)) > 0)
		GUEST_STAT_ADD(s->slot, errors, errs);
	serve_report_broken(s);
	return pushed;
}

/* A hint to the CPU that this is a spin loop. */
#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax()	__builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax()	__asm__ __volatile__("yield")
#else
#define cpu_relax()	do { } while (0)
#endif

/* Looks at the guest thread's epoll set this often while spinning. */
#define SPIN_LOOK_NS	50000ull

enum serve_spin_result
serve_spin(struct serve *s, uint64_t until_ns, int epoll_fd)
{
	struct pollfd pfd = { .fd = epoll_fd, .events = POLLIN };
	volatile enum serve_spin_result res = SPIN_TIMEOUT;
	uint64_t now, look;
	sigjmp_buf env;

	if (s->timer_wait || s->source_wait) {
		s->polling = false;	/* serve_ring asks for kicks again */
		return SPIN_TIMEOUT;
	}
	if (sigsetjmp(env, 0) != 0) {
		memory_vanished(s);
		return SPIN_TIMEOUT;
	}
	fault_guard = &env;
	if (!vu_dev_ring_runnable(s->dev)) {
		fault_guard = NULL;
		s->polling = false;
		return SPIN_TIMEOUT;
	}
	if (!s->polling) {
		s->polling = true;
		virtq_disable_notify(&s->dev->vq);
	}
	look = monotonic_ns() + SPIN_LOOK_NS;
	for (;;) {
		if (virtq_has_avail(&s->dev->vq)) {
			res = SPIN_FOUND;
			break;
		}
		/* clock_gettime(CLOCK_MONOTONIC) is a vDSO call, no trap. */
		now = monotonic_ns();
		if (now >= until_ns)
			break;
		if (now >= look) {
			/*
			 * A message or a stop request must not wait for the
			 * whole spin; poll(2) on the epoll fd says whether
			 * anything is ready without taking the event.  (So
			 * does a kick the driver sent anyway: VIRTIO lets it.)
			 */
			if (poll(&pfd, 1, 0) > 0) {
				res = SPIN_EVENT;
				break;
			}
			look = now + SPIN_LOOK_NS;
		}
		cpu_relax();
	}
	fault_guard = NULL;
	if (res == SPIN_TIMEOUT)
		s->polling = false;	/* serve_ring asks for kicks again */
	return res;
}
