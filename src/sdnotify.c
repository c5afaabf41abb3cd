/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (a path
 * or an abstract "@name").  A daemon not started by systemd, or with an
 * unusable NOTIFY_SOCKET, runs on: a warning at most.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "sdnotify.h"

int
sdnotify_address(struct sockaddr_un *sun, socklen_t *len)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t n;

	if (path == NULL || path[0] == '\0')
		return 0;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sun->sun_path))
		return -1;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n);
	if (sun->sun_path[0] == '@')
		sun->sun_path[0] = '\0';	/* abstract namespace */
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	return 1;
}

void
notify_systemd(const char *state)
{
	struct sockaddr_un sun;
	socklen_t len;
	int fd, r;

	if ((r = sdnotify_address(&sun, &len)) == 0)
		return;
	if (r < 0) {
		log_warnx("NOTIFY_SOCKET=%s: not a usable socket path",
		    getenv("NOTIFY_SOCKET"));
		return;
	}
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		log_warn("notify socket");
		return;
	}
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, len) < 0)
		log_warn("notifying systemd at %s", getenv("NOTIFY_SOCKET"));
	close(fd);
}
