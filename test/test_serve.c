/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The data path (serve.c), driven on the test's own thread: a struct
 * vu_dev configured by hand (a memory table of two memfd regions, one
 * split ring, eventfds for call and err), the SIGBUS and eventfd guards
 * installed, and serve_ring/serve_spin called directly.  The test plays
 * the driver by writing the rings in its own mapping of the memfds.
 *
 * Guest memory: region A (1 MiB) holds the rings and most buffers;
 * region B (64 KiB) sits elsewhere in both address spaces and is the one
 * the fault tests shrink.
 */
#include <endian.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>

#include "entropy.h"
#include "guest.h"
#include "ioguard.h"
#include "log.h"
#include "ratelimit.h"
#include "serve.h"
#include "unit.h"
#include "unit_ring.h"
#include "virtq.h"
#include "vu_dev.h"


#define A_SIZE		(1ull << 20)
#define B_SIZE		(64ull << 10)
#define GPA_A		0x40000000ull
#define GPA_B		0x80000000ull
#define UVA_A		0x7f1300000000ull
#define UVA_B		0x7f1400000000ull

#define QSZ		512
#define DESC_OFF	0x0000ull	/* 512 * 16 = 0x2000 */
#define AVAIL_OFF	0x2000ull	/* 4 + 2 * 512 + 2 */
#define USED_OFF	0x3000ull	/* 4 + 8 * 512 + 2 */
#define IND_OFF		0x8000ull
#define BUF_OFF		0x10000ull
#define BUF_SIZE	0x1000ull
/* buf(i) for i < 64 lies in A below BIG_OFF. */
#define BIG_OFF		0x80000ull	/* 512 KiB for big requests */

#define W		VRING_DESC_F_WRITE
#define N		VRING_DESC_F_NEXT
#define I		VRING_DESC_F_INDIRECT

#define MS		1000000ull

static struct vu_dev dev;
static struct serve s;
static struct unit_guest ug;
static struct unit_mem mem_a = UNIT_MEM_NONE, mem_b = UNIT_MEM_NONE;
static struct unit_ring ring;
static int timer_fd = -1, call = -1, err_fd = -1;
static struct sigaction old_bus;
static char path[] = "/tmp/vrng-serve-XXXXXX";
static bool path_made;

static struct unit_capture cap = { NULL, -1 };
static char out[16384];			/* what the capture got */

/* --- small things ---------------------------------------------------- */

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	/* The eventfd guard's timer may interrupt: sleep the rest. */
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* An eventfd's counter, read empty (0 if it was empty). */
static uint64_t
counter(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) < 0) {
		ck_assert_int_eq(errno, EAGAIN);
		return 0;
	}
	return v;
}

/* Restores stderr (unit_capture_start); returns the lines with needle. */
static unsigned
capture_end(const char *needle)
{
	unsigned n = 0;
	char *p;

	unit_capture_end(&cap, out, sizeof(out));
	for (p = out; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* --- the driver's side of the ring ----------------------------------- */

/* Host address of gpa in the test's mappings. */
static uint8_t *
host(uint64_t gpa)
{
	if (gpa >= GPA_A && gpa - GPA_A < A_SIZE)
		return mem_a.p + (gpa - GPA_A);
	ck_assert_msg(gpa >= GPA_B && gpa - GPA_B < B_SIZE, "gpa 0x%llx",
	    (unsigned long long)gpa);
	return mem_b.p + (gpa - GPA_B);
}

static uint64_t
buf(unsigned i)
{
	return GPA_A + BUF_OFF + (uint64_t)i * BUF_SIZE;
}

/* A descriptor anywhere in guest memory (an indirect table's entry). */
static void
put_desc_at(uint64_t gpa, uint64_t addr, uint32_t len, uint16_t flags,
    uint16_t next)
{
	struct vring_desc d = unit_desc(addr, len, flags, next);

	memcpy(host(gpa), &d, sizeof(d));
}

static bool
all_zero(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* --- the daemon's side ----------------------------------------------- */

/* A regular file of len bytes, byte i = pattern(i), as the source. */
static uint8_t
pattern(size_t i)
{
	return (uint8_t)(i * 131 + i / 251 + 7);
}

static void
use_file_source(size_t len)
{
	uint8_t chunk[4096];
	size_t done = 0, i;
	int fd;

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	path_made = true;
	while (done < len) {
		size_t n = len - done < sizeof(chunk) ? len - done :
		    sizeof(chunk);

		for (i = 0; i < n; i++)
			chunk[i] = pattern(done + i);
		ck_assert_int_eq(write(fd, chunk, n), (ssize_t)n);
		done += n;
	}
	close(fd);
	uguest_source(&ug, path);
}

/*
 * The ring as the vhost-user handshake leaves it: memory table, size,
 * addresses, started and enabled, call and err eventfds (the device owns
 * duplicates; the test reads the same counters).
 */
static void
begin(bool event_idx)
{
	struct vu_mem_region r[2];
	int fds[2];

	if (!ug.src_open)
		uguest_source(&ug, "/dev/urandom");
	memset(r, 0, sizeof(r));
	r[0].guest_phys_addr = GPA_A;
	r[0].memory_size = A_SIZE;
	r[0].userspace_addr = UVA_A;
	r[1].guest_phys_addr = GPA_B;
	r[1].memory_size = B_SIZE;
	r[1].userspace_addr = UVA_B;
	fds[0] = dup(mem_a.fd);
	fds[1] = dup(mem_b.fd);
	ck_assert_int_eq(memtable_set(&dev.mt, r, 2, fds, 2), 0);
	ck_assert_int_eq(virtq_set_num(&dev.vq, QSZ), 0);
	ck_assert_int_eq(virtq_set_addr(&dev.vq, UVA_A + DESC_OFF,
	    UVA_A + AVAIL_OFF, UVA_A + USED_OFF), 0);
	dev.vq.event_idx = event_idx;
	dev.started = dev.enabled = true;
	dev.call_fd = dup(call);
	dev.err_fd = dup(err_fd);
	ck_assert(vu_dev_ring_runnable(&dev));
	serve_init(&s, &dev, &ug.slot, timer_fd);
}

/* begin(false) with a rate limit of max_bytes per period. */
static void
begin_limited(uint64_t max_bytes)
{
	begin(false);
	/* One period of 60 s starting now covers the whole test. */
	uguest_ratelimit(&ug, max_bytes, 60000, monotonic_ns());
	serve_init(&s, &dev, &ug.slot, timer_fd);
}

/* Requests 0..n-1 of len bytes each, request i in buf(i % 64). */
static void
post_n(unsigned n, uint32_t len)
{
	unsigned i;

	for (i = 0; i < n; i++)
		uring_post(&ring, i, buf(i % 64), len);
}

/* What SET_VRING_KICK does to a ring: restarted, broken latch cleared. */
static void
restart_ring(void)
{
	dev.started = true;
	dev.vq.broken = false;
	dev.vq.mapped = false;
}

/*
 * begin(false), stderr captured, and a request whose head is out of range
 * (avail ring entry 0): the first pass breaks the ring.
 */
static void
begin_broken(void)
{
	begin(false);
	unit_capture_start(&cap);
	uring_post(&ring, 0, buf(0), 64);
	*uring_avail16(&ring, 2) = htole16(QSZ);
	ck_assert_uint_eq(serve_ring(&s), 0);
}

/* --- fixture --------------------------------------------------------- */

static void
setup(void)
{
	memset(&dev, 0, sizeof(dev));
	uguest_init(&ug);
	path_made = false;
	strcpy(path, "/tmp/vrng-serve-XXXXXX");

	/* A fresh log budget: other suites used this thread's (CK_FORK=no). */
	log_set_budget(&ug.slot.log_budget);
	ck_assert_int_eq(sigaction(SIGBUS, NULL, &old_bus), 0);
	ck_assert_int_eq(serve_install_fault_handler(), 0);
	ck_assert_int_eq(ioguard_install(), 0);
	ck_assert_int_eq(ioguard_thread_init(), 0);

	vu_dev_init(&dev, -1);
	unit_mem_map(&mem_a, "vrng-serve-a", A_SIZE);
	unit_mem_map(&mem_b, "vrng-serve-b", B_SIZE);
	ring = (struct unit_ring){ mem_a.p, QSZ, DESC_OFF, AVAIL_OFF,
	    USED_OFF, 0 };
	call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	err_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC |
	    TFD_NONBLOCK);
	ck_assert(call >= 0 && err_fd >= 0 && timer_fd >= 0);
}

static void
teardown(void)
{
	if (cap.saved >= 0)
		(void)capture_end("");
	serve_fini(&s);
	vu_dev_cleanup(&dev);
	ioguard_thread_fini();
	sigaction(SIGBUS, &old_bus, NULL);
	log_set_budget(NULL);
	unit_mem_unmap(&mem_a);
	unit_mem_unmap(&mem_b);
	close_fd(&call);
	close_fd(&err_fd);
	close_fd(&timer_fd);
	uguest_fini(&ug);
	if (path_made)
		unlink(path);
	path_made = false;
}

/* --- serving ----------------------------------------------------------- */

/*
 * A 64-byte request with /dev/urandom: served from the pool, one read of
 * ENTROPY_POOL_SIZE bytes; nothing written past the buffer; one call.
 */
START_TEST(pool_serves_small_request)
{
	struct guest_stats st;

	begin(false);
	ck_assert(ug.src.csprng);
	uring_post(&ring, 0, buf(0), 64);
	ck_assert_uint_eq(serve_ring(&s), 1);
	ck_assert_uint_eq(uring_used_idx(&ring), 1);
	uring_assert_used(&ring, 0, 0, 64);
	ck_assert(!all_zero(host(buf(0)), 64));	/* p = 2^-512 */
	ck_assert(all_zero(host(buf(0)) + 64, BUF_SIZE - 64));
	ck_assert_uint_eq(s.pool.len, ENTROPY_POOL_SIZE);
	ck_assert_uint_eq(s.pool.off, 64);
	ck_assert_uint_eq(counter(call), 1);
	ck_assert_uint_eq(counter(err_fd), 0);
	st = uguest_stats(&ug);
	ck_assert_uint_eq(st.bytes, 64);
	ck_assert_uint_eq(st.requests, 1);
	ck_assert_uint_eq(st.errors, 0);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 1);
	ck_assert(!s.more && !s.timer_wait && !s.source_wait);
}
END_TEST

/*
 * Every pooled byte is handed out once: two requests get different
 * bytes, and what the pool handed out is wiped from it.
 */
START_TEST(pool_bytes_never_reused)
{
	uint8_t first[64];

	begin(false);
	uring_post(&ring, 0, buf(0), 64);
	ck_assert_uint_eq(serve_ring(&s), 1);
	memcpy(first, host(buf(0)), 64);
	uring_post(&ring, 1, buf(1), 64);
	ck_assert_uint_eq(serve_ring(&s), 1);
	uring_assert_used(&ring, 1, 1, 64);
	ck_assert(memcmp(first, host(buf(1)), 64) != 0);
	ck_assert_uint_eq(s.pool.off, 128);
	ck_assert(all_zero(s.pool.buf, s.pool.off));
	/* What is still to be handed out is not zero. */
	ck_assert(!all_zero(s.pool.buf + s.pool.off, 64));
	/* No 8-byte run of the first request turns up in the second. */
	ck_assert_ptr_null(memmem(host(buf(1)), 64, first, 8));
}
END_TEST

/*
 * The pool takes gathers up to 1024 bytes; 1025 go straight into guest
 * memory (the pool is not touched).
 */
START_TEST(pool_boundary_1024_direct_1025)
{
	size_t off;

	begin(false);
	uring_post(&ring, 0, buf(0), 1024);
	ck_assert_uint_eq(serve_ring(&s), 1);
	uring_assert_used(&ring, 0, 0, 1024);
	ck_assert_uint_eq(s.pool.off, 1024);
	off = s.pool.off;
	uring_post(&ring, 1, buf(1), 1025);
	ck_assert_uint_eq(serve_ring(&s), 1);
	uring_assert_used(&ring, 1, 1, 1025);
	ck_assert(!all_zero(host(buf(1)) + 1024, 1));
	ck_assert_uint_eq(s.pool.off, off);
	/* Two of 512: one gather of 1024, from the pool again. */
	uring_post(&ring, 2, buf(2), 512);
	uring_post(&ring, 3, buf(3), 512);
	ck_assert_uint_eq(serve_ring(&s), 2);
	ck_assert_uint_eq(s.pool.off, off + 1024);
	ck_assert(all_zero(s.pool.buf, s.pool.off));
}
END_TEST

/*
 * A regular file is read straight into guest memory: a chain across both
 * regions gets the file's bytes in order, a request larger than the
 * 256 KiB cap is completed with exactly 256 KiB.
 */
START_TEST(direct_file_bytes_big_request)
{
	const size_t part[3] = { 16384, 8192, 100000 };
	const size_t chain = 16384 + 8192 + 100000;
	uint8_t *p;
	size_t i;

	use_file_source(chain + GUEST_MAX_REQUEST + 4096);
	begin(false);
	ck_assert(!ug.src.csprng);
	uring_desc(&ring, 0, GPA_A + BIG_OFF, part[0], W | N, 1);
	uring_desc(&ring, 1, GPA_B, part[1], W | N, 2);
	uring_desc(&ring, 2, GPA_A + BIG_OFF + 0x10000, part[2], W, 0);
	uring_offer(&ring, 0);
	ck_assert_uint_eq(serve_ring(&s), 1);
	uring_assert_used(&ring, 0, 0, chain);
	p = host(GPA_A + BIG_OFF);
	for (i = 0; i < part[0]; i++)
		ck_assert_uint_eq(p[i], pattern(i));
	p = host(GPA_B);
	for (i = 0; i < part[1]; i++)
		ck_assert_uint_eq(p[i], pattern(part[0] + i));
	p = host(GPA_A + BIG_OFF + 0x10000);
	for (i = 0; i < part[2]; i++)
		ck_assert_uint_eq(p[i], pattern(part[0] + part[1] + i));
	ck_assert_uint_eq(p[part[2]], 0);
	ck_assert_uint_eq(s.pool.len, 0);	/* never pooled */

	/* 256 KiB + 1: capped, the byte after the cap untouched. */
	memset(host(GPA_A + BIG_OFF), 0, GUEST_MAX_REQUEST + 4096);
	uring_post(&ring, 3, GPA_A + BIG_OFF, GUEST_MAX_REQUEST + 1);
	ck_assert_uint_eq(serve_ring(&s), 1);
	uring_assert_used(&ring, 1, 3, GUEST_MAX_REQUEST);
	p = host(GPA_A + BIG_OFF);
	for (i = 0; i < GUEST_MAX_REQUEST; i++)
		if (p[i] != pattern(chain + i))
			ck_abort_msg("byte %zu: 0x%02x, expected 0x%02x", i,
			    p[i], pattern(chain + i));
	ck_assert_uint_eq(p[GUEST_MAX_REQUEST], 0);
	ck_assert_uint_eq(uguest_stats(&ug).bytes, chain + GUEST_MAX_REQUEST);
	ck_assert_uint_eq(uguest_stats(&ug).requests, 2);
}
END_TEST

/* Four requests, one pass: one call eventfd signal for the batch. */
START_TEST(one_call_per_batch)
{
	begin(false);
	post_n(4, 64);
	ck_assert_uint_eq(serve_ring(&s), 4);
	ck_assert_uint_eq(uring_used_idx(&ring), 4);
	ck_assert_uint_eq(counter(call), 1);
	/* VRING_AVAIL_F_NO_INTERRUPT: served, not signalled. */
	*uring_avail16(&ring, 0) = htole16(VRING_AVAIL_F_NO_INTERRUPT);
	uring_post(&ring, 4, buf(4), 64);
	ck_assert_uint_eq(serve_ring(&s), 1);
	ck_assert_uint_eq(uring_used_idx(&ring), 5);
	ck_assert_uint_eq(counter(call), 0);
}
END_TEST

/*
 * EVENT_IDX: the device asks for the next kick (avail_event) when the
 * ring is empty, and signals only when used_event says so.
 */
START_TEST(event_idx_kick_and_call)
{
	begin(true);
	uring_set_used_event(&ring, 0);
	uring_post(&ring, 0, buf(0), 64);
	ck_assert_uint_eq(serve_ring(&s), 1);
	ck_assert_uint_eq(uring_avail_event(&ring), 1);
	ck_assert_uint_eq(counter(call), 1);
	/* used_event 5: the driver wants no call for entry 2. */
	uring_set_used_event(&ring, 5);
	uring_post(&ring, 1, buf(1), 64);
	ck_assert_uint_eq(serve_ring(&s), 1);
	ck_assert_uint_eq(uring_avail_event(&ring), 2);
	ck_assert_uint_eq(counter(call), 0);
}
END_TEST

/*
 * One pass serves at most 256 requests, then says there is more; the
 * rest are served by the next call.
 */
START_TEST(pass_limit_256_requests)
{
	begin(false);
	post_n(300, 1);
	ck_assert_uint_eq(serve_ring(&s), 256);
	ck_assert(s.more);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 256);
	ck_assert_uint_eq(uring_used_idx(&ring), 256);
	ck_assert_uint_eq(serve_ring(&s), 44);
	ck_assert(!s.more);
	ck_assert_uint_eq(uring_used_idx(&ring), 300);
	ck_assert_uint_eq(uguest_stats(&ug).requests, 300);
}
END_TEST

/* ... and at most 4 MiB: 16 requests of 256 KiB. */
START_TEST(pass_limit_4_mib)
{
	unsigned i;

	begin(false);
	for (i = 0; i < 17; i++)
		uring_post(&ring, i, GPA_A + BIG_OFF, GUEST_MAX_REQUEST);
	ck_assert_uint_eq(serve_ring(&s), 16);
	ck_assert(s.more);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 16);
	ck_assert_uint_eq(serve_ring(&s), 1);
	ck_assert(!s.more);
	ck_assert_uint_eq(uguest_stats(&ug).bytes, 17ull * GUEST_MAX_REQUEST);
}
END_TEST

/*
 * A used-up file: the request it cannot serve goes back to the ring (not
 * completed with 0 bytes, not an error).
 */
START_TEST(eof_request_goes_back)
{
	use_file_source(10);
	begin(false);
	post_n(2, 64);
	ck_assert_uint_eq(serve_ring(&s), 1);
	uring_assert_used(&ring, 0, 0, 10);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 1);
	ck_assert_uint_eq(serve_ring(&s), 0);
	ck_assert_uint_eq(uring_used_idx(&ring), 1);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 1);
	ck_assert(!dev.vq.broken);
	ck_assert_uint_eq(uguest_stats(&ug).errors, 0);
	ck_assert_uint_eq(counter(err_fd), 0);
}
END_TEST

/*
 * A FIFO with nothing in it: the request goes back, serve waits for the
 * source (serve_ring does nothing meanwhile) and serves once told.
 */
START_TEST(fifo_waits_for_source)
{
	int wfd = uguest_fifo(&ug, path);

	begin(false);
	uring_post(&ring, 0, buf(0), 64);
	ck_assert_uint_eq(serve_ring(&s), 0);
	ck_assert(s.source_wait);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 0);
	ck_assert_int_eq(write(wfd, "0123456789", 10), 10);
	ck_assert_uint_eq(serve_ring(&s), 0);	/* still waiting */
	serve_source_ready(&s);
	ck_assert_uint_eq(serve_ring(&s), 1);
	uring_assert_used(&ring, 0, 0, 10);
	ck_assert_mem_eq(host(buf(0)), "0123456789", 10);
	close(wfd);
}
END_TEST

/* --- rate limit ------------------------------------------------------ */

/*
 * 100 bytes per period, three requests of 64: the first gets 64, the
 * second is trimmed to the 36 left, the third stays in the ring; the
 * grant is all used.  Then the thread waits for the timer.
 */
START_TEST(grant_trims_batch)
{
	begin_limited(100);
	post_n(3, 64);
	ck_assert_uint_eq(serve_ring(&s), 2);
	uring_assert_used(&ring, 0, 0, 64);
	uring_assert_used(&ring, 1, 1, 36);
	ck_assert(all_zero(host(buf(1)) + 36, 28));
	ck_assert_uint_eq(uring_used_idx(&ring), 2);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 2);
	ck_assert_uint_eq(ug.rl.used[0], 100);
	ck_assert(s.timer_wait && s.throttled);
	/* Held while the timer is armed. */
	ck_assert_uint_eq(serve_ring(&s), 0);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 2);
	ck_assert_uint_eq(uguest_stats(&ug).bytes, 100);
	/* The timer "fires" in the same period: still nothing. */
	serve_timer_fired(&s);
	ck_assert(!s.timer_wait);
	ck_assert_uint_gt(uguest_stats(&ug).throttled_ns, 0);
	ck_assert_uint_eq(serve_ring(&s), 0);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 2);
	ck_assert_uint_eq(ug.rl.used[0], 100);
	ck_assert(s.timer_wait);
}
END_TEST

/* A grant exactly the size of the request: served whole, then held. */
START_TEST(grant_exactly_request)
{
	begin_limited(64);
	uring_post(&ring, 0, buf(0), 64);
	uring_post(&ring, 1, buf(1), 1);
	ck_assert_uint_eq(serve_ring(&s), 1);
	uring_assert_used(&ring, 0, 0, 64);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 1);
	ck_assert_uint_eq(ug.rl.used[0], 64);
	ck_assert(s.timer_wait);
}
END_TEST

/*
 * The source delivers less than the grant: what was not delivered goes
 * back to the budget, and a request the source could not serve at all
 * gives its whole grant back.
 */
START_TEST(unused_grant_goes_back)
{
	unsigned i;

	use_file_source(80);
	begin_limited(100);
	post_n(3, 64);
	ck_assert_uint_eq(serve_ring(&s), 2);
	uring_assert_used(&ring, 0, 0, 64);
	uring_assert_used(&ring, 1, 1, 16);
	for (i = 0; i < 16; i++)
		ck_assert_uint_eq(host(buf(1))[i], pattern(64 + i));
	/* 100 granted, 80 delivered; the third got 20 and gave them back. */
	ck_assert_uint_eq(ug.rl.used[0], 80);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 2);
	ck_assert_uint_eq(uring_used_idx(&ring), 2);
	ck_assert(!s.timer_wait);
	ck_assert_uint_eq(uguest_stats(&ug).bytes, 80);
}
END_TEST

/* --- broken rings and faults ----------------------------------------- */

/*
 * Issue 8 item 6: the front-end's memory file shrinks while requests are
 * popped.  Request 1 is fine; request 2 is an indirect descriptor whose
 * table lies in region B, which is gone: the SIGBUS comes inside the
 * gather.  Every popped request goes back, nothing is completed, and the
 * broken ring is reported exactly once.
 */
START_TEST(sigbus_in_gather_gives_back_all)
{
	struct guest_stats st;
	unsigned lines;

	begin(false);
	uring_post(&ring, 0, buf(0), 16);
	ck_assert_uint_eq(serve_ring(&s), 1);
	(void)counter(call);

	uring_post(&ring, 1, buf(1), 64);
	put_desc_at(GPA_B, buf(2), 64, W, 0);
	uring_desc(&ring, 2, GPA_B, 16, I, 0);
	uring_offer(&ring, 2);
	memset(host(buf(1)), 0, 64);
	ck_assert_int_eq(ftruncate(mem_b.fd, 0), 0);
	/* From here on nobody touches mem_b. */

	unit_capture_start(&cap);
	ck_assert_uint_eq(serve_ring(&s), 0);
	ck_assert_uint_eq(serve_ring(&s), 0);	/* reported once only */
	serve_report_broken(&s);
	lines = capture_end("virtqueue broken");

	ck_assert_uint_eq(dev.vq.last_avail_idx, 1);
	ck_assert_uint_eq(uring_used_idx(&ring), 1);
	ck_assert(all_zero(host(buf(1)), 64));
	ck_assert(dev.vq.broken);
	ck_assert_ptr_nonnull(dev.vq.broken_why);
	ck_assert_ptr_nonnull(strstr(dev.vq.broken_why, "vanished"));
	st = uguest_stats(&ug);
	ck_assert_uint_eq(st.errors, 1);
	ck_assert_uint_eq(st.requests, 1);
	ck_assert_uint_eq(counter(err_fd), 1);
	ck_assert_uint_eq(counter(call), 0);
	ck_assert_msg(lines == 1, "%u log lines:\n%s", lines, out);
	ck_assert(!s.more);
}
END_TEST

/*
 * The pages under a data buffer go (region B), the ring stays: a read(2)
 * straight into them fails with EFAULT (no SIGBUS).  The request goes
 * back and the ring is broken, reported once.
 */
START_TEST(efault_in_fill_gives_back)
{
	unsigned lines;

	use_file_source(4096);
	begin(false);
	uring_post(&ring, 0, GPA_B, 2048);
	ck_assert_int_eq(ftruncate(mem_b.fd, 0), 0);
	unit_capture_start(&cap);
	ck_assert_uint_eq(serve_ring(&s), 0);
	ck_assert_uint_eq(serve_ring(&s), 0);
	lines = capture_end("virtqueue broken");
	ck_assert_uint_eq(dev.vq.last_avail_idx, 0);
	ck_assert_uint_eq(uring_used_idx(&ring), 0);
	ck_assert(dev.vq.broken);
	ck_assert_ptr_nonnull(strstr(dev.vq.broken_why, "not writable"));
	ck_assert_uint_eq(uguest_stats(&ug).errors, 1);
	ck_assert_uint_eq(uguest_stats(&ug).bytes, 0);
	ck_assert_uint_eq(counter(err_fd), 1);
	ck_assert_msg(lines == 1, "%u log lines:\n%s", lines, out);
}
END_TEST

/*
 * A pooled request whose chain is [32 bytes in A, 32 bytes in B] after B
 * shrank: the copy into A lands, the copy into B faults.  The guest can
 * read the 32 bytes in A; after the front-end restores the memory and
 * restarts the ring, the request is served again and must not get those
 * same bytes a second time ("every byte is handed out once", entropy.h).
 */
START_TEST(sigbus_in_pool_copy_no_reuse)
{
	uint8_t seen[32];

	begin(false);
	uring_desc(&ring, 0, buf(0), 32, W | N, 1);
	uring_desc(&ring, 1, GPA_B, 32, W, 0);
	uring_offer(&ring, 0);
	ck_assert_int_eq(ftruncate(mem_b.fd, 0), 0);
	ck_assert_uint_eq(serve_ring(&s), 0);
	ck_assert(dev.vq.broken);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 0);
	memcpy(seen, host(buf(0)), 32);
	ck_assert(!all_zero(seen, 32));		/* the copy into A landed */

	ck_assert_int_eq(ftruncate(mem_b.fd, (off_t)B_SIZE), 0);
	restart_ring();
	ck_assert_uint_eq(serve_ring(&s), 1);
	uring_assert_used(&ring, 0, 0, 64);
	/*
	 * The bytes copied before the SIGBUS left the pool with it
	 * (entropy_read_pooled takes them before it copies; the guard
	 * drops the pool): they are not handed out again.
	 */
	ck_assert_msg(memcmp(seen, host(buf(0)), 32) != 0, "the 32 bytes "
	    "the guest already got before the fault were handed out again "
	    "after the restart");
}
END_TEST

/*
 * serve_report_broken: once per break (however often it is called), and
 * again for a new break after the front-end restarted the ring.
 */
START_TEST(report_once_per_break)
{
	unsigned lines;

	begin_broken();
	ck_assert(dev.vq.broken);
	ck_assert_uint_eq(serve_ring(&s), 0);
	serve_report_broken(&s);
	serve_report_broken(&s);
	ck_assert_uint_eq(uguest_stats(&ug).errors, 1);
	ck_assert_uint_eq(counter(err_fd), 1);

	/* Restarted; the driver fixed the entry: served. */
	restart_ring();
	*uring_avail16(&ring, 2) = htole16(0);
	ck_assert_uint_eq(serve_ring(&s), 1);
	ck_assert_uint_eq(uguest_stats(&ug).errors, 1);
	/* Broken again: a new report. */
	uring_post(&ring, 1, buf(1), 64);
	*uring_avail16(&ring, 3) = htole16(0xffff);
	ck_assert_uint_eq(serve_ring(&s), 0);
	ck_assert_uint_eq(serve_ring(&s), 0);
	lines = capture_end("virtqueue broken");
	ck_assert_uint_eq(uguest_stats(&ug).errors, 2);
	ck_assert_uint_eq(counter(err_fd), 1);
	ck_assert_msg(lines == 2, "%u log lines:\n%s", lines, out);
	ck_assert_ptr_nonnull(strstr(out, "(65535, 512)"));
}
END_TEST

/*
 * The front-end restarts a broken ring without fixing it: the first pass
 * after SET_VRING_KICK breaks it again on the same request.  That is a
 * new break (the ring ran again) and must be reported like the first.
 */
START_TEST(report_again_when_restart_breaks_at_once)
{
	unsigned lines;

	begin_broken();
	ck_assert_uint_eq(uguest_stats(&ug).errors, 1);
	restart_ring();
	ck_assert(!dev.vq.broken);
	ck_assert_uint_eq(serve_ring(&s), 0);
	ck_assert(dev.vq.broken);
	lines = capture_end("virtqueue broken");
	/*
	 * A restart that breaks again in its first serve_ring is never seen
	 * unbroken; it is a second break all the same (vq->breaks), logged,
	 * counted and signalled.
	 */
	ck_assert_msg(uguest_stats(&ug).errors == 2 && lines == 2, "a ring "
	    "restarted and broken again in its first pass was not reported "
	    "(errors %llu, log lines %u)",
	    (unsigned long long)uguest_stats(&ug).errors, lines);
	ck_assert_uint_eq(counter(err_fd), 2);
}
END_TEST

/*
 * A break found outside serve (vu_dev.c latches a semaphore-mode kick
 * with virtq_break) is reported by the next serve_ring, once.
 */
START_TEST(break_outside_serve_reported_by_serve_ring)
{
	unsigned lines;

	begin(false);
	unit_capture_start(&cap);
	virtq_break(&dev.vq, "kick eventfd does not drain (test)");
	ck_assert_uint_eq(serve_ring(&s), 0);
	ck_assert_uint_eq(serve_ring(&s), 0);
	lines = capture_end("does not drain (test)");
	ck_assert_uint_eq(lines, 1);
	ck_assert_uint_eq(uguest_stats(&ug).errors, 1);
	ck_assert_uint_eq(counter(err_fd), 1);
	/* serve_break_ring: the first reason is kept, nothing new counted. */
	serve_break_ring(&s, "another reason");
	ck_assert_str_eq(dev.vq.broken_why,
	    "kick eventfd does not drain (test)");
	ck_assert_uint_eq(uguest_stats(&ug).errors, 1);
}
END_TEST

/* --- busy polling (--poll-us) ---------------------------------------- */

struct poster {
	long		 delay_ms;
	unsigned	 id;
	uint16_t	 flags_seen;	/* used->flags when it posted */
	uint16_t	 avail_event_seen;
};

static void *
poster_main(void *arg)
{
	struct poster *p = arg;

	sleep_ms(p->delay_ms);
	p->flags_seen = uring_used_flags(&ring);
	p->avail_event_seen = uring_avail_event(&ring);
	uring_post(&ring, p->id, buf(p->id), 64);
	return NULL;
}

static int
an_epoll(void)
{
	int fd = epoll_create1(EPOLL_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	return fd;
}

/* A spin's end far enough away that only its result ends it. */
static uint64_t
in_10s(void)
{
	return monotonic_ns() + 10000 * MS;
}

/*
 * serve_spin until `until` while another thread posts request 1 after
 * 20 ms: the spin finds it.  Returns what the poster saw.
 */
static struct poster
spin_finds_post(int ep, uint64_t until)
{
	struct poster p = { .delay_ms = 20, .id = 1 };
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, poster_main, &p), 0);
	ck_assert_int_eq(serve_spin(&s, until, ep), SPIN_FOUND);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	return p;
}

/*
 * Without EVENT_IDX: a buffer posted by another thread while the device
 * spins is found (true); the driver saw VRING_USED_F_NO_NOTIFY while the
 * device polled, and serve_ring asks for kicks again (flag cleared) only
 * after a spin ran out.
 */
START_TEST(spin_finds_posted_buffer)
{
	struct poster p;
	uint64_t until;
	int ep = an_epoll();

	begin(false);
	uring_post(&ring, 0, buf(0), 64);
	ck_assert_uint_eq(serve_ring(&s), 1);
	ck_assert_uint_eq(uring_used_flags(&ring), 0);
	until = in_10s();
	p = spin_finds_post(ep, until);
	ck_assert_uint_lt(monotonic_ns(), until);
	ck_assert_uint_eq(p.flags_seen, VRING_USED_F_NO_NOTIFY);
	ck_assert(s.polling);
	ck_assert_uint_eq(serve_ring(&s), 1);
	uring_assert_used(&ring, 1, 1, 64);
	/* Still polling: no kick asked for yet. */
	ck_assert_uint_eq(uring_used_flags(&ring), VRING_USED_F_NO_NOTIFY);
	ck_assert_int_eq(serve_spin(&s, monotonic_ns() + MS, ep), SPIN_TIMEOUT);
	ck_assert(!s.polling);
	ck_assert_uint_eq(serve_ring(&s), 0);
	ck_assert_uint_eq(uring_used_flags(&ring), 0);
	close(ep);
}
END_TEST

/* Nothing posted: false once the time is up, and not before. */
START_TEST(spin_times_out)
{
	uint64_t until;
	int ep = an_epoll();

	begin(false);
	until = monotonic_ns() + 20 * MS;
	ck_assert_int_eq(serve_spin(&s, until, ep), SPIN_TIMEOUT);
	ck_assert_uint_ge(monotonic_ns(), until);
	ck_assert(!s.polling);
	/* An end in the past: one look, false. */
	ck_assert_int_eq(serve_spin(&s, 0, ep), SPIN_TIMEOUT);
	close(ep);
}
END_TEST

/* Something in the epoll set (a message, a stop): the spin ends early. */
START_TEST(spin_ends_for_epoll_event)
{
	struct epoll_event ev = { .events = EPOLLIN };
	uint64_t until;
	int ep = an_epoll(), efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);

	begin(false);
	ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev), 0);
	until = in_10s();
	ck_assert_int_eq(serve_spin(&s, until, ep), SPIN_EVENT);
	ck_assert_uint_lt(monotonic_ns(), until - 5000 * MS);
	/* The event is still there for epoll_wait: not taken. */
	ck_assert_int_eq(epoll_wait(ep, &ev, 1, 0), 1);
	close(efd);
	close(ep);
}
END_TEST

/*
 * With EVENT_IDX the device does not move avail_event while it polls, and
 * moves it again (asks for the next kick) after the spin ran out.
 */
START_TEST(spin_event_idx_leaves_avail_event)
{
	struct poster p;
	int ep = an_epoll();

	begin(true);
	uring_set_used_event(&ring, 0xffff);
	uring_post(&ring, 0, buf(0), 64);
	ck_assert_uint_eq(serve_ring(&s), 1);
	ck_assert_uint_eq(uring_avail_event(&ring), 1);
	p = spin_finds_post(ep, in_10s());
	ck_assert_uint_eq(p.avail_event_seen, 1);
	ck_assert_uint_eq(serve_ring(&s), 1);
	ck_assert_uint_eq(uring_avail_event(&ring), 1);
	/* No flag with EVENT_IDX. */
	ck_assert_uint_eq(uring_used_flags(&ring), 0);
	ck_assert_int_eq(serve_spin(&s, monotonic_ns() + MS, ep), SPIN_TIMEOUT);
	ck_assert_uint_eq(serve_ring(&s), 0);
	ck_assert_uint_eq(uring_avail_event(&ring), 2);
	close(ep);
}
END_TEST

/* A ring that cannot run, or a pending wait: no spin at all. */
START_TEST(spin_not_runnable)
{
	int ep = an_epoll();

	begin(false);
	dev.enabled = false;
	ck_assert_int_eq(serve_spin(&s, in_10s(), ep), SPIN_TIMEOUT);
	ck_assert(!s.polling);
	ck_assert_uint_eq(uring_used_flags(&ring), 0);
	dev.enabled = true;
	s.timer_wait = true;
	ck_assert_int_eq(serve_spin(&s, in_10s(), ep), SPIN_TIMEOUT);
	ck_assert_uint_eq(uring_used_flags(&ring), 0);
	close(ep);
}
END_TEST

/*
 * The rings' memory vanishes while the device spins on them: the SIGBUS
 * ends the spin, the ring is broken and reported once.
 */
START_TEST(spin_sigbus_breaks_ring)
{
	int ep = an_epoll();

	begin(false);
	ck_assert_int_eq(ftruncate(mem_a.fd, 0), 0);
	/* From here on nobody touches mem_a. */
	unit_capture_start(&cap);
	ck_assert_int_eq(serve_spin(&s, in_10s(), ep), SPIN_TIMEOUT);
	ck_assert_int_eq(serve_spin(&s, in_10s(), ep), SPIN_TIMEOUT);
	ck_assert_uint_eq(serve_ring(&s), 0);
	ck_assert_uint_eq(capture_end("virtqueue broken"), 1);
	ck_assert(dev.vq.broken);
	ck_assert(!s.polling);
	ck_assert_uint_eq(uguest_stats(&ug).errors, 1);
	ck_assert_uint_eq(counter(err_fd), 1);
	close(ep);
}
END_TEST

/*
 * The ring breaks while the device is in polling mode (notifications
 * off); the front-end takes the bad request back and restarts the ring
 * with nothing posted.  The next pass must ask for kicks again
 * (VRING_USED_F_NO_NOTIFY cleared), or the driver never kicks and the
 * guest stalls: nothing else wakes a thread whose spin has ended.
 */
START_TEST(spin_mode_ends_when_ring_breaks)
{
	int ep = an_epoll();

	begin(false);
	uring_post(&ring, 0, buf(0), 64);
	ck_assert_uint_eq(serve_ring(&s), 1);
	(void)spin_finds_post(ep, in_10s());
	ck_assert_uint_eq(uring_used_flags(&ring), VRING_USED_F_NO_NOTIFY);
	/* The request found by the spin is hostile. */
	*uring_avail16(&ring, 2 + 1) = htole16(QSZ);
	ck_assert_uint_eq(serve_ring(&s), 0);
	ck_assert(dev.vq.broken);
	/* What guest_loop does next: spin (refused), then a pass. */
	ck_assert_int_eq(serve_spin(&s, in_10s(), ep), SPIN_TIMEOUT);
	(void)serve_ring(&s);
	/* Restarted at base 1 with the bad request taken back. */
	ring.avail_idx = 1;
	__atomic_store_n(uring_avail16(&ring, 1), htole16(1), __ATOMIC_RELEASE);
	dev.vq.last_avail_idx = 1;
	restart_ring();
	ck_assert_uint_eq(serve_ring(&s), 0);
	/*
	 * serve_spin's early return (ring not runnable, timer or source
	 * wait) ends polling, so gather asks for kicks again.
	 */
	ck_assert_msg(uring_used_flags(&ring) == 0 && !s.polling, "after the "
	    "ring broke in polling mode and was restarted, kicks stay off "
	    "(used->flags 0x%x, s->polling %d)", uring_used_flags(&ring),
	    (int)s.polling);
	close(ep);
}
END_TEST

SUITE(serve, UNIT_TIMEOUT, setup, teardown,
    "serving", TESTS(pool_serves_small_request, pool_bytes_never_reused,
	pool_boundary_1024_direct_1025, direct_file_bytes_big_request,
	one_call_per_batch, event_idx_kick_and_call,
	pass_limit_256_requests, pass_limit_4_mib,
	eof_request_goes_back, fifo_waits_for_source),
    "ratelimit", TESTS(grant_trims_batch, grant_exactly_request,
	unused_grant_goes_back),
    "broken", TESTS(sigbus_in_gather_gives_back_all,
	efault_in_fill_gives_back, sigbus_in_pool_copy_no_reuse,
	report_once_per_break, report_again_when_restart_breaks_at_once,
	break_outside_serve_reported_by_serve_ring),
    "spin", TESTS(spin_finds_posted_buffer, spin_times_out,
	spin_ends_for_epoll_event, spin_event_idx_leaves_avail_event,
	spin_not_runnable, spin_sigbus_breaks_ring,
	spin_mode_ends_when_ring_breaks))
