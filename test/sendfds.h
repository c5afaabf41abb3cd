/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_TEST_SENDFDS_H
#define VRNG_TEST_SENDFDS_H

/*
 * The one SCM_RIGHTS sender of the test suites (unit and integration):
 * the front-end's side of a vhost-user message that carries fds.  No
 * include/ headers, so that the fake front-end stays independent of the
 * daemon's definitions.
 */

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* More than any test sends: the kernel's limit is 253 (SCM_MAX_FD). */
#define SENDFDS_MAX	64

/*
 * One sendmsg(2) of the iovcnt pieces of iov with nfds fds attached as
 * SCM_RIGHTS (none if nfds is 0), MSG_NOSIGNAL, retried on EINTR.
 * Returns what sendmsg returned; -1 with EINVAL if nfds > SENDFDS_MAX.
 */
ssize_t	send_fds(int sock, const struct iovec *iov, size_t iovcnt,
	    const int *fds, unsigned nfds);

#endif
