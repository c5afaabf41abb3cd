/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The daemon's clock (CLOCK_MONOTONIC, in nanoseconds).  See clock.h.
 */
#include <time.h>

#include "clock.h"

uint64_t
monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
