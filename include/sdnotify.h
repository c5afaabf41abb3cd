/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_SDNOTIFY_H
#define VRNG_SDNOTIFY_H

/*
 * Telling systemd how the daemon is doing (sd_notify(3) without
 * libsystemd).  Owned by the main thread.
 */

/* sd_notify(3) "READY=1" if NOTIFY_SOCKET is set; quiet otherwise. */
void	notify_systemd(const char *state);

#endif
