/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The SCM_RIGHTS sender shared by the test suites.  See sendfds.h.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "sendfds.h"

ssize_t
send_fds(int sock, const struct iovec *iov, size_t iovcnt, const int *fds,
    unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(SENDFDS_MAX * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct msghdr mh;
	struct cmsghdr *cmsg;
	ssize_t n;

	if (nfds > SENDFDS_MAX) {
		errno = EINVAL;
		return -1;
	}
	memset(&mh, 0, sizeof(mh));
	memset(&control, 0, sizeof(control));
	mh.msg_iov = (struct iovec *)(uintptr_t)iov;
	mh.msg_iovlen = iovcnt;
	if (nfds > 0) {
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cmsg = CMSG_FIRSTHDR(&mh);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));
	}
	do {
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	return n;
}
