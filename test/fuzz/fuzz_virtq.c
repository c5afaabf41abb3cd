/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: the split-ring walker (virtq.c) over hostile guest
 * memory.
 *
 * Each input is a small program: lay out a memory table (up to
 * NREGIONS regions, each its own heap block of exactly the region's
 * size, so AddressSanitizer traps any access outside a region), set the
 * ring size, addresses and base, write descriptors, indirect tables and
 * avail entries (or any bytes) into guest memory, and pop, trim, unpop,
 * push and ask for notifications in any order, the guest writing between
 * the passes.  The calls follow the contract guest.c keeps: the ring is
 * used only after virtq_ready() said yes for the current table.
 *
 * Oracles, beyond the sanitizers: every iovec a pop returns lies inside
 * one region, the iovecs add up to the request's length, which is at most
 * what was asked for, and the head is a valid index.  Each popped byte is
 * written, as the daemon writes entropy there.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "fuzz_input.h"
#include "memtable.h"
#include "virtq.h"

#define FUZZ_NAME	"fuzz_virtq"
#include "fuzz_oracle.h"

#define NREGIONS	4
#define MAX_REGION	(64 * 1024)
#define MAX_POPPED	64

/*
 * The ops a program is made of, each with the function that runs it, in
 * the order that numbers them (test/fuzz/mkseeds writes those numbers).
 */
#define OPS(X)								\
	X(OP_TABLE, op_table)						\
	X(OP_NUM, op_num)						\
	X(OP_ADDR, op_addr)						\
	X(OP_BASE, op_base)						\
	X(OP_EVENT_IDX, op_event_idx)					\
	X(OP_WRITE, op_write)						\
	X(OP_DESC, op_desc)						\
	X(OP_AVAIL, op_avail)						\
	X(OP_POP, op_pop)						\
	X(OP_TRIM, op_trim)						\
	X(OP_UNPOP, op_unpop)						\
	X(OP_PUSH, op_push)						\
	X(OP_NOTIFY, op_notify)						\
	X(OP_RESET, op_reset)

#define OP_NAME(op, fn)	op,
enum op {
	OPS(OP_NAME)
	OP_COUNT
};

struct run {
	struct memtable	 mt;
	/* mt's arrays: regions in guest order, by_uva their front-end order. */
	struct mem_region regions[NREGIONS];
	unsigned	 by_uva[NREGIONS];
	struct virtq	 vq;
	struct virtq_req req;		/* the last pop */
	bool		 can_unpop;	/* req was the last thing popped */
	uint16_t	 popped[MAX_POPPED];
	unsigned	 npopped;
};

static void
table_free(struct memtable *mt)
{
	unsigned i;

	for (i = 0; i < mt->nregions; i++)
		free(mt->regions[i].host);
	memset(mt->regions, 0, mt->cap * sizeof(mt->regions[0]));
	mt->nregions = 0;
	mt->generation++;
}

/*
 * A new table: regions in rising guest-physical order, each after a gap
 * the input chooses (0: adjacent), the front-end addresses either at a
 * fixed distance from the guest ones or anywhere that does not overlap.
 */
static void
op_table(struct run *r, struct input *in)
{
	struct memtable *mt = &r->mt;
	unsigned n = take8(in) % (NREGIONS + 1), i;
	uint64_t gpa = take8(in) & 1 ? take64(in) & ~0xfffull : 0;
	uint64_t uva = 0x7f0000000000ull, gap;

	table_free(mt);
	/* The last request pointed into the old table. */
	r->can_unpop = false;
	for (i = 0; i < n; i++) {
		struct mem_region *m = &mt->regions[i];
		uint8_t how = take8(in);
		uint64_t size = 1 + take16(in) % MAX_REGION;

		if (how & 1)
			size &= ~15ull;
		/* A region may end at 2^64 exactly, not past it. */
		if (size == 0 || size - 1 > UINT64_MAX - gpa)
			break;
		m->gpa = gpa;
		m->size = size;
		m->uva = how & 2 ? uva + take16(in) : uva + gpa % 0x100000;
		if ((m->host = malloc(size)) == NULL)
			fail("malloc");
		memset(m->host, take8(in), size);
		m->map_base = NULL;
		m->map_len = 0;
		/* Front-end addresses rise with the guest ones here. */
		mt->by_uva[i] = i;
		mt->nregions++;
		uva = m->uva + size + 0x10000;
		if (size > UINT64_MAX - gpa)
			break;		/* it ends at 2^64: nothing after it */
		gpa += size;
		gap = how & 4 ? 0 : take16(in);
		if (gap > UINT64_MAX - gpa)
			break;
		gpa += gap;
	}
}

/* An address inside (or near) region k, in the space asked for. */
static uint64_t
addr_in(struct run *r, struct input *in, bool uva)
{
	uint8_t k = take8(in);
	const struct mem_region *m;
	int64_t off;

	if (k & 0x80 || r->mt.nregions == 0)
		return take64(in);
	m = &r->mt.regions[k % r->mt.nregions];
	off = (int16_t)take16(in);
	if (k & 0x40)
		off = (int64_t)(take32(in) % (m->size + 1));
	return (uva ? m->uva : m->gpa) + (uint64_t)off;
}

static void
op_num(struct run *r, struct input *in)
{
	uint8_t b = take8(in);

	(void)virtq_set_num(&r->vq, b & 0x80 ? take32(in) : 1u << b % 16);
}

static void
op_addr(struct run *r, struct input *in)
{
	uint64_t desc = addr_in(r, in, true) & ~15ull;
	uint64_t avail = addr_in(r, in, true) & ~1ull;
	uint64_t used = addr_in(r, in, true) & ~3ull;

	if (take8(in) & 1) {
		/* Sometimes misaligned, to be refused. */
		desc |= take8(in) & 15;
		used |= take8(in) & 3;
	}
	(void)virtq_set_addr(&r->vq, desc, avail, used);
}

/* Host pointer and length for [gpa, gpa+len) in one region, or NULL. */
static void *
guest_ptr(struct run *r, uint64_t gpa, uint64_t len)
{
	uint64_t got = len;
	void *p = memtable_gpa(&r->mt, gpa, &got);

	return p != NULL && got == len ? p : NULL;
}

static void
op_write(struct run *r, struct input *in)
{
	uint64_t gpa = addr_in(r, in, false);
	uint8_t buf[64];
	size_t len = 1 + take8(in) % sizeof(buf), i;
	void *p;

	for (i = 0; i < len; i++)
		buf[i] = take8(in);
	if ((p = guest_ptr(r, gpa, len)) != NULL)
		memcpy(p, buf, len);
}

/* Writes a descriptor into the ring's table or anywhere in memory. */
static void
op_desc(struct run *r, struct input *in)
{
	struct vring_desc d;
	uint8_t where = take8(in);
	uint8_t flags = take8(in);
	void *p;

	d.addr = addr_in(r, in, false);
	d.len = flags & 0x80 ? take32(in) : take8(in);
	d.flags = flags & 7;
	d.next = flags & 0x40 ? take16(in) : take8(in);
	if (flags & 0x20)
		d.len *= 16;
	if (where & 0x80)
		p = guest_ptr(r, addr_in(r, in, false), sizeof(d));
	else if (r->vq.num != 0 && r->vq.addr_set)
		p = memtable_uva(&r->mt, r->vq.desc_uva + 16ull *
		    (where % r->vq.num), sizeof(d));
	else
		p = NULL;
	if (p != NULL)
		memcpy(p, &d, sizeof(d));
}

/* Offers a head: the avail entry, then avail->idx (or a raw idx). */
static void
op_avail(struct run *r, struct input *in)
{
	uint8_t how = take8(in);
	uint16_t head = how & 0x80 ? take16(in) : take8(in), idx;
	uint16_t *ring, *pidx;

	if (r->vq.num == 0 || !r->vq.addr_set)
		return;
	pidx = memtable_uva(&r->mt, r->vq.avail_uva + 2, 2);
	if (pidx == NULL)
		return;
	memcpy(&idx, pidx, 2);
	if (how & 0x40)
		idx = take16(in);
	ring = memtable_uva(&r->mt, r->vq.avail_uva + 4 +
	    2ull * (idx & (r->vq.num - 1)), 2);
	if (ring != NULL && !(how & 0x20))
		memcpy(ring, &head, 2);
	idx++;
	memcpy(pidx, &idx, 2);
}

/* Every iovec inside one region; lengths add up; head in range. */
static void
check_req(struct run *r, const struct virtq_req *req, size_t max_len)
{
	size_t sum = 0;
	unsigned i, k;

	if (req->niov == 0 || req->niov > VIRTQ_MAX_IOV)
		fail("pop returned %u iovecs", req->niov);
	if (req->head >= r->vq.num)
		fail("pop returned head %u of a ring of %u", req->head,
		    r->vq.num);
	for (i = 0; i < req->niov; i++) {
		const char *b = req->iov[i].iov_base;
		size_t len = req->iov[i].iov_len;

		for (k = 0; k < r->mt.nregions; k++) {
			const char *h = r->mt.regions[k].host;

			if (b >= h && (uint64_t)(b - h) <
			    r->mt.regions[k].size && len <=
			    r->mt.regions[k].size - (uint64_t)(b - h))
				break;
		}
		if (k == r->mt.nregions)
			fail("iovec %u (%p, %zu) is in no region", i,
			    (const void *)b, len);
		if (len == 0)
			fail("iovec %u is empty", i);
		sum += len;
	}
	if (sum != req->len)
		fail("iovecs add up to %zu, request says %zu", sum, req->len);
	if (req->len > max_len)
		fail("request of %zu bytes, at most %zu asked", req->len,
		    max_len);
}

static void
op_pop(struct run *r, struct input *in)
{
	uint8_t b = take8(in);
	size_t max_len = b & 0x80 ? take32(in) : 256 * 1024;
	unsigned i;
	int res;

	r->can_unpop = false;
	if (!virtq_ready(&r->vq, &r->mt) || r->vq.broken)
		return;
	if (max_len == 0)
		max_len = 1;
	res = virtq_pop(&r->vq, &r->mt, &r->req, max_len);
	if (res <= 0)
		return;
	check_req(r, &r->req, max_len);
	/* The daemon fills every byte it was given. */
	for (i = 0; i < r->req.niov; i++)
		memset(r->req.iov[i].iov_base, 0xa5, r->req.iov[i].iov_len);
	r->can_unpop = true;
	if (r->npopped < MAX_POPPED)
		r->popped[r->npopped++] = r->req.head;
}

static void
op_trim(struct run *r, struct input *in)
{
	size_t len = 1 + take16(in);

	if (!r->can_unpop)
		return;
	virtq_req_trim(&r->req, len);
	check_req(r, &r->req, len);
}

static void
op_unpop(struct run *r, struct input *in)
{
	(void)in;
	if (!r->can_unpop || !virtq_ready(&r->vq, &r->mt))
		return;
	virtq_unpop(&r->vq);
	r->can_unpop = false;
	if (r->npopped > 0)
		r->npopped--;
}

static void
op_push(struct run *r, struct input *in)
{
	uint32_t len = 1 + take16(in);

	r->can_unpop = false;
	if (r->npopped == 0 || !virtq_ready(&r->vq, &r->mt))
		return;
	virtq_push(&r->vq, r->popped[--r->npopped], len);
}

static void
op_notify(struct run *r, struct input *in)
{
	if (!virtq_ready(&r->vq, &r->mt) || r->vq.broken)
		return;
	if (take8(in) & 1)
		(void)virtq_enable_notify(&r->vq);
	else
		(void)virtq_should_notify(&r->vq);
}

static void
op_base(struct run *r, struct input *in)
{
	virtq_set_base(&r->vq, take16(in));
}

static void
op_event_idx(struct run *r, struct input *in)
{
	/* As SET_FEATURES does: the ring is mapped again. */
	r->vq.event_idx = take8(in) & 1;
	r->vq.mapped = false;
}

static void
op_reset(struct run *r, struct input *in)
{
	(void)in;
	virtq_reset(&r->vq);
	r->npopped = 0;
	r->can_unpop = false;
}

/* What each op does, indexed by enum op. */
#define OP_FN(op, fn)	[op] = fn,
static void (*const ops[OP_COUNT])(struct run *, struct input *) = {
	OPS(OP_FN)
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool logs;
	struct input in = { data, size };
	struct run r;
	unsigned steps = 0;

	if (!logs) {
		log_init(0);
		logs = true;
	}
	memset(&r, 0, sizeof(r));
	memtable_init(&r.mt);
	/* Exact-size regions of our own, in arrays memtable.c never grows. */
	r.mt.regions = r.regions;
	r.mt.by_uva = r.by_uva;
	r.mt.cap = NREGIONS;
	virtq_init(&r.vq);
	while (in.left > 0 && steps++ < 256)
		ops[take8(&in) % OP_COUNT](&r, &in);
	table_free(&r.mt);
	return 0;
}
