/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: a polled ring (kick with the no-fd bit).
 *
 * A disabled or broken ring has nothing to poll for: the daemon sleeps
 * instead of waking a thousand times a second.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostile.h"
#include "it.h"


/* Times the daemon's threads went to sleep in the next second. */
static int64_t
wakeups_in_1s(struct vd *vd)
{
	struct vd_cost c = vd_cost_over(vd, 1000);

	ck_assert_int_ge(c.cs0, 0);
	ck_assert_int_ge(c.wakeups, 0);
	return c.wakeups;
}

/* One buffer served without a kick (the daemon polls the ring). */
static void
served_unkicked(struct fe *fe, struct vd *vd)
{
	struct fe_used_elem u;

	ck_assert(fe_post1(fe, fe_alloc(fe, 64, 16), 64) >= 0);
	ck_assert_msg(fe_wait_used(fe, 1, 3000) == 1, "a polled ring was not "
	    "served%s", vd_log_text(vd));
	ck_assert(fe_get_used(fe, &u));
	ck_assert_uint_eq(u.len, 64);
}

/*
 * SET_VRING_KICK with the no-fd bit: the daemon polls the ring, every
 * millisecond.  A disabled ring and a broken one have nothing to poll
 * for, and the daemon must sleep instead of waking a thousand times a
 * second; enabled again or restarted, the ring is polled again.
 */
START_TEST(polling_ring_disabled_or_broken_sleeps)
{
	uint64_t nofd = FE_VRING_NOFD;
	struct vd vd;
	struct fe fe;
	uint32_t base;
	int64_t w;

	IT_ONE_GUEST(&vd, &fe, hostile_cfg(), NULL);
	ck_assert_int_eq(fe_request(&fe, FE_SET_VRING_KICK, &nofd, 8, NULL, 0,
	    true), 0);
	served_unkicked(&fe, &vd);

	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_ENABLE, 0, 0, true),
	    0);
	fe_sleep_ms(50);
	w = wakeups_in_1s(&vd);
	ck_assert_msg(w < 100, "disabled polled ring: the daemon woke %lld "
	    "times in 1 s", (long long)w);
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_ENABLE, 0, 1, true),
	    0);
	served_unkicked(&fe, &vd);

	fe_publish(&fe, 0xffff);		/* head out of range */
	ck_assert_msg(fe_wait_err(&fe, 3000), "no err eventfd signal%s",
	    vd_log_text(&vd));
	fe_sleep_ms(50);
	w = wakeups_in_1s(&vd);
	ck_assert_msg(w < 100, "broken polled ring: the daemon woke %lld "
	    "times in 1 s", (long long)w);
	no_spin(&vd, "broken polled ring");
	answers_promptly(&fe, &vd, "broken polled ring");

	IT_OK(fe_ring_stop(&fe, &base));
	fe_ring_reset(&fe, (uint16_t)base);
	IT_OK(fe_ring_start(&fe, (uint16_t)base));
	ck_assert_int_eq(fe_request(&fe, FE_SET_VRING_KICK, &nofd, 8, NULL, 0,
	    true), 0);
	served_unkicked(&fe, &vd);
	end_within_1s(&vd, &fe);
}
END_TEST

SUITE(it_polling, IT_TIMEOUT, NULL, NULL,
    "polling", TESTS(polling_ring_disabled_or_broken_sleeps))
