/* SPDX-License-Identifier: BSD-3-Clause */
/* Test case registration for the unit and integration suites. */
#include <stdarg.h>
#include <stddef.h>

#include "suite.h"

TCase *
add_case(Suite *s, const char *name, double timeout, SFun setup,
    SFun teardown, const TTest *const *t)
{
	TCase *tc;

	tc = tcase_create(name);
	tcase_set_timeout(tc, timeout);
	if (setup != NULL || teardown != NULL)
		tcase_add_checked_fixture(tc, setup, teardown);
	for (; t != NULL && *t != NULL; t++)
		_tcase_add_test(tc, *t, 0, 0, 0, 1);	/* tcase_add_test */
	suite_add_tcase(s, tc);
	return tc;
}

Suite *
add_cases(Suite *s, double timeout, SFun setup, SFun teardown, ...)
{
	const TTest *const *t;
	const char *name;
	va_list ap;

	va_start(ap, teardown);
	while ((name = va_arg(ap, const char *)) != NULL) {
		t = va_arg(ap, const TTest *const *);
		add_case(s, name, timeout, setup, teardown, t);
	}
	va_end(ap);
	return s;
}

int
run_suites(Suite *(*const *suites)(void))
{
	SRunner *sr;
	int failed;

	sr = srunner_create(NULL);
	for (; *suites != NULL; suites++)
		srunner_add_suite(sr, (*suites)());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed;
}
