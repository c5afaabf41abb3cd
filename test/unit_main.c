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
Suite	*health_suite(void);

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(config_suite());
	srunner_add_suite(sr, memtable_suite());
	srunner_add_suite(sr, virtq_suite());
	srunner_add_suite(sr, ratelimit_suite());
	srunner_add_suite(sr, entropy_suite());
	srunner_add_suite(sr, vu_proto_suite());
	srunner_add_suite(sr, vu_dev_suite());
	srunner_add_suite(sr, log_suite());
	srunner_add_suite(sr, guest_suite());
	srunner_add_suite(sr, listener_suite());
	srunner_add_suite(sr, ioguard_suite());
	srunner_add_suite(sr, serve_suite());
	srunner_add_suite(sr, health_suite());

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
