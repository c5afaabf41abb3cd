/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_HEALTH_H
#define VRNG_HEALTH_H

/*
 * Continuous health tests of an entropy source, NIST SP 800-90B
 * section 4.4, on every byte (one byte is one sample: 256 possible
 * values, so the Adaptive Proportion Test uses the non-binary window).
 * Pure: no I/O, no locks, no clock; the caller owns the state (entropy.c
 * keeps one per source, under the source's lock).
 *
 * The cut-offs follow from two assumptions:
 *
 *   H = HEALTH_H_BITS = 1 bit of min-entropy per byte (assumed: nothing
 *       is known of a hardware source a user points us at, and 1 bit in 8
 *       is conservative for any generator worth using: a healthy source
 *       is far from the cut-offs);
 *   alpha = 2^-20, the false-positive probability per test that SP
 *       800-90B 4.4 recommends (at most one false alarm in about a
 *       million windows of a source that really has H).
 *
 * Repetition Count Test (4.4.1): C = 1 + ceil(-log2(alpha) / H)
 *   = 1 + ceil(20 / 1) = 21.  The test fails when C identical bytes
 *   follow each other (20 in a row pass).
 *
 * Adaptive Proportion Test (4.4.2): window W = 512 bytes; the first byte
 *   of a window is the reference and the test fails when C of the W bytes
 *   (the first one included) equal it.  C = 1 + CRITBINOM(W, 2^-H,
 *   1 - alpha): 1 plus the smallest k with P(X <= k) >= 1 - 2^-20 for X
 *   binomial with n = 512, p = 1/2.  Computed once, offline, by summing
 *   the binomial terms with exact integers (Python):
 *
 *	from math import comb
 *	k = 0; s = comb(512, 0)
 *	while s * 2**20 < (2**20 - 1) * 2**512:
 *		k += 1; s += comb(512, k)
 *	print(1 + k)			# 311
 *
 *   which gives k = 310, C = 311 (the value of SP 800-90B's table 2 for
 *   W = 512, H = 1).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEALTH_H_BITS		1	/* assumed min-entropy per byte */
#define HEALTH_ALPHA_LOG2	20	/* alpha = 2^-20 */
#define HEALTH_RCT_CUTOFF	21	/* 1 + ceil(20 / H) */
#define HEALTH_APT_WINDOW	512	/* W, non-binary samples */
#define HEALTH_APT_CUTOFF	311	/* 1 + CRITBINOM(512, 2^-H, 1 - 2^-20) */

_Static_assert(HEALTH_RCT_CUTOFF == 1 + (HEALTH_ALPHA_LOG2 +
    HEALTH_H_BITS - 1) / HEALTH_H_BITS, "RCT cut-off follows H and alpha");
_Static_assert(HEALTH_APT_CUTOFF <= HEALTH_APT_WINDOW, "APT cut-off");

enum health_result {
	HEALTH_PASS = 0,
	HEALTH_RCT_FAIL,	/* Repetition Count Test (4.4.1) */
	HEALTH_APT_FAIL,	/* Adaptive Proportion Test (4.4.2) */
};

struct health {
	/* Repetition Count Test: */
	bool		 rct_started;	/* rct_value holds a sample */
	uint8_t		 rct_value;	/* A */
	unsigned	 rct_count;	/* B: A's run so far, 1.. */
	/* Adaptive Proportion Test: */
	uint8_t		 apt_value;	/* A: the window's first byte */
	unsigned	 apt_seen;	/* bytes of the window so far, 0..W */
	unsigned	 apt_count;	/* B: of those, equal to A */
	/* The last failure (health_feed returned non-PASS): */
	unsigned	 fail_count;	/* B when the test failed (= cut-off) */
	size_t		 fail_offset;	/* the failing byte, in that feed */
};

/* A fresh state: no run, no window (start-up, or after a failure). */
void	health_init(struct health *);

/*
 * Tests len bytes, in order, against the runs and the window of the
 * bytes fed before them.  Returns HEALTH_PASS if none failed; else the
 * first test that failed, with h->fail_count (the count that reached the
 * cut-off, in bytes) and h->fail_offset (that byte's index in buf) set.
 * After a failure the state is spent: health_init() before feeding more.
 */
enum health_result health_feed(struct health *, const void *buf, size_t len);

/* "Repetition Count Test", "Adaptive Proportion Test", or "no test". */
const char *health_test_name(enum health_result);
/* The cut-off of that test, in bytes (0 for HEALTH_PASS). */
unsigned health_cutoff(enum health_result);

#endif
