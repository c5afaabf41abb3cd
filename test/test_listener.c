/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Where front-ends come from: sockets we create in a temporary directory,
 * fds handed over with --fd, systemd socket activation (LISTEN_PID,
 * LISTEN_FDS and fds from 3 on) and the readiness notification.
 *
 * Socket activation with real fds needs fds 3, 4, ... to be ours; the
 * runner (Check) may own those numbers, so those tests dup2 onto them in a
 * forked child, which reports through its exit status.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>

#include "listener.h"
#include "sdnotify.h"
#include "unit.h"


#define SUN_PATH_MAX	sizeof(((struct sockaddr_un *)0)->sun_path)

static char dir[64];
static struct listener ls[16];
static char err[512];

/* stderr capture (fd 2 to a temporary file). */
static struct unit_capture capture = { NULL, -1 };
static char out[4096];

static void
unset_env(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	unsetenv("NOTIFY_SOCKET");
}

static void
capture_start(void)
{
	unit_capture_start(&capture);
}

/* Restores stderr; returns what was logged meanwhile (in out). */
static const char *
capture_end(void)
{
	unit_capture_end(&capture, out, sizeof(out));
	return out;
}

static void
setup(void)
{
	unsigned i;

	strlcpy(dir, "/tmp/vrng-lsn-XXXXXX", sizeof(dir));
	ck_assert_ptr_nonnull(mkdtemp(dir));
	for (i = 0; i < sizeof(ls) / sizeof(ls[0]); i++) {
		memset(&ls[i], 0, sizeof(ls[i]));
		ls[i].fd = -1;
	}
	err[0] = '\0';
	unset_env();
}

static void
teardown(void)
{
	struct dirent *de;
	char p[512];
	DIR *d;

	if (capture.saved >= 0)
		(void)capture_end();
	unset_env();
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(dir);
}

/* --- helpers --------------------------------------------------------- */

static bool
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static bool
is_socket_file(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int
sockopt(int fd, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, opt, &v, &len), 0);
	return v;
}

static bool
cloexec(int fd)
{
	int f = fcntl(fd, F_GETFD);

	return f >= 0 && (f & FD_CLOEXEC);
}

/* connect(2) to a path: 0, or the errno. */
static int
try_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd, e = 0;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		e = errno;
	close(fd);
	return e;
}

/* A socket of type bound at path (listening if asked), or -1. */
static int
bound_socket(const char *path, int type, bool do_listen)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	if ((fd = socket(AF_UNIX, type, 0)) < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    (do_listen && listen(fd, 4) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
}

static void
assert_file(const char *path, const char *text)
{
	char buf[256];
	struct stat st;
	size_t n;
	FILE *f;

	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_msg(S_ISREG(st.st_mode), "%s is no longer a file", path);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	ck_assert_str_eq(buf, text);
}

/* A base of exactly len characters in the temporary directory. */
static void
long_base(char *base, size_t size, size_t len)
{
	size_t n;

	n = (size_t)snprintf(base, size, "%s/", dir);
	ck_assert_uint_lt(n, len);
	ck_assert_uint_lt(len, size);
	memset(base + n, 'b', len - n);
	base[len] = '\0';
}

/* The base path "dir/s" (as -s takes it) and the path of its socket i. */
static void
sock_path(char *base, size_t blen, char *p, size_t plen, unsigned i)
{
	snprintf(base, blen, "%s/s", dir);
	snprintf(p, plen, "%s%u", base, i);
}

static void
set_listen_env(const char *pid, const char *fds)
{
	char me[32];

	if (pid == NULL) {
		snprintf(me, sizeof(me), "%ld", (long)getpid());
		pid = me;
	}
	ck_assert_int_eq(setenv("LISTEN_PID", pid, 1), 0);
	if (fds != NULL)
		ck_assert_int_eq(setenv("LISTEN_FDS", fds, 1), 0);
	ck_assert_int_eq(setenv("LISTEN_FDNAMES", "a:b", 1), 0);
}

static bool
listen_env_unset(void)
{
	return getenv("LISTEN_PID") == NULL && getenv("LISTEN_FDS") == NULL &&
	    getenv("LISTEN_FDNAMES") == NULL;
}

/* --- listeners_create ------------------------------------------------ */

START_TEST(create_sockets)
{
	char base[128], p[160];
	int before = unit_count_fds();
	unsigned i;

	snprintf(base, sizeof(base), "%s/vrng.sock", dir);
	ck_assert_int_eq(listeners_create(ls, 3, base, err, sizeof(err)), 0);
	ck_assert_int_eq(unit_count_fds(), before + 3);
	for (i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%u", base, i);
		ck_assert_msg(is_socket_file(p), "%s is not a socket", p);
		ck_assert_str_eq(ls[i].path, p);
		ck_assert(ls[i].listening);
		ck_assert(ls[i].created);
		ck_assert_int_ge(ls[i].fd, 0);
		ck_assert_int_eq(sockopt(ls[i].fd, SO_ACCEPTCONN), 1);
		ck_assert_int_eq(sockopt(ls[i].fd, SO_TYPE), SOCK_STREAM);
		ck_assert(cloexec(ls[i].fd));
		ck_assert_int_eq(try_connect(p), 0);
	}
	ck_assert(!exists(strcat(strcpy(p, base), "3")));

	listeners_close(ls, 3);
	for (i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%u", base, i);
		ck_assert_msg(!exists(p), "%s left behind", p);
		ck_assert_int_eq(ls[i].fd, -1);
		ck_assert(!ls[i].created);
	}
	ck_assert_int_eq(unit_count_fds(), before);
}
END_TEST

/* A socket file of an earlier run (nobody listening) is replaced. */
START_TEST(stale_socket_replaced)
{
	char base[128], p[160];
	int fd;

	sock_path(base, sizeof(base), p, sizeof(p), 0);
	fd = bound_socket(p, SOCK_STREAM, true);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert(is_socket_file(p));
	ck_assert_int_eq(try_connect(p), ECONNREFUSED);

	ck_assert_msg(listeners_create(ls, 1, base, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert(is_socket_file(p));
	ck_assert_int_eq(try_connect(p), 0);
	listeners_close(ls, 1);
	ck_assert(!exists(p));
}
END_TEST

/* Anything but a socket at the path is refused, named, and left alone. */
START_TEST(regular_file_refused)
{
	char base[128], p[160], p1[160];
	int before = unit_count_fds();

	sock_path(base, sizeof(base), p, sizeof(p), 0);
	snprintf(p1, sizeof(p1), "%s1", base);
	write_file(p, "not yours\n");
	ck_assert_int_eq(listeners_create(ls, 2, base, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, p) != NULL, "message does not name %s: %s",
	    p, err);
	ck_assert_ptr_nonnull(strstr(err, "not a socket"));
	assert_file(p, "not yours\n");
	ck_assert(!exists(p1));
	ck_assert_int_eq(unit_count_fds(), before);
}
END_TEST

START_TEST(directory_refused)
{
	char base[128], p[160];
	struct stat st;

	sock_path(base, sizeof(base), p, sizeof(p), 0);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	ck_assert_int_eq(listeners_create(ls, 1, base, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, p));
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	rmdir(p);
}
END_TEST

/* sun_path holds 107 characters and the NUL: 107 fits, 108 does not. */
START_TEST(path_length_limit)
{
	char base[SUN_PATH_MAX + 8], p[SUN_PATH_MAX + 16];
	int before = unit_count_fds();

	long_base(base, sizeof(base), SUN_PATH_MAX - 1);	/* + "0": 108 */
	ck_assert_int_eq(listeners_create(ls, 1, base, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
	snprintf(p, sizeof(p), "%s0", base);
	ck_assert_msg(strstr(err, p) != NULL, "message does not name the "
	    "path: %s", err);
	ck_assert(!exists(p));
	ck_assert_int_eq(unit_count_fds(), before);

	long_base(base, sizeof(base), SUN_PATH_MAX - 2);	/* + "0": 107 */
	ck_assert_msg(listeners_create(ls, 1, base, err, sizeof(err)) == 0,
	    "%s", err);
	snprintf(p, sizeof(p), "%s0", base);
	ck_assert_uint_eq(strlen(p), SUN_PATH_MAX - 1);
	ck_assert(is_socket_file(p));
	ck_assert_str_eq(ls[0].path, p);
	listeners_close(ls, 1);
	ck_assert(!exists(p));
}
END_TEST

/* Socket 2 of 4 fails: 0 and 1 are closed and unlinked again. */
START_TEST(failure_undoes_earlier)
{
	char base[128], p[160];
	int before = unit_count_fds();
	unsigned i;

	sock_path(base, sizeof(base), p, sizeof(p), 2);
	write_file(p, "in the way\n");
	ck_assert_int_eq(listeners_create(ls, 4, base, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, p));
	for (i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s%u", base, i);
		if (i == 2)
			assert_file(p, "in the way\n");
		else
			ck_assert_msg(!exists(p), "%s left behind", p);
	}
	ck_assert_int_eq(unit_count_fds(), before);
}
END_TEST

/* The name of socket 10 is one character longer than those of 0..9. */
START_TEST(too_long_at_index_ten_undoes_earlier)
{
	char base[SUN_PATH_MAX + 8], p[SUN_PATH_MAX + 16];
	int before = unit_count_fds();
	unsigned i;

	long_base(base, sizeof(base), SUN_PATH_MAX - 2);
	ck_assert_int_eq(listeners_create(ls, 11, base, err, sizeof(err)), -1);
	snprintf(p, sizeof(p), "%s10", base);
	ck_assert_msg(strstr(err, p) != NULL && strstr(err, "too long"),
	    "%s", err);
	for (i = 0; i <= 10; i++) {
		snprintf(p, sizeof(p), "%s%u", base, i);
		ck_assert_msg(!exists(p), "%s left behind", p);
	}
	ck_assert_int_eq(unit_count_fds(), before);
}
END_TEST

/* Only what listeners_create made is unlinked; everything is closed. */
START_TEST(close_unlinks_only_created)
{
	char base[128], p[160], keep[160];
	int sv[2], before;

	sock_path(base, sizeof(base), p, sizeof(p), 0);
	snprintf(keep, sizeof(keep), "%s/keep", dir);
	write_file(keep, "keep\n");
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	before = unit_count_fds();

	ck_assert_int_eq(listeners_create(ls, 1, base, err, sizeof(err)), 0);
	ck_assert_int_eq(listener_from_fd(&ls[1], sv[0], err, sizeof(err)),
	    0);
	ck_assert(!ls[1].created);
	/* Were the flag ignored, this is what would go. */
	strlcpy(ls[1].path, keep, sizeof(ls[1].path));
	listeners_close(ls, 2);
	ck_assert(!exists(p));
	assert_file(keep, "keep\n");
	ck_assert_int_eq(ls[0].fd, -1);
	ck_assert_int_eq(ls[1].fd, -1);
	ck_assert_int_eq(unit_count_fds(), before - 1);	/* sv[0] */
}
END_TEST

/* Closing twice, or a listener whose file is already gone, is harmless. */
START_TEST(close_twice_and_gone)
{
	char base[128], p[160];
	int before = unit_count_fds();

	sock_path(base, sizeof(base), p, sizeof(p), 0);
	ck_assert_int_eq(listeners_create(ls, 1, base, err, sizeof(err)), 0);
	ck_assert_int_eq(unlink(p), 0);
	capture_start();
	listeners_close(ls, 1);
	listeners_close(ls, 1);
	ck_assert_str_eq(capture_end(), "");
	ck_assert_int_eq(unit_count_fds(), before);
}
END_TEST

/* --- listener_from_fd ------------------------------------------------ */

START_TEST(from_fd_listening)
{
	char p[160], name[32];
	int fd;

	snprintf(p, sizeof(p), "%s/fdsock", dir);
	fd = bound_socket(p, SOCK_STREAM, true);	/* no CLOEXEC */
	ck_assert_int_ge(fd, 0);
	ck_assert(!cloexec(fd));
	ck_assert_msg(listener_from_fd(&ls[0], fd, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_int_eq(ls[0].fd, fd);
	ck_assert(ls[0].listening);
	ck_assert(!ls[0].created);
	ck_assert(cloexec(fd));
	snprintf(name, sizeof(name), "fd %d", fd);
	ck_assert_str_eq(ls[0].path, name);
	listeners_close(ls, 1);
	ck_assert(unit_fd_closed(fd));
	ck_assert(exists(p));		/* not ours to remove */
}
END_TEST

START_TEST(from_fd_connected)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_msg(listener_from_fd(&ls[0], sv[0], err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_int_eq(ls[0].fd, sv[0]);
	ck_assert(!ls[0].listening);
	ck_assert(!ls[0].created);
	ck_assert(cloexec(sv[0]));
	listeners_close(ls, 1);
	close(sv[1]);
}
END_TEST

static void
assert_from_fd_refused(int fd, const char *what)
{
	char name[32];

	snprintf(name, sizeof(name), "--fd %d", fd);
	err[0] = '\0';
	ck_assert_msg(listener_from_fd(&ls[0], fd, err, sizeof(err)) == -1,
	    "%s accepted", what);
	ck_assert_msg(strstr(err, name) != NULL, "%s: message %s", what, err);
}

START_TEST(from_fd_refused)
{
	char path[] = "/tmp/vrng-lsn-file-XXXXXX";
	int p[2], fd;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	assert_from_fd_refused(p[0], "a pipe");
	assert_from_fd_refused(p[1], "a pipe");
	close(p[0]);
	close(p[1]);

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	assert_from_fd_refused(fd, "a UDP socket");
	close(fd);

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	assert_from_fd_refused(fd, "a Unix datagram socket");
	close(fd);

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	assert_from_fd_refused(fd, "a Unix seqpacket socket");
	close(fd);

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	assert_from_fd_refused(fd, "a regular file");
	close(fd);

	/* Not open at all. */
	assert_from_fd_refused(fd, "a closed fd");
}
END_TEST

/* --- listeners_from_systemd: environment ----------------------------- */

START_TEST(systemd_not_for_us)
{
	char other[32];

	snprintf(other, sizeof(other), "%ld", (long)getpid() + 1);
	set_listen_env(other, "2");
	ck_assert_int_eq(listeners_from_systemd(ls, 4, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(ls[0].fd, -1);

	/* Unset, or only half set: nothing for us either. */
	unset_env();
	ck_assert_int_eq(listeners_from_systemd(ls, 4, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(setenv("LISTEN_FDS", "2", 1), 0);
	ck_assert_int_eq(listeners_from_systemd(ls, 4, NULL, err, sizeof(err)), 0);
	unset_env();
	set_listen_env(NULL, NULL);
	ck_assert_int_eq(listeners_from_systemd(ls, 4, NULL, err, sizeof(err)), 0);
	/* A LISTEN_PID that is no number is no pid of ours. */
	set_listen_env("self", "2");
	ck_assert_int_eq(listeners_from_systemd(ls, 4, NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(ls[0].fd, -1);
}
END_TEST

START_TEST(systemd_garbage_fds)
{
	static const char *bad[] = { "two", "2x", "-1", "0x2",
	    "99999999999999999999999" };
	char want[64];
	unsigned i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		set_listen_env(NULL, bad[i]);
		err[0] = '\0';
		ck_assert_msg(listeners_from_systemd(ls, 4, NULL, err, sizeof(err)) ==
		    -1, "LISTEN_FDS=%s accepted", bad[i]);
		snprintf(want, sizeof(want), "LISTEN_FDS=%s", bad[i]);
		ck_assert_msg(strstr(err, want) != NULL, "%s", err);
		ck_assert_int_eq(ls[0].fd, -1);
	}
}
END_TEST

START_TEST(systemd_zero)
{
	set_listen_env(NULL, "0");
	ck_assert_int_eq(listeners_from_systemd(ls, 4, NULL, err, sizeof(err)), 0);
	ck_assert_msg(listen_env_unset(), "LISTEN_* left in the environment");
	ck_assert_int_eq(ls[0].fd, -1);
}
END_TEST

/* More than max: refused before any fd is looked at. */
START_TEST(systemd_too_many)
{
	set_listen_env(NULL, "5");
	ck_assert_int_eq(listeners_from_systemd(ls, 4, NULL, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "5") != NULL && strstr(err, "4") != NULL,
	    "%s", err);
	ck_assert(listen_env_unset());
}
END_TEST

/* --- listeners_from_systemd: real fds, in a child -------------------- */

/* Moves fd onto target (which becomes inheritable, as systemd passes it). */
static int
place_at(int fd, int target)
{
	int high;

	if (fd < 0)
		return -1;
	/* Out of the way first: fd may itself be 3 or 4. */
	high = fcntl(fd, F_DUPFD_CLOEXEC, 100);
	close(fd);
	if (high < 0 || dup2(high, target) != target)
		return -1;
	close(high);
	return 0;
}

static int
listening_at(const char *name, int target)
{
	char p[160];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return place_at(bound_socket(p, SOCK_STREAM, true), target);
}

/* Runs fn in a child; returns its exit status (0: every check held). */
static int
in_child(int (*fn)(void))
{
	pid_t pid;
	int status;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(fn());
	while (waitpid(pid, &status, 0) < 0)
		ck_assert_int_eq(errno, EINTR);
	ck_assert_msg(WIFEXITED(status), "child died (status 0x%x)", status);
	return WEXITSTATUS(status);
}

static int
child_two_listening(void)
{
	int n;

	if (listening_at("sd0", 3) < 0 || listening_at("sd1", 4) < 0)
		return 2;
	set_listen_env(NULL, "2");
	n = listeners_from_systemd(ls, 4, NULL, err, sizeof(err));
	if (n != 2) {
		fprintf(stderr, "listeners_from_systemd: %d (%s)\n", n, err);
		return 10;
	}
	if (ls[0].fd != 3 || ls[1].fd != 4)
		return 11;
	if (!ls[0].listening || !ls[1].listening)
		return 12;
	if (ls[0].created || ls[1].created)
		return 13;
	if (!cloexec(3) || !cloexec(4))
		return 14;
	if (!listen_env_unset())
		return 15;
	if (strcmp(ls[0].path, "systemd fd 3") != 0 ||
	    strcmp(ls[1].path, "systemd fd 4") != 0)
		return 16;
	if (ls[2].fd != -1)
		return 17;
	return 0;
}

START_TEST(systemd_two_listening)
{
	int code = in_child(child_two_listening);

	ck_assert_msg(code == 0, "child check %d failed (10 count, 11 fds, "
	    "12 listening, 13 created, 14 cloexec, 15 env, 16 names)", code);
}
END_TEST

static int
expect_refused(const char *fds, const char *naming)
{
	int n;

	set_listen_env(NULL, fds);
	n = listeners_from_systemd(ls, 4, NULL, err, sizeof(err));
	if (n != -1) {
		fprintf(stderr, "listeners_from_systemd: %d\n", n);
		return 10;
	}
	if (strstr(err, naming) == NULL) {
		fprintf(stderr, "message: %s\n", err);
		return 11;
	}
	return 0;
}

static int
child_connected_at_3(void)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 ||
	    place_at(sv[0], 3) < 0)
		return 2;
	return expect_refused("1", "fd 3");
}

static int
child_pipe_at_4(void)
{
	int p[2];

	if (listening_at("sd-pipe", 3) < 0 || pipe(p) < 0 ||
	    place_at(p[0], 4) < 0)
		return 2;
	return expect_refused("2", "fd 4");
}

static int
child_udp_at_3(void)
{
	if (place_at(socket(AF_INET, SOCK_DGRAM, 0), 3) < 0)
		return 2;
	return expect_refused("1", "fd 3");
}

static int
child_closed_at_4(void)
{
	if (listening_at("sd-closed", 3) < 0)
		return 2;
	close(4);
	return expect_refused("2", "fd 4");
}

START_TEST(systemd_bad_fds_refused)
{
	int code;

	code = in_child(child_connected_at_3);
	ck_assert_msg(code == 0, "connected socket at fd 3: check %d", code);
	code = in_child(child_pipe_at_4);
	ck_assert_msg(code == 0, "pipe at fd 4: check %d", code);
	code = in_child(child_udp_at_3);
	ck_assert_msg(code == 0, "UDP socket at fd 3: check %d", code);
	code = in_child(child_closed_at_4);
	ck_assert_msg(code == 0, "nothing at fd 4: check %d", code);
}
END_TEST

/* --- notify_systemd -------------------------------------------------- */

static void
assert_received(int fd, const char *want)
{
	char buf[64];
	ssize_t n;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	ck_assert_msg(poll(&p, 1, 1000) == 1, "nothing arrived");
	n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	ck_assert_int_eq(n, (ssize_t)strlen(want));
	ck_assert_mem_eq(buf, want, strlen(want));
}

START_TEST(notify_path)
{
	char p[160];
	int fd, before;

	snprintf(p, sizeof(p), "%s/notify", dir);
	fd = bound_socket(p, SOCK_DGRAM | SOCK_CLOEXEC, false);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", p, 1), 0);
	before = unit_count_fds();
	notify_systemd("READY=1");
	assert_received(fd, "READY=1");
	notify_systemd("STOPPING=1");
	assert_received(fd, "STOPPING=1");
	ck_assert_int_eq(unit_count_fds(), before);
	close(fd);
}
END_TEST

START_TEST(notify_abstract)
{
	struct sockaddr_un sun;
	char name[80], env[96];
	socklen_t len;
	int fd;

	snprintf(name, sizeof(name), "vrng-unit-notify-%ld-%llu",
	    (long)getpid(), (unsigned long long)time(NULL));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path + 1, name, strlen(name));
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	    strlen(name));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, len), 0);
	snprintf(env, sizeof(env), "@%s", name);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", env, 1), 0);
	notify_systemd("READY=1");
	assert_received(fd, "READY=1");
	close(fd);
}
END_TEST

START_TEST(notify_quiet_when_unset)
{
	int before = unit_count_fds();

	capture_start();
	notify_systemd("READY=1");
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", "", 1), 0);
	notify_systemd("READY=1");
	ck_assert_str_eq(capture_end(), "");
	ck_assert_int_eq(unit_count_fds(), before);
}
END_TEST

/* Unusable values are warned about, not fatal. */
START_TEST(notify_bad_socket_warns)
{
	char p[160];
	const char *log;

	ck_assert_int_eq(setenv("NOTIFY_SOCKET", "relative/notify", 1), 0);
	capture_start();
	notify_systemd("READY=1");
	log = capture_end();
	ck_assert_msg(strstr(log, "relative/notify") != NULL, "%s", log);

	snprintf(p, sizeof(p), "%s/nobody-listens", dir);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", p, 1), 0);
	capture_start();
	notify_systemd("READY=1");
	log = capture_end();
	ck_assert_msg(strstr(log, p) != NULL, "%s", log);
}
END_TEST

/* --- live sockets are not ours (issue 8) ---------------------------- */

static ino_t
inode_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(lstat(path, &st), 0);
	return st.st_ino;
}

/* Someone listens at the path: refused, named, and left alone. */
START_TEST(live_socket_refused)
{
	char base[128], p[160];
	ino_t ino;
	int fd, conn;

	sock_path(base, sizeof(base), p, sizeof(p), 0);
	fd = bound_socket(p, SOCK_STREAM, true);
	ck_assert_int_ge(fd, 0);
	ino = inode_of(p);
	ck_assert_int_eq(listeners_create(ls, 1, base, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, p) != NULL && strstr(err, "listening") !=
	    NULL, "%s", err);
	ck_assert_int_eq(ls[0].fd, -1);
	ck_assert_uint_eq(inode_of(p), ino);
	/* The probe's connection is all the owner ever sees of us. */
	ck_assert_int_ge(conn = accept(fd, NULL, NULL), 0);
	close(conn);
	ck_assert_int_eq(try_connect(p), 0);
	close(fd);
}
END_TEST

/* Its backlog full, the owner is still there (the probe must not block). */
START_TEST(live_socket_with_full_backlog_refused)
{
	char base[128], p[160];
	int fd, i, c[8];

	sock_path(base, sizeof(base), p, sizeof(p), 0);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	{
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		strlcpy(sun.sun_path, p, sizeof(sun.sun_path));
		ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun,
		    sizeof(sun)), 0);
		ck_assert_int_eq(listen(fd, 0), 0);
		for (i = 0; i < 8; i++) {
			c[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK,
			    0);
			ck_assert_int_ge(c[i], 0);
			(void)connect(c[i], (struct sockaddr *)&sun,
			    sizeof(sun));
		}
	}
	ck_assert_int_eq(listeners_create(ls, 1, base, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "listening") != NULL, "%s", err);
	ck_assert(is_socket_file(p));
	for (i = 0; i < 8; i++)
		close(c[i]);
	close(fd);
}
END_TEST

/* At exit, a socket file someone put in place of ours stays. */
START_TEST(close_leaves_replaced_socket)
{
	char base[128], p[160];
	ino_t theirs;
	int fd;

	sock_path(base, sizeof(base), p, sizeof(p), 0);
	ck_assert_msg(listeners_create(ls, 1, base, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(ls[0].ino, inode_of(p));
	/* What a second daemon does after someone removed ours. */
	ck_assert_int_eq(unlink(p), 0);
	fd = bound_socket(p, SOCK_STREAM, true);
	ck_assert_int_ge(fd, 0);
	theirs = inode_of(p);
	capture_start();
	listeners_close(ls, 1);
	ck_assert_ptr_nonnull(strstr(capture_end(), "no longer"));
	ck_assert(is_socket_file(p));
	ck_assert_uint_eq(inode_of(p), theirs);
	ck_assert_int_eq(try_connect(p), 0);
	close(fd);

	/* A regular file in its place is left alone too. */
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_msg(listeners_create(ls, 1, base, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_int_eq(unlink(p), 0);
	write_file(p, "not yours\n");
	capture_start();
	listeners_close(ls, 1);
	(void)capture_end();
	assert_file(p, "not yours\n");
}
END_TEST

SUITE(listener, UNIT_TIMEOUT, setup, teardown,
    "create", TESTS(create_sockets, stale_socket_replaced,
	regular_file_refused, directory_refused, path_length_limit,
	failure_undoes_earlier, too_long_at_index_ten_undoes_earlier,
	close_unlinks_only_created, close_twice_and_gone),
    "from_fd", TESTS(from_fd_listening, from_fd_connected,
	from_fd_refused),
    "systemd", TESTS(systemd_not_for_us, systemd_garbage_fds,
	systemd_zero, systemd_too_many, systemd_two_listening,
	systemd_bad_fds_refused),
    "notify", TESTS(notify_path, notify_abstract,
	notify_quiet_when_unset, notify_bad_socket_warns),
    "live_socket", TESTS(live_socket_refused,
	live_socket_with_full_backlog_refused,
	close_leaves_replaced_socket))
