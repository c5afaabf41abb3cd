/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: a hostile guest's ring.
 *
 * Ring attacks must leave the daemon running, write nothing anywhere
 * (every byte of guest memory keeps its canary), break only that guest's
 * queue (no completion, err eventfd signalled) while its control channel
 * keeps answering, leave the other guest alone, and be cleared by the
 * front-end restarting the ring.
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

#include "hostile.h"
#include "it.h"

Suite	*it_ring_suite(void);

/* Writes hostile ring contents; returns data areas it wrote (holes). */
typedef unsigned (*poison_fn)(struct fe *, struct fe_buf *holes);

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
	IT_END(&vd, &b);
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

/*
 * Whole requests (issue 8): every descriptor of a chain, its whole
 * [addr, addr+len), must lie in guest memory, even past the fill cap.
 */

/* The daemon fills at most this much of one request (GUEST_MAX_REQUEST). */
#define FILL_CAP	(256u * 1024)

/* One buffer at a valid address whose length runs far past guest RAM. */
static unsigned
poison_long_buffer(struct fe *fe, struct fe_buf *holes)
{
	(void)holes;
	fe_write_desc(fe, 0, buf(fe, 64), 0xfffff000u, FE_DESC_F_WRITE, 0);
	fe_publish(fe, 0);
	return 0;
}

/* [256 KiB valid, 4 KiB in no region]: the cap is hit before the tail. */
static unsigned
poison_tail_past_cap(struct fe *fe, struct fe_buf *holes)
{
	uint64_t nowhere = fe->cfg.gpa + fe->cfg.mem_size + (1u << 20);

	(void)holes;
	fe_write_desc(fe, 0, buf(fe, FILL_CAP), FILL_CAP, FE_DESC_F_WRITE |
	    FE_DESC_F_NEXT, 1);
	fe_write_desc(fe, 1, nowhere, 4096, FE_DESC_F_WRITE, 0);
	fe_publish(fe, 0);
	return 0;
}

/* Each case: its name and what it writes into the ring. */
static const struct {
	const char	*name;
	poison_fn	 poison;
} ring_cases[] = {
	{ "ring_descriptor_loop", p_loop },
	{ "ring_descriptor_self_loop", p_self_loop },
	{ "ring_next_out_of_range", p_next_out_of_range },
	{ "ring_head_out_of_range", p_head_out_of_range },
	{ "ring_avail_idx_jumps_past_queue_size", p_avail_idx_jump },
	{ "ring_nested_indirect", p_nested_indirect },
	{ "ring_indirect_len_not_multiple_of_16", p_indirect_len_not_multiple },
	{ "ring_indirect_len_zero", p_indirect_len_zero },
	{ "ring_indirect_loop", p_indirect_loop },
	{ "ring_indirect_with_next", p_indirect_with_next },
	{ "ring_indirect_table_outside_memory",
	    p_indirect_table_outside_memory },
	{ "ring_addr_outside_memory", p_addr_outside_memory },
	{ "ring_addr_below_memory", p_addr_below_memory },
	{ "ring_addr_runs_off_the_end", p_addr_runs_off_the_end },
	{ "ring_addr_len_wraps", p_addr_len_wraps },
	{ "ring_device_readable_descriptor", p_device_readable },
	{ "ring_zero_length_only_chain", p_zero_length_only },
	{ "whole_buffer_past_end_of_memory", poison_long_buffer },
	{ "whole_chain_tail_past_fill_cap", poison_tail_past_cap },
};

START_TEST(ring_case)
{
	hostile_ring(ring_cases[_i].poison);
}
END_TEST

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

	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	IT_ONE_GUEST(&vd, &a, &cfg, NULL);
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
	IT_END(&vd, &a);
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

	fe_cfg_init(&cfg);
	cfg.qsize = 128;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
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
	IT_END(&vd, &fe);
}
END_TEST

Suite *
it_ring_suite(void)
{
	Suite *s = suite_create("it_ring");
	TCase *tc;

	tc = add_case(s, "ring", IT_TIMEOUT, NULL, NULL, TESTS(
	    ring_loop_in_huge_indirect_table_caught_quickly,
	    ring_long_chain_served_short_and_exact));
	ADD_TABLE(tc, ring_case, ring_cases);
	return s;
}
