/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_TEST_SUITE_H
#define VRNG_TEST_SUITE_H

/*
 * Test case registration, shared by the unit and integration suites, so
 * that a suite constructor names its cases and tests and nothing else.
 */

#include <check.h>
#include <stddef.h>

/*
 * A NULL-terminated list of tests.  START_TEST(x) makes x a const TTest *
 * variable, so the list is built where the suite is, at run time.
 */
#define TESTS(...)	((const TTest *const []){ __VA_ARGS__, NULL })

/*
 * Adds the case name to s: timeout seconds, the checked fixture (setup,
 * teardown) unless both are NULL, and the tests of t (TESTS(...), or NULL
 * for none) in order.  Returns the case, for the loop tests, exit tests,
 * tables and other fixtures a suite adds after.
 */
TCase	*add_case(Suite *s, const char *name, double timeout, SFun setup,
	    SFun teardown, const TTest *const *t);

/*
 * add_case() for each pair (const char *name, TESTS(...)) up to a NULL
 * name, every case with the same timeout and fixture.  Returns s.
 */
Suite	*add_cases(Suite *s, double timeout, SFun setup, SFun teardown,
	    ...) __attribute__((sentinel));

/*
 * SUITE(name, timeout, setup, teardown, case, TESTS(...), ...) defines
 * Suite *name_suite(void), which makes the suite "name" of the cases
 * that follow (add_cases: pairs of a case name and its tests, every case
 * with that timeout and fixture).  A suite that adds more (tables, loop
 * or exit tests, other fixtures) writes its constructor out.
 */
#define SUITE(name, timeout, setup, teardown, ...)			\
Suite	*name##_suite(void);						\
Suite *									\
name##_suite(void)							\
{									\
	return add_cases(suite_create(#name), (timeout), (setup),	\
	    (teardown), __VA_ARGS__, (const char *)NULL);		\
}

/*
 * Cases named once, in a table: the entries of table are structs whose
 * first member is the case's name (const char *).  ADD_TABLE adds the
 * Check test t to tc once per entry, under that entry's name, with _i
 * the entry's index, so that t's body runs the entry's variant.
 */
#define ADD_TABLE(tc, t, table)						\
	add_table((tc), (t), (table), sizeof((table)[0]),		\
	    sizeof(table) / sizeof((table)[0]))
void	 add_table(TCase *, const TTest *, const void *table, size_t stride,
	    size_t n);

/*
 * Runs the suites the NULL-terminated list of constructors makes, in one
 * srunner under Check's environment variables (CK_RUN_SUITE, CK_FORK,
 * CK_VERBOSITY, ...).  Returns the number of tests that failed.
 */
int	 run_suites(Suite *(*const *suites)(void));

#endif
