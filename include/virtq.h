/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_VIRTQ_H
#define VRNG_VIRTQ_H

/*
 * One split virtqueue (VIRTIO 1.x section 2.7), seen from the device side.
 * Owned by one guest thread.  The ring layout matches Linux
 * include/uapi/linux/virtio_ring.h; all ring fields are little-endian.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "memtable.h"

#define VRING_DESC_F_NEXT	1
#define VRING_DESC_F_WRITE	2
#define VRING_DESC_F_INDIRECT	4
#define VRING_AVAIL_F_NO_INTERRUPT	1
#define VRING_USED_F_NO_NOTIFY		1

/* VIRTIO 1.x 2.7: "Queue Size ... maximum ... is 32768". */
#define VIRTQ_MAX_SIZE		32768
/* iovecs one request is gathered into; a longer chain is served short. */
#define VIRTQ_MAX_IOV		64

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
_Static_assert(sizeof(struct vring_desc) == 16, "descriptor");

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];	/* then used_event, with EVENT_IDX */
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};
_Static_assert(sizeof(struct vring_used_elem) == 8, "used element");

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[];	/* then avail_event, with EVENT_IDX */
};

struct virtq {
	/* Set by the front-end (vhost-user SET_VRING_*). */
	uint32_t	 num;		/* 0 until SET_VRING_NUM */
	bool		 addr_set;
	uint64_t	 desc_uva, avail_uva, used_uva;
	bool		 event_idx;	/* VIRTIO_RING_F_EVENT_IDX acked */

	/* Host views of the rings; valid while mapped_gen matches. */
	volatile struct vring_desc	*desc;
	volatile struct vring_avail	*avail;
	volatile struct vring_used	*used;
	bool		 mapped;
	uint64_t	 mapped_gen;

	/* Device-private state: never read back from guest memory. */
	uint16_t	 last_avail_idx;
	uint16_t	 used_idx;
	uint16_t	 signalled_used;
	bool		 signalled_used_valid;
	/*
	 * Latched on the first hostile ring entry: nothing more is processed
	 * until the front-end stops and restarts the ring.
	 */
	bool		 broken;
	const char	*broken_why;	/* the first reason, a static string */
	unsigned	 broken_a, broken_b;	/* values it names, */
	bool		 broken_values;		/* if it names any */
	unsigned	 breaks;	/* times latched; kept by virtq_reset */
};

/* A request popped from the ring: where its writable bytes are. */
struct virtq_req {
	uint16_t	 head;
	unsigned	 niov;
	size_t		 len;		/* sum of iov lengths */
	struct iovec	 iov[VIRTQ_MAX_IOV];
};

void	virtq_init(struct virtq *);
/* Forgets the ring (RESET_DEVICE, disconnect); keeps nothing mapped. */
void	virtq_reset(struct virtq *);

/* VIRTIO: a power of two, 1..32768.  Returns 0 or -1 (logged). */
int	virtq_set_num(struct virtq *, uint32_t num);
int	virtq_set_addr(struct virtq *, uint64_t desc, uint64_t avail,
	    uint64_t used);
void	virtq_set_base(struct virtq *, uint16_t base);
/*
 * Whether rings at these front-end addresses lie in guest memory, each in
 * one region, for the queue size set (one entry before SET_VRING_NUM).
 * Only looks at the table: touches no guest memory.
 */
bool	virtq_addr_in_memory(const struct virtq *, const struct memtable *,
	    uint64_t desc, uint64_t avail, uint64_t used);

/*
 * Translates the ring addresses through the memory table; needed again
 * after every table change (virtq_ready does it).  Also reads the used
 * index the driver sees, so that completion continues where it stands.
 */
int	virtq_map(struct virtq *, const struct memtable *);
/* The rings are configured and mapped for the current table. */
bool	virtq_ready(struct virtq *, const struct memtable *);

/*
 * Takes the next available request, gathering at most max_len writable
 * bytes.  Returns 1 with *req filled, 0 if the ring is empty, -1 if the
 * ring is (now) broken.  Validates everything it reads: head and next
 * indexes, loops, indirect tables (no nesting, 16-byte multiples),
 * descriptor addresses, and refuses device-readable buffers.
 */
int	virtq_pop(struct virtq *, const struct memtable *,
	    struct virtq_req *req, size_t max_len);
/* Gives the last popped request back (it will be popped again). */
void	virtq_unpop(struct virtq *);
/* Shortens a popped request to at most len bytes (len >= 1). */
void	virtq_req_trim(struct virtq_req *, size_t len);
/* Completes a request with len bytes written (len >= 1). */
void	virtq_push(struct virtq *, uint16_t head, uint32_t len);
/*
 * Asks the driver for a kick on the next buffer (avail_event with
 * EVENT_IDX) and returns true if buffers arrived meanwhile.
 */
bool	virtq_enable_notify(struct virtq *);
/*
 * Asks the driver not to kick while the device polls the ring (--poll-us):
 * VRING_USED_F_NO_NOTIFY without EVENT_IDX; with EVENT_IDX, not moving
 * avail_event is enough (VIRTIO 1.x 2.7.10).
 */
void	virtq_disable_notify(struct virtq *);
/* Whether the driver posted buffers the device has not popped yet. */
bool	virtq_has_avail(struct virtq *);
/*
 * Latches the queue broken for a reason found outside the walker (a static
 * string); the first reason is kept.  Nothing is processed until the
 * front-end restarts the ring.
 */
void	virtq_break(struct virtq *, const char *why);
/* Whether the driver wants an interrupt for what was pushed since. */
bool	virtq_should_notify(struct virtq *);

#endif
