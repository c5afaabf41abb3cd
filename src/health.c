/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * NIST SP 800-90B section 4.4 continuous health tests, one byte a sample.
 * The cut-offs and how they were computed: include/health.h.
 */
#include <string.h>

#include "health.h"

void
health_init(struct health *h)
{
	memset(h, 0, sizeof(*h));
}

static enum health_result
failed(struct health *h, enum health_result r, unsigned count, size_t off)
{
	h->fail_count = count;
	h->fail_offset = off;
	return r;
}

enum health_result
health_feed(struct health *h, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		uint8_t x = p[i];

		/* 4.4.1: B counts the run of A; B >= C fails. */
		if (h->rct_started && x == h->rct_value) {
			if (++h->rct_count >= HEALTH_RCT_CUTOFF)
				return failed(h, HEALTH_RCT_FAIL,
				    h->rct_count, i);
		} else {
			h->rct_started = true;
			h->rct_value = x;
			h->rct_count = 1;
		}
		/*
		 * 4.4.2: the first byte of a window is A (B = 1); each of the
		 * W - 1 bytes after it that equals A adds one; B >= C fails.
		 */
		if (h->apt_seen == 0 || h->apt_seen == HEALTH_APT_WINDOW) {
			h->apt_value = x;
			h->apt_seen = 1;
			h->apt_count = 1;
		} else {
			h->apt_seen++;
			if (x == h->apt_value &&
			    ++h->apt_count >= HEALTH_APT_CUTOFF)
				return failed(h, HEALTH_APT_FAIL,
				    h->apt_count, i);
		}
	}
	return HEALTH_PASS;
}

const char *
health_test_name(enum health_result r)
{
	switch (r) {
	case HEALTH_RCT_FAIL:
		return "Repetition Count Test";
	case HEALTH_APT_FAIL:
		return "Adaptive Proportion Test";
	default:
		return "no test";
	}
}

unsigned
health_cutoff(enum health_result r)
{
	switch (r) {
	case HEALTH_RCT_FAIL:
		return HEALTH_RCT_CUTOFF;
	case HEALTH_APT_FAIL:
		return HEALTH_APT_CUTOFF;
	default:
		return 0;
	}
}
