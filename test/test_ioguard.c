/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ioguard: eventfd reads and writes that a front-end cannot make block
 * for long by clearing O_NONBLOCK on the description it shares with us.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"
#include "ioguard.h"

static int64_t
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
setup(void)
{
	ck_assert_int_eq(ioguard_install(), 0);
	ck_assert_int_eq(ioguard_thread_init(), 0);
}

static void
teardown(void)
{
	ioguard_thread_fini();
}

START_TEST(read_of_empty_blocking_eventfd_is_interrupted)
{
	int fd = eventfd(0, EFD_CLOEXEC);	/* blocking, empty */
	uint64_t v;
	int64_t t0 = ms_now();

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ioguard_read(fd, &v, sizeof(v)), -1);
	ck_assert_int_eq(errno, EINTR);
	/* Not before the guard's time; well before "for ever". */
	ck_assert_int_ge(ms_now() - t0, IOGUARD_MS - 5);
	ck_assert_int_lt(ms_now() - t0, 2000);
	close(fd);
}
END_TEST

START_TEST(write_to_full_blocking_eventfd_is_interrupted)
{
	int fd = eventfd(0, EFD_CLOEXEC);
	uint64_t full = UINT64_MAX - 1, one = 1, v;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, &full, sizeof(full)), sizeof(full));
	ck_assert_int_eq(ioguard_write(fd, &one, sizeof(one)), -1);
	ck_assert_int_eq(errno, EINTR);
	/* The counter is untouched. */
	ck_assert_int_eq(read(fd, &v, sizeof(v)), sizeof(v));
	ck_assert_uint_eq(v, full);
	close(fd);
}
END_TEST

START_TEST(ready_eventfd_works_and_timer_is_disarmed)
{
	int fd = eventfd(0, EFD_CLOEXEC);
	uint64_t one = 1, v = 0;
	struct timespec nap = { 0, (IOGUARD_MS + 30) * 1000000L };

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ioguard_write(fd, &one, sizeof(one)), sizeof(one));
	ck_assert_int_eq(ioguard_read(fd, &v, sizeof(v)), sizeof(v));
	ck_assert_uint_eq(v, 1);
	/* A stray guard signal now would cut this sleep short. */
	ck_assert_int_eq(nanosleep(&nap, NULL), 0);
	close(fd);
}
END_TEST

Suite *
ioguard_suite(void)
{
	Suite *s = suite_create("ioguard");
	TCase *tc = tcase_create("eventfd");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, read_of_empty_blocking_eventfd_is_interrupted);
	tcase_add_test(tc, write_to_full_blocking_eventfd_is_interrupted);
	tcase_add_test(tc, ready_eventfd_works_and_timer_is_disarmed);
	suite_add_tcase(s, tc);
	return s;
}
