/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest thread: one poll loop over the front-end socket, the kick
 * eventfd, the throttle timer, the entropy source (when it had nothing)
 * and the stop eventfd.  It never sleeps anywhere else, so control
 * messages are answered while requests wait for budget or entropy.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "guest.h"
#include "ioguard.h"
#include "log.h"
#include "vu_dev.h"
#include "vu_proto.h"

/* When the ring has no kick fd (the no-fd bit), look at it this often. */
#define KICK_POLL_MS		1
/*
 * One pass over the ring serves at most this much before the loop looks at
 * the socket again, so a guest with a deep queue of large buffers cannot
 * delay control messages (GET_VRING_BASE, SIGTERM) for long.
 */
#define BATCH_MAX_REQUESTS	256
#define BATCH_MAX_BYTES		(4 * 1024 * 1024)
/* Requests filled by one read of the source (iovecs <= IOV_MAX). */
#define GATHER_MAX		16
_Static_assert(GATHER_MAX * VIRTQ_MAX_IOV <= IOV_MAX, "one readv");
/*
 * A device source that says EAGAIN but always polls readable (hw_random's
 * /dev/hwrng has no poll method) is retried after a delay that doubles
 * from the first to the last of these.
 */
#define SOURCE_BACKOFF_MIN_NS	1000000ull
#define SOURCE_BACKOFF_MAX_NS	100000000ull
/* After a read error of the source, try again this much later. */
#define SOURCE_RETRY_NS		1000000000ull

struct guest {
	struct guest_slot	*slot;
	const struct guest_shared *shared;
	struct vu_dev		 dev;
	int			 timer_fd;

	bool			 throttled;	/* timer armed */
	bool			 source_wait;	/* polling the source */
	bool			 more;		/* batch limit hit */
	uint64_t		 backoff_ns;	/* device source was empty */
	/* Popped but not yet completed: given back if SIGBUS cuts in. */
	unsigned		 inflight;
	uint64_t		 throttle_start;
	/* The requests of one read of the source, and its iovec. */
	struct virtq_req	 reqs[GATHER_MAX];
	struct iovec		 iov[GATHER_MAX * VIRTQ_MAX_IOV];
};

#define STAT_ADD(g, field, v)						\
	__atomic_fetch_add(&(g)->slot->stats.field, (v), __ATOMIC_RELAXED)

void
guest_stats_read(const struct guest_slot *slot, struct guest_stats *out)
{
	out->bytes = __atomic_load_n(&slot->stats.bytes, __ATOMIC_RELAXED);
	out->requests = __atomic_load_n(&slot->stats.requests,
	    __ATOMIC_RELAXED);
	out->throttled_ns = __atomic_load_n(&slot->stats.throttled_ns,
	    __ATOMIC_RELAXED);
	out->connects = __atomic_load_n(&slot->stats.connects,
	    __ATOMIC_RELAXED);
	out->errors = __atomic_load_n(&slot->stats.errors, __ATOMIC_RELAXED);
}

static void
arm_timer(struct guest *g, uint64_t when_ns)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(when_ns / 1000000000ull);
	its.it_value.tv_nsec = (long)(when_ns % 1000000000ull);
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1;	/* zero would disarm */
	if (timerfd_settime(g->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		log_warn("timerfd_settime");
	g->throttled = true;
}

/*
 * Guest memory is a shared mapping of the front-end's file.  If the
 * front-end shrinks that file after handing it over (memtable.c checks the
 * size only at mapping time), touching the lost pages raises SIGBUS, which
 * would kill every guest.  So ring accesses run under a per-thread guard:
 * the handler jumps back to it, and the ring is marked broken instead.
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
guest_install_fault_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL);
}

static void process_ring_unguarded(struct guest *);
static void unpop(struct guest *, unsigned);

static void
process_ring(struct guest *g)
{
	sigjmp_buf env;

	if (sigsetjmp(env, 1) != 0) {
		fault_guard = NULL;
		/* Requests popped but not completed go back to the ring. */
		unpop(g, g->inflight);
		g->inflight = 0;
		log_guest_err("guest memory vanished under the ring (the "
		    "front-end shrank its memory file): ring marked broken");
		g->dev.vq.broken = true;
		g->more = false;
		STAT_ADD(g, errors, 1);
		vu_dev_signal_error(&g->dev);
		return;
	}
	fault_guard = &env;
	process_ring_unguarded(g);
	fault_guard = NULL;
	STAT_ADD(g, errors, vu_dev_take_ring_errors(&g->dev));
}

/*
 * Pops up to GATHER_MAX requests, so that one read(2) of the source fills
 * them all (a ring of many small buffers costs one syscall, not one per
 * buffer).  Returns how many were popped; *total is their byte count.
 */
static unsigned
gather(struct guest *g, size_t *total, bool *broken)
{
	struct vu_dev *dev = &g->dev;
	unsigned k = 0;

	*total = 0;
	*broken = false;
	while (k < GATHER_MAX && *total < GUEST_MAX_REQUEST) {
		int r = virtq_pop(&dev->vq, &dev->mt, &g->reqs[k],
		    GUEST_MAX_REQUEST);

		if (r < 0) {
			*broken = true;
			break;
		}
		if (r == 0) {
			/* Ask for a kick; go on if buffers came meanwhile. */
			if (k == 0 && virtq_enable_notify(&dev->vq))
				continue;
			break;
		}
		*total += g->reqs[k].len;
		k++;
	}
	return k;
}

/* Gives the last n popped requests back to the ring, newest first. */
static void
unpop(struct guest *g, unsigned n)
{
	while (n-- > 0)
		virtq_unpop(&g->dev.vq);
}

/*
 * Shortens the gathered requests to limit bytes: the request where the
 * limit falls is trimmed, those after it are given back.  Returns the
 * number of requests left.
 */
static unsigned
limit_requests(struct guest *g, unsigned k, size_t limit)
{
	size_t seen = 0;
	unsigned i;

	for (i = 0; i < k; i++) {
		if (g->reqs[i].len >= limit - seen) {
			virtq_req_trim(&g->reqs[i], limit - seen);
			unpop(g, k - i - 1);
			return i + 1;
		}
		seen += g->reqs[i].len;
	}
	return k;
}

static void
source_failed(struct guest *g, ssize_t n)
{
	struct vu_dev *dev = &g->dev;

	switch (n) {
	case ENTROPY_FAULT:
		log_guest_err("a guest buffer is not writable memory: ring "
		    "marked broken");
		dev->vq.broken = true;
		STAT_ADD(g, errors, 1);
		vu_dev_signal_error(dev);
		break;
	case ENTROPY_AGAIN:
		if (g->shared->source->kind == ENTROPY_FIFO) {
			g->source_wait = true;	/* poll says when */
			break;
		}
		g->backoff_ns = g->backoff_ns == 0 ? SOURCE_BACKOFF_MIN_NS :
		    g->backoff_ns * 2;
		if (g->backoff_ns > SOURCE_BACKOFF_MAX_NS)
			g->backoff_ns = SOURCE_BACKOFF_MAX_NS;
		arm_timer(g, monotonic_ns() + g->backoff_ns);
		break;
	case ENTROPY_ERROR:
		arm_timer(g, monotonic_ns() + SOURCE_RETRY_NS);
		break;
	default:
		/* ENTROPY_EOF: wait for the next kick (logged once). */
		break;
	}
}

/*
 * Serves available requests until the ring is empty, the budget is spent
 * or the source has nothing; then interrupts the guest once if it wants.
 */
static void
process_ring_unguarded(struct guest *g)
{
	struct ratelimit *rl = g->shared->rl;
	struct vu_dev *dev = &g->dev;
	unsigned pushed = 0;
	size_t served = 0;

	g->more = false;
	if (g->throttled || g->source_wait || !vu_dev_ring_runnable(dev))
		return;
	for (;;) {
		uint64_t grant = 0, now = 0, wake;
		unsigned k, niov, i;
		size_t total, left;
		bool broken;
		ssize_t n;

		if (pushed >= BATCH_MAX_REQUESTS || served >= BATCH_MAX_BYTES) {
			g->more = true;
			break;
		}
		k = gather(g, &total, &broken);
		if (broken) {
			STAT_ADD(g, errors, 1);
			vu_dev_signal_error(dev);
		}
		if (k == 0)
			break;
		if (rl != NULL) {
			now = monotonic_ns();
			grant = ratelimit_take(rl, g->slot->index, total, now,
			    &wake);
			if (grant == 0) {
				/* Held, not completed short: see VIRTIO 5.4. */
				unpop(g, k);
				g->throttle_start = now;
				arm_timer(g, wake);
				DPRINTF("throttled until %llu",
				    (unsigned long long)wake);
				break;
			}
			if (grant < total) {
				k = limit_requests(g, k, (size_t)grant);
				total = (size_t)grant;
			}
		}
		g->inflight = k;
		for (i = 0, niov = 0; i < k; i++) {
			memcpy(&g->iov[niov], g->reqs[i].iov,
			    g->reqs[i].niov * sizeof(g->iov[0]));
			niov += g->reqs[i].niov;
		}
		/* Straight into guest memory: no bounce buffer. */
		n = entropy_read(g->shared->source, g->iov, niov);
		if (n <= 0) {
			g->inflight = 0;
			unpop(g, k);
			if (rl != NULL)
				ratelimit_give_back(rl, g->slot->index, grant,
				    now);
			source_failed(g, n);
			break;
		}
		if (rl != NULL && (uint64_t)n < grant)
			ratelimit_give_back(rl, g->slot->index,
			    grant - (uint64_t)n, now);
		/*
		 * The bytes landed in request order.  used.len is what really
		 * landed in each request (>= 1); requests a short read did not
		 * reach go back to the ring.
		 */
		left = (size_t)n;
		for (i = 0; i < k && left > 0; i++) {
			size_t got = left < g->reqs[i].len ? left :
			    g->reqs[i].len;

			virtq_push(&dev->vq, g->reqs[i].head, (uint32_t)got);
			g->inflight--;
			left -= got;
			pushed++;
		}
		g->inflight = 0;
		unpop(g, k - i);
		g->backoff_ns = 0;
		served += (size_t)n;
		STAT_ADD(g, bytes, (uint64_t)n);
		STAT_ADD(g, requests, i);
		/*
		 * After a short read go on: the next read says whether the
		 * source is used up (logged) or has nothing now (polled).
		 */
		if (broken)
			break;
	}
	if (pushed > 0)
		vu_dev_notify(dev);
}

static void
drain_eventfd(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

/*
 * Reads the kick eventfd empty.  One read does it for a normal eventfd;
 * one in semaphore mode loaded by a hostile front-end would stay readable
 * and spin us, so after a few reads the ring is given up instead.
 */
static void
drain_kick(struct guest *g)
{
	struct pollfd pfd = { .fd = g->dev.kick_fd, .events = POLLIN };
	uint64_t v;
	int i;

	/*
	 * Read, then look before reading again: the front-end may have made
	 * the eventfd blocking (the guard bounds that read anyway).
	 */
	for (i = 0; i < 16; i++) {
		if (ioguard_read(g->dev.kick_fd, &v, sizeof(v)) < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;		/* empty */
			break;
		}
		if (poll(&pfd, 1, 0) == 0)
			return;			/* empty */
	}
	log_guest_err("kick eventfd does not drain (%s): ring marked broken, "
	    "kicks ignored", i == 16 ? "semaphore mode?" : strerror(errno));
	close(g->dev.kick_fd);
	g->dev.kick_fd = -1;
	g->dev.vq.broken = true;
	STAT_ADD(g, errors, 1);
}

enum { PFD_SOCK, PFD_STOP, PFD_KICK, PFD_TIMER, PFD_SOURCE, PFD_COUNT };

static void
guest_loop(struct guest *g)
{
	struct pollfd pfd[PFD_COUNT];
	struct vu_msg msg;

	for (;;) {
		uint64_t bad;
		int timeout = -1, res;

		memset(pfd, 0, sizeof(pfd));
		pfd[PFD_SOCK].fd = g->dev.sock;
		pfd[PFD_SOCK].events = POLLIN;
		pfd[PFD_STOP].fd = g->slot->stop_fd;
		pfd[PFD_STOP].events = POLLIN;
		/* poll() ignores negative fds: unused slots stay quiet. */
		pfd[PFD_KICK].fd = g->dev.started ? g->dev.kick_fd : -1;
		pfd[PFD_KICK].events = POLLIN;
		pfd[PFD_TIMER].fd = g->throttled ? g->timer_fd : -1;
		pfd[PFD_TIMER].events = POLLIN;
		pfd[PFD_SOURCE].fd = g->source_wait ?
		    entropy_fd(g->shared->source) : -1;
		pfd[PFD_SOURCE].events = POLLIN;
		if (g->more)
			timeout = 0;
		else if (g->dev.kick_polling && g->dev.started &&
		    g->dev.enabled && !g->dev.vq.broken && !g->throttled &&
		    !g->source_wait)
			timeout = KICK_POLL_MS;

		if (poll(pfd, PFD_COUNT, timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			return;
		}
		if (pfd[PFD_STOP].revents)
			return;
		/* Before the message: it may replace the kick fd. */
		if (pfd[PFD_KICK].revents)
			drain_kick(g);
		if (pfd[PFD_SOCK].revents) {
			switch (vu_msg_recv_until(g->dev.sock, &msg,
			    g->slot->stop_fd, VU_MSG_TIMEOUT_MS)) {
			case VU_RECV_EOF:
				log_info("front-end disconnected");
				return;
			case VU_RECV_ERROR:
				STAT_ADD(g, errors, 1);
				log_guest_err("dropping the connection: "
				    "malformed message");
				return;
			case VU_RECV_OK:
				break;
			}
			bad = g->dev.bad_messages;
			res = vu_dev_handle(&g->dev, &msg);
			STAT_ADD(g, errors, g->dev.bad_messages - bad);
			if (res < 0) {
				log_guest_err("dropping the connection after "
				    "a failed %s", vu_request_name(
				    msg.hdr.request));
				return;
			}
			if (!g->dev.started) {
				/* Stopped (GET_VRING_BASE): forget waits. */
				g->source_wait = false;
			}
		}
		if (pfd[PFD_TIMER].revents) {
			drain_eventfd(g->timer_fd);
			if (g->throttled && g->throttle_start != 0)
				STAT_ADD(g, throttled_ns, monotonic_ns() -
				    g->throttle_start);
			g->throttled = false;
			g->throttle_start = 0;
		}
		if (pfd[PFD_SOURCE].revents)
			g->source_wait = false;
		process_ring(g);
	}
}

static void *
guest_main(void *arg)
{
	struct guest_slot *slot = arg;
	struct guest *g;
	uint64_t one = 1;

	log_set_guest((int)slot->index);
	log_set_budget(&slot->log_budget);
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		log_warn("guest state");
		close(slot->conn_fd);
		goto out;
	}
	g->slot = slot;
	g->shared = slot->shared;
	vu_dev_init(&g->dev, slot->conn_fd);
	if (ioguard_thread_init() < 0)
		log_warn("eventfd guard timer");
	g->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC |
	    TFD_NONBLOCK);
	if (g->timer_fd < 0)
		log_warn("timerfd_create");
	else {
		STAT_ADD(g, connects, 1);
		guest_loop(g);
		close(g->timer_fd);
	}
	vu_dev_cleanup(&g->dev);
	ioguard_thread_fini();
	free(g);
out:
	/* The suppressed count stays with the socket's budget (main reports
	 * it at exit): a line per connection would be a flood again. */
	log_set_budget(NULL);
	__atomic_store_n(&slot->finished, true, __ATOMIC_RELEASE);
	if (write(slot->shared->wake_main_fd, &one, sizeof(one)) < 0)
		log_warn("waking the main thread");
	return NULL;
}

int
guest_start(struct guest_slot *slot)
{
	pthread_attr_t attr;
	int err;

	slot->finished = false;
	pthread_attr_init(&attr);
	/* The thread keeps little on its stack; 256 KiB is plenty. */
	pthread_attr_setstacksize(&attr, 256 * 1024);
	err = pthread_create(&slot->thread, &attr, guest_main, slot);
	pthread_attr_destroy(&attr);
	if (err != 0) {
		errno = err;
		return -1;
	}
	slot->busy = true;
	return 0;
}
