/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_SDNOTIFY_H
#define VRNG_SDNOTIFY_H

/*
 * Telling systemd how the daemon is doing (sd_notify(3) without
 * libsystemd).  Owned by the main thread.
 */

#include <sys/socket.h>
#include <sys/un.h>

/*
 * The address $NOTIFY_SOCKET names (a path, or "@name" in the abstract
 * namespace).  Returns 1 with *sun and *len filled, 0 if it is unset or
 * empty, -1 if it is not a usable socket path.
 */
int	sdnotify_address(struct sockaddr_un *sun, socklen_t *len);

/* sd_notify(3) "READY=1" if NOTIFY_SOCKET is set; quiet otherwise. */
void	notify_systemd(const char *state);

#endif
