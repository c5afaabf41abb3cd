/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: live upgrade (SIGUSR2, upgrade.h).  A front-end keeps
 * reading and talking to the daemon while it execs itself again and
 * again: the connection never drops, no control message is lost or
 * answered twice, the ring indexes go on, the PID stays, and no fd leaks.
 * And the other side: a state blob that is not sound is refused with a
 * clear error.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <unistd.h>

#include "it.h"

#define UPGRADES	10
/*
 * make check-valgrind: the daemon runs as valgrind's client, and the image
 * it execs is valgrind's business (its descriptors, its log): the tests
 * that upgrade are left to the other runs.
 */
#define EXECS_ITSELF	"the daemon execs itself, outside valgrind's view"

/* SIGUSR2, and the daemon logs line (once) within ms. */
static void
upgraded(struct vd *vd, const char *line, int ms)
{
	ck_assert_int_eq(kill(vd->pid, SIGUSR2), 0);
	ck_assert_msg(vd_log_wait(vd, line, 1, ms), "%s", vd_log_text(vd));
}

/* Serves requests until the daemon logged n restores (or times out). */
static unsigned
serve_through_upgrade(struct fe *fe, struct vd *vd, int n)
{
	int64_t end = fe_now_ms() + 20000;
	unsigned served = 0;

	while (vd_log_count(vd, "guest(s) restored") < n &&
	    fe_now_ms() < end) {
		ck_assert_msg(fe_serve_one(fe, 64, 10000) == 0, "serving "
		    "during upgrade %d: %s%s", n, fe_errstr(),
		    vd_log_text(vd));
		served++;
	}
	ck_assert_msg(vd_log_count(vd, "guest(s) restored") >= n,
	    "upgrade %d did not finish: %s", n, vd_log_text(vd));
	return served;
}

START_TEST(upgrade_ten_times_while_reading)
{
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	unsigned served = 0, i, j;
	int fds0, fds;
	pid_t pid;

	IT_SKIP_UNDER_VALGRIND(EXECS_ITSELF);

	fe_cfg_init(&cfg);
	cfg.event_idx = true;
	IT_ONE_GUEST(&vd, &fe, &cfg, "--max-bytes", "100000000", NULL);
	pid = vd.pid;
	IT_SERVE(&fe, 64, &vd);
	served++;
	fds0 = vd_count_fds(&vd);
	for (i = 1; i <= UPGRADES; i++) {
		ck_assert_int_eq(kill(vd.pid, SIGUSR2), 0);
		served += serve_through_upgrade(&fe, &vd, (int)i);
		/*
		 * The control channel: every message answered once, in
		 * order (a lost one times out, a repeated one would answer
		 * the next).
		 */
		for (j = 0; j < 4; j++)
			IT_OK(fe_sync(&fe));
		IT_SERVE(&fe, 4096, &vd);
		served++;
		ck_assert_int_eq(vd.pid, pid);
		ck_assert(vd_alive(&vd));
	}
	/* The ring went on: one used entry per request, none twice. */
	ck_assert_uint_eq(fe_used_idx(&fe), (uint16_t)served);
	ck_assert_uint_eq(fe_used_pending(&fe), 0);
	fds = vd_count_fds(&vd);
	ck_assert_msg(fds == fds0, "daemon has %d fds after %d upgrades, had "
	    "%d", fds, UPGRADES, fds0);
	ck_assert_int_eq(vd_log_count(&vd, "front-end disconnected"), 0);
	IT_END(&vd, &fe);
}
END_TEST

/* Messages sent while the daemon is in the middle of its exec. */
START_TEST(upgrade_with_messages_in_flight)
{
	struct vd vd;
	struct fe fe;
	unsigned i;

	IT_SKIP_UNDER_VALGRIND(EXECS_ITSELF);

	/* The default settings negotiate REPLY_ACK. */
	IT_ONE_GUEST(&vd, &fe, NULL, NULL);
	for (i = 1; i <= 3; i++) {
		int64_t end = fe_now_ms() + 20000;
		unsigned n = 0;

		ck_assert_int_eq(kill(vd.pid, SIGUSR2), 0);
		while (vd_log_count(&vd, "guest(s) restored") < (int)i &&
		    fe_now_ms() < end) {
			IT_OK(fe_set_state(&fe, FE_SET_VRING_ENABLE, 0, 1,
			    true));
			n++;
		}
		ck_assert_msg(n > 0 && vd_log_count(&vd, "guest(s) restored")
		    >= (int)i, "%s", vd_log_text(&vd));
	}
	IT_SERVE(&fe, 64, &vd);
	IT_END(&vd, &fe);
}
END_TEST

/* Reads len bytes through one request into out. */
static void
read_into(struct fe *fe, struct vd *vd, uint8_t *out, uint32_t len)
{
	struct fe_used_elem u;
	uint64_t gpa = fe_alloc(fe, len, 64);

	ck_assert_int_ge(fe_post1(fe, gpa, len), 0);
	fe_kick(fe);
	ck_assert_msg(fe_wait_used(fe, 1, 5000) == 1, "%s", vd_log_text(vd));
	ck_assert(fe_get_used(fe, &u));
	ck_assert_uint_eq(u.len, len);
	IT_OK(fe_read_mem(fe, gpa, out, len));
}

/*
 * The source is handed over, not opened again: a file source goes on
 * from where it was, so the guest gets the file's bytes in order across
 * the upgrade (opened again, it would start over).
 */
START_TEST(upgrade_hands_over_the_source)
{
	enum { SIZE = 65536, LEN = 4096, BEFORE = 3, AFTER = 3 };
	static uint8_t file[SIZE], got[(BEFORE + AFTER) * LEN];
	struct vd vd;
	struct fe fe;
	char path[256];
	unsigned i;
	FILE *f;

	IT_SKIP_UNDER_VALGRIND(EXECS_ITSELF);

	fe_fill_prng(file, SIZE, 0x5eed);
	IT_OK(vd_init(&vd));
	vd_path(&vd, "entropy.bin", path, sizeof(path));
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(file, 1, SIZE, f), SIZE);
	ck_assert_int_eq(fclose(f), 0);
	IT_OK(vd_spawn_source(&vd, 1, path, NULL));
	IT_OPEN(&fe, &vd, 0, NULL);
	for (i = 0; i < BEFORE; i++)
		read_into(&fe, &vd, got + i * LEN, LEN);
	upgraded(&vd, "guest(s) restored", 20000);
	for (; i < BEFORE + AFTER; i++)
		read_into(&fe, &vd, got + i * LEN, LEN);
	ck_assert_msg(memcmp(got, file, sizeof(got)) == 0, "the bytes after "
	    "the upgrade are not the file's next ones");
	ck_assert_int_eq(vd_log_count(&vd, "opening the source"), 0);
	IT_END(&vd, &fe);
}
END_TEST

/*
 * The rate limit's position is handed over: a guest that used its share
 * of the period before the upgrade does not get a new one after it.
 */
START_TEST(upgrade_keeps_rate_limit_position)
{
	struct vd vd;
	struct fe fe;
	int64_t t0, waited;
	int head;

	IT_SKIP_UNDER_VALGRIND(EXECS_ITSELF);

	IT_ONE_GUEST(&vd, &fe, NULL, "--max-bytes", "4096", "--period",
	    "4000", NULL);
	IT_SERVE(&fe, 4096, &vd);
	t0 = fe_now_ms();
	upgraded(&vd, "guest(s) restored", 20000);
	head = fe_post1(&fe, fe_alloc(&fe, 64, 64), 64);
	ck_assert_int_ge(head, 0);
	fe_kick(&fe);
	/* Served only in the next period: none of it is left in this one. */
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 9000), 1);
	waited = fe_now_ms() - t0;
	ck_assert_msg(vd_log_count(&vd, "periods start afresh") == 0, "%s",
	    vd_log_text(&vd));
	ck_assert_msg(waited >= 300, "served %lld ms after the upgrade, in "
	    "the period whose budget was used", (long long)waited);
	IT_END(&vd, &fe);
}
END_TEST

/*
 * QEMU's way, --fd naming the connection itself: the upgrade keeps it, and
 * the daemon still ends with it.
 */
START_TEST(upgrade_fd_connection)
{
	struct vd vd;
	struct fe fe;

	IT_SKIP_UNDER_VALGRIND(EXECS_ITSELF);

	IT_OK(vd_start_connected(&vd, &fe));
	IT_SERVE(&fe, 64, &vd);
	upgraded(&vd, "1 guest(s) restored", 20000);
	IT_SERVE(&fe, 4096, &vd);
	IT_END_CONNECTED(&vd, &fe);
}
END_TEST

/* A second guest that is not connected yet can still connect after. */
START_TEST(upgrade_keeps_listening_sockets)
{
	struct vd vd;
	struct fe a, b;

	IT_SKIP_UNDER_VALGRIND(EXECS_ITSELF);

	IT_START(&vd, 2, NULL);
	IT_OPEN(&a, &vd, 0, NULL);
	upgraded(&vd, "guest(s) restored", 20000);
	IT_OPEN(&b, &vd, 1, NULL);
	IT_SERVE(&a, 64, &vd);
	IT_SERVE(&b, 64, &vd);
	fe_close(&b);
	IT_END(&vd, &a);
}
END_TEST

/* Copies file from to to (mode 0755), replacing to by a rename. */
static void
install_binary(const char *from, const char *to)
{
	char tmp[300], buf[65536];
	int in, out;
	ssize_t n;

	snprintf(tmp, sizeof(tmp), "%s.new", to);
	in = open(from, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(in >= 0, "%s: %s", from, strerror(errno));
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	ck_assert_int_ge(out, 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
	ck_assert_int_eq(n, 0);
	close(in);
	ck_assert_int_eq(close(out), 0);
	/* A new file, as a package upgrade makes it: the old one runs on. */
	ck_assert_int_eq(rename(tmp, to), 0);
}

/*
 * Starts the daemon from a copy of $VRNG_BIN in its directory (left in
 * copy), which the test may then replace or remove, and connects fe.
 */
static void
start_from_copy(struct vd *vd, struct fe *fe, char *copy, size_t len)
{
	const char *bin = getenv("VRNG_BIN");
	char saved[256];
	struct vd_opts o;

	if (bin == NULL)
		bin = "./vhost-device-rng";
	ck_assert_int_eq(vd_init(vd), 0);
	vd_path(vd, "vhost-device-rng", copy, len);
	install_binary(bin, copy);
	snprintf(saved, sizeof(saved), "%s", bin);
	setenv("VRNG_BIN", copy, 1);
	vd_opts_init(&o);
	o.nsock = 1;
	ck_assert_msg(vd_spawn(vd, &o) == 0, "%s", fe_errstr());
	setenv("VRNG_BIN", saved, 1);
	IT_OPEN(fe, vd, 0, NULL);
}

/*
 * The new binary reads another format version: it refuses the state and
 * goes back to the previous binary (kept open by the daemon), which
 * takes the guests back.  Nobody sees a disconnect.
 */
START_TEST(upgrade_refused_goes_back)
{
	const char *other = getenv("VRNG_BIN_OTHER_VERSION");
	char copy[256];
	struct vd vd;
	struct fe fe;

	IT_SKIP_UNDER_VALGRIND(EXECS_ITSELF);

	if (other == NULL)
		other = "./build/vhost-device-rng-v99";
	start_from_copy(&vd, &fe, copy, sizeof(copy));
	IT_SERVE(&fe, 64, &vd);

	install_binary(other, copy);
	upgraded(&vd, "guest(s) restored", 20000);
	ck_assert_int_eq(vd_log_count(&vd, "format version 1; this binary "
	    "reads version 99"), 1);
	ck_assert_int_eq(vd_log_count(&vd, "going back to the previous "
	    "binary"), 1);
	IT_SERVE(&fe, 64, &vd);
	IT_OK(fe_sync(&fe));
	ck_assert_int_eq(vd_log_count(&vd, "front-end disconnected"), 0);
	IT_END(&vd, &fe);
}
END_TEST

/* A path that is no executable: nothing stops, the daemon serves on. */
START_TEST(upgrade_without_binary_serves_on)
{
	char copy[256];
	struct vd vd;
	struct fe fe;

	IT_SKIP_UNDER_VALGRIND(EXECS_ITSELF);

	start_from_copy(&vd, &fe, copy, sizeof(copy));
	ck_assert_int_eq(unlink(copy), 0);
	upgraded(&vd, "abandoned; serving on", 10000);
	ck_assert_int_eq(vd_log_count(&vd, "No such file"), 1);
	IT_SERVE(&fe, 64, &vd);
	IT_END(&vd, &fe);
}
END_TEST

/* A blob in a memfd, passed the way a predecessor passes it. */
static void
start_with_state(struct vd *vd, const void *blob, size_t len)
{
	struct vd_opts o;
	char num[16];
	int fd;

	fd = memfd_create("state", 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, blob, len), (ssize_t)len);
	ck_assert_int_eq(vd_init(vd), 0);
	vd_opts_init(&o);
	o.nsock = 1;
	o.keep_fd = fd;
	o.no_wait = true;
	snprintf(num, sizeof(num), "%d", fd);
	setenv("VRNG_HANDOVER_FD", num, 1);
	ck_assert_int_eq(vd_spawn(vd, &o), 0);
	unsetenv("VRNG_HANDOVER_FD");
	close(fd);
}

/* Each way a blob can be unsound: refused, with the reason logged. */
static const struct bad_state {
	const char	*name;
	const char	*blob;
	size_t		 len;
	const char	*log;
} bad_states[] = {
	{ "state_not_a_blob", "hello", 5, "not a vhost-device-rng state" },
	{ "state_future_version",
	  "VRNGSTAT\x63\0\0\0\1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 32,
	  "format version 99" },
	{ "state_truncated",
	  "VRNGSTAT\1\0\0\0\1\0\0\0\x10\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 32,
	  "truncated" },
	{ "state_bad_checksum",
	  "VRNGSTAT\1\0\0\0\1\0\0\0\4\0\0\0\0\0\0\0\x12\x34\x56\x78\0\0\0\0"
	  "\0\0\0\0", 36, "checksum" },
};

START_TEST(state_refused)
{
	const struct bad_state *t = &bad_states[_i];
	struct vd vd;
	int code;

	start_with_state(&vd, t->blob, t->len);
	code = vd_wait_exit(&vd, 10000);
	ck_assert_msg(code != 0 && code != -1, "exit %d: %s", code,
	    vd_log_text(&vd));
	ck_assert_msg(vd_log_count(&vd, t->log) >= 1, "no \"%s\" in: %s",
	    t->log, vd_log_text(&vd));
	ck_assert_int_ge(vd_log_count(&vd, "connections are lost"), 1);
	vd_cleanup(&vd);
}
END_TEST

Suite *
it_upgrade_suite(void)
{
	Suite *s = suite_create("upgrade");

	ADD_TABLE(add_case(s, "upgrade", 120, NULL, NULL, TESTS(
	    upgrade_ten_times_while_reading, upgrade_with_messages_in_flight,
	    upgrade_keeps_listening_sockets, upgrade_hands_over_the_source,
	    upgrade_fd_connection, upgrade_keeps_rate_limit_position,
	    upgrade_refused_goes_back, upgrade_without_binary_serves_on)),
	    state_refused, bad_states);
	return s;
}
