/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_IOGUARD_H
#define VRNG_IOGUARD_H

/*
 * Bounded reads and writes of the front-end's eventfds.
 *
 * We set O_NONBLOCK on the eventfds we receive, but the flag lives in the
 * open file description we share with the front-end, which can clear it
 * again at any time.  A hostile front-end could then block a guest thread
 * for ever (a full call counter, a kick read after draining).  So such
 * reads and writes run under a per-thread timer whose signal (installed
 * without SA_RESTART) interrupts a call that went to sleep: it returns
 * EINTR.  A call that does not sleep is never cut short by the signal, so
 * EINTR from one of these means "the front-end made it block".
 *
 * Two ways to pay for that timer:
 * - ioguard_read/ioguard_write arm a one-shot timer before the call and
 *   disarm it after (two timer_settime(2) per call): for rare calls.
 * - ioguard_write_often arms a periodic timer once and leaves it running;
 *   the signal handler itself stops it when a whole period passed with no
 *   such write and none in progress.  A guest thread that signals its call
 *   eventfd for every request therefore pays no system call for the guard
 *   while it works, at most two timer signals per period while it works,
 *   and nothing once it sleeps (the timer stops one or two periods after
 *   the last write).  While the timer runs, other system calls of the
 *   thread may see EINTR too; every call on the guest thread retries it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The longest a guarded call blocks: one period (two for _often). */
#define IOGUARD_MS	50

/* Process-wide signal handler (ioguard_thread_init installs it too). */
int	ioguard_install(void);
/*
 * Creates this thread's timer.  Returns 0, or -1 with errno (the calls
 * below then run unguarded).
 */
int	ioguard_thread_init(void);
void	ioguard_thread_fini(void);

/*
 * read(2)/write(2) that fail with EINTR instead of sleeping for more than
 * IOGUARD_MS.  Same results and errno as read/write otherwise.
 */
ssize_t	ioguard_read(int fd, void *buf, size_t len);
ssize_t	ioguard_write(int fd, const void *buf, size_t len);
/*
 * write(2) for an fd written on every request (the call eventfd): EINTR
 * after at most 2 * IOGUARD_MS asleep, and no timer system call while the
 * periodic timer is already running (see above).
 */
ssize_t	ioguard_write_often(int fd, const void *buf, size_t len);
/* Whether the periodic timer runs now (for tests). */
bool	ioguard_watching(void);

#endif
