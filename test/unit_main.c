/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The unit test runner: every suite in one srunner.  Check's own
 * environment variables apply (CK_FORK=no, CK_RUN_SUITE=virtq,
 * CK_RUN_CASE=..., CK_VERBOSITY=verbose).
 */
#include <stdlib.h>

#include "unit.h"

Suite	*guest_suite(void);
Suite	*listener_suite(void);
Suite	*ioguard_suite(void);
Suite	*serve_suite(void);
Suite	*sandbox_suite(void);
Suite	*health_suite(void);
Suite	*metrics_suite(void);
Suite	*handover_suite(void);
Suite	*restore_suite(void);

int
main(void)
{
	static Suite *(*const suites[])(void) = { config_suite,
	    memtable_suite, virtq_suite, ratelimit_suite, entropy_suite,
	    vu_proto_suite, vu_dev_suite, log_suite, guest_suite,
	    listener_suite, ioguard_suite, serve_suite, sandbox_suite,
	    health_suite, metrics_suite, handover_suite, restore_suite,
	    NULL };

	return run_suites(suites) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
