/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_CONFIG_H
#define VRNG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_DEFAULT_SOURCE		"/dev/urandom"
#define CONFIG_DEFAULT_PERIOD_MS	65536u
#define CONFIG_MAX_PERIOD_MS		65536u
#define CONFIG_MAX_SOCKETS		1024u
/* --poll-us: a spin longer than 1 s is a busy thread, not a poll. */
#define CONFIG_MAX_POLL_US		1000000u
/* --metrics-interval, seconds: at least one write a day. */
#define CONFIG_DEFAULT_METRICS_INTERVAL	10u
#define CONFIG_MAX_METRICS_INTERVAL	86400u
/* max_bytes when no --max-bytes is given: no rate limit at all. */
#define CONFIG_UNLIMITED		UINT64_MAX

struct config {
	const char	*socket_path;	/* base name; sockets are <path><i> */
	unsigned	 socket_count;
	const char	*filename;	/* entropy source */
	uint32_t	 period_ms;
	uint64_t	 max_bytes;	/* CONFIG_UNLIMITED: no limit */
	int		 verbose;
	int		 fd;		/* --fd, or -1 */
	uint32_t	 poll_us;	/* --poll-us, 0: off */
	bool		 health_tests;	/* --health-tests, default on */
	const char	*metrics_file;	/* --metrics-file, NULL: none */
	uint32_t	 metrics_interval_s;	/* --metrics-interval */
	bool		 metrics_interval_given;	/* no effect without file */
	bool		 period_given;	/* -p without -m has no effect */
	bool		 count_given;
	bool		 print_capabilities;
	bool		 no_sandbox;	/* --no-sandbox */
	bool		 fd_store;	/* --fd-store (fdstore.h) */
};

enum config_result {
	CONFIG_RUN,		/* start the daemon */
	CONFIG_EXIT,		/* --help or --version printed: exit 0 */
	CONFIG_ERROR,		/* err holds one line: print it, usage, exit 1 */
};

void	config_defaults(struct config *);
/* Does not print anything but --help/--version output (to stdout). */
enum config_result config_parse(struct config *, int argc, char *argv[],
	    char *err, size_t errlen);
void	config_usage(FILE *);

#endif
