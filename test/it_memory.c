/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: hostile memory tables.
 *
 * Bad tables are refused (REPLY_ACK nack) and the old table stays; memory
 * files shrunk under the daemon cost that guest at most its ring or its
 * connection; connections that come and go leak nothing.
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

Suite	*it_memory_suite(void);

typedef int (*bad_mem_fn)(struct fe *);

static void
bad_memory(bad_mem_fn bad)
{
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int fds0, fds, maps0;

	IT_START(&vd, 1, NULL);
	fds0 = vd_count_fds(&vd);
	fe_cfg_init(&cfg);
	cfg.add_mem_reg = true;	/* so that ADD_MEM_REG cases can run */
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);
	maps0 = vd_count_memfd_maps(&vd);
	ck_assert_int_ge(maps0, 1);

	/* Refused with a nack; the connection and the old table stay. */
	ck_assert_int_eq(bad(&fe), 1);
	ck_assert(vd_alive(&vd));
	IT_OK(fe_sync(&fe));
	ck_assert_int_eq(vd_count_memfd_maps(&vd), maps0);
	IT_SERVE(&fe, 64, &vd);
	IT_SERVE(&fe, 4096, &vd);
	fe_close(&fe);
	ck_assert_msg(fds_settle(&vd, fds0, &fds), "daemon has %d fds, had %d",
	    fds, fds0);
	ck_assert_int_eq(vd_count_memfd_maps(&vd), 0);
	IT_STOP(&vd);
	vd_cleanup(&vd);
}

static int
m_overlap_gpa(struct fe *fe)
{
	struct fe_mem_region r[2] = {
		{ 0x100000, 0x100000, 0x7e0000000000, 0 },
		{ 0x1ff000, 0x100000, 0x7f0000000000, 0 },
	};
	uint64_t sz[2] = { 0x100000, 0x100000 };

	return send_table(fe, r, 2, sz);
}

static int
m_overlap_uva(struct fe *fe)
{
	struct fe_mem_region r[2] = {
		{ 0x100000, 0x100000, 0x7e0000000000, 0 },
		{ 0x400000, 0x100000, 0x7e00000ff000, 0 },
	};
	uint64_t sz[2] = { 0x100000, 0x100000 };

	return send_table(fe, r, 2, sz);
}

static int
m_size_zero(struct fe *fe)
{
	struct fe_mem_region r = { 0x100000, 0, 0x7e0000000000, 0 };
	uint64_t sz = 0x100000;

	return send_table(fe, &r, 1, &sz);
}

static int
m_gpa_wraps(struct fe *fe)
{
	struct fe_mem_region r = { UINT64_MAX - 0xfff, 0x2000,
	    0x7e0000000000, 0 };
	uint64_t sz = 0x2000;

	return send_table(fe, &r, 1, &sz);
}

static int
m_uva_wraps(struct fe *fe)
{
	struct fe_mem_region r = { 0x100000, 0x2000, UINT64_MAX - 0xfff, 0 };
	uint64_t sz = 0x2000;

	return send_table(fe, &r, 1, &sz);
}

static int
m_mmap_offset_huge(struct fe *fe)
{
	struct fe_mem_region r = { 0x100000, 0x100000, 0x7e0000000000,
	    1ull << 62 };
	uint64_t sz = 0x100000;

	return send_table(fe, &r, 1, &sz);
}

static int
m_mmap_offset_max(struct fe *fe)
{
	struct fe_mem_region r = { 0x100000, 0x100000, 0x7e0000000000,
	    UINT64_MAX - 0xfff };
	uint64_t sz = 0x100000;

	return send_table(fe, &r, 1, &sz);
}

/* Region 2 MiB, file 1 MiB: touching the second half would be SIGBUS. */
static int
m_memfd_too_small(struct fe *fe)
{
	struct fe_mem_region r = { 0x100000, 0x200000, 0x7e0000000000, 0 };
	uint64_t sz = 0x100000;

	return send_table(fe, &r, 1, &sz);
}

/* The file is big enough for the size but not for offset + size. */
static int
m_offset_past_file_end(struct fe *fe)
{
	struct fe_mem_region r = { 0x100000, 0x100000, 0x7e0000000000,
	    0x80000 };
	uint64_t sz = 0x100000;

	return send_table(fe, &r, 1, &sz);
}

/* nregions says 9 (more than any table holds). */
static int
m_nregions_9(struct fe *fe)
{
	struct fe_mem_table t;

	memset(&t, 0, sizeof(t));
	t.nregions = 9;
	return fe_request(fe, FE_SET_MEM_TABLE, &t, sizeof(t), NULL, 0, true);
}

static int
m_nregions_ne_nfds(struct fe *fe)
{
	struct fe_mem_table t;
	int fd = memfd(0x100000), ret;

	memset(&t, 0, sizeof(t));
	t.nregions = 2;
	t.regions[0] = (struct fe_mem_region){ 0x100000, 0x100000,
	    0x7e0000000000, 0 };
	t.regions[1] = (struct fe_mem_region){ 0x300000, 0x100000,
	    0x7f0000000000, 0 };
	ret = fe_request(fe, FE_SET_MEM_TABLE, &t, 8 + 64, &fd, 1, true);
	close(fd);
	return ret;
}

/* A region whose fd cannot be mapped at all (an eventfd). */
static int
m_fd_not_mappable(struct fe *fe)
{
	struct fe_mem_table t;
	int fd = eventfd(0, EFD_CLOEXEC), ret;

	memset(&t, 0, sizeof(t));
	t.nregions = 1;
	t.regions[0] = (struct fe_mem_region){ 0x100000, 0x100000,
	    0x7e0000000000, 0 };
	ret = fe_request(fe, FE_SET_MEM_TABLE, &t, 8 + 32, &fd, 1, true);
	close(fd);
	return ret;
}

static int
add_region(struct fe *fe, struct fe_mem_region r, uint64_t fdsize)
{
	struct fe_mem_single s;
	int fd = memfd(fdsize), ret;

	memset(&s, 0, sizeof(s));
	s.region = r;
	ret = fe_request(fe, FE_ADD_MEM_REG, &s, sizeof(s), &fd, 1, true);
	close(fd);
	return ret;
}

static int
m_add_overlapping(struct fe *fe)
{
	struct fe_mem_region r = { fe->reg[0].gpa + 0x1000, 0x100000,
	    0x7e0000000000, 0 };

	return add_region(fe, r, 0x100000);
}

static int
m_add_too_small(struct fe *fe)
{
	struct fe_mem_region r = { 0x10000000000, 0x200000, 0x7e0000000000,
	    0 };

	return add_region(fe, r, 0x100000);
}

static int
m_add_wraps(struct fe *fe)
{
	struct fe_mem_region r = { UINT64_MAX - 0xfff, 0x2000,
	    0x7e0000000000, 0 };

	return add_region(fe, r, 0x2000);
}

static int
m_remove_unknown(struct fe *fe)
{
	struct fe_mem_single s;

	memset(&s, 0, sizeof(s));
	s.region = (struct fe_mem_region){ 0x10000000000, 0x1000,
	    0x7e0000000000, 0 };
	return fe_request(fe, FE_REM_MEM_REG, &s, sizeof(s), NULL, 0, true);
}

/* Each case: its name and the table it sends. */
static const struct {
	const char	*name;
	bad_mem_fn	 bad;
} mem_cases[] = {
	{ "mem_overlapping_gpa", m_overlap_gpa },
	{ "mem_overlapping_uva", m_overlap_uva },
	{ "mem_size_zero", m_size_zero },
	{ "mem_gpa_plus_size_wraps", m_gpa_wraps },
	{ "mem_uva_plus_size_wraps", m_uva_wraps },
	{ "mem_mmap_offset_huge", m_mmap_offset_huge },
	{ "mem_mmap_offset_max", m_mmap_offset_max },
	{ "mem_memfd_smaller_than_region", m_memfd_too_small },
	{ "mem_offset_plus_size_past_file_end", m_offset_past_file_end },
	{ "mem_nregions_9", m_nregions_9 },
	{ "mem_nregions_ne_nfds_acked", m_nregions_ne_nfds },
	{ "mem_fd_not_mappable", m_fd_not_mappable },
	{ "mem_add_overlapping_region", m_add_overlapping },
	{ "mem_add_memfd_too_small", m_add_too_small },
	{ "mem_add_gpa_wraps", m_add_wraps },
	{ "mem_remove_unknown_region", m_remove_unknown },
};

START_TEST(mem_case)
{
	bad_memory(mem_cases[_i].bad);
}
END_TEST

/*
 * The front-end shrinks a memfd after the daemon mapped it (a memfd is not
 * sealed unless its owner seals it; the size check at SET_MEM_TABLE time
 * cannot see the future).  The daemon then touches pages that no longer
 * exist: that may cost this guest its queue or its connection, but never
 * the daemon and the other guests.
 */
START_TEST(mem_memfd_shrunk_after_mapping_does_not_kill_daemon)
{
	struct vd vd;
	struct fe a, b;

	IT_START(&vd, 2, NULL);
	IT_OPEN(&a, &vd, 0, NULL);
	IT_OPEN(&b, &vd, 1, NULL);
	IT_SERVE(&a, 64, &vd);
	IT_SERVE(&b, 64, &vd);
	/* Rings and all: from here on nobody may touch a's memory. */
	ck_assert_int_eq(ftruncate(a.reg[0].fd, 0), 0);
	fe_kick(&a);
	/* Answered (or not) once the kick was looked at. */
	(void)fe_sync(&a);
	fe_sleep_ms(300);
	ck_assert_msg(vd_alive(&vd), "the daemon died (wait status 0x%x: "
	    "%s %d)%s", vd.status, WIFSIGNALED(vd.status) ? "signal" :
	    "exit", WIFSIGNALED(vd.status) ? WTERMSIG(vd.status) :
	    WEXITSTATUS(vd.status), vd_log_text(&vd));
	IT_SERVE(&b, 64, &vd);
	fe_close(&a);
	IT_END(&vd, &b);
}
END_TEST

/*
 * The same, but only the pages under a data buffer go: the daemon fills
 * buffers with readv(2), which gets EFAULT there instead of a SIGBUS.
 * Nothing is completed for that buffer; the daemon and the other guest go
 * on.
 */
START_TEST(mem_memfd_shrunk_under_buffer_survives)
{
	struct vd vd;
	struct fe a, b;
	uint64_t keep;

	IT_START(&vd, 2, NULL);
	IT_OPEN(&a, &vd, 0, NULL);
	IT_OPEN(&b, &vd, 1, NULL);
	IT_SERVE(&a, 64, &vd);
	/* Keep the rings and the first 64 KiB of the heap. */
	keep = a.heap_start + 65536 - a.reg[0].gpa;
	ck_assert_int_eq(ftruncate(a.reg[0].fd, (off_t)keep), 0);
	ck_assert(fe_post1(&a, a.reg[0].gpa + keep + 4096, 4096) >= 0);
	fe_kick(&a);
	IT_OK(fe_sync(&a));
	ck_assert_uint_eq(fe_wait_used(&a, 1, 300), 0);
	ck_assert(vd_alive(&vd));
	IT_SERVE(&b, 64, &vd);
	IT_OK(fe_sync(&a));
	fe_close(&a);
	IT_END(&vd, &b);
}
END_TEST

/*
 * 20 front-ends come and go (memory tables, eventfds, half of them
 * hanging up in the middle of the handshake): the daemon ends with the
 * fds and mappings it started with.
 */
START_TEST(connect_disconnect_cycles_leak_no_fds)
{
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int fds0, fds, i;

	IT_START(&vd, 1, NULL);
	fds0 = vd_count_fds(&vd);
	ck_assert_int_gt(fds0, 2);
	for (i = 0; i < 20; i++) {
		fe_cfg_init(&cfg);
		cfg.add_mem_reg = i % 4 == 1;
		cfg.nregions = i % 2 + 1;
		cfg.start = i % 3 != 2;
		IT_OPEN(&fe, &vd, 0, &cfg);
		if (cfg.start)
			IT_SERVE(&fe, 64, &vd);
		fe_close(&fe);
	}
	ck_assert_msg(fds_settle(&vd, fds0, &fds), "daemon has %d fds after "
	    "20 connections, had %d", fds, fds0);
	ck_assert_int_eq(vd_count_memfd_maps(&vd), 0);
	IT_STOP(&vd);
	vd_cleanup(&vd);
}
END_TEST

/* ---- rings that cannot run (issue 8) ----------------------------- */

/* The ring addresses of fe's ring, shifted by delta bytes. */
static void
ring_addr(const struct fe *fe, struct fe_vring_addr *a, uint64_t delta)
{
	memset(a, 0, sizeof(*a));
	a->desc = fe->reg[0].uva + (fe->desc_gpa - fe->reg[0].gpa) + delta;
	a->avail = fe->reg[0].uva + (fe->avail_gpa - fe->reg[0].gpa) + delta;
	a->used = fe->reg[0].uva + (fe->used_gpa - fe->reg[0].gpa) + delta;
}

/* Rings outside the table are refused where the front-end hears it. */
START_TEST(unrunnable_ring_addr_outside_memory_nacked)
{
	struct fe_mem_table empty;
	struct fe_vring_addr a;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;

	IT_START(&vd, 1, NULL);
	fe_cfg_init(&cfg);
	cfg.start = false;
	IT_OPEN(&fe, &vd, 0, &cfg);
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_NUM, 0, cfg.qsize,
	    true), 0);
	/* Past the end of the one region. */
	ring_addr(&fe, &a, fe.reg[0].size);
	ck_assert_int_eq(fe_request(&fe, FE_SET_VRING_ADDR, &a, sizeof(a),
	    NULL, 0, true), 1);
	/* A table with no regions. */
	memset(&empty, 0, sizeof(empty));
	ck_assert_int_eq(fe_request(&fe, FE_SET_MEM_TABLE, &empty, 8, NULL, 0,
	    true), 0);
	ring_addr(&fe, &a, 0);
	ck_assert_int_eq(fe_request(&fe, FE_SET_VRING_ADDR, &a, sizeof(a),
	    NULL, 0, true), 1);
	ck_assert_int_eq(vd_log_count(&vd, "are not inside guest memory"), 2);
	/* The connection is fine: the real table, the real ring. */
	IT_OK(fe_send_mem_table(&fe));
	IT_OK(fe_ring_start(&fe, 0));
	IT_SERVE(&fe, 64, &vd);
	IT_END(&vd, &fe);
}
END_TEST

/*
 * Rings that map when set but not when the ring starts (the table was
 * replaced in between): one error in the statistics, one log line, the
 * err eventfd, however often the guest kicks; fixed by a table that has
 * them again.
 */
START_TEST(unrunnable_ring_at_start_is_an_error)
{
	struct fe_mem_table empty;
	struct fe_vring_addr a;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	uint64_t kick = 0;
	int i;

	IT_START(&vd, 1, NULL);
	fe_cfg_init(&cfg);
	cfg.start = false;
	IT_OPEN(&fe, &vd, 0, &cfg);
	fe_drain_errs(&fe);
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_NUM, 0, cfg.qsize,
	    true), 0);
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_BASE, 0, 0, true), 0);
	ring_addr(&fe, &a, 0);
	ck_assert_int_eq(fe_request(&fe, FE_SET_VRING_ADDR, &a, sizeof(a),
	    NULL, 0, true), 0);
	memset(&empty, 0, sizeof(empty));
	ck_assert_int_eq(fe_request(&fe, FE_SET_MEM_TABLE, &empty, 8, NULL, 0,
	    true), 0);
	ck_assert_int_eq(fe_request(&fe, FE_SET_VRING_KICK, &kick, 8,
	    &fe.kick, 1, true), 0);
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_ENABLE, 0, 1, true),
	    0);
	ck_assert_msg(fe_wait_err(&fe, 3000), "no err eventfd signal%s",
	    vd_log_text(&vd));
	for (i = 0; i < 5; i++) {
		fe_kick(&fe);
		IT_OK(fe_sync(&fe));
	}
	ck_assert_int_eq(kill(vd.pid, SIGUSR1), 0);
	ck_assert_msg(vd_log_wait(&vd, "connects 1 errors 1", 1, 3000),
	    "stats%s", vd_log_text(&vd));
	ck_assert_int_eq(vd_log_count(&vd, "ring started but cannot run"), 1);
	ck_assert_uint_eq(fe_drain_errs(&fe), 1);

	/* The memory is back: the same start runs. */
	IT_OK(fe_send_mem_table(&fe));
	IT_SERVE(&fe, 64, &vd);
	IT_END(&vd, &fe);
}
END_TEST

Suite *
it_memory_suite(void)
{
	Suite *s = suite_create("it_memory");

	ADD_TABLE(add_case(s, "memory", IT_TIMEOUT, NULL, NULL, TESTS(
	    mem_memfd_shrunk_after_mapping_does_not_kill_daemon,
	    mem_memfd_shrunk_under_buffer_survives,
	    connect_disconnect_cycles_leak_no_fds)), mem_case, mem_cases);
	return add_cases(s, IT_TIMEOUT, NULL, NULL,
	    "unrunnable_ring", TESTS(unrunnable_ring_addr_outside_memory_nacked,
		unrunnable_ring_at_start_is_an_error),
	    NULL);
}
