/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_TEST_UNIT_RING_H
#define VRNG_TEST_UNIT_RING_H

/*
 * Shared by the unit suites that play the driver against the data path
 * (test_serve.c on serve.c, test_guest.c on a whole guest thread), so
 * that both set up guest memory, write rings and read completions the
 * same way: memfd-backed guest memory the test maps too, the driver's
 * side of one split ring in it, and the daemon-side state of one guest.
 * Every helper turns a failure into a Check failure.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include "entropy.h"
#include "guest.h"
#include "ratelimit.h"
#include "virtq.h"

/* Guest memory: a memfd of size bytes, mapped shared into the test. */
struct unit_mem {
	int		 fd;		/* -1: none */
	uint8_t		*p;		/* MAP_FAILED: not mapped */
	size_t		 size;
};

void	unit_mem_map(struct unit_mem *, const char *name, size_t size);
/* Unmaps and closes what is there; safe on a struct never mapped. */
void	unit_mem_unmap(struct unit_mem *);
/* Nothing mapped, nothing open (for the fixture before unit_mem_map). */
#define UNIT_MEM_NONE	((struct unit_mem){ -1, MAP_FAILED, 0 })

/* A descriptor as a driver writes it (little-endian). */
struct vring_desc unit_desc(uint64_t addr, uint32_t len, uint16_t flags,
	    uint16_t next);

/*
 * The driver's side of a split ring of num entries whose parts lie at
 * these offsets from base (the test's mapping of guest memory).  Writes
 * that publish (the avail index) are releases and the used index is read
 * with acquire, so a device on another thread sees whole entries.
 */
struct unit_ring {
	uint8_t		*base;
	unsigned	 num;
	size_t		 desc, avail, used;
	uint16_t	 avail_idx;	/* the next one the driver publishes */
};

/* Descriptor i of the ring's table. */
void	uring_desc(struct unit_ring *, unsigned i, uint64_t addr,
	    uint32_t len, uint16_t flags, uint16_t next);
/* Makes head available (no kick). */
void	uring_offer(struct unit_ring *, uint16_t head);
/* One writable buffer as descriptor i, offered. */
void	uring_post(struct unit_ring *, unsigned i, uint64_t addr,
	    uint32_t len);
/* Word i of the avail ring (0: flags, 1: idx, 2..: entries). */
volatile uint16_t *uring_avail16(struct unit_ring *, unsigned i);
uint16_t uring_used_idx(const struct unit_ring *);
uint16_t uring_used_flags(const struct unit_ring *);
/* The i-th completion (counting from 0, modulo the ring). */
struct vring_used_elem uring_used(const struct unit_ring *, unsigned i);
void	uring_assert_used(const struct unit_ring *, unsigned i, uint32_t id,
	    uint32_t len);
/* EVENT_IDX: avail_event after the used ring, used_event after avail. */
uint16_t uring_avail_event(const struct unit_ring *);
void	uring_set_used_event(struct unit_ring *, uint16_t);

/*
 * The daemon side of one guest: its slot (index 0) and the state it
 * shares, with the entropy source and the rate limit it points at.
 */
struct unit_guest {
	struct entropy		 src;
	bool			 src_open;
	struct ratelimit	 rl;
	bool			 rl_on;
	struct guest_shared	 shared;
	struct guest_slot	 slot;
};

/* No source, no rate limit, no fds (the slot's and wake_main_fd: -1). */
void	uguest_init(struct unit_guest *);
/* Closes the source and frees the rate limit, if any. */
void	uguest_fini(struct unit_guest *);
void	uguest_source(struct unit_guest *, const char *path);
/*
 * A FIFO as the source, in a new directory made from the mkdtemp(3)
 * template dir: returns the FIFO's write end (the test closes it); the
 * FIFO and the directory are already unlinked.
 */
int	uguest_fifo(struct unit_guest *, char *dir);
/* A rate limit of max_bytes per period_ms for the one guest. */
void	uguest_ratelimit(struct unit_guest *, uint64_t max_bytes,
	    uint32_t period_ms, uint64_t epoch_ns);
struct guest_stats uguest_stats(const struct unit_guest *);

#endif
