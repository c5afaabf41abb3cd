/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Split virtqueue walker, device side (VIRTIO 1.x 2.7; layout of Linux
 * include/uapi/linux/virtio_ring.h).
 *
 * Security model: the rings and buffers live in guest memory, which the
 * guest can rewrite at any moment, and the guest may be hostile.  So:
 * - each descriptor is copied out of guest memory once, and only the copy
 *   is looked at (no double fetch);
 * - every index is checked against the table it indexes before use;
 * - a chain visits at most as many descriptors as its table has (loops);
 * - indirect tables are 16-byte multiples, never nested, never chained;
 * - every buffer address goes through the memory table's translator, so
 *   we write nowhere but inside the guest's own memory regions;
 * - every buffer of a chain lies whole in guest memory, or the ring is
 *   broken, even when we fill only its first bytes (the fill cap);
 * - the device's own indexes (last_avail_idx, used_idx) are private and
 *   never read back from the ring.
 * A violation latches the queue "broken": logged once, nothing more is
 * processed until the front-end restarts the ring.  Other guests never
 * notice: this state is per guest thread.
 */
#include <endian.h>
#include <string.h>

#include "log.h"
#include "virtq.h"

/* Hard ordering for ring accesses; each use says what it orders. */
#define smp_rmb()	__atomic_thread_fence(__ATOMIC_ACQUIRE)
#define smp_wmb()	__atomic_thread_fence(__ATOMIC_RELEASE)
#define smp_mb()	__atomic_thread_fence(__ATOMIC_SEQ_CST)

static uint16_t
ring_read16(volatile uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static void
ring_write16(volatile uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

/*
 * Latches the queue broken and keeps the first reason; the guest thread
 * reports it once (serve.c, serve_report_broken).
 */
static void
mark_broken(struct virtq *vq, const char *why, unsigned a, unsigned b)
{
	if (!vq->broken) {
		vq->broken_why = why;
		vq->broken_a = a;
		vq->broken_b = b;
		vq->broken_values = true;
		vq->breaks++;
	}
	vq->broken = true;
}

void
virtq_break(struct virtq *vq, const char *why)
{
	if (!vq->broken) {
		vq->broken_why = why;
		vq->broken_values = false;
		vq->breaks++;
	}
	vq->broken = true;
}

void
virtq_init(struct virtq *vq)
{
	memset(vq, 0, sizeof(*vq));
}

void
virtq_reset(struct virtq *vq)
{
	unsigned breaks = vq->breaks;

	virtq_init(vq);
	vq->breaks = breaks;	/* a count for the connection's life */
}

int
virtq_set_num(struct virtq *vq, uint32_t num)
{
	/* VIRTIO 1.x 2.7: split queue sizes are powers of 2 up to 32768. */
	if (num == 0 || num > VIRTQ_MAX_SIZE || (num & (num - 1)) != 0) {
		log_guest_err("SET_VRING_NUM: queue size %u is not a power of "
		    "two in 1..%u", num, VIRTQ_MAX_SIZE);
		return -1;
	}
	vq->num = num;
	vq->mapped = false;
	return 0;
}

int
virtq_set_addr(struct virtq *vq, uint64_t desc, uint64_t avail,
    uint64_t used)
{
	/* VIRTIO 1.x 2.7 table "Virtqueue Part Alignment": 16, 2, 4. */
	if ((desc & 15) != 0 || (avail & 1) != 0 || (used & 3) != 0) {
		log_guest_err("SET_VRING_ADDR: misaligned ring (desc 0x%llx, "
		    "avail 0x%llx, used 0x%llx)", (unsigned long long)desc,
		    (unsigned long long)avail, (unsigned long long)used);
		return -1;
	}
	vq->desc_uva = desc;
	vq->avail_uva = avail;
	vq->used_uva = used;
	vq->addr_set = true;
	vq->mapped = false;
	return 0;
}

void
virtq_set_base(struct virtq *vq, uint16_t base)
{
	vq->last_avail_idx = base;
	vq->signalled_used_valid = false;
}

/*
 * Bytes of the three rings of num entries (VIRTIO 1.x 2.7: "Virtqueue Part
 * Sizes"), with the event words of EVENT_IDX.
 */
static void
ring_sizes(const struct virtq *vq, uint32_t num, uint64_t *desc_len,
    uint64_t *avail_len, uint64_t *used_len)
{
	uint64_t extra = vq->event_idx ? 2 : 0;

	*desc_len = (uint64_t)num * sizeof(struct vring_desc);
	*avail_len = 4 + 2 * (uint64_t)num + extra;
	*used_len = 4 + sizeof(struct vring_used_elem) * (uint64_t)num + extra;
}

bool
virtq_addr_in_memory(const struct virtq *vq, const struct memtable *mt,
    uint64_t desc, uint64_t avail, uint64_t used)
{
	uint64_t desc_len, avail_len, used_len;

	ring_sizes(vq, vq->num != 0 ? vq->num : 1, &desc_len, &avail_len,
	    &used_len);
	return memtable_uva(mt, desc, desc_len) != NULL &&
	    memtable_uva(mt, avail, avail_len) != NULL &&
	    memtable_uva(mt, used, used_len) != NULL;
}

int
virtq_map(struct virtq *vq, const struct memtable *mt)
{
	uint64_t desc_len, avail_len, used_len;

	vq->mapped = false;
	if (vq->num == 0 || !vq->addr_set)
		return -1;
	ring_sizes(vq, vq->num, &desc_len, &avail_len, &used_len);
	vq->desc = memtable_uva(mt, vq->desc_uva, desc_len);
	vq->avail = memtable_uva(mt, vq->avail_uva, avail_len);
	vq->used = memtable_uva(mt, vq->used_uva, used_len);
	/*
	 * The alignment was checked on the front-end's addresses; an odd
	 * mmap_offset could still leave our views misaligned.
	 */
	if (((uintptr_t)vq->desc & 15) != 0 ||
	    ((uintptr_t)vq->avail & 1) != 0 ||
	    ((uintptr_t)vq->used & 3) != 0) {
		log_guest_err("rings are misaligned in our mapping (odd "
		    "mmap_offset)");
		return -1;
	}
	if (vq->desc == NULL || vq->avail == NULL || vq->used == NULL) {
		log_guest_err("ring addresses (desc 0x%llx, avail 0x%llx, "
		    "used 0x%llx, size %u) are not inside guest memory",
		    (unsigned long long)vq->desc_uva,
		    (unsigned long long)vq->avail_uva,
		    (unsigned long long)vq->used_uva, vq->num);
		return -1;
	}
	/*
	 * Completions continue from the used index the driver sees (QEMU
	 * keeps the avail side in SET_VRING_BASE; the used side is in the
	 * ring itself).
	 */
	vq->used_idx = ring_read16(&vq->used->idx);
	vq->mapped = true;
	vq->mapped_gen = mt->generation;
	return 0;
}

bool
virtq_ready(struct virtq *vq, const struct memtable *mt)
{
	if (vq->mapped && vq->mapped_gen == mt->generation)
		return true;
	if (vq->mapped) {
		/* The table changed under a running ring: re-translate. */
		uint16_t used_idx = vq->used_idx;

		if (virtq_map(vq, mt) < 0)
			return false;
		vq->used_idx = used_idx;
		return true;
	}
	return virtq_map(vq, mt) == 0;
}

/* Reads a descriptor from the ring once (no double fetch). */
static void
desc_fetch(volatile struct vring_desc *d, struct vring_desc *out)
{
	out->addr = le64toh(d->addr);
	out->len = le32toh(d->len);
	out->flags = le16toh(d->flags);
	out->next = le16toh(d->next);
}

/*
 * Copies len bytes at gpa out of guest memory, across region boundaries.
 * Used for indirect tables, which need not sit in one region.
 */
static int
guest_copy_from(const struct memtable *mt, uint64_t gpa, void *buf,
    size_t len)
{
	char *out = buf;

	while (len > 0) {
		uint64_t chunk = len;
		const void *src = memtable_gpa(mt, gpa, &chunk);

		if (src == NULL)
			return -1;
		memcpy(out, src, chunk);
		out += chunk;
		len -= chunk;
		if (len > 0 && chunk > UINT64_MAX - gpa)
			return -1;
		gpa += chunk;
	}
	return 0;
}

/*
 * Appends [gpa, gpa+len) to the request, at most up to max_len bytes and
 * VIRTQ_MAX_IOV iovecs in all.  The caller has checked the whole range
 * with memtable_gpa_range(): what is cut off here was validated too.
 */
static int
req_add(const struct memtable *mt, struct virtq_req *req, uint64_t gpa,
    uint32_t len, size_t max_len)
{
	uint64_t want = len;

	if (want > max_len - req->len)
		want = max_len - req->len;
	while (want > 0 && req->niov < VIRTQ_MAX_IOV) {
		uint64_t chunk = want;
		void *p = memtable_gpa(mt, gpa, &chunk);

		if (p == NULL)
			return -1;
		req->iov[req->niov].iov_base = p;
		req->iov[req->niov].iov_len = chunk;
		req->niov++;
		req->len += chunk;
		want -= chunk;
		if (want > 0 && chunk > UINT64_MAX - gpa)
			return -1;
		gpa += chunk;
	}
	return 0;
}

int
virtq_pop(struct virtq *vq, const struct memtable *mt, struct virtq_req *req,
    size_t max_len)
{
	struct vring_desc d;
	uint64_t indirect_gpa = 0;
	uint16_t avail_idx, head, pending;
	unsigned i, table_size, found, max_found;
	bool indirect = false;

	if (vq->broken || !vq->mapped)
		return -1;

	avail_idx = ring_read16(&vq->avail->idx);
	pending = (uint16_t)(avail_idx - vq->last_avail_idx);
	if (pending == 0)
		return 0;
	if (pending > vq->num) {
		mark_broken(vq, "driver moved avail idx too far (last, now)",
		    vq->last_avail_idx, avail_idx);
		return -1;
	}
	/* Only read avail ring entries after reading avail->idx. */
	smp_rmb();
	head = ring_read16(&vq->avail->ring[vq->last_avail_idx &
	    (vq->num - 1)]);
	if (head >= vq->num) {
		mark_broken(vq, "head index out of range (head, size)", head,
		    vq->num);
		return -1;
	}

	memset(req, 0, offsetof(struct virtq_req, iov));
	req->head = head;
	i = head;
	table_size = vq->num;
	found = 0;
	max_found = vq->num;
	for (;;) {
		if (i >= table_size) {
			mark_broken(vq, "next index out of range (index, "
			    "table size)", i, table_size);
			return -1;
		}
		if (++found > max_found) {
			mark_broken(vq, "descriptor loop (head, length)", head,
			    found);
			return -1;
		}
		if (indirect) {
			struct vring_desc raw;

			if (guest_copy_from(mt, indirect_gpa +
			    (uint64_t)i * sizeof(raw), &raw, sizeof(raw)) < 0) {
				mark_broken(vq, "indirect table unreadable "
				    "(head, index)", head, i);
				return -1;
			}
			desc_fetch(&raw, &d);
		} else
			desc_fetch(&vq->desc[i], &d);

		if (d.flags & VRING_DESC_F_INDIRECT) {
			/* VIRTIO 1.x 2.7.5.3.1: no nesting, no NEXT. */
			if (indirect) {
				mark_broken(vq, "nested indirect table (head, "
				    "index)", head, i);
				return -1;
			}
			if (d.flags & VRING_DESC_F_NEXT) {
				mark_broken(vq, "indirect descriptor with NEXT "
				    "(head, index)", head, i);
				return -1;
			}
			if (d.len == 0 || d.len % sizeof(struct vring_desc)) {
				mark_broken(vq, "indirect table length (head, "
				    "len)", head, d.len);
				return -1;
			}
			if (d.len - 1 > UINT64_MAX - d.addr) {
				mark_broken(vq, "indirect table wraps (head, "
				    "len)", head, d.len);
				return -1;
			}
			/*
			 * The whole table is a buffer of the chain (VIRTIO
			 * 1.x 2.7.5.3), even the part the walk never reads.
			 */
			if (!memtable_gpa_range(mt, d.addr, d.len)) {
				mark_broken(vq, "indirect table outside guest "
				    "memory (head, len)", head, d.len);
				return -1;
			}
			indirect = true;
			indirect_gpa = d.addr;
			table_size = d.len / sizeof(struct vring_desc);
			/*
			 * VIRTIO 1.x 2.7.5.3.1: "A driver MUST NOT create a
			 * descriptor chain longer than the Queue Size".  The
			 * table may claim 2^28 entries; walking a loop in it
			 * that long would stall this guest's thread for
			 * seconds, so the queue size bounds the walk.
			 */
			max_found = table_size < vq->num ? table_size :
			    vq->num;
			found = 0;
			i = 0;
			continue;
		}
		/* VIRTIO 1.x 5.4.6.1: entropy buffers are device-writable. */
		if (!(d.flags & VRING_DESC_F_WRITE)) {
			mark_broken(vq, "device-readable buffer in an entropy "
			    "request (head, index)", head, i);
			return -1;
		}
		/*
		 * The whole buffer must be guest memory, not just the part we
		 * fill: a request is validated whole before a byte of it is
		 * written, whatever the fill cap leaves out.
		 */
		if (d.len > 0 && (!memtable_gpa_range(mt, d.addr, d.len) ||
		    req_add(mt, req, d.addr, d.len, max_len) < 0)) {
			mark_broken(vq, "buffer outside guest memory (head, "
			    "len)", head, d.len);
			return -1;
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		i = d.next;
	}
	if (req->len == 0 && max_len > 0) {
		mark_broken(vq, "request with no writable bytes (head, "
		    "descriptors)", head, found);
		return -1;
	}
	vq->last_avail_idx++;
	return 1;
}

void
virtq_unpop(struct virtq *vq)
{
	vq->last_avail_idx--;
}

void
virtq_req_trim(struct virtq_req *req, size_t len)
{
	size_t seen = 0;
	unsigned i;

	if (len >= req->len)
		return;
	for (i = 0; i < req->niov; i++) {
		if (req->iov[i].iov_len >= len - seen) {
			req->iov[i].iov_len = len - seen;
			req->niov = i + 1;
			break;
		}
		seen += req->iov[i].iov_len;
	}
	req->len = len;
}

void
virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
	volatile struct vring_used_elem *e;

	e = &vq->used->ring[vq->used_idx & (vq->num - 1)];
	e->id = htole32(head);
	e->len = htole32(len);
	/* The element must be visible before the index that publishes it. */
	smp_wmb();
	vq->used_idx++;
	ring_write16(&vq->used->idx, vq->used_idx);
}

void
virtq_disable_notify(struct virtq *vq)
{
	if (!vq->mapped || vq->broken || vq->event_idx)
		return;	/* with EVENT_IDX, an avail_event left behind does it */
	/* VIRTIO 1.x 2.7.10: a hint; the driver may kick anyway. */
	ring_write16(&vq->used->flags, VRING_USED_F_NO_NOTIFY);
}

bool
virtq_enable_notify(struct virtq *vq)
{
	if (!vq->mapped || vq->broken)
		return false;
	if (!vq->event_idx) {
		if (ring_read16(&vq->used->flags) & VRING_USED_F_NO_NOTIFY)
			ring_write16(&vq->used->flags, 0);
	} else {
		/* avail_event sits right after the used ring's entries. */
		volatile uint16_t *avail_event =
		    (volatile uint16_t *)&vq->used->ring[vq->num];

		ring_write16(avail_event, vq->last_avail_idx);
	}
	/*
	 * Publish avail_event before re-reading avail->idx: otherwise a
	 * buffer added in between is neither seen now nor kicked later.
	 */
	smp_mb();
	return ring_read16(&vq->avail->idx) != vq->last_avail_idx;
}

bool
virtq_should_notify(struct virtq *vq)
{
	uint16_t old, new, used_event;
	bool valid;

	/* used->idx must be visible before we read the driver's wishes. */
	smp_mb();
	if (!vq->event_idx)
		return !(ring_read16(&vq->avail->flags) &
		    VRING_AVAIL_F_NO_INTERRUPT);

	old = vq->signalled_used;
	valid = vq->signalled_used_valid;
	new = vq->signalled_used = vq->used_idx;
	vq->signalled_used_valid = true;
	if (!valid)
		return true;
	used_event = ring_read16(&vq->avail->ring[vq->num]);
	/* vring_need_event() of virtio_ring.h. */
	return (uint16_t)(new - used_event - 1) < (uint16_t)(new - old);
}

bool
virtq_has_avail(struct virtq *vq)
{
	if (!vq->mapped || vq->broken)
		return false;
	return ring_read16(&vq->avail->idx) != vq->last_avail_idx;
}
