/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: the daemon's life around its guests.  Several sockets at
 * once, a second front-end knocking on a busy socket, disconnects and
 * reconnects, SIGTERM with guests connected, and the two ways of being
 * handed a socket instead of creating one (--fd and systemd socket
 * activation).
 */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "it.h"

START_TEST(three_sockets_served_concurrently)
{
	enum { N = 3, BUFS = 64, LEN = 4096 };
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe[N];
	uint64_t bytes[N], slot[N];
	uint8_t first[N][32];
	unsigned i, k;

	IT_START(&vd, N, NULL);
	fe_cfg_init(&cfg);
	cfg.qsize = BUFS;
	for (i = 0; i < N; i++)
		IT_OPEN(&fe[i], &vd, i, &cfg);
	/* All three rings full before any kick, then all kicked at once. */
	for (i = 0; i < N; i++) {
		slot[i] = fe_alloc(&fe[i], (uint64_t)BUFS * LEN, 4096);
		for (k = 0; k < BUFS; k++)
			ck_assert(fe_post1(&fe[i], slot[i] + (uint64_t)k * LEN,
			    LEN) >= 0);
		bytes[i] = 0;
	}
	for (i = 0; i < N; i++)
		fe_kick(&fe[i]);
	for (i = 0; i < N; i++) {
		struct fe_used_elem u;

		ck_assert_msg(fe_wait_used(&fe[i], BUFS, 5000) == BUFS,
		    "guest %u: %u of %u%s", i, fe_used_pending(&fe[i]), BUFS,
		    vd_log_text(&vd));
		while (fe_get_used(&fe[i], &u)) {
			ck_assert_uint_eq(u.len, LEN);
			bytes[i] += u.len;
		}
		ck_assert_uint_eq(bytes[i], (uint64_t)BUFS * LEN);
		IT_OK(fe_read_mem(&fe[i], slot[i], first[i], 32));
	}
	/* Three guests, three different streams. */
	ck_assert(memcmp(first[0], first[1], 32) != 0);
	ck_assert(memcmp(first[1], first[2], 32) != 0);
	for (i = 0; i < N; i++)
		fe_close(&fe[i]);
	IT_STOP(&vd);
	vd_cleanup(&vd);
}
END_TEST

/*
 * One guest per socket: a second front-end on a busy socket waits (in the
 * listen backlog) without disturbing the first, and is served once the
 * first one leaves.
 */
START_TEST(busy_socket_second_front_end_waits)
{
	struct fe_msg m;
	struct vd vd;
	struct fe first, second;
	char path[256];
	uint64_t f;

	IT_ONE_GUEST(&vd, &first, NULL, NULL);
	IT_SERVE(&first, 64, &vd);

	fe_init(&second);
	IT_OK(fe_connect(&second, vd_sock(&vd, 0, path, sizeof(path)), 1000));
	IT_OK(fe_send(&second, FE_GET_FEATURES, FE_FLAG_VERSION, NULL, 0,
	    NULL, 0));
	/* Not answered while the first is connected... */
	ck_assert_int_eq(fe_recv(&second, &m, 300), -1);
	/* ...and the first does not notice anything. */
	IT_SERVE(&first, 4096, &vd);
	IT_OK(fe_get_u64(&first, FE_GET_FEATURES, &f));
	IT_SERVE(&first, 64, &vd);
	ck_assert_int_eq(fe_recv(&second, &m, 100), -1);

	fe_close(&first);
	IT_OK(fe_recv(&second, &m, 3000));
	ck_assert_uint_eq(m.hdr.request, FE_GET_FEATURES);
	ck_assert_uint_eq(m.p.u64, f);
	/* The waiting front-end goes on with the whole start sequence. */
	IT_OK(fe_setup(&second, NULL));
	IT_SERVE(&second, 64, &vd);
	IT_END(&vd, &second);
}
END_TEST

/*
 * The front-end vanishes with a full ring in flight; a new one connects,
 * negotiates everything from scratch and is served.  The old guest
 * memory is not written any more once the daemon saw the hang-up.
 */
START_TEST(disconnect_mid_run_then_reconnect)
{
	enum { BUFS = 256, LEN = 4096 };
	uint8_t *snap;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe old, fresh;
	uint64_t area;
	unsigned k, round;

	IT_START(&vd, 1, NULL);
	for (round = 0; round < 3; round++) {
		fe_cfg_init(&cfg);
		cfg.qsize = BUFS;
		cfg.event_idx = round == 1;
		IT_OPEN(&old, &vd, 0, &cfg);
		area = fe_alloc(&old, (uint64_t)BUFS * LEN, 4096);
		for (k = 0; k < BUFS; k++)
			ck_assert(fe_post1(&old, area + (uint64_t)k * LEN,
			    LEN) >= 0);
		fe_kick(&old);
		/* Hang up while the daemon works through the ring. */
		fe_disconnect(&old);

		fe_cfg_init(&cfg);
		IT_OPEN(&fresh, &vd, 0, &cfg);
		IT_SERVE(&fresh, 64, &vd);
		IT_SERVE(&fresh, 4096, &vd);

		/* The daemon let go of the old memory: nothing changes. */
		snap = malloc((size_t)BUFS * LEN);
		ck_assert_ptr_nonnull(snap);
		IT_OK(fe_read_mem(&old, area, snap, (size_t)BUFS * LEN));
		fe_sleep_ms(50);
		ck_assert(memcmp(snap, fe_host(&old, area),
		    (size_t)BUFS * LEN) == 0);
		free(snap);
		fe_close(&old);
		fe_close(&fresh);
	}
	ck_assert(vd_alive(&vd));
	IT_STOP(&vd);
	vd_cleanup(&vd);
}
END_TEST

/* Also the handshake itself can be cut at any point. */
START_TEST(disconnect_during_handshake_then_reconnect)
{
	static const uint32_t stop_after[] = { FE_GET_FEATURES,
	    FE_SET_OWNER, FE_SET_MEM_TABLE, FE_SET_VRING_ADDR };
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	unsigned i;

	IT_START(&vd, 1, NULL);
	for (i = 0; i < sizeof(stop_after) / sizeof(stop_after[0]); i++) {
		struct fe_mem_table t;
		uint64_t v;
		char path[256];

		fe_init(&fe);
		fe_cfg_init(&cfg);
		IT_OK(fe_connect(&fe, vd_sock(&vd, 0, path, sizeof(path)),
		    3000));
		IT_OK(fe_mem_create(&fe, &cfg));
		IT_OK(fe_get_u64(&fe, FE_GET_FEATURES, &v));
		if (stop_after[i] != FE_GET_FEATURES) {
			IT_OK(fe_request(&fe, FE_SET_OWNER, NULL, 0, NULL, 0,
			    false));
		}
		if (stop_after[i] == FE_SET_MEM_TABLE ||
		    stop_after[i] == FE_SET_VRING_ADDR) {
			memset(&t, 0, sizeof(t));
			t.nregions = 1;
			t.regions[0].gpa = fe.reg[0].gpa;
			t.regions[0].size = fe.reg[0].size;
			t.regions[0].uva = fe.reg[0].uva;
			IT_OK(fe_request(&fe, FE_SET_MEM_TABLE, &t, 40,
			    &fe.reg[0].fd, 1, false));
		}
		if (stop_after[i] == FE_SET_VRING_ADDR) {
			IT_OK(fe_set_state(&fe, FE_SET_VRING_NUM, 0, 256,
			    false));
			IT_OK(fe_sync(&fe));
		}
		fe_close(&fe);
	}
	fe_cfg_init(&cfg);
	IT_OPEN(&fe, &vd, 0, &cfg);
	IT_SERVE(&fe, 64, &vd);
	IT_END(&vd, &fe);
}
END_TEST

static bool
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/*
 * SIGTERM with a guest connected: exit 0 within a second, socket files
 * gone, and the statistics of every guest on the way out (SIGUSR1 asks
 * for them without exiting).
 */
START_TEST(sigterm_exits_cleanly_with_stats)
{
	struct vd vd;
	struct fe fe;
	char path[256], line[160];
	int i;

	IT_START(&vd, 2, NULL);
	IT_OPEN(&fe, &vd, 0, NULL);
	for (i = 0; i < 3; i++)
		IT_SERVE(&fe, 100, &vd);
	IT_SERVE(&fe, 4096, &vd);
	/* And one left waiting in the ring, to make exiting harder. */
	fe_set_state(&fe, FE_SET_VRING_ENABLE, 0, 0, true);
	ck_assert(fe_post1(&fe, fe_alloc(&fe, 64, 64), 64) >= 0);
	fe_kick(&fe);

	ck_assert_int_eq(kill(vd.pid, SIGUSR1), 0);
	ck_assert_msg(vd_log_wait(&vd, "stats guest 1:", 1, 2000),
	    "no stats on SIGUSR1%s", vd_log_text(&vd));
	ck_assert(vd_alive(&vd));

	ck_assert(exists(vd_sock(&vd, 0, path, sizeof(path))));
	ck_assert_int_eq(vd_stop(&vd, 1000), 0);
	ck_assert_msg(vd.stop_ms < 1000, "took %lld ms",
	    (long long)vd.stop_ms);
	ck_assert(!exists(vd_sock(&vd, 0, path, sizeof(path))));
	ck_assert(!exists(vd_sock(&vd, 1, path, sizeof(path))));
	snprintf(line, sizeof(line), "stats guest 0: bytes %u requests %u ",
	    3 * 100 + 4096, 4);
	ck_assert_msg(vd_log_count(&vd, line) == 2, "no \"%s\" twice%s", line,
	    vd_log_text(&vd));
	ck_assert_int_eq(vd_log_count(&vd, "stats guest 1: bytes 0 requests 0"),
	    2);
	ck_assert_int_eq(vd_log_count(&vd, "connects 1 errors 0"), 2);
	IT_OK(vd_stop_clean(&vd));
	fe_close(&fe);
	vd_cleanup(&vd);
}
END_TEST

/* A socket file left behind by an earlier run is replaced. */
START_TEST(stale_socket_file_replaced)
{
	struct vd_opts o;
	struct vd vd;
	struct fe fe;
	char path[256];
	int stale;

	IT_OK(vd_init(&vd));
	/* Bound, then closed: the file stays, nobody listens. */
	stale = fe_listen_unix(vd_sock(&vd, 0, path, sizeof(path)));
	ck_assert_int_ge(stale, 0);
	close(stale);
	ck_assert(exists(path));
	vd_opts_init(&o);
	o.nsock = 1;
	IT_OK(vd_spawn(&vd, &o));
	IT_OPEN(&fe, &vd, 0, NULL);
	IT_SERVE(&fe, 64, &vd);
	IT_END(&vd, &fe);
}
END_TEST

/* Anything else at the socket path is not the daemon's to remove. */
START_TEST(non_socket_at_socket_path_refused)
{
	struct vd_opts o;
	struct vd vd;
	char path[256];
	int fd;

	IT_OK(vd_init(&vd));
	fd = open(vd_sock(&vd, 0, path, sizeof(path)), O_WRONLY | O_CREAT |
	    O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "keep me", 7), 7);
	close(fd);
	vd_opts_init(&o);
	o.nsock = 1;
	o.no_wait = true;
	IT_OK(vd_spawn(&vd, &o));
	ck_assert_int_eq(vd_wait_exit(&vd, 5000), 1);
	ck_assert_int_ge(vd_log_count(&vd, "not a socket"), 1);
	ck_assert(exists(path));
	vd_cleanup(&vd);
}
END_TEST

/* QEMU's way: --fd names a connected socket; the daemon ends with it. */
START_TEST(fd_connected_socketpair)
{
	struct vd vd;
	struct fe fe;

	IT_OK(vd_start_connected(&vd, &fe));
	IT_SERVE(&fe, 64, &vd);
	IT_SERVE(&fe, 4096, &vd);
	/* One connection, one life: hanging up ends the daemon, cleanly. */
	IT_END_CONNECTED(&vd, &fe);
}
END_TEST

/* --fd may also be a listening socket: front-ends come and go on it. */
START_TEST(fd_listening_socket)
{
	struct vd_opts o;
	struct vd vd;
	struct fe fe;
	char arg[32], path[256];
	int lfd, i;

	IT_OK(vd_init(&vd));
	vd_path(&vd, "listen.sock", path, sizeof(path));
	lfd = fe_listen_unix(path);
	ck_assert_int_ge(lfd, 0);
	vd_opts_init(&o);
	snprintf(arg, sizeof(arg), "--fd=%d", lfd);
	o.args[0] = arg;
	o.keep_fd = lfd;
	IT_OK(vd_spawn(&vd, &o));
	close(lfd);

	for (i = 0; i < 2; i++) {
		ck_assert_msg(fe_open(&fe, path, NULL) == 0, "%s%s",
		    fe_errstr(), vd_log_text(&vd));
		IT_SERVE(&fe, 64, &vd);
		fe_close(&fe);
	}
	IT_STOP(&vd);
	vd_cleanup(&vd);
}
END_TEST

START_TEST(fd_not_a_socket_refused)
{
	struct vd_opts o;
	struct vd vd;
	char arg[32];
	int p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	vd_opts_init(&o);
	snprintf(arg, sizeof(arg), "--fd=%d", p[0]);
	o.args[0] = arg;
	o.keep_fd = p[0];
	o.no_wait = true;
	IT_OK(vd_init(&vd));
	IT_OK(vd_spawn(&vd, &o));
	ck_assert_int_eq(vd_wait_exit(&vd, 5000), 1);
	ck_assert_int_ge(vd_log_count(&vd, "not a stream socket"), 1);
	close(p[0]);
	close(p[1]);
	vd_cleanup(&vd);
}
END_TEST

/*
 * A listening socket in vd's directory, made the way systemd makes one,
 * and o set up to hand it to the daemon as fd 3 (LISTEN_FDS=1).
 */
static int
activated_socket(struct vd *vd, struct vd_opts *o, char *path, size_t size)
{
	int lfd;

	IT_OK(vd_init(vd));
	vd_path(vd, "activated.sock", path, size);
	lfd = fe_listen_unix(path);
	ck_assert_int_ge(lfd, 0);
	vd_opts_init(o);
	o->systemd_fd = lfd;
	return lfd;
}

/* systemd: LISTEN_FDS=1, LISTEN_PID=<daemon>, the socket at fd 3. */
START_TEST(socket_activation_listen_fds)
{
	struct vd_opts o;
	struct vd vd;
	struct fe fe;
	char path[256];
	int lfd;

	lfd = activated_socket(&vd, &o, path, sizeof(path));
	IT_OK(vd_spawn(&vd, &o));
	close(lfd);
	ck_assert_int_ge(vd_log_count(&vd, "systemd fd 3"), 1);

	ck_assert_msg(fe_open(&fe, path, NULL) == 0, "%s%s", fe_errstr(),
	    vd_log_text(&vd));
	IT_SERVE(&fe, 64, &vd);
	IT_SERVE(&fe, 4096, &vd);
	fe_close(&fe);
	IT_STOP(&vd);
	/* Not ours to remove: systemd made it. */
	ck_assert(exists(path));
	vd_cleanup(&vd);
}
END_TEST

/* LISTEN_PID names another process: the fds are not for the daemon. */
START_TEST(socket_activation_other_pid_ignored)
{
	struct vd_opts o;
	struct vd vd;
	char path[256];
	int lfd;

	lfd = activated_socket(&vd, &o, path, sizeof(path));
	o.systemd_wrong_pid = true;
	o.no_wait = true;
	IT_OK(vd_spawn(&vd, &o));
	close(lfd);
	ck_assert_int_eq(vd_wait_exit(&vd, 5000), 1);
	ck_assert_int_ge(vd_log_count(&vd, "no socket"), 1);
	vd_cleanup(&vd);
}
END_TEST

SUITE(it_lifecycle, IT_TIMEOUT, NULL, NULL,
    "sockets", TESTS(three_sockets_served_concurrently,
	busy_socket_second_front_end_waits,
	disconnect_mid_run_then_reconnect,
	disconnect_during_handshake_then_reconnect,
	stale_socket_file_replaced, non_socket_at_socket_path_refused),
    "signals", TESTS(sigterm_exits_cleanly_with_stats),
    "handed_sockets", TESTS(fd_connected_socketpair,
	fd_listening_socket, fd_not_a_socket_refused,
	socket_activation_listen_fds,
	socket_activation_other_pid_ignored))
