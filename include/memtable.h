/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_MEMTABLE_H
#define VRNG_MEMTABLE_H

/*
 * The guest-memory table of one guest: the regions the front-end shared
 * with SET_MEM_TABLE or ADD_MEM_REG, each mapped once into our address
 * space.  Owned by that guest's thread; nobody else touches it.
 *
 * Two address spaces reach guest memory: guest physical addresses (in
 * descriptors) and front-end virtual addresses (the ring addresses of
 * SET_VRING_ADDR).  Each is translated by exactly one function below, and
 * every access to guest memory goes through one of them.  Ranges are
 * half-open and checked by subtraction, so no sum can wrap.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vu_proto.h"

/*
 * What GET_MAX_MEM_SLOTS reports (vhost-user.rst "Memory region
 * description"): the 509 of Linux vhost and libvhost-user, so that QEMU
 * accepts a guest with as many DIMMs as with them.  The table grows as
 * regions arrive: a guest with one region carries one region's worth.
 */
#define MEMTABLE_MAX_SLOTS	509
/*
 * Guest memory one guest may have mapped in all: 1 TiB.  Mappings cost our
 * address space (128 TiB in all), which every guest shares; without a cap
 * one front-end with sparse files could leave none for the others.
 */
#define MEMTABLE_MAX_BYTES	(1ull << 40)

struct mem_region {
	uint64_t	 gpa;		/* guest physical base */
	uint64_t	 size;
	uint64_t	 uva;		/* front-end virtual base */
	void		*host;		/* where gpa maps in our space */
	void		*map_base;	/* what mmap returned */
	size_t		 map_len;
	/*
	 * The region's file, kept open for a successor: a live upgrade or a
	 * restart from systemd's fd store maps it again (handover.h).  One
	 * fd per region; QEMU passes one per memory backend and region.
	 */
	int		 fd;
	uint64_t	 mmap_offset;	/* of gpa in fd */
};

/*
 * regions[] is sorted by gpa and by_uva[] holds the indexes of regions[]
 * sorted by uva, so that both translations are binary searches (regions
 * never overlap in either space: memtable_validate).  Both arrays have
 * room for cap entries.
 */
struct memtable {
	struct mem_region	*regions;
	unsigned		*by_uva;
	unsigned		nregions;
	unsigned		cap;
	/* Bumped on every change, so users of cached pointers notice. */
	uint64_t		generation;
};

void	memtable_init(struct memtable *);
/*
 * Unmaps everything and frees the arrays; the table is empty (and
 * reusable) afterwards.
 */
void	memtable_clear(struct memtable *);

/*
 * Replaces the whole table (SET_MEM_TABLE).  The new table is validated as
 * a whole (count, sizes, overflow, overlap) and mapped before the old one
 * is dropped: on failure the old table stays.  Takes ownership of the fds:
 * kept with their regions on success (closed when a region goes), closed
 * on failure.  Returns 0, or -1 after logging why.
 */
int	memtable_set(struct memtable *, const struct vu_mem_region *,
	    unsigned nregions, const int *fds, unsigned nfds);
/* ADD_MEM_REG: maps one more region; takes ownership of fd (as above). */
int	memtable_add(struct memtable *, const struct vu_mem_region *, int fd);
/* REM_MEM_REG: the region with this gpa, size and uva. */
int	memtable_remove(struct memtable *, const struct vu_mem_region *);

/*
 * Guest physical address -> host pointer, O(log n).  On success *len is
 * clamped to the bytes that are contiguous in one region (at least 1, at
 * most the requested length).  Returns NULL if gpa is in no region or
 * *len is 0.
 */
void	*memtable_gpa(const struct memtable *, uint64_t gpa, uint64_t *len);
/*
 * Whether the whole of [gpa, gpa+len) is guest memory, possibly spanning
 * regions that are adjacent in guest physical space.  False for len 0 and
 * for a range that wraps.  Costs one lookup per region spanned.
 */
bool	memtable_gpa_range(const struct memtable *, uint64_t gpa,
	    uint64_t len);
/*
 * Front-end virtual address -> host pointer for the whole of [uva, uva+len)
 * inside one region (the rings must be contiguous), or NULL; O(log n).
 */
void	*memtable_uva(const struct memtable *, uint64_t uva, uint64_t len);

/* Pure check of a region list, exposed for the tests. */
int	memtable_validate(const struct vu_mem_region *, unsigned nregions,
	    const struct mem_region *existing, unsigned nexisting);

#endif
