/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: a hostile guest and a hostile front-end.
 *
 * Ring attacks must leave the daemon running, write nothing anywhere
 * (every byte of guest memory keeps its canary), break only that guest's
 * queue (no completion, err eventfd signalled) while its control channel
 * keeps answering, leave the other guest alone, and be cleared by the
 * front-end restarting the ring.
 *
 * Malformed messages end that connection (the daemon cannot trust the
 * stream any more) and nothing else: the socket takes the next front-end.
 * Bad memory tables are refused (REPLY_ACK nack) and the old table stays.
 *
 * Hostile eventfds, stalled messages, floods of errors, address-space
 * hogs and a polled ring with nothing to poll for must not make the
 * daemon spin, hang a guest thread or SIGTERM, nor flood the log.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it.h"

#define QSIZE		16

/* Writes hostile ring contents; returns data areas it wrote (holes). */
typedef unsigned (*poison_fn)(struct fe *, struct fe_buf *holes);

/* A valid writable buffer somewhere in the heap. */
static uint64_t
buf(struct fe *fe, uint32_t len)
{
	return fe_alloc(fe, len, 16);
}

static void
hostile_ring(poison_fn poison)
{
	struct fe_buf holes[8];
	struct fe_cfg cfg;
	struct vd vd;
	struct fe a, b;
	unsigned nholes;
	uint32_t base;
	uint64_t gpa;
	int64_t t0;

	IT_START(&vd, 2, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	IT_OPEN(&a, &vd, 0, &cfg);
	IT_OPEN(&b, &vd, 1, &cfg);
	IT_SERVE(&a, 64, &vd);
	IT_SERVE(&b, 64, &vd);
	fe_canary_fill(&a, a.heap_start, a.heap - a.heap_start);
	fe_drain_errs(&a);
	ck_assert_uint_eq(a.nerrs, 0);

	nholes = poison(&a, holes);
	fe_kick(&a);
	/* The daemon tells the front-end through the err eventfd. */
	ck_assert_msg(fe_wait_err(&a, 3000), "no err eventfd signal%s",
	    vd_log_text(&vd));
	ck_assert_msg(vd_log_wait(&vd, "virtqueue broken", 1, 2000),
	    "no log line%s", vd_log_text(&vd));
	ck_assert_uint_eq(fe_wait_used(&a, 1, 100), 0);
	ck_assert_uint_eq(fe_used_idx(&a), 1);

	/* The control channel still answers, promptly. */
	t0 = fe_now_ms();
	IT_OK(fe_sync(&a));
	ck_assert_int_lt(fe_now_ms() - t0, 1000);
	/* A broken queue stays broken: good buffers and kicks do nothing. */
	gpa = buf(&a, 64);
	fe_canary_fill(&a, gpa, 64);
	fe_write_desc(&a, QSIZE - 1, gpa, 64, FE_DESC_F_WRITE, 0);
	fe_publish(&a, (uint16_t)(QSIZE - 1));
	fe_kick(&a);
	IT_OK(fe_sync(&a));
	ck_assert_uint_eq(fe_wait_used(&a, 1, 100), 0);
	IT_NO_DAMAGE(&a, holes, nholes);

	/* The other guest never noticed. */
	IT_SERVE(&b, 256, &vd);
	ck_assert(vd_alive(&vd));

	/* Stop, fresh ring, start: the guest is served again. */
	IT_OK(fe_ring_stop(&a, &base));
	ck_assert_uint_eq(base, 1);
	fe_ring_reset(&a, 0);
	IT_OK(fe_ring_start(&a, 0));
	IT_SERVE(&a, 64, &vd);
	IT_SERVE(&a, 4096, &vd);
	IT_SERVE(&b, 64, &vd);
	fe_close(&a);
	fe_close(&b);
	IT_STOP(&vd);
	vd_cleanup(&vd);
}

/* Head 0 -> 1 -> 2 -> 0 ... */
static unsigned
p_loop(struct fe *fe, struct fe_buf *h)
{
	(void)h;
	fe_write_desc(fe, 0, buf(fe, 16), 16, FE_DESC_F_WRITE |
	    FE_DESC_F_NEXT, 1);
	fe_write_desc(fe, 1, buf(fe, 16), 16, FE_DESC_F_WRITE |
	    FE_DESC_F_NEXT, 2);
	fe_write_desc(fe, 2, buf(fe, 16), 16, FE_DESC_F_WRITE |
	    FE_DESC_F_NEXT, 0);
	fe_publish(fe, 0);
	return 0;
}

static unsigned
p_self_loop(struct fe *fe, struct fe_buf *h)
{
	(void)h;
	fe_write_desc(fe, 5, buf(fe, 16), 16, FE_DESC_F_WRITE |
	    FE_DESC_F_NEXT, 5);
	fe_publish(fe, 5);
	return 0;
}

static unsigned
p_next_out_of_range(struct fe *fe, struct fe_buf *h)
{
	(void)h;
	fe_write_desc(fe, 0, buf(fe, 16), 16, FE_DESC_F_WRITE |
	    FE_DESC_F_NEXT, QSIZE);
	fe_publish(fe, 0);
	return 0;
}

static unsigned
p_head_out_of_range(struct fe *fe, struct fe_buf *h)
{
	(void)h;
	fe_publish(fe, 0xffff);
	return 0;
}

static unsigned
p_avail_idx_jump(struct fe *fe, struct fe_buf *h)
{
	(void)h;
	fe_write_desc(fe, 0, buf(fe, 16), 16, FE_DESC_F_WRITE, 0);
	/* 17 new entries in a ring of 16. */
	fe_set_avail_idx(fe, (uint16_t)(fe->avail_idx + QSIZE + 1));
	return 0;
}

/* Writes an indirect table of n entries at a fresh gpa; returns it. */
static uint64_t
itable(struct fe *fe, const struct fe_desc *d, unsigned n, struct fe_buf *h)
{
	uint64_t t = fe_alloc(fe, 16ull * n, 16);

	fe_write_mem(fe, t, d, 16ull * n);
	h->gpa = t;
	h->len = 16 * n;
	return t;
}

static unsigned
p_nested_indirect(struct fe *fe, struct fe_buf *h)
{
	struct fe_desc in[1] = { { 0, 0, FE_DESC_F_WRITE, 0 } };
	struct fe_desc out[2];
	uint64_t inner;

	in[0].addr = buf(fe, 32);
	in[0].len = 32;
	inner = itable(fe, in, 1, &h[0]);
	out[0].addr = buf(fe, 32);
	out[0].len = 32;
	out[0].flags = FE_DESC_F_WRITE | FE_DESC_F_NEXT;
	out[0].next = 1;
	out[1].addr = inner;
	out[1].len = 16;
	out[1].flags = FE_DESC_F_INDIRECT;
	out[1].next = 0;
	fe_write_desc(fe, 0, itable(fe, out, 2, &h[1]), 32,
	    FE_DESC_F_INDIRECT, 0);
	fe_publish(fe, 0);
	return 2;
}

static unsigned
p_indirect_len_not_multiple(struct fe *fe, struct fe_buf *h)
{
	struct fe_desc d[2] = {
		{ 0, 64, FE_DESC_F_WRITE | FE_DESC_F_NEXT, 1 },
		{ 0, 64, FE_DESC_F_WRITE, 0 },
	};

	d[0].addr = buf(fe, 64);
	d[1].addr = buf(fe, 64);
	fe_write_desc(fe, 0, itable(fe, d, 2, h), 24, FE_DESC_F_INDIRECT, 0);
	fe_publish(fe, 0);
	return 1;
}

/* A loop inside an indirect table. */
static unsigned
p_indirect_loop(struct fe *fe, struct fe_buf *h)
{
	struct fe_desc d[2] = {
		{ 0, 64, FE_DESC_F_WRITE | FE_DESC_F_NEXT, 1 },
		{ 0, 64, FE_DESC_F_WRITE | FE_DESC_F_NEXT, 0 },
	};

	d[0].addr = buf(fe, 64);
	d[1].addr = buf(fe, 64);
	fe_write_desc(fe, 0, itable(fe, d, 2, h), 32, FE_DESC_F_INDIRECT, 0);
	fe_publish(fe, 0);
	return 1;
}

/* Not a request any driver posts: INDIRECT together with NEXT. */
static unsigned
p_indirect_with_next(struct fe *fe, struct fe_buf *h)
{
	struct fe_desc d[1] = { { 0, 64, FE_DESC_F_WRITE, 0 } };

	d[0].addr = buf(fe, 64);
	fe_write_desc(fe, 0, itable(fe, d, 1, h), 16, FE_DESC_F_INDIRECT |
	    FE_DESC_F_NEXT, 1);
	fe_write_desc(fe, 1, buf(fe, 64), 64, FE_DESC_F_WRITE, 0);
	fe_publish(fe, 0);
	return 1;
}

static unsigned
p_indirect_table_outside_memory(struct fe *fe, struct fe_buf *h)
{
	(void)h;
	fe_write_desc(fe, 0, fe->cfg.gpa + fe->cfg.mem_size + 4096, 64,
	    FE_DESC_F_INDIRECT, 0);
	fe_publish(fe, 0);
	return 0;
}

/* The first buffer is fine, the second is past the end of memory. */
static unsigned
p_addr_outside_memory(struct fe *fe, struct fe_buf *h)
{
	(void)h;
	fe_write_desc(fe, 0, buf(fe, 64), 64, FE_DESC_F_WRITE |
	    FE_DESC_F_NEXT, 1);
	fe_write_desc(fe, 1, fe->cfg.gpa + fe->cfg.mem_size, 64,
	    FE_DESC_F_WRITE, 0);
	fe_publish(fe, 0);
	return 0;
}

/* Below the guest-physical base (which is not 0 here). */
static unsigned
p_addr_below_memory(struct fe *fe, struct fe_buf *h)
{
	(void)h;
	fe_write_desc(fe, 0, fe->cfg.gpa - 64, 64, FE_DESC_F_WRITE, 0);
	fe_publish(fe, 0);
	return 0;
}

/* Starts inside guest memory, runs off its end. */
static unsigned
p_addr_runs_off_the_end(struct fe *fe, struct fe_buf *h)
{
	(void)h;
	fe_write_desc(fe, 0, fe->cfg.gpa + fe->cfg.mem_size - 16, 64,
	    FE_DESC_F_WRITE, 0);
	fe_publish(fe, 0);
	return 0;
}

static unsigned
p_addr_len_wraps(struct fe *fe, struct fe_buf *h)
{
	(void)h;
	fe_write_desc(fe, 0, UINT64_MAX - 15, 64, FE_DESC_F_WRITE, 0);
	fe_publish(fe, 0);
	return 0;
}

static unsigned
p_device_readable(struct fe *fe, struct fe_buf *h)
{
	(void)h;
	fe_write_desc(fe, 0, buf(fe, 64), 64, FE_DESC_F_WRITE |
	    FE_DESC_F_NEXT, 1);
	fe_write_desc(fe, 1, buf(fe, 64), 64, 0, 0);
	fe_publish(fe, 0);
	return 0;
}

static unsigned
p_zero_length_only(struct fe *fe, struct fe_buf *h)
{
	(void)h;
	fe_write_desc(fe, 0, buf(fe, 16), 0, FE_DESC_F_WRITE |
	    FE_DESC_F_NEXT, 1);
	fe_write_desc(fe, 1, buf(fe, 16), 0, FE_DESC_F_WRITE, 0);
	fe_publish(fe, 0);
	return 0;
}

static unsigned
p_indirect_len_zero(struct fe *fe, struct fe_buf *h)
{
	(void)h;
	fe_write_desc(fe, 0, buf(fe, 64), 0, FE_DESC_F_INDIRECT, 0);
	fe_publish(fe, 0);
	return 0;
}

#define RING_CASE(name, fn)						\
START_TEST(name)							\
{									\
	hostile_ring(fn);						\
}									\
END_TEST

RING_CASE(ring_descriptor_loop, p_loop)
RING_CASE(ring_descriptor_self_loop, p_self_loop)
RING_CASE(ring_next_out_of_range, p_next_out_of_range)
RING_CASE(ring_head_out_of_range, p_head_out_of_range)
RING_CASE(ring_avail_idx_jumps_past_queue_size, p_avail_idx_jump)
RING_CASE(ring_nested_indirect, p_nested_indirect)
RING_CASE(ring_indirect_len_not_multiple_of_16, p_indirect_len_not_multiple)
RING_CASE(ring_indirect_len_zero, p_indirect_len_zero)
RING_CASE(ring_indirect_loop, p_indirect_loop)
RING_CASE(ring_indirect_with_next, p_indirect_with_next)
RING_CASE(ring_indirect_table_outside_memory, p_indirect_table_outside_memory)
RING_CASE(ring_addr_outside_memory, p_addr_outside_memory)
RING_CASE(ring_addr_below_memory, p_addr_below_memory)
RING_CASE(ring_addr_runs_off_the_end, p_addr_runs_off_the_end)
RING_CASE(ring_addr_len_wraps, p_addr_len_wraps)
RING_CASE(ring_device_readable_descriptor, p_device_readable)
RING_CASE(ring_zero_length_only_chain, p_zero_length_only)

/*
 * VIRTIO 1.x 2.7.5.3.1: a chain, indirect ones included, is never longer
 * than the queue.  An indirect table of 2^28 entries whose first two
 * point at each other must be caught as quickly as a loop in the ring,
 * not after walking 2^28 descriptors with the guest's control channel
 * (and the daemon's shutdown) waiting for seconds.
 */
START_TEST(ring_loop_in_huge_indirect_table_caught_quickly)
{
	struct fe_desc d[2] = {
		{ 0, 16, FE_DESC_F_WRITE | FE_DESC_F_NEXT, 1 },
		{ 0, 16, FE_DESC_F_WRITE | FE_DESC_F_NEXT, 0 },
	};
	struct fe_buf h;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe a;
	int64_t t0;
	int r;

	IT_START(&vd, 1, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	IT_OPEN(&a, &vd, 0, &cfg);
	d[0].addr = buf(&a, 16);
	d[1].addr = buf(&a, 16);
	fe_write_desc(&a, 0, itable(&a, d, 2, &h), 0xfffffff0u,
	    FE_DESC_F_INDIRECT, 0);
	fe_publish(&a, 0);
	t0 = fe_now_ms();
	fe_kick(&a);
	/* Let the walk begin, then ask something. */
	fe_sleep_ms(50);
	r = fe_sync(&a);
	ck_assert_msg(r == 0 && fe_now_ms() - t0 < 1000, "GET_FEATURES %s "
	    "after %lld ms", r == 0 ? "answered" : "still not answered",
	    (long long)(fe_now_ms() - t0));
	ck_assert_msg(fe_wait_err(&a, 1000), "queue not marked broken within "
	    "1 s%s", vd_log_text(&vd));
	ck_assert_uint_eq(fe_wait_used(&a, 1, 100), 0);
	fe_close(&a);
	IT_STOP(&vd);
	vd_cleanup(&vd);
}
END_TEST

/*
 * A chain longer than the daemon gathers at once (VIRTQ_MAX_IOV) is
 * served short, and used.len says exactly which bytes were written.
 */
START_TEST(ring_long_chain_served_short_and_exact)
{
	enum { N = 100, LEN = 16 };
	struct fe_buf b[N];
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	uint64_t area;
	unsigned i, full;

	IT_START(&vd, 1, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = 128;
	IT_OPEN(&fe, &vd, 0, &cfg);
	/* Separate pieces: each one is its own iovec. */
	area = fe_alloc(&fe, 2ull * LEN * N, 16);
	for (i = 0; i < N; i++) {
		b[i].gpa = area + 2ull * LEN * i;
		b[i].len = LEN;
	}
	ck_assert(fe_post(&fe, b, N) >= 0);
	fe_kick(&fe);
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 3000), 1);
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_ge(u.len, 1);
	ck_assert_uint_le(u.len, N * LEN);
	ck_assert_uint_eq(u.len % LEN, 0);
	full = u.len / LEN;
	/* Pieces 0..full-1 written, the rest untouched. */
	IT_NO_DAMAGE(&fe, b, full);
	ck_assert_uint_lt(fe_canary_count(&fe, b[full - 1].gpa, LEN), LEN);
	IT_SERVE(&fe, 64, &vd);
	fe_close(&fe);
	IT_STOP(&vd);
	vd_cleanup(&vd);
}
END_TEST

/* ---- malformed messages -------------------------------------------- */

typedef void (*bad_msg_fn)(struct fe *);

/* Daemon fd count back at baseline once it has reaped the connection. */
static bool
fds_settle(struct vd *vd, int want, int *got)
{
	int64_t deadline = fe_now_ms() + 3000;

	for (;;) {
		*got = vd_count_fds(vd);
		if (*got == want)
			return true;
		if (fe_now_ms() > deadline)
			return false;
		fe_sleep_ms(10);
	}
}

static void
malformed(bad_msg_fn bad, bool expect_drop)
{
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe, other;
	int fds0, fds;

	IT_START(&vd, 2, NULL);
	fds0 = vd_count_fds(&vd);
	ck_assert_int_gt(fds0, 0);
	fe_cfg_init(&cfg);
	IT_OPEN(&other, &vd, 1, &cfg);
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);

	bad(&fe);
	if (expect_drop)
		ck_assert_msg(fe_peer_closed(&fe, 3000), "%s%s", fe_errstr(),
		    vd_log_text(&vd));
	fe_close(&fe);
	ck_assert(vd_alive(&vd));
	IT_SERVE(&other, 64, &vd);

	/* The same socket takes and serves the next front-end. */
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);
	fe_close(&fe);
	fe_close(&other);
	/* Nothing the bad message carried is left open in the daemon. */
	ck_assert_msg(fds_settle(&vd, fds0, &fds), "daemon has %d fds, had %d",
	    fds, fds0);
	IT_STOP(&vd);
	vd_cleanup(&vd);
}

static void
b_set_features_short(struct fe *fe)
{
	uint32_t v = 1;

	IT_OK(fe_send(fe, FE_SET_FEATURES, FE_FLAG_VERSION, &v, 4, NULL, 0));
}

static void
b_get_features_with_payload(struct fe *fe)
{
	uint64_t v = 0;

	IT_OK(fe_send(fe, FE_GET_FEATURES, FE_FLAG_VERSION, &v, 8, NULL, 0));
}

static void
b_vring_num_long(struct fe *fe)
{
	uint32_t v[3] = { 0, 256, 0 };

	IT_OK(fe_send(fe, FE_SET_VRING_NUM, FE_FLAG_VERSION, v, 12, NULL, 0));
}

static void
b_kick_two_fds(struct fe *fe)
{
	int fds[2] = { fe->kick, fe->call };
	uint64_t v = 0;

	IT_OK(fe_send(fe, FE_SET_VRING_KICK, FE_FLAG_VERSION, &v, 8, fds, 2));
}

/* The "no fd" bit, and an fd all the same. */
static void
b_call_nofd_with_fd(struct fe *fe)
{
	uint64_t v = FE_VRING_NOFD;

	IT_OK(fe_send(fe, FE_SET_VRING_CALL, FE_FLAG_VERSION, &v, 8, &fe->call,
	    1));
}

static void
b_mem_table_fd_count(struct fe *fe)
{
	struct fe_mem_table t;

	memset(&t, 0, sizeof(t));
	t.nregions = 2;
	t.regions[0].gpa = 0;
	t.regions[0].size = 4096;
	t.regions[0].uva = 0x10000000;
	t.regions[1].gpa = 0x100000;
	t.regions[1].size = 4096;
	t.regions[1].uva = 0x20000000;
	IT_OK(fe_send(fe, FE_SET_MEM_TABLE, FE_FLAG_VERSION, &t, 8 + 64,
	    &fe->reg[0].fd, 1));
}

static void
b_ring_index_1(struct fe *fe)
{
	struct fe_vring_state s = { 1, 256 };

	IT_OK(fe_send(fe, FE_SET_VRING_NUM, FE_FLAG_VERSION, &s, 8, NULL, 0));
}

static void
b_kick_ring_index_1(struct fe *fe)
{
	uint64_t v = 1;

	IT_OK(fe_send(fe, FE_SET_VRING_KICK, FE_FLAG_VERSION, &v, 8, &fe->kick,
	    1));
}

static void
b_unknown_request(struct fe *fe)
{
	IT_OK(fe_send(fe, 99, FE_FLAG_VERSION, NULL, 0, NULL, 0));
}

static void
b_payload_too_large(struct fe *fe)
{
	struct fe_hdr h = { FE_SET_FEATURES, FE_FLAG_VERSION, 5000 };

	IT_OK(fe_send_bytes(fe, &h, sizeof(h), NULL, 0));
}

static void
b_bad_version(struct fe *fe)
{
	IT_OK(fe_send(fe, FE_GET_FEATURES, 0x2, NULL, 0, NULL, 0));
}

/* A truncated header, then silence: dropped after a stall timeout. */
static void
b_truncated_header_stall(struct fe *fe)
{
	struct fe_hdr h = { FE_GET_FEATURES, FE_FLAG_VERSION, 0 };

	IT_OK(fe_send_bytes(fe, &h, 6, NULL, 0));
}

/* Header announces 8 bytes, 4 come. */
static void
b_truncated_payload_stall(struct fe *fe)
{
	struct fe_hdr h = { FE_SET_FEATURES, FE_FLAG_VERSION, 8 };
	char m[16];

	memcpy(m, &h, 12);
	memset(m + 12, 0, 4);
	IT_OK(fe_send_bytes(fe, m, 16, NULL, 0));
}

/* More fds than any message may carry: the control data is cut. */
static void
b_too_many_fds(struct fe *fe)
{
	struct fe_mem_table t;
	int fds[12], i;

	for (i = 0; i < 12; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	memset(&t, 0, sizeof(t));
	t.nregions = 1;
	t.regions[0].size = 4096;
	IT_OK(fe_send(fe, FE_SET_MEM_TABLE, FE_FLAG_VERSION, &t, 8 + 32, fds,
	    12));
	for (i = 0; i < 12; i++)
		close(fds[i]);
}

/* A truncated header and then the front-end goes away. */
static void
b_truncated_header_close(struct fe *fe)
{
	struct fe_hdr h = { FE_GET_FEATURES, FE_FLAG_VERSION, 0 };

	IT_OK(fe_send_bytes(fe, &h, 6, NULL, 0));
	fe_disconnect(fe);
}

#define MSG_CASE(name, fn, drop)					\
START_TEST(name)							\
{									\
	malformed(fn, drop);						\
}									\
END_TEST

MSG_CASE(msg_size_mismatch_set_features, b_set_features_short, true)
MSG_CASE(msg_size_mismatch_get_features, b_get_features_with_payload, true)
MSG_CASE(msg_size_mismatch_vring_state, b_vring_num_long, true)
MSG_CASE(msg_kick_with_two_fds, b_kick_two_fds, true)
MSG_CASE(msg_call_nofd_bit_with_fd, b_call_nofd_with_fd, true)
MSG_CASE(msg_mem_table_nregions_ne_nfds, b_mem_table_fd_count, true)
MSG_CASE(msg_ring_index_1, b_ring_index_1, true)
MSG_CASE(msg_kick_ring_index_1, b_kick_ring_index_1, true)
MSG_CASE(msg_unknown_request_99, b_unknown_request, true)
MSG_CASE(msg_payload_over_4096, b_payload_too_large, true)
MSG_CASE(msg_bad_version, b_bad_version, true)
MSG_CASE(msg_truncated_header_stalls, b_truncated_header_stall, true)
MSG_CASE(msg_truncated_payload_stalls, b_truncated_payload_stall, true)
MSG_CASE(msg_too_many_fds, b_too_many_fds, true)
MSG_CASE(msg_truncated_header_then_close, b_truncated_header_close, false)

/* ---- memory tables ------------------------------------------------- */

typedef int (*bad_mem_fn)(struct fe *);

/* A memfd of size bytes (the test closes it). */
static int
memfd(uint64_t size)
{
	int fd = memfd_create("vrng-it-bad", MFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/*
 * Sends one region table (SET_MEM_TABLE, each region its own memfd of
 * the given size) with need_reply; returns the ack.
 */
static int
send_table(struct fe *fe, const struct fe_mem_region *r, unsigned n,
    const uint64_t *fdsize)
{
	struct fe_mem_table t;
	int fds[8], ret;
	unsigned i;

	memset(&t, 0, sizeof(t));
	t.nregions = n;
	for (i = 0; i < n; i++) {
		t.regions[i] = r[i];
		fds[i] = memfd(fdsize[i]);
	}
	ret = fe_request(fe, FE_SET_MEM_TABLE, &t, 8 + 32 * n, fds, n, true);
	for (i = 0; i < n; i++)
		close(fds[i]);
	return ret;
}

static void
bad_memory(bad_mem_fn bad)
{
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int fds0, fds, maps0;

	IT_START(&vd, 1, NULL);
	fds0 = vd_count_fds(&vd);
	fe_cfg_init(&cfg);
	cfg.add_mem_reg = true;	/* so that ADD_MEM_REG cases can run */
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);
	maps0 = vd_count_memfd_maps(&vd);
	ck_assert_int_ge(maps0, 1);

	/* Refused with a nack; the connection and the old table stay. */
	ck_assert_int_eq(bad(&fe), 1);
	ck_assert(vd_alive(&vd));
	IT_OK(fe_sync(&fe));
	ck_assert_int_eq(vd_count_memfd_maps(&vd), maps0);
	IT_SERVE(&fe, 64, &vd);
	IT_SERVE(&fe, 4096, &vd);
	fe_close(&fe);
	ck_assert_msg(fds_settle(&vd, fds0, &fds), "daemon has %d fds, had %d",
	    fds, fds0);
	ck_assert_int_eq(vd_count_memfd_maps(&vd), 0);
	IT_STOP(&vd);
	vd_cleanup(&vd);
}

static int
m_overlap_gpa(struct fe *fe)
{
	struct fe_mem_region r[2] = {
		{ 0x100000, 0x100000, 0x7e0000000000, 0 },
		{ 0x1ff000, 0x100000, 0x7f0000000000, 0 },
	};
	uint64_t sz[2] = { 0x100000, 0x100000 };

	return send_table(fe, r, 2, sz);
}

static int
m_overlap_uva(struct fe *fe)
{
	struct fe_mem_region r[2] = {
		{ 0x100000, 0x100000, 0x7e0000000000, 0 },
		{ 0x400000, 0x100000, 0x7e00000ff000, 0 },
	};
	uint64_t sz[2] = { 0x100000, 0x100000 };

	return send_table(fe, r, 2, sz);
}

static int
m_size_zero(struct fe *fe)
{
	struct fe_mem_region r = { 0x100000, 0, 0x7e0000000000, 0 };
	uint64_t sz = 0x100000;

	return send_table(fe, &r, 1, &sz);
}

static int
m_gpa_wraps(struct fe *fe)
{
	struct fe_mem_region r = { UINT64_MAX - 0xfff, 0x2000,
	    0x7e0000000000, 0 };
	uint64_t sz = 0x2000;

	return send_table(fe, &r, 1, &sz);
}

static int
m_uva_wraps(struct fe *fe)
{
	struct fe_mem_region r = { 0x100000, 0x2000, UINT64_MAX - 0xfff, 0 };
	uint64_t sz = 0x2000;

	return send_table(fe, &r, 1, &sz);
}

static int
m_mmap_offset_huge(struct fe *fe)
{
	struct fe_mem_region r = { 0x100000, 0x100000, 0x7e0000000000,
	    1ull << 62 };
	uint64_t sz = 0x100000;

	return send_table(fe, &r, 1, &sz);
}

static int
m_mmap_offset_max(struct fe *fe)
{
	struct fe_mem_region r = { 0x100000, 0x100000, 0x7e0000000000,
	    UINT64_MAX - 0xfff };
	uint64_t sz = 0x100000;

	return send_table(fe, &r, 1, &sz);
}

/* Region 2 MiB, file 1 MiB: touching the second half would be SIGBUS. */
static int
m_memfd_too_small(struct fe *fe)
{
	struct fe_mem_region r = { 0x100000, 0x200000, 0x7e0000000000, 0 };
	uint64_t sz = 0x100000;

	return send_table(fe, &r, 1, &sz);
}

/* The file is big enough for the size but not for offset + size. */
static int
m_offset_past_file_end(struct fe *fe)
{
	struct fe_mem_region r = { 0x100000, 0x100000, 0x7e0000000000,
	    0x80000 };
	uint64_t sz = 0x100000;

	return send_table(fe, &r, 1, &sz);
}

/* nregions says 9 (more than any table holds). */
static int
m_nregions_9(struct fe *fe)
{
	struct fe_mem_table t;

	memset(&t, 0, sizeof(t));
	t.nregions = 9;
	return fe_request(fe, FE_SET_MEM_TABLE, &t, sizeof(t), NULL, 0, true);
}

static int
m_nregions_ne_nfds(struct fe *fe)
{
	struct fe_mem_table t;
	int fd = memfd(0x100000), ret;

	memset(&t, 0, sizeof(t));
	t.nregions = 2;
	t.regions[0] = (struct fe_mem_region){ 0x100000, 0x100000,
	    0x7e0000000000, 0 };
	t.regions[1] = (struct fe_mem_region){ 0x300000, 0x100000,
	    0x7f0000000000, 0 };
	ret = fe_request(fe, FE_SET_MEM_TABLE, &t, 8 + 64, &fd, 1, true);
	close(fd);
	return ret;
}

/* A region whose fd cannot be mapped at all (an eventfd). */
static int
m_fd_not_mappable(struct fe *fe)
{
	struct fe_mem_table t;
	int fd = eventfd(0, EFD_CLOEXEC), ret;

	memset(&t, 0, sizeof(t));
	t.nregions = 1;
	t.regions[0] = (struct fe_mem_region){ 0x100000, 0x100000,
	    0x7e0000000000, 0 };
	ret = fe_request(fe, FE_SET_MEM_TABLE, &t, 8 + 32, &fd, 1, true);
	close(fd);
	return ret;
}

static int
add_region(struct fe *fe, struct fe_mem_region r, uint64_t fdsize)
{
	struct fe_mem_single s;
	int fd = memfd(fdsize), ret;

	memset(&s, 0, sizeof(s));
	s.region = r;
	ret = fe_request(fe, FE_ADD_MEM_REG, &s, sizeof(s), &fd, 1, true);
	close(fd);
	return ret;
}

static int
m_add_overlapping(struct fe *fe)
{
	struct fe_mem_region r = { fe->reg[0].gpa + 0x1000, 0x100000,
	    0x7e0000000000, 0 };

	return add_region(fe, r, 0x100000);
}

static int
m_add_too_small(struct fe *fe)
{
	struct fe_mem_region r = { 0x10000000000, 0x200000, 0x7e0000000000,
	    0 };

	return add_region(fe, r, 0x100000);
}

static int
m_add_wraps(struct fe *fe)
{
	struct fe_mem_region r = { UINT64_MAX - 0xfff, 0x2000,
	    0x7e0000000000, 0 };

	return add_region(fe, r, 0x2000);
}

static int
m_remove_unknown(struct fe *fe)
{
	struct fe_mem_single s;

	memset(&s, 0, sizeof(s));
	s.region = (struct fe_mem_region){ 0x10000000000, 0x1000,
	    0x7e0000000000, 0 };
	return fe_request(fe, FE_REM_MEM_REG, &s, sizeof(s), NULL, 0, true);
}

#define MEM_CASE(name, fn)						\
START_TEST(name)							\
{									\
	bad_memory(fn);							\
}									\
END_TEST

MEM_CASE(mem_overlapping_gpa, m_overlap_gpa)
MEM_CASE(mem_overlapping_uva, m_overlap_uva)
MEM_CASE(mem_size_zero, m_size_zero)
MEM_CASE(mem_gpa_plus_size_wraps, m_gpa_wraps)
MEM_CASE(mem_uva_plus_size_wraps, m_uva_wraps)
MEM_CASE(mem_mmap_offset_huge, m_mmap_offset_huge)
MEM_CASE(mem_mmap_offset_max, m_mmap_offset_max)
MEM_CASE(mem_memfd_smaller_than_region, m_memfd_too_small)
MEM_CASE(mem_offset_plus_size_past_file_end, m_offset_past_file_end)
MEM_CASE(mem_nregions_9, m_nregions_9)
MEM_CASE(mem_nregions_ne_nfds_acked, m_nregions_ne_nfds)
MEM_CASE(mem_fd_not_mappable, m_fd_not_mappable)
MEM_CASE(mem_add_overlapping_region, m_add_overlapping)
MEM_CASE(mem_add_memfd_too_small, m_add_too_small)
MEM_CASE(mem_add_gpa_wraps, m_add_wraps)
MEM_CASE(mem_remove_unknown_region, m_remove_unknown)

/*
 * The front-end shrinks a memfd after the daemon mapped it (a memfd is not
 * sealed unless its owner seals it; the size check at SET_MEM_TABLE time
 * cannot see the future).  The daemon then touches pages that no longer
 * exist: that may cost this guest its queue or its connection, but never
 * the daemon and the other guests.
 */
START_TEST(mem_memfd_shrunk_after_mapping_does_not_kill_daemon)
{
	struct fe_cfg cfg;
	struct vd vd;
	struct fe a, b;

	IT_START(&vd, 2, NULL);
	fe_cfg_init(&cfg);
	IT_OPEN(&a, &vd, 0, &cfg);
	IT_OPEN(&b, &vd, 1, &cfg);
	IT_SERVE(&a, 64, &vd);
	IT_SERVE(&b, 64, &vd);
	/* Rings and all: from here on nobody may touch a's memory. */
	ck_assert_int_eq(ftruncate(a.reg[0].fd, 0), 0);
	fe_kick(&a);
	/* Answered (or not) once the kick was looked at. */
	(void)fe_sync(&a);
	fe_sleep_ms(300);
	ck_assert_msg(vd_alive(&vd), "the daemon died (wait status 0x%x: "
	    "%s %d)%s", vd.status, WIFSIGNALED(vd.status) ? "signal" :
	    "exit", WIFSIGNALED(vd.status) ? WTERMSIG(vd.status) :
	    WEXITSTATUS(vd.status), vd_log_text(&vd));
	IT_SERVE(&b, 64, &vd);
	fe_close(&a);
	fe_close(&b);
	IT_STOP(&vd);
	vd_cleanup(&vd);
}
END_TEST

/*
 * The same, but only the pages under a data buffer go: the daemon fills
 * buffers with readv(2), which gets EFAULT there instead of a SIGBUS.
 * Nothing is completed for that buffer; the daemon and the other guest go
 * on.
 */
START_TEST(mem_memfd_shrunk_under_buffer_survives)
{
	struct fe_cfg cfg;
	struct vd vd;
	struct fe a, b;
	uint64_t keep;

	IT_START(&vd, 2, NULL);
	fe_cfg_init(&cfg);
	IT_OPEN(&a, &vd, 0, &cfg);
	IT_OPEN(&b, &vd, 1, &cfg);
	IT_SERVE(&a, 64, &vd);
	/* Keep the rings and the first 64 KiB of the heap. */
	keep = a.heap_start + 65536 - a.reg[0].gpa;
	ck_assert_int_eq(ftruncate(a.reg[0].fd, (off_t)keep), 0);
	ck_assert(fe_post1(&a, a.reg[0].gpa + keep + 4096, 4096) >= 0);
	fe_kick(&a);
	IT_OK(fe_sync(&a));
	ck_assert_uint_eq(fe_wait_used(&a, 1, 300), 0);
	ck_assert(vd_alive(&vd));
	IT_SERVE(&b, 64, &vd);
	IT_OK(fe_sync(&a));
	fe_close(&a);
	fe_close(&b);
	IT_STOP(&vd);
	vd_cleanup(&vd);
}
END_TEST

/*
 * 20 front-ends come and go (memory tables, eventfds, half of them
 * hanging up in the middle of the handshake): the daemon ends with the
 * fds and mappings it started with.
 */
START_TEST(connect_disconnect_cycles_leak_no_fds)
{
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int fds0, fds, i;

	IT_START(&vd, 1, NULL);
	fds0 = vd_count_fds(&vd);
	ck_assert_int_gt(fds0, 2);
	for (i = 0; i < 20; i++) {
		fe_cfg_init(&cfg);
		cfg.add_mem_reg = i % 4 == 1;
		cfg.nregions = i % 2 + 1;
		cfg.start = i % 3 != 2;
		IT_OPEN(&fe, &vd, 0, &cfg);
		if (cfg.start)
			IT_SERVE(&fe, 64, &vd);
		fe_close(&fe);
	}
	ck_assert_msg(fds_settle(&vd, fds0, &fds), "daemon has %d fds after "
	    "20 connections, had %d", fds, fds0);
	ck_assert_int_eq(vd_count_memfd_maps(&vd), 0);
	IT_STOP(&vd);
	vd_cleanup(&vd);
}
END_TEST

/* ---- eventfds ------------------------------------------------------ */

/*
 * The daemon used less than a fifth of a CPU over the next second: it is
 * not spinning on an fd that stays readable.  (Spinning costs a whole CPU;
 * the margin is for the sanitizers and a busy machine.)
 */
static void
no_spin(struct vd *vd, const char *what)
{
	int64_t c0 = vd_cpu_ms(vd), t0 = fe_now_ms(), c1;

	ck_assert_int_ge(c0, 0);
	fe_sleep_ms(1000);
	c1 = vd_cpu_ms(vd);
	ck_assert_msg(c1 - c0 < 200, "%s: the daemon used %lld ms of CPU in "
	    "%lld ms%s", what, (long long)(c1 - c0),
	    (long long)(fe_now_ms() - t0), vd_log_text(vd));
}

/* GET_FEATURES is answered, within 500 ms. */
static void
answers_promptly(struct fe *fe, struct vd *vd, const char *what)
{
	int64_t t0 = fe_now_ms(), dt;
	int r;

	r = fe_sync(fe);
	dt = fe_now_ms() - t0;
	ck_assert_msg(r == 0 && dt < 500, "%s: GET_FEATURES %s after %lld ms%s",
	    what, r == 0 ? "answered" : fe_errstr(), (long long)dt,
	    vd_log_text(vd));
}

/*
 * SIGTERM: exit 0 with a clean log, within a second, and with every guest
 * thread stopped (the daemon gives up on a stuck one after a while and
 * says so; that must not be needed).
 */
static void
stops_within_1s(struct vd *vd)
{
	IT_STOP(vd);
	ck_assert_msg(vd->stop_ms < 1000, "SIGTERM took %lld ms%s",
	    (long long)vd->stop_ms, vd_log_text(vd));
	ck_assert_msg(vd_log_count(vd, "does not stop") == 0, "a guest "
	    "thread was left behind%s", vd_log_text(vd));
}

/* The call eventfd was signalled beyond before within ms. */
static bool
calls_grow(struct fe *fe, uint64_t before, int ms)
{
	int64_t deadline = fe_now_ms() + ms;

	for (;;) {
		if (fe_drain_calls(fe) > before)
			return true;
		if (fe_now_ms() >= deadline)
			return false;
		fe_sleep_ms(5);
	}
}

/* Fds a front-end might pass where an eventfd belongs: all poll readable. */
enum { NOT_EFD_FILE, NOT_EFD_HUNG_PIPE, NOT_EFD_DEV_NULL, NOT_EFD_KINDS };

static int
not_an_eventfd(const struct vd *vd, int kind, const char **what)
{
	char path[256];
	int fd, p[2];

	switch (kind) {
	case NOT_EFD_FILE:
		*what = "a regular file";
		vd_path(vd, "not-an-eventfd", path, sizeof(path));
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, "12345678", 8), 8);
		return fd;
	case NOT_EFD_HUNG_PIPE:
		*what = "a pipe whose writer is gone";
		ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
		close(p[1]);
		return p[0];
	default:
		*what = "/dev/null";
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		return fd;
	}
}

/*
 * vhost-user.rst: the kick, call and err fds are eventfds.  Anything else
 * (a file, a pipe whose writer hung up, a device) polls readable for ever
 * and would spin the guest thread: refused with a nack, the eventfds from
 * before stay in use and the connection stays.  Without REPLY_ACK the
 * front-end would not hear of it, so the daemon hangs up.
 */
START_TEST(eventfd_vring_fds_must_be_eventfds)
{
	static const struct {
		uint32_t	 req;
		const char	*name;
	} reqs[] = {
		{ FE_SET_VRING_KICK, "SET_VRING_KICK" },
		{ FE_SET_VRING_CALL, "SET_VRING_CALL" },
		{ FE_SET_VRING_ERR, "SET_VRING_ERR" },
	};
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	const char *what;
	uint64_t zero = 0, calls;
	unsigned i;
	int k, fd, r;

	IT_START(&vd, 1, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);
	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
		for (k = 0; k < NOT_EFD_KINDS; k++) {
			fd = not_an_eventfd(&vd, k, &what);
			r = fe_request(&fe, reqs[i].req, &zero, 8, &fd, 1,
			    true);
			close(fd);
			ck_assert_msg(r == 1, "%s with %s: %s%s", reqs[i].name,
			    what, r == 0 ? "accepted" : fe_errstr(),
			    vd_log_text(&vd));
		}
	answers_promptly(&fe, &vd, "after 9 refused fds");
	ck_assert_int_eq(vd_log_count(&vd, "is not an eventfd"), 9);
	no_spin(&vd, "after 9 refused fds");

	/* The kick and call eventfds from before still work... */
	calls = fe_drain_calls(&fe);
	IT_SERVE(&fe, 64, &vd);
	ck_assert_msg(calls_grow(&fe, calls, 1000), "no interrupt on the "
	    "call eventfd%s", vd_log_text(&vd));
	/* ...and so does the err eventfd. */
	fe_publish(&fe, 0xffff);
	fe_kick(&fe);
	ck_assert_msg(fe_wait_err(&fe, 3000), "no err eventfd signal%s",
	    vd_log_text(&vd));
	answers_promptly(&fe, &vd, "after the ring broke");
	fe_close(&fe);

	cfg.reply_ack = false;
	IT_OPEN(&fe, &vd, 0, &cfg);
	fd = not_an_eventfd(&vd, NOT_EFD_HUNG_PIPE, &what);
	IT_OK(fe_request(&fe, FE_SET_VRING_KICK, &zero, 8, &fd, 1, false));
	close(fd);
	ck_assert_msg(fe_peer_closed(&fe, 3000), "kick fd %s without "
	    "REPLY_ACK: %s%s", what, fe_errstr(), vd_log_text(&vd));
	fe_close(&fe);
	no_spin(&vd, "after a refused kick fd without REPLY_ACK");
	stops_within_1s(&vd);
	vd_cleanup(&vd);
}
END_TEST

/*
 * A kick eventfd in semaphore mode (EFD_SEMAPHORE) loaded with a huge count
 * reads 1 at a time and stays readable for a very long time.  The daemon
 * gives that ring up, with one log line, instead of spinning; the control
 * channel answers, and the ring restarted with a normal kick eventfd is
 * served again.
 */
START_TEST(eventfd_semaphore_kick_does_not_spin)
{
	uint64_t load = 1000000000ull;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	char path[256];
	uint32_t base;

	IT_START(&vd, 1, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	fe_init(&fe);
	IT_OK(fe_connect(&fe, vd_sock(&vd, 0, path, sizeof(path)), 3000));
	IT_OK(fe_mem_create(&fe, &cfg));
	close(fe.kick);
	fe.kick = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(fe.kick, 0);
	ck_assert_int_eq(write(fe.kick, &load, sizeof(load)), sizeof(load));
	IT_OK(fe_setup(&fe, &cfg));

	ck_assert_msg(vd_log_wait(&vd, "does not drain", 1, 3000), "no log "
	    "line about the kick eventfd%s", vd_log_text(&vd));
	no_spin(&vd, "semaphore kick eventfd");
	answers_promptly(&fe, &vd, "semaphore kick eventfd");
	ck_assert(fe_post1(&fe, fe_alloc(&fe, 64, 16), 64) >= 0);
	fe_kick(&fe);
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 300), 0);
	ck_assert_int_eq(vd_log_count(&vd, "does not drain"), 1);

	IT_OK(fe_ring_stop(&fe, &base));
	close(fe.kick);
	fe.kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(fe.kick, 0);
	fe_ring_reset(&fe, (uint16_t)base);
	IT_OK(fe_ring_start(&fe, (uint16_t)base));
	IT_SERVE(&fe, 64, &vd);
	IT_SERVE(&fe, 4096, &vd);
	ck_assert_int_eq(vd_log_count(&vd, "does not drain"), 1);
	fe_close(&fe);
	stops_within_1s(&vd);
	vd_cleanup(&vd);
}
END_TEST

/*
 * A blocking call eventfd one short of its maximum count: any write(2) to
 * it blocks (eventfd(2)).  Completions must not hang the guest thread in
 * the interrupt: GET_FEATURES is answered right after, more requests are
 * served, and SIGTERM ends the daemon promptly.
 */
START_TEST(eventfd_full_blocking_call_does_not_hang)
{
	uint64_t full = 0xfffffffffffffffeull, v = 0;
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	char path[256];
	int call;

	IT_START(&vd, 1, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	fe_init(&fe);
	IT_OK(fe_connect(&fe, vd_sock(&vd, 0, path, sizeof(path)), 3000));
	IT_OK(fe_mem_create(&fe, &cfg));
	close(fe.call);
	fe.call = eventfd(0, EFD_CLOEXEC);		/* blocking */
	ck_assert_int_ge(fe.call, 0);
	ck_assert_int_eq(write(fe.call, &full, sizeof(full)), sizeof(full));
	IT_OK(fe_setup(&fe, &cfg));
	/* Keep it away from fe_wait_used, which would read it empty. */
	call = fe.call;
	fe.call = -1;

	ck_assert(fe_post1(&fe, fe_alloc(&fe, 64, 16), 64) >= 0);
	fe_kick(&fe);
	ck_assert_msg(fe_wait_used(&fe, 1, 3000) == 1, "no completion%s",
	    vd_log_text(&vd));
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.len, 64);
	answers_promptly(&fe, &vd, "after a completion on a full call "
	    "eventfd");
	IT_SERVE(&fe, 64, &vd);
	IT_SERVE(&fe, 4096, &vd);
	answers_promptly(&fe, &vd, "after three completions");
	/* Not one interrupt got in (nor was one made up). */
	ck_assert_int_eq(fcntl(call, F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_eq(read(call, &v, sizeof(v)), sizeof(v));
	ck_assert_uint_eq(v, full);
	stops_within_1s(&vd);
	close(call);
	fe_close(&fe);
	vd_cleanup(&vd);
}
END_TEST

/* Clears O_NONBLOCK of fd's open file description. */
static void
clear_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	ck_assert_int_ge(fl, 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, fl & ~O_NONBLOCK), 0);
}

/*
 * Front-end and daemon share the eventfds' open file descriptions, so the
 * O_NONBLOCK the daemon sets on a kick or call eventfd can be cleared
 * again by the front-end (fcntl(F_SETFL) on its own fd) after the
 * handover.  That must not hang the guest thread either: not in draining
 * the kick eventfd (here), not in signalling a full call eventfd (next).
 * Once that front-end is gone, the socket must take the next one: a
 * thread blocked on an eventfd nobody else holds would never return.
 */
START_TEST(eventfd_kick_made_blocking_later_does_not_hang)
{
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;

	IT_START(&vd, 1, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);
	clear_nonblock(fe.kick);
	ck_assert(fe_post1(&fe, fe_alloc(&fe, 64, 16), 64) >= 0);
	fe_kick(&fe);
	ck_assert_msg(fe_wait_used(&fe, 1, 3000) == 1, "a kick on a kick "
	    "eventfd made blocking again was not served%s", vd_log_text(&vd));
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.len, 64);
	answers_promptly(&fe, &vd, "after a kick on a blocking kick eventfd");
	fe_close(&fe);
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);
	fe_close(&fe);
	stops_within_1s(&vd);
	vd_cleanup(&vd);
}
END_TEST

START_TEST(eventfd_call_made_blocking_later_does_not_hang)
{
	uint64_t full = 0xfffffffffffffffeull;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int call, i;

	IT_START(&vd, 1, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);
	call = fe.call;
	fe.call = -1;
	/* Full (while still non-blocking: a late interrupt may be in it). */
	for (i = 0; write(call, &full, sizeof(full)) != sizeof(full); i++) {
		ck_assert_int_lt(i, 100);
		(void)!read(call, &full, sizeof(full));
		full = 0xfffffffffffffffeull;
		fe_sleep_ms(10);
	}
	clear_nonblock(call);
	ck_assert(fe_post1(&fe, fe_alloc(&fe, 64, 16), 64) >= 0);
	fe_kick(&fe);
	ck_assert_msg(fe_wait_used(&fe, 1, 3000) == 1, "no completion%s",
	    vd_log_text(&vd));
	answers_promptly(&fe, &vd, "after a completion on a full call "
	    "eventfd made blocking again");
	close(call);
	fe_close(&fe);
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);
	fe_close(&fe);
	stops_within_1s(&vd);
	vd_cleanup(&vd);
}
END_TEST

/*
 * SET_VRING_KICK replaces a kick fd that has a kick pending, and both are
 * seen in one poll round.  The message before it is sent a byte first, so
 * that the kick and the new fd (blocking, nothing pending) pile up while
 * the guest thread waits for the rest of that message.  The daemon must
 * serve the ring, take the new fd without blocking on it, and answer.
 */
START_TEST(eventfd_kick_replaced_while_kicked)
{
	struct {
		struct fe_hdr		h;
		struct fe_vring_state	s;
	} __attribute__((packed)) en = {
		{ FE_SET_VRING_ENABLE, FE_FLAG_VERSION, 8 }, { 0, 1 } };
	enum { N = 255, LEN = 16384 };
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	uint64_t zero = 0, area;
	int kick, i;

	IT_START(&vd, 1, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = 256;
	cfg.mem_size = 16u << 20;
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_OK(fe_sync(&fe));
	/* Blocking, nothing pending. */
	kick = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(kick, 0);

	IT_OK(fe_send_bytes(&fe, &en, 1, NULL, 0));
	fe_sleep_ms(50);
	area = fe_alloc(&fe, (uint64_t)N * LEN, 16);
	for (i = 0; i < N; i++)
		ck_assert(fe_post1(&fe, area + (uint64_t)LEN * i, LEN) >= 0);
	fe_kick(&fe);
	IT_OK(fe_send_bytes(&fe, (const char *)&en + 1, sizeof(en) - 1, NULL,
	    0));
	IT_OK(fe_send(&fe, FE_SET_VRING_KICK, FE_FLAG_VERSION, &zero, 8, &kick,
	    1));
	close(fe.kick);
	fe.kick = kick;

	ck_assert_msg(fe_wait_used(&fe, N, 5000) == N, "%u of %u requests "
	    "served%s", fe_used_pending(&fe), N, vd_log_text(&vd));
	for (i = 0; i < N; i++) {
		ck_assert(fe_get_used(&fe, &u));
		ck_assert_uint_eq(u.len, LEN);
	}
	answers_promptly(&fe, &vd, "after the kick fd was replaced");
	/* Kicks now come through the new fd. */
	IT_SERVE(&fe, 64, &vd);
	fe_close(&fe);
	stops_within_1s(&vd);
	vd_cleanup(&vd);
}
END_TEST

/* ---- stalls and floods --------------------------------------------- */

/* SET_FEATURES with need_reply: 20 bytes. */
struct dripped {
	struct fe_hdr	h;
	uint64_t	features;
} __attribute__((packed));

/*
 * Sends m a byte every step_ms until the daemon hangs up.  Returns the ms
 * from the first byte to the hang-up, or -1 if the daemon took it all.
 */
static int64_t
drip(struct fe *fe, const void *m, size_t len, int step_ms)
{
	const char *p = m;
	int64_t t0 = fe_now_ms();
	size_t i;

	for (i = 0; i < len; i++)
		if (send(fe->sock, p + i, 1, MSG_NOSIGNAL) != 1 ||
		    fe_peer_closed(fe, step_ms))
			return fe_now_ms() - t0;
	return fe_peer_closed(fe, 1000) ? fe_now_ms() - t0 : -1;
}

/*
 * A message fed a byte every 100 ms: every byte comes well within any
 * per-read timeout, but the whole message must arrive within 500 ms of its
 * first byte (it would take 1.9 s).  The connection is dropped then, and
 * the socket takes the next front-end.
 */
START_TEST(stall_message_dripped_byte_by_byte_is_dropped)
{
	struct dripped m;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int64_t dt;

	IT_START(&vd, 1, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);
	m.h = (struct fe_hdr){ FE_SET_FEATURES, FE_FLAG_VERSION |
	    FE_FLAG_NEED_REPLY, 8 };
	m.features = fe.acked;
	dt = drip(&fe, &m, sizeof(m), 100);
	ck_assert_msg(dt >= 0, "the daemon waited 1.9 s for the whole "
	    "message%s", vd_log_text(&vd));
	ck_assert_msg(dt >= 450 && dt < 1500, "dropped %lld ms after the "
	    "first byte (the message has 500 ms)%s", (long long)dt,
	    vd_log_text(&vd));
	ck_assert_int_ge(vd_log_count(&vd, "dropping the connection"), 1);
	fe_close(&fe);
	ck_assert(vd_alive(&vd));
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);
	fe_close(&fe);
	stops_within_1s(&vd);
	vd_cleanup(&vd);
}
END_TEST

/*
 * SIGTERM while a front-end drips a message: the guest thread waiting for
 * the rest of it stops at once, and the daemon exits 0 within a second.
 */
START_TEST(stall_sigterm_while_dripping)
{
	struct dripped m;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int64_t t0, next, dt;
	size_t i = 1;

	IT_START(&vd, 1, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);
	m.h = (struct fe_hdr){ FE_SET_FEATURES, FE_FLAG_VERSION |
	    FE_FLAG_NEED_REPLY, 8 };
	m.features = fe.acked;
	ck_assert_int_eq(send(fe.sock, &m, 1, MSG_NOSIGNAL), 1);
	fe_sleep_ms(50);
	ck_assert_int_eq(kill(vd.pid, SIGTERM), 0);
	t0 = fe_now_ms();
	next = t0 + 50;
	while (vd_alive(&vd) && fe_now_ms() - t0 < 3000) {
		if (fe_now_ms() >= next && i < sizeof(m)) {
			(void)send(fe.sock, (const char *)&m + i++, 1,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
			next += 100;
		}
		fe_sleep_ms(2);
	}
	dt = fe_now_ms() - t0;
	ck_assert_msg(!vd_alive(&vd), "still running 3 s after SIGTERM%s",
	    vd_log_text(&vd));
	ck_assert_msg(dt < 1000, "SIGTERM took %lld ms%s", (long long)dt,
	    vd_log_text(&vd));
	/* Exit status 0, no sanitizer report, no thread left behind. */
	stops_within_1s(&vd);
	fe_close(&fe);
	vd_cleanup(&vd);
}
END_TEST

/* A daemon without -v: its log has warnings and guest errors only. */
static void
start_quiet(struct vd *vd, unsigned nsock)
{
	struct vd_opts o;

	IT_OK(vd_init(vd));
	vd_opts_init(&o);
	o.nsock = nsock;
	o.quiet = true;
	IT_OK(vd_spawn(vd, &o));
}

/* The guest error lines the daemon said it left out, summed up. */
static unsigned long
suppressed_total(const struct vd *vd)
{
	char line[1024], *p;
	unsigned long n, sum = 0;
	FILE *f;

	f = fopen(vd->log, "r");
	ck_assert_msg(f != NULL, "%s: %s", vd->log, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "guest error lines suppressed") != NULL &&
		    (p = strstr(line, "guest ")) != NULL &&
		    sscanf(p, "guest %*u: %lu", &n) == 1)
			sum += n;
	fclose(f);
	return sum;
}

/*
 * Connections for a second, each with one malformed message: each is
 * dropped, but the guest-error log budget belongs to the socket and does
 * not refill with every connection.  The log gets a few lines, and at
 * exit one count of what was left out; every error is either printed or
 * counted.  The daemon then serves a good front-end as usual.
 */
START_TEST(flood_reconnects_log_is_bounded)
{
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	char path[256];
	int64_t t0;
	unsigned n;
	int lines, printed;

	start_quiet(&vd, 1);
	vd_sock(&vd, 0, path, sizeof(path));
	t0 = fe_now_ms();
	for (n = 0; fe_now_ms() - t0 < 1000; n++) {
		fe_init(&fe);
		IT_OK(fe_connect(&fe, path, 3000));
		IT_OK(fe_send(&fe, FE_GET_FEATURES, 0x2, NULL, 0, NULL, 0));
		ck_assert_msg(fe_peer_closed(&fe, 3000), "connection %u: "
		    "%s%s", n, fe_errstr(), vd_log_text(&vd));
		fe_disconnect(&fe);
	}
	ck_assert_uint_ge(n, 100);
	lines = vd_log_count(&vd, "\n");
	ck_assert_msg(lines <= 30, "%d log lines for %u malformed "
	    "connections%s", lines, n, vd_log_text(&vd));

	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);
	IT_SERVE(&fe, 4096, &vd);
	fe_close(&fe);
	stops_within_1s(&vd);
	ck_assert_msg(vd_log_count(&vd, "guest error lines suppressed") >= 1,
	    "no count of suppressed lines at exit%s", vd_log_text(&vd));
	/* Two errors a connection: the version, then the hang-up. */
	printed = vd_log_count(&vd, "unsupported protocol version") +
	    vd_log_count(&vd, "dropping the connection");
	ck_assert_msg(printed + suppressed_total(&vd) == 2ul * n, "%u "
	    "connections: %d error lines printed, %lu suppressed%s", n,
	    printed, suppressed_total(&vd), vd_log_text(&vd));
	vd_cleanup(&vd);
}
END_TEST

/*
 * SET_MEM_TABLE with a region whose fd cannot be mapped (a pipe), 300
 * times with REPLY_ACK: 300 nacks, the connection and the old table stay,
 * no fd is kept, and the log gets a few lines, not 300.
 */
START_TEST(flood_failing_mem_tables_log_is_bounded)
{
	struct fe_mem_table t;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int fds0, lines0, lines, p[2], r, i, printed;

	start_quiet(&vd, 1);
	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);
	fds0 = vd_count_fds(&vd);
	ck_assert_int_gt(fds0, 0);
	lines0 = vd_log_count(&vd, "\n");

	memset(&t, 0, sizeof(t));
	t.nregions = 1;
	t.regions[0] = (struct fe_mem_region){ 0x100000, 0x100000,
	    0x7e0000000000, 0 };
	for (i = 0; i < 300; i++) {
		ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
		r = fe_request(&fe, FE_SET_MEM_TABLE, &t, 8 + 32, &p[0], 1,
		    true);
		close(p[0]);
		close(p[1]);
		ck_assert_msg(r == 1, "table %d with a pipe: %s%s", i,
		    r == 0 ? "accepted" : fe_errstr(), vd_log_text(&vd));
	}
	answers_promptly(&fe, &vd, "after 300 failed tables");
	ck_assert_int_eq(vd_count_fds(&vd), fds0);
	lines = vd_log_count(&vd, "\n") - lines0;
	ck_assert_msg(lines <= 12, "%d log lines for 300 failed tables%s",
	    lines, vd_log_text(&vd));
	IT_SERVE(&fe, 64, &vd);
	IT_SERVE(&fe, 4096, &vd);
	fe_close(&fe);
	stops_within_1s(&vd);
	printed = vd_log_count(&vd, "mmap of memory region");
	ck_assert_msg(printed + suppressed_total(&vd) == 300, "%d lines "
	    "printed, %lu suppressed%s", printed, suppressed_total(&vd),
	    vd_log_text(&vd));
	vd_cleanup(&vd);
}
END_TEST

/* ---- address space ------------------------------------------------- */

#define GIB	(1ull << 30)
#define TIB	(1ull << 40)

/*
 * ADD_MEM_REG of size bytes at mmap_offset of a sparse memfd (no memory
 * used), or REM_MEM_REG of that region, at gpa == uva; returns the ack.
 */
static int
sparse_region(struct fe *fe, uint32_t req, uint64_t gpa, uint64_t size,
    uint64_t offset)
{
	struct fe_mem_single s;
	int fd = -1, ret;

	memset(&s, 0, sizeof(s));
	s.region = (struct fe_mem_region){ gpa, size, gpa, offset };
	if (req == FE_ADD_MEM_REG)
		fd = memfd(offset + size);
	ret = fe_request(fe, req, &s, sizeof(s), &fd, fd >= 0 ? 1 : 0, true);
	if (fd >= 0)
		close(fd);
	return ret;
}

/*
 * Mappings cost the daemon's address space, which all guests share: one
 * guest may map at most 1 TiB, whatever its (sparse) files say.  Regions
 * past that are refused, a removed region gives its share back, and
 * another guest still gets its memory mapped and served.
 */
START_TEST(mem_address_space_capped_per_guest)
{
	struct fe_mem_region r[2] = {
		{ 8 * TIB, 768 * GIB, 8 * TIB, 0 },
		{ 9 * TIB, 768 * GIB, 9 * TIB, 0 },
	};
	uint64_t sz[2] = { 768 * GIB, 768 * GIB };
	struct fe_cfg cfg;
	struct vd vd;
	struct fe a, b;

	IT_SKIP_UNDER_VALGRIND("maps 1 TiB");

	IT_START(&vd, 2, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	cfg.add_mem_reg = true;
	IT_OPEN(&a, &vd, 0, &cfg);
	IT_SERVE(&a, 64, &vd);
	ck_assert_int_eq(sparse_region(&a, FE_ADD_MEM_REG, 1 * TIB, 512 * GIB,
	    0), 0);
	/* 1 TiB and the 4 MiB the guest started with. */
	ck_assert_int_eq(sparse_region(&a, FE_ADD_MEM_REG, 2 * TIB, 512 * GIB,
	    0), 1);
	/* Exactly 1 TiB. */
	ck_assert_int_eq(sparse_region(&a, FE_ADD_MEM_REG, 3 * TIB, 512 * GIB -
	    cfg.mem_size, 0), 0);
	ck_assert_int_eq(sparse_region(&a, FE_ADD_MEM_REG, 4 * TIB, 2u << 20,
	    0), 1);
	ck_assert_int_eq(sparse_region(&a, FE_REM_MEM_REG, 1 * TIB, 512 * GIB,
	    0), 0);
	ck_assert_int_eq(sparse_region(&a, FE_ADD_MEM_REG, 2 * TIB, 512 * GIB,
	    0), 0);
	/* A whole table of more than 1 TiB is refused too. */
	ck_assert_int_eq(send_table(&a, r, 2, sz), 1);
	answers_promptly(&a, &vd, "after the refused regions");
	IT_SERVE(&a, 64, &vd);

	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	IT_OPEN(&b, &vd, 1, &cfg);
	IT_SERVE(&b, 64, &vd);
	IT_SERVE(&b, 4096, &vd);
	fe_close(&a);
	fe_close(&b);
	stops_within_1s(&vd);
	vd_cleanup(&vd);
}
END_TEST

/*
 * A small region far into a big file is mapped from its offset (rounded
 * down to a page), not from the start of the file: a huge mmap_offset
 * costs no address space, and the daemon's bytes land at that offset.
 */
START_TEST(mem_huge_mmap_offset_maps_only_the_region)
{
	const uint64_t off = 4 * TIB + 0x10010, size = 2u << 20;
	const uint64_t gpa = 1 * TIB, pg = off & ~4095ull;
	struct fe_mem_single s;
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int64_t vm0, vm1;
	uint8_t *map, *reg;
	unsigned i, zero;
	int fd;

	IT_START(&vd, 1, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	cfg.add_mem_reg = true;
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);
	fd = memfd(off + size);
	memset(&s, 0, sizeof(s));
	s.region = (struct fe_mem_region){ gpa, size, gpa, off };
	vm0 = vd_vm_kib(&vd);
	ck_assert_int_gt(vm0, 0);
	ck_assert_int_eq(fe_request(&fe, FE_ADD_MEM_REG, &s, sizeof(s), &fd, 1,
	    true), 0);
	vm1 = vd_vm_kib(&vd);
	ck_assert_msg(vm1 - vm0 < (int64_t)(GIB >> 10), "the daemon's address "
	    "space grew by %lld KiB for a 2 MiB region",
	    (long long)(vm1 - vm0));

	map = mmap(NULL, size + (off - pg), PROT_READ, MAP_SHARED, fd,
	    (off_t)pg);
	ck_assert(map != MAP_FAILED);
	reg = map + (off - pg);
	ck_assert(fe_post1(&fe, gpa + 4096, 256) >= 0);
	fe_kick(&fe);
	ck_assert_msg(fe_wait_used(&fe, 1, 3000) == 1, "no completion%s",
	    vd_log_text(&vd));
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.len, 256);
	for (i = 0, zero = 0; i < 256; i++)
		zero += reg[4096 + i] == 0;
	ck_assert_uint_lt(zero, 32);
	/* Nothing around it. */
	for (i = 0; i < 4096; i++)
		ck_assert_uint_eq(reg[i], 0);
	for (i = 4096 + 256; i < 3 * 4096; i++)
		ck_assert_uint_eq(reg[i], 0);
	munmap(map, size + (off - pg));
	close(fd);
	IT_SERVE(&fe, 64, &vd);
	fe_close(&fe);
	stops_within_1s(&vd);
	vd_cleanup(&vd);
}
END_TEST

/*
 * The ring addresses are aligned as VIRTIO wants, but an mmap_offset of 4
 * moves them off alignment in the daemon's mapping: the descriptor table
 * would be read through a misaligned pointer (undefined behaviour, a
 * sanitizer abort).  The daemon refuses that ring, with a log line, and
 * goes on answering.
 */
START_TEST(ring_misaligned_by_mmap_offset_refused)
{
	struct fe_desc d;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;

	IT_START(&vd, 1, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	cfg.mmap_offset = 4;
	IT_OPEN(&fe, &vd, 0, &cfg);
	/* Byte by byte: our own view of the table is misaligned too. */
	d.addr = buf(&fe, 64);
	d.len = 64;
	d.flags = FE_DESC_F_WRITE;
	d.next = 0;
	IT_OK(fe_write_mem(&fe, fe.desc_gpa, &d, sizeof(d)));
	fe_publish(&fe, 0);
	fe_kick(&fe);
	ck_assert_msg(vd_log_wait(&vd, "rings are misaligned", 1, 3000),
	    "no log line%s", vd_log_text(&vd));
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 300), 0);
	ck_assert_msg(vd_alive(&vd), "the daemon died%s", vd_log_text(&vd));
	answers_promptly(&fe, &vd, "misaligned ring");
	fe_close(&fe);
	stops_within_1s(&vd);
	vd_cleanup(&vd);
}
END_TEST

/* ---- polling ------------------------------------------------------- */

/* Times the daemon's threads went to sleep in the next second. */
static int64_t
wakeups_in_1s(struct vd *vd)
{
	int64_t w0 = vd_ctxt_switches(vd), w1;

	ck_assert_int_ge(w0, 0);
	fe_sleep_ms(1000);
	w1 = vd_ctxt_switches(vd);
	ck_assert_int_ge(w1, w0);
	return w1 - w0;
}

/* One buffer served without a kick (the daemon polls the ring). */
static void
served_unkicked(struct fe *fe, struct vd *vd)
{
	struct fe_used_elem u;

	ck_assert(fe_post1(fe, fe_alloc(fe, 64, 16), 64) >= 0);
	ck_assert_msg(fe_wait_used(fe, 1, 3000) == 1, "a polled ring was not "
	    "served%s", vd_log_text(vd));
	ck_assert(fe_get_used(fe, &u));
	ck_assert_uint_eq(u.len, 64);
}

/*
 * SET_VRING_KICK with the no-fd bit: the daemon polls the ring, every
 * millisecond.  A disabled ring and a broken one have nothing to poll
 * for, and the daemon must sleep instead of waking a thousand times a
 * second; enabled again or restarted, the ring is polled again.
 */
START_TEST(polling_ring_disabled_or_broken_sleeps)
{
	uint64_t nofd = FE_VRING_NOFD;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	uint32_t base;
	int64_t w;

	IT_START(&vd, 1, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	IT_OPEN(&fe, &vd, 0, &cfg);
	ck_assert_int_eq(fe_request(&fe, FE_SET_VRING_KICK, &nofd, 8, NULL, 0,
	    true), 0);
	served_unkicked(&fe, &vd);

	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_ENABLE, 0, 0, true),
	    0);
	fe_sleep_ms(50);
	w = wakeups_in_1s(&vd);
	ck_assert_msg(w < 100, "disabled polled ring: the daemon woke %lld "
	    "times in 1 s", (long long)w);
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_ENABLE, 0, 1, true),
	    0);
	served_unkicked(&fe, &vd);

	fe_publish(&fe, 0xffff);		/* head out of range */
	ck_assert_msg(fe_wait_err(&fe, 3000), "no err eventfd signal%s",
	    vd_log_text(&vd));
	fe_sleep_ms(50);
	w = wakeups_in_1s(&vd);
	ck_assert_msg(w < 100, "broken polled ring: the daemon woke %lld "
	    "times in 1 s", (long long)w);
	no_spin(&vd, "broken polled ring");
	answers_promptly(&fe, &vd, "broken polled ring");

	IT_OK(fe_ring_stop(&fe, &base));
	fe_ring_reset(&fe, (uint16_t)base);
	IT_OK(fe_ring_start(&fe, (uint16_t)base));
	ck_assert_int_eq(fe_request(&fe, FE_SET_VRING_KICK, &nofd, 8, NULL, 0,
	    true), 0);
	served_unkicked(&fe, &vd);
	fe_close(&fe);
	stops_within_1s(&vd);
	vd_cleanup(&vd);
}
END_TEST

Suite *
it_hostile_suite(void)
{
	Suite *s = suite_create("it_hostile");
	TCase *tc;

	tc = tcase_create("ring");
	tcase_set_timeout(tc, IT_TIMEOUT);
	tcase_add_test(tc, ring_descriptor_loop);
	tcase_add_test(tc, ring_descriptor_self_loop);
	tcase_add_test(tc, ring_next_out_of_range);
	tcase_add_test(tc, ring_head_out_of_range);
	tcase_add_test(tc, ring_avail_idx_jumps_past_queue_size);
	tcase_add_test(tc, ring_nested_indirect);
	tcase_add_test(tc, ring_indirect_len_not_multiple_of_16);
	tcase_add_test(tc, ring_indirect_len_zero);
	tcase_add_test(tc, ring_indirect_loop);
	tcase_add_test(tc, ring_indirect_with_next);
	tcase_add_test(tc, ring_indirect_table_outside_memory);
	tcase_add_test(tc, ring_addr_outside_memory);
	tcase_add_test(tc, ring_addr_below_memory);
	tcase_add_test(tc, ring_addr_runs_off_the_end);
	tcase_add_test(tc, ring_addr_len_wraps);
	tcase_add_test(tc, ring_device_readable_descriptor);
	tcase_add_test(tc, ring_zero_length_only_chain);
	tcase_add_test(tc, ring_loop_in_huge_indirect_table_caught_quickly);
	tcase_add_test(tc, ring_long_chain_served_short_and_exact);
	suite_add_tcase(s, tc);

	tc = tcase_create("messages");
	tcase_set_timeout(tc, IT_TIMEOUT);
	tcase_add_test(tc, msg_size_mismatch_set_features);
	tcase_add_test(tc, msg_size_mismatch_get_features);
	tcase_add_test(tc, msg_size_mismatch_vring_state);
	tcase_add_test(tc, msg_kick_with_two_fds);
	tcase_add_test(tc, msg_call_nofd_bit_with_fd);
	tcase_add_test(tc, msg_mem_table_nregions_ne_nfds);
	tcase_add_test(tc, msg_ring_index_1);
	tcase_add_test(tc, msg_kick_ring_index_1);
	tcase_add_test(tc, msg_unknown_request_99);
	tcase_add_test(tc, msg_payload_over_4096);
	tcase_add_test(tc, msg_bad_version);
	tcase_add_test(tc, msg_truncated_header_stalls);
	tcase_add_test(tc, msg_truncated_payload_stalls);
	tcase_add_test(tc, msg_too_many_fds);
	tcase_add_test(tc, msg_truncated_header_then_close);
	suite_add_tcase(s, tc);

	tc = tcase_create("memory");
	tcase_set_timeout(tc, IT_TIMEOUT);
	tcase_add_test(tc, mem_overlapping_gpa);
	tcase_add_test(tc, mem_overlapping_uva);
	tcase_add_test(tc, mem_size_zero);
	tcase_add_test(tc, mem_gpa_plus_size_wraps);
	tcase_add_test(tc, mem_uva_plus_size_wraps);
	tcase_add_test(tc, mem_mmap_offset_huge);
	tcase_add_test(tc, mem_mmap_offset_max);
	tcase_add_test(tc, mem_memfd_smaller_than_region);
	tcase_add_test(tc, mem_offset_plus_size_past_file_end);
	tcase_add_test(tc, mem_nregions_9);
	tcase_add_test(tc, mem_nregions_ne_nfds_acked);
	tcase_add_test(tc, mem_fd_not_mappable);
	tcase_add_test(tc, mem_add_overlapping_region);
	tcase_add_test(tc, mem_add_memfd_too_small);
	tcase_add_test(tc, mem_add_gpa_wraps);
	tcase_add_test(tc, mem_remove_unknown_region);
	tcase_add_test(tc, mem_memfd_shrunk_after_mapping_does_not_kill_daemon);
	tcase_add_test(tc, mem_memfd_shrunk_under_buffer_survives);
	tcase_add_test(tc, connect_disconnect_cycles_leak_no_fds);
	suite_add_tcase(s, tc);

	tc = tcase_create("eventfds");
	tcase_set_timeout(tc, IT_TIMEOUT);
	tcase_add_test(tc, eventfd_vring_fds_must_be_eventfds);
	tcase_add_test(tc, eventfd_semaphore_kick_does_not_spin);
	tcase_add_test(tc, eventfd_full_blocking_call_does_not_hang);
	tcase_add_test(tc, eventfd_kick_replaced_while_kicked);
	tcase_add_test(tc, eventfd_kick_made_blocking_later_does_not_hang);
	tcase_add_test(tc, eventfd_call_made_blocking_later_does_not_hang);
	suite_add_tcase(s, tc);

	tc = tcase_create("stalls_and_floods");
	tcase_set_timeout(tc, IT_TIMEOUT);
	tcase_add_test(tc, stall_message_dripped_byte_by_byte_is_dropped);
	tcase_add_test(tc, stall_sigterm_while_dripping);
	tcase_add_test(tc, flood_reconnects_log_is_bounded);
	tcase_add_test(tc, flood_failing_mem_tables_log_is_bounded);
	suite_add_tcase(s, tc);

	tc = tcase_create("address_space");
	tcase_set_timeout(tc, IT_TIMEOUT);
	tcase_add_test(tc, mem_address_space_capped_per_guest);
	tcase_add_test(tc, mem_huge_mmap_offset_maps_only_the_region);
	tcase_add_test(tc, ring_misaligned_by_mmap_offset_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("polling");
	tcase_set_timeout(tc, IT_TIMEOUT);
	tcase_add_test(tc, polling_ring_disabled_or_broken_sleeps);
	suite_add_tcase(s, tc);
	return s;
}
