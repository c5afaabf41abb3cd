/* SPDX-License-Identifier: BSD-3-Clause */
/* Test case registration for the unit and integration suites. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Room for every case ADD_TABLE adds; reachable until exit. */
static TTest named[256];
static size_t nnamed;

void
add_table(TCase *tc, const TTest *t, const void *table, size_t stride,
    size_t n)
{
	const char *name;
	size_t i;

	for (i = 0; i < n; i++) {
		if (nnamed == sizeof(named) / sizeof(named[0])) {
			fprintf(stderr, "add_table: more than %zu cases\n",
			    nnamed);
			abort();
		}
		memcpy(&name, (const char *)table + i * stride, sizeof(name));
		named[nnamed] = *t;
		named[nnamed].name = name;
		_tcase_add_test(tc, &named[nnamed], 0, 0, (int)i, (int)i + 1);
		nnamed++;
	}
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
