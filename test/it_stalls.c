/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: stalled messages and floods of errors.
 *
 * A message dripped byte by byte is dropped (and does not hold up
 * SIGTERM); reconnects and failing memory tables do not flood the log.
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


/* SET_FEATURES with need_reply: 20 bytes. */
struct dripped {
	struct fe_hdr	h;
	uint64_t	features;
} __attribute__((packed));

/*
 * Sends m a byte every step_ms until the daemon hangs up.  Returns the ms
 * from the first byte to the hang-up, or -1 if the daemon took it all.
 */
static int64_t
drip(struct fe *fe, const void *m, size_t len, int step_ms)
{
	const char *p = m;
	int64_t t0 = fe_now_ms();
	size_t i;

	for (i = 0; i < len; i++)
		if (send(fe->sock, p + i, 1, MSG_NOSIGNAL) != 1 ||
		    fe_peer_closed(fe, step_ms))
			return fe_now_ms() - t0;
	return fe_peer_closed(fe, 1000) ? fe_now_ms() - t0 : -1;
}

/*
 * The one-guest set-up, served once, and m made ready to drip: a
 * SET_FEATURES of the features fe acked, asking for a reply.
 */
static void
drip_guest(struct vd *vd, struct fe *fe, struct fe_cfg *cfg,
    struct dripped *m)
{
	fe_cfg_init(cfg);
	cfg->qsize = QSIZE;
	IT_ONE_GUEST(vd, fe, cfg, NULL);
	IT_SERVE(fe, 64, vd);
	m->h = (struct fe_hdr){ FE_SET_FEATURES, FE_FLAG_VERSION |
	    FE_FLAG_NEED_REPLY, 8 };
	m->features = fe->acked;
}

/*
 * A message fed a byte every 100 ms: every byte comes well within any
 * per-read timeout, but the whole message must arrive within 500 ms of its
 * first byte (it would take 1.9 s).  The connection is dropped then, and
 * the socket takes the next front-end.
 */
START_TEST(stall_message_dripped_byte_by_byte_is_dropped)
{
	struct dripped m;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int64_t dt;

	drip_guest(&vd, &fe, &cfg, &m);
	dt = drip(&fe, &m, sizeof(m), 100);
	ck_assert_msg(dt >= 0, "the daemon waited 1.9 s for the whole "
	    "message%s", vd_log_text(&vd));
	ck_assert_msg(dt >= 450 && dt < 1500, "dropped %lld ms after the "
	    "first byte (the message has 500 ms)%s", (long long)dt,
	    vd_log_text(&vd));
	ck_assert_int_ge(vd_log_count(&vd, "dropping the connection"), 1);
	fe_close(&fe);
	ck_assert(vd_alive(&vd));
	served_again_then_stop(&vd, &fe, &cfg);
}
END_TEST

/*
 * SIGTERM while a front-end drips a message: the guest thread waiting for
 * the rest of it stops at once, and the daemon exits 0 within a second.
 */
START_TEST(stall_sigterm_while_dripping)
{
	struct dripped m;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int64_t t0, next, dt;
	size_t i = 1;

	drip_guest(&vd, &fe, &cfg, &m);
	ck_assert_int_eq(send(fe.sock, &m, 1, MSG_NOSIGNAL), 1);
	fe_sleep_ms(50);
	ck_assert_int_eq(kill(vd.pid, SIGTERM), 0);
	t0 = fe_now_ms();
	next = t0 + 50;
	while (vd_alive(&vd) && fe_now_ms() - t0 < 3000) {
		if (fe_now_ms() >= next && i < sizeof(m)) {
			(void)send(fe.sock, (const char *)&m + i++, 1,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
			next += 100;
		}
		fe_sleep_ms(2);
	}
	dt = fe_now_ms() - t0;
	ck_assert_msg(!vd_alive(&vd), "still running 3 s after SIGTERM%s",
	    vd_log_text(&vd));
	ck_assert_msg(dt < 1000, "SIGTERM took %lld ms%s", (long long)dt,
	    vd_log_text(&vd));
	/* Exit status 0, no sanitizer report, no thread left behind. */
	stops_within_1s(&vd);
	fe_close(&fe);
	vd_cleanup(&vd);
}
END_TEST

/* A daemon without -v: its log has warnings and guest errors only. */
static void
start_quiet(struct vd *vd, unsigned nsock)
{
	struct vd_opts o;

	IT_OK(vd_init(vd));
	vd_opts_init(&o);
	o.nsock = nsock;
	o.quiet = true;
	IT_OK(vd_spawn(vd, &o));
}

/* The guest error lines the daemon said it left out, summed up. */
static unsigned long
suppressed_total(const struct vd *vd)
{
	char line[1024], *p;
	unsigned long n, sum = 0;
	FILE *f;

	f = fopen(vd->log, "r");
	ck_assert_msg(f != NULL, "%s: %s", vd->log, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "guest error lines suppressed") != NULL &&
		    (p = strstr(line, "guest ")) != NULL &&
		    sscanf(p, "guest %*u: %lu", &n) == 1)
			sum += n;
	fclose(f);
	return sum;
}

/*
 * Connections for a second, each with one malformed message: each is
 * dropped, but the guest-error log budget belongs to the socket and does
 * not refill with every connection.  The log gets a few lines, and at
 * exit one count of what was left out; every error is either printed or
 * counted.  The daemon then serves a good front-end as usual.
 */
START_TEST(flood_reconnects_log_is_bounded)
{
	struct vd vd;
	struct fe fe;
	char path[256];
	int64_t t0;
	unsigned n;
	int lines, printed;

	start_quiet(&vd, 1);
	vd_sock(&vd, 0, path, sizeof(path));
	t0 = fe_now_ms();
	for (n = 0; fe_now_ms() - t0 < 1000; n++) {
		fe_init(&fe);
		IT_OK(fe_connect(&fe, path, 3000));
		IT_OK(fe_send(&fe, FE_GET_FEATURES, 0x2, NULL, 0, NULL, 0));
		ck_assert_msg(fe_peer_closed(&fe, 3000), "connection %u: "
		    "%s%s", n, fe_errstr(), vd_log_text(&vd));
		fe_disconnect(&fe);
	}
	ck_assert_uint_ge(n, 100);
	lines = vd_log_count(&vd, "\n");
	ck_assert_msg(lines <= 30, "%d log lines for %u malformed "
	    "connections%s", lines, n, vd_log_text(&vd));

	IT_OPEN(&fe, &vd, 0, hostile_cfg());
	IT_SERVE(&fe, 64, &vd);
	IT_SERVE(&fe, 4096, &vd);
	fe_close(&fe);
	stops_within_1s(&vd);
	ck_assert_msg(vd_log_count(&vd, "guest error lines suppressed") >= 1,
	    "no count of suppressed lines at exit%s", vd_log_text(&vd));
	/* Two errors a connection: the version, then the hang-up. */
	printed = vd_log_count(&vd, "unsupported protocol version") +
	    vd_log_count(&vd, "dropping the connection");
	ck_assert_msg(printed + suppressed_total(&vd) == 2ul * n, "%u "
	    "connections: %d error lines printed, %lu suppressed%s", n,
	    printed, suppressed_total(&vd), vd_log_text(&vd));
	vd_cleanup(&vd);
}
END_TEST

/*
 * SET_MEM_TABLE with a region whose fd cannot be mapped (a pipe), 300
 * times with REPLY_ACK: 300 nacks, the connection and the old table stay,
 * no fd is kept, and the log gets a few lines, not 300.
 */
START_TEST(flood_failing_mem_tables_log_is_bounded)
{
	struct fe_mem_table t;
	struct vd vd;
	struct fe fe;
	int fds0, lines0, lines, p[2], r, i, printed;

	start_quiet(&vd, 1);
	IT_OPEN(&fe, &vd, 0, hostile_cfg());
	IT_SERVE(&fe, 64, &vd);
	fds0 = vd_count_fds(&vd);
	ck_assert_int_gt(fds0, 0);
	lines0 = vd_log_count(&vd, "\n");

	memset(&t, 0, sizeof(t));
	t.nregions = 1;
	t.regions[0] = (struct fe_mem_region){ 0x100000, 0x100000,
	    0x7e0000000000, 0 };
	for (i = 0; i < 300; i++) {
		ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
		r = fe_request(&fe, FE_SET_MEM_TABLE, &t, 8 + 32, &p[0], 1,
		    true);
		close(p[0]);
		close(p[1]);
		ck_assert_msg(r == 1, "table %d with a pipe: %s%s", i,
		    r == 0 ? "accepted" : fe_errstr(), vd_log_text(&vd));
	}
	answers_promptly(&fe, &vd, "after 300 failed tables");
	ck_assert_int_eq(vd_count_fds(&vd), fds0);
	lines = vd_log_count(&vd, "\n") - lines0;
	ck_assert_msg(lines <= 12, "%d log lines for 300 failed tables%s",
	    lines, vd_log_text(&vd));
	IT_SERVE(&fe, 64, &vd);
	IT_SERVE(&fe, 4096, &vd);
	fe_close(&fe);
	stops_within_1s(&vd);
	printed = vd_log_count(&vd, "mmap of memory region");
	ck_assert_msg(printed + suppressed_total(&vd) == 300, "%d lines "
	    "printed, %lu suppressed%s", printed, suppressed_total(&vd),
	    vd_log_text(&vd));
	vd_cleanup(&vd);
}
END_TEST

SUITE(it_stalls, IT_TIMEOUT, NULL, NULL,
    "stalls_and_floods", TESTS(
	stall_message_dripped_byte_by_byte_is_dropped,
	stall_sigterm_while_dripping, flood_reconnects_log_is_bounded,
	flood_failing_mem_tables_log_is_bounded))
