/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * fdstore-probe: the service that test/check-supervisor runs under
 * test-supervisor.  Every start reports what it was given and then plays
 * the steps of that start, so that one command line scripts a crash and
 * what the next life must find:
 *
 *	fdstore-probe DIR STEP...
 *
 * Start N (DIR/starts counts them) writes DIR/report.N:
 *
 *	pid=PID
 *	listen_pid=ok|unset|wrong	LISTEN_PID against our pid
 *	listen_fds=N			LISTEN_FDS (0 if unset)
 *	names=A:B:...			LISTEN_FDNAMES as it came
 *	fd=3 name=A kind=K cloexec=0|1 [data=TEXT]   one per passed fd;
 *					K: listening, socket, memfd (with
 *					its contents), other
 *	stray_fds=N			other fds open above the passed ones
 *	notify=set|unset		NOTIFY_SOCKET
 *	fdstore=N|unset			FDSTORE
 *
 * and then runs, in order, the STEPs written "N:step" (others are for
 * other starts), appending what they find to the report.  MSG below is a
 * notification with '|' for its newlines.
 *
 *	ready			READY=1
 *	msg=MSG			MSG, no fds
 *	store=NAME,TEXT		a memfd holding TEXT, FDSTORE=1 FDNAME=NAME
 *	storenoname=TEXT	the same without FDNAME=
 *	again=NAME		the last memfd again, and a dup() of it, in one
 *				FDSTORE=1 FDNAME=NAME (both are duplicates)
 *	resend=FD,NAME		fd FD (one we were passed) with FDSTORE=1
 *	remove=NAME		FDSTOREREMOVE=1 FDNAME=NAME
 *	peer=NAME		one end of a socketpair with FDSTORE=1, the
 *				other end kept
 *	peernopoll=NAME		the same with FDPOLL=0
 *	hangup			closes the kept ends
 *	pipe=MSG		MSG with a pipe's write end; reports
 *				"pipe=closed" once the supervisor closed it
 *				(read end at EOF), "pipe=open" after 5 s
 *	foreign=MSG		MSG sent by a child process of ours
 *	foreignpipe=MSG		pipe=MSG, sent by a child process of ours
 *	exit=N, abort, kill=SIG	end this start so (abort without a core
 *				file)
 *	ignoreterm		SIGTERM ignored from now on
 *	pause			waits for signals for ever; each SIGUSR1 or
 *				SIGUSR2 appends "signal=USR1" or "signal=USR2"
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sendfds.h"

#define PROG		"fdstore-probe"
#define MAX_PEERS	16

static int report = -1;
static int peers[MAX_PEERS];
static unsigned npeers;
static int last_memfd = -1;

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(99);
}

static void __attribute__((format(printf, 1, 2)))
say(const char *fmt, ...)
{
	char line[8192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 1)
		die("report line too long");
	line[n++] = '\n';
	/* One write per line: a signal handler appends lines too. */
	if (write(report, line, (size_t)n) != n)
		die("writing the report: %s", strerror(errno));
}

/* The number of this start: DIR/starts, counted up. */
static unsigned
count_start(const char *dir)
{
	char path[4096], buf[32] = "";
	unsigned n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/starts", dir);
	if ((f = fopen(path, "re")) != NULL) {
		if (fgets(buf, sizeof(buf), f) != NULL)
			n = (unsigned)strtoul(buf, NULL, 10);
		fclose(f);
	}
	n++;
	if ((f = fopen(path, "we")) == NULL)
		die("%s: %s", path, strerror(errno));
	fprintf(f, "%u\n", n);
	if (fclose(f) != 0)
		die("%s: %s", path, strerror(errno));
	return n;
}

/* Open fds from lowfd on, other than the directory being read. */
static unsigned
count_fds_from(int lowfd)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	unsigned n = 0;
	int fd;

	if (d == NULL)
		die("/proc/self/fd: %s", strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		fd = atoi(e->d_name);
		if (fd >= lowfd && fd != dirfd(d))
			n++;
	}
	closedir(d);
	return n;
}

static void
describe_fd(int fd, const char *name)
{
	char link[64], target[256] = "", data[256] = "";
	int acc = 0, cloexec;
	socklen_t len = sizeof(acc);
	const char *kind = "other";
	struct stat st;
	ssize_t n;

	cloexec = (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, target, sizeof(target) - 1)) > 0)
		target[n] = '\0';
	if (fstat(fd, &st) < 0)
		die("fd %d: %s", fd, strerror(errno));
	if (S_ISSOCK(st.st_mode)) {
		kind = "socket";
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) ==
		    0 && acc)
			kind = "listening";
	} else if (strncmp(target, "/memfd:", 7) == 0) {
		kind = "memfd";
		if ((n = pread(fd, data, sizeof(data) - 1, 0)) < 0)
			die("fd %d: %s", fd, strerror(errno));
		data[n] = '\0';
	}
	if (strcmp(kind, "memfd") == 0)
		say("fd=%d name=%s kind=%s cloexec=%d data=%s", fd, name, kind,
		    cloexec, data);
	else
		say("fd=%d name=%s kind=%s cloexec=%d", fd, name, kind,
		    cloexec);
}

static void
report_start(unsigned stray)
{
	const char *pid_s = getenv("LISTEN_PID");
	const char *fds_s = getenv("LISTEN_FDS");
	const char *names_s = getenv("LISTEN_FDNAMES");
	const char *store_s = getenv("FDSTORE");
	char *names, *name;
	unsigned n = fds_s != NULL ? (unsigned)atoi(fds_s) : 0, i;

	say("pid=%d", (int)getpid());
	say("listen_pid=%s", pid_s == NULL ? "unset" :
	    atoi(pid_s) == (int)getpid() ? "ok" : "wrong");
	say("listen_fds=%u", n);
	say("names=%s", names_s != NULL ? names_s : "");
	/* strtok_r would merge the "::" of an empty name: split by hand. */
	names = strdup(names_s != NULL ? names_s : "");
	if (names == NULL)
		die("out of memory");
	name = names;
	for (i = 0; i < n; i++) {
		char *colon = name != NULL ? strchr(name, ':') : NULL;

		if (colon != NULL)
			*colon = '\0';
		describe_fd(3 + (int)i, name != NULL ? name : "?");
		name = colon != NULL ? colon + 1 : NULL;
	}
	free(names);
	say("stray_fds=%u", stray);
	say("notify=%s", getenv("NOTIFY_SOCKET") != NULL ? "set" : "unset");
	say("fdstore=%s", store_s != NULL ? store_s : "unset");
}

/* One notification, '|' standing for '\n', with nfds fds attached. */
static void
notify(const char *msg, const int *fds, unsigned nfds)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	struct iovec iov;
	char buf[4096];
	size_t i, len = strlen(msg);
	int sock;

	if (path == NULL || path[0] != '/' || strlen(path) >=
	    sizeof(sun.sun_path))
		die("NOTIFY_SOCKET unset or not a path");
	if (len >= sizeof(buf))
		die("message too long");
	for (i = 0; i < len; i++)
		buf[i] = msg[i] == '|' ? '\n' : msg[i];
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if ((sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(sock, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		die("%s: %s", path, strerror(errno));
	iov.iov_base = buf;
	iov.iov_len = len;
	if (send_fds(sock, &iov, 1, fds, nfds) != (ssize_t)len)
		die("sending to %s: %s", path, strerror(errno));
	close(sock);
}

static int
memfd_with(const char *text)
{
	int fd = memfd_create("probe", MFD_CLOEXEC);

	if (fd < 0 || write(fd, text, strlen(text)) !=
	    (ssize_t)strlen(text))
		die("memfd: %s", strerror(errno));
	return fd;
}

/* "NAME,TEXT" split at the first ','. */
static void
split2(const char *arg, char *a, size_t alen, const char **b)
{
	const char *comma = strchr(arg, ',');

	if (comma == NULL || (size_t)(comma - arg) >= alen)
		die("%s: expected A,B", arg);
	memcpy(a, arg, (size_t)(comma - arg));
	a[comma - arg] = '\0';
	*b = comma + 1;
}

/* Sends msg from a child process of ours, waits for it to end. */
static void
notify_from_child(const char *msg, const int *fds, unsigned nfds)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		notify(msg, fds, nfds);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		die("the sending child failed");
}

/* msg with a pipe's write end; reports whether the receiver closed it. */
static void
pipe_step(const char *msg, bool foreign)
{
	struct pollfd pfd;
	char c;
	int p[2], r;

	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	if (foreign)
		notify_from_child(msg, &p[1], 1);
	else
		notify(msg, &p[1], 1);
	close(p[1]);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	do {
		r = poll(&pfd, 1, 5000);
	} while (r < 0 && errno == EINTR);
	say("pipe=%s", r == 1 && read(p[0], &c, 1) == 0 ? "closed" :
	    "open");
	close(p[0]);
}

static void
peer_step(const char *name, bool nopoll)
{
	char msg[512];
	int sv[2];

	if (npeers >= MAX_PEERS)
		die("too many peers");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair: %s", strerror(errno));
	snprintf(msg, sizeof(msg), "FDSTORE=1|FDNAME=%s%s", name,
	    nopoll ? "|FDPOLL=0" : "");
	notify(msg, &sv[0], 1);
	close(sv[0]);
	peers[npeers++] = sv[1];
}

static void
on_signal(int sig)
{
	say("signal=%s", sig == SIGUSR1 ? "USR1" : "USR2");
}

static void __attribute__((noreturn))
pause_forever(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	for (;;)
		pause();
}

static void
run_step(const char *step)
{
	static const struct rlimit no_core = { 0, 0 };
	char msg[4096], name[256];
	const char *arg;
	int fds[2];

	if (strcmp(step, "ready") == 0)
		notify("READY=1", NULL, 0);
	else if (strncmp(step, "msg=", 4) == 0)
		notify(step + 4, NULL, 0);
	else if (strncmp(step, "store=", 6) == 0) {
		split2(step + 6, name, sizeof(name), &arg);
		last_memfd = memfd_with(arg);
		snprintf(msg, sizeof(msg), "FDSTORE=1|FDNAME=%s", name);
		notify(msg, &last_memfd, 1);
	} else if (strncmp(step, "storenoname=", 12) == 0) {
		last_memfd = memfd_with(step + 12);
		notify("FDSTORE=1", &last_memfd, 1);
	} else if (strncmp(step, "again=", 6) == 0) {
		if (last_memfd < 0)
			die("again: nothing stored yet");
		fds[0] = last_memfd;
		if ((fds[1] = fcntl(last_memfd, F_DUPFD_CLOEXEC, 0)) < 0)
			die("dup: %s", strerror(errno));
		snprintf(msg, sizeof(msg), "FDSTORE=1|FDNAME=%s", step + 6);
		notify(msg, fds, 2);
		close(fds[1]);
	} else if (strncmp(step, "resend=", 7) == 0) {
		split2(step + 7, name, sizeof(name), &arg);
		fds[0] = atoi(name);
		snprintf(msg, sizeof(msg), "FDSTORE=1|FDNAME=%s", arg);
		notify(msg, fds, 1);
	} else if (strncmp(step, "remove=", 7) == 0) {
		snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1|FDNAME=%s",
		    step + 7);
		notify(msg, NULL, 0);
	} else if (strncmp(step, "peer=", 5) == 0)
		peer_step(step + 5, false);
	else if (strncmp(step, "peernopoll=", 11) == 0)
		peer_step(step + 11, true);
	else if (strcmp(step, "hangup") == 0) {
		while (npeers > 0)
			close(peers[--npeers]);
	} else if (strncmp(step, "pipe=", 5) == 0)
		pipe_step(step + 5, false);
	else if (strncmp(step, "foreign=", 8) == 0)
		notify_from_child(step + 8, NULL, 0);
	else if (strncmp(step, "foreignpipe=", 12) == 0)
		pipe_step(step + 12, true);
	else if (strncmp(step, "exit=", 5) == 0)
		exit(atoi(step + 5));
	else if (strcmp(step, "abort") == 0) {
		/* On purpose: no core file for it. */
		setrlimit(RLIMIT_CORE, &no_core);
		abort();
	}
	else if (strncmp(step, "kill=", 5) == 0) {
		raise(atoi(step + 5));
		die("still alive after signal %s", step + 5);
	} else if (strcmp(step, "ignoreterm") == 0)
		signal(SIGTERM, SIG_IGN);
	else if (strcmp(step, "pause") == 0)
		pause_forever();
	else
		die("unknown step %s", step);
}

int
main(int argc, char **argv)
{
	const char *fds_s = getenv("LISTEN_FDS");
	char path[4096], prefix[32];
	unsigned start, stray;
	int i;

	if (argc < 2)
		die("usage: " PROG " DIR STEP...");
	/* Before we open anything ourselves. */
	stray = count_fds_from(3 + (fds_s != NULL ? atoi(fds_s) : 0));
	start = count_start(argv[1]);
	snprintf(path, sizeof(path), "%s/report.%u", argv[1], start);
	report = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND |
	    O_CLOEXEC, 0644);
	if (report < 0)
		die("%s: %s", path, strerror(errno));
	report_start(stray);
	snprintf(prefix, sizeof(prefix), "%u:", start);
	for (i = 2; i < argc; i++)
		if (strncmp(argv[i], prefix, strlen(prefix)) == 0)
			run_step(argv[i] + strlen(prefix));
	return 0;
}
