/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helpers of the hostile-guest suites, used by more than one of them.
 * See hostile.h.
 */
#include <check.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hostile.h"
#include "it.h"

const struct fe_cfg *
hostile_cfg(void)
{
	static struct fe_cfg cfg;

	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	return &cfg;
}

/* A valid writable buffer somewhere in the heap. */
uint64_t
buf(struct fe *fe, uint32_t len)
{
	return fe_alloc(fe, len, 16);
}

/* Daemon fd count back at baseline once it has reaped the connection. */
bool
fds_settle(struct vd *vd, int want, int *got)
{
	int64_t deadline = fe_now_ms() + 3000;

	for (;;) {
		*got = vd_count_fds(vd);
		if (*got == want)
			return true;
		if (fe_now_ms() > deadline)
			return false;
		fe_sleep_ms(10);
	}
}

void
malformed(bad_msg_fn bad, bool expect_drop)
{
	struct vd vd;
	struct fe fe, other;
	int fds0, fds;

	IT_START(&vd, 2, NULL);
	fds0 = vd_count_fds(&vd);
	ck_assert_int_gt(fds0, 0);
	IT_OPEN(&other, &vd, 1, NULL);
	IT_OPEN(&fe, &vd, 0, NULL);
	IT_SERVE(&fe, 64, &vd);

	bad(&fe);
	if (expect_drop)
		ck_assert_msg(fe_peer_closed(&fe, 3000), "%s%s", fe_errstr(),
		    vd_log_text(&vd));
	fe_close(&fe);
	ck_assert(vd_alive(&vd));
	IT_SERVE(&other, 64, &vd);

	/* The same socket takes and serves the next front-end. */
	IT_OPEN(&fe, &vd, 0, NULL);
	IT_SERVE(&fe, 64, &vd);
	fe_close(&fe);
	fe_close(&other);
	/* Nothing the bad message carried is left open in the daemon. */
	ck_assert_msg(fds_settle(&vd, fds0, &fds), "daemon has %d fds, had %d",
	    fds, fds0);
	IT_STOP(&vd);
	vd_cleanup(&vd);
}

/* A memfd of size bytes (the test closes it). */
int
memfd(uint64_t size)
{
	int fd = memfd_create("vrng-it-bad", MFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/*
 * Sends one region table (SET_MEM_TABLE, each region its own memfd of
 * the given size) with need_reply; returns the ack.
 */
int
send_table(struct fe *fe, const struct fe_mem_region *r, unsigned n,
    const uint64_t *fdsize)
{
	struct fe_mem_table t;
	int fds[8] = { -1, -1, -1, -1, -1, -1, -1, -1 }, ret;
	unsigned i;

	memset(&t, 0, sizeof(t));
	t.nregions = n;
	for (i = 0; i < n; i++) {
		t.regions[i] = r[i];
		fds[i] = memfd(fdsize[i]);
	}
	ret = fe_request(fe, FE_SET_MEM_TABLE, &t, 8 + 32 * n, fds, n, true);
	for (i = 0; i < n; i++)
		close(fds[i]);
	return ret;
}

/*
 * The daemon used less than a fifth of a CPU over the next second: it is
 * not spinning on an fd that stays readable.  (Spinning costs a whole CPU;
 * the margin is for the sanitizers and a busy machine.)
 */
void
no_spin(struct vd *vd, const char *what)
{
	int64_t t0 = fe_now_ms();
	struct vd_cost c = vd_cost_over(vd, 1000);

	ck_assert_int_ge(c.cpu0, 0);
	ck_assert_msg(c.cpu_ms < 200, "%s: the daemon used %lld ms of CPU in "
	    "%lld ms%s", what, (long long)c.cpu_ms,
	    (long long)(fe_now_ms() - t0), vd_log_text(vd));
}

/* GET_FEATURES is answered, within 500 ms. */
void
answers_promptly(struct fe *fe, struct vd *vd, const char *what)
{
	int64_t t0 = fe_now_ms(), dt;
	int r;

	r = fe_sync(fe);
	dt = fe_now_ms() - t0;
	ck_assert_msg(r == 0 && dt < 500, "%s: GET_FEATURES %s after %lld ms%s",
	    what, r == 0 ? "answered" : fe_errstr(), (long long)dt,
	    vd_log_text(vd));
}

/*
 * SIGTERM: exit 0 with a clean log, within a second, and with every guest
 * thread stopped (the daemon gives up on a stuck one after a while and
 * says so; that must not be needed).
 */
void
stops_within_1s(struct vd *vd)
{
	IT_STOP(vd);
	ck_assert_msg(vd->stop_ms < 1000, "SIGTERM took %lld ms%s",
	    (long long)vd->stop_ms, vd_log_text(vd));
	ck_assert_msg(vd_log_count(vd, "does not stop") == 0, "a guest "
	    "thread was left behind%s", vd_log_text(vd));
}

/*
 * The socket takes a new front-end (fe, with the settings of cfg), which
 * is served; then fe closes, the daemon stops as stops_within_1s() wants,
 * and its directory is removed.
 */
void
end_within_1s(struct vd *vd, struct fe *fe)
{
	fe_close(fe);
	stops_within_1s(vd);
	vd_cleanup(vd);
}

void
served_again_then_stop(struct vd *vd, struct fe *fe, const struct fe_cfg *cfg)
{
	IT_OPEN(fe, vd, 0, cfg);
	IT_SERVE(fe, 64, vd);
	end_within_1s(vd, fe);
}
