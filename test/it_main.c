/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration test runner: every suite talks to the real daemon binary
 * ($VRNG_BIN, default ./vhost-device-rng) over real sockets.
 *
 * Each test runs in its own process (CK_FORK), and each daemon it starts
 * lives in a directory under one run directory, removed at the end, so
 * that a failed or timed-out test leaves nothing behind.  Daemons die
 * with the test process that started them (PR_SET_PDEATHSIG).
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it.h"

Suite	*it_handshake_suite(void);
Suite	*it_datapath_suite(void);
Suite	*it_ring_suite(void);
Suite	*it_messages_suite(void);
Suite	*it_memory_suite(void);
Suite	*it_eventfd_suite(void);
Suite	*it_stalls_suite(void);
Suite	*it_addrspace_suite(void);
Suite	*it_polling_suite(void);
Suite	*it_lifecycle_suite(void);
Suite	*it_source_suite(void);
Suite	*it_ratelimit_suite(void);
Suite	*it_resources_suite(void);
Suite	*it_serve_suite(void);
Suite	*it_sandbox_suite(void);
Suite	*it_health_suite(void);
Suite	*it_upgrade_suite(void);
Suite	*it_crash_suite(void);
Suite	*it_metrics_suite(void);

/* Goes on past a failure, so that one stuck entry leaves only itself. */
static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) < 0)
		fprintf(stderr, "removing %s: %s\n", path, strerror(errno));
	return 0;
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	static Suite *(*const suites[])(void) = { it_handshake_suite,
	    it_datapath_suite, it_ring_suite, it_messages_suite,
	    it_memory_suite, it_eventfd_suite, it_stalls_suite,
	    it_addrspace_suite, it_polling_suite, it_lifecycle_suite,
	    it_source_suite, it_ratelimit_suite, it_resources_suite,
	    it_serve_suite, it_sandbox_suite, it_health_suite,
	    it_upgrade_suite, it_crash_suite, it_metrics_suite, NULL };
	char rundir[256];
	int failed, i;

	/* Writes to a socket the daemon closed must fail, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	snprintf(rundir, sizeof(rundir), "%s/vrng-it.XXXXXX",
	    tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(rundir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	setenv("VRNG_IT_RUNDIR", rundir, 1);
	printf("integration tests: daemon %s\n", getenv("VRNG_BIN") != NULL ?
	    getenv("VRNG_BIN") : "./vhost-device-rng");
	fflush(stdout);

	failed = run_suites(suites);

	if (getenv("VRNG_IT_KEEP") == NULL) {
		/* A daemon killed a moment ago may still be going away. */
		for (i = 0; i < 3 && access(rundir, F_OK) == 0; i++) {
			if (i > 0)
				usleep(200000);
			nftw(rundir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		}
	} else
		printf("kept %s\n", rundir);
	return failed == 0 ? 0 : 1;
}
