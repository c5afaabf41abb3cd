/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest memory table over real memfds: validation of what the
 * front-end claims, translation at the edges of regions, fd ownership, and
 * that a write through a translated pointer lands in the shared file.
 */
#include <stdlib.h>
#include <string.h>

#include "memtable.h"
#include "unit.h"

#define PAGE		4096ull
#define RSIZE		(16 * PAGE)
#define GPA0		0x100000000ull
#define UVA0		0x7f0000000000ull

static struct memtable mt;

static void
setup(void)
{
	memtable_init(&mt);
}

static void
teardown(void)
{
	memtable_clear(&mt);
}

static struct vu_mem_region
reg(uint64_t gpa, uint64_t size, uint64_t uva, uint64_t off)
{
	struct vu_mem_region r;

	r.guest_phys_addr = gpa;
	r.memory_size = size;
	r.userspace_addr = uva;
	r.mmap_offset = off;
	return r;
}

/* Sets a one-region table; returns a second fd on the same memfd. */
static int
set_one(uint64_t gpa, uint64_t size, uint64_t uva)
{
	struct vu_mem_region r = reg(gpa, size, uva, 0);
	int fd = unit_memfd("mt", size), give;

	ck_assert_int_ge(give = dup(fd), 0);
	ck_assert_int_eq(memtable_set(&mt, &r, 1, &give, 1), 0);
	ck_assert(unit_table_holds_fd(&mt, give));
	return fd;
}

/* Reads one byte of the memfd at off, through the file, not the map. */
static unsigned char
file_byte(int fd, off_t off)
{
	unsigned char c;

	ck_assert_int_eq(pread(fd, &c, 1, off), 1);
	return c;
}

START_TEST(set_translates_and_writes_land_in_memfd)
{
	uint64_t len = 16;
	unsigned char *p;
	int fd;

	fd = set_one(GPA0, RSIZE, UVA0);
	ck_assert_uint_eq(mt.nregions, 1);
	p = memtable_gpa(&mt, GPA0 + 100, &len);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(len, 16);
	memcpy(p, "entropy!", 8);
	ck_assert_uint_eq(file_byte(fd, 100), 'e');
	ck_assert_uint_eq(file_byte(fd, 107), '!');
	/* The other translator reaches the same bytes. */
	ck_assert_ptr_eq(memtable_uva(&mt, UVA0 + 100, 8), p);
	close(fd);
}
END_TEST

/* n = 1..8 regions with holes between them (loop test). */
START_TEST(set_n_regions)
{
	struct vu_mem_region r[VU_MEM_TABLE_MAX];
	int fds[VU_MEM_TABLE_MAX], keep[VU_MEM_TABLE_MAX];
	unsigned n = (unsigned)_i, i;

	for (i = 0; i < n; i++) {
		/* gpa i*2 regions apart, uva in reverse order. */
		r[i] = reg(GPA0 + 2 * i * RSIZE, RSIZE,
		    UVA0 + (n - i) * 4 * RSIZE, 0);
		keep[i] = unit_memfd("mt", RSIZE);
		ck_assert_int_ge(fds[i] = dup(keep[i]), 0);
	}
	ck_assert_int_eq(memtable_set(&mt, r, n, fds, n), 0);
	ck_assert_uint_eq(mt.nregions, n);
	for (i = 0; i < n; i++) {
		uint64_t len = 1000;
		char *p;

		ck_assert(unit_table_holds_fd(&mt, fds[i]));
		/* Last byte of the region: clamped to 1. */
		p = memtable_gpa(&mt, r[i].guest_phys_addr + RSIZE - 1, &len);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq(len, 1);
		*p = (char)('A' + i);
		ck_assert_uint_eq(file_byte(keep[i], RSIZE - 1), 'A' + i);
		/* The hole after it. */
		len = 1;
		ck_assert_ptr_null(memtable_gpa(&mt,
		    r[i].guest_phys_addr + RSIZE, &len));
		ck_assert_ptr_eq(memtable_uva(&mt, r[i].userspace_addr +
		    RSIZE - 1, 1), p);
		close(keep[i]);
	}
}
END_TEST

START_TEST(zero_regions_empties_the_table)
{
	int fd = set_one(GPA0, RSIZE, UVA0);
	uint64_t len = 1;

	ck_assert_int_eq(memtable_set(&mt, NULL, 0, NULL, 0), 0);
	ck_assert_uint_eq(mt.nregions, 0);
	ck_assert_ptr_null(memtable_gpa(&mt, GPA0, &len));
	close(fd);
}
END_TEST

START_TEST(gpa_edges)
{
	uint64_t len;
	char *base, *p;
	int fd = set_one(GPA0, RSIZE, UVA0);

	len = 1;
	ck_assert_ptr_nonnull(base = memtable_gpa(&mt, GPA0, &len));
	ck_assert_uint_eq(len, 1);

	/* Across the end: clamped to what is left in the region. */
	len = 100;
	p = memtable_gpa(&mt, GPA0 + RSIZE - 10, &len);
	ck_assert_ptr_eq(p, base + RSIZE - 10);
	ck_assert_uint_eq(len, 10);
	len = UINT64_MAX;
	ck_assert_ptr_eq(memtable_gpa(&mt, GPA0, &len), base);
	ck_assert_uint_eq(len, RSIZE);

	/* Just before and just after. */
	len = 1;
	ck_assert_ptr_null(memtable_gpa(&mt, GPA0 - 1, &len));
	len = 16;
	ck_assert_ptr_null(memtable_gpa(&mt, GPA0 + RSIZE, &len));
	len = 1;
	ck_assert_ptr_null(memtable_gpa(&mt, 0, &len));
	len = 1;
	ck_assert_ptr_null(memtable_gpa(&mt, UINT64_MAX, &len));
	len = UINT64_MAX;
	ck_assert_ptr_null(memtable_gpa(&mt, UINT64_MAX, &len));

	/* len 0 is never a valid range, even at a mapped address. */
	len = 0;
	ck_assert_ptr_null(memtable_gpa(&mt, GPA0, &len));
	close(fd);
}
END_TEST

/* A region that ends at the very top of the address space. */
START_TEST(gpa_region_at_top)
{
	uint64_t top = UINT64_MAX - RSIZE + 1, len;
	char *p;
	int fd = set_one(top, RSIZE, top);

	len = UINT64_MAX;
	ck_assert_ptr_nonnull(p = memtable_gpa(&mt, UINT64_MAX, &len));
	ck_assert_uint_eq(len, 1);
	len = 2;
	ck_assert_ptr_nonnull(memtable_gpa(&mt, top, &len));
	ck_assert_uint_eq(len, 2);
	ck_assert_ptr_eq(memtable_uva(&mt, UINT64_MAX, 1), p);
	ck_assert_ptr_null(memtable_uva(&mt, UINT64_MAX, 2));
	ck_assert_ptr_nonnull(memtable_uva(&mt, top, RSIZE));
	ck_assert_ptr_null(memtable_uva(&mt, top, RSIZE + 1));
	close(fd);
}
END_TEST

START_TEST(uva_whole_range_only)
{
	struct vu_mem_region r[2];
	int fds[2], keep[2];
	char *base;

	/* Two regions adjacent in both spaces. */
	r[0] = reg(GPA0, RSIZE, UVA0, 0);
	r[1] = reg(GPA0 + RSIZE, RSIZE, UVA0 + RSIZE, 0);
	keep[0] = unit_memfd("a", RSIZE);
	keep[1] = unit_memfd("b", RSIZE);
	fds[0] = dup(keep[0]);
	fds[1] = dup(keep[1]);
	ck_assert_int_eq(memtable_set(&mt, r, 2, fds, 2), 0);

	ck_assert_ptr_nonnull(base = memtable_uva(&mt, UVA0, RSIZE));
	ck_assert_ptr_eq(memtable_uva(&mt, UVA0 + RSIZE - 1, 1),
	    base + RSIZE - 1);
	ck_assert_ptr_null(memtable_uva(&mt, UVA0 + RSIZE - 1, 2));
	/* Adjacent in uva is still two mappings: never one range. */
	ck_assert_ptr_null(memtable_uva(&mt, UVA0, RSIZE + 1));
	ck_assert_ptr_null(memtable_uva(&mt, UVA0 - 1, 1));
	ck_assert_ptr_null(memtable_uva(&mt, UVA0 + 2 * RSIZE, 1));
	ck_assert_ptr_null(memtable_uva(&mt, UVA0, 0));
	ck_assert_ptr_null(memtable_uva(&mt, UVA0, UINT64_MAX));
	ck_assert_ptr_null(memtable_uva(&mt, UINT64_MAX, 1));
	ck_assert_ptr_nonnull(memtable_uva(&mt, UVA0 + RSIZE, RSIZE));
	/* gpa translation clamps at the seam instead. */
	{
		uint64_t len = 32;

		ck_assert_ptr_nonnull(memtable_gpa(&mt, GPA0 + RSIZE - 16,
		    &len));
		ck_assert_uint_eq(len, 16);
	}
	close(keep[0]);
	close(keep[1]);
}
END_TEST

START_TEST(count_mismatch_refused_and_fds_closed)
{
	struct vu_mem_region r[VU_MEM_TABLE_MAX + 1];
	int fds[VU_MEM_TABLE_MAX + 1];
	unsigned i;

	for (i = 0; i <= VU_MEM_TABLE_MAX; i++) {
		r[i] = reg(GPA0 + i * RSIZE, RSIZE, UVA0 + i * RSIZE, 0);
		fds[i] = unit_memfd("mt", RSIZE);
	}
	/* Two regions, one fd. */
	ck_assert_int_eq(memtable_set(&mt, r, 2, fds, 1), -1);
	ck_assert(unit_fd_closed(fds[0]));
	ck_assert_uint_eq(mt.nregions, 0);

	/* One region, two fds: the extra one is closed too. */
	fds[0] = unit_memfd("mt", RSIZE);
	ck_assert_int_eq(memtable_set(&mt, r, 1, fds, 2), -1);
	ck_assert(unit_fd_closed(fds[0]));
	ck_assert(unit_fd_closed(fds[1]));

	/* Nine of each: more than a SET_MEM_TABLE can carry. */
	fds[0] = unit_memfd("mt", RSIZE);
	fds[1] = unit_memfd("mt", RSIZE);
	ck_assert_int_eq(memtable_set(&mt, r, VU_MEM_TABLE_MAX + 1, fds,
	    VU_MEM_TABLE_MAX + 1), -1);
	for (i = 0; i <= VU_MEM_TABLE_MAX; i++)
		ck_assert_msg(unit_fd_closed(fds[i]), "fd %u left open", i);
	ck_assert_uint_eq(mt.nregions, 0);
}
END_TEST

/* Expects memtable_set of the n regions to fail, with every fd closed. */
static void
expect_set_refused(const struct vu_mem_region *r, unsigned n,
    size_t file_size)
{
	int fds[VU_MEM_TABLE_MAX];
	uint64_t gen = mt.generation;
	unsigned i, before = mt.nregions;

	for (i = 0; i < n; i++)
		fds[i] = unit_memfd("bad", file_size);
	ck_assert_int_eq(memtable_set(&mt, r, n, fds, n), -1);
	for (i = 0; i < n; i++)
		ck_assert_msg(unit_fd_closed(fds[i]), "fd %u left open", i);
	ck_assert_uint_eq(mt.nregions, before);
	ck_assert_uint_eq(mt.generation, gen);
}

START_TEST(overlap_refused)
{
	struct vu_mem_region r[2];

	/* gpa overlaps by one byte, uva apart. */
	r[0] = reg(GPA0, RSIZE, UVA0, 0);
	r[1] = reg(GPA0 + RSIZE - 1, RSIZE, UVA0 + 4 * RSIZE, 0);
	expect_set_refused(r, 2, RSIZE);
	/* uva overlaps, gpa apart. */
	r[1] = reg(GPA0 + 4 * RSIZE, RSIZE, UVA0 + RSIZE - 1, 0);
	expect_set_refused(r, 2, RSIZE);
	/* One inside the other. */
	r[1] = reg(GPA0 + PAGE, PAGE, UVA0 + 8 * RSIZE, 0);
	expect_set_refused(r, 2, RSIZE);
	/* Identical. */
	r[1] = r[0];
	expect_set_refused(r, 2, RSIZE);
}
END_TEST

START_TEST(adjacent_accepted)
{
	struct vu_mem_region r[2];
	int fds[2];

	r[0] = reg(GPA0, RSIZE, UVA0, 0);
	r[1] = reg(GPA0 + RSIZE, RSIZE, UVA0 - RSIZE, 0);
	fds[0] = unit_memfd("a", RSIZE);
	fds[1] = unit_memfd("b", RSIZE);
	ck_assert_int_eq(memtable_set(&mt, r, 2, fds, 2), 0);
	ck_assert_uint_eq(mt.nregions, 2);
}
END_TEST

START_TEST(size_zero_refused)
{
	struct vu_mem_region r = reg(GPA0, 0, UVA0, 0);

	expect_set_refused(&r, 1, RSIZE);
}
END_TEST

START_TEST(gpa_wrap_refused)
{
	struct vu_mem_region r;

	r = reg(UINT64_MAX - 100, RSIZE, UVA0, 0);
	expect_set_refused(&r, 1, RSIZE);
	r = reg(UINT64_MAX, 2, UVA0, 0);
	expect_set_refused(&r, 1, RSIZE);
	/* One byte past the top. */
	r = reg(UINT64_MAX - RSIZE + 2, RSIZE, UVA0, 0);
	expect_set_refused(&r, 1, RSIZE);
}
END_TEST

START_TEST(uva_wrap_refused)
{
	struct vu_mem_region r;

	r = reg(GPA0, RSIZE, UINT64_MAX - 100, 0);
	expect_set_refused(&r, 1, RSIZE);
	r = reg(GPA0, RSIZE, UINT64_MAX - RSIZE + 2, 0);
	expect_set_refused(&r, 1, RSIZE);
}
END_TEST

START_TEST(mmap_offset_overflow_refused)
{
	struct vu_mem_region r;

	r = reg(GPA0, RSIZE, UVA0, UINT64_MAX - 100);
	expect_set_refused(&r, 1, RSIZE);
	r = reg(GPA0, RSIZE, UVA0, UINT64_MAX - RSIZE + 1);
	expect_set_refused(&r, 1, RSIZE);
	/* No wrap, but no file offset (off_t) can be that large. */
	r = reg(GPA0, RSIZE, UVA0, 1ull << 63);
	expect_set_refused(&r, 1, RSIZE);
	/* A size that no file can have, even at offset 0. */
	r = reg(GPA0, 1ull << 63, UVA0, 0);
	expect_set_refused(&r, 1, RSIZE);
}
END_TEST

/* Touching a mapping past the end of its file would raise SIGBUS. */
START_TEST(file_smaller_than_region_refused)
{
	struct vu_mem_region r;

	r = reg(GPA0, 2 * RSIZE, UVA0, 0);
	expect_set_refused(&r, 1, RSIZE);
	r = reg(GPA0, RSIZE, UVA0, PAGE);
	expect_set_refused(&r, 1, RSIZE);
	/* One byte short. */
	r = reg(GPA0, RSIZE + 1, UVA0, 0);
	expect_set_refused(&r, 1, RSIZE);
}
END_TEST

START_TEST(mmap_offset_maps_file_offset)
{
	struct vu_mem_region r = reg(GPA0, RSIZE, UVA0, 3 * PAGE + 8);
	int keep = unit_memfd("off", 3 * PAGE + 8 + RSIZE), fd;
	uint64_t len = 4;
	char *p;

	fd = dup(keep);
	ck_assert_int_eq(memtable_set(&mt, &r, 1, &fd, 1), 0);
	ck_assert_ptr_nonnull(p = memtable_gpa(&mt, GPA0 + 5, &len));
	memcpy(p, "rng", 4);
	ck_assert_uint_eq(file_byte(keep, 3 * PAGE + 8 + 5), 'r');
	ck_assert_uint_eq(file_byte(keep, 3 * PAGE + 8 + 7), 'g');
	/* The last byte of the region is the last byte of the file. */
	len = 1;
	ck_assert_ptr_nonnull(p = memtable_gpa(&mt, GPA0 + RSIZE - 1, &len));
	*p = 'Z';
	ck_assert_uint_eq(file_byte(keep, 3 * PAGE + 8 + RSIZE - 1), 'Z');
	close(keep);
}
END_TEST

START_TEST(bad_fd_refused)
{
	struct vu_mem_region r = reg(GPA0, RSIZE, UVA0, 0);
	int fd = -1, pipefd[2];

	ck_assert_int_eq(memtable_set(&mt, &r, 1, &fd, 1), -1);
	/* A pipe cannot be mapped. */
	ck_assert_int_eq(pipe(pipefd), 0);
	ck_assert_int_eq(memtable_set(&mt, &r, 1, &pipefd[0], 1), -1);
	ck_assert(unit_fd_closed(pipefd[0]));
	close(pipefd[1]);
	ck_assert_uint_eq(mt.nregions, 0);
}
END_TEST

START_TEST(failed_set_keeps_old_table)
{
	struct vu_mem_region bad[2];
	uint64_t gen, len = 8;
	char *p;
	int fd = set_one(GPA0, RSIZE, UVA0);

	p = memtable_gpa(&mt, GPA0, &len);
	gen = mt.generation;
	/* The second region of the new table is refused after the first. */
	bad[0] = reg(0, RSIZE, 0x1000000, 0);
	bad[1] = reg(RSIZE, 2 * RSIZE, 0x2000000, 0);
	expect_set_refused(bad, 2, RSIZE);
	ck_assert_uint_eq(mt.generation, gen);
	ck_assert_uint_eq(mt.nregions, 1);
	len = 8;
	ck_assert_ptr_eq(memtable_gpa(&mt, GPA0, &len), p);
	/* Still mapped: this would fault otherwise. */
	p[0] = 'k';
	ck_assert_uint_eq(file_byte(fd, 0), 'k');
	len = 1;
	ck_assert_ptr_null(memtable_gpa(&mt, 0, &len));
	close(fd);
}
END_TEST

START_TEST(set_replaces_table)
{
	uint64_t len = 1;
	int a, b;

	a = set_one(GPA0, RSIZE, UVA0);
	b = set_one(2 * GPA0, RSIZE, 2 * UVA0);
	ck_assert_uint_eq(mt.nregions, 1);
	ck_assert_ptr_null(memtable_gpa(&mt, GPA0, &len));
	ck_assert_ptr_null(memtable_uva(&mt, UVA0, 1));
	len = 1;
	ck_assert_ptr_nonnull(memtable_gpa(&mt, 2 * GPA0, &len));
	close(a);
	close(b);
}
END_TEST

START_TEST(add_and_remove)
{
	struct vu_mem_region a = reg(GPA0, RSIZE, UVA0, 0);
	struct vu_mem_region b = reg(GPA0 + RSIZE, RSIZE, UVA0 + RSIZE, 0);
	struct vu_mem_region c = reg(GPA0 + 4 * RSIZE, RSIZE, UVA0 - RSIZE,
	    0);
	struct vu_mem_region probe;
	int fd;
	uint64_t len;

	fd = unit_memfd("a", RSIZE);
	ck_assert_int_eq(memtable_add(&mt, &a, fd), 0);
	ck_assert(unit_table_holds_fd(&mt, fd));
	ck_assert_int_eq(memtable_add(&mt, &b, unit_memfd("b", RSIZE)), 0);
	ck_assert_int_eq(memtable_add(&mt, &c, unit_memfd("c", RSIZE)), 0);
	ck_assert_uint_eq(mt.nregions, 3);

	/* Not there: each of gpa, size and uva must match. */
	probe = a;
	probe.memory_size = PAGE;
	ck_assert_int_eq(memtable_remove(&mt, &probe), -1);
	probe = a;
	probe.userspace_addr += PAGE;
	ck_assert_int_eq(memtable_remove(&mt, &probe), -1);
	probe = a;
	probe.guest_phys_addr += PAGE;
	ck_assert_int_eq(memtable_remove(&mt, &probe), -1);
	ck_assert_uint_eq(mt.nregions, 3);

	/* Removing the first moves another into its slot: all still work. */
	ck_assert_int_eq(memtable_remove(&mt, &a), 0);
	ck_assert_uint_eq(mt.nregions, 2);
	len = 1;
	ck_assert_ptr_null(memtable_gpa(&mt, GPA0, &len));
	len = 1;
	ck_assert_ptr_nonnull(memtable_gpa(&mt, GPA0 + RSIZE, &len));
	len = 1;
	ck_assert_ptr_nonnull(memtable_gpa(&mt, GPA0 + 4 * RSIZE, &len));
	ck_assert_ptr_nonnull(memtable_uva(&mt, UVA0 - RSIZE, RSIZE));
	/* Twice is once too many. */
	ck_assert_int_eq(memtable_remove(&mt, &a), -1);
	ck_assert_int_eq(memtable_remove(&mt, &c), 0);
	ck_assert_int_eq(memtable_remove(&mt, &b), 0);
	ck_assert_uint_eq(mt.nregions, 0);
	ck_assert_int_eq(memtable_remove(&mt, &b), -1);
}
END_TEST

START_TEST(add_refusals_close_fd)
{
	struct vu_mem_region a = reg(GPA0, RSIZE, UVA0, 0), r;
	int fd;

	ck_assert_int_eq(memtable_add(&mt, &a, unit_memfd("a", RSIZE)), 0);
	/* Overlaps the mapped region in gpa, then in uva. */
	r = reg(GPA0 + RSIZE - 1, RSIZE, UVA0 + 8 * RSIZE, 0);
	fd = unit_memfd("r", RSIZE);
	ck_assert_int_eq(memtable_add(&mt, &r, fd), -1);
	ck_assert(unit_fd_closed(fd));
	r = reg(GPA0 + 8 * RSIZE, RSIZE, UVA0 + RSIZE - 1, 0);
	fd = unit_memfd("r", RSIZE);
	ck_assert_int_eq(memtable_add(&mt, &r, fd), -1);
	ck_assert(unit_fd_closed(fd));
	/* File too small. */
	r = reg(GPA0 + 8 * RSIZE, RSIZE, UVA0 + 8 * RSIZE, 0);
	fd = unit_memfd("r", RSIZE - 1);
	ck_assert_int_eq(memtable_add(&mt, &r, fd), -1);
	ck_assert(unit_fd_closed(fd));
	/* Wraps. */
	r = reg(UINT64_MAX - 1, RSIZE, UVA0 + 8 * RSIZE, 0);
	fd = unit_memfd("r", RSIZE);
	ck_assert_int_eq(memtable_add(&mt, &r, fd), -1);
	ck_assert(unit_fd_closed(fd));
	ck_assert_uint_eq(mt.nregions, 1);
}
END_TEST

START_TEST(fill_all_slots)
{
	struct vu_mem_region r;
	unsigned i;
	uint64_t len;
	int fd;

	for (i = 0; i < MEMTABLE_MAX_SLOTS; i++) {
		r = reg(GPA0 + i * PAGE, PAGE, UVA0 + i * PAGE, 0);
		ck_assert_msg(memtable_add(&mt, &r, unit_memfd("s", PAGE)) ==
		    0, "slot %u refused", i);
	}
	ck_assert_uint_eq(mt.nregions, MEMTABLE_MAX_SLOTS);
	r = reg(GPA0 + i * PAGE, PAGE, UVA0 + i * PAGE, 0);
	fd = unit_memfd("s", PAGE);
	ck_assert_int_eq(memtable_add(&mt, &r, fd), -1);
	ck_assert(unit_fd_closed(fd));
	ck_assert_uint_eq(mt.nregions, MEMTABLE_MAX_SLOTS);
	for (i = 0; i < MEMTABLE_MAX_SLOTS; i++) {
		len = 2 * PAGE;
		ck_assert_ptr_nonnull(memtable_gpa(&mt, GPA0 + i * PAGE,
		    &len));
		ck_assert_uint_eq(len, PAGE);
	}
	/* A slot freed is a slot usable again. */
	r = reg(GPA0 + 5 * PAGE, PAGE, UVA0 + 5 * PAGE, 0);
	ck_assert_int_eq(memtable_remove(&mt, &r), 0);
	ck_assert_int_eq(memtable_add(&mt, &r, unit_memfd("s", PAGE)), 0);
	ck_assert_uint_eq(mt.nregions, MEMTABLE_MAX_SLOTS);
}
END_TEST

START_TEST(validate_counts_existing)
{
	struct mem_region existing[MEMTABLE_MAX_SLOTS];
	struct vu_mem_region r[2];
	unsigned i;

	memset(existing, 0, sizeof(existing));
	for (i = 0; i < MEMTABLE_MAX_SLOTS; i++) {
		existing[i].gpa = GPA0 + i * RSIZE;
		existing[i].size = RSIZE;
		existing[i].uva = UVA0 + i * RSIZE;
	}
	r[0] = reg(0, PAGE, 0, 0);
	r[1] = reg(PAGE, PAGE, PAGE, 0);
	ck_assert_int_eq(memtable_validate(r, 2, existing, 1), 0);
	/* Exactly all the slots, then one more. */
	ck_assert_int_eq(memtable_validate(r, 2, existing,
	    MEMTABLE_MAX_SLOTS - 2), 0);
	ck_assert_int_eq(memtable_validate(r, 2, existing,
	    MEMTABLE_MAX_SLOTS - 1), -1);
	ck_assert_int_eq(memtable_validate(r, 1, existing,
	    MEMTABLE_MAX_SLOTS), -1);
	/* Overlaps the last byte of an existing region. */
	r[1] = reg(GPA0 + RSIZE - 1, 1, 0x10000, 0);
	ck_assert_int_eq(memtable_validate(r, 2, existing, 1), -1);
	r[1] = reg(0x10000, 1, UVA0 + 3 * RSIZE - 1, 0);
	ck_assert_int_eq(memtable_validate(r, 2, existing, 3), -1);
	ck_assert_int_eq(memtable_validate(r, 2, existing, 2), 0);
}
END_TEST

START_TEST(generation_changes)
{
	struct vu_mem_region a = reg(GPA0, RSIZE, UVA0, 0), bad;
	uint64_t g;
	int fd;

	g = mt.generation;
	fd = set_one(GPA0, RSIZE, UVA0);
	close(fd);
	ck_assert_uint_ne(mt.generation, g);
	g = mt.generation;
	fd = set_one(GPA0, RSIZE, UVA0);	/* same table again */
	close(fd);
	ck_assert_uint_ne(mt.generation, g);

	g = mt.generation;
	ck_assert_int_eq(memtable_remove(&mt, &a), 0);
	ck_assert_uint_ne(mt.generation, g);
	g = mt.generation;
	ck_assert_int_eq(memtable_add(&mt, &a, unit_memfd("a", RSIZE)), 0);
	ck_assert_uint_ne(mt.generation, g);

	/* Failures change nothing. */
	g = mt.generation;
	ck_assert_int_eq(memtable_add(&mt, &a, unit_memfd("a", RSIZE)), -1);
	bad = reg(0, 0, 0, 0);
	ck_assert_int_eq(memtable_remove(&mt, &bad), -1);
	ck_assert_uint_eq(mt.generation, g);

	memtable_clear(&mt);
	ck_assert_uint_ne(mt.generation, g);
	ck_assert_uint_eq(mt.nregions, 0);
}
END_TEST

START_TEST(clear_then_reuse)
{
	uint64_t len = 1;
	int fd;

	fd = set_one(GPA0, RSIZE, UVA0);
	close(fd);
	memtable_clear(&mt);
	ck_assert_ptr_null(memtable_gpa(&mt, GPA0, &len));
	memtable_clear(&mt);	/* twice is harmless */
	fd = set_one(GPA0, RSIZE, UVA0);
	close(fd);
	len = 1;
	ck_assert_ptr_nonnull(memtable_gpa(&mt, GPA0, &len));
}
END_TEST

/* --- whole ranges (issue 8) ----------------------------------------- */

/* [GPA0, +RSIZE) and [GPA0 + RSIZE, +RSIZE) adjacent, then a hole. */
START_TEST(gpa_range_spans_adjacent_regions_only)
{
	struct vu_mem_region r[2];
	int fds[2];

	r[0] = reg(GPA0, RSIZE, UVA0, 0);
	r[1] = reg(GPA0 + RSIZE, RSIZE, UVA0 + 4 * RSIZE, 0);
	fds[0] = unit_memfd("a", RSIZE);
	fds[1] = unit_memfd("b", RSIZE);
	ck_assert_int_eq(memtable_set(&mt, r, 2, fds, 2), 0);

	ck_assert(memtable_gpa_range(&mt, GPA0, 1));
	ck_assert(memtable_gpa_range(&mt, GPA0, 2 * RSIZE));
	ck_assert(memtable_gpa_range(&mt, GPA0 + RSIZE - 1, 2));
	ck_assert(memtable_gpa_range(&mt, GPA0 + 2 * RSIZE - 1, 1));
	/* One byte past the end, before the start, in the hole. */
	ck_assert(!memtable_gpa_range(&mt, GPA0, 2 * RSIZE + 1));
	ck_assert(!memtable_gpa_range(&mt, GPA0 - 1, 2));
	ck_assert(!memtable_gpa_range(&mt, GPA0 + 2 * RSIZE, 1));
	ck_assert(!memtable_gpa_range(&mt, GPA0 + 8, 0xfffff000u));
	/* Empty and wrapping ranges are never memory. */
	ck_assert(!memtable_gpa_range(&mt, GPA0, 0));
	ck_assert(!memtable_gpa_range(&mt, GPA0, UINT64_MAX));
	ck_assert(!memtable_gpa_range(&mt, UINT64_MAX, 2));
}
END_TEST

START_TEST(gpa_range_to_top_of_address_space)
{
	uint64_t top = UINT64_MAX - RSIZE + 1;
	int fd = set_one(top, RSIZE, UVA0);

	ck_assert(memtable_gpa_range(&mt, top, RSIZE));
	ck_assert(memtable_gpa_range(&mt, UINT64_MAX, 1));
	ck_assert(!memtable_gpa_range(&mt, UINT64_MAX, 2));
	ck_assert(!memtable_gpa_range(&mt, top - 1, RSIZE));
	close(fd);
}
END_TEST

/* --- many slots (issue 8) ------------------------------------------- */

/*
 * Region k of MEMTABLE_MAX_SLOTS: one page at file offset k * PAGE of one
 * memfd, its gpa and uva in different orders (509 is prime, so k * 7 and
 * k * 11 mod 509 are permutations) with a hole after each.
 */
#define SLOT_GPA(k)	(GPA0 + 2 * PAGE * (((k) * 7) % MEMTABLE_MAX_SLOTS))
#define SLOT_UVA(k)	(UVA0 + 3 * PAGE * (((k) * 11) % MEMTABLE_MAX_SLOTS))

static struct vu_mem_region
slot_reg(unsigned k)
{
	return reg(SLOT_GPA(k), PAGE, SLOT_UVA(k), (uint64_t)k * PAGE);
}

/* Region k translates in both spaces to page k of the file; holes not. */
static void
slot_check(int fd, unsigned k, bool present)
{
	uint64_t len = 2 * PAGE;
	unsigned char *p, *q;

	p = memtable_gpa(&mt, SLOT_GPA(k) + 5, &len);
	q = memtable_uva(&mt, SLOT_UVA(k) + 5, PAGE - 5);
	if (!present) {
		ck_assert_msg(p == NULL && q == NULL, "region %u still "
		    "mapped", k);
		return;
	}
	ck_assert_msg(p != NULL && q == p, "region %u: gpa %p uva %p", k,
	    (void *)p, (void *)q);
	ck_assert_uint_eq(len, PAGE - 5);
	*p = (unsigned char)(k * 13 + 1);
	ck_assert_uint_eq(file_byte(fd, (off_t)(k * PAGE + 5)),
	    (unsigned char)(k * 13 + 1));
	len = 1;
	ck_assert_ptr_null(memtable_gpa(&mt, SLOT_GPA(k) + PAGE, &len));
	ck_assert_ptr_null(memtable_uva(&mt, SLOT_UVA(k) + PAGE, 1));
	ck_assert_ptr_null(memtable_uva(&mt, SLOT_UVA(k) + PAGE - 1, 2));
}

START_TEST(all_slots_out_of_order_translate)
{
	struct vu_mem_region r;
	unsigned k;
	int fd = unit_memfd("slots", MEMTABLE_MAX_SLOTS * PAGE);

	for (k = 0; k < MEMTABLE_MAX_SLOTS; k++) {
		r = slot_reg(k);
		ck_assert_msg(memtable_add(&mt, &r, dup(fd)) == 0,
		    "slot %u refused", k);
	}
	ck_assert_uint_eq(mt.nregions, MEMTABLE_MAX_SLOTS);
	for (k = 0; k < MEMTABLE_MAX_SLOTS; k++)
		slot_check(fd, k, true);

	/* Every third one goes, in an order of its own, then comes back. */
	for (k = 0; k < MEMTABLE_MAX_SLOTS; k += 3) {
		r = slot_reg((k * 5) % MEMTABLE_MAX_SLOTS);
		ck_assert_int_eq(memtable_remove(&mt, &r), 0);
	}
	for (k = 0; k < MEMTABLE_MAX_SLOTS; k++) {
		unsigned j;
		bool gone = false;

		for (j = 0; j < MEMTABLE_MAX_SLOTS; j += 3)
			gone = gone || (j * 5) % MEMTABLE_MAX_SLOTS == k;
		slot_check(fd, k, !gone);
	}
	for (k = 0; k < MEMTABLE_MAX_SLOTS; k += 3) {
		r = slot_reg((k * 5) % MEMTABLE_MAX_SLOTS);
		ck_assert_int_eq(memtable_add(&mt, &r, dup(fd)), 0);
	}
	for (k = 0; k < MEMTABLE_MAX_SLOTS; k++)
		slot_check(fd, k, true);
	close(fd);
}
END_TEST

/* The table grows with the regions: one region is not 509 slots. */
START_TEST(table_grows_with_regions)
{
	struct vu_mem_region r;
	unsigned k;
	int fd = unit_memfd("slots", 64 * PAGE);

	ck_assert_uint_eq(mt.cap, 0);
	r = slot_reg(0);
	ck_assert_int_eq(memtable_add(&mt, &r, dup(fd)), 0);
	ck_assert_uint_le(mt.cap, 2);
	for (k = 1; k < 33; k++) {
		r = slot_reg(k);
		ck_assert_int_eq(memtable_add(&mt, &r, dup(fd)), 0);
		ck_assert_uint_ge(mt.cap, mt.nregions);
		ck_assert_uint_le(mt.cap, 2 * mt.nregions);
	}
	memtable_clear(&mt);
	ck_assert_uint_eq(mt.cap, 0);
	ck_assert_ptr_null(mt.regions);
	/* A one-region SET_MEM_TABLE after that: room for one. */
	close(set_one(GPA0, RSIZE, UVA0));
	ck_assert_uint_eq(mt.cap, 1);
	close(fd);
}
END_TEST

Suite *
memtable_suite(void)
{
	Suite *s = suite_create("memtable");

	/* And set_n_regions for every n from 1 to VU_MEM_TABLE_MAX. */
	tcase_add_loop_test(add_case(s, "translate", UNIT_TIMEOUT, setup,
	    teardown, TESTS(set_translates_and_writes_land_in_memfd,
	    zero_regions_empties_the_table, gpa_edges, gpa_region_at_top,
	    uva_whole_range_only, mmap_offset_maps_file_offset)),
	    set_n_regions, 1, VU_MEM_TABLE_MAX + 1);
	return add_cases(s, UNIT_TIMEOUT, setup, teardown,
	    "validate", TESTS(count_mismatch_refused_and_fds_closed,
		overlap_refused, adjacent_accepted, size_zero_refused,
		gpa_wrap_refused, uva_wrap_refused,
		mmap_offset_overflow_refused, file_smaller_than_region_refused,
		bad_fd_refused, failed_set_keeps_old_table,
		validate_counts_existing),
	    "change", TESTS(set_replaces_table, add_and_remove,
		add_refusals_close_fd, fill_all_slots, generation_changes,
		clear_then_reuse),
	    "whole_range", TESTS(gpa_range_spans_adjacent_regions_only,
		gpa_range_to_top_of_address_space),
	    "many_slots", TESTS(all_slots_out_of_order_translate,
		table_grows_with_regions),
	    NULL);
}
