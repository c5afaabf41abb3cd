/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_TEST_PROCSELF_H
#define VRNG_TEST_PROCSELF_H

/*
 * What this process holds, from /proc/self, for the unit tests and the
 * fuzzers (each says in its own way when it cannot be read: -1 here).
 */

#include <stdio.h>
#include <string.h>

/* Mappings of the memfds called name ("/memfd:NAME (deleted)"), or -1. */
static inline int
procself_memfd_maps(const char *name)
{
	char line[512], tag[80];
	FILE *f;
	int n = 0;

	snprintf(tag, sizeof(tag), "/memfd:%s ", name);
	if ((f = fopen("/proc/self/maps", "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, tag) != NULL)
			n++;
	fclose(f);
	return n;
}

#endif
