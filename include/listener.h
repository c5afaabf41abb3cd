/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_LISTENER_H
#define VRNG_LISTENER_H

/*
 * Where front-ends come from: sockets we create (--socket-path), sockets
 * systemd passes (LISTEN_FDS), or one fd the caller opened (--fd, QEMU's
 * backend program conventions).  Owned by the main thread.
 */

#include <stdbool.h>
#include <sys/types.h>
#include <sys/un.h>

#include "handover.h"

struct listener {
	int	 fd;
	bool	 listening;	/* false: fd is already a connection */
	bool	 created;	/* we bound it: unlink at exit if still ours */
	dev_t	 dev;		/* the socket file bind made */
	ino_t	 ino;
	char	 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/*
 * Creates <base>0 .. <base><n-1>.  A stale socket file (nobody listening:
 * connect(2) is refused) is replaced; a live one, or any other file, is
 * an error.
 */
int	listeners_create(struct listener *, unsigned n, const char *base,
	    char *err, size_t errlen);
/*
 * sd_listen_fds(3) without libsystemd: returns the number of listening
 * sockets passed (0 if none are for us) and fills at most max listeners,
 * or -1.  With stored non-NULL, fds whose LISTEN_FDNAMES name starts with
 * "vrng." are this daemon's own from systemd's fd store (fdstore.h) and
 * go there instead, by name.
 */
int	listeners_from_systemd(struct listener *, unsigned max,
	    struct handover_fds *stored, char *err, size_t errlen);
/* --fd: a listening socket or an accepted connection. */
int	listener_from_fd(struct listener *, int fd, char *err, size_t errlen);
/*
 * A listening socket handed over by a predecessor (upgrade.h), with what
 * it knew of it.  Takes ownership of fd (closed on error).
 */
int	listener_adopt(struct listener *, int fd, const char *path,
	    bool created, dev_t dev, ino_t ino, char *err, size_t errlen);
/*
 * Closes the fds and unlinks the socket files we created, but only those
 * still the same file (a later daemon may have replaced one).
 */
void	listeners_close(struct listener *, unsigned n);

#endif
