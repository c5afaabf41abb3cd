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
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
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
	return s;
}
