/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The split virtqueue, device side.  The test plays the driver: it builds
 * rings and buffers in memfd-backed guest memory, then checks what the
 * device side makes of them, hostile rings first.
 *
 * Guest memory: region A (1 MiB) holds the rings, indirect tables and
 * buffers; region B (64 KiB) follows A directly in guest physical space
 * but sits elsewhere in front-end virtual space; after B there is a hole.
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unit.h"
#include "unit_ring.h"
#include "virtq.h"

#define PAGE		4096ull
#define A_SIZE		(1ull << 20)
#define B_SIZE		(64ull << 10)
#define GPA_A		0x40000000ull
#define GPA_B		(GPA_A + A_SIZE)
#define GPA_HOLE	(GPA_B + B_SIZE)
#define UVA_A		0x7f1200000000ull
#define UVA_B		(UVA_A + (16ull << 20))

#define DESC_OFF	0x0ull		/* up to 256 entries fit below AVAIL */
#define AVAIL_OFF	0x10000ull
#define USED_OFF	0x20000ull
#define IND_OFF		0x30000ull	/* indirect tables */
#define BUF_OFF		0x40000ull

#define BUF(n)		(GPA_A + BUF_OFF + (uint64_t)(n) * 0x1000)
#define IND(n)		(GPA_A + IND_OFF + (uint64_t)(n) * 0x1000)

#define W		VRING_DESC_F_WRITE
#define N		VRING_DESC_F_NEXT
#define I		VRING_DESC_F_INDIRECT

static struct memtable mt;
static struct virtq vq;
static struct virtq_req req;
static uint16_t drv_avail_idx;	/* the driver's avail index */
static int memfd_a;

/* Host address of one guest byte (the test's view as the driver). */
static unsigned char *
host(uint64_t gpa)
{
	uint64_t len = 1;
	unsigned char *p = memtable_gpa(&mt, gpa, &len);

	/* if/abort: called per byte, and a passing ck_assert costs a write. */
	if (p == NULL)
		ck_abort_msg("gpa 0x%llx not mapped",
		    (unsigned long long)gpa);
	return p;
}

/* Byte by byte, so that a write may straddle the A/B seam. */
static void
guest_write(uint64_t gpa, const void *buf, size_t len)
{
	const unsigned char *b = buf;
	size_t i;

	for (i = 0; i < len; i++)
		*host(gpa + i) = b[i];
}

static void
guest_write16(uint64_t gpa, uint16_t v)
{
	v = htole16(v);
	guest_write(gpa, &v, sizeof(v));
}

static uint16_t
guest_read16(uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, host(gpa), sizeof(v));
	return le16toh(v);
}

static uint32_t
guest_read32(uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, host(gpa), sizeof(v));
	return le32toh(v);
}

static void
put_desc_at(uint64_t gpa, uint64_t addr, uint32_t len, uint16_t flags,
    uint16_t next)
{
	struct vring_desc d = unit_desc(addr, len, flags, next);

	guest_write(gpa, &d, sizeof(d));
}

static void
put_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
    uint16_t next)
{
	put_desc_at(GPA_A + DESC_OFF + 16ull * i, addr, len, flags, next);
}

static void
put_ind(uint64_t table, unsigned i, uint64_t addr, uint32_t len,
    uint16_t flags, uint16_t next)
{
	put_desc_at(table + 16ull * i, addr, len, flags, next);
}

static void
set_avail_idx(uint16_t idx)
{
	guest_write16(GPA_A + AVAIL_OFF + 2, idx);
}

/* Makes head available, as a driver does. */
static void
offer(uint16_t head)
{
	guest_write16(GPA_A + AVAIL_OFF + 4 + 2ull * (drv_avail_idx %
	    vq.num), head);
	set_avail_idx(++drv_avail_idx);
}

static uint16_t
used_idx(void)
{
	return guest_read16(GPA_A + USED_OFF + 2);
}

/* used_event sits after the avail ring, avail_event after the used one. */
static void
set_used_event(uint16_t v)
{
	guest_write16(GPA_A + AVAIL_OFF + 4 + 2ull * vq.num, v);
}

static uint16_t
avail_event(void)
{
	return guest_read16(GPA_A + USED_OFF + 4 + 8ull * vq.num);
}

/*
 * Fresh guest memory and a mapped ring of num entries whose used index
 * starts at used_start (as if a previous connection had left it there).
 */
static void
env_init(uint32_t num, bool event_idx, uint16_t used_start)
{
	struct vu_mem_region r[2];
	int fds[2];

	memtable_clear(&mt);
	if (memfd_a >= 0)
		close(memfd_a);
	memfd_a = unit_memfd("guest-a", A_SIZE);
	r[0].guest_phys_addr = GPA_A;
	r[0].memory_size = A_SIZE;
	r[0].userspace_addr = UVA_A;
	r[0].mmap_offset = 0;
	r[1].guest_phys_addr = GPA_B;
	r[1].memory_size = B_SIZE;
	r[1].userspace_addr = UVA_B;
	r[1].mmap_offset = 0;
	fds[0] = dup(memfd_a);
	fds[1] = unit_memfd("guest-b", B_SIZE);
	ck_assert_int_eq(memtable_set(&mt, r, 2, fds, 2), 0);

	virtq_init(&vq);
	ck_assert_int_eq(virtq_set_num(&vq, num), 0);
	ck_assert_int_eq(virtq_set_addr(&vq, UVA_A + DESC_OFF,
	    UVA_A + AVAIL_OFF, UVA_A + USED_OFF), 0);
	vq.event_idx = event_idx;
	guest_write16(GPA_A + USED_OFF + 2, used_start);
	ck_assert_int_eq(virtq_map(&vq, &mt), 0);
	drv_avail_idx = 0;
	memset(&req, 0xa5, sizeof(req));
}

static void
setup(void)
{
	memtable_init(&mt);
	memfd_a = -1;
	env_init(16, false, 0);
}

static void
teardown(void)
{
	memtable_clear(&mt);
	if (memfd_a >= 0)
		close(memfd_a);
	memfd_a = -1;
}

static int
pop(size_t max_len)
{
	return virtq_pop(&vq, &mt, &req, max_len);
}

/* The next pop (max_len bytes at most) takes niov iovecs, len bytes. */
static void
expect_pop(size_t max_len, unsigned niov, size_t len)
{
	ck_assert_int_eq(pop(max_len), 1);
	ck_assert_uint_eq(req.niov, niov);
	ck_assert_uint_eq(req.len, len);
}

/* The request popped has this head and its iovecs start at gpa[0..n). */
static void
expect_head_at(uint16_t head, const uint64_t *gpa, unsigned n)
{
	unsigned i;

	ck_assert_uint_eq(req.head, head);
	for (i = 0; i < n; i++)
		ck_assert_ptr_eq(req.iov[i].iov_base, host(gpa[i]));
}

/*
 * Offers head 0 again, pops it and trims it to `to` bytes: len bytes in
 * niov iovecs are left.
 */
static void
pop_trimmed(size_t to, size_t len, unsigned niov)
{
	offer(0);
	ck_assert_int_eq(pop(4096), 1);
	virtq_req_trim(&req, to);
	ck_assert_uint_eq(req.len, len);
	ck_assert_uint_eq(req.niov, niov);
}

/*
 * The ring is broken now and stays broken: even a well-formed request
 * offered afterwards is not served.
 */
#define expect_broken() do {						\
	uint16_t last_ = vq.last_avail_idx;				\
									\
	ck_assert_int_eq(pop(4096), -1);				\
	ck_assert_msg(vq.broken, "broken not latched");			\
	ck_assert_uint_eq(vq.last_avail_idx, last_);			\
	put_desc(vq.num - 1, BUF(0), 64, W, 0);				\
	offer((uint16_t)(vq.num - 1));					\
	ck_assert_int_eq(pop(4096), -1);				\
	ck_assert_int_eq(pop(4096), -1);				\
	ck_assert(!virtq_enable_notify(&vq));				\
} while (0)

/* --- configuration ------------------------------------------------- */

START_TEST(set_num_bounds)
{
	static const uint32_t bad[] = { 0, 3, 6, 100, 32767, 32769, 65535,
	    65536, 1u << 31, UINT32_MAX };
	static const uint32_t good[] = { 1, 2, 4, 256, 32768 };
	struct virtq q;
	unsigned i;

	virtq_init(&q);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(virtq_set_num(&q, bad[i]) == -1,
		    "size %u accepted", bad[i]);
		ck_assert_uint_eq(q.num, 0);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ck_assert_msg(virtq_set_num(&q, good[i]) == 0,
		    "size %u refused", good[i]);
		ck_assert_uint_eq(q.num, good[i]);
	}
	/* A refusal keeps the size that was set. */
	ck_assert_int_eq(virtq_set_num(&q, 3), -1);
	ck_assert_uint_eq(q.num, 32768);
}
END_TEST

/* VIRTIO 1.x 2.7: descriptors 16-byte, avail 2-byte, used 4-byte. */
START_TEST(set_addr_alignment)
{
	struct virtq q;

	virtq_init(&q);
	ck_assert_int_eq(virtq_set_addr(&q, 0x1008, 0x2000, 0x3000), -1);
	ck_assert_int_eq(virtq_set_addr(&q, 0x1001, 0x2000, 0x3000), -1);
	ck_assert_int_eq(virtq_set_addr(&q, 0x1000, 0x2001, 0x3000), -1);
	ck_assert_int_eq(virtq_set_addr(&q, 0x1000, 0x2000, 0x3002), -1);
	ck_assert_int_eq(virtq_set_addr(&q, 0x1000, 0x2000, 0x3001), -1);
	ck_assert(!q.addr_set);
	/* Exactly the minimum alignment of each part. */
	ck_assert_int_eq(virtq_set_addr(&q, 0x1010, 0x2002, 0x3004), 0);
	ck_assert(q.addr_set);
	ck_assert_uint_eq(q.desc_uva, 0x1010);
	ck_assert_uint_eq(q.avail_uva, 0x2002);
	ck_assert_uint_eq(q.used_uva, 0x3004);
}
END_TEST

START_TEST(map_needs_num_and_addr)
{
	struct virtq q;

	virtq_init(&q);
	ck_assert_int_eq(virtq_map(&q, &mt), -1);
	ck_assert_int_eq(virtq_set_num(&q, 16), 0);
	ck_assert_int_eq(virtq_map(&q, &mt), -1);
	ck_assert(!virtq_ready(&q, &mt));
	ck_assert_int_eq(virtq_set_addr(&q, UVA_A, UVA_A + AVAIL_OFF,
	    UVA_A + USED_OFF), 0);
	ck_assert_int_eq(virtq_map(&q, &mt), 0);
	ck_assert(q.mapped);
}
END_TEST

/* Each ring must lie whole inside one region, EVENT_IDX words included. */
START_TEST(map_rings_outside_memory)
{
	uint64_t used_end = UVA_A + A_SIZE - (4 + 8 * 16);
	uint64_t avail_end = UVA_A + A_SIZE - (4 + 2 * 16);

	/* In the uva hole between A and B. */
	ck_assert_int_eq(virtq_set_addr(&vq, UVA_A + A_SIZE, UVA_A + AVAIL_OFF,
	    UVA_A + USED_OFF), 0);
	ck_assert_int_eq(virtq_map(&vq, &mt), -1);
	ck_assert(!vq.mapped);
	ck_assert_int_eq(pop(64), -1);
	ck_assert(!vq.broken);
	ck_assert_int_eq(virtq_set_addr(&vq, UVA_A, UVA_A + AVAIL_OFF, 0), 0);
	ck_assert_int_eq(virtq_map(&vq, &mt), -1);
	/* A gpa is not a uva: the ring addresses are front-end virtual. */
	ck_assert_int_eq(virtq_set_addr(&vq, GPA_A, GPA_A + AVAIL_OFF,
	    GPA_A + USED_OFF), 0);
	ck_assert_int_eq(virtq_map(&vq, &mt), -1);

	/* The used ring ends exactly at the end of A: fits... */
	ck_assert_int_eq(virtq_set_addr(&vq, UVA_A, UVA_A + AVAIL_OFF,
	    used_end), 0);
	ck_assert_int_eq(virtq_map(&vq, &mt), 0);
	/* ...but not with the avail_event word of EVENT_IDX. */
	vq.event_idx = true;
	ck_assert_int_eq(virtq_map(&vq, &mt), -1);
	ck_assert_int_eq(virtq_set_addr(&vq, UVA_A, UVA_A + AVAIL_OFF,
	    used_end - 4), 0);
	ck_assert_int_eq(virtq_map(&vq, &mt), 0);

	/* The same for the avail ring and used_event. */
	vq.event_idx = false;
	ck_assert_int_eq(virtq_set_addr(&vq, UVA_A, avail_end,
	    UVA_A + USED_OFF), 0);
	ck_assert_int_eq(virtq_map(&vq, &mt), 0);
	vq.event_idx = true;
	ck_assert_int_eq(virtq_map(&vq, &mt), -1);

	/* A descriptor table crossing from A into B (adjacent in gpa only). */
	vq.event_idx = false;
	ck_assert_int_eq(virtq_set_addr(&vq, UVA_A + A_SIZE - 128,
	    UVA_A + AVAIL_OFF, UVA_A + USED_OFF), 0);
	ck_assert_int_eq(virtq_map(&vq, &mt), -1);
	/* The whole ring in B works. */
	ck_assert_int_eq(virtq_set_addr(&vq, UVA_B, UVA_B + 0x1000,
	    UVA_B + 0x2000), 0);
	ck_assert_int_eq(virtq_map(&vq, &mt), 0);
}
END_TEST

/* A table change under a mapped ring: re-translated, used index kept. */
START_TEST(ready_remaps_after_table_change)
{
	struct vu_mem_region r;

	put_desc(0, BUF(0), 8, W, 0);
	offer(0);
	ck_assert_int_eq(pop(64), 1);
	virtq_push(&vq, 0, 8);
	ck_assert(virtq_ready(&vq, &mt));

	r.guest_phys_addr = GPA_HOLE + PAGE;
	r.memory_size = PAGE;
	r.userspace_addr = UVA_A + (64ull << 20);
	r.mmap_offset = 0;
	ck_assert_int_eq(memtable_add(&mt, &r, unit_memfd("c", PAGE)), 0);
	ck_assert_uint_ne(vq.mapped_gen, mt.generation);
	ck_assert(virtq_ready(&vq, &mt));
	ck_assert_uint_eq(vq.mapped_gen, mt.generation);
	ck_assert_uint_eq(vq.used_idx, 1);
	offer(0);
	ck_assert_int_eq(pop(64), 1);
	virtq_push(&vq, 0, 8);
	ck_assert_uint_eq(used_idx(), 2);

	/* A table without the rings: not ready. */
	ck_assert_int_eq(memtable_set(&mt, &r, 1,
	    (int[]){ unit_memfd("c", PAGE) }, 1), 0);
	ck_assert(!virtq_ready(&vq, &mt));
}
END_TEST

/* --- well-formed requests ---------------------------------------- */

START_TEST(pop_empty)
{
	ck_assert_int_eq(pop(4096), 0);
	ck_assert_uint_eq(vq.last_avail_idx, 0);
	ck_assert(!vq.broken);
}
END_TEST

START_TEST(pop_single)
{
	put_desc(3, BUF(1), 100, W, 0);
	offer(3);
	expect_pop(4096, 1, 100);
	expect_head_at(3, (uint64_t[]){ BUF(1) }, 1);
	ck_assert_uint_eq(req.iov[0].iov_len, 100);
	ck_assert_uint_eq(vq.last_avail_idx, 1);
	ck_assert_int_eq(pop(4096), 0);
}
END_TEST

START_TEST(pop_chain)
{
	put_desc(5, BUF(0), 10, W | N, 2);
	put_desc(2, BUF(1), 20, W | N, 9);
	put_desc(9, BUF(2), 30, W, 1);	/* next ignored without NEXT */
	offer(5);
	expect_pop(4096, 3, 60);
	expect_head_at(5, (uint64_t[]){ BUF(0), BUF(1), BUF(2) }, 3);
	ck_assert_uint_eq(req.iov[2].iov_len, 30);
}
END_TEST

/* A chain through every descriptor of the table is not a loop. */
START_TEST(pop_chain_whole_table)
{
	unsigned i;

	for (i = 0; i < vq.num; i++)
		put_desc(i, BUF(i), 1, W | (i + 1 < vq.num ? N : 0), i + 1);
	offer(0);
	expect_pop(4096, vq.num, vq.num);
}
END_TEST

/* Zero-length descriptors are skipped when others have bytes. */
START_TEST(pop_zero_length_member)
{
	put_desc(0, BUF(0), 0, W | N, 1);
	put_desc(1, BUF(1), 8, W | N, 2);
	put_desc(2, GPA_HOLE, 0, W, 0);	/* no bytes: address not used */
	offer(0);
	expect_pop(4096, 1, 8);
	ck_assert_ptr_eq(req.iov[0].iov_base, host(BUF(1)));
}
END_TEST

START_TEST(pop_indirect)
{
	put_ind(IND(0), 0, BUF(0), 16, W | N, 2);
	put_ind(IND(0), 2, BUF(2), 32, W | N, 1);
	put_ind(IND(0), 1, BUF(1), 64, W, 0);
	put_desc(7, IND(0), 3 * 16, I, 0);
	offer(7);
	expect_pop(4096, 3, 112);
	ck_assert_uint_eq(req.iov[2].iov_len, 64);
	expect_head_at(7, (uint64_t[]){ BUF(0), BUF(2), BUF(1) }, 3);
}
END_TEST

/*
 * VIRTIO 1.x 2.7.5.3.2: "The device MUST handle the case of zero or more
 * normal chained descriptors followed by a single descriptor with
 * flags&VIRTQ_DESC_F_INDIRECT."
 */
START_TEST(pop_chain_then_indirect)
{
	put_ind(IND(0), 0, BUF(1), 20, W | N, 1);
	put_ind(IND(0), 1, BUF(2), 30, W, 0);
	put_desc(4, BUF(0), 10, W | N, 9);
	put_desc(9, IND(0), 32, I, 0);
	offer(4);
	expect_pop(4096, 3, 60);
	expect_head_at(4, (uint64_t[]){ BUF(0), BUF(1), BUF(2) }, 3);
}
END_TEST

/* The INDIRECT descriptor itself need not carry WRITE. */
START_TEST(pop_indirect_write_flag_on_table)
{
	put_ind(IND(0), 0, BUF(0), 16, W, 0);
	put_desc(0, IND(0), 16, I | W, 0);
	offer(0);
	ck_assert_int_eq(pop(4096), 1);
	ck_assert_uint_eq(req.len, 16);
}
END_TEST

/*
 * An indirect table across the seam of A and B, with one entry cut in
 * half by it: adjacent in guest physical space is contiguous.
 */
START_TEST(pop_indirect_spanning_regions)
{
	uint64_t table = GPA_B - 24;

	put_ind(table, 0, BUF(0), 10, W | N, 1);	/* A only */
	put_ind(table, 1, BUF(1), 20, W | N, 2);	/* 8 in A, 8 in B */
	put_ind(table, 2, GPA_B + 0x100, 30, W, 0);	/* B only */
	put_desc(0, table, 48, I, 0);
	offer(0);
	expect_pop(4096, 3, 60);
	ck_assert_ptr_eq(req.iov[1].iov_base, host(BUF(1)));
	ck_assert_ptr_eq(req.iov[2].iov_base, host(GPA_B + 0x100));
}
END_TEST

/*
 * VIRTIO 1.x 2.7.5.3.1: no chain is longer than the queue size, indirect
 * tables included.  A chain of exactly num entries in a larger table is
 * fine.
 */
START_TEST(pop_indirect_chain_of_queue_size)
{
	unsigned i;

	for (i = 0; i < vq.num; i++)
		put_ind(IND(0), i, BUF(i), 1, W | (i + 1 < vq.num ? N : 0),
		    i + 1);
	put_desc(0, IND(0), 2 * vq.num * 16, I, 0);
	offer(0);
	expect_pop(4096, vq.num, vq.num);
}
END_TEST

/* One buffer across the seam: two iovecs, one per mapping. */
START_TEST(pop_buffer_spanning_regions)
{
	put_desc(0, GPA_B - 10, 30, W, 0);
	offer(0);
	expect_pop(4096, 2, 30);
	ck_assert_ptr_eq(req.iov[0].iov_base, host(GPA_B - 10));
	ck_assert_uint_eq(req.iov[0].iov_len, 10);
	ck_assert_ptr_eq(req.iov[1].iov_base, host(GPA_B));
	ck_assert_uint_eq(req.iov[1].iov_len, 20);
}
END_TEST

START_TEST(pop_max_len_caps)
{
	put_desc(0, BUF(0), 100, W | N, 1);
	put_desc(1, BUF(1), 100, W | N, 2);
	put_desc(2, BUF(2), 100, W, 0);

	offer(0);
	expect_pop(150, 2, 150);
	ck_assert_uint_eq(req.iov[1].iov_len, 50);

	/* Exactly the first descriptor: no empty second iovec. */
	offer(0);
	expect_pop(100, 1, 100);

	offer(0);
	expect_pop(1, 1, 1);
	ck_assert_uint_eq(req.iov[0].iov_len, 1);

	offer(0);
	ck_assert_int_eq(pop(SIZE_MAX), 1);
	ck_assert_uint_eq(req.len, 300);
	ck_assert_uint_eq(vq.last_avail_idx, 4);
}
END_TEST

/*
 * A descriptor as long as all of guest memory is capped too (the length is
 * guest-chosen); one longer than memory is hostile_long_buffer_past_memory.
 */
START_TEST(pop_huge_descriptor_capped)
{
	put_desc(0, GPA_A, (uint32_t)(A_SIZE + B_SIZE), W, 0);
	offer(0);
	expect_pop(4096, 1, 4096);
}
END_TEST

/* Longer chains than VIRTQ_MAX_IOV are served short, never overflowed. */
START_TEST(pop_iov_cap)
{
	unsigned i, n = 100;

	env_init(128, false, 0);
	for (i = 0; i < n; i++)
		put_desc(i, BUF(i % 64) + 8 * (i / 64), 3,
		    W | (i + 1 < n ? N : 0), i + 1);
	offer(0);
	expect_pop(4096, VIRTQ_MAX_IOV, 3 * VIRTQ_MAX_IOV);
	ck_assert_ptr_eq(req.iov[VIRTQ_MAX_IOV - 1].iov_base,
	    host(BUF(VIRTQ_MAX_IOV - 1)));
	ck_assert_uint_eq(vq.last_avail_idx, 1);
	ck_assert(!vq.broken);

	/* The cap hit in the middle of one descriptor split across A/B. */
	for (i = 0; i < VIRTQ_MAX_IOV - 1; i++)
		put_desc(i, BUF(i), 1, W | N, i + 1);
	put_desc(VIRTQ_MAX_IOV - 1, GPA_B - 4, 8, W, 0);
	offer(0);
	expect_pop(4096, VIRTQ_MAX_IOV, VIRTQ_MAX_IOV - 1 + 4);
}
END_TEST

START_TEST(req_trim)
{
	put_desc(0, BUF(0), 10, W | N, 1);
	put_desc(1, BUF(1), 20, W | N, 2);
	put_desc(2, BUF(2), 30, W, 0);

	pop_trimmed(25, 25, 2);
	ck_assert_uint_eq(req.iov[1].iov_len, 15);
	/* On an iovec boundary. */
	pop_trimmed(30, 30, 2);
	ck_assert_uint_eq(req.iov[1].iov_len, 20);
	pop_trimmed(1, 1, 1);
	ck_assert_uint_eq(req.iov[0].iov_len, 1);
	/* Longer than the request, or equal: nothing changes. */
	pop_trimmed(1000, 60, 3);
	virtq_req_trim(&req, 60);
	ck_assert_uint_eq(req.len, 60);
	ck_assert_uint_eq(req.iov[2].iov_len, 30);
}
END_TEST

START_TEST(unpop_pops_again)
{
	put_desc(4, BUF(0), 10, W, 0);
	put_desc(6, BUF(1), 10, W, 0);
	offer(4);
	offer(6);
	ck_assert_int_eq(pop(4096), 1);
	ck_assert_uint_eq(req.head, 4);
	virtq_unpop(&vq);
	ck_assert_uint_eq(vq.last_avail_idx, 0);
	ck_assert_int_eq(pop(4096), 1);
	ck_assert_uint_eq(req.head, 4);
	ck_assert_int_eq(pop(4096), 1);
	ck_assert_uint_eq(req.head, 6);
	virtq_unpop(&vq);
	ck_assert_int_eq(pop(4096), 1);
	ck_assert_uint_eq(req.head, 6);
	ck_assert_int_eq(pop(4096), 0);
}
END_TEST

/* A ring filled completely (num outstanding) is legal. */
START_TEST(pop_full_ring)
{
	unsigned i;

	for (i = 0; i < vq.num; i++) {
		put_desc(i, BUF(i), 4, W, 0);
		offer((uint16_t)i);
	}
	for (i = 0; i < vq.num; i++) {
		ck_assert_int_eq(pop(4096), 1);
		ck_assert_uint_eq(req.head, i);
	}
	ck_assert_int_eq(pop(4096), 0);
	ck_assert(!vq.broken);
}
END_TEST

/* Indexes are free-running 16-bit counters: 65535 -> 0 is not a jump. */
START_TEST(pop_avail_idx_wraps)
{
	virtq_set_base(&vq, 65534);
	drv_avail_idx = 65534;
	put_desc(0, BUF(0), 4, W, 0);
	offer(0);
	offer(0);
	offer(0);
	ck_assert_uint_eq(drv_avail_idx, 1);
	ck_assert_int_eq(pop(4096), 1);
	ck_assert_int_eq(pop(4096), 1);
	ck_assert_uint_eq(vq.last_avail_idx, 0);
	ck_assert_int_eq(pop(4096), 1);
	ck_assert_int_eq(pop(4096), 0);
}
END_TEST

/* --- hostile rings ------------------------------------------------- */

/*
 * Hostile rings as data: each case writes its descriptors (into the
 * ring's table or an indirect table, in that order), offers head (or
 * writes avail_idx instead), and the ring must be broken for good
 * (expect_broken).
 */
#define RING		(GPA_A + DESC_OFF)	/* the ring's own table */

static const struct hostile_script {
	const char	*name;
	struct {
		uint64_t	 table;	/* RING or a table's gpa; 0: end */
		unsigned	 i;	/* the entry in it */
		uint64_t	 addr;
		uint32_t	 len;
		uint16_t	 flags;
		uint16_t	 next;
	}		 d[3];
	uint16_t	 head;
	uint16_t	 avail_idx;	/* not 0: written, head not offered */
} hostile_scripts[] = {
	{ "hostile_loop", .d = {
	    { RING, 0, BUF(0), 8, W | N, 1 },
	    { RING, 1, BUF(1), 8, W | N, 0 } } },
	{ "hostile_self_loop", .head = 2, .d = {
	    { RING, 2, BUF(0), 8, W | N, 2 } } },
	{ "hostile_next_out_of_range", .d = {
	    { RING, 0, BUF(0), 8, W | N, 16 } } },
	{ "hostile_next_max", .d = {
	    { RING, 0, BUF(0), 8, W | N, UINT16_MAX } } },
	{ "hostile_head_out_of_range", .head = 16, .d = {
	    { RING, 0, BUF(0), 8, W, 0 } } },
	{ "hostile_head_max", .head = UINT16_MAX },
	{ "hostile_avail_idx_too_far", .avail_idx = 17, .d = {
	    { RING, 0, BUF(0), 8, W, 0 } } },
	{ "hostile_nested_indirect", .d = {
	    { IND(1), 0, BUF(0), 8, W, 0 }, { IND(0), 0, IND(1), 16, I, 0 },
	    { RING, 0, IND(0), 16, I, 0 } } },
	{ "hostile_indirect_with_next", .d = {
	    { IND(0), 0, BUF(0), 8, W, 0 }, { RING, 0, IND(0), 16, I | N, 1 },
	    { RING, 1, BUF(1), 8, W, 0 } } },
	{ "hostile_indirect_len_zero", .d = {
	    { RING, 0, IND(0), 0, I, 0 } } },
	{ "hostile_indirect_len_not_multiple", .d = {
	    { IND(0), 0, BUF(0), 8, W, 0 }, { RING, 0, IND(0), 24, I, 0 } } },
	{ "hostile_indirect_len_short", .d = {
	    { RING, 0, IND(0), 15, I, 0 } } },
	{ "hostile_indirect_outside_memory", .d = {
	    { RING, 0, GPA_HOLE, 16, I, 0 } } },
	/* The table starts in B but its second entry is in the hole after B. */
	{ "hostile_indirect_runs_off_memory", .d = {
	    { GPA_HOLE - 16, 0, BUF(0), 8, W | N, 1 },
	    { RING, 0, GPA_HOLE - 16, 32, I, 0 } } },
	{ "hostile_indirect_wraps", .d = {
	    { RING, 0, UINT64_MAX - 15, 32, I, 0 } } },
	{ "hostile_indirect_loop", .d = {
	    { IND(0), 0, BUF(0), 8, W | N, 1 },
	    { IND(0), 1, BUF(1), 8, W | N, 0 },
	    { RING, 0, IND(0), 32, I, 0 } } },
	{ "hostile_indirect_next_out_of_range", .d = {
	    { IND(0), 0, BUF(0), 8, W | N, 2 }, { IND(0), 2, BUF(1), 8, W, 0 },
	    { RING, 0, IND(0), 32, I, 0 } } },
	{ "hostile_indirect_readable", .d = {
	    { IND(0), 0, BUF(0), 8, W | N, 1 }, { IND(0), 1, BUF(1), 8, 0, 0 },
	    { RING, 0, IND(0), 32, I, 0 } } },
	{ "hostile_addr_outside_memory", .d = {
	    { RING, 0, GPA_HOLE + 0x100, 8, W, 0 } } },
	{ "hostile_addr_zero", .d = {
	    { RING, 0, 0, 8, W, 0 } } },
	/* The buffer starts in B and runs into the hole. */
	{ "hostile_buffer_runs_off_memory", .d = {
	    { RING, 0, GPA_HOLE - 10, 20, W, 0 } } },
	{ "hostile_addr_wraps", .d = {
	    { RING, 0, UINT64_MAX, 16, W, 0 } } },
	{ "hostile_readable_descriptor", .d = {
	    { RING, 0, BUF(0), 8, 0, 0 } } },
	{ "hostile_readable_in_chain", .d = {
	    { RING, 0, BUF(0), 8, W | N, 1 }, { RING, 1, BUF(1), 8, N, 2 },
	    { RING, 2, BUF(2), 8, W, 0 } } },
	{ "hostile_zero_length", .d = {
	    { RING, 0, BUF(0), 0, W, 0 } } },
	{ "hostile_zero_length_chain", .d = {
	    { RING, 0, BUF(0), 0, W | N, 1 }, { RING, 1, BUF(1), 0, W | N, 2 },
	    { RING, 2, BUF(2), 0, W, 0 } } },
	{ "hostile_zero_length_indirect", .d = {
	    { IND(0), 0, BUF(0), 0, W, 0 }, { RING, 0, IND(0), 16, I, 0 } } },
};

START_TEST(hostile_script)
{
	const struct hostile_script *h = &hostile_scripts[_i];
	const unsigned n = sizeof(h->d) / sizeof(h->d[0]);
	unsigned k;

	for (k = 0; k < n && h->d[k].table != 0; k++)
		put_desc_at(h->d[k].table + 16ull * h->d[k].i, h->d[k].addr,
		    h->d[k].len, h->d[k].flags, h->d[k].next);
	if (h->avail_idx != 0)
		set_avail_idx(h->avail_idx);
	else
		offer(h->head);
	expect_broken();
}
END_TEST

START_TEST(hostile_avail_idx_backwards)
{
	put_desc(0, BUF(0), 8, W, 0);
	offer(0);
	ck_assert_int_eq(pop(4096), 1);
	set_avail_idx(0);	/* 65535 "new" entries */
	expect_broken();
}
END_TEST

START_TEST(hostile_indirect_chain_longer_than_queue)
{
	unsigned i, n = vq.num + 1;

	for (i = 0; i < n; i++)
		put_ind(IND(0), i, BUF(i), 1, W | (i + 1 < n ? N : 0), i + 1);
	put_desc(0, IND(0), 2 * vq.num * 16, I, 0);
	offer(0);
	expect_broken();
}
END_TEST

/* CPU time of this thread: immune to a busy machine, unlike wall time. */
static double
thread_cpu_s(void)
{
	struct timespec ts;

	ck_assert_int_eq(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A table that claims 2^28 entries with a loop at its start: the walk
 * must stop at the queue size, not after 2^28 steps (seconds of CPU for
 * each such request).
 */
START_TEST(hostile_indirect_huge_table_loop)
{
	double t0, cpu;

	put_ind(IND(0), 0, BUF(0), 8, W | N, 1);
	put_ind(IND(0), 1, BUF(1), 8, W | N, 0);
	put_desc(0, IND(0), UINT32_MAX & ~15u, I, 0);
	offer(0);
	t0 = thread_cpu_s();
	ck_assert_int_eq(pop(4096), -1);
	cpu = thread_cpu_s() - t0;
	ck_assert_msg(cpu < 0.5, "the walk took %.1f s of CPU", cpu);
	expect_broken();
}
END_TEST

/* Guest memory really ends at 2^64 - 1: the buffer must not wrap to 0. */
START_TEST(hostile_addr_wraps_from_top_region)
{
	struct vu_mem_region r[2];

	r[0].guest_phys_addr = 0;
	r[0].memory_size = PAGE;
	r[0].userspace_addr = UVA_A + (128ull << 20);
	r[0].mmap_offset = 0;
	r[1].guest_phys_addr = UINT64_MAX - PAGE + 1;
	r[1].memory_size = PAGE;
	r[1].userspace_addr = UVA_A + (256ull << 20);
	r[1].mmap_offset = 0;
	ck_assert_int_eq(memtable_add(&mt, &r[0], unit_memfd("low", PAGE)),
	    0);
	ck_assert_int_eq(memtable_add(&mt, &r[1], unit_memfd("top", PAGE)),
	    0);
	ck_assert(virtq_ready(&vq, &mt));

	/* Fine up to the last byte... */
	put_desc(0, UINT64_MAX - 7, 8, W, 0);
	offer(0);
	ck_assert_int_eq(pop(4096), 1);
	ck_assert_uint_eq(req.len, 8);
	/* ...one more and it would wrap into page 0, which is mapped. */
	put_desc(0, UINT64_MAX - 7, 16, W, 0);
	offer(0);
	expect_broken();
}
END_TEST

/* A later, bad request does not undo the good ones before it. */
START_TEST(hostile_after_good)
{
	put_desc(0, BUF(0), 8, W, 0);
	put_desc(1, BUF(1), 8, 0, 0);
	offer(0);
	offer(1);
	ck_assert_int_eq(pop(4096), 1);
	ck_assert_uint_eq(req.head, 0);
	virtq_push(&vq, 0, 8);
	expect_broken();
	ck_assert_uint_eq(used_idx(), 1);
	ck_assert_uint_eq(vq.last_avail_idx, 1);
}
END_TEST

/* --- completion and notification ---------------------------------- */

START_TEST(push_writes_used_le)
{
	const unsigned char *e;

	env_init(8, false, 0);
	virtq_push(&vq, 7, 0x01020304);
	e = host(GPA_A + USED_OFF + 4);
	ck_assert_uint_eq(e[0], 7);
	ck_assert_uint_eq(e[1], 0);
	ck_assert_uint_eq(e[2], 0);
	ck_assert_uint_eq(e[3], 0);
	ck_assert_uint_eq(e[4], 0x04);
	ck_assert_uint_eq(e[5], 0x03);
	ck_assert_uint_eq(e[6], 0x02);
	ck_assert_uint_eq(e[7], 0x01);
	e = host(GPA_A + USED_OFF + 2);
	ck_assert_uint_eq(e[0], 1);
	ck_assert_uint_eq(e[1], 0);

	virtq_push(&vq, 0x0102, 1);
	ck_assert_uint_eq(guest_read32(GPA_A + USED_OFF + 4 + 8), 0x0102);
	ck_assert_uint_eq(guest_read32(GPA_A + USED_OFF + 4 + 12), 1);
	ck_assert_uint_eq(used_idx(), 2);
	/* The used flags are the device's and stay 0. */
	ck_assert_uint_eq(guest_read16(GPA_A + USED_OFF), 0);
}
END_TEST

/* The used index goes on from where the ring was at map time. */
START_TEST(used_idx_continues)
{
	env_init(16, false, 1000);
	ck_assert_uint_eq(vq.used_idx, 1000);
	virtq_push(&vq, 3, 5);
	ck_assert_uint_eq(used_idx(), 1001);
	/* 1000 % 16 = 8 */
	ck_assert_uint_eq(guest_read32(GPA_A + USED_OFF + 4 + 8 * 8), 3);
	ck_assert_uint_eq(guest_read32(GPA_A + USED_OFF + 4 + 8 * 8 + 4), 5);
}
END_TEST

START_TEST(used_idx_wraps)
{
	env_init(16, false, 65535);
	virtq_push(&vq, 1, 1);
	ck_assert_uint_eq(used_idx(), 0);
	/* 65535 % 16 = 15 */
	ck_assert_uint_eq(guest_read32(GPA_A + USED_OFF + 4 + 8 * 15), 1);
	virtq_push(&vq, 2, 1);
	ck_assert_uint_eq(used_idx(), 1);
	ck_assert_uint_eq(guest_read32(GPA_A + USED_OFF + 4), 2);
}
END_TEST

START_TEST(enable_notify_event_idx)
{
	env_init(16, true, 0);
	guest_write16(GPA_A + USED_OFF + 4 + 8 * 16, 0xabcd);
	ck_assert(!virtq_enable_notify(&vq));
	ck_assert_uint_eq(avail_event(), 0);

	put_desc(0, BUF(0), 8, W, 0);
	offer(0);
	ck_assert_int_eq(pop(4096), 1);
	ck_assert(!virtq_enable_notify(&vq));
	ck_assert_uint_eq(avail_event(), 1);
	/* A buffer that arrives before the re-check is reported. */
	offer(0);
	ck_assert(virtq_enable_notify(&vq));
	ck_assert_uint_eq(avail_event(), 1);
	/* Little-endian in memory. */
	virtq_set_base(&vq, 0x0203);
	set_avail_idx(0x0203);
	ck_assert(!virtq_enable_notify(&vq));
	ck_assert_uint_eq(host(GPA_A + USED_OFF + 4 + 8 * 16)[0], 0x03);
	ck_assert_uint_eq(host(GPA_A + USED_OFF + 4 + 8 * 16)[1], 0x02);
}
END_TEST

START_TEST(enable_notify_no_event_idx)
{
	guest_write16(GPA_A + USED_OFF + 4 + 8 * 16, 0xabcd);
	ck_assert(!virtq_enable_notify(&vq));
	put_desc(0, BUF(0), 8, W, 0);
	offer(0);
	ck_assert(virtq_enable_notify(&vq));
	/* Without EVENT_IDX there is no avail_event word to write. */
	ck_assert_uint_eq(avail_event(), 0xabcd);
}
END_TEST

START_TEST(should_notify_flags)
{
	virtq_push(&vq, 0, 1);
	ck_assert(virtq_should_notify(&vq));
	guest_write16(GPA_A + AVAIL_OFF, VRING_AVAIL_F_NO_INTERRUPT);
	virtq_push(&vq, 0, 1);
	ck_assert(!virtq_should_notify(&vq));
	/* Other flag bits are not NO_INTERRUPT. */
	guest_write16(GPA_A + AVAIL_OFF, 0xfffe);
	ck_assert(virtq_should_notify(&vq));
}
END_TEST

/*
 * vring_need_event(event, new, old): interrupt iff event is in
 * [old, new), the used entries published since the last interrupt.
 */
START_TEST(should_notify_event_idx)
{
	env_init(16, true, 0);
	/* Nothing signalled yet: always. */
	virtq_push(&vq, 0, 1);			/* used 1 */
	set_used_event(100);
	ck_assert(virtq_should_notify(&vq));	/* old := 1 */

	virtq_push(&vq, 0, 1);			/* used 2 */
	set_used_event(1);			/* event == old */
	ck_assert(virtq_should_notify(&vq));	/* old := 2 */

	virtq_push(&vq, 0, 1);			/* used 3 */
	set_used_event(3);			/* event == new: not yet */
	ck_assert(!virtq_should_notify(&vq));	/* old := 3 */

	virtq_push(&vq, 0, 1);
	virtq_push(&vq, 0, 1);			/* used 5, old 3 */
	set_used_event(4);
	ck_assert(virtq_should_notify(&vq));

	virtq_push(&vq, 0, 1);			/* used 6, old 5 */
	set_used_event(4);			/* already passed */
	ck_assert(!virtq_should_notify(&vq));

	/* SET_VRING_BASE forgets what was signalled. */
	virtq_set_base(&vq, 0);
	set_used_event(1000);
	ck_assert(virtq_should_notify(&vq));
}
END_TEST

START_TEST(should_notify_event_idx_wraps)
{
	env_init(16, true, 65534);
	virtq_push(&vq, 0, 1);			/* used 65535 */
	ck_assert(virtq_should_notify(&vq));	/* old := 65535 */

	virtq_push(&vq, 0, 1);			/* used 0 */
	set_used_event(65535);
	ck_assert(virtq_should_notify(&vq));	/* old := 0 */

	virtq_push(&vq, 0, 1);			/* used 1 */
	set_used_event(65535);
	ck_assert(!virtq_should_notify(&vq));	/* old := 1 */

	/* Three entries across the wrap: old 1 ... */
	env_init(16, true, 65533);
	virtq_push(&vq, 0, 1);			/* used 65534 */
	ck_assert(virtq_should_notify(&vq));	/* old := 65534 */
	virtq_push(&vq, 0, 1);
	virtq_push(&vq, 0, 1);
	virtq_push(&vq, 0, 1);			/* used 1 */
	set_used_event(65535);
	ck_assert(virtq_should_notify(&vq));
}
END_TEST

/* One need_event case per loop index: (old, new, event, expected). */
static const struct {
	uint16_t old, pushes, event;
	bool want;
} need_event_cases[] = {
	{ 65534, 3, 65533, false },	/* before old */
	{ 65534, 3, 65534, true },	/* == old */
	{ 65534, 3, 65535, true },
	{ 65534, 3, 0, true },		/* == new - 1 */
	{ 65534, 3, 1, false },		/* == new */
	{ 65534, 3, 2, false },
	{ 0, 1, 65535, false },
	{ 0, 1, 0, true },
	{ 65535, 1, 65535, true },
	{ 65535, 1, 0, false },
};

START_TEST(should_notify_need_event_table)
{
	unsigned k;

	/* One push and the first (unconditional) interrupt set 'old'. */
	env_init(16, true, (uint16_t)(need_event_cases[_i].old - 1));
	virtq_push(&vq, 0, 1);
	ck_assert(virtq_should_notify(&vq));
	ck_assert_uint_eq(vq.signalled_used, need_event_cases[_i].old);
	for (k = 0; k < need_event_cases[_i].pushes; k++)
		virtq_push(&vq, 0, 1);
	set_used_event(need_event_cases[_i].event);
	ck_assert_msg(virtq_should_notify(&vq) == need_event_cases[_i].want,
	    "old %u new %u event %u", need_event_cases[_i].old,
	    (uint16_t)(need_event_cases[_i].old +
	    need_event_cases[_i].pushes), need_event_cases[_i].event);
}
END_TEST

/* --- whole requests: validated past the fill cap ------------------- */

#define CAP		(256u * 1024)	/* the daemon's GUEST_MAX_REQUEST */

/*
 * Issue 8: one writable descriptor at a valid address whose length runs
 * far past the end of guest memory was filled up to the cap.
 */
START_TEST(hostile_long_buffer_past_memory)
{
	put_desc(0, BUF(0), 0xfffff000u, W, 0);
	offer(0);
	ck_assert_int_eq(pop(CAP), -1);
	ck_assert(vq.broken);
	ck_assert_uint_eq(vq.last_avail_idx, 0);
	expect_broken();
}
END_TEST

/* Issue 8: [256 KiB valid, 4 KiB in no region] was completed. */
START_TEST(hostile_chain_tail_past_fill_cap)
{
	put_desc(0, BUF(0), CAP, W | N, 1);
	put_desc(1, GPA_HOLE, 4096, W, 0);
	offer(0);
	ck_assert_int_eq(pop(CAP), -1);
	ck_assert(vq.broken);
	expect_broken();
}
END_TEST

/* The same past the iovec cap: descriptor 65 of 65 is in no region. */
START_TEST(hostile_chain_tail_past_iov_cap)
{
	unsigned i;

	env_init(128, false, 0);
	for (i = 0; i < VIRTQ_MAX_IOV; i++)
		put_desc(i, BUF(i), 1, W | N, i + 1);
	put_desc(VIRTQ_MAX_IOV, GPA_HOLE + PAGE, 1, W, 0);
	offer(0);
	ck_assert_int_eq(pop(4096), -1);
	expect_broken();
}
END_TEST

/* A valid buffer ending exactly at the end of guest memory is fine. */
START_TEST(pop_buffer_to_end_of_memory_capped)
{
	put_desc(0, BUF(0), (uint32_t)(GPA_HOLE - BUF(0)), W, 0);
	offer(0);
	ck_assert_int_eq(pop(CAP), 1);
	ck_assert_uint_eq(req.len, CAP);
	/* One byte further is one byte outside. */
	put_desc(0, BUF(0), (uint32_t)(GPA_HOLE - BUF(0) + 1), W, 0);
	offer(0);
	ck_assert_int_eq(pop(CAP), -1);
	expect_broken();
}
END_TEST

/* An indirect table whose tail (never walked) lies in no region. */
START_TEST(hostile_indirect_table_tail_outside_memory)
{
	uint64_t table = GPA_HOLE - 32;

	put_ind(table, 0, BUF(0), 8, W, 0);
	put_desc(0, table, 64, I, 0);
	offer(0);
	ck_assert_int_eq(pop(4096), -1);
	expect_broken();
}
END_TEST

Suite *
virtq_suite(void)
{
	Suite *s = suite_create("virtq");
	TCase *tc;

	add_cases(s, UNIT_TIMEOUT, setup, teardown,
	    "config", TESTS(set_num_bounds, set_addr_alignment,
		map_needs_num_and_addr, map_rings_outside_memory,
		ready_remaps_after_table_change),
	    "pop", TESTS(pop_empty, pop_single, pop_chain,
		pop_chain_whole_table, pop_zero_length_member, pop_indirect,
		pop_indirect_write_flag_on_table, pop_chain_then_indirect,
		pop_indirect_spanning_regions, pop_indirect_chain_of_queue_size,
		pop_buffer_spanning_regions, pop_max_len_caps,
		pop_huge_descriptor_capped, pop_iov_cap, req_trim,
		unpop_pops_again, pop_full_ring, pop_avail_idx_wraps),
	    NULL);

	tc = add_case(s, "hostile", UNIT_TIMEOUT, setup, teardown, TESTS(
	    hostile_avail_idx_backwards,
	    hostile_indirect_chain_longer_than_queue,
	    hostile_indirect_huge_table_loop,
	    hostile_addr_wraps_from_top_region, hostile_after_good));
	ADD_TABLE(tc, hostile_script, hostile_scripts);

	tc = add_case(s, "notify", UNIT_TIMEOUT, setup, teardown, TESTS(
	    push_writes_used_le, used_idx_continues, used_idx_wraps,
	    enable_notify_event_idx, enable_notify_no_event_idx,
	    should_notify_flags, should_notify_event_idx,
	    should_notify_event_idx_wraps));
	tcase_add_loop_test(tc, should_notify_need_event_table, 0,
	    (int)(sizeof(need_event_cases) / sizeof(need_event_cases[0])));

	add_case(s, "whole_request", UNIT_TIMEOUT, setup, teardown, TESTS(
	    hostile_long_buffer_past_memory, hostile_chain_tail_past_fill_cap,
	    hostile_chain_tail_past_iov_cap, pop_buffer_to_end_of_memory_capped,
	    hostile_indirect_table_tail_outside_memory));
	return s;
}
