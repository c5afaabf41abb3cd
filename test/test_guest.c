/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest thread, driven as the main thread drives it: a slot, the
 * shared state and one end of a socketpair go to guest_start.  The test
 * plays the front-end on the other end with hand-made vhost-user messages,
 * a memfd as guest memory holding a 4-entry split ring, and eventfds.
 * Every wait is a poll with a deadline; "promptly" is PROMPT_MS.
 */
#include <endian.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include "entropy.h"
#include "guest.h"
#include "sendfds.h"
#include "ratelimit.h"
#include "unit.h"
#include "unit_ring.h"
#include "virtq.h"
#include "vu_dev.h"
#include "vu_proto.h"


#define MS		1000000ull
#define PROMPT_MS	1000

/* Guest memory: gpa 0 is front-end address UVA0 and memfd offset 0. */
#define UVA0		0x7f6600000000ull
#define MEM_SIZE	(64 * 1024)
#define MEMFD_NAME	"vrng-guest-mem"
#define QSZ		4
#define DESC_OFF	0x000
#define AVAIL_OFF	0x100
#define USED_OFF	0x200
#define BUF_OFF		0x1000	/* buf(i): descriptor i's buffer */
#define BUF_SIZE	0x1000

/* The daemon side. */
static struct unit_guest ug;
static int wake_fd = -1;
static bool running;			/* started, not joined */
static struct stat conn_st;		/* the conn fd, not a reuse of it */

/* The front-end side. */
static int peer = -1;
static struct unit_mem mem = UNIT_MEM_NONE;
static struct unit_ring ring;
static int kick = -1, call = -1, err_fd = -1, kick2 = -1;

/* SIGUSR2 parks the guest thread (see stop_after_kick_replaced). */
static int park_in[2] = { -1, -1 }, park_out[2] = { -1, -1 };
static struct sigaction old_usr2;
static bool usr2_set;

/* --- small things ---------------------------------------------------- */

static uint64_t
now_ms(void)
{
	return monotonic_ns() / MS;
}

static int
an_eventfd(int flags)
{
	int fd = eventfd(0, EFD_CLOEXEC | flags);

	ck_assert_msg(fd >= 0, "eventfd: %s", strerror(errno));
	return fd;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void
set_nonblock(int fd)
{
	if (fd >= 0)
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void
signal_fd(int fd)
{
	uint64_t one = 1;

	ck_assert_int_eq(write(fd, &one, sizeof(one)), sizeof(one));
}

/* Whether fd becomes readable within ms. */
static bool
readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t end = now_ms() + (uint64_t)ms;

	for (;;) {
		uint64_t now = now_ms();
		int r = poll(&p, 1, now < end ? (int)(end - now) : 0);

		if (r > 0)
			return true;
		if (r == 0)
			return false;
		ck_assert_msg(errno == EINTR, "poll: %s", strerror(errno));
	}
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Mappings of the guest memory file in this process (test + thread). */
static int
memfd_maps(void)
{
	char line[512];
	FILE *f;
	int n = 0;

	f = fopen("/proc/self/maps", "r");
	ck_assert_msg(f != NULL, "/proc/self/maps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "memfd:" MEMFD_NAME) != NULL)
			n++;
	fclose(f);
	return n;
}

/* --- the daemon side ------------------------------------------------- */

static void
start(void)
{
	if (!ug.src_open)
		uguest_source(&ug, "/dev/urandom");
	ug.slot.finished = true;	/* guest_start must clear it */
	ck_assert_int_eq(guest_start(&ug.slot), 0);
	running = true;
	ck_assert(ug.slot.busy);
	/* The peer is open: the thread cannot have ended. */
	ck_assert(!__atomic_load_n(&ug.slot.finished, __ATOMIC_ACQUIRE));
}

/*
 * Whether the thread ended within ms, seen the way reap_guests sees it:
 * the wake-up fd, then 'finished' (acquire), then the join.
 */
static bool
ended_within(int ms)
{
	uint64_t v = 0;

	if (!readable(wake_fd, ms))
		return false;
	ck_assert_int_eq(read(wake_fd, &v, sizeof(v)), sizeof(v));
	ck_assert_uint_eq(v, 1);
	ck_assert(__atomic_load_n(&ug.slot.finished, __ATOMIC_ACQUIRE));
	ck_assert_int_eq(pthread_join(ug.slot.thread, NULL), 0);
	running = false;
	return true;
}

static void
stop_and_end(void)
{
	uint64_t t0 = now_ms();

	signal_fd(ug.slot.stop_fd);
	ck_assert_msg(ended_within(PROMPT_MS), "the thread did not stop "
	    "within %d ms", PROMPT_MS);
	ck_assert_uint_lt(now_ms() - t0, PROMPT_MS);
}

/* The thread's end of the socketpair is closed (the number may be reused). */
static bool
conn_closed(void)
{
	struct stat st;

	if (fstat(ug.slot.conn_fd, &st) < 0)
		return errno == EBADF;
	return st.st_dev != conn_st.st_dev || st.st_ino != conn_st.st_ino;
}

/* The peer sees the connection end (EOF, or a reset if data was unread). */
static bool
peer_sees_hangup(void)
{
	char c;
	ssize_t n;

	if (!readable(peer, PROMPT_MS))
		return false;
	n = recv(peer, &c, 1, MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

/*
 * The statistics of a guest that connected once and made no error;
 * returned for the test's other checks.
 */
static struct guest_stats
one_clean_connect(void)
{
	struct guest_stats st = uguest_stats(&ug);

	ck_assert_uint_eq(st.connects, 1);
	ck_assert_uint_eq(st.errors, 0);
	return st;
}

/* --- the front-end side: messages ------------------------------------ */

static void
drv_send(uint32_t request, uint32_t flags, const void *payload, uint32_t size,
    const int *fds, unsigned nfds)
{
	struct vu_header hdr = { .request = request, .flags = flags,
	    .size = size };
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)(uintptr_t)payload, .iov_len = size },
	};

	ck_assert_uint_le(nfds, VU_MAX_FDS);
	ck_assert_int_eq(send_fds(peer, iov, size ? 2 : 1, fds, nfds),
	    (ssize_t)(sizeof(hdr) + size));
}

static void
drv_none(uint32_t request)
{
	drv_send(request, VU_VERSION, NULL, 0, NULL, 0);
}

static void
drv_u64(uint32_t request, uint64_t v)
{
	drv_send(request, VU_VERSION, &v, sizeof(v), NULL, 0);
}

static void
drv_state(uint32_t request, uint32_t index, uint32_t num)
{
	struct vu_vring_state s = { .index = index, .num = num };

	drv_send(request, VU_VERSION, &s, sizeof(s), NULL, 0);
}

/* SET_VRING_KICK/CALL/ERR of ring 0 with fd. */
static void
drv_vring_fd(uint32_t request, int fd)
{
	uint64_t v = 0;

	drv_send(request, VU_VERSION, &v, sizeof(v), &fd, 1);
}

static uint64_t
drv_reply_u64(uint32_t request)
{
	struct vu_msg r;

	ck_assert_msg(readable(peer, PROMPT_MS), "no reply to %s within %d "
	    "ms", vu_request_name(request), PROMPT_MS);
	ck_assert_int_eq(vu_msg_recv(peer, &r), VU_RECV_OK);
	ck_assert_uint_eq(r.hdr.request, request);
	ck_assert_uint_eq(r.hdr.flags, VU_VERSION | VU_FLAG_REPLY);
	ck_assert_uint_eq(r.hdr.size, sizeof(uint64_t));
	ck_assert_uint_eq(r.nfds, 0);
	return r.payload.u64;
}

/* A round trip: everything sent before has been handled. */
static void
drv_sync(void)
{
	drv_none(VU_GET_FEATURES);
	ck_assert_uint_eq(drv_reply_u64(VU_GET_FEATURES), VU_OFFERED_FEATURES);
}

/*
 * Two round trips: a kick written before has been looked at too.  (One
 * poll may report the kick and the message together; the reply then goes
 * out before the ring is processed, but the next reply does not.)
 */
static void
drv_settle(void)
{
	drv_sync();
	drv_sync();
}

/* Memory table, one ring of QSZ, call/err/kick: the ring runs. */
static void
drv_bring_up(void)
{
	struct vu_mem_table t;
	struct vu_vring_addr a;

	memset(&t, 0, sizeof(t));
	t.nregions = 1;
	t.regions[0].guest_phys_addr = 0;
	t.regions[0].memory_size = MEM_SIZE;
	t.regions[0].userspace_addr = UVA0;
	t.regions[0].mmap_offset = 0;
	memset(&a, 0, sizeof(a));
	a.desc_user_addr = UVA0 + DESC_OFF;
	a.avail_user_addr = UVA0 + AVAIL_OFF;
	a.used_user_addr = UVA0 + USED_OFF;

	drv_none(VU_SET_OWNER);
	/* No protocol features: the ring is enabled from the start. */
	drv_u64(VU_SET_FEATURES, 1ull << VIRTIO_F_VERSION_1);
	drv_send(VU_SET_MEM_TABLE, VU_VERSION, &t, 8 + sizeof(t.regions[0]),
	    &mem.fd, 1);
	drv_state(VU_SET_VRING_NUM, 0, QSZ);
	drv_state(VU_SET_VRING_BASE, 0, 0);
	drv_send(VU_SET_VRING_ADDR, VU_VERSION, &a, sizeof(a), NULL, 0);
	drv_vring_fd(VU_SET_VRING_CALL, call);
	drv_vring_fd(VU_SET_VRING_ERR, err_fd);
	drv_vring_fd(VU_SET_VRING_KICK, kick);
	drv_sync();
}

/* --- the front-end side: the ring ------------------------------------ */

static uint8_t *
buf(unsigned id)
{
	return mem.p + BUF_OFF + id * BUF_SIZE;
}

/* Makes descriptor id (one writable buffer of len) available; no kick. */
static void
drv_add(unsigned id, uint32_t len)
{
	ck_assert_uint_lt(id, QSZ);
	ck_assert_uint_le(len, BUF_SIZE);
	memset(buf(id), 0, BUF_SIZE);
	uring_post(&ring, id, BUF_OFF + (uint64_t)id * BUF_SIZE, len);
}

static void
drv_kick(void)
{
	signal_fd(kick);
}

static void
drv_post(unsigned id, uint32_t len)
{
	drv_add(id, len);
	drv_kick();
}

/* The used index has reached n (modulo 2^16). */
static bool
drv_used_reached(uint16_t n)
{
	return (uint16_t)(uring_used_idx(&ring) - n) < 0x8000;
}

/* Waits for the n-th used entry, woken by the call eventfd. */
static bool
drv_wait_used(uint16_t n, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms, v;

	while (!drv_used_reached(n)) {
		uint64_t now = now_ms();

		if (now >= end || !readable(call, (int)(end - now)))
			return drv_used_reached(n);
		(void)!read(call, &v, sizeof(v));
	}
	return true;
}

/* The same without touching the call eventfd (a test holds it full). */
static bool
drv_wait_used_spin(uint16_t n, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (!drv_used_reached(n)) {
		if (now_ms() >= end)
			return false;
		sleep_ms(1);
	}
	return true;
}

/* --- fixture --------------------------------------------------------- */

static void
setup(void)
{
	int sv[2];

	uguest_init(&ug);
	running = usr2_set = false;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	ck_assert_int_eq(fstat(sv[0], &conn_st), 0);
	peer = sv[1];
	wake_fd = an_eventfd(EFD_NONBLOCK);
	ug.slot.stop_fd = an_eventfd(EFD_NONBLOCK);
	ug.slot.park_fd = an_eventfd(EFD_NONBLOCK);
	ug.slot.conn_fd = sv[0];
	ug.shared.wake_main_fd = wake_fd;

	unit_mem_map(&mem, MEMFD_NAME, MEM_SIZE);
	ring = (struct unit_ring){ mem.p, QSZ, DESC_OFF, AVAIL_OFF, USED_OFF,
	    0 };
	/* QEMU's eventfds are non-blocking; the hostile tests swap them. */
	kick = an_eventfd(EFD_NONBLOCK);
	call = an_eventfd(EFD_NONBLOCK);
	err_fd = an_eventfd(EFD_NONBLOCK);
}

static void
teardown(void)
{
	if (running) {
		struct timespec ts;
		uint64_t v = 1;

		/* Undo whatever a failed test left the thread blocked on. */
		set_nonblock(call);
		set_nonblock(err_fd);
		(void)!read(call, &v, sizeof(v));
		(void)!read(err_fd, &v, sizeof(v));
		v = 1;
		if (kick2 >= 0)
			(void)!write(kick2, &v, sizeof(v));
		if (park_in[1] >= 0)
			(void)!write(park_in[1], "", 1);
		(void)!write(ug.slot.stop_fd, &v, sizeof(v));
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		ck_assert_msg(pthread_timedjoin_np(ug.slot.thread, NULL,
		    &ts) == 0, "the guest thread is stuck");
		running = false;
	}
	if (usr2_set)
		sigaction(SIGUSR2, &old_usr2, NULL);
	usr2_set = false;
	close_fd(&park_in[0]);
	close_fd(&park_in[1]);
	close_fd(&park_out[0]);
	close_fd(&park_out[1]);
	close_fd(&peer);
	close_fd(&kick);
	close_fd(&kick2);
	close_fd(&call);
	close_fd(&err_fd);
	unit_mem_unmap(&mem);
	close_fd(&wake_fd);
	close_fd(&ug.slot.stop_fd);
	close_fd(&ug.slot.park_fd);
	uguest_fini(&ug);
}

/* --- lifecycle ------------------------------------------------------- */

/*
 * The front-end goes away: the thread ends, says so the way the main thread
 * expects, and leaves nothing behind (socket, timer, ring eventfds and the
 * guest memory mapping).
 */
START_TEST(ends_when_peer_closes)
{
	struct guest_stats st;
	int before;

	uguest_source(&ug, "/dev/urandom");
	before = unit_count_fds();
	ck_assert_int_eq(memfd_maps(), 1);
	start();
	drv_bring_up();
	ck_assert_int_eq(memfd_maps(), 2);
	drv_post(0, 32);
	ck_assert(drv_wait_used(1, PROMPT_MS));

	close_fd(&peer);
	ck_assert_msg(ended_within(PROMPT_MS), "the thread did not end when "
	    "the front-end hung up");
	ck_assert(conn_closed());
	/* The conn fd (the thread's) and the peer (closed above). */
	ck_assert_int_eq(unit_count_fds(), before - 2);
	ck_assert_int_eq(memfd_maps(), 1);
	st = one_clean_connect();
	ck_assert_uint_eq(st.requests, 1);
	ck_assert_uint_eq(st.bytes, 32);
}
END_TEST

/* A connection that never says anything is counted and ends cleanly. */
START_TEST(ends_when_silent_peer_closes)
{
	start();
	close_fd(&peer);
	ck_assert(ended_within(PROMPT_MS));
	ck_assert(conn_closed());
	ck_assert_uint_eq(one_clean_connect().bytes, 0);
}
END_TEST

/* Stopped between two handshake messages. */
START_TEST(stop_mid_handshake)
{
	start();
	drv_none(VU_SET_OWNER);
	drv_u64(VU_SET_FEATURES, 1ull << VIRTIO_F_VERSION_1);
	drv_sync();
	stop_and_end();
	ck_assert(conn_closed());
	ck_assert(peer_sees_hangup());
	(void)one_clean_connect();
}
END_TEST

/*
 * Stopped while a message stalls half-way: the thread is in the middle of
 * reading it.  main.c gives every connection a receive timeout
 * (MSG_STALL_MS, 500 ms) for this; the test sets a shorter one the same
 * way.  The stall costs an error and the connection.
 */
START_TEST(stop_mid_message)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200 * 1000 };
	struct vu_header hdr = { .request = VU_SET_VRING_NUM,
	    .flags = VU_VERSION, .size = sizeof(struct vu_vring_state) };
	uint64_t end;
	int queued = 1;

	ck_assert_int_eq(setsockopt(ug.slot.conn_fd, SOL_SOCKET, SO_RCVTIMEO,
	    &tv, sizeof(tv)), 0);
	start();
	drv_sync();
	ck_assert_int_eq(send(peer, &hdr, sizeof(hdr), MSG_NOSIGNAL),
	    sizeof(hdr));
	/* Wait until the thread has taken the header: it waits for more. */
	end = now_ms() + PROMPT_MS;
	while (ioctl(ug.slot.conn_fd, FIONREAD, &queued) == 0 && queued > 0 &&
	    now_ms() < end)
		sleep_ms(1);
	ck_assert_int_eq(queued, 0);
	stop_and_end();
	ck_assert(conn_closed());
	ck_assert_uint_eq(uguest_stats(&ug).errors, 1);
}
END_TEST

/* --- serving --------------------------------------------------------- */

START_TEST(serves_request_with_stats)
{
	struct guest_stats st;
	unsigned i, nonzero = 0;

	start();
	drv_bring_up();
	drv_post(0, 64);
	ck_assert_msg(drv_wait_used(1, PROMPT_MS), "request not served");
	uring_assert_used(&ring, 0, 0, 64);
	st = one_clean_connect();
	ck_assert_uint_eq(st.bytes, uring_used(&ring, 0).len);
	ck_assert_uint_eq(st.requests, 1);
	ck_assert_uint_eq(st.throttled_ns, 0);
	for (i = 0; i < 64; i++)
		nonzero += buf(0)[i] != 0;
	ck_assert_uint_gt(nonzero, 0);	/* 64 zero bytes: p = 2^-512 */
	/* Nothing past the buffer's length was written. */
	for (i = 64; i < BUF_SIZE; i++)
		ck_assert_uint_eq(buf(0)[i], 0);

	drv_post(1, BUF_SIZE);
	ck_assert(drv_wait_used(2, PROMPT_MS));
	uring_assert_used(&ring, 1, 1, BUF_SIZE);
	st = uguest_stats(&ug);
	ck_assert_uint_eq(st.bytes, 64 + BUF_SIZE);
	ck_assert_uint_eq(st.requests, 2);
	ck_assert_uint_eq(st.connects, 1);
}
END_TEST

/* 4 descriptors, 10 requests: the ring indexes wrap. */
START_TEST(ring_wraps)
{
	unsigned i;

	start();
	drv_bring_up();
	for (i = 0; i < 10; i++) {
		drv_post(i % QSZ, 16 + i);
		ck_assert_msg(drv_wait_used((uint16_t)(i + 1), PROMPT_MS),
		    "request %u not served", i);
		uring_assert_used(&ring, i, i % QSZ, 16 + i);
	}
	/* A full ring with one kick. */
	for (i = 0; i < QSZ; i++)
		drv_add(i, 100);
	drv_kick();
	ck_assert(drv_wait_used(10 + QSZ, PROMPT_MS));
	for (i = 0; i < QSZ; i++)
		uring_assert_used(&ring, 10 + i, i, 100);
	ck_assert_uint_eq(uguest_stats(&ug).requests, 10 + QSZ);
	ck_assert_uint_eq(uguest_stats(&ug).bytes, 10 * 16 + 45 + QSZ * 100);
}
END_TEST

/*
 * A regular file is served in order, straight into the buffers; the
 * request where it runs out is completed short, and once it is used up
 * requests wait (no completion) while control messages are answered.
 */
START_TEST(file_source_bytes)
{
	char path[] = "/tmp/vrng-guest-src-XXXXXX";
	uint8_t data[300];
	unsigned i;
	int fd;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 37 + 11);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, sizeof(data)), sizeof(data));
	close(fd);
	uguest_source(&ug, path);
	unlink(path);

	start();
	drv_bring_up();
	drv_post(0, 100);
	ck_assert(drv_wait_used(1, PROMPT_MS));
	uring_assert_used(&ring, 0, 0, 100);
	ck_assert_mem_eq(buf(0), data, 100);

	/* Three requests, 250 bytes wanted, 200 left. */
	drv_add(1, 50);
	drv_add(2, 100);
	drv_add(3, 100);
	drv_kick();
	ck_assert(drv_wait_used(4, PROMPT_MS));
	uring_assert_used(&ring, 1, 1, 50);
	uring_assert_used(&ring, 2, 2, 100);
	uring_assert_used(&ring, 3, 3, 50);
	ck_assert_mem_eq(buf(1), data + 100, 50);
	ck_assert_mem_eq(buf(2), data + 150, 100);
	ck_assert_mem_eq(buf(3), data + 250, 50);
	ck_assert_uint_eq(buf(3)[50], 0);
	ck_assert_uint_eq(uguest_stats(&ug).bytes, sizeof(data));
	ck_assert_uint_eq(uguest_stats(&ug).requests, 4);

	/* Used up: held, not completed empty. */
	drv_post(0, 10);
	drv_settle();
	ck_assert_uint_eq(uring_used_idx(&ring), 4);
	ck_assert(!drv_wait_used(5, 50));
	ck_assert_uint_eq(uguest_stats(&ug).errors, 0);
	stop_and_end();
}
END_TEST

/*
 * A FIFO with a writer but no data: the request waits for the source
 * (polled, not spun on), the thread still answers, and the bytes written
 * later land in the buffer.
 */
START_TEST(fifo_source_waits_then_serves)
{
	char dir[] = "/tmp/vrng-guest-fifo-XXXXXX";
	static const char msg[] = "twenty bytes of data";
	int wfd = uguest_fifo(&ug, dir);

	start();
	drv_bring_up();
	drv_post(0, 64);
	drv_settle();
	ck_assert_uint_eq(uring_used_idx(&ring), 0);
	ck_assert_int_eq(write(wfd, msg, 20), 20);
	ck_assert_msg(drv_wait_used(1, PROMPT_MS), "the FIFO's bytes were not "
	    "served");
	uring_assert_used(&ring, 0, 0, 20);
	ck_assert_mem_eq(buf(0), msg, 20);

	/* Waiting on the source again: a stop still ends it promptly. */
	drv_post(1, 64);
	drv_settle();
	stop_and_end();
	ck_assert_uint_eq(uring_used_idx(&ring), 1);
	close(wfd);
}
END_TEST

/* --- malformed messages ---------------------------------------------- */

static void
assert_dropped_with_error(void)
{
	ck_assert_msg(ended_within(PROMPT_MS), "the connection was not "
	    "dropped");
	ck_assert(conn_closed());
	ck_assert(peer_sees_hangup());
	ck_assert_uint_eq(uguest_stats(&ug).errors, 1);
	ck_assert_uint_eq(uguest_stats(&ug).connects, 1);
}

/* SET_VRING_NUM with a 4-byte payload: the dispatcher refuses it. */
START_TEST(malformed_size_ends)
{
	uint32_t num = QSZ;
	int before;

	uguest_source(&ug, "/dev/urandom");
	before = unit_count_fds();
	start();
	drv_bring_up();
	drv_send(VU_SET_VRING_NUM, VU_VERSION, &num, sizeof(num), NULL, 0);
	assert_dropped_with_error();
	close_fd(&peer);
	ck_assert_int_eq(unit_count_fds(), before - 2);
	ck_assert_int_eq(memfd_maps(), 1);
}
END_TEST

/* Framing: a header of protocol version 2. */
START_TEST(bad_version_ends)
{
	start();
	drv_sync();
	drv_send(VU_GET_FEATURES, 0x2, NULL, 0, NULL, 0);
	assert_dropped_with_error();
}
END_TEST

/* A request the device does not implement (SET_LOG_BASE). */
START_TEST(unsupported_request_ends)
{
	uint64_t v = 0;

	start();
	drv_send(VU_SET_LOG_BASE, VU_VERSION, &v, sizeof(v), NULL, 0);
	assert_dropped_with_error();
}
END_TEST

/* --- rate limit ------------------------------------------------------ */

/*
 * 8 bytes per 60 s (epoch now: one period covers the test).  The first
 * request gets its 8 bytes; the second is held, with no used entry, while
 * the thread keeps answering; a stop ends it at once.
 */
START_TEST(throttled_request_held)
{
	struct guest_stats st;
	uint64_t t0;

	uguest_ratelimit(&ug, 8, 60000, monotonic_ns());
	start();
	drv_bring_up();
	drv_post(0, 64);
	ck_assert(drv_wait_used(1, PROMPT_MS));
	uring_assert_used(&ring, 0, 0, 8);

	drv_post(1, 64);
	drv_settle();
	ck_assert_uint_eq(uring_used_idx(&ring), 1);
	ck_assert(!drv_wait_used(2, 50));
	t0 = now_ms();
	drv_sync();
	ck_assert_uint_lt(now_ms() - t0, PROMPT_MS);
	st = uguest_stats(&ug);
	ck_assert_uint_eq(st.bytes, 8);
	ck_assert_uint_eq(st.requests, 1);
	ck_assert_uint_eq(st.errors, 0);

	stop_and_end();
	ck_assert_uint_eq(uring_used_idx(&ring), 1);
}
END_TEST

/*
 * 8 bytes per 100 ms: the second request is served in a later period,
 * never before one starts, and the wait is counted if it was held.
 */
START_TEST(throttle_released_next_period)
{
	const uint64_t period = 100 * MS;
	uint64_t epoch = monotonic_ns(), t_before, earliest;
	struct guest_stats st;
	bool held;

	uguest_ratelimit(&ug, 8, 100, epoch);
	start();
	drv_bring_up();
	t_before = monotonic_ns();
	drv_post(0, 64);
	ck_assert(drv_wait_used(1, PROMPT_MS));
	uring_assert_used(&ring, 0, 0, 8);
	/* The first grant was taken no earlier than t_before's period. */
	earliest = epoch + ((t_before - epoch) / period + 1) * period;

	drv_post(1, 64);
	drv_settle();
	held = uring_used_idx(&ring) == 1;
	ck_assert_msg(drv_wait_used(2, 2000), "held request never served");
	ck_assert_uint_ge(monotonic_ns(), earliest);
	uring_assert_used(&ring, 1, 1, 8);
	st = uguest_stats(&ug);
	ck_assert_uint_eq(st.bytes, 16);
	ck_assert_uint_eq(st.requests, 2);
	if (held)
		ck_assert_uint_gt(st.throttled_ns, 0);
}
END_TEST

/* --- faults ---------------------------------------------------------- */

START_TEST(fault_handler_installs)
{
	struct sigaction old, cur;

	ck_assert_int_eq(sigaction(SIGBUS, NULL, &old), 0);
	ck_assert_int_eq(guest_install_fault_handler(), 0);
	ck_assert_int_eq(sigaction(SIGBUS, NULL, &cur), 0);
	ck_assert(cur.sa_flags & SA_SIGINFO);
	ck_assert((void *)cur.sa_sigaction != (void *)SIG_DFL);
	ck_assert((void *)cur.sa_sigaction != (void *)SIG_IGN);
	ck_assert_int_eq(sigaction(SIGBUS, &old, NULL), 0);
}
END_TEST

/*
 * The front-end shrinks its memory file under a running ring: the SIGBUS
 * in the guest thread marks the ring broken (error counted, err eventfd
 * signalled) and the thread goes on answering.
 */
START_TEST(shrunk_memory_breaks_ring_only)
{
	struct sigaction old;
	struct guest_stats st;
	uint64_t v;

	ck_assert_int_eq(sigaction(SIGBUS, NULL, &old), 0);
	ck_assert_int_eq(guest_install_fault_handler(), 0);
	start();
	drv_bring_up();
	drv_post(0, 16);
	ck_assert(drv_wait_used(1, PROMPT_MS));
	drv_add(1, 16);
	ck_assert_int_eq(ftruncate(mem.fd, 0), 0);
	/* From here on nobody may touch mem: its pages are gone. */
	drv_kick();
	ck_assert_msg(readable(err_fd, PROMPT_MS), "the broken ring was not "
	    "reported on the err eventfd");
	ck_assert_int_eq(read(err_fd, &v, sizeof(v)), sizeof(v));
	drv_sync();
	st = uguest_stats(&ug);
	ck_assert_uint_eq(st.errors, 1);
	ck_assert_uint_eq(st.requests, 1);
	close_fd(&peer);
	ck_assert(ended_within(PROMPT_MS));
	ck_assert_int_eq(sigaction(SIGBUS, &old, NULL), 0);
}
END_TEST

/* --- hostile eventfds ------------------------------------------------ */

/*
 * vhost-user does not say the ring eventfds are non-blocking, and a
 * front-end may pass blocking ones.  A call eventfd whose counter the
 * front-end set to the maximum makes write(2) block (eventfd(2)); the
 * thread must still stop when asked, or SIGTERM hangs the daemon in
 * stop_guests' pthread_join.
 */
START_TEST(stop_while_call_eventfd_full)
{
	uint64_t max = 0xfffffffffffffffeull, v;
	bool ended;

	close_fd(&call);
	call = an_eventfd(0);			/* blocking */
	start();
	drv_bring_up();
	ck_assert_int_eq(write(call, &max, sizeof(max)), sizeof(max));
	drv_post(0, 16);
	/* Completed: the interrupt (a write to call) comes next. */
	ck_assert(drv_wait_used_spin(1, PROMPT_MS));
	signal_fd(ug.slot.stop_fd);
	ended = ended_within(PROMPT_MS);
	if (!ended) {
		/* Let the blocked write through, then reap the thread. */
		ck_assert_int_eq(read(call, &v, sizeof(v)), sizeof(v));
		ck_assert(ended_within(PROMPT_MS));
	}
	ck_assert_msg(ended, "BUG: the guest thread ignored stop_fd for %d "
	    "ms: blocked in write(2) on a full, blocking call eventfd "
	    "(vu_dev.c eventfd_signal)", PROMPT_MS);
}
END_TEST

static void
park_here(int sig)
{
	int saved = errno;
	char c = 0;

	(void)sig;
	(void)!write(park_out[1], &c, 1);
	while (read(park_in[0], &c, 1) < 0 && errno == EINTR)
		;
	errno = saved;
}

/*
 * One poll reports a kick on the old kick fd and, on the socket,
 * SET_VRING_KICK with a new one (blocking, nothing pending).  The thread
 * handles the message first, then drains "the" kick fd: the new one, where
 * read(2) blocks until the guest kicks again.  To get both events into one
 * poll, the thread is parked in a SIGUSR2 handler while they are set up.
 */
START_TEST(stop_after_kick_replaced)
{
	struct sigaction sa;
	bool answered, ended;
	char c;

	close_fd(&kick);
	kick = an_eventfd(0);			/* blocking */
	start();
	drv_bring_up();

	ck_assert_int_eq(pipe2(park_in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(park_out, O_CLOEXEC), 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = park_here;
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGUSR2, &sa, &old_usr2), 0);
	usr2_set = true;
	ck_assert_int_eq(pthread_kill(ug.slot.thread, SIGUSR2), 0);
	ck_assert_msg(readable(park_out[0], PROMPT_MS), "thread not parked");
	ck_assert_int_eq(read(park_out[0], &c, 1), 1);

	/* Blocking, nothing pending. */
	kick2 = an_eventfd(0);
	drv_kick();
	drv_vring_fd(VU_SET_VRING_KICK, kick2);
	ck_assert_int_eq(write(park_in[1], "", 1), 1);	/* go on */

	drv_none(VU_GET_FEATURES);
	answered = readable(peer, PROMPT_MS);
	signal_fd(ug.slot.stop_fd);
	ended = ended_within(PROMPT_MS);
	if (!ended) {
		signal_fd(kick2);	/* lets the blocked read return */
		ck_assert(ended_within(PROMPT_MS));
	}
	ck_assert_msg(answered && ended, "BUG: after SET_VRING_KICK replaced "
	    "a kicked kick fd, the guest thread blocked in read(2) on the new "
	    "one (guest.c guest_loop drains g->dev.kick_fd, not the fd poll "
	    "reported): GET_FEATURES %s, stop_fd %s",
	    answered ? "answered" : "not answered",
	    ended ? "honoured" : "ignored");
}
END_TEST

SUITE(guest, UNIT_TIMEOUT, setup, teardown,
    "lifecycle", TESTS(ends_when_peer_closes,
	ends_when_silent_peer_closes, stop_mid_handshake,
	stop_mid_message),
    "serving", TESTS(serves_request_with_stats, ring_wraps,
	file_source_bytes, fifo_source_waits_then_serves),
    "malformed", TESTS(malformed_size_ends, bad_version_ends,
	unsupported_request_ends),
    "ratelimit", TESTS(throttled_request_held,
	throttle_released_next_period),
    "faults", TESTS(fault_handler_installs,
	shrunk_memory_breaks_ring_only),
    "hostile_eventfds", TESTS(stop_while_call_eventfd_full,
	stop_after_kick_replaced))
