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

#define WR	FE_DESC_F_WRITE
#define NX	FE_DESC_F_NEXT
#define IND	FE_DESC_F_INDIRECT

/* The daemon fills at most this much of one request (GUEST_MAX_REQUEST). */
#define FILL_CAP	(256u * 1024)

/*
 * A hostile ring as data.  Every case below writes descriptors (into the
 * ring, or into indirect tables at fresh addresses), publishes a head,
 * kicks, and expects the same outcome: the queue broken, nothing written
 * anywhere, the guest's control channel and the other guest untouched
 * (ring_case).  A descriptor's address is one of:
 */
enum addr {
	ADDR_NONE,	/* no descriptor: the list ends */
	ADDR_BUF,	/* a fresh valid buffer of arg bytes */
	ADDR_START,	/* the start of guest memory + arg (may be < 0) */
	ADDR_END,	/* the end of guest memory + arg (may be < 0) */
	ADDR_WRAP,	/* the last 16 bytes of the address space */
	ADDR_TABLE,	/* the case's indirect table */
	ADDR_INNER,	/* the case's inner table (an indirect in the table) */
};

#define TABLE_MAX	2	/* entries of a case's indirect table */

struct sdesc {
	enum addr	 at;
	int64_t		 arg;
	uint32_t	 len;
	uint16_t	 flags;
	uint16_t	 next;
};

static const struct ring_script {
	const char	*name;
	uint16_t	 head;		/* published; ring[i] in slot head+i */
	struct sdesc	 ring[3];
	struct sdesc	 table[TABLE_MAX];
	struct sdesc	 inner[1];
	uint16_t	 jump;		/* not 0: avail idx moves on this far */
} ring_cases[] = {
	/* Head 0 -> 1 -> 2 -> 0 ... */
	{ "ring_descriptor_loop", .ring = {
	    { ADDR_BUF, 16, 16, WR | NX, 1 }, { ADDR_BUF, 16, 16, WR | NX, 2 },
	    { ADDR_BUF, 16, 16, WR | NX, 0 } } },
	{ "ring_descriptor_self_loop", .head = 5, .ring = {
	    { ADDR_BUF, 16, 16, WR | NX, 5 } } },
	{ "ring_next_out_of_range", .ring = {
	    { ADDR_BUF, 16, 16, WR | NX, QSIZE } } },
	{ "ring_head_out_of_range", .head = 0xffff },
	/* 17 new entries in a ring of 16. */
	{ "ring_avail_idx_jumps_past_queue_size", .jump = QSIZE + 1, .ring = {
	    { ADDR_BUF, 16, 16, WR, 0 } } },
	{ "ring_nested_indirect", .ring = {
	    { ADDR_TABLE, 0, 32, IND, 0 } }, .table = {
	    { ADDR_BUF, 32, 32, WR | NX, 1 }, { ADDR_INNER, 0, 16, IND, 0 } },
	    .inner = { { ADDR_BUF, 32, 32, WR, 0 } } },
	{ "ring_indirect_len_not_multiple_of_16", .ring = {
	    { ADDR_TABLE, 0, 24, IND, 0 } }, .table = {
	    { ADDR_BUF, 64, 64, WR | NX, 1 }, { ADDR_BUF, 64, 64, WR, 0 } } },
	{ "ring_indirect_len_zero", .ring = {
	    { ADDR_BUF, 64, 0, IND, 0 } } },
	/* A loop inside an indirect table. */
	{ "ring_indirect_loop", .ring = {
	    { ADDR_TABLE, 0, 32, IND, 0 } }, .table = {
	    { ADDR_BUF, 64, 64, WR | NX, 1 },
	    { ADDR_BUF, 64, 64, WR | NX, 0 } } },
	/* Not a request any driver posts: INDIRECT together with NEXT. */
	{ "ring_indirect_with_next", .ring = {
	    { ADDR_TABLE, 0, 16, IND | NX, 1 }, { ADDR_BUF, 64, 64, WR, 0 } },
	    .table = { { ADDR_BUF, 64, 64, WR, 0 } } },
	{ "ring_indirect_table_outside_memory", .ring = {
	    { ADDR_END, 4096, 64, IND, 0 } } },
	/* The first buffer is fine, the second is past the end of memory. */
	{ "ring_addr_outside_memory", .ring = {
	    { ADDR_BUF, 64, 64, WR | NX, 1 }, { ADDR_END, 0, 64, WR, 0 } } },
	/* Below the guest-physical base (which is not 0 here). */
	{ "ring_addr_below_memory", .ring = {
	    { ADDR_START, -64, 64, WR, 0 } } },
	/* Starts inside guest memory, runs off its end. */
	{ "ring_addr_runs_off_the_end", .ring = {
	    { ADDR_END, -16, 64, WR, 0 } } },
	{ "ring_addr_len_wraps", .ring = {
	    { ADDR_WRAP, 0, 64, WR, 0 } } },
	{ "ring_device_readable_descriptor", .ring = {
	    { ADDR_BUF, 64, 64, WR | NX, 1 }, { ADDR_BUF, 64, 64, 0, 0 } } },
	{ "ring_zero_length_only_chain", .ring = {
	    { ADDR_BUF, 16, 0, WR | NX, 1 }, { ADDR_BUF, 16, 0, WR, 0 } } },
	/*
	 * Whole requests (issue 8): every descriptor of a chain, its whole
	 * [addr, addr+len), must lie in guest memory, even past the fill cap.
	 * One buffer at a valid address whose length runs far past guest RAM:
	 */
	{ "whole_buffer_past_end_of_memory", .ring = {
	    { ADDR_BUF, 64, 0xfffff000u, WR, 0 } } },
	/* [256 KiB valid, 4 KiB in no region]: the cap is before the tail. */
	{ "whole_chain_tail_past_fill_cap", .ring = {
	    { ADDR_BUF, FILL_CAP, FILL_CAP, WR | NX, 1 },
	    { ADDR_END, 1 << 20, 4096, WR, 0 } } },
};

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

/* The guest address d stands for; table and inner: the case's tables. */
static uint64_t
script_addr(struct fe *fe, const struct sdesc *d, uint64_t table,
    uint64_t inner)
{
	switch (d->at) {
	case ADDR_BUF:
		return buf(fe, (uint32_t)d->arg);
	case ADDR_START:
		return fe->cfg.gpa + (uint64_t)d->arg;
	case ADDR_END:
		return fe->cfg.gpa + fe->cfg.mem_size + (uint64_t)d->arg;
	case ADDR_WRAP:
		return UINT64_MAX - 15;
	case ADDR_TABLE:
		return table;
	case ADDR_INNER:
		return inner;
	case ADDR_NONE:
		break;
	}
	return 0;
}

/*
 * Writes the entries d[0..max) (up to ADDR_NONE; max <= TABLE_MAX) as an
 * indirect table and records it in holes; returns its gpa, 0 when there
 * is no entry.
 */
static uint64_t
script_table(struct fe *fe, const struct sdesc *d, unsigned max,
    uint64_t inner, struct fe_buf *holes, unsigned *nholes)
{
	struct fe_desc t[TABLE_MAX];
	unsigned n;

	for (n = 0; n < max && d[n].at != ADDR_NONE; n++) {
		t[n].addr = script_addr(fe, &d[n], 0, inner);
		t[n].len = d[n].len;
		t[n].flags = d[n].flags;
		t[n].next = d[n].next;
	}
	if (n == 0)
		return 0;
	return itable(fe, t, n, &holes[(*nholes)++]);
}

/* Writes sc's ring contents; returns the data areas written (holes). */
static unsigned
script_write(struct fe *fe, const struct ring_script *sc,
    struct fe_buf *holes)
{
	const unsigned nring = sizeof(sc->ring) / sizeof(sc->ring[0]);
	uint64_t inner, table;
	unsigned i, nholes = 0;

	inner = script_table(fe, sc->inner, 1, 0, holes, &nholes);
	table = script_table(fe, sc->table, TABLE_MAX, inner, holes,
	    &nholes);
	for (i = 0; i < nring && sc->ring[i].at != ADDR_NONE; i++)
		fe_write_desc(fe, (uint16_t)(sc->head + i),
		    script_addr(fe, &sc->ring[i], table, inner),
		    sc->ring[i].len, sc->ring[i].flags, sc->ring[i].next);
	if (sc->jump != 0)
		fe_set_avail_idx(fe, (uint16_t)(fe->avail_idx + sc->jump));
	else
		fe_publish(fe, sc->head);
	return nholes;
}

/* Two guests; guest 0's ring gets the case's contents (see above). */
START_TEST(ring_case)
{
	struct fe_buf holes[8];
	struct vd vd;
	struct fe a, b;
	unsigned nholes;
	uint32_t base;
	uint64_t gpa;
	int64_t t0;

	IT_START(&vd, 2, NULL);
	IT_OPEN(&a, &vd, 0, hostile_cfg());
	IT_OPEN(&b, &vd, 1, hostile_cfg());
	IT_SERVE(&a, 64, &vd);
	IT_SERVE(&b, 64, &vd);
	fe_canary_fill(&a, a.heap_start, a.heap - a.heap_start);
	fe_drain_errs(&a);
	ck_assert_uint_eq(a.nerrs, 0);

	nholes = script_write(&a, &ring_cases[_i], holes);
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
	fe_write_desc(&a, QSIZE - 1, gpa, 64, WR, 0);
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
		{ 0, 16, WR | NX, 1 },
		{ 0, 16, WR | NX, 0 },
	};
	struct fe_buf h;
	struct vd vd;
	struct fe a;
	int64_t t0;
	int r;

	IT_ONE_GUEST(&vd, &a, hostile_cfg(), NULL);
	d[0].addr = buf(&a, 16);
	d[1].addr = buf(&a, 16);
	fe_write_desc(&a, 0, itable(&a, d, 2, &h), 0xfffffff0u, IND, 0);
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
	TCase *tc = add_case(s, "ring", IT_TIMEOUT, NULL, NULL, TESTS(
	    ring_loop_in_huge_indirect_table_caught_quickly,
	    ring_long_chain_served_short_and_exact));

	ADD_TABLE(tc, ring_case, ring_cases);
	return s;
}
