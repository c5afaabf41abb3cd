/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * test-supervisor: the few parts of systemd that crash recovery through
 * the file descriptor store needs, for machines where systemd cannot run
 * as PID 1 (test containers, CI).  It plays one socket unit and one
 * service unit:
 *
 *	[Socket]			[Service]
 *	ListenStream=PATH ...		Type=notify
 *	FileDescriptorName=NAME		NotifyAccess=main
 *					Restart=on-failure
 *					RestartSec=, FileDescriptorStoreMax=
 *
 * and follows what sd_notify(3), sd_listen_fds(3), systemd.service(5)
 * and systemd.socket(5) document, written from those pages:
 *
 * - The child gets LISTEN_PID (its own pid), LISTEN_FDS and
 *   LISTEN_FDNAMES: the listening sockets first, then the stored fds, at
 *   3, 4, 5, ... without FD_CLOEXEC; nothing else above 2 stays open.
 *   With no fd to pass the three variables are unset, as systemd does.
 *   NOTIFY_SOCKET names a datagram socket only the supervisor reads, and
 *   FDSTORE=N is set when the store is enabled (systemd 254 and later).
 * - Notification messages count only if the kernel's SCM_CREDENTIALS say
 *   the main pid sent them (NotifyAccess=main); fds that come with any
 *   message not used to store them are closed.
 * - FDSTORE=1 stores the attached fds under FDNAME= (default "stored")
 *   up to --fdstore-max, in the order received; an fd whose open file
 *   description is already stored is dropped (kcmp(2) KCMP_FILE); a
 *   stored fd that reports POLLHUP or POLLERR is closed and removed,
 *   unless it came with FDPOLL=0.  An invalid FDNAME= is ignored, so the
 *   fds are stored as "stored" (sd_notify(3): "If a submitted name does
 *   not follow these restrictions, it is ignored").  FDSTOREREMOVE=1 with
 *   FDNAME= closes every stored fd of that name; it wins over FDSTORE=1
 *   in the same message.
 * - Restart=on-failure: a non-zero exit or a death by signal restarts the
 *   command after --restart-delay-ms with the same sockets and the store;
 *   exit 0 and the clean signals SIGHUP, SIGINT, SIGTERM and SIGPIPE
 *   (systemd.service(5), Restart=) end the supervisor.
 *
 * Not played: Type=notify's start timeout, the watchdog, RELOADING=1,
 * MAINPID= (logged, not followed), StartLimitBurst= (--max-restarts is a
 * plain count instead), NotifyAccess= other than main.  systemd happens
 * to pass stored fds newest first; sd_listen_fds(3) promises no order,
 * so a service must go by the names, and here they come oldest first.
 *
 * For the tests' convenience (no systemd counterpart): SIGUSR1 and
 * SIGUSR2 are forwarded to the child, the child gets SIGTERM if the
 * supervisor dies (PR_SET_PDEATHSIG, so a killed test leaves no daemon
 * behind), and --status FILE is rewritten atomically after every change
 * (see write_status()).  Only libc; Linux only (signalfd, kcmp).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG			"test-supervisor"
#define LISTEN_FDS_START	3
#define MAX_LISTEN		64
/* sd_notify(3) / systemd: names are at most 255 characters. */
#define FDNAME_MAX		255
/* More than any test needs; each is an fd the supervisor holds. */
#define FDSTORE_LIMIT		4096
/* systemd reads at most PIPE_BUF bytes per notification datagram. */
#define NOTIFY_BUFFER_MAX	4096
/* The kernel's limit of fds per SCM_RIGHTS message (SCM_MAX_FD). */
#define NOTIFY_FDS_MAX		253
/* A status text longer than this is cut (it is for the status file). */
#define STATUS_TEXT_MAX		512

#ifndef F_DUPFD_QUERY
#define F_DUPFD_QUERY		1027	/* Linux 6.10 */
#endif

enum state {
	ST_STARTING,		/* child running, no READY=1 yet */
	ST_RUNNING,		/* READY=1 seen */
	ST_STOPPING,		/* STOPPING=1 seen, or we sent SIGTERM */
	ST_AUTO_RESTART,	/* child dead, waiting --restart-delay-ms */
	ST_STOPPED,		/* final: clean */
	ST_FAILED,		/* final: failed, or restarts used up */
};

static const char *const state_names[] = {
	[ST_STARTING] = "starting",
	[ST_RUNNING] = "running",
	[ST_STOPPING] = "stopping",
	[ST_AUTO_RESTART] = "auto-restart",
	[ST_STOPPED] = "stopped",
	[ST_FAILED] = "failed",
};

struct listen_sock {
	int	 fd;
	char	*path;
	dev_t	 dev;		/* what we bound, to remove only that */
	ino_t	 ino;
};

struct stored_fd {
	int	 fd;
	bool	 poll;		/* drop on POLLHUP/POLLERR (no FDPOLL=0) */
	char	 name[FDNAME_MAX + 1];
};

struct sup {
	/* Configuration. */
	struct listen_sock listen[MAX_LISTEN];
	unsigned	 nlisten;
	const char	*listen_name;
	unsigned	 fdstore_max;
	unsigned	 restart_delay_ms;
	unsigned	 max_restarts;
	unsigned	 stop_timeout_ms;
	const char	*status_path;
	char *const	*argv;		/* the command */

	/* Our own descriptors and paths. */
	int		 sig_fd;
	int		 notify_fd;
	char		 notify_dir[108];
	char		 notify_path[108];
	sigset_t	 orig_mask;
	pid_t		 self;

	/* The service. */
	enum state	 state;
	pid_t		 child;		/* main pid, 0 if none */
	bool		 ready;		/* READY=1 from this child */
	unsigned	 restarts;
	bool		 stop_requested;
	int64_t		 deadline_ms;	/* restart or SIGKILL due; -1 none */
	bool		 have_exit;
	int		 last_status;	/* waitpid() status of the last exit */
	int		 status_errno;	/* ERRNO=, 0 if none */
	char		 status_text[STATUS_TEXT_MAX + 1];

	/* The fd store, oldest first. */
	struct stored_fd *store;
	unsigned	 nstore;
	bool		 kcmp_warned;
};

static void	logx(const char *, ...) __attribute__((format(printf, 1, 2)));
static void	logw(const char *, ...) __attribute__((format(printf, 1, 2)));

static void
vlogmsg(const char *fmt, va_list ap, int errnum)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* One write per line: the child logs to the same stderr. */
	if (errnum)
		fprintf(stderr, PROG ": %s: %s\n", msg, strerror(errnum));
	else
		fprintf(stderr, PROG ": %s\n", msg);
}

static void
logx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlogmsg(fmt, ap, 0);
	va_end(ap);
}

/* logx with ": strerror(errno)" appended. */
static void
logw(const char *fmt, ...)
{
	int errnum = errno;
	va_list ap;

	va_start(ap, fmt);
	vlogmsg(fmt, ap, errnum);
	va_end(ap);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: " PROG " [--listen PATH]... [--listen-name NAME] [--fdstore-max N]\n"
"           [--restart-delay-ms N] [--max-restarts N] [--stop-timeout-ms N]\n"
"           [--status FILE] -- COMMAND [ARG]...\n"
"\n"
"Runs COMMAND like a systemd Type=notify service with Restart=on-failure,\n"
"NotifyAccess=main and FileDescriptorStoreMax=N, behind a socket unit.\n"
"\n"
"  --listen PATH          listening AF_UNIX stream socket at PATH (a stale\n"
"                         socket there is replaced), passed to every start\n"
"                         as the first LISTEN_FDS, in option order\n"
"  --listen-name NAME     their LISTEN_FDNAMES name, default \"listen\"\n"
"  --fdstore-max N        fd store size, 0..%d, default 0 (disabled)\n"
"  --restart-delay-ms N   pause before a restart, default 100\n"
"  --max-restarts N       restarts allowed, default 10; then exit 1\n"
"  --stop-timeout-ms N    SIGKILL this long after forwarding SIGTERM,\n"
"                         default 90000\n"
"  --status FILE          state, rewritten atomically after every change\n"
"\n"
"SIGTERM/SIGINT stop the service (SIGTERM to the child); SIGUSR1/SIGUSR2\n"
"are forwarded to it.  Exit 0 when the service stopped cleanly, 1 when it\n"
"failed or used up its restarts, 2 on bad usage or set-up errors.\n",
	    FDSTORE_LIMIT);
}

static bool
parse_uint(const char *s, unsigned max, unsigned *out)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return false;
	*out = (unsigned)v;
	return true;
}

/*
 * A name for LISTEN_FDNAMES as systemd accepts it: ASCII without control
 * characters and without ':' (the separator), at most 255 characters;
 * the empty name is allowed.
 */
static bool
fdname_valid(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];

		if (c < 0x20 || c >= 0x7f || c == ':' || n >= FDNAME_MAX)
			return false;
	}
	return true;
}

/* ---- the status file ---- */

/*
 * --status FILE, for tests to poll.  Lines, in this order:
 *
 *	state=starting|running|stopping|auto-restart|stopped|failed
 *	pid=PID			main pid, 0 when none runs
 *	ready=0|1		READY=1 seen from this pid
 *	restarts=N		restarts so far (starts - 1)
 *	exit=none|exited N|killed SIG|dumped SIG	the last child's end
 *	errno=N			last ERRNO=, 0 if none
 *	status=TEXT		last STATUS= (control characters as '?')
 *	fdstore=N		fds in the store
 *	fd=NAME			one per stored fd, in the order passed
 *
 * Written to FILE.tmp and renamed, so a reader sees one whole version.
 */
static void
write_status(struct sup *s)
{
	char tmp[PATH_MAX];
	unsigned i;
	int fd, ok;

	if (s->status_path == NULL)
		return;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", s->status_path) >=
	    sizeof(tmp)) {
		logx("%s: path too long", s->status_path);
		return;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		logw("%s", tmp);
		return;
	}
	ok = dprintf(fd, "state=%s\npid=%d\nready=%d\nrestarts=%u\n",
	    state_names[s->state], (int)s->child, s->ready ? 1 : 0,
	    s->restarts) > 0;
	if (!s->have_exit)
		ok &= dprintf(fd, "exit=none\n") > 0;
	else if (WIFEXITED(s->last_status))
		ok &= dprintf(fd, "exit=exited %d\n",
		    WEXITSTATUS(s->last_status)) > 0;
	else
		ok &= dprintf(fd, "exit=%s %d\n",
		    WCOREDUMP(s->last_status) ? "dumped" : "killed",
		    WTERMSIG(s->last_status)) > 0;
	ok &= dprintf(fd, "errno=%d\nstatus=%s\nfdstore=%u\n",
	    s->status_errno, s->status_text, s->nstore) > 0;
	for (i = 0; i < s->nstore; i++)
		ok &= dprintf(fd, "fd=%s\n", s->store[i].name) > 0;
	if (close(fd) < 0 || !ok) {
		logw("writing %s", tmp);
		unlink(tmp);
		return;
	}
	if (rename(tmp, s->status_path) < 0)
		logw("renaming %s to %s", tmp, s->status_path);
}

/* ---- the socket unit ---- */

/*
 * ListenStream=PATH: a socket file already at PATH is replaced (systemd
 * does not ask whose it was); any other kind of file is left alone and is
 * an error.  The socket stays blocking: NonBlocking= defaults to no.
 */
static int
listen_create(struct listen_sock *l)
{
	struct sockaddr_un sun;
	struct stat st;
	size_t len = strlen(l->path);
	int fd;

	if (len == 0 || len >= sizeof(sun.sun_path)) {
		logx("--listen %s: socket path empty or too long (at most %zu "
		    "bytes)", l->path, sizeof(sun.sun_path) - 1);
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, l->path, len);
	if (lstat(l->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			logx("--listen %s: exists and is not a socket",
			    l->path);
			return -1;
		}
		if (unlink(l->path) < 0) {
			logw("--listen %s: removing the old socket", l->path);
			return -1;
		}
	} else if (errno != ENOENT) {
		logw("--listen %s", l->path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		logw("socket");
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(fd, SOMAXCONN) < 0 || lstat(l->path, &st) < 0) {
		logw("--listen %s", l->path);
		close(fd);
		return -1;
	}
	l->fd = fd;
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	return 0;
}

/*
 * Closes the socket and removes its file if it is still the one we bound
 * (RemoveOnStop=yes: systemd's default leaves it, but a test's directory
 * is cleaner without).
 */
static void
listen_close(struct listen_sock *l)
{
	struct stat st;

	if (l->fd < 0)
		return;
	close(l->fd);
	l->fd = -1;
	if (lstat(l->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_dev == l->dev && st.st_ino == l->ino)
		unlink(l->path);
}

/*
 * The notification socket: a datagram socket in a directory of our own
 * (mode 0700), like /run/systemd/notify.  SO_PASSCRED makes the kernel
 * attach every sender's pid, uid and gid, which NotifyAccess=main needs:
 * the sender cannot leave them out or (unprivileged) forge them.
 */
static int
notify_create(struct sup *s)
{
	const char *tmpdir = getenv("TMPDIR");
	struct sockaddr_un sun;
	int one = 1;
	size_t n;

	if (tmpdir == NULL || tmpdir[0] != '/')
		tmpdir = "/tmp";
	n = (size_t)snprintf(s->notify_dir, sizeof(s->notify_dir),
	    "%s/" PROG ".XXXXXX", tmpdir);
	if (n >= sizeof(s->notify_dir) || n + sizeof("/notify") >
	    sizeof(sun.sun_path)) {
		logx("TMPDIR=%s is too long for a socket path", tmpdir);
		s->notify_dir[0] = '\0';
		return -1;
	}
	if (mkdtemp(s->notify_dir) == NULL) {
		logw("%s", s->notify_dir);
		s->notify_dir[0] = '\0';
		return -1;
	}
	if ((size_t)snprintf(s->notify_path, sizeof(s->notify_path),
	    "%s/notify", s->notify_dir) >= sizeof(s->notify_path))
		return -1;	/* cannot happen: the length is checked above */
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, s->notify_path, strlen(s->notify_path));
	s->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (s->notify_fd < 0 ||
	    setsockopt(s->notify_fd, SOL_SOCKET, SO_PASSCRED, &one,
	    sizeof(one)) < 0 ||
	    bind(s->notify_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		logw("notify socket %s", s->notify_path);
		return -1;
	}
	return 0;
}

/* ---- the fd store ---- */

/*
 * Whether fds a and b are one open file description (dup()s of each
 * other, or one fd sent twice): 1 yes, 0 no.  systemd drops such
 * duplicates; two open()s of one file are different descriptions and
 * both kept.
 */
static int
same_description(struct sup *s, int a, int b)
{
	struct stat sa, sb;
	long r;
	int kcmp_errno;

	if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0)
		return 0;
	/* One description is one file: different files settle it. */
	if (sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino)
		return 0;
	r = syscall(SYS_kcmp, (long)s->self, (long)s->self, (long)KCMP_FILE,
	    (long)a, (long)b);
	if (r >= 0)
		return r == 0;
	/*
	 * No kcmp (a kernel without CONFIG_CHECKPOINT_RESTORE, a container's
	 * seccomp filter): Linux 6.10's F_DUPFD_QUERY answers the same.
	 */
	kcmp_errno = errno;
	r = fcntl(a, F_DUPFD_QUERY, b);
	if (r >= 0)
		return r == 1;
	if (!s->kcmp_warned) {
		errno = kcmp_errno;
		logw("kcmp: duplicate fds cannot be recognised, all are "
		    "stored");
		s->kcmp_warned = true;
	}
	return 0;
}

/*
 * One fd for the store, as systemd takes it: refused if the store is
 * full (-1: the fd stays the caller's), else closed if its description
 * is already stored (0), else stored at the end (1).
 */
static int
store_add(struct sup *s, int fd, const char *name, bool poll)
{
	struct stored_fd *e;
	unsigned i;

	if (s->nstore >= s->fdstore_max)
		return -1;
	for (i = 0; i < s->nstore; i++) {
		if (same_description(s, s->store[i].fd, fd)) {
			logx("fd store: \"%s\" is the same open file as "
			    "stored \"%s\": duplicate dropped", name,
			    s->store[i].name);
			close(fd);
			return 0;
		}
	}
	e = &s->store[s->nstore++];
	e->fd = fd;
	e->poll = poll;
	snprintf(e->name, sizeof(e->name), "%s", name);
	logx("fd store: stored \"%s\"%s (%u of %u)", name,
	    poll ? "" : " (FDPOLL=0)", s->nstore, s->fdstore_max);
	return 1;
}

static void
store_remove_at(struct sup *s, unsigned i)
{
	close(s->store[i].fd);
	memmove(&s->store[i], &s->store[i + 1],
	    (s->nstore - i - 1) * sizeof(s->store[0]));
	s->nstore--;
}

static void
store_clear(struct sup *s)
{
	while (s->nstore > 0)
		store_remove_at(s, s->nstore - 1);
}

/* ---- notification messages ---- */

static void
close_fds(int *fds, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/*
 * The message's lines, once its '\n' are '\0': the first line that is
 * exactly line, or the value of the first "KEY=" line (as systemd, the
 * first assignment of a key counts).
 */
static bool
msg_has(const char *buf, size_t len, const char *line)
{
	const char *p;

	for (p = buf; p < buf + len; p += strlen(p) + 1)
		if (strcmp(p, line) == 0)
			return true;
	return false;
}

static const char *
msg_value(const char *buf, size_t len, const char *key)
{
	size_t klen = strlen(key);
	const char *p;

	for (p = buf; p < buf + len; p += strlen(p) + 1)
		if (strncmp(p, key, klen) == 0)
			return p + klen;
	return NULL;
}

static void
msg_fdstore(struct sup *s, const char *buf, size_t len, int *fds,
    unsigned nfds)
{
	const char *name = msg_value(buf, len, "FDNAME=");
	bool poll = !msg_has(buf, len, "FDPOLL=0");
	unsigned i, full = 0;

	if (name != NULL && !fdname_valid(name)) {
		logx("fd store: FDNAME= not a valid name (at most %d "
		    "printable ASCII characters, no ':'): ignored, the fds "
		    "are stored as \"stored\"", FDNAME_MAX);
		name = NULL;
	}
	if (name == NULL)
		name = "stored";
	for (i = 0; i < nfds; i++) {
		if (store_add(s, fds[i], name, poll) < 0) {
			close(fds[i]);
			full++;
		}
		fds[i] = -1;
	}
	if (full > 0)
		logx("fd store: cannot store more fds than --fdstore-max=%u: "
		    "%u of \"%s\" closed", s->fdstore_max, full, name);
	if (nfds == 0)
		logx("fd store: FDSTORE=1 without fds");
}

static void
msg_fdstoreremove(struct sup *s, const char *buf, size_t len)
{
	const char *name = msg_value(buf, len, "FDNAME=");
	unsigned i, n = 0;

	if (name == NULL || !fdname_valid(name)) {
		logx("fd store: FDSTOREREMOVE=1 without a valid FDNAME=: "
		    "ignored");
		return;
	}
	for (i = 0; i < s->nstore; ) {
		if (strcmp(s->store[i].name, name) == 0) {
			store_remove_at(s, i);
			n++;
		} else
			i++;
	}
	logx("fd store: FDSTOREREMOVE=1 \"%s\": %u fds removed", name, n);
}

/*
 * One datagram from pid, already NUL-terminated at buf[len], with nfds
 * fds (close-on-exec) that are ours to store or close.
 */
static void
handle_message(struct sup *s, pid_t pid, char *buf, size_t len, int *fds,
    unsigned nfds)
{
	const char *v;
	unsigned i, left;

	if (s->child == 0 || pid != s->child) {
		logx("notification from pid %d ignored: only the main pid "
		    "(%d) may notify (NotifyAccess=main)%s", (int)pid,
		    (int)s->child, nfds > 0 ? "; its fds closed" : "");
		close_fds(fds, nfds);
		return;
	}
	if (memchr(buf, '\0', len) != NULL) {
		logx("notification with a NUL byte ignored%s",
		    nfds > 0 ? "; its fds closed" : "");
		close_fds(fds, nfds);
		return;
	}
	for (i = 0; i < len; i++)
		if (buf[i] == '\n')
			buf[i] = '\0';

	if ((v = msg_value(buf, len, "MAINPID=")) != NULL)
		logx("MAINPID=%s ignored: the main pid stays %d", v,
		    (int)s->child);
	/* STOPPING=1 wins over READY=1, as in systemd. */
	if (msg_has(buf, len, "STOPPING=1")) {
		logx("pid %d: STOPPING=1", (int)pid);
		s->state = ST_STOPPING;
	} else if (msg_has(buf, len, "READY=1")) {
		if (!s->ready)
			logx("pid %d: READY=1", (int)pid);
		s->ready = true;
		if (s->state == ST_STARTING)
			s->state = ST_RUNNING;
	}
	if ((v = msg_value(buf, len, "STATUS=")) != NULL) {
		snprintf(s->status_text, sizeof(s->status_text), "%s", v);
		for (i = 0; s->status_text[i] != '\0'; i++)
			if ((unsigned char)s->status_text[i] < 0x20 ||
			    s->status_text[i] == 0x7f)
				s->status_text[i] = '?';
		logx("pid %d: STATUS=%s", (int)pid, s->status_text);
	}
	if ((v = msg_value(buf, len, "ERRNO=")) != NULL) {
		unsigned e;

		if (parse_uint(v, INT_MAX, &e)) {
			s->status_errno = (int)e;
			logx("pid %d: ERRNO=%u (%s)", (int)pid, e,
			    strerror((int)e));
		} else
			logx("pid %d: ERRNO=%s is not a number: ignored",
			    (int)pid, v);
	}
	if (msg_has(buf, len, "FDSTOREREMOVE=1"))
		msg_fdstoreremove(s, buf, len);
	else if (msg_has(buf, len, "FDSTORE=1"))
		msg_fdstore(s, buf, len, fds, nfds);

	for (i = left = 0; i < nfds; i++)
		left += fds[i] >= 0;
	if (left > 0)
		logx("%u fds came with a notification that stores none: "
		    "closed", left);
	close_fds(fds, nfds);
}

/* Takes every queued notification. */
static void
drain_notify(struct sup *s)
{
	for (;;) {
		char buf[NOTIFY_BUFFER_MAX + 1];
		union {
			char	buf[CMSG_SPACE(sizeof(struct ucred)) +
				    CMSG_SPACE(NOTIFY_FDS_MAX * sizeof(int))];
			struct cmsghdr align;
		} control;
		struct iovec iov = { buf, NOTIFY_BUFFER_MAX };
		struct msghdr mh;
		struct cmsghdr *c;
		struct ucred cred;
		int fds[NOTIFY_FDS_MAX];
		unsigned nfds = 0, k, nk;
		bool have_cred = false;
		ssize_t n;

		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = control.buf;
		mh.msg_controllen = sizeof(control.buf);
		n = recvmsg(s->notify_fd, &mh, MSG_DONTWAIT |
		    MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				logw("notify socket");
			return;
		}
		for (c = CMSG_FIRSTHDR(&mh); c != NULL;
		    c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET)
				continue;
			if (c->cmsg_type == SCM_RIGHTS) {
				nk = (unsigned)((c->cmsg_len - CMSG_LEN(0)) /
				    sizeof(int));
				for (k = 0; k < nk; k++) {
					int fd;

					memcpy(&fd, CMSG_DATA(c) +
					    k * sizeof(int), sizeof(fd));
					if (nfds < NOTIFY_FDS_MAX)
						fds[nfds++] = fd;
					else
						close(fd);
				}
			} else if (c->cmsg_type == SCM_CREDENTIALS &&
			    c->cmsg_len == CMSG_LEN(sizeof(cred))) {
				memcpy(&cred, CMSG_DATA(c), sizeof(cred));
				have_cred = true;
			}
		}
		if (mh.msg_flags & MSG_CTRUNC) {
			logx("notification with truncated control data "
			    "ignored; %u fds closed", nfds);
			close_fds(fds, nfds);
		} else if (mh.msg_flags & MSG_TRUNC) {
			logx("notification longer than %d bytes ignored; %u "
			    "fds closed", NOTIFY_BUFFER_MAX, nfds);
			close_fds(fds, nfds);
		} else if (!have_cred) {
			logx("notification without credentials ignored; %u "
			    "fds closed", nfds);
			close_fds(fds, nfds);
		} else {
			buf[n] = '\0';
			handle_message(s, cred.pid, buf, (size_t)n, fds, nfds);
		}
	}
}

/* ---- the service ---- */

static void
close_from(int lowfd)
{
	long fd, max;

#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0U) == 0)
		return;
#endif
	max = sysconf(_SC_OPEN_MAX);
	for (fd = lowfd; fd < max; fd++)
		close((int)fd);
}

/*
 * In the child: what systemd's exec does for a service's main process,
 * as far as fds, signals and environment go.
 */
static void __attribute__((noreturn))
child_exec(struct sup *s)
{
	int fds[MAX_LISTEN + FDSTORE_LIMIT];
	unsigned n = 0, i;
	char num[32], *names, *p;
	struct sigaction sa;
	int sig;

	/* Signals as a fresh process has them, whatever ours are. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	sigprocmask(SIG_SETMASK, &s->orig_mask, NULL);
	/* A test that kills the supervisor should not leave a daemon. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != s->self)
		_exit(127);

	for (i = 0; i < s->nlisten; i++)
		fds[n++] = s->listen[i].fd;
	for (i = 0; i < s->nstore; i++)
		fds[n++] = s->store[i].fd;
	/*
	 * First move every fd above 3..3+n-1, so that no dup2() below
	 * overwrites one still to be placed; dup2() then leaves the copy at
	 * 3+i without FD_CLOEXEC, and the rest goes.
	 */
	for (i = 0; i < n; i++) {
		fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC,
		    LISTEN_FDS_START + (int)n);
		if (fds[i] < 0) {
			logw("child: moving fds");
			_exit(127);
		}
	}
	for (i = 0; i < n; i++) {
		if (dup2(fds[i], LISTEN_FDS_START + (int)i) < 0) {
			logw("child: dup2");
			_exit(127);
		}
	}
	close_from(LISTEN_FDS_START + (int)n);

	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	unsetenv("FDSTORE");
	if (n > 0) {
		if ((names = malloc((size_t)n * (FDNAME_MAX + 1) + 1)) ==
		    NULL)
			_exit(127);
		p = names;
		for (i = 0; i < n; i++) {
			const char *nm = i < s->nlisten ? s->listen_name :
			    s->store[i - s->nlisten].name;

			if (i > 0)
				*p++ = ':';
			memcpy(p, nm, strlen(nm));
			p += strlen(nm);
		}
		*p = '\0';
		snprintf(num, sizeof(num), "%d", (int)getpid());
		setenv("LISTEN_PID", num, 1);
		snprintf(num, sizeof(num), "%u", n);
		setenv("LISTEN_FDS", num, 1);
		setenv("LISTEN_FDNAMES", names, 1);
	}
	setenv("NOTIFY_SOCKET", s->notify_path, 1);
	if (s->fdstore_max > 0) {
		snprintf(num, sizeof(num), "%u", s->fdstore_max);
		setenv("FDSTORE", num, 1);
	}
	execvp(s->argv[0], s->argv);
	logw("%s", s->argv[0]);
	_exit(127);
}

static void
start_child(struct sup *s)
{
	pid_t pid;

	fflush(stderr);
	if ((pid = fork()) < 0) {
		logw("fork");
		s->state = ST_FAILED;
		return;
	}
	if (pid == 0)
		child_exec(s);
	s->child = pid;
	s->ready = false;
	s->state = ST_STARTING;
	s->deadline_ms = -1;
	s->status_errno = 0;
	s->status_text[0] = '\0';
	logx("started pid %d (%s) with %u listening and %u stored fds",
	    (int)pid, s->argv[0], s->nlisten, s->nstore);
}

/* Restart=on-failure, and the end of a stop we asked for. */
static void
child_exited(struct sup *s, int status)
{
	pid_t pid = s->child;
	bool clean;

	s->child = 0;
	s->ready = false;
	s->have_exit = true;
	s->last_status = status;
	if (WIFEXITED(status)) {
		clean = WEXITSTATUS(status) == 0;
		logx("pid %d exited with status %d", (int)pid,
		    WEXITSTATUS(status));
	} else {
		int sig = WTERMSIG(status);

		/* systemd.service(5): clean exit signals. */
		clean = sig == SIGHUP || sig == SIGINT || sig == SIGTERM ||
		    sig == SIGPIPE;
		logx("pid %d killed by signal %d (%s)%s", (int)pid, sig,
		    strsignal(sig), WCOREDUMP(status) ? ", core dumped" : "");
	}
	if (s->stop_requested) {
		s->state = clean ? ST_STOPPED : ST_FAILED;
		s->deadline_ms = -1;
		return;
	}
	if (clean) {
		logx("clean exit: not restarted");
		s->state = ST_STOPPED;
		return;
	}
	if (s->restarts >= s->max_restarts) {
		logx("failed: no restart left (--max-restarts=%u)",
		    s->max_restarts);
		s->state = ST_FAILED;
		return;
	}
	s->state = ST_AUTO_RESTART;
	s->deadline_ms = now_ms() + s->restart_delay_ms;
	logx("restart %u of %u in %u ms", s->restarts + 1, s->max_restarts,
	    s->restart_delay_ms);
}

static const char *
sig_name(int sig)
{
	switch (sig) {
	case SIGTERM:	return "SIGTERM";
	case SIGINT:	return "SIGINT";
	case SIGUSR1:	return "SIGUSR1";
	case SIGUSR2:	return "SIGUSR2";
	default:	return strsignal(sig);
	}
}

static void
request_stop(struct sup *s, int sig)
{
	if (s->stop_requested) {
		logx("%s: already stopping", sig_name(sig));
		return;
	}
	s->stop_requested = true;
	if (s->child == 0) {
		/* Waiting to restart after a failure: it stays failed. */
		logx("%s: restart cancelled", sig_name(sig));
		s->state = ST_FAILED;
		s->deadline_ms = -1;
		return;
	}
	logx("%s: stopping pid %d with SIGTERM", sig_name(sig),
	    (int)s->child);
	kill(s->child, SIGTERM);
	s->state = ST_STOPPING;
	s->deadline_ms = now_ms() + s->stop_timeout_ms;
}

static void
handle_signals(struct sup *s)
{
	struct signalfd_siginfo si;

	while (read(s->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int sig = (int)si.ssi_signo;

		switch (sig) {
		case SIGTERM:
		case SIGINT:
			request_stop(s, sig);
			break;
		case SIGUSR1:
		case SIGUSR2:
			if (s->child != 0) {
				logx("%s: forwarded to pid %d",
				    sig_name(sig), (int)s->child);
				kill(s->child, sig);
			} else
				logx("%s: no child to forward it to",
				    sig_name(sig));
			break;
		default:	/* SIGCHLD: reap() looks anyway */
			break;
		}
	}
}

static void
reap(struct sup *s)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid != s->child)
			continue;
		/*
		 * What it sent before it died is queued by now: take it
		 * while its pid still is the main pid (systemd reads
		 * notifications before SIGCHLD for the same reason).
		 */
		drain_notify(s);
		child_exited(s, status);
	}
}

/* A stored fd that hangs up or fails is closed and forgotten. */
static void
poll_store(struct sup *s, const struct pollfd *pfd, const unsigned *idx,
    unsigned n)
{
	unsigned i;

	/* Backwards, so that removals do not move what is still to see. */
	for (i = n; i-- > 0; ) {
		if (!(pfd[i].revents & (POLLHUP | POLLERR)))
			continue;
		logx("fd store: \"%s\" got %s: closed and removed",
		    s->store[idx[i]].name,
		    pfd[i].revents & POLLERR ? "POLLERR" : "POLLHUP");
		store_remove_at(s, idx[i]);
	}
}

static void
run(struct sup *s)
{
	struct pollfd pfd[2 + FDSTORE_LIMIT];
	unsigned idx[FDSTORE_LIMIT];

	start_child(s);
	write_status(s);
	while (s->child != 0 || (s->state != ST_STOPPED &&
	    s->state != ST_FAILED)) {
		unsigned i, n = 0;
		int timeout = -1;
		int64_t now;

		pfd[0].fd = s->sig_fd;
		pfd[0].events = POLLIN;
		pfd[1].fd = s->notify_fd;
		pfd[1].events = POLLIN;
		for (i = 0; i < s->nstore; i++) {
			if (!s->store[i].poll)
				continue;
			pfd[2 + n].fd = s->store[i].fd;
			pfd[2 + n].events = 0;	/* POLLHUP, POLLERR only */
			idx[n++] = i;
		}
		if (s->deadline_ms >= 0) {
			now = now_ms();
			timeout = s->deadline_ms <= now ? 0 :
			    (int)(s->deadline_ms - now);
		}
		if (poll(pfd, 2 + n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			logw("poll");
			break;
		}
		poll_store(s, pfd + 2, idx, n);
		handle_signals(s);
		drain_notify(s);
		reap(s);
		if (s->deadline_ms >= 0 && now_ms() >= s->deadline_ms) {
			s->deadline_ms = -1;
			if (s->state == ST_AUTO_RESTART) {
				s->restarts++;
				start_child(s);
			} else if (s->stop_requested && s->child != 0) {
				logx("pid %d still there %u ms after SIGTERM: "
				    "SIGKILL", (int)s->child,
				    s->stop_timeout_ms);
				kill(s->child, SIGKILL);
			}
		}
		write_status(s);
	}
}

static void
cleanup(struct sup *s)
{
	unsigned i;

	store_clear(s);
	for (i = 0; i < s->nlisten; i++)
		listen_close(&s->listen[i]);
	if (s->notify_fd >= 0)
		close(s->notify_fd);
	if (s->notify_path[0] != '\0')
		unlink(s->notify_path);
	if (s->notify_dir[0] != '\0')
		rmdir(s->notify_dir);
}

int
main(int argc, char **argv)
{
	enum {
		OPT_LISTEN = 256, OPT_LISTEN_NAME, OPT_FDSTORE_MAX,
		OPT_RESTART_DELAY, OPT_MAX_RESTARTS, OPT_STOP_TIMEOUT,
		OPT_STATUS,
	};
	static const struct option opts[] = {
		{ "listen",		required_argument, NULL, OPT_LISTEN },
		{ "listen-name",	required_argument, NULL,
		    OPT_LISTEN_NAME },
		{ "fdstore-max",	required_argument, NULL,
		    OPT_FDSTORE_MAX },
		{ "restart-delay-ms",	required_argument, NULL,
		    OPT_RESTART_DELAY },
		{ "max-restarts",	required_argument, NULL,
		    OPT_MAX_RESTARTS },
		{ "stop-timeout-ms",	required_argument, NULL,
		    OPT_STOP_TIMEOUT },
		{ "status",		required_argument, NULL, OPT_STATUS },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const int handled[] = {
		SIGCHLD, SIGTERM, SIGINT, SIGUSR1, SIGUSR2,
	};
	static struct sup s;
	sigset_t mask;
	unsigned i;
	int c, fd;

	s.listen_name = "listen";
	s.restart_delay_ms = 100;
	s.max_restarts = 10;
	s.stop_timeout_ms = 90000;
	s.sig_fd = s.notify_fd = -1;
	s.deadline_ms = -1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_LISTEN:
			if (s.nlisten >= MAX_LISTEN) {
				logx("at most %d --listen", MAX_LISTEN);
				return 2;
			}
			s.listen[s.nlisten].fd = -1;
			s.listen[s.nlisten++].path = optarg;
			break;
		case OPT_LISTEN_NAME:
			if (!fdname_valid(optarg)) {
				logx("--listen-name %s: at most %d printable "
				    "ASCII characters, no ':'", optarg,
				    FDNAME_MAX);
				return 2;
			}
			s.listen_name = optarg;
			break;
		case OPT_FDSTORE_MAX:
			if (!parse_uint(optarg, FDSTORE_LIMIT,
			    &s.fdstore_max)) {
				logx("--fdstore-max %s: 0..%d", optarg,
				    FDSTORE_LIMIT);
				return 2;
			}
			break;
		case OPT_RESTART_DELAY:
		case OPT_STOP_TIMEOUT:
			if (!parse_uint(optarg, INT_MAX, c == OPT_STOP_TIMEOUT ?
			    &s.stop_timeout_ms : &s.restart_delay_ms)) {
				logx("%s %s: 0..%d ms", c == OPT_STOP_TIMEOUT ?
				    "--stop-timeout-ms" : "--restart-delay-ms",
				    optarg, INT_MAX);
				return 2;
			}
			break;
		case OPT_MAX_RESTARTS:
			if (!parse_uint(optarg, UINT_MAX - 1,
			    &s.max_restarts)) {
				logx("--max-restarts %s: not a count", optarg);
				return 2;
			}
			break;
		case OPT_STATUS:
			s.status_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		logx("no command (after --)");
		usage(stderr);
		return 2;
	}
	s.argv = argv + optind;

	/* No socket of ours may land on 0, 1 or 2, the child's stdio. */
	for (fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
			return 2;
	/*
	 * Signals come through a signalfd: blocked, and with their default
	 * action, since an ignored signal (a shell's background job ignores
	 * SIGINT; SIGCHLD ignored would reap for us) never arrives.
	 */
	sigemptyset(&mask);
	for (i = 0; i < sizeof(handled) / sizeof(handled[0]); i++) {
		signal(handled[i], SIG_DFL);
		sigaddset(&mask, handled[i]);
	}
	signal(SIGPIPE, SIG_IGN);	/* a closed stderr must not kill us */
	if (sigprocmask(SIG_BLOCK, &mask, &s.orig_mask) < 0 ||
	    (s.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		logw("signalfd");
		return 2;
	}
	s.self = getpid();
	if ((s.store = calloc(s.fdstore_max + 1, sizeof(*s.store))) == NULL) {
		logw("fd store");
		return 2;
	}
	for (i = 0; i < s.nlisten; i++) {
		if (listen_create(&s.listen[i]) < 0) {
			cleanup(&s);
			return 2;
		}
	}
	if (notify_create(&s) < 0) {
		cleanup(&s);
		return 2;
	}
	logx("notify socket %s, fd store %u, restart delay %u ms, up to %u "
	    "restarts", s.notify_path, s.fdstore_max, s.restart_delay_ms,
	    s.max_restarts);

	run(&s);

	cleanup(&s);
	write_status(&s);
	logx("%s", s.state == ST_STOPPED ? "stopped" : "failed");
	return s.state == ST_STOPPED ? 0 : 1;
}
