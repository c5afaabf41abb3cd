/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest memory, the driver's side of a split ring and one guest's daemon
 * state, for the unit suites that drive the data path.  See unit_ring.h.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "unit.h"
#include "unit_ring.h"

void
unit_mem_map(struct unit_mem *m, const char *name, size_t size)
{
	m->fd = unit_memfd(name, size);
	m->size = size;
	m->p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
	ck_assert_msg(m->p != MAP_FAILED, "mmap %s: %s", name,
	    strerror(errno));
}

void
unit_mem_unmap(struct unit_mem *m)
{
	if (m->p != MAP_FAILED)
		munmap(m->p, m->size);
	m->p = MAP_FAILED;
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
}

struct vring_desc
unit_desc(uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct vring_desc d;

	d.addr = htole64(addr);
	d.len = htole32(len);
	d.flags = htole16(flags);
	d.next = htole16(next);
	return d;
}

/* --- the driver's side of the ring ------------------------------------ */

void
uring_desc(struct unit_ring *r, unsigned i, uint64_t addr, uint32_t len,
    uint16_t flags, uint16_t next)
{
	struct vring_desc d = unit_desc(addr, len, flags, next);

	memcpy(r->base + r->desc + 16 * i, &d, sizeof(d));
}

volatile uint16_t *
uring_avail16(struct unit_ring *r, unsigned i)
{
	return (volatile uint16_t *)(void *)(r->base + r->avail + 2 * i);
}

static volatile uint16_t *
used16(const struct unit_ring *r, unsigned i)
{
	return (volatile uint16_t *)(void *)(r->base + r->used + 2 * i);
}

void
uring_offer(struct unit_ring *r, uint16_t head)
{
	*uring_avail16(r, 2 + r->avail_idx % r->num) = htole16(head);
	r->avail_idx++;
	/* The entry (and the descriptors) before the index that shows it. */
	__atomic_store_n(uring_avail16(r, 1), htole16(r->avail_idx),
	    __ATOMIC_RELEASE);
}

void
uring_post(struct unit_ring *r, unsigned i, uint64_t addr, uint32_t len)
{
	uring_desc(r, i, addr, len, VRING_DESC_F_WRITE, 0);
	uring_offer(r, (uint16_t)i);
}

uint16_t
uring_used_idx(const struct unit_ring *r)
{
	return le16toh(__atomic_load_n(used16(r, 1), __ATOMIC_ACQUIRE));
}

uint16_t
uring_used_flags(const struct unit_ring *r)
{
	return le16toh(*used16(r, 0));
}

struct vring_used_elem
uring_used(const struct unit_ring *r, unsigned i)
{
	struct vring_used_elem e;

	memcpy(&e, r->base + r->used + 4 + 8ull * (i % r->num), sizeof(e));
	e.id = le32toh(e.id);
	e.len = le32toh(e.len);
	return e;
}

void
uring_assert_used(const struct unit_ring *r, unsigned i, uint32_t id,
    uint32_t len)
{
	struct vring_used_elem e = uring_used(r, i);

	ck_assert_msg(e.id == id && e.len == len, "used entry %u: id %u len "
	    "%u, expected id %u len %u", i, e.id, e.len, id, len);
}

uint16_t
uring_avail_event(const struct unit_ring *r)
{
	return le16toh(*used16(r, 2 + 4 * r->num));
}

void
uring_set_used_event(struct unit_ring *r, uint16_t v)
{
	*uring_avail16(r, 2 + r->num) = htole16(v);
}

/* --- the daemon side ---------------------------------------------------- */

void
uguest_init(struct unit_guest *g)
{
	memset(g, 0, sizeof(*g));
	g->slot.index = 0;
	g->slot.shared = &g->shared;
	g->slot.stop_fd = -1;
	g->slot.park_fd = -1;
	g->shared.source = &g->src;
	g->shared.rl = NULL;
	g->shared.wake_main_fd = -1;
}

void
uguest_fini(struct unit_guest *g)
{
	if (g->src_open)
		entropy_close(&g->src);
	g->src_open = false;
	if (g->rl_on)
		ratelimit_destroy(&g->rl);
	g->rl_on = false;
}

void
uguest_source(struct unit_guest *g, const char *path)
{
	char err[256];

	ck_assert_msg(entropy_open(&g->src, path, err, sizeof(err)) == 0,
	    "%s", err);
	g->src_open = true;
}

int
uguest_fifo(struct unit_guest *g, char *dir)
{
	char path[4096];
	int wfd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/fifo", dir);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	uguest_source(g, path);
	wfd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(wfd, 0);
	unlink(path);
	rmdir(dir);
	return wfd;
}

void
uguest_ratelimit(struct unit_guest *g, uint64_t max_bytes,
    uint32_t period_ms, uint64_t epoch_ns)
{
	ck_assert_int_eq(ratelimit_init(&g->rl, max_bytes, period_ms, 1,
	    epoch_ns), 0);
	g->rl_on = true;
	g->shared.rl = &g->rl;
}

struct guest_stats
uguest_stats(const struct unit_guest *g)
{
	struct guest_stats st;

	guest_stats_read(&g->slot, &st);
	return st;
}
