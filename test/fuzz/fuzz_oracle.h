/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_FUZZ_ORACLE_H
#define VRNG_FUZZ_ORACLE_H

/*
 * What the fuzzers check beside the sanitizers: leak_mark() and
 * leak_check() compare the fds open and the mappings of a memfd before
 * and after an input, and fail() (fuzz_input.h) says what differs.
 */

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../procself.h"
#include "fuzz_input.h"

/* fail() is fuzz_input.h's: one line after the program's name. */

static inline unsigned
count_fds(void)
{
	DIR *d;
	unsigned n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		fail("opendir /proc/self/fd: %s", strerror(errno));
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* Mappings of the memfds called name. */
static inline unsigned
count_memfd_maps(const char *name)
{
	int n = procself_memfd_maps(name);

	if (n < 0)
		fail("/proc/self/maps: %s", strerror(errno));
	return (unsigned)n;
}

struct leak_mark {
	const char	*memfd_name;
	unsigned	 fds;
	unsigned	 maps;
};

static inline void
leak_mark(struct leak_mark *m, const char *memfd_name)
{
	m->memfd_name = memfd_name;
	m->fds = count_fds();
	m->maps = count_memfd_maps(memfd_name);
}

/* The input left nothing open or mapped that was not before it. */
static inline void
leak_check(const struct leak_mark *m)
{
	unsigned fds = count_fds(), maps = count_memfd_maps(m->memfd_name);

	if (fds != m->fds)
		fail("fd leak: %u open before the input, %u after", m->fds,
		    fds);
	if (maps != m->maps)
		fail("mapping leak: %u %s mappings before the input, %u after",
		    m->maps, m->memfd_name, maps);
}

#endif
