/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: the data path.  Buffers of every shape the driver may post
 * (single, chained, indirect, across memory regions, larger than one
 * completion), with guest memory full of canaries to catch any write
 * outside them, and the interrupt suppression of both kinds (EVENT_IDX
 * and VRING_AVAIL_F_NO_INTERRUPT).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it.h"

static bool
all_zero(const struct fe *fe, uint64_t gpa, uint32_t len)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		if (*(uint8_t *)fe_host(fe, gpa + i) != 0)
			return false;
	return true;
}

START_TEST(single_64_byte_buffer)
{
	struct fe_used_elem u;
	struct fe_buf hole;
	struct vd vd;
	struct fe fe;
	uint64_t gpa;
	int head;

	IT_ONE_GUEST(&vd, &fe, NULL, NULL);
	fe_drain_calls(&fe);
	ck_assert_uint_eq(fe.ncalls, 0);

	gpa = fe_alloc(&fe, 64, 64);
	head = fe_post1(&fe, gpa, 64);
	ck_assert_int_ge(head, 0);
	fe_kick(&fe);
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 3000), 1);
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.id, (unsigned)head);
	ck_assert_uint_eq(u.len, 64);
	ck_assert(!all_zero(&fe, gpa, 64));
	ck_assert_uint_lt(fe_canary_count(&fe, gpa, 64), 16);
	/* The interrupt came through the call eventfd. */
	fe_sleep_ms(20);
	fe_drain_calls(&fe);
	ck_assert_uint_ge(fe.ncalls, 1);
	hole.gpa = gpa;
	hole.len = 64;
	IT_NO_DAMAGE(&fe, &hole, 1);
	/* The daemon wrote nothing else: one used entry, nothing pending. */
	ck_assert_uint_eq(fe_used_idx(&fe), 1);
	IT_END(&vd, &fe);
}
END_TEST

/*
 * 4 MiB in 4096-byte buffers through a 256-entry ring kept full.  Every
 * buffer is refilled with the canary once read, so at the end the whole
 * guest memory but the rings must be canary again.
 */
START_TEST(bulk_4_mib_in_4096_byte_buffers)
{
	enum { BUF = 4096, STRIDE = 8192, QSIZE = 256, TOTAL = 1024 };
	uint64_t hist[256], bytes = 0, slot0;
	struct fe_used_elem u;
	struct fe_cfg cfg;
	unsigned posted = 0, done = 0, i;
	struct vd vd;
	struct fe fe;

	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	slot0 = fe_alloc(&fe, (uint64_t)STRIDE * QSIZE, 4096);
	ck_assert(slot0 != UINT64_MAX);
	memset(hist, 0, sizeof(hist));

	/* Descriptor i always points at slot i (single descriptors). */
	while (posted < QSIZE) {
		int head = fe_post1(&fe, slot0 + (uint64_t)STRIDE * posted,
		    BUF);

		ck_assert_int_eq(head, (int)posted);
		posted++;
	}
	fe_kick(&fe);
	while (done < TOTAL) {
		ck_assert_msg(fe_wait_used(&fe, 1, 3000) >= 1,
		    "stalled after %u buffers%s", done, vd_log_text(&vd));
		while (fe_get_used(&fe, &u)) {
			uint64_t gpa = slot0 + (uint64_t)STRIDE * u.id;
			uint8_t *p = fe_host(&fe, gpa);
			int head;

			ck_assert_uint_lt(u.id, QSIZE);
			ck_assert_uint_eq(u.len, BUF);
			ck_assert_uint_lt(fe_canary_count(&fe, gpa, BUF),
			    BUF / 16);
			for (i = 0; i < BUF; i++)
				hist[p[i]]++;
			bytes += u.len;
			done++;
			fe_canary_fill(&fe, gpa, BUF);
			if (posted < TOTAL) {
				head = fe_post1(&fe, gpa, BUF);
				ck_assert_uint_eq(head, u.id);
				posted++;
			}
		}
		fe_kick(&fe);
	}
	ck_assert_uint_eq(bytes, 4u << 20);
	ck_assert_uint_eq(fe_used_pending(&fe), 0);
	IT_NO_DAMAGE(&fe, NULL, 0);
	/*
	 * Entropy, not a pattern: each byte value shows up about 16384
	 * times in 4 MiB (standard deviation ~128).
	 */
	for (i = 0; i < 256; i++)
		ck_assert_msg(hist[i] > 15000 && hist[i] < 17800,
		    "byte 0x%02x seen %llu times", i,
		    (unsigned long long)hist[i]);
	IT_END(&vd, &fe);
}
END_TEST

START_TEST(chain_of_writable_descriptors)
{
	static const uint32_t lens[] = { 100, 1, 4096, 7, 300, 2048 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	struct fe_buf b[N];
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	uint32_t sum = 0;
	unsigned i;
	int head;

	fe_cfg_init(&cfg);
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	/* Out of address order, with canary gaps between the pieces. */
	for (i = 0; i < N; i++) {
		b[N - 1 - i].gpa = fe_alloc(&fe, lens[N - 1 - i] + 64, 16);
		b[N - 1 - i].len = lens[N - 1 - i];
		sum += lens[i];
	}
	head = fe_post(&fe, b, N);
	ck_assert_int_ge(head, 0);
	fe_kick(&fe);
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 3000), 1);
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.id, (unsigned)head);
	ck_assert_uint_eq(u.len, sum);
	for (i = 0; i < N; i++)
		if (b[i].len >= 64)
			ck_assert_uint_lt(fe_canary_count(&fe, b[i].gpa,
			    b[i].len), b[i].len / 8);
	IT_NO_DAMAGE(&fe, b, N);
	/* All six descriptors came back to the free list. */
	ck_assert_uint_eq(fe_free_descs(&fe), cfg.qsize);
	IT_END(&vd, &fe);
}
END_TEST

START_TEST(indirect_table)
{
	static const uint32_t lens[] = { 512, 3, 1000, 4096 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	struct fe_buf b[N + 1];
	uint8_t before[16 * N], after[16 * N];
	struct fe_used_elem u;
	struct vd vd;
	struct fe fe;
	uint64_t table;
	uint32_t sum = 0;
	unsigned i;
	int head;

	IT_ONE_GUEST(&vd, &fe, NULL, NULL);
	ck_assert(fe.acked & FE_BIT(FE_F_INDIRECT_DESC));
	for (i = 0; i < N; i++) {
		b[i].gpa = fe_alloc(&fe, lens[i] + 32, 16);
		b[i].len = lens[i];
		sum += lens[i];
	}
	table = fe_alloc(&fe, 16 * N, 16);
	head = fe_post_indirect(&fe, table, b, N);
	ck_assert_int_ge(head, 0);
	IT_OK(fe_read_mem(&fe, table, before, sizeof(before)));
	fe_kick(&fe);
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 3000), 1);
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.id, (unsigned)head);
	ck_assert_uint_eq(u.len, sum);
	ck_assert_uint_lt(fe_canary_count(&fe, b[3].gpa, b[3].len), 512);
	/* The table is device-readable: it must come back unchanged. */
	IT_OK(fe_read_mem(&fe, table, after, sizeof(after)));
	ck_assert(memcmp(before, after, sizeof(before)) == 0);
	b[N].gpa = table;
	b[N].len = 16 * N;
	IT_NO_DAMAGE(&fe, b, N + 1);
	IT_END(&vd, &fe);
}
END_TEST

/* Many requests of different shapes in flight at once, in order. */
START_TEST(mixed_requests_in_flight)
{
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int heads[40];
	uint32_t want[40];
	unsigned i;

	fe_cfg_init(&cfg);
	cfg.qsize = 64;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	for (i = 0; i < 40; i++) {
		struct fe_buf b[2];

		b[0].len = 16 + i;
		b[0].gpa = fe_alloc(&fe, b[0].len, 8);
		b[1].len = 200 - i;
		b[1].gpa = fe_alloc(&fe, b[1].len, 8);
		if (i % 3 == 0)
			heads[i] = fe_post_indirect(&fe, fe_alloc(&fe, 32, 16),
			    b, 2);
		else if (i % 3 == 1)
			heads[i] = fe_post(&fe, b, 2);
		else
			heads[i] = fe_post(&fe, b, 1);
		ck_assert_int_ge(heads[i], 0);
		want[i] = i % 3 == 2 ? b[0].len : b[0].len + b[1].len;
	}
	fe_kick(&fe);
	ck_assert_uint_eq(fe_wait_used(&fe, 40, 3000), 40);
	/* One queue, served in avail order. */
	for (i = 0; i < 40; i++) {
		ck_assert(fe_get_used(&fe, &u));
		ck_assert_uint_eq(u.id, (unsigned)heads[i]);
		ck_assert_uint_eq(u.len, want[i]);
	}
	ck_assert(!fe_get_used(&fe, &u));
	IT_END(&vd, &fe);
}
END_TEST

/*
 * ADD_MEM_REG with two regions, adjacent in guest-physical space but far
 * apart in the front-end's: a buffer and an indirect table straddling
 * the boundary must be split across both mappings.
 */
START_TEST(add_mem_reg_buffer_spans_two_regions)
{
	struct fe_used_elem u;
	struct fe_buf b[4];
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	uint64_t boundary;
	int head;

	fe_cfg_init(&cfg);
	cfg.add_mem_reg = true;
	cfg.nregions = 2;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	ck_assert(fe.acked_pf & FE_BIT(FE_PF_CONFIGURE_MEM_SLOTS));
	ck_assert_uint_ge(fe.max_mem_slots, 8);
	boundary = fe.reg[1].gpa;
	ck_assert_uint_eq(boundary, fe.reg[0].gpa + fe.reg[0].size);
	ck_assert_uint_ne(fe.reg[1].uva, fe.reg[0].uva + fe.reg[0].size);

	/* A direct buffer: 100 bytes in region 0, 100 in region 1. */
	b[0].gpa = boundary - 100;
	b[0].len = 200;
	head = fe_post(&fe, b, 1);
	fe_kick(&fe);
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 3000), 1);
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.id, (unsigned)head);
	ck_assert_uint_eq(u.len, 200);
	ck_assert_uint_lt(fe_canary_count(&fe, boundary - 100, 100), 20);
	ck_assert_uint_lt(fe_canary_count(&fe, boundary, 100), 20);
	IT_NO_DAMAGE(&fe, b, 1);

	/* An indirect table whose second entry straddles the boundary. */
	b[1].gpa = boundary + 4096;
	b[1].len = 300;
	b[2].gpa = boundary - 8192;
	b[2].len = 77;
	head = fe_post_indirect(&fe, boundary - 24, &b[1], 2);
	ck_assert_int_ge(head, 0);
	fe_kick(&fe);
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 3000), 1);
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.len, 377);
	b[3].gpa = boundary - 24;
	b[3].len = 32;
	IT_NO_DAMAGE(&fe, b, 4);
	IT_END(&vd, &fe);
}
END_TEST

/*
 * Guest-physical base 0, and regions that start 64 KiB into their memfd:
 * the first 64 KiB of each file is not guest memory and must stay as is.
 */
START_TEST(gpa_zero_and_mmap_offset)
{
	struct fe_buf b[2];
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;

	fe_cfg_init(&cfg);
	cfg.gpa = 0;
	cfg.mmap_offset = 64 * 1024;
	cfg.nregions = 2;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	b[0].gpa = fe_alloc(&fe, 1000, 16);
	b[0].len = 1000;
	b[1].gpa = fe.reg[1].gpa + 123;
	b[1].len = 999;
	ck_assert(fe_post(&fe, b, 2) >= 0);
	fe_kick(&fe);
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 3000), 1);
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.len, 1999);
	ck_assert_uint_lt(fe_canary_count(&fe, b[1].gpa, 999), 100);
	IT_NO_DAMAGE(&fe, b, 2);
	IT_END(&vd, &fe);
}
END_TEST

/*
 * Memory hotplug, QEMU style: a new SET_MEM_TABLE (the old region plus a
 * new one) while the ring runs.  The ring goes on where it was and the
 * new memory is usable at once.
 */
START_TEST(mem_table_replaced_while_running)
{
	struct fe_used_elem u;
	struct fe_buf b[2];
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int r;

	fe_cfg_init(&cfg);
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	IT_SERVE(&fe, 64, &vd);
	IT_SERVE(&fe, 64, &vd);
	r = fe_add_region(&fe, cfg.gpa + (64ull << 20), 1 << 20,
	    0x7f5500000000ull);
	ck_assert_int_ge(r, 0);
	ck_assert_int_eq(fe_send_mem_table(&fe), 0);
	ck_assert_int_eq(vd_count_memfd_maps(&vd), 2);

	b[0].gpa = fe.reg[r].gpa + 4096;
	b[0].len = 500;
	b[1].gpa = fe_alloc(&fe, 300, 16);
	b[1].len = 300;
	ck_assert(fe_post(&fe, b, 2) >= 0);
	fe_kick(&fe);
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 3000), 1);
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.len, 800);
	/* The used index went on from 2, not from some remapped 0. */
	ck_assert_uint_eq(fe_used_idx(&fe), 3);
	ck_assert_uint_lt(fe_canary_count(&fe, b[0].gpa, 500), 60);
	IT_SERVE(&fe, 64, &vd);
	ck_assert_uint_eq(fe_used_idx(&fe), 4);
	IT_END(&vd, &fe);
}
END_TEST

/*
 * CONFIGURE_MEM_SLOTS hotplug: ADD_MEM_REG while running makes a region
 * usable; REM_MEM_REG takes it away again (and its mapping with it).
 */
START_TEST(mem_add_and_remove_region_while_running)
{
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	uint64_t gpa;
	int r;

	fe_cfg_init(&cfg);
	cfg.add_mem_reg = true;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	IT_SERVE(&fe, 64, &vd);
	r = fe_add_region(&fe, 0x100000000ull, 1 << 20, 0x7f6600000000ull);
	ck_assert_int_ge(r, 0);
	ck_assert_int_eq(fe_send_add_region(&fe, (unsigned)r), 0);
	ck_assert_int_eq(vd_count_memfd_maps(&vd), 2);
	gpa = fe.reg[r].gpa + 8192;
	ck_assert(fe_post1(&fe, gpa, 1000) >= 0);
	fe_kick(&fe);
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 3000), 1);
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.len, 1000);
	ck_assert_uint_lt(fe_canary_count(&fe, gpa, 1000), 100);

	ck_assert_int_eq(fe_send_rem_region(&fe, (unsigned)r), 0);
	IT_OK(fe_sync(&fe));
	ck_assert_int_eq(vd_count_memfd_maps(&vd), 1);
	IT_SERVE(&fe, 64, &vd);
	IT_END(&vd, &fe);
}
END_TEST

/*
 * A buffer larger than one completion is served short: used.len says
 * exactly how much was written, and nothing after that is touched.
 */
START_TEST(huge_buffer_used_len_is_bytes_written)
{
	enum { LEN = 1 << 20 };
	struct fe_used_elem u;
	struct fe_buf b;
	struct vd vd;
	struct fe fe;

	IT_ONE_GUEST(&vd, &fe, NULL, NULL);
	b.gpa = fe_alloc(&fe, LEN, 4096);
	b.len = LEN;
	ck_assert(fe_post(&fe, &b, 1) >= 0);
	fe_kick(&fe);
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 3000), 1);
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_ge(u.len, 1);
	ck_assert_uint_le(u.len, LEN);
	ck_assert_uint_lt(fe_canary_count(&fe, b.gpa, u.len), u.len / 16 + 1);
	b.len = u.len;
	IT_NO_DAMAGE(&fe, &b, 1);
	IT_END(&vd, &fe);
}
END_TEST

static bool
wait_avail_event(struct fe *fe, uint16_t want, int timeout_ms)
{
	int64_t deadline = fe_now_ms() + timeout_ms;

	while (fe_avail_event(fe) != want)
		if (fe_now_ms() > deadline)
			return false;
		else
			fe_sleep_ms(1);
	return true;
}

START_TEST(event_idx_avail_event_follows_consumption)
{
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	unsigned i;

	fe_cfg_init(&cfg);
	cfg.event_idx = true;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	ck_assert(fe.acked & FE_BIT(FE_F_EVENT_IDX));
	for (i = 0; i < 3; i++) {
		IT_SERVE(&fe, 64, &vd);
		ck_assert_msg(wait_avail_event(&fe, fe.avail_idx, 1000),
		    "avail_event %u, avail idx %u", fe_avail_event(&fe),
		    fe.avail_idx);
	}
	/* A batch of five: consumed all, asks for a kick at index 8. */
	for (i = 0; i < 5; i++)
		ck_assert(fe_post1(&fe, fe_alloc(&fe, 32, 8), 32) >= 0);
	fe_kick(&fe);
	ck_assert_uint_eq(fe_wait_used(&fe, 5, 3000), 5);
	while (fe_get_used(&fe, &u))
		ck_assert_uint_eq(u.len, 32);
	ck_assert_msg(wait_avail_event(&fe, 8, 1000), "avail_event %u",
	    fe_avail_event(&fe));
	IT_END(&vd, &fe);
}
END_TEST

/*
 * Serves one buffer; returns how many interrupts it caused.  An expected
 * interrupt is waited for (it may trail the used index by a moment); an
 * unexpected one would show within the 50 ms after.
 */
static uint64_t
serve_count_calls(struct fe *fe, struct vd *vd, uint64_t expect)
{
	int64_t deadline;
	uint64_t before;

	before = fe_drain_calls(fe);
	IT_SERVE(fe, 16, vd);
	deadline = fe_now_ms() + 2000;
	while (fe_drain_calls(fe) - before < expect && fe_now_ms() < deadline)
		fe_sleep_ms(1);
	fe_sleep_ms(50);
	return fe_drain_calls(fe) - before;
}

#define CALLS(fe, vd, n)						\
	ck_assert_uint_eq(serve_count_calls((fe), (vd), (n)), (n))

START_TEST(event_idx_used_event_suppresses_interrupts)
{
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;

	fe_cfg_init(&cfg);
	cfg.event_idx = true;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	/* used_event 0: interrupt when used idx moves past 0. */
	CALLS(&fe, &vd, 1);
	/* Now: only once used idx moves past 4 (so at 5). */
	fe_set_used_event(&fe, 4);
	CALLS(&fe, &vd, 0);	/* 2 */
	CALLS(&fe, &vd, 0);	/* 3 */
	CALLS(&fe, &vd, 0);	/* 4 */
	CALLS(&fe, &vd, 1);	/* 5 */
	CALLS(&fe, &vd, 0);	/* 6 */
	/* Caught up again: want every one. */
	fe_set_used_event(&fe, 6);
	CALLS(&fe, &vd, 1);	/* 7 */
	fe_set_used_event(&fe, 7);
	CALLS(&fe, &vd, 1);	/* 8 */
	ck_assert_uint_eq(fe_used_idx(&fe), 8);
	IT_END(&vd, &fe);
}
END_TEST

START_TEST(no_event_idx_honours_no_interrupt_flag)
{
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;

	fe_cfg_init(&cfg);
	cfg.event_idx = false;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	ck_assert(!(fe.acked & FE_BIT(FE_F_EVENT_IDX)));
	CALLS(&fe, &vd, 1);
	fe_set_avail_flags(&fe, FE_AVAIL_F_NO_INTERRUPT);
	CALLS(&fe, &vd, 0);
	CALLS(&fe, &vd, 0);
	fe_set_avail_flags(&fe, 0);
	CALLS(&fe, &vd, 1);
	IT_END(&vd, &fe);
}
END_TEST

/*
 * SET_VRING_KICK with the "no fd" bit: the daemon must look at the ring
 * by itself, buffers are served without any kick.
 */
START_TEST(kick_without_fd_polls_the_ring)
{
	struct fe_used_elem u;
	struct fe_vring_addr a;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	uint64_t nofd = FE_VRING_NOFD;
	int i;

	fe_cfg_init(&cfg);
	cfg.start = false;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	memset(&a, 0, sizeof(a));
	a.desc = fe.reg[0].uva + (fe.desc_gpa - fe.reg[0].gpa);
	a.avail = fe.reg[0].uva + (fe.avail_gpa - fe.reg[0].gpa);
	a.used = fe.reg[0].uva + (fe.used_gpa - fe.reg[0].gpa);
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_NUM, 0, cfg.qsize,
	    true), 0);
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_BASE, 0, 0, true), 0);
	ck_assert_int_eq(fe_request(&fe, FE_SET_VRING_ADDR, &a, sizeof(a),
	    NULL, 0, true), 0);
	ck_assert_int_eq(fe_request(&fe, FE_SET_VRING_KICK, &nofd, 8, NULL, 0,
	    true), 0);
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_ENABLE, 0, 1, true),
	    0);
	for (i = 0; i < 3; i++) {
		ck_assert(fe_post1(&fe, fe_alloc(&fe, 100, 16), 100) >= 0);
		/* No kick. */
		ck_assert_uint_eq(fe_wait_used(&fe, 1, 3000), 1);
		ck_assert(fe_get_used(&fe, &u));
		ck_assert_uint_eq(u.len, 100);
	}
	IT_END(&vd, &fe);
}
END_TEST

SUITE(it_datapath, IT_TIMEOUT, NULL, NULL,
    "buffers", TESTS(single_64_byte_buffer,
	bulk_4_mib_in_4096_byte_buffers, chain_of_writable_descriptors,
	indirect_table, mixed_requests_in_flight,
	huge_buffer_used_len_is_bytes_written,
	kick_without_fd_polls_the_ring),
    "memory", TESTS(add_mem_reg_buffer_spans_two_regions,
	gpa_zero_and_mmap_offset, mem_table_replaced_while_running,
	mem_add_and_remove_region_while_running),
    "notification", TESTS(event_idx_avail_event_follows_consumption,
	event_idx_used_event_suppresses_interrupts,
	no_event_idx_honours_no_interrupt_flag))
