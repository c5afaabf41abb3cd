/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_IOGUARD_H
#define VRNG_IOGUARD_H

/*
 * Bounded reads and writes of the front-end's eventfds.
 *
 * We set O_NONBLOCK on the eventfds we receive, but the flag lives in the
 * open file description we share with the front-end, which can clear it
 * again at any time.  A hostile front-end could then block a guest thread
 * for ever (a full call counter, a kick read after draining).  So every
 * such read or write runs under a per-thread one-shot timer whose signal
 * interrupts it (EINTR) after IOGUARD_MS.
 */

#include <stddef.h>
#include <sys/types.h>

#define IOGUARD_MS	50

/* Process-wide signal handler; call once before threads start. */
int	ioguard_install(void);
/* Per-thread timer; without it the calls below are plain read/write. */
int	ioguard_thread_init(void);
void	ioguard_thread_fini(void);

/* read(2)/write(2) that fail with EINTR instead of blocking for long. */
ssize_t	ioguard_read(int fd, void *buf, size_t len);
ssize_t	ioguard_write(int fd, const void *buf, size_t len);

#endif
