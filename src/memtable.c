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
	memset(r, 0, sizeof(*r));
}

void
memtable_clear(struct memtable *mt)
{
	unsigned i;

	for (i = 0; i < mt->nregions; i++)
		region_unmap(&mt->regions[i]);
	mt->nregions = 0;
	mt->generation++;
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
		if (region_map(&fresh[i], &regs[i], fds[i]) < 0) {
			while (i-- > 0)
				region_unmap(&fresh[i]);
			goto fail;
		}
	}
	close_fds(fds, nfds);
	memtable_clear(mt);
	memcpy(mt->regions, fresh, n * sizeof(fresh[0]));
	mt->nregions = n;
	mt->generation++;
	return 0;
fail:
	close_fds(fds, nfds);
	return -1;
}

int
memtable_add(struct memtable *mt, const struct vu_mem_region *r, int fd)
{
	int ret = -1;

	if (memtable_validate(r, 1, mt->regions, mt->nregions) == 0 &&
	    region_map(&mt->regions[mt->nregions], r, fd) == 0) {
		mt->nregions++;
		mt->generation++;
		ret = 0;
	}
	close(fd);
	return ret;
}

int
memtable_remove(struct memtable *mt, const struct vu_mem_region *r)
{
	unsigned i;

	for (i = 0; i < mt->nregions; i++) {
		struct mem_region *m = &mt->regions[i];

		/* vhost-user.rst: identified by gpa, uva and size. */
		if (m->gpa == r->guest_phys_addr && m->size == r->memory_size &&
		    m->uva == r->userspace_addr) {
			region_unmap(m);
			mt->regions[i] = mt->regions[mt->nregions - 1];
			memset(&mt->regions[mt->nregions - 1], 0,
			    sizeof(*m));
			mt->nregions--;
			mt->generation++;
			return 0;
		}
	}
	log_guest_err("REM_MEM_REG: no region 0x%llx+0x%llx mapped",
	    (unsigned long long)r->guest_phys_addr,
	    (unsigned long long)r->memory_size);
	return -1;
}

void *
memtable_gpa(const struct memtable *mt, uint64_t gpa, uint64_t *len)
{
	unsigned i;

	if (*len == 0)
		return NULL;
	for (i = 0; i < mt->nregions; i++) {
		const struct mem_region *m = &mt->regions[i];
		uint64_t off;

		if (gpa < m->gpa || gpa - m->gpa >= m->size)
			continue;
		off = gpa - m->gpa;
		if (*len > m->size - off)
			*len = m->size - off;
		return (char *)m->host + off;
	}
	return NULL;
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
	unsigned i;

	if (len == 0)
		return NULL;
	for (i = 0; i < mt->nregions; i++) {
		const struct mem_region *m = &mt->regions[i];
		uint64_t off;

		if (uva < m->uva || uva - m->uva >= m->size)
			continue;
		off = uva - m->uva;
		if (len > m->size - off)
			return NULL;
		return (char *)m->host + off;
	}
	return NULL;
}
