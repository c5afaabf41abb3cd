/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_FUZZ_INPUT_H
#define VRNG_FUZZ_INPUT_H

/*
 * The fuzzers' input, read as a little-endian byte stream.  Past its end
 * every read gives 0, so any input is a whole program.
 */

#include <stddef.h>
#include <stdint.h>

struct input {
	const uint8_t	*p;
	size_t		 left;
};

static inline uint8_t
take8(struct input *in)
{
	if (in->left == 0)
		return 0;
	in->left--;
	return *in->p++;
}

static inline uint16_t
take16(struct input *in)
{
	uint16_t lo = take8(in);

	return (uint16_t)(lo | take8(in) << 8);
}

static inline uint32_t
take32(struct input *in)
{
	uint32_t lo = take16(in);

	return lo | (uint32_t)take16(in) << 16;
}

static inline uint64_t
take64(struct input *in)
{
	uint64_t lo = take32(in);

	return lo | (uint64_t)take32(in) << 32;
}

#endif
