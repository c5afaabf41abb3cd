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

#include "clock.h"
#include "unit.h"
#include "ioguard.h"

static int64_t
ms_now(void)
{
	return (int64_t)(monotonic_ns() / 1000000);
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

/* --- ioguard_write_often: the periodic guard ------------------------ */

/* Sleeps ms in all; returns how many times a signal cut the sleep. */
static int
sleep_counting_eintr(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	int cut = 0;

	while (nanosleep(&ts, &ts) < 0) {
		ck_assert_int_eq(errno, EINTR);
		cut++;
	}
	return cut;
}

START_TEST(write_often_ready_eventfd_turns_watching_on)
{
	int fd = eventfd(0, EFD_CLOEXEC);	/* blocking, empty */
	uint64_t one = 1, v = 0;

	ck_assert_int_ge(fd, 0);
	ck_assert(!ioguard_watching());
	ck_assert_int_eq(ioguard_write_often(fd, &one, sizeof(one)),
	    sizeof(one));
	ck_assert(ioguard_watching());
	ck_assert_int_eq(ioguard_write_often(fd, &one, sizeof(one)),
	    sizeof(one));
	ck_assert(ioguard_watching());
	ck_assert_int_eq(read(fd, &v, sizeof(v)), sizeof(v));
	ck_assert_uint_eq(v, 2);
	close(fd);
}
END_TEST

/*
 * After the last write the periodic timer stops itself on its second
 * tick (the first clears "used", the second finds no call since): at
 * most two signals cut our sleep, watching is off then (2 * IOGUARD_MS
 * on a quiet machine; asserted by ticks, with a loose 1 s bound on the
 * time), and after that a sleep of two periods is not cut short.
 */
START_TEST(write_often_watching_stops_by_itself)
{
	struct timespec nap = { 0, 2 * IOGUARD_MS * 1000000L };
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	uint64_t one = 1;
	int64_t t0;
	int cut = 0;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ioguard_write_often(fd, &one, sizeof(one)),
	    sizeof(one));
	ck_assert(ioguard_watching());
	t0 = ms_now();
	while (ioguard_watching() && ms_now() - t0 < 1000)
		cut += sleep_counting_eintr(IOGUARD_MS / 5);
	ck_assert_msg(!ioguard_watching(), "the periodic guard still runs "
	    "1 s after the last write");
	ck_assert_int_le(cut, 2);
	ck_assert_int_eq(nanosleep(&nap, NULL), 0);
	/* And the next write starts it again. */
	ck_assert_int_eq(ioguard_write_often(fd, &one, sizeof(one)),
	    sizeof(one));
	ck_assert(ioguard_watching());
	close(fd);
}
END_TEST

/*
 * A full, blocking eventfd (the front-end preloaded the call counter and
 * cleared O_NONBLOCK): the write is cut short with EINTR by the periodic
 * timer, within 2 * IOGUARD_MS in principle (asserted loosely), and the
 * counter is untouched.  The timer then stops as after any write.
 */
START_TEST(write_often_full_blocking_eventfd_is_interrupted)
{
	int fd = eventfd(0, EFD_CLOEXEC);
	uint64_t full = UINT64_MAX - 1, one = 1, v;
	int64_t t0;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, &full, sizeof(full)), sizeof(full));
	t0 = ms_now();
	ck_assert_int_eq(ioguard_write_often(fd, &one, sizeof(one)), -1);
	ck_assert_int_eq(errno, EINTR);
	ck_assert_int_lt(ms_now() - t0, 1000);
	ck_assert_int_eq(read(fd, &v, sizeof(v)), sizeof(v));
	ck_assert_uint_eq(v, full);
	t0 = ms_now();
	while (ioguard_watching() && ms_now() - t0 < 1000)
		(void)sleep_counting_eintr(IOGUARD_MS / 5);
	ck_assert(!ioguard_watching());
	close(fd);
}
END_TEST

/*
 * While the periodic timer runs, ioguard_read arms no timer of its own;
 * the periodic one still cuts a read that went to sleep.
 */
START_TEST(read_while_watching_is_interrupted)
{
	int fd = eventfd(0, EFD_CLOEXEC), wfd;
	uint64_t one = 1, v;
	int64_t t0;

	ck_assert_int_ge(fd, 0);
	wfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ck_assert_int_ge(wfd, 0);
	ck_assert_int_eq(ioguard_write_often(wfd, &one, sizeof(one)),
	    sizeof(one));
	ck_assert(ioguard_watching());
	t0 = ms_now();
	ck_assert_int_eq(ioguard_read(fd, &v, sizeof(v)), -1);
	ck_assert_int_eq(errno, EINTR);
	ck_assert_int_lt(ms_now() - t0, 1000);
	close(fd);
	close(wfd);
}
END_TEST

SUITE(ioguard, 10, setup, teardown,
    "eventfd", TESTS(read_of_empty_blocking_eventfd_is_interrupted,
	write_to_full_blocking_eventfd_is_interrupted,
	ready_eventfd_works_and_timer_is_disarmed),
    "often", TESTS(write_often_ready_eventfd_turns_watching_on,
	write_often_watching_stops_by_itself,
	write_often_full_blocking_eventfd_is_interrupted,
	read_while_watching_is_interrupted))
