/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user message framing (QEMU docs/interop/vhost-user.rst).
 *
 * Security model: the front-end is a separate process and may be buggy or
 * hostile.  Nothing it sends is trusted: the header is read exactly, the
 * payload size is bounded before anything is read into a buffer, truncated
 * control data is refused, and every received fd is either handed to the
 * caller or closed here.  A message we cannot frame ends the connection,
 * never the daemon.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "vu_proto.h"

static const char *const request_names[VU_REQUEST_MAX] = {
	[VU_GET_FEATURES] = "GET_FEATURES",
	[VU_SET_FEATURES] = "SET_FEATURES",
	[VU_SET_OWNER] = "SET_OWNER",
	[VU_RESET_OWNER] = "RESET_OWNER",
	[VU_SET_MEM_TABLE] = "SET_MEM_TABLE",
	[VU_SET_LOG_BASE] = "SET_LOG_BASE",
	[VU_SET_LOG_FD] = "SET_LOG_FD",
	[VU_SET_VRING_NUM] = "SET_VRING_NUM",
	[VU_SET_VRING_ADDR] = "SET_VRING_ADDR",
	[VU_SET_VRING_BASE] = "SET_VRING_BASE",
	[VU_GET_VRING_BASE] = "GET_VRING_BASE",
	[VU_SET_VRING_KICK] = "SET_VRING_KICK",
	[VU_SET_VRING_CALL] = "SET_VRING_CALL",
	[VU_SET_VRING_ERR] = "SET_VRING_ERR",
	[VU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
	[VU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
	[VU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
	[VU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
	[19] = "SEND_RARP",
	[20] = "NET_SET_MTU",
	[21] = "SET_BACKEND_REQ_FD",
	[22] = "IOTLB_MSG",
	[23] = "SET_VRING_ENDIAN",
	[24] = "GET_CONFIG",
	[25] = "SET_CONFIG",
	[26] = "CREATE_CRYPTO_SESSION",
	[27] = "CLOSE_CRYPTO_SESSION",
	[28] = "POSTCOPY_ADVISE",
	[29] = "POSTCOPY_LISTEN",
	[30] = "POSTCOPY_END",
	[31] = "GET_INFLIGHT_FD",
	[32] = "SET_INFLIGHT_FD",
	[33] = "GPU_SET_SOCKET",
	[VU_RESET_DEVICE] = "RESET_DEVICE",
	[35] = "VRING_KICK",
	[VU_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
	[VU_ADD_MEM_REG] = "ADD_MEM_REG",
	[VU_REM_MEM_REG] = "REM_MEM_REG",
	[39] = "SET_STATUS",
	[40] = "GET_STATUS",
};

const char *
vu_request_name(uint32_t request)
{
	if (request < VU_REQUEST_MAX && request_names[request] != NULL)
		return request_names[request];
	return "unknown";
}

void
vu_msg_close_fds(struct vu_msg *msg)
{
	unsigned i;

	for (i = 0; i < msg->nfds; i++) {
		if (msg->fds[i] >= 0)
			close(msg->fds[i]);
		msg->fds[i] = -1;
	}
	msg->nfds = 0;
}

/* Where one message must be complete by, and what may cut it short. */
struct deadline {
	int64_t	 end_ms;	/* CLOCK_MONOTONIC */
	int	 stop_fd;	/* readable: give up at once; -1: none */
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Waits until sock has data, within the message's deadline.  A front-end
 * that feeds a message a byte at a time gets the whole message's time,
 * not a timeout per byte, and a stop request is seen at once.
 */
static int
wait_readable(int sock, const struct deadline *dl)
{
	struct pollfd pfd[2] = {
		{ .fd = sock, .events = POLLIN },
		{ .fd = dl->stop_fd, .events = POLLIN },
	};
	int64_t left;
	int n;

	for (;;) {
		left = dl->end_ms - now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		n = poll(pfd, 2, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (pfd[1].revents) {
			errno = ECANCELED;
			return -1;
		}
		if (pfd[0].revents)
			return 0;
	}
}

/* Reads exactly len bytes (no control data); 0, or -1 with errno. */
static int
read_full(int sock, void *buf, size_t len, const struct deadline *dl)
{
	char *p = buf;
	ssize_t n;

	while (len > 0) {
		if (wait_readable(sock, dl) < 0)
			return -1;
		n = recv(sock, p, len, MSG_DONTWAIT);
		if (n == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * The header comes with the control data (QEMU sends each message with one
 * sendmsg).  Collects the fds; refuses truncated control data.
 */
static enum vu_recv_result
recv_header(int sock, struct vu_msg *msg, const struct deadline *dl)
{
	union {
		char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = &msg->hdr,
	    .iov_len = sizeof(msg->hdr) };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *cmsg;
	bool truncated;
	ssize_t n;

	do {
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n == 0)
		return VU_RECV_EOF;
	if (n < 0) {
		if (errno == ECONNRESET)
			return VU_RECV_EOF;
		log_warn("reading message header");
		return VU_RECV_ERROR;
	}

	for (cmsg = CMSG_FIRSTHDR(&mh); cmsg != NULL;
	    cmsg = CMSG_NXTHDR(&mh, cmsg)) {
		size_t count, i;
		int fd;

		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < count; i++) {
			memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int),
			    sizeof(fd));
			if (msg->nfds < VU_MAX_FDS)
				msg->fds[msg->nfds++] = fd;
			else
				close(fd);	/* cannot happen: buffer size */
		}
	}
	truncated = (mh.msg_flags & MSG_CTRUNC) != 0;
	if (truncated) {
		log_guest_err("front-end sent more than %d fds with one "
		    "message", VU_MAX_FDS);
		vu_msg_close_fds(msg);
		return VU_RECV_ERROR;
	}
	if ((size_t)n < sizeof(msg->hdr) &&
	    read_full(sock, (char *)&msg->hdr + n,
	    sizeof(msg->hdr) - (size_t)n, dl) < 0) {
		log_guest_err("truncated message header (%zd of %zu bytes)",
		    n, sizeof(msg->hdr));
		vu_msg_close_fds(msg);
		return VU_RECV_ERROR;
	}
	return VU_RECV_OK;
}

enum vu_recv_result
vu_msg_recv(int sock, struct vu_msg *msg)
{
	return vu_msg_recv_until(sock, msg, -1, VU_MSG_TIMEOUT_MS);
}

enum vu_recv_result
vu_msg_recv_until(int sock, struct vu_msg *msg, int stop_fd, int timeout_ms)
{
	struct deadline dl = { now_ms() + timeout_ms, stop_fd };
	enum vu_recv_result res;
	char discard[256];
	size_t left;

	memset(&msg->hdr, 0, sizeof(msg->hdr));
	memset(&msg->payload, 0, sizeof(msg->payload));
	msg->nfds = 0;

	if ((res = recv_header(sock, msg, &dl)) != VU_RECV_OK)
		return res;

	if ((msg->hdr.flags & VU_VERSION_MASK) != VU_VERSION) {
		log_guest_err("%s: unsupported protocol version %u",
		    vu_request_name(msg->hdr.request),
		    msg->hdr.flags & VU_VERSION_MASK);
		goto fail;
	}
	if (msg->hdr.size > VU_DISCARD_MAX) {
		log_guest_err("%s: payload of %u bytes is too large",
		    vu_request_name(msg->hdr.request), msg->hdr.size);
		goto fail;
	}
	if (msg->hdr.size <= VU_PAYLOAD_MAX) {
		if (read_full(sock, &msg->payload, msg->hdr.size, &dl) < 0) {
			log_guest_err("%s: truncated payload (%u bytes "
			    "announced)", vu_request_name(msg->hdr.request),
			    msg->hdr.size);
			goto fail;
		}
		return VU_RECV_OK;
	}
	/*
	 * Larger than any request we implement: keep the stream in step and
	 * let the dispatcher refuse the request by its size.
	 */
	for (left = msg->hdr.size; left > 0;) {
		size_t chunk = left < sizeof(discard) ? left : sizeof(discard);

		if (read_full(sock, discard, chunk, &dl) < 0) {
			log_guest_err("%s: truncated payload",
			    vu_request_name(msg->hdr.request));
			goto fail;
		}
		left -= chunk;
	}
	return VU_RECV_OK;
fail:
	vu_msg_close_fds(msg);
	return VU_RECV_ERROR;
}

int
vu_msg_send_reply(int sock, struct vu_msg *msg)
{
	struct iovec iov[2];
	struct msghdr mh;
	size_t total, done = 0;
	ssize_t n;

	msg->hdr.flags = VU_VERSION | VU_FLAG_REPLY;
	iov[0].iov_base = &msg->hdr;
	iov[0].iov_len = sizeof(msg->hdr);
	iov[1].iov_base = &msg->payload;
	iov[1].iov_len = msg->hdr.size;
	total = sizeof(msg->hdr) + msg->hdr.size;

	while (done < total) {
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = 2;
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_warn("sending %s reply",
			    vu_request_name(msg->hdr.request));
			return -1;
		}
		done += (size_t)n;
		/* Advance the iovecs past what went out. */
		while (n > 0) {
			size_t step = (size_t)n < iov[0].iov_len ?
			    (size_t)n : iov[0].iov_len;

			iov[0].iov_base = (char *)iov[0].iov_base + step;
			iov[0].iov_len -= step;
			n -= (ssize_t)step;
			if (iov[0].iov_len == 0) {
				iov[0] = iov[1];
				iov[1].iov_len = 0;
			}
		}
	}
	return 0;
}
