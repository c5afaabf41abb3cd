/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Where front-ends come from: the sockets we create (--socket-path),
 * those systemd passes (LISTEN_FDS) and the one --fd names; closing them
 * and removing the socket files we made.  See listener.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"

#define LISTEN_BACKLOG	4
#define SD_LISTEN_FDS_START 3

/*
 * Whether someone listens on the socket file at sun: a connect(2) that is
 * refused means nobody does (a stale file of a dead process).  The probe
 * does not block: a live socket with a full backlog says EAGAIN.  A live
 * listener sees a connection that closes at once.  Returns 1 live, 0
 * stale, -1 if it cannot tell (errno).
 */
static int
socket_live(const struct sockaddr_un *sun)
{
	int fd, ret;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0)
		ret = 1;
	else if (errno == EAGAIN || errno == EINPROGRESS)
		ret = 1;
	else if (errno == ECONNREFUSED || errno == ENOENT)
		ret = 0;
	else
		ret = -1;
	close(fd);
	return ret;
}

static int
create_one(struct listener *l, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd, live;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		snprintf(err, errlen, "%s: too long for a Unix socket", path);
		return -1;
	}
	/*
	 * A stale socket of an earlier run is replaced; nothing else is, and
	 * above all not a socket another process (a second daemon started on
	 * the same path) is listening on.
	 */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket",
			    path);
			return -1;
		}
		if ((live = socket_live(&sun)) != 0) {
			if (live > 0)
				snprintf(err, errlen, "%s: another process is "
				    "listening on it (a daemon already "
				    "running?); not taking it over", path);
			else
				snprintf(err, errlen, "%s: cannot tell whether "
				    "the socket is in use: %s", path,
				    strerror(errno));
			return -1;
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			snprintf(err, errlen, "cannot remove stale socket "
			    "%s: %s", path, strerror(errno));
			return -1;
		}
	}
	/* Non-blocking: accept4 must not block the main thread. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	/* What bind made, so that at exit we remove that file only. */
	if (lstat(path, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	l->fd = fd;
	l->listening = true;
	l->created = true;
	strlcpy(l->path, path, sizeof(l->path));
	return 0;
}

int
listeners_create(struct listener *ls, unsigned n, const char *base,
    char *err, size_t errlen)
{
	char path[sizeof(ls[0].path) + 16];
	unsigned i;

	for (i = 0; i < n; i++) {
		int len = snprintf(path, sizeof(path), "%s%u", base, i);

		if (len < 0 || (size_t)len >= sizeof(ls[0].path)) {
			snprintf(err, errlen, "%s%u: too long for a Unix "
			    "socket", base, i);
			listeners_close(ls, i);
			return -1;
		}
		if (create_one(&ls[i], path, err, errlen) < 0) {
			listeners_close(ls, i);
			return -1;
		}
	}
	return 0;
}

/* A shared listening socket (--fd, systemd) may be emptied by another. */
static void
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		log_warn("fd %d: O_NONBLOCK", fd);
}

static int
socket_kind(int fd, bool *listening)
{
	struct stat st;
	int acc = 0, type = 0;
	socklen_t len = sizeof(acc);

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    type != SOCK_STREAM)
		return -1;
	len = sizeof(acc);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0)
		return -1;
	*listening = acc != 0;
	return 0;
}

int
listener_from_fd(struct listener *l, int fd, char *err, size_t errlen)
{
	memset(l, 0, sizeof(*l));
	if (socket_kind(fd, &l->listening) < 0) {
		snprintf(err, errlen, "--fd %d is not a stream socket", fd);
		return -1;
	}
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (l->listening)
		set_nonblock(fd);
	l->fd = fd;
	snprintf(l->path, sizeof(l->path), "fd %d", fd);
	return 0;
}

int
listener_adopt(struct listener *l, int fd, const char *path, bool created,
    dev_t dev, ino_t ino, char *err, size_t errlen)
{
	memset(l, 0, sizeof(*l));
	if (socket_kind(fd, &l->listening) < 0 || !l->listening) {
		snprintf(err, errlen, "handed-over socket %s is not a "
		    "listening stream socket", path);
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	set_nonblock(fd);
	l->fd = fd;
	l->created = created;
	l->dev = dev;
	l->ino = ino;
	strlcpy(l->path, path, sizeof(l->path));
	return 0;
}

/*
 * The i-th name of LISTEN_FDNAMES (colon-separated, sd_listen_fds(3)) into
 * out, or "" if there is none.
 */
static void
fd_name(const char *names, long i, char *out, size_t outlen)
{
	const char *p = names, *end;
	size_t len;

	out[0] = '\0';
	for (; p != NULL && i > 0; i--)
		if ((p = strchr(p, ':')) != NULL)
			p++;
	if (p == NULL)
		return;
	end = strchr(p, ':');
	len = end != NULL ? (size_t)(end - p) : strlen(p);
	if (len < outlen) {
		memcpy(out, p, len);
		out[len] = '\0';
	}
}

int
listeners_from_systemd(struct listener *ls, unsigned max,
    struct handover_fds *stored, char *err, size_t errlen)
{
	const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
	const char *names_s = getenv("LISTEN_FDNAMES");
	char name[HANDOVER_NAME_MAX], *names = NULL, *end;
	long pid, n, i;
	int count = 0;
	bool ours;

	if (pid_s == NULL || fds_s == NULL)
		return 0;
	errno = 0;
	pid = strtol(pid_s, &end, 10);
	ours = errno == 0 && *end == '\0' && pid == (long)getpid();
	errno = 0;
	n = strtol(fds_s, &end, 10);
	if (ours && (errno != 0 || *end != '\0' || fds_s[0] < '0' ||
	    fds_s[0] > '9' || n < 0 || n > 65536)) {
		snprintf(err, errlen, "LISTEN_FDS=%s is not a number", fds_s);
		return -1;
	}
	if (names_s != NULL && (names = strdup(names_s)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* sd_listen_fds(3): not passed on to children, in any case. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (!ours)
		n = 0;	/* meant for another process */
	if (stored == NULL && n > (long)max) {
		snprintf(err, errlen, "systemd passed %ld sockets, at most %u "
		    "guests", n, max);
		goto fail;
	}
	for (i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + (int)i;
		struct listener *l;

		fcntl(fd, F_SETFD, FD_CLOEXEC);
		fd_name(names, i, name, sizeof(name));
		/* Ours, from the fd store (fdstore.h): not a listener. */
		if (stored != NULL && strncmp(name, "vrng.", 5) == 0) {
			if (handover_fds_add(stored, name, fd) < 0) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			continue;
		}
		if ((unsigned)count >= max) {
			snprintf(err, errlen, "systemd passed %ld sockets, at "
			    "most %u guests", n, max);
			goto fail;
		}
		l = &ls[count];
		memset(l, 0, sizeof(*l));
		if (socket_kind(fd, &l->listening) < 0 || !l->listening) {
			snprintf(err, errlen, "systemd socket fd %d is not a "
			    "listening stream socket", fd);
			goto fail;
		}
		set_nonblock(fd);
		l->fd = fd;
		snprintf(l->path, sizeof(l->path), "systemd fd %d", fd);
		count++;
	}
	free(names);
	return count;
fail:
	free(names);
	return -1;
}

/* Removes the socket file l created, if it is still that file. */
static void
remove_ours(const struct listener *l)
{
	struct stat st;

	if (lstat(l->path, &st) < 0) {
		if (errno != ENOENT)
			log_warn("%s", l->path);
		return;
	}
	if (!S_ISSOCK(st.st_mode) || st.st_dev != l->dev ||
	    st.st_ino != l->ino) {
		log_warnx("%s is no longer the socket this daemon created; "
		    "leaving it", l->path);
		return;
	}
	if (unlink(l->path) < 0 && errno != ENOENT)
		log_warn("removing %s", l->path);
}

void
listeners_close(struct listener *ls, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		if (ls[i].fd >= 0)
			close(ls[i].fd);
		ls[i].fd = -1;
		if (ls[i].created)
			remove_ours(&ls[i]);
		ls[i].created = false;
	}
}
