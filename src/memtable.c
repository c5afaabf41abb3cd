/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest memory table.  See memtable.h for the contract.
 *
 * Every number here comes from the front-end.  Sums are never formed
 * before they are known not to wrap: a range [base, base + size) is valid
 * only if size != 0 and size - 1 <= UINT64_MAX - base, and an address a is
 * inside it iff a >= base && a - base < size.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "memtable.h"

void
memtable_init(struct memtable *mt)
{
	memset(mt, 0, sizeof(*mt));
}

static void
region_unmap(struct mem_region *r)
{
	if (r->map_base != NULL)
		munmap(r->map_base, r->map_len);
	if (r->map_base != NULL && r->fd >= 0)
		close(r->fd);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

/* Unmaps every region; the arrays stay for the next table. */
static void
unmap_all(struct memtable *mt)
{
	unsigned i;

	for (i = 0; i < mt->nregions; i++)
		region_unmap(&mt->regions[i]);
	mt->nregions = 0;
	mt->generation++;
}

void
memtable_clear(struct memtable *mt)
{
	unmap_all(mt);
	free(mt->regions);
	free(mt->by_uva);
	mt->regions = NULL;
	mt->by_uva = NULL;
	mt->cap = 0;
}

/*
 * Room for want regions (want <= MEMTABLE_MAX_SLOTS, which the caller has
 * validated): the arrays double, so a guest pays for the regions it has.
 */
static int
reserve(struct memtable *mt, unsigned want)
{
	struct mem_region *r;
	unsigned *u, cap;

	if (want <= mt->cap)
		return 0;
	cap = mt->cap * 2 > want ? mt->cap * 2 : want;
	if (cap > MEMTABLE_MAX_SLOTS)
		cap = MEMTABLE_MAX_SLOTS;
	if ((r = reallocarray(mt->regions, cap, sizeof(*r))) == NULL) {
		log_warn("memory table of %u regions", cap);
		return -1;
	}
	mt->regions = r;
	if ((u = reallocarray(mt->by_uva, cap, sizeof(*u))) == NULL) {
		log_warn("memory table of %u regions", cap);
		return -1;
	}
	mt->by_uva = u;
	mt->cap = cap;
	return 0;
}

/*
 * The binary searches below take one data-dependent step per halving, and
 * guest addresses are as good as random: written as a select, gcc makes
 * each step a conditional move instead of a coin-flip branch (9x faster
 * at 509 regions; clang 14 still branches).
 *
 * gpa_upper: how many regions have a gpa <= gpa; the one to look at is the
 * last of them.
 */
static unsigned
gpa_upper(const struct memtable *mt, uint64_t gpa)
{
	unsigned base = 0, n = mt->nregions;

	if (n == 0)
		return 0;
	while (n > 1) {
		unsigned half = n / 2;

		base = mt->regions[base + half].gpa <= gpa ? base + half :
		    base;
		n -= half;
	}
	return base + (mt->regions[base].gpa <= gpa);
}

/* The same in uva order, through by_uva[]. */
static unsigned
uva_upper(const struct memtable *mt, uint64_t uva)
{
	unsigned base = 0, n = mt->nregions;

	if (n == 0)
		return 0;
	while (n > 1) {
		unsigned half = n / 2;

		base = mt->regions[mt->by_uva[base + half]].uva <= uva ?
		    base + half : base;
		n -= half;
	}
	return base + (mt->regions[mt->by_uva[base]].uva <= uva);
}

/* Adds a mapped, validated region in both orders (room is reserved). */
static void
insert(struct memtable *mt, const struct mem_region *r)
{
	unsigned n = mt->nregions, p, q, k;

	p = gpa_upper(mt, r->gpa);
	memmove(&mt->regions[p + 1], &mt->regions[p],
	    (n - p) * sizeof(mt->regions[0]));
	mt->regions[p] = *r;
	for (k = 0; k < n; k++)
		if (mt->by_uva[k] >= p)
			mt->by_uva[k]++;
	q = uva_upper(mt, r->uva);
	memmove(&mt->by_uva[q + 1], &mt->by_uva[q],
	    (n - q) * sizeof(mt->by_uva[0]));
	mt->by_uva[q] = p;
	mt->nregions = n + 1;
}

/* Unmaps region p and closes the gap in both orders. */
static void
remove_at(struct memtable *mt, unsigned p)
{
	unsigned n = mt->nregions, j, k;

	region_unmap(&mt->regions[p]);
	memmove(&mt->regions[p], &mt->regions[p + 1],
	    (n - p - 1) * sizeof(mt->regions[0]));
	for (j = k = 0; k < n; k++) {
		if (mt->by_uva[k] == p)
			continue;
		mt->by_uva[j++] = mt->by_uva[k] > p ? mt->by_uva[k] - 1 :
		    mt->by_uva[k];
	}
	mt->nregions = n - 1;
}

/* [base, base+size) does not wrap and is not empty. */
static bool
range_ok(uint64_t base, uint64_t size)
{
	return size != 0 && size - 1 <= UINT64_MAX - base;
}

/* Two valid ranges overlap; written with last bytes so nothing wraps. */
static bool
ranges_overlap(uint64_t a, uint64_t asize, uint64_t b, uint64_t bsize)
{
	uint64_t alast = a + (asize - 1), blast = b + (bsize - 1);

	return a <= blast && b <= alast;
}

static int
check_one(const struct vu_mem_region *r, unsigned i)
{
	if (!range_ok(r->guest_phys_addr, r->memory_size)) {
		log_guest_err("memory region %u: guest range 0x%llx+0x%llx is "
		    "empty or wraps", i,
		    (unsigned long long)r->guest_phys_addr,
		    (unsigned long long)r->memory_size);
		return -1;
	}
	if (!range_ok(r->userspace_addr, r->memory_size)) {
		log_guest_err("memory region %u: user range 0x%llx+0x%llx "
		    "wraps", i, (unsigned long long)r->userspace_addr,
		    (unsigned long long)r->memory_size);
		return -1;
	}
	/* We map [0, offset + size) of the fd: that must fit a size_t. */
	if (r->mmap_offset > SIZE_MAX - r->memory_size ||
	    r->mmap_offset + r->memory_size > (uint64_t)INT64_MAX) {
		log_guest_err("memory region %u: mmap offset 0x%llx + size "
		    "0x%llx too large", i,
		    (unsigned long long)r->mmap_offset,
		    (unsigned long long)r->memory_size);
		return -1;
	}
	return 0;
}

int
memtable_validate(const struct vu_mem_region *regs, unsigned n,
    const struct mem_region *existing, unsigned nexisting)
{
	uint64_t total = 0;
	unsigned i, j;

	for (j = 0; j < nexisting; j++)
		total += existing[j].size;	/* each <= the cap: no wrap */
	if (n + nexisting > MEMTABLE_MAX_SLOTS) {
		log_guest_err("memory table: %u regions, at most %u", n +
		    nexisting, MEMTABLE_MAX_SLOTS);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (check_one(&regs[i], i) < 0)
			return -1;
		if (regs[i].memory_size > MEMTABLE_MAX_BYTES - total) {
			log_guest_err("memory regions add up to more than %llu "
			    "GiB", MEMTABLE_MAX_BYTES >> 30);
			return -1;
		}
		total += regs[i].memory_size;
		for (j = 0; j < i; j++) {
			if (ranges_overlap(regs[i].guest_phys_addr,
			    regs[i].memory_size, regs[j].guest_phys_addr,
			    regs[j].memory_size) ||
			    ranges_overlap(regs[i].userspace_addr,
			    regs[i].memory_size, regs[j].userspace_addr,
			    regs[j].memory_size)) {
				log_guest_err("memory regions %u and %u "
				    "overlap", j, i);
				return -1;
			}
		}
		for (j = 0; j < nexisting; j++) {
			if (ranges_overlap(regs[i].guest_phys_addr,
			    regs[i].memory_size, existing[j].gpa,
			    existing[j].size) ||
			    ranges_overlap(regs[i].userspace_addr,
			    regs[i].memory_size, existing[j].uva,
			    existing[j].size)) {
				log_guest_err("new memory region overlaps "
				    "mapped region %u", j);
				return -1;
			}
		}
	}
	return 0;
}

/*
 * Maps one validated region.  The file must really be as large as the
 * front-end claims: touching a mapping past the end of its file raises
 * SIGBUS, which would take the whole daemon down.
 */
static int
region_map(struct mem_region *out, const struct vu_mem_region *r, int fd)
{
	struct stat st;
	size_t len = (size_t)(r->mmap_offset + r->memory_size);
	uint64_t align, map_off;
	void *p;

	if (fstat(fd, &st) < 0) {
		log_guest_err("memory region fd: %s", strerror(errno));
		return -1;
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < (uint64_t)len) {
		log_guest_err("memory region 0x%llx+0x%llx: file has only "
		    "%lld bytes", (unsigned long long)r->guest_phys_addr,
		    (unsigned long long)r->memory_size,
		    (long long)st.st_size);
		return -1;
	}
	/*
	 * Map only the region, from its offset rounded down to the file's
	 * block size (a hugetlbfs file wants huge-page-aligned offsets and
	 * says so in st_blksize): a huge mmap_offset must not cost address
	 * space.  NORESERVE because the guest's memory is accounted to the
	 * front-end already.
	 */
	align = (uint64_t)sysconf(_SC_PAGESIZE);
	if (st.st_blksize > 0 && (uint64_t)st.st_blksize > align &&
	    (st.st_blksize & (st.st_blksize - 1)) == 0)
		align = (uint64_t)st.st_blksize;
	map_off = r->mmap_offset & ~(align - 1);
	len = (size_t)(r->mmap_offset - map_off + r->memory_size);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
	    fd, (off_t)map_off);
	if (p == MAP_FAILED) {
		log_guest_err("mmap of memory region 0x%llx+0x%llx: %s",
		    (unsigned long long)r->guest_phys_addr,
		    (unsigned long long)r->memory_size, strerror(errno));
		return -1;
	}
	out->gpa = r->guest_phys_addr;
	out->size = r->memory_size;
	out->uva = r->userspace_addr;
	out->map_base = p;
	out->map_len = len;
	out->host = (char *)p + (r->mmap_offset - map_off);
	out->fd = fd;
	out->mmap_offset = r->mmap_offset;
	return 0;
}

static void
close_fds(const int *fds, unsigned nfds)
{
	unsigned i;

	for (i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

int
memtable_set(struct memtable *mt, const struct vu_mem_region *regs,
    unsigned n, const int *fds, unsigned nfds)
{
	struct mem_region fresh[VU_MEM_TABLE_MAX];
	unsigned i;

	memset(fresh, 0, sizeof(fresh));
	if (n > VU_MEM_TABLE_MAX || n != nfds) {
		log_guest_err("SET_MEM_TABLE: %u regions but %u fds", n, nfds);
		goto fail;
	}
	if (memtable_validate(regs, n, NULL, 0) < 0)
		goto fail;
	for (i = 0; i < n; i++) {
		if (region_map(&fresh[i], &regs[i], fds[i]) < 0)
			goto unmap;
	}
	if (reserve(mt, n) < 0)
		goto unmap;
	/* The fds now belong to fresh[]. */
	unmap_all(mt);
	for (i = 0; i < n; i++)
		insert(mt, &fresh[i]);
	mt->generation++;
	return 0;
unmap:
	/* Unmapped here, closed below with the others. */
	while (i-- > 0) {
		fresh[i].fd = -1;
		region_unmap(&fresh[i]);
	}
fail:
	close_fds(fds, nfds);
	return -1;
}

int
memtable_add(struct memtable *mt, const struct vu_mem_region *r, int fd)
{
	struct mem_region m;
	int ret = -1;

	if (memtable_validate(r, 1, mt->regions, mt->nregions) == 0 &&
	    reserve(mt, mt->nregions + 1) == 0 &&
	    region_map(&m, r, fd) == 0) {
		insert(mt, &m);
		mt->generation++;
		ret = 0;
	} else
		close(fd);
	return ret;
}

int
memtable_remove(struct memtable *mt, const struct vu_mem_region *r)
{
	unsigned p = gpa_upper(mt, r->guest_phys_addr);
	const struct mem_region *m = p > 0 ? &mt->regions[p - 1] : NULL;

	/* vhost-user.rst: identified by gpa, uva and size. */
	if (m != NULL && m->gpa == r->guest_phys_addr &&
	    m->size == r->memory_size && m->uva == r->userspace_addr) {
		remove_at(mt, p - 1);
		mt->generation++;
		return 0;
	}
	log_guest_err("REM_MEM_REG: no region 0x%llx+0x%llx mapped",
	    (unsigned long long)r->guest_phys_addr,
	    (unsigned long long)r->memory_size);
	return -1;
}

void *
memtable_gpa(const struct memtable *mt, uint64_t gpa, uint64_t *len)
{
	const struct mem_region *m;
	unsigned i;
	uint64_t off;

	if (*len == 0 || (i = gpa_upper(mt, gpa)) == 0)
		return NULL;
	m = &mt->regions[i - 1];
	off = gpa - m->gpa;		/* m->gpa <= gpa */
	if (off >= m->size)
		return NULL;
	if (*len > m->size - off)
		*len = m->size - off;
	return (char *)m->host + off;
}

bool
memtable_gpa_range(const struct memtable *mt, uint64_t gpa, uint64_t len)
{
	if (!range_ok(gpa, len))
		return false;
	/*
	 * Each step ends at the end of a region, and regions do not overlap,
	 * so this runs at most once per region.
	 */
	for (;;) {
		uint64_t chunk = len;

		if (memtable_gpa(mt, gpa, &chunk) == NULL)
			return false;
		if (chunk == len)
			return true;
		len -= chunk;
		gpa += chunk;	/* < the range's end: range_ok above */
	}
}

void *
memtable_uva(const struct memtable *mt, uint64_t uva, uint64_t len)
{
	const struct mem_region *m;
	unsigned i;
	uint64_t off;

	if (len == 0 || (i = uva_upper(mt, uva)) == 0)
		return NULL;
	m = &mt->regions[mt->by_uva[i - 1]];
	off = uva - m->uva;		/* m->uva <= uva */
	if (off >= m->size || len > m->size - off)
		return NULL;
	return (char *)m->host + off;
}
