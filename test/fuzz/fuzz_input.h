/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_FUZZ_INPUT_H
#define VRNG_FUZZ_INPUT_H

/*
 * The fuzzers' input, read as a little-endian byte stream.  Past its end
 * every read gives 0, so any input is a whole program.  And how a fuzzer
 * reports what the sanitizers cannot see.
 */

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* len bytes into buf, zeros past the end of the input. */
static inline void
take_bytes(struct input *in, void *buf, size_t len)
{
	size_t n = len < in->left ? len : in->left;

	memcpy(buf, in->p, n);
	memset((char *)buf + n, 0, len - n);
	in->p += n;
	in->left -= n;
}

/*
 * A finding: one line, after the fuzzer's name, then abort() (libFuzzer
 * saves the input that led here).
 */
static inline void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", program_invocation_short_name);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	abort();
}

#endif
