/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_CLOCK_H
#define VRNG_CLOCK_H

/*
 * The daemon's one clock: CLOCK_MONOTONIC in nanoseconds.  Rate-limit
 * periods, backoffs and the throttled-time statistic all use it.
 */

#include <stdint.h>

uint64_t monotonic_ns(void);

#endif
