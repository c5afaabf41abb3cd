/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: hostile eventfds (kick, call, err).
 *
 * Fds that are not eventfds, semaphore or blocking eventfds, and a kick
 * replaced while kicked must not make the daemon spin, hang a guest
 * thread or SIGTERM.
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


/*
 * A daemon with one socket and fe connected to it, its memory created but
 * nothing sent yet: the test swaps a ring eventfd, then calls fe_setup().
 */
static void
connected(struct vd *vd, struct fe *fe, struct fe_cfg *cfg)
{
	char path[256];

	IT_START(vd, 1, NULL);
	fe_cfg_init(cfg);
	cfg->qsize = QSIZE;
	fe_init(fe);
	IT_OK(fe_connect(fe, vd_sock(vd, 0, path, sizeof(path)), 3000));
	IT_OK(fe_mem_create(fe, cfg));
}

/* The call eventfd was signalled beyond before within ms. */
static bool
calls_grow(struct fe *fe, uint64_t before, int ms)
{
	int64_t deadline = fe_now_ms() + ms;

	for (;;) {
		if (fe_drain_calls(fe) > before)
			return true;
		if (fe_now_ms() >= deadline)
			return false;
		fe_sleep_ms(5);
	}
}

/* Fds a front-end might pass where an eventfd belongs: all poll readable. */
enum { NOT_EFD_FILE, NOT_EFD_HUNG_PIPE, NOT_EFD_DEV_NULL, NOT_EFD_KINDS };

static int
not_an_eventfd(const struct vd *vd, int kind, const char **what)
{
	char path[256];
	int fd, p[2];

	switch (kind) {
	case NOT_EFD_FILE:
		*what = "a regular file";
		vd_path(vd, "not-an-eventfd", path, sizeof(path));
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, "12345678", 8), 8);
		return fd;
	case NOT_EFD_HUNG_PIPE:
		*what = "a pipe whose writer is gone";
		ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
		close(p[1]);
		return p[0];
	default:
		*what = "/dev/null";
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		return fd;
	}
}

/*
 * vhost-user.rst: the kick, call and err fds are eventfds.  Anything else
 * (a file, a pipe whose writer hung up, a device) polls readable for ever
 * and would spin the guest thread: refused with a nack, the eventfds from
 * before stay in use and the connection stays.  Without REPLY_ACK the
 * front-end would not hear of it, so the daemon hangs up.
 */
START_TEST(eventfd_vring_fds_must_be_eventfds)
{
	static const struct {
		uint32_t	 req;
		const char	*name;
	} reqs[] = {
		{ FE_SET_VRING_KICK, "SET_VRING_KICK" },
		{ FE_SET_VRING_CALL, "SET_VRING_CALL" },
		{ FE_SET_VRING_ERR, "SET_VRING_ERR" },
	};
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	const char *what;
	uint64_t zero = 0, calls;
	unsigned i;
	int k, fd, r;

	fe_cfg_init(&cfg);
	cfg.qsize = QSIZE;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	IT_SERVE(&fe, 64, &vd);
	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
		for (k = 0; k < NOT_EFD_KINDS; k++) {
			fd = not_an_eventfd(&vd, k, &what);
			r = fe_request(&fe, reqs[i].req, &zero, 8, &fd, 1,
			    true);
			close(fd);
			ck_assert_msg(r == 1, "%s with %s: %s%s", reqs[i].name,
			    what, r == 0 ? "accepted" : fe_errstr(),
			    vd_log_text(&vd));
		}
	answers_promptly(&fe, &vd, "after 9 refused fds");
	ck_assert_int_eq(vd_log_count(&vd, "is not an eventfd"), 9);
	no_spin(&vd, "after 9 refused fds");

	/* The kick and call eventfds from before still work... */
	calls = fe_drain_calls(&fe);
	IT_SERVE(&fe, 64, &vd);
	ck_assert_msg(calls_grow(&fe, calls, 1000), "no interrupt on the "
	    "call eventfd%s", vd_log_text(&vd));
	/* ...and so does the err eventfd. */
	fe_publish(&fe, 0xffff);
	fe_kick(&fe);
	ck_assert_msg(fe_wait_err(&fe, 3000), "no err eventfd signal%s",
	    vd_log_text(&vd));
	answers_promptly(&fe, &vd, "after the ring broke");
	fe_close(&fe);

	cfg.reply_ack = false;
	IT_OPEN(&fe, &vd, 0, &cfg);
	fd = not_an_eventfd(&vd, NOT_EFD_HUNG_PIPE, &what);
	IT_OK(fe_request(&fe, FE_SET_VRING_KICK, &zero, 8, &fd, 1, false));
	close(fd);
	ck_assert_msg(fe_peer_closed(&fe, 3000), "kick fd %s without "
	    "REPLY_ACK: %s%s", what, fe_errstr(), vd_log_text(&vd));
	fe_close(&fe);
	no_spin(&vd, "after a refused kick fd without REPLY_ACK");
	stops_within_1s(&vd);
	vd_cleanup(&vd);
}
END_TEST

/*
 * A kick eventfd in semaphore mode (EFD_SEMAPHORE) loaded with a huge count
 * reads 1 at a time and stays readable for a very long time.  The daemon
 * gives that ring up, with one log line, instead of spinning; the control
 * channel answers, and the ring restarted with a normal kick eventfd is
 * served again.
 */
START_TEST(eventfd_semaphore_kick_does_not_spin)
{
	uint64_t load = 1000000000ull;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	uint32_t base;

	connected(&vd, &fe, &cfg);
	close(fe.kick);
	fe.kick = eventfd(0, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(fe.kick, 0);
	ck_assert_int_eq(write(fe.kick, &load, sizeof(load)), sizeof(load));
	IT_OK(fe_setup(&fe, &cfg));

	ck_assert_msg(vd_log_wait(&vd, "does not drain", 1, 3000), "no log "
	    "line about the kick eventfd%s", vd_log_text(&vd));
	no_spin(&vd, "semaphore kick eventfd");
	answers_promptly(&fe, &vd, "semaphore kick eventfd");
	ck_assert(fe_post1(&fe, fe_alloc(&fe, 64, 16), 64) >= 0);
	fe_kick(&fe);
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 300), 0);
	ck_assert_int_eq(vd_log_count(&vd, "does not drain"), 1);

	IT_OK(fe_ring_stop(&fe, &base));
	close(fe.kick);
	fe.kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(fe.kick, 0);
	fe_ring_reset(&fe, (uint16_t)base);
	IT_OK(fe_ring_start(&fe, (uint16_t)base));
	IT_SERVE(&fe, 64, &vd);
	IT_SERVE(&fe, 4096, &vd);
	ck_assert_int_eq(vd_log_count(&vd, "does not drain"), 1);
	end_within_1s(&vd, &fe);
}
END_TEST

/*
 * A blocking call eventfd one short of its maximum count: any write(2) to
 * it blocks (eventfd(2)).  Completions must not hang the guest thread in
 * the interrupt: GET_FEATURES is answered right after, more requests are
 * served, and SIGTERM ends the daemon promptly.
 */
START_TEST(eventfd_full_blocking_call_does_not_hang)
{
	uint64_t full = 0xfffffffffffffffeull, v = 0;
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	int call;

	connected(&vd, &fe, &cfg);
	close(fe.call);
	fe.call = eventfd(0, EFD_CLOEXEC);		/* blocking */
	ck_assert_int_ge(fe.call, 0);
	ck_assert_int_eq(write(fe.call, &full, sizeof(full)), sizeof(full));
	IT_OK(fe_setup(&fe, &cfg));
	/* Keep it away from fe_wait_used, which would read it empty. */
	call = fe.call;
	fe.call = -1;

	ck_assert(fe_post1(&fe, fe_alloc(&fe, 64, 16), 64) >= 0);
	fe_kick(&fe);
	ck_assert_msg(fe_wait_used(&fe, 1, 3000) == 1, "no completion%s",
	    vd_log_text(&vd));
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.len, 64);
	answers_promptly(&fe, &vd, "after a completion on a full call "
	    "eventfd");
	IT_SERVE(&fe, 64, &vd);
	IT_SERVE(&fe, 4096, &vd);
	answers_promptly(&fe, &vd, "after three completions");
	/* Not one interrupt got in (nor was one made up). */
	ck_assert_int_eq(fcntl(call, F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_eq(read(call, &v, sizeof(v)), sizeof(v));
	ck_assert_uint_eq(v, full);
	stops_within_1s(&vd);
	close(call);
	fe_close(&fe);
	vd_cleanup(&vd);
}
END_TEST

/* Clears O_NONBLOCK of fd's open file description. */
static void
clear_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	ck_assert_int_ge(fl, 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, fl & ~O_NONBLOCK), 0);
}

/*
 * Front-end and daemon share the eventfds' open file descriptions, so the
 * O_NONBLOCK the daemon sets on a kick or call eventfd can be cleared
 * again by the front-end (fcntl(F_SETFL) on its own fd) after the
 * handover.  That must not hang the guest thread either: not in draining
 * the kick eventfd (here), not in signalling a full call eventfd (next).
 * Once that front-end is gone, the socket must take the next one: a
 * thread blocked on an eventfd nobody else holds would never return.
 */
START_TEST(eventfd_kick_made_blocking_later_does_not_hang)
{
	struct fe_used_elem u;
	struct vd vd;
	struct fe fe;

	IT_ONE_GUEST(&vd, &fe, hostile_cfg(), NULL);
	IT_SERVE(&fe, 64, &vd);
	clear_nonblock(fe.kick);
	ck_assert(fe_post1(&fe, fe_alloc(&fe, 64, 16), 64) >= 0);
	fe_kick(&fe);
	ck_assert_msg(fe_wait_used(&fe, 1, 3000) == 1, "a kick on a kick "
	    "eventfd made blocking again was not served%s", vd_log_text(&vd));
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.len, 64);
	answers_promptly(&fe, &vd, "after a kick on a blocking kick eventfd");
	fe_close(&fe);
	served_again_then_stop(&vd, &fe, hostile_cfg());
}
END_TEST

START_TEST(eventfd_call_made_blocking_later_does_not_hang)
{
	uint64_t full = 0xfffffffffffffffeull;
	struct vd vd;
	struct fe fe;
	int call, i;

	IT_ONE_GUEST(&vd, &fe, hostile_cfg(), NULL);
	IT_SERVE(&fe, 64, &vd);
	call = fe.call;
	fe.call = -1;
	/* Full (while still non-blocking: a late interrupt may be in it). */
	for (i = 0; write(call, &full, sizeof(full)) != sizeof(full); i++) {
		ck_assert_int_lt(i, 100);
		(void)!read(call, &full, sizeof(full));
		full = 0xfffffffffffffffeull;
		fe_sleep_ms(10);
	}
	clear_nonblock(call);
	ck_assert(fe_post1(&fe, fe_alloc(&fe, 64, 16), 64) >= 0);
	fe_kick(&fe);
	ck_assert_msg(fe_wait_used(&fe, 1, 3000) == 1, "no completion%s",
	    vd_log_text(&vd));
	answers_promptly(&fe, &vd, "after a completion on a full call "
	    "eventfd made blocking again");
	close(call);
	fe_close(&fe);
	served_again_then_stop(&vd, &fe, hostile_cfg());
}
END_TEST

/*
 * SET_VRING_KICK replaces a kick fd that has a kick pending, and both are
 * seen in one poll round.  The message before it is sent a byte first, so
 * that the kick and the new fd (blocking, nothing pending) pile up while
 * the guest thread waits for the rest of that message.  The daemon must
 * serve the ring, take the new fd without blocking on it, and answer.
 */
START_TEST(eventfd_kick_replaced_while_kicked)
{
	struct {
		struct fe_hdr		h;
		struct fe_vring_state	s;
	} __attribute__((packed)) en = {
		{ FE_SET_VRING_ENABLE, FE_FLAG_VERSION, 8 }, { 0, 1 } };
	enum { N = 255, LEN = 16384 };
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	uint64_t zero = 0, area;
	int kick, i;

	fe_cfg_init(&cfg);
	cfg.qsize = 256;
	cfg.mem_size = 16u << 20;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	IT_OK(fe_sync(&fe));
	/* Blocking, nothing pending. */
	kick = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(kick, 0);

	IT_OK(fe_send_bytes(&fe, &en, 1, NULL, 0));
	fe_sleep_ms(50);
	area = fe_alloc(&fe, (uint64_t)N * LEN, 16);
	for (i = 0; i < N; i++)
		ck_assert(fe_post1(&fe, area + (uint64_t)LEN * i, LEN) >= 0);
	fe_kick(&fe);
	IT_OK(fe_send_bytes(&fe, (const char *)&en + 1, sizeof(en) - 1, NULL,
	    0));
	IT_OK(fe_send(&fe, FE_SET_VRING_KICK, FE_FLAG_VERSION, &zero, 8, &kick,
	    1));
	close(fe.kick);
	fe.kick = kick;

	ck_assert_msg(fe_wait_used(&fe, N, 5000) == N, "%u of %u requests "
	    "served%s", fe_used_pending(&fe), N, vd_log_text(&vd));
	for (i = 0; i < N; i++) {
		ck_assert(fe_get_used(&fe, &u));
		ck_assert_uint_eq(u.len, LEN);
	}
	answers_promptly(&fe, &vd, "after the kick fd was replaced");
	/* Kicks now come through the new fd. */
	IT_SERVE(&fe, 64, &vd);
	end_within_1s(&vd, &fe);
}
END_TEST

SUITE(it_eventfd, IT_TIMEOUT, NULL, NULL,
    "eventfds", TESTS(eventfd_vring_fds_must_be_eventfds,
	eventfd_semaphore_kick_does_not_spin,
	eventfd_full_blocking_call_does_not_hang,
	eventfd_kick_replaced_while_kicked,
	eventfd_kick_made_blocking_later_does_not_hang,
	eventfd_call_made_blocking_later_does_not_hang))
