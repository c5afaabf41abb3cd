/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest thread owns one front-end connection and its poll loop: one
 * epoll set over the front-end socket, the kick eventfd (edge-triggered),
 * the budget/back-off timer and the stop eventfd, and beside it the
 * entropy source while that had nothing.  It never sleeps anywhere else,
 * so control messages are answered while requests wait for budget or
 * entropy.  The requests themselves are served by serve.c.
 *
 * Steady state, one request in flight: epoll_wait wakes on the kick,
 * serve_ring fills and completes the request and writes the call eventfd.
 * Nothing else: the kick is never read (edge-triggered), the eventfd
 * guard's timer is already running (ioguard.h), the SIGBUS guard saves no
 * signal mask (serve.c), and the CSPRNG pool reads the source once per
 * 4 KiB.
 */
#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fdstore.h"
#include "guest.h"
#include "ioguard.h"
#include "log.h"
#include "ratelimit.h"
#include "serve.h"
#include "vu_dev.h"
#include "vu_proto.h"

/* When the ring has no kick fd (the no-fd bit), look at it this often. */
#define KICK_POLL_MS		1

/* What each fd in the epoll set is, in epoll_event.data.u64. */
enum watch_tag {
	TAG_SOCK = 1,
	TAG_STOP,
	TAG_KICK,
	TAG_TIMER,
	TAG_PARK,
};

/* Why guest_loop returned. */
enum loop_end {
	LOOP_CLOSE,		/* the connection ends */
	LOOP_PARK,		/* main asked: keep everything for later */
};

struct guest {
	struct guest_slot	*slot;
	struct vu_dev		 dev;
	int			 epoll_fd;
	int			 timer_fd;
	uint64_t		 poll_ns;	/* --poll-us, in ns */
	struct serve		*serve;		/* its own allocation */
	/* --fd-store: what is stored, and whether it is out of date. */
	struct fdstore_set	 store;
	bool			 store_dirty;
};

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
	out->health_failures = __atomic_load_n(&slot->stats.health_failures,
	    __ATOMIC_RELAXED);
}

int
guest_install_fault_handler(void)
{
	return serve_install_fault_handler();
}

static int
watch(struct guest *g, int fd, enum watch_tag tag)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = tag;
	return epoll_ctl(g->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

/*
 * Waits for the epoll set and, while serve waits for it, the entropy
 * source.  The source is not in the epoll set: it is shared by every
 * guest, and a FIFO's fd is replaced under the same number when its writer
 * goes away (entropy.c), which would silently drop a registration.  So
 * poll(2) looks at it, with the epoll fd beside it; only on this rare path.
 */
static int
wait_events(struct guest *g, struct epoll_event *ev, int nev, int timeout)
{
	struct pollfd pfd[2];

	if (!g->serve->source_wait)
		return epoll_wait(g->epoll_fd, ev, nev, timeout);
	pfd[0].fd = g->epoll_fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = entropy_fd(g->serve->source);
	pfd[1].events = POLLIN;
	pfd[0].revents = pfd[1].revents = 0;
	if (poll(pfd, 2, timeout) < 0)
		return -1;
	if (pfd[1].revents)
		serve_source_ready(g->serve);
	if (!pfd[0].revents)
		return 0;
	return epoll_wait(g->epoll_fd, ev, nev, 0);
}

/* Reads one message and handles it; false to end the connection. */
static bool
handle_message(struct guest *g)
{
	struct vu_msg msg;
	uint64_t bad;
	int res;

	switch (vu_msg_recv_until(g->dev.sock, &msg, g->slot->stop_fd,
	    VU_MSG_TIMEOUT_MS)) {
	case VU_RECV_EOF:
		log_info("front-end disconnected");
		return false;
	case VU_RECV_ERROR:
		GUEST_STAT_ADD(g->slot, errors, 1);
		log_guest_err("dropping the connection: malformed message");
		return false;
	case VU_RECV_OK:
		break;
	}
	bad = g->dev.bad_messages;
	res = vu_dev_handle(&g->dev, &msg);
	GUEST_STAT_ADD(g->slot, errors, g->dev.bad_messages - bad);
	if (res < 0) {
		log_guest_err("dropping the connection after a failed %s",
		    vu_request_name(msg.hdr.request));
		return false;
	}
	if (!g->dev.started)
		serve_ring_stopped(g->serve);	/* GET_VRING_BASE */
	return true;
}

static void
drain_timer(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
}

/* How long epoll_wait may sleep. */
static int
wait_ms(struct guest *g)
{
	struct serve *s = g->serve;

	/* More to serve, or a spin that an event interrupted goes on. */
	if (s->more || s->polling)
		return 0;
	if (g->dev.kick_polling && g->dev.started && g->dev.enabled &&
	    !g->dev.vq.broken && !s->timer_wait && !s->source_wait)
		return KICK_POLL_MS;
	return -1;
}

/*
 * One connection's handover record: statistics, the fd store's state
 * generation, the device.  guest_save (live upgrade) and the fd store
 * write the same record; guest_restore reads it.
 */
static void
save_record(const struct guest *g, uint32_t store_gen, struct handover_buf *b)
{
	struct guest_stats st;

	guest_stats_read(g->slot, &st);
	handover_put_u64(b, st.bytes);
	handover_put_u64(b, st.requests);
	handover_put_u64(b, st.throttled_ns);
	handover_put_u64(b, st.connects);
	handover_put_u64(b, st.errors);
	handover_put_u64(b, st.health_failures);
	handover_put_u32(b, store_gen);
	vu_dev_save(&g->dev, b);
}

struct fd_list {
	struct fdstore_fd	*v;
	unsigned		 n;
	unsigned		 cap;
};

static int
list_fd(const char *name, int fd, uint32_t gen, void *arg)
{
	struct fd_list *l = arg;
	struct fdstore_fd *v;

	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 16 : l->cap * 2;
		if ((v = reallocarray(l->v, l->cap, sizeof(*v))) == NULL)
			return -1;
		l->v = v;
	}
	strlcpy(l->v[l->n].name, name, sizeof(l->v[l->n].name));
	l->v[l->n].gen = gen;
	l->v[l->n++].fd = fd;
	return 0;
}

/* Whether the front-end has sent more than we read (cheap: no wait). */
static bool
more_messages(const struct guest *g)
{
	struct pollfd pfd = { .fd = g->dev.sock, .events = POLLIN };

	return poll(&pfd, 1, 0) > 0;
}

/*
 * --fd-store: after a burst of messages (not after each: QEMU sends a
 * dozen at start), the store gets the connection as it stands.
 */
static void
store_refresh(struct guest *g)
{
	struct fd_list fds = { 0 };
	struct handover_buf b;

	if (!fdstore_enabled()) {
		g->store_dirty = false;
		return;
	}
	if (more_messages(g))
		return;
	if (vu_dev_each_fd(&g->dev, list_fd, &fds) == 0 &&
	    handover_begin(&b, HANDOVER_GUEST) == 0) {
		handover_put_u32(&b, g->slot->index);
		/* It is stored as the next generation. */
		save_record(g, g->store.state_gen + 1, &b);
		if (handover_finish(&b) == 0 && fdstore_sync(&g->store,
		    g->dev.fd_prefix, fds.v, fds.n, &b) == 0)
			g->store_dirty = false;
		handover_buf_free(&b);
	}
	free(fds.v);
}

static enum loop_end
guest_loop(struct guest *g)
{
	struct serve *s = g->serve;
	struct epoll_event ev[8];
	uint64_t spin_until = 0;

	for (;;) {
		enum serve_spin_result res;
		bool message = false;
		unsigned done;
		int i, n;

		n = wait_events(g, ev, 8, wait_ms(g));
		if (n < 0) {
			/* The eventfd guard's timer signal (ioguard.h). */
			if (errno == EINTR)
				continue;
			log_warn("epoll_wait");
			return LOOP_CLOSE;
		}
		for (i = 0; i < n; i++) {
			switch (ev[i].data.u64) {
			case TAG_STOP:
				return LOOP_CLOSE;
			case TAG_PARK:
				/*
				 * Between batches (serve_ring ended each one:
				 * nothing popped is left uncompleted) and
				 * between messages (the socket may hold more,
				 * which the successor reads).
				 */
				drain_timer(g->slot->park_fd);
				return LOOP_PARK;
			case TAG_SOCK:
				message = true;
				break;
			case TAG_TIMER:
				drain_timer(g->timer_fd);
				serve_timer_fired(s);
				break;
			case TAG_KICK:
			default:
				break;	/* edge-triggered: nothing to read */
			}
		}
		if (message && !handle_message(g))
			return LOOP_CLOSE;
		if (message)
			g->store_dirty = true;
		if (g->store_dirty)
			store_refresh(g);
		/*
		 * With --poll-us, a thread that just served something spins
		 * on the ring before it sleeps again (Linux vhost's busyloop
		 * idea): the next request needs no kick and no wake-up.
		 */
		for (;;) {
			done = serve_ring(s);
			if (g->poll_ns == 0 || s->more)
				break;
			if (done > 0)
				spin_until = monotonic_ns() + g->poll_ns;
			if (spin_until == 0)
				break;
			res = serve_spin(s, spin_until, g->epoll_fd);
			if (res == SPIN_EVENT)
				break;	/* handled next round, then on */
			if (res == SPIN_TIMEOUT) {
				/*
				 * Ask for kicks again (and serve what came
				 * in between) before sleeping.
				 */
				spin_until = 0;
				(void)serve_ring(s);
				break;
			}
		}
	}
}

/* The epoll set, the timer and the serve state; false if one failed. */
static bool
guest_setup(struct guest *g)
{
	struct guest_slot *slot = g->slot;

	if (g->epoll_fd < 0)
		g->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	g->dev.watch_fd = g->epoll_fd;
	g->dev.watch_kick_tag = TAG_KICK;
	g->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC |
	    TFD_NONBLOCK);
	/* Not calloc: serve's buffers become resident only when used. */
	if (g->epoll_fd < 0 || g->timer_fd < 0 ||
	    (g->serve = malloc(sizeof(*g->serve))) == NULL) {
		log_warn("guest thread set-up");
		return false;
	}
	/* At once: guest_free() ends a serve only after its serve_init(). */
	serve_init(g->serve, &g->dev, slot, g->timer_fd);
	if (watch(g, g->dev.sock, TAG_SOCK) < 0 ||
	    watch(g, slot->stop_fd, TAG_STOP) < 0 ||
	    watch(g, slot->park_fd, TAG_PARK) < 0 ||
	    watch(g, g->timer_fd, TAG_TIMER) < 0) {
		log_warn("epoll_ctl");
		return false;
	}
	g->poll_ns = (uint64_t)slot->shared->poll_us * 1000;
	return true;
}

/* Frees g and everything it holds; the front-end sees the socket close. */
static void
guest_free(struct guest *g)
{
	/* Before the epoll fd goes: vu_dev_cleanup unwatches the kick. */
	vu_dev_cleanup(&g->dev);
	if (g->serve != NULL) {
		serve_fini(g->serve);
		free(g->serve);
	}
	if (g->timer_fd >= 0)
		close(g->timer_fd);
	if (g->epoll_fd >= 0)
		close(g->epoll_fd);
	fdstore_set_free(&g->store);
	free(g);
}

/* A guest for a new connection, or NULL (conn closed). */
static struct guest *
guest_new(struct guest_slot *slot, int conn)
{
	struct guest *g;

	if ((g = calloc(1, sizeof(*g))) == NULL) {
		log_warn("guest state");
		close(conn);
		return NULL;
	}
	g->slot = slot;
	g->epoll_fd = g->timer_fd = -1;
	vu_dev_init(&g->dev, conn);
	/* Unique for the daemon's life and across restarts: see vu_dev.h. */
	snprintf(g->dev.fd_prefix, sizeof(g->dev.fd_prefix), "vrng.%u.%llx.",
	    slot->index, (unsigned long long)monotonic_ns());
	return g;
}

static void *
guest_main(void *arg)
{
	struct guest_slot *slot = arg;
	struct guest *g = slot->parked;
	uint64_t one = 1;
	bool resumed = g != NULL;

	slot->parked = NULL;
	log_set_guest((int)slot->index);
	log_set_budget(&slot->log_budget);
	if (!resumed && (g = guest_new(slot, slot->conn_fd)) == NULL)
		goto out;
	if (ioguard_thread_init() < 0)
		log_warn("eventfd guard timer");
	if (resumed || guest_setup(g)) {
		if (!resumed)
			GUEST_STAT_ADD(slot, connects, 1);
		else
			serve_resumed(g->serve);
		if (guest_loop(g) == LOOP_PARK) {
			ioguard_thread_fini();
			slot->parked = g;
			goto out;
		}
	}
	if (fdstore_enabled())
		fdstore_forget(&g->store);
	guest_free(g);
	ioguard_thread_fini();
out:
	/* The suppressed count stays with the socket's budget (main reports
	 * it at exit): a line per connection would be a flood again. */
	log_set_budget(NULL);
	__atomic_store_n(&slot->finished, true, __ATOMIC_RELEASE);
	if (write(slot->shared->wake_main_fd, &one, sizeof(one)) < 0)
		log_warn("waking the main thread");
	return NULL;
}

static int
thread_start(struct guest_slot *slot)
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

int
guest_start(struct guest_slot *slot)
{
	slot->parked = NULL;
	return thread_start(slot);
}

int
guest_resume(struct guest_slot *slot)
{
	if (slot->parked == NULL) {
		errno = EINVAL;
		return -1;
	}
	return thread_start(slot);
}

void
guest_discard(struct guest_slot *slot)
{
	if (slot->parked != NULL)
		guest_free(slot->parked);
	slot->parked = NULL;
}

void
guest_save(const struct guest_slot *slot, struct handover_buf *b)
{
	save_record(slot->parked, slot->parked->store.state_gen, b);
}

int
guest_each_fd(const struct guest_slot *slot,
    int (*fn)(const char *name, int fd, uint32_t gen, void *arg), void *arg)
{
	return vu_dev_each_fd(&slot->parked->dev, fn, arg);
}

int
guest_restore(struct guest_slot *slot, struct handover_cursor *cur,
    struct handover_fds *fds, char *err, size_t errlen)
{
	struct guest_stats st;
	struct guest *g;
	uint32_t store_gen;
	int rc;

	st.bytes = handover_get_u64(cur);
	st.requests = handover_get_u64(cur);
	st.throttled_ns = handover_get_u64(cur);
	st.connects = handover_get_u64(cur);
	st.errors = handover_get_u64(cur);
	st.health_failures = handover_get_u64(cur);
	store_gen = handover_get_u32(cur);
	if (cur->failed) {
		snprintf(err, errlen, "state blob is malformed");
		return -1;
	}
	if ((g = guest_new(slot, -1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* The epoll set first: restoring the kick fd registers it. */
	if ((g->epoll_fd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		guest_free(g);
		return -1;
	}
	g->dev.watch_fd = g->epoll_fd;
	g->dev.watch_kick_tag = TAG_KICK;
	log_set_guest((int)slot->index);
	rc = vu_dev_restore(&g->dev, cur, fds, err, errlen);
	if (rc == 0 && !guest_setup(g)) {
		snprintf(err, errlen, "the guest thread cannot be set up "
		    "(logged)");
		rc = -1;
	}
	if (rc < 0) {
		log_set_guest(-1);
		guest_free(g);
		return -1;
	}
	log_set_guest(-1);
	slot->stats = st;
	/* The store holds this state already; the next refresh replaces it. */
	g->store.state_gen = store_gen;
	strlcpy(g->store.prefix, g->dev.fd_prefix, sizeof(g->store.prefix));
	g->store_dirty = true;
	slot->parked = g;
	return 0;
}

unsigned
guests_end(struct guest_slot *slots, unsigned n, enum guest_end how,
    unsigned ms)
{
	struct timespec deadline;
	uint64_t one = 1;
	unsigned i, left = 0;
	int fd;

	for (i = 0; i < n; i++) {
		if (!slots[i].busy)
			continue;
		fd = how == GUEST_PARK ? slots[i].park_fd : slots[i].stop_fd;
		if (write(fd, &one, sizeof(one)) < 0)
			log_warn("guest %u: asking its thread to %s", i,
			    how == GUEST_PARK ? "park" : "stop");
	}
	/* pthread_timedjoin_np() takes a CLOCK_REALTIME deadline. */
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
	deadline.tv_sec += deadline.tv_nsec / 1000000000L;
	deadline.tv_nsec %= 1000000000L;
	for (i = 0; i < n; i++) {
		if (!slots[i].busy)
			continue;
		if (pthread_timedjoin_np(slots[i].thread, NULL,
		    &deadline) != 0) {
			left++;
			continue;
		}
		slots[i].busy = false;
	}
	return left;
}
