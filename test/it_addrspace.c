/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: the daemon's address space against a hostile guest.
 *
 * One guest maps at most its share whatever its (sparse) files say; a huge
 * mmap offset maps only the region; a ring misaligned by the offset is
 * refused.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostile.h"
#include "it.h"


#define GIB	(1ull << 30)
#define TIB	(1ull << 40)

/*
 * ADD_MEM_REG of size bytes at mmap_offset of a sparse memfd (no memory
 * used), or REM_MEM_REG of that region, at gpa == uva; returns the ack.
 */
static int
sparse_region(struct fe *fe, uint32_t req, uint64_t gpa, uint64_t size,
    uint64_t offset)
{
	struct fe_mem_single s;
	int fd = -1, ret;

	memset(&s, 0, sizeof(s));
	s.region = (struct fe_mem_region){ gpa, size, gpa, offset };
	if (req == FE_ADD_MEM_REG)
		fd = memfd(offset + size);
	ret = fe_request(fe, req, &s, sizeof(s), &fd, fd >= 0 ? 1 : 0, true);
	if (fd >= 0)
		close(fd);
	return ret;
}

/*
 * Mappings cost the daemon's address space, which all guests share: one
 * guest may map at most 1 TiB, whatever its (sparse) files say.  Regions
 * past that are refused, a removed region gives its share back, and
 * another guest still gets its memory mapped and served.
 */
START_TEST(mem_address_space_capped_per_guest)
{
	struct fe_mem_region r[2] = {
		{ 8 * TIB, 768 * GIB, 8 * TIB, 0 },
		{ 9 * TIB, 768 * GIB, 9 * TIB, 0 },
	};
	uint64_t sz[2] = { 768 * GIB, 768 * GIB };
	struct fe_cfg cfg;
	struct vd vd;
	struct fe a, b;

	IT_SKIP_UNDER_VALGRIND("maps 1 TiB");

	IT_START(&vd, 2, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	cfg.add_mem_reg = true;
	IT_OPEN(&a, &vd, 0, &cfg);
	IT_SERVE(&a, 64, &vd);
	ck_assert_int_eq(sparse_region(&a, FE_ADD_MEM_REG, 1 * TIB, 512 * GIB,
	    0), 0);
	/* 1 TiB and the 4 MiB the guest started with. */
	ck_assert_int_eq(sparse_region(&a, FE_ADD_MEM_REG, 2 * TIB, 512 * GIB,
	    0), 1);
	/* Exactly 1 TiB. */
	ck_assert_int_eq(sparse_region(&a, FE_ADD_MEM_REG, 3 * TIB, 512 * GIB -
	    cfg.mem_size, 0), 0);
	ck_assert_int_eq(sparse_region(&a, FE_ADD_MEM_REG, 4 * TIB, 2u << 20,
	    0), 1);
	ck_assert_int_eq(sparse_region(&a, FE_REM_MEM_REG, 1 * TIB, 512 * GIB,
	    0), 0);
	ck_assert_int_eq(sparse_region(&a, FE_ADD_MEM_REG, 2 * TIB, 512 * GIB,
	    0), 0);
	/* A whole table of more than 1 TiB is refused too. */
	ck_assert_int_eq(send_table(&a, r, 2, sz), 1);
	answers_promptly(&a, &vd, "after the refused regions");
	IT_SERVE(&a, 64, &vd);

	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	IT_OPEN(&b, &vd, 1, &cfg);
	IT_SERVE(&b, 64, &vd);
	IT_SERVE(&b, 4096, &vd);
	fe_close(&a);
	end_within_1s(&vd, &b);
}
END_TEST

/*
 * A small region far into a big file is mapped from its offset (rounded
 * down to a page), not from the start of the file: a huge mmap_offset
 * costs no address space, and the daemon's bytes land at that offset.
 */
START_TEST(mem_huge_mmap_offset_maps_only_the_region)
{
	const uint64_t off = 4 * TIB + 0x10010, size = 2u << 20;
	const uint64_t gpa = 1 * TIB, pg = off & ~4095ull;
	struct fe_mem_single s;
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int64_t vm0, vm1;
	uint8_t *map, *reg;
	unsigned i, zero;
	int fd;

	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	cfg.add_mem_reg = true;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	IT_SERVE(&fe, 64, &vd);
	fd = memfd(off + size);
	memset(&s, 0, sizeof(s));
	s.region = (struct fe_mem_region){ gpa, size, gpa, off };
	vm0 = vd_vm_kib(&vd);
	ck_assert_int_gt(vm0, 0);
	ck_assert_int_eq(fe_request(&fe, FE_ADD_MEM_REG, &s, sizeof(s), &fd, 1,
	    true), 0);
	vm1 = vd_vm_kib(&vd);
	ck_assert_msg(vm1 - vm0 < (int64_t)(GIB >> 10), "the daemon's address "
	    "space grew by %lld KiB for a 2 MiB region",
	    (long long)(vm1 - vm0));

	map = mmap(NULL, size + (off - pg), PROT_READ, MAP_SHARED, fd,
	    (off_t)pg);
	ck_assert(map != MAP_FAILED);
	reg = map + (off - pg);
	ck_assert(fe_post1(&fe, gpa + 4096, 256) >= 0);
	fe_kick(&fe);
	ck_assert_msg(fe_wait_used(&fe, 1, 3000) == 1, "no completion%s",
	    vd_log_text(&vd));
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.len, 256);
	for (i = 0, zero = 0; i < 256; i++)
		zero += reg[4096 + i] == 0;
	ck_assert_uint_lt(zero, 32);
	/* Nothing around it. */
	for (i = 0; i < 4096; i++)
		ck_assert_uint_eq(reg[i], 0);
	for (i = 4096 + 256; i < 3 * 4096; i++)
		ck_assert_uint_eq(reg[i], 0);
	munmap(map, size + (off - pg));
	close(fd);
	IT_SERVE(&fe, 64, &vd);
	end_within_1s(&vd, &fe);
}
END_TEST

/*
 * The ring addresses are aligned as VIRTIO wants, but an mmap_offset of 4
 * moves them off alignment in the daemon's mapping: the descriptor table
 * would be read through a misaligned pointer (undefined behaviour, a
 * sanitizer abort).  The daemon refuses that ring, with a log line, and
 * goes on answering.
 */
START_TEST(ring_misaligned_by_mmap_offset_refused)
{
	struct fe_desc d;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;

	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	cfg.mmap_offset = 4;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	/* Byte by byte: our own view of the table is misaligned too. */
	d.addr = buf(&fe, 64);
	d.len = 64;
	d.flags = FE_DESC_F_WRITE;
	d.next = 0;
	IT_OK(fe_write_mem(&fe, fe.desc_gpa, &d, sizeof(d)));
	fe_publish(&fe, 0);
	fe_kick(&fe);
	ck_assert_msg(vd_log_wait(&vd, "rings are misaligned", 1, 3000),
	    "no log line%s", vd_log_text(&vd));
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 300), 0);
	ck_assert_msg(vd_alive(&vd), "the daemon died%s", vd_log_text(&vd));
	answers_promptly(&fe, &vd, "misaligned ring");
	end_within_1s(&vd, &fe);
}
END_TEST

SUITE(it_addrspace, IT_TIMEOUT, NULL, NULL,
    "address_space", TESTS(mem_address_space_capped_per_guest,
	mem_huge_mmap_offset_maps_only_the_region,
	ring_misaligned_by_mmap_offset_refused))
