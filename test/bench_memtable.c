/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench-memtable: what a guest-address translation costs with 1, 32 and
 * 509 (MEMTABLE_MAX_SLOTS) memory regions.  A figure, not a test: the
 * machines are shared and noisy, so the sizes take turns (interleaved
 * rounds) and each prints the median of its rounds.
 *
 * Each table is built the way the daemon builds it: ADD_MEM_REG regions
 * mapped from one memfd (region k at file offset k * REGION), in guest
 * physical order with a hole after each, their front-end addresses in
 * another order.  A round translates the same pseudo-random addresses
 * inside the regions: gpa (descriptor buffers, memtable_gpa) and uva
 * (ring addresses, memtable_uva).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "memtable.h"

#define REGION		(64u * 1024)
#define GPA_BASE	0x100000000ull
#define UVA_BASE	0x7f0000000000ull
#define LOOKUPS		(1u << 16)	/* translations per round */
#define ROUNDS		31

static const unsigned sizes[] = { 1, 32, MEMTABLE_MAX_SLOTS };
#define NSIZES		(sizeof(sizes) / sizeof(sizes[0]))

struct table {
	struct memtable	 mt;
	unsigned	 n;
	uint64_t	*gpa;		/* LOOKUPS addresses to translate */
	uint64_t	*uva;
	double		 gpa_ns[ROUNDS], uva_ns[ROUNDS];
};

/* 509 is prime: k * 7 mod 509 visits every slot (and so for 32, 1). */
static unsigned
uva_slot(unsigned k, unsigned n)
{
	return (unsigned)(((uint64_t)k * 7) % n);
}

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
table_build(struct table *t, unsigned n)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	unsigned k, i;
	int fd;

	memset(t, 0, sizeof(*t));
	t->n = n;
	memtable_init(&t->mt);
	if ((fd = memfd_create("bench-memtable", MFD_CLOEXEC)) < 0 ||
	    ftruncate(fd, (off_t)n * REGION) < 0) {
		perror("memfd");
		exit(1);
	}
	for (k = 0; k < n; k++) {
		struct vu_mem_region r;
		int dfd = dup(fd);

		r.guest_phys_addr = GPA_BASE + 2ull * REGION * k;
		r.memory_size = REGION;
		r.userspace_addr = UVA_BASE + 2ull * REGION * uva_slot(k, n);
		r.mmap_offset = (uint64_t)k * REGION;
		if (dfd < 0 || memtable_add(&t->mt, &r, dfd) < 0) {
			fprintf(stderr, "bench-memtable: region %u of %u "
			    "refused\n", k, n);
			exit(1);
		}
	}
	close(fd);
	t->gpa = reallocarray(NULL, LOOKUPS, sizeof(*t->gpa));
	t->uva = reallocarray(NULL, LOOKUPS, sizeof(*t->uva));
	if (t->gpa == NULL || t->uva == NULL) {
		perror("lookup addresses");
		exit(1);
	}
	for (i = 0; i < LOOKUPS; i++) {
		uint64_t v = xorshift(&seed);
		unsigned k = (unsigned)(v % n);
		uint64_t off = (v >> 32) % (REGION - 64);

		t->gpa[i] = GPA_BASE + 2ull * REGION * k + off;
		t->uva[i] = UVA_BASE + 2ull * REGION * uva_slot(k, n) + off;
	}
}

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Keeps the translations from being optimised away. */
static volatile uintptr_t sink;

static void
table_round(struct table *t, unsigned r)
{
	uintptr_t acc = 0;
	double t0;
	unsigned i;

	t0 = now_ns();
	for (i = 0; i < LOOKUPS; i++) {
		uint64_t len = 64;

		acc += (uintptr_t)memtable_gpa(&t->mt, t->gpa[i], &len) + len;
	}
	t->gpa_ns[r] = (now_ns() - t0) / LOOKUPS;
	t0 = now_ns();
	for (i = 0; i < LOOKUPS; i++)
		acc += (uintptr_t)memtable_uva(&t->mt, t->uva[i], 64);
	t->uva_ns[r] = (now_ns() - t0) / LOOKUPS;
	if (acc == 0) {
		/* Every address is mapped: a NULL sum means a bug. */
		fprintf(stderr, "bench-memtable: translations failed\n");
		exit(1);
	}
	sink += acc;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

int
main(void)
{
	static struct table tables[NSIZES];
	unsigned i, r;

	log_init(0);
	for (i = 0; i < NSIZES; i++)
		table_build(&tables[i], sizes[i]);
	/* One warm-up round each, then the rounds that count, in turns. */
	for (i = 0; i < NSIZES; i++)
		table_round(&tables[i], 0);
	for (r = 0; r < ROUNDS; r++)
		for (i = 0; i < NSIZES; i++)
			table_round(&tables[(i + r) % NSIZES], r);

	printf("memtable translation, ns per lookup (median of %u "
	    "interleaved rounds of %u):\n", ROUNDS, LOOKUPS);
	printf("  %8s %10s %10s\n", "regions", "gpa", "uva");
	for (i = 0; i < NSIZES; i++) {
		struct table *t = &tables[i];

		printf("  %8u %10.1f %10.1f\n", t->n,
		    median(t->gpa_ns, ROUNDS), median(t->uva_ns, ROUNDS));
		memtable_clear(&t->mt);
		free(t->gpa);
		free(t->uva);
	}
	return 0;
}
