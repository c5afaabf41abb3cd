/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The request dispatcher.  The device's socket is one end of a
 * socketpair; the test reads the replies from the other end.  Messages
 * are built in memory and handed to vu_dev_handle directly, as the guest
 * thread does after vu_msg_recv.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "unit.h"
#include "vu_dev.h"

#define F_PROTOCOL	(1ull << VHOST_USER_F_PROTOCOL_FEATURES)
#define F_EVENT_IDX	(1ull << VIRTIO_RING_F_EVENT_IDX)
#define F_VERSION_1	(1ull << VIRTIO_F_VERSION_1)
#define PF_REPLY_ACK	(1ull << VU_PROTOCOL_F_REPLY_ACK)

#define GPA0		0x0ull
#define UVA0		0x7f5500000000ull
#define MEM_SIZE	(256ull << 10)

static struct vu_dev dev;
static int peer;
static struct vu_msg msg;

static void
setup(void)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	vu_dev_init(&dev, sv[0]);
	peer = sv[1];
}

static void
teardown(void)
{
	vu_dev_cleanup(&dev);
	close(peer);
}

static void
msg_init(uint32_t request, uint32_t flags, uint32_t size)
{
	unsigned i;

	memset(&msg, 0, sizeof(msg));
	msg.hdr.request = request;
	msg.hdr.flags = VU_VERSION | flags;
	msg.hdr.size = size;
	for (i = 0; i < VU_MAX_FDS; i++)
		msg.fds[i] = -1;
}

static void
msg_add_fd(int fd)
{
	ck_assert_uint_lt(msg.nfds, VU_MAX_FDS);
	msg.fds[msg.nfds++] = fd;
}

static int
handle(void)
{
	return vu_dev_handle(&dev, &msg);
}

static int
send_u64(uint32_t request, uint32_t flags, uint64_t v)
{
	msg_init(request, flags, 8);
	msg.payload.u64 = v;
	return handle();
}

static int
send_state(uint32_t request, uint32_t flags, uint32_t index, uint32_t num)
{
	msg_init(request, flags, sizeof(struct vu_vring_state));
	msg.payload.state.index = index;
	msg.payload.state.num = num;
	return handle();
}

static int
send_none(uint32_t request, uint32_t flags)
{
	msg_init(request, flags, 0);
	return handle();
}

/* SET_VRING_KICK/CALL/ERR with an fd, or with the no-fd bit if fd < 0. */
static int
send_vring_fd(uint32_t request, uint32_t index, int fd)
{
	msg_init(request, 0, 8);
	msg.payload.u64 = index;
	if (fd >= 0)
		msg_add_fd(fd);
	else
		msg.payload.u64 |= VU_VRING_NOFD;
	return handle();
}

static bool
no_reply(void)
{
	char c;

	return recv(peer, &c, 1, MSG_DONTWAIT | MSG_PEEK) == -1 &&
	    errno == EAGAIN;
}

/* The one reply the last message produced. */
static void
read_reply(struct vu_msg *r, uint32_t request)
{
	ck_assert_msg(!no_reply(), "no reply to %s",
	    vu_request_name(request));
	ck_assert_int_eq(vu_msg_recv(peer, r), VU_RECV_OK);
	ck_assert_uint_eq(r->hdr.request, request);
	ck_assert_uint_eq(r->hdr.flags, VU_VERSION | VU_FLAG_REPLY);
	ck_assert_uint_eq(r->nfds, 0);
	ck_assert_msg(no_reply(), "more than one reply to %s",
	    vu_request_name(request));
}

static uint64_t
reply_u64(uint32_t request)
{
	struct vu_msg r;

	read_reply(&r, request);
	ck_assert_uint_eq(r.hdr.size, 8);
	return r.payload.u64;
}

static void
negotiate_reply_ack(void)
{
	ck_assert_int_eq(send_u64(VU_SET_FEATURES, 0, F_VERSION_1 |
	    F_PROTOCOL), 0);
	ck_assert_int_eq(send_u64(VU_SET_PROTOCOL_FEATURES, 0, PF_REPLY_ACK),
	    0);
	ck_assert(no_reply());
}

static int
an_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	ck_assert_int_ge(fd, 0);
	return fd;
}

/* --- replies --------------------------------------------------------- */

START_TEST(get_features)
{
	ck_assert_int_eq(send_none(VU_GET_FEATURES, 0), 0);
	ck_assert_uint_eq(reply_u64(VU_GET_FEATURES), VU_OFFERED_FEATURES);
	ck_assert(VU_OFFERED_FEATURES & F_PROTOCOL);
	ck_assert(VU_OFFERED_FEATURES & F_VERSION_1);
}
END_TEST

START_TEST(get_others)
{
	ck_assert_int_eq(send_none(VU_GET_PROTOCOL_FEATURES, 0), 0);
	ck_assert_uint_eq(reply_u64(VU_GET_PROTOCOL_FEATURES),
	    VU_OFFERED_PROTOCOL_FEATURES);
	ck_assert_int_eq(send_none(VU_GET_QUEUE_NUM, 0), 0);
	ck_assert_uint_eq(reply_u64(VU_GET_QUEUE_NUM), 1);
	ck_assert_int_eq(send_none(VU_GET_MAX_MEM_SLOTS, 0), 0);
	ck_assert_uint_eq(reply_u64(VU_GET_MAX_MEM_SLOTS),
	    MEMTABLE_MAX_SLOTS);
}
END_TEST

/* A GET with NEED_REPLY gets its answer, not an extra ack as well. */
START_TEST(get_with_need_reply_one_reply)
{
	negotiate_reply_ack();
	ck_assert_int_eq(send_none(VU_GET_FEATURES, VU_FLAG_NEED_REPLY), 0);
	ck_assert_uint_eq(reply_u64(VU_GET_FEATURES), VU_OFFERED_FEATURES);
	ck_assert_int_eq(send_state(VU_GET_VRING_BASE, VU_FLAG_NEED_REPLY, 0,
	    0), 0);
	{
		struct vu_msg r;

		read_reply(&r, VU_GET_VRING_BASE);
		ck_assert_uint_eq(r.hdr.size, 8);
	}
}
END_TEST

START_TEST(reply_to_gone_peer_fails)
{
	close(peer);
	peer = -1;
	ck_assert_int_eq(send_none(VU_GET_FEATURES, 0), -1);
}
END_TEST

/* --- framing rules ------------------------------------------------------ */

/* Wrong payload sizes: hang up, even when an ack was asked for. */
START_TEST(size_rules)
{
	static const struct {
		uint32_t request, size;
	} bad[] = {
		{ VU_GET_FEATURES, 8 },
		{ VU_SET_FEATURES, 0 },
		{ VU_SET_FEATURES, 4 },
		{ VU_SET_FEATURES, 16 },
		{ VU_SET_OWNER, 1 },
		{ VU_SET_VRING_NUM, 4 },
		{ VU_SET_VRING_NUM, 16 },
		{ VU_SET_VRING_ADDR, 8 },
		{ VU_SET_VRING_ADDR, 39 },
		{ VU_SET_VRING_BASE, 0 },
		{ VU_GET_VRING_BASE, 0 },
		{ VU_SET_VRING_KICK, 4 },
		{ VU_SET_VRING_ENABLE, 8 + 1 },
		{ VU_SET_MEM_TABLE, 4 },
		{ VU_SET_MEM_TABLE, VU_PAYLOAD_MAX + 1 },
		{ VU_SET_MEM_TABLE, 4096 },
		{ VU_ADD_MEM_REG, 32 },
		{ VU_REM_MEM_REG, 48 },
		{ VU_RESET_DEVICE, 8 },
		{ VU_GET_MAX_MEM_SLOTS, 8 },
	};
	unsigned i;

	negotiate_reply_ack();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t before = dev.bad_messages;

		msg_init(bad[i].request, VU_FLAG_NEED_REPLY, bad[i].size);
		ck_assert_msg(handle() == -1, "%s with %u bytes accepted",
		    vu_request_name(bad[i].request), bad[i].size);
		ck_assert_msg(no_reply(), "%s with %u bytes answered",
		    vu_request_name(bad[i].request), bad[i].size);
		ck_assert_uint_eq(dev.bad_messages, before + 1);
	}
}
END_TEST

/* Wrong fd counts: hang up, and the fds are closed. */
START_TEST(fd_rules)
{
	static const struct {
		uint32_t request, size;
		uint64_t u64;
		unsigned nfds;
	} bad[] = {
		{ VU_GET_FEATURES, 0, 0, 1 },
		{ VU_SET_FEATURES, 8, 0, 1 },
		{ VU_SET_OWNER, 0, 0, 2 },
		{ VU_SET_VRING_NUM, 8, 0, 1 },
		{ VU_SET_VRING_KICK, 8, VU_VRING_NOFD, 1 },
		{ VU_SET_VRING_KICK, 8, 0, 0 },
		{ VU_SET_VRING_KICK, 8, 0, 2 },
		{ VU_SET_VRING_CALL, 8, VU_VRING_NOFD, 1 },
		{ VU_SET_VRING_CALL, 8, 0, 2 },
		{ VU_SET_VRING_ERR, 8, 0, 0 },
		{ VU_ADD_MEM_REG, 40, 0, 0 },
		{ VU_ADD_MEM_REG, 40, 0, 2 },
		{ VU_REM_MEM_REG, 40, 0, 2 },
		{ VU_GET_MAX_MEM_SLOTS, 0, 0, 1 },
	};
	int fds[VU_MAX_FDS];
	unsigned i, k;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg_init(bad[i].request, 0, bad[i].size);
		msg.payload.u64 = bad[i].u64;
		for (k = 0; k < bad[i].nfds; k++)
			msg_add_fd(fds[k] = an_eventfd());
		ck_assert_msg(handle() == -1, "%s with %u fds accepted",
		    vu_request_name(bad[i].request), bad[i].nfds);
		ck_assert(no_reply());
		ck_assert_uint_eq(msg.nfds, 0);
		for (k = 0; k < bad[i].nfds; k++)
			ck_assert_msg(unit_fd_closed(fds[k]), "%s: fd %u "
			    "left open", vu_request_name(bad[i].request), k);
	}
	ck_assert_int_eq(dev.kick_fd, -1);
	ck_assert_int_eq(dev.call_fd, -1);
	ck_assert_int_eq(dev.err_fd, -1);
	ck_assert(!dev.started);
}
END_TEST

/* virtio-rng has one queue: index 1 (or anything else) is refused. */
START_TEST(ring_index_rules)
{
	int fd;

	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 1, 16), -1);
	ck_assert_uint_eq(dev.vq.num, 0);
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 256, 16), -1);
	ck_assert_int_eq(send_state(VU_SET_VRING_BASE, 0, 1, 5), -1);
	ck_assert_int_eq(send_state(VU_SET_VRING_ENABLE, 0, 1, 1), -1);
	ck_assert(!dev.enabled);
	ck_assert_int_eq(send_state(VU_GET_VRING_BASE, 0, 1, 0), -1);
	ck_assert(no_reply());
	msg_init(VU_SET_VRING_ADDR, 0, sizeof(struct vu_vring_addr));
	msg.payload.addr.index = 1;
	ck_assert_int_eq(handle(), -1);
	ck_assert(!dev.vq.addr_set);

	fd = an_eventfd();
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 1, fd), -1);
	ck_assert(unit_fd_closed(fd));
	ck_assert(!dev.started);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_CALL, 0xff, -1), -1);

	/* With REPLY_ACK: a failure the front-end hears of, not a hang-up. */
	negotiate_reply_ack();
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, VU_FLAG_NEED_REPLY, 1,
	    16), 0);
	ck_assert_uint_ne(reply_u64(VU_SET_VRING_NUM), 0);
	ck_assert_uint_eq(dev.vq.num, 0);
	/*
	 * But a request with a reply of its own is not answered with an ack
	 * (the front-end would read it as the vring state): hang up.
	 */
	ck_assert_int_eq(send_state(VU_GET_VRING_BASE, VU_FLAG_NEED_REPLY, 1,
	    0), -1);
	ck_assert(no_reply());
}
END_TEST

START_TEST(unsupported_request)
{
	int fd = an_eventfd();

	/* SET_LOG_FD, GET_CONFIG: not implemented. */
	msg_init(VU_SET_LOG_FD, 0, 0);
	msg_add_fd(fd);
	ck_assert_int_eq(handle(), -1);
	ck_assert(unit_fd_closed(fd));
	ck_assert_int_eq(send_none(24, 0), -1);
	ck_assert_int_eq(send_none(0, 0), -1);
	ck_assert_int_eq(send_none(VU_REQUEST_MAX, 0), -1);
	ck_assert_int_eq(send_none(UINT32_MAX, 0), -1);
	ck_assert(no_reply());

	negotiate_reply_ack();
	ck_assert_int_eq(send_none(24, VU_FLAG_NEED_REPLY), 0);
	ck_assert_uint_ne(reply_u64(24), 0);
}
END_TEST

/* --- REPLY_ACK ---------------------------------------------------------- */

START_TEST(reply_ack)
{
	negotiate_reply_ack();
	ck_assert_uint_eq(dev.protocol_features, PF_REPLY_ACK);

	ck_assert_int_eq(send_none(VU_SET_OWNER, VU_FLAG_NEED_REPLY), 0);
	ck_assert_uint_eq(reply_u64(VU_SET_OWNER), 0);
	ck_assert(dev.owner);

	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, VU_FLAG_NEED_REPLY, 0,
	    3), 0);
	ck_assert_uint_ne(reply_u64(VU_SET_VRING_NUM), 0);
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, VU_FLAG_NEED_REPLY, 0,
	    64), 0);
	ck_assert_uint_eq(reply_u64(VU_SET_VRING_NUM), 0);
	ck_assert_uint_eq(dev.vq.num, 64);

	/* No NEED_REPLY: a failure hangs up, a success is silent. */
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 0, 3), -1);
	ck_assert(no_reply());
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 0, 32), 0);
	ck_assert(no_reply());
}
END_TEST

/* NEED_REPLY without the negotiated feature: no ack. */
START_TEST(need_reply_without_reply_ack)
{
	ck_assert_int_eq(send_none(VU_SET_OWNER, VU_FLAG_NEED_REPLY), 0);
	ck_assert(no_reply());
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, VU_FLAG_NEED_REPLY, 0,
	    3), -1);
	ck_assert(no_reply());
	/* Unoffered protocol bits are not acked either. */
	ck_assert_int_eq(send_u64(VU_SET_PROTOCOL_FEATURES, 0, ~PF_REPLY_ACK),
	    0);
	ck_assert_uint_eq(dev.protocol_features & PF_REPLY_ACK, 0);
	ck_assert_uint_eq(dev.protocol_features &
	    ~VU_OFFERED_PROTOCOL_FEATURES, 0);
	ck_assert_int_eq(send_none(VU_SET_OWNER, VU_FLAG_NEED_REPLY), 0);
	ck_assert(no_reply());
}
END_TEST

/* --- features and ring state ------------------------------------------ */

/* vhost-user.rst "Ring states": enabled at once unless bit 30 is acked. */
START_TEST(set_features_enables_without_protocol_features)
{
	ck_assert(!dev.enabled);
	ck_assert_int_eq(send_u64(VU_SET_FEATURES, 0, F_VERSION_1), 0);
	ck_assert(dev.enabled);
	ck_assert_uint_eq(dev.features, F_VERSION_1);
	ck_assert(!dev.vq.event_idx);
}
END_TEST

START_TEST(set_features_with_protocol_features)
{
	ck_assert_int_eq(send_u64(VU_SET_FEATURES, 0, F_VERSION_1 |
	    F_PROTOCOL | F_EVENT_IDX), 0);
	ck_assert(!dev.enabled);
	ck_assert(dev.vq.event_idx);
	ck_assert_int_eq(send_state(VU_SET_VRING_ENABLE, 0, 0, 1), 0);
	ck_assert(dev.enabled);
	ck_assert_int_eq(send_state(VU_SET_VRING_ENABLE, 0, 0, 0), 0);
	ck_assert(!dev.enabled);
	ck_assert_int_eq(send_state(VU_SET_VRING_ENABLE, 0, 0, 2), -1);
	ck_assert_int_eq(send_state(VU_SET_VRING_ENABLE, 0, 0, UINT32_MAX),
	    -1);
	ck_assert(!dev.enabled);
}
END_TEST

START_TEST(set_features_masks_unoffered)
{
	ck_assert_int_eq(send_u64(VU_SET_FEATURES, 0, UINT64_MAX), 0);
	ck_assert_uint_eq(dev.features, VU_OFFERED_FEATURES);
}
END_TEST

START_TEST(vring_num_while_started)
{
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 0, 16), 0);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, -1), 0);
	ck_assert(dev.started);
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 0, 32), -1);
	ck_assert_uint_eq(dev.vq.num, 16);
	ck_assert_int_eq(send_state(VU_SET_VRING_BASE, 0, 0, 7), -1);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 0);
	/* Stopped by GET_VRING_BASE: allowed again. */
	ck_assert_int_eq(send_state(VU_GET_VRING_BASE, 0, 0, 0), 0);
	(void)reply_u64(VU_GET_VRING_BASE);
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 0, 32), 0);
	ck_assert_uint_eq(dev.vq.num, 32);
}
END_TEST

START_TEST(vring_num_values)
{
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 0, 0), -1);
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 0, 65536), -1);
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 0, 1), 0);
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 0, 32768), 0);
	ck_assert_uint_eq(dev.vq.num, 32768);
}
END_TEST

START_TEST(vring_base_bounds)
{
	ck_assert_int_eq(send_state(VU_SET_VRING_BASE, 0, 0, 65535), 0);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 65535);
	ck_assert_int_eq(send_state(VU_SET_VRING_BASE, 0, 0, 65536), -1);
	ck_assert_int_eq(send_state(VU_SET_VRING_BASE, 0, 0, UINT32_MAX), -1);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 65535);
	ck_assert_int_eq(send_state(VU_SET_VRING_BASE, 0, 0, 0), 0);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 0);
}
END_TEST

START_TEST(get_vring_base_stops)
{
	struct vu_msg r;
	int kick = an_eventfd();

	ck_assert_int_eq(send_state(VU_SET_VRING_BASE, 0, 0, 1234), 0);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, kick), 0);
	ck_assert(dev.started);
	ck_assert_int_eq(dev.kick_fd, kick);

	ck_assert_int_eq(send_state(VU_GET_VRING_BASE, 0, 0, 0), 0);
	read_reply(&r, VU_GET_VRING_BASE);
	ck_assert_uint_eq(r.hdr.size, sizeof(struct vu_vring_state));
	ck_assert_uint_eq(r.payload.state.index, 0);
	ck_assert_uint_eq(r.payload.state.num, 1234);
	ck_assert(!dev.started);
	ck_assert_int_eq(dev.kick_fd, -1);
	ck_assert(unit_fd_closed(kick));
}
END_TEST

START_TEST(vring_kick_nofd_polls)
{
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, -1), 0);
	ck_assert(dev.started);
	ck_assert(dev.kick_polling);
	ck_assert_int_eq(dev.kick_fd, -1);
}
END_TEST

START_TEST(vring_fds_replaced)
{
	int k1 = an_eventfd(), k2 = an_eventfd(), c1 = an_eventfd(),
	    c2 = an_eventfd(), e1 = an_eventfd();

	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, k1), 0);
	ck_assert(!dev.kick_polling);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, k2), 0);
	ck_assert(unit_fd_closed(k1));
	ck_assert_int_eq(dev.kick_fd, k2);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, -1), 0);
	ck_assert(unit_fd_closed(k2));
	ck_assert(dev.kick_polling);

	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_CALL, 0, c1), 0);
	ck_assert_int_eq(dev.call_fd, c1);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_CALL, 0, c2), 0);
	ck_assert(unit_fd_closed(c1));
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_CALL, 0, -1), 0);
	ck_assert(unit_fd_closed(c2));
	ck_assert_int_eq(dev.call_fd, -1);

	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_ERR, 0, e1), 0);
	ck_assert_int_eq(dev.err_fd, e1);
	/* Closed by cleanup (teardown): checked in cleanup_closes_all. */
}
END_TEST

/* A fresh kick restarts the ring: a broken latch is cleared. */
START_TEST(vring_kick_clears_broken)
{
	dev.vq.broken = true;
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, -1), 0);
	ck_assert(!dev.vq.broken);
}
END_TEST

START_TEST(vring_addr)
{
	msg_init(VU_SET_VRING_ADDR, 0, sizeof(struct vu_vring_addr));
	msg.payload.addr.desc_user_addr = UVA0 + 8;
	msg.payload.addr.avail_user_addr = UVA0 + 0x1000;
	msg.payload.addr.used_user_addr = UVA0 + 0x2000;
	ck_assert_int_eq(handle(), -1);
	ck_assert(!dev.vq.addr_set);
	msg_init(VU_SET_VRING_ADDR, 0, sizeof(struct vu_vring_addr));
	msg.payload.addr.desc_user_addr = UVA0;
	msg.payload.addr.avail_user_addr = UVA0 + 0x1000;
	msg.payload.addr.used_user_addr = UVA0 + 0x2000;
	ck_assert_int_eq(handle(), 0);
	ck_assert(dev.vq.addr_set);
	ck_assert_uint_eq(dev.vq.desc_uva, UVA0);
	ck_assert_uint_eq(dev.vq.avail_uva, UVA0 + 0x1000);
	ck_assert_uint_eq(dev.vq.used_uva, UVA0 + 0x2000);
}
END_TEST

START_TEST(reset_device)
{
	int call = an_eventfd(), err = an_eventfd(), kick = an_eventfd();

	ck_assert_int_eq(send_u64(VU_SET_FEATURES, 0, F_VERSION_1 |
	    F_EVENT_IDX), 0);
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 0, 64), 0);
	ck_assert_int_eq(send_state(VU_SET_VRING_BASE, 0, 0, 99), 0);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_CALL, 0, call), 0);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_ERR, 0, err), 0);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, kick), 0);
	ck_assert(dev.started && dev.enabled);

	ck_assert_int_eq(send_none(VU_RESET_DEVICE, 0), 0);
	ck_assert(no_reply());
	ck_assert(!dev.started);
	ck_assert(!dev.enabled);
	ck_assert(!dev.kick_polling);
	ck_assert_uint_eq(dev.features, 0);
	ck_assert_int_eq(dev.kick_fd, -1);
	ck_assert_int_eq(dev.call_fd, -1);
	ck_assert_int_eq(dev.err_fd, -1);
	ck_assert(unit_fd_closed(kick));
	ck_assert(unit_fd_closed(call));
	ck_assert(unit_fd_closed(err));
	ck_assert_uint_eq(dev.vq.num, 0);
	ck_assert_uint_eq(dev.vq.last_avail_idx, 0);
	ck_assert(!dev.vq.event_idx);
	ck_assert(!dev.vq.addr_set);
	ck_assert(!vu_dev_ring_runnable(&dev));
}
END_TEST

START_TEST(reset_owner_disables)
{
	ck_assert_int_eq(send_u64(VU_SET_FEATURES, 0, F_VERSION_1), 0);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, -1), 0);
	ck_assert_int_eq(send_none(VU_RESET_OWNER, 0), 0);
	ck_assert(!dev.started);
	ck_assert(!dev.enabled);
}
END_TEST

/* --- memory table ------------------------------------------------------- */

static void
mem_region(struct vu_mem_region *r, uint64_t gpa, uint64_t uva)
{
	r->guest_phys_addr = gpa;
	r->memory_size = MEM_SIZE;
	r->userspace_addr = uva;
	r->mmap_offset = 0;
}

/*
 * ADD_MEM_REG or REM_MEM_REG with need_reply for the region at GPA0/UVA0,
 * with a fresh memfd if with_fd (returned; else -1): handled.
 */
static int
send_region(uint32_t request, bool with_fd)
{
	int fd = -1;

	msg_init(request, VU_FLAG_NEED_REPLY, sizeof(struct vu_mem_single));
	mem_region(&msg.payload.single.region, GPA0, UVA0);
	if (with_fd)
		msg_add_fd(fd = unit_memfd("m", MEM_SIZE));
	ck_assert_int_eq(handle(), 0);
	return fd;
}

START_TEST(mem_table_good)
{
	int fds[2];

	msg_init(VU_SET_MEM_TABLE, 0, 8 + 2 * 32);
	msg.payload.mem.nregions = 2;
	mem_region(&msg.payload.mem.regions[0], GPA0, UVA0);
	mem_region(&msg.payload.mem.regions[1], GPA0 + MEM_SIZE,
	    UVA0 + 2 * MEM_SIZE);
	msg_add_fd(fds[0] = unit_memfd("m0", MEM_SIZE));
	msg_add_fd(fds[1] = unit_memfd("m1", MEM_SIZE));
	ck_assert_int_eq(handle(), 0);
	ck_assert_uint_eq(dev.mt.nregions, 2);
	ck_assert(unit_table_holds_fd(&dev.mt, fds[0]));
	ck_assert(unit_table_holds_fd(&dev.mt, fds[1]));
	ck_assert_uint_eq(msg.nfds, 0);

	/* An empty table is a table. */
	msg_init(VU_SET_MEM_TABLE, 0, 8);
	ck_assert_int_eq(handle(), 0);
	ck_assert_uint_eq(dev.mt.nregions, 0);
}
END_TEST

/* Expects the SET_MEM_TABLE in msg to be refused with its fds closed. */
static void
expect_mem_table_refused(void)
{
	int fds[VU_MAX_FDS];
	unsigned i, n = msg.nfds;

	memcpy(fds, msg.fds, sizeof(fds));
	ck_assert_int_eq(handle(), -1);
	ck_assert(no_reply());
	for (i = 0; i < n; i++)
		ck_assert_msg(unit_fd_closed(fds[i]), "fd %u left open", i);
	ck_assert_uint_eq(dev.mt.nregions, 0);
}

/*
 * A SET_MEM_TABLE of size bytes that announces nregions, describes the
 * first `described` (MEM_SIZE each, from GPA0 and UVA0 on) and carries
 * nfds memfds: refused, its fds closed.
 */
static void
mem_table_refused(uint32_t size, uint32_t nregions, unsigned described,
    unsigned nfds)
{
	unsigned i;

	msg_init(VU_SET_MEM_TABLE, 0, size);
	msg.payload.mem.nregions = nregions;
	for (i = 0; i < described; i++)
		mem_region(&msg.payload.mem.regions[i], GPA0 + i * MEM_SIZE,
		    UVA0 + i * MEM_SIZE);
	for (i = 0; i < nfds; i++)
		msg_add_fd(unit_memfd("m", MEM_SIZE));
	expect_mem_table_refused();
}

START_TEST(mem_table_nine_regions)
{
	unsigned i;

	/* Nine announced in a payload that holds eight: handler refuses. */
	msg_init(VU_SET_MEM_TABLE, 0, VU_PAYLOAD_MAX);
	msg.payload.mem.nregions = 9;
	for (i = 0; i < VU_MEM_TABLE_MAX; i++) {
		mem_region(&msg.payload.mem.regions[i], i * MEM_SIZE,
		    UVA0 + i * MEM_SIZE);
		msg_add_fd(unit_memfd("m", MEM_SIZE));
	}
	expect_mem_table_refused();

	/* Nine with a matching size: more than a message may carry. */
	mem_table_refused(8 + 9 * 32, 9, 0, 1);
	mem_table_refused(8, UINT32_MAX, 0, 0);
}
END_TEST

START_TEST(mem_table_size_mismatch)
{
	/* One region announced, two sent. */
	mem_table_refused(8 + 2 * 32, 1, 1, 1);
	/* Two announced, one sent. */
	mem_table_refused(8 + 32, 2, 1, 2);
	/* Not a whole region. */
	mem_table_refused(8 + 31, 1, 0, 1);
}
END_TEST

START_TEST(mem_table_fd_count_mismatch)
{
	mem_table_refused(8 + 2 * 32, 2, 2, 1);
}
END_TEST

START_TEST(add_and_remove_region)
{
	int fd, extra;

	negotiate_reply_ack();
	fd = send_region(VU_ADD_MEM_REG, true);
	ck_assert_uint_eq(reply_u64(VU_ADD_MEM_REG), 0);
	ck_assert_uint_eq(dev.mt.nregions, 1);
	ck_assert(unit_table_holds_fd(&dev.mt, fd));

	/* The same again overlaps: refused, acked as a failure. */
	fd = send_region(VU_ADD_MEM_REG, true);
	ck_assert_uint_ne(reply_u64(VU_ADD_MEM_REG), 0);
	ck_assert(unit_fd_closed(fd));

	/* REM_MEM_REG may carry an fd: closed unused. */
	extra = send_region(VU_REM_MEM_REG, true);
	ck_assert_uint_eq(reply_u64(VU_REM_MEM_REG), 0);
	ck_assert(unit_fd_closed(extra));
	ck_assert_uint_eq(dev.mt.nregions, 0);

	(void)send_region(VU_REM_MEM_REG, false);
	ck_assert_uint_ne(reply_u64(VU_REM_MEM_REG), 0);
}
END_TEST

/* --- a whole ring, end to end ---------------------------------------- */

/* The messages QEMU sends, in order, for a ring in MEM_SIZE of memory. */
static void
bring_up(bool protocol_features, int call)
{
	int fd;

	ck_assert_int_eq(send_none(VU_SET_OWNER, 0), 0);
	ck_assert_int_eq(send_u64(VU_SET_FEATURES, 0, F_VERSION_1 |
	    (protocol_features ? F_PROTOCOL : 0)), 0);
	msg_init(VU_SET_MEM_TABLE, 0, 8 + 32);
	msg.payload.mem.nregions = 1;
	mem_region(&msg.payload.mem.regions[0], GPA0, UVA0);
	msg_add_fd(unit_memfd("m", MEM_SIZE));
	ck_assert_int_eq(handle(), 0);
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 0, 8), 0);
	ck_assert_int_eq(send_state(VU_SET_VRING_BASE, 0, 0, 0), 0);
	msg_init(VU_SET_VRING_ADDR, 0, sizeof(struct vu_vring_addr));
	msg.payload.addr.desc_user_addr = UVA0;
	msg.payload.addr.avail_user_addr = UVA0 + 0x1000;
	msg.payload.addr.used_user_addr = UVA0 + 0x2000;
	ck_assert_int_eq(handle(), 0);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_CALL, 0, call), 0);
	fd = an_eventfd();
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, fd), 0);
}

START_TEST(ring_runnable_and_notify)
{
	int call = an_eventfd(), err = an_eventfd();
	uint64_t v = 0;

	ck_assert(!vu_dev_ring_runnable(&dev));
	/* The device owns a duplicate; the test reads the same eventfd. */
	bring_up(false, dup(call));
	ck_assert(vu_dev_ring_runnable(&dev));

	/* Without EVENT_IDX and NO_INTERRUPT: every push interrupts. */
	virtq_push(&dev.vq, 0, 1);
	vu_dev_notify(&dev);
	ck_assert_int_eq(read(call, &v, sizeof(v)), sizeof(v));
	ck_assert_uint_eq(v, 1);

	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_ERR, 0, dup(err)), 0);
	vu_dev_signal_error(&dev);
	ck_assert_int_eq(read(err, &v, sizeof(v)), sizeof(v));
	ck_assert_uint_eq(v, 1);

	/* A broken ring, a stopped ring, a disabled ring: not runnable. */
	dev.vq.broken = true;
	ck_assert(!vu_dev_ring_runnable(&dev));
	dev.vq.broken = false;
	ck_assert(vu_dev_ring_runnable(&dev));
	ck_assert_int_eq(send_state(VU_SET_VRING_ENABLE, 0, 0, 0), 0);
	ck_assert(!vu_dev_ring_runnable(&dev));
	ck_assert_int_eq(send_state(VU_SET_VRING_ENABLE, 0, 0, 1), 0);
	ck_assert(vu_dev_ring_runnable(&dev));
	ck_assert_int_eq(send_state(VU_GET_VRING_BASE, 0, 0, 0), 0);
	(void)reply_u64(VU_GET_VRING_BASE);
	ck_assert(!vu_dev_ring_runnable(&dev));
	close(call);
	close(err);
}
END_TEST

/* With bit 30, the ring waits for SET_VRING_ENABLE. */
START_TEST(ring_waits_for_enable)
{
	bring_up(true, -1);
	ck_assert(!vu_dev_ring_runnable(&dev));
	ck_assert_int_eq(send_state(VU_SET_VRING_ENABLE, 0, 0, 1), 0);
	ck_assert(vu_dev_ring_runnable(&dev));
	/* The table goes away under the ring. */
	msg_init(VU_SET_MEM_TABLE, 0, 8);
	ck_assert_int_eq(handle(), 0);
	ck_assert(!vu_dev_ring_runnable(&dev));
}
END_TEST

/* REM_MEM_REG of the region the rings live in: the ring stops running. */
START_TEST(ring_region_removed)
{
	bring_up(false, -1);
	ck_assert(vu_dev_ring_runnable(&dev));
	msg_init(VU_REM_MEM_REG, 0, sizeof(struct vu_mem_single));
	mem_region(&msg.payload.single.region, GPA0, UVA0);
	ck_assert_int_eq(handle(), 0);
	ck_assert(!vu_dev_ring_runnable(&dev));
	/* And runs again once it is back. */
	msg_init(VU_ADD_MEM_REG, 0, sizeof(struct vu_mem_single));
	mem_region(&msg.payload.single.region, GPA0, UVA0);
	msg_add_fd(unit_memfd("m", MEM_SIZE));
	ck_assert_int_eq(handle(), 0);
	ck_assert(vu_dev_ring_runnable(&dev));
}
END_TEST

START_TEST(cleanup_closes_all)
{
	int kick = an_eventfd(), call = an_eventfd(), err = an_eventfd();
	int sock = dev.sock;

	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, kick), 0);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_CALL, 0, call), 0);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_ERR, 0, err), 0);
	vu_dev_cleanup(&dev);
	ck_assert(unit_fd_closed(kick));
	ck_assert(unit_fd_closed(call));
	ck_assert(unit_fd_closed(err));
	ck_assert(unit_fd_closed(sock));
	ck_assert_int_eq(dev.sock, -1);
	vu_dev_cleanup(&dev);	/* teardown does it again: harmless */
}
END_TEST

/* --- issue 8 ------------------------------------------------------- */

/* The figure on the wire, as Linux vhost and libvhost-user answer. */
START_TEST(get_max_mem_slots_509)
{
	ck_assert_int_eq(send_none(VU_GET_MAX_MEM_SLOTS, 0), 0);
	ck_assert_uint_eq(reply_u64(VU_GET_MAX_MEM_SLOTS), 509);
}
END_TEST

/* SET_VRING_ADDR with the rings at desc, desc + 0x1000, desc + 0x2000. */
static int
send_addr(uint32_t flags, uint64_t desc)
{
	msg_init(VU_SET_VRING_ADDR, flags, sizeof(struct vu_vring_addr));
	msg.payload.addr.desc_user_addr = desc;
	msg.payload.addr.avail_user_addr = desc + 0x1000;
	msg.payload.addr.used_user_addr = desc + 0x2000;
	return handle();
}

static void
send_one_region_table(void)
{
	msg_init(VU_SET_MEM_TABLE, 0, 8 + 32);
	msg.payload.mem.nregions = 1;
	mem_region(&msg.payload.mem.regions[0], GPA0, UVA0);
	msg_add_fd(unit_memfd("m", MEM_SIZE));
	ck_assert_int_eq(handle(), 0);
}

/* Issue 8: rings outside every region were acked 0. */
START_TEST(vring_addr_outside_table_refused)
{
	negotiate_reply_ack();
	send_one_region_table();
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 0, 8), 0);
	/* Past the end, in another front-end range, straddling the end. */
	ck_assert_int_eq(send_addr(VU_FLAG_NEED_REPLY, UVA0 + MEM_SIZE), 0);
	ck_assert_uint_ne(reply_u64(VU_SET_VRING_ADDR), 0);
	ck_assert_int_eq(send_addr(VU_FLAG_NEED_REPLY, 0x1000), 0);
	ck_assert_uint_ne(reply_u64(VU_SET_VRING_ADDR), 0);
	ck_assert_int_eq(send_addr(VU_FLAG_NEED_REPLY, UVA0 + MEM_SIZE -
	    0x2000), 0);
	ck_assert_uint_ne(reply_u64(VU_SET_VRING_ADDR), 0);
	ck_assert(!dev.vq.addr_set);
	ck_assert_uint_eq(dev.bad_messages, 3);
	/* Inside: acked 0. */
	ck_assert_int_eq(send_addr(VU_FLAG_NEED_REPLY, UVA0), 0);
	ck_assert_uint_eq(reply_u64(VU_SET_VRING_ADDR), 0);
	ck_assert(dev.vq.addr_set);
	/* Without an ack to carry the failure: the connection goes. */
	ck_assert_int_eq(send_addr(0, UVA0 + MEM_SIZE), -1);
	ck_assert(no_reply());
	ck_assert_uint_eq(dev.vq.desc_uva, UVA0);
}
END_TEST

/* The used ring must fit for the queue size set: 8 + 8 * 4096 > 4 KiB. */
START_TEST(vring_addr_checked_for_queue_size)
{
	negotiate_reply_ack();
	send_one_region_table();
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 0, 4096), 0);
	ck_assert_int_eq(send_addr(VU_FLAG_NEED_REPLY, UVA0 + MEM_SIZE -
	    0x3000), 0);
	ck_assert_uint_ne(reply_u64(VU_SET_VRING_ADDR), 0);
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 0, 8), 0);
	ck_assert_int_eq(send_addr(VU_FLAG_NEED_REPLY, UVA0 + MEM_SIZE -
	    0x3000), 0);
	ck_assert_uint_eq(reply_u64(VU_SET_VRING_ADDR), 0);
}
END_TEST

/* An empty table is a table: no ring address translates. */
START_TEST(vring_addr_after_empty_table_refused)
{
	negotiate_reply_ack();
	msg_init(VU_SET_MEM_TABLE, 0, 8);
	ck_assert_int_eq(handle(), 0);
	ck_assert_int_eq(send_addr(VU_FLAG_NEED_REPLY, UVA0), 0);
	ck_assert_uint_ne(reply_u64(VU_SET_VRING_ADDR), 0);
	ck_assert(!dev.vq.addr_set);
}
END_TEST

/*
 * Before any table (QEMU 7.2 after a reconnect sends the ring set-up
 * only) the addresses are taken; the ring that cannot map when it starts
 * is one error, one err eventfd signal, once per start.
 */
START_TEST(ring_start_unmappable_counted_once)
{
	int err = an_eventfd();
	uint64_t v = 0;
	unsigned i;

	ck_assert_int_eq(send_u64(VU_SET_FEATURES, 0, F_VERSION_1), 0);
	ck_assert_int_eq(send_state(VU_SET_VRING_NUM, 0, 0, 8), 0);
	ck_assert_int_eq(send_addr(0, UVA0), 0);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_ERR, 0, dup(err)), 0);
	/* Not started yet. */
	ck_assert(!vu_dev_ring_runnable(&dev));
	ck_assert_uint_eq(vu_dev_take_ring_errors(&dev), 0);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, an_eventfd()), 0);
	for (i = 0; i < 5; i++)
		ck_assert(!vu_dev_ring_runnable(&dev));
	ck_assert_uint_eq(vu_dev_take_ring_errors(&dev), 1);
	ck_assert_uint_eq(vu_dev_take_ring_errors(&dev), 0);
	ck_assert_int_eq(read(err, &v, sizeof(v)), sizeof(v));
	ck_assert_uint_eq(v, 1);

	/* The memory arrives: the same start runs, nothing more counted. */
	send_one_region_table();
	ck_assert(vu_dev_ring_runnable(&dev));
	ck_assert_uint_eq(vu_dev_take_ring_errors(&dev), 0);

	/* The table goes away under it, then the front-end restarts it. */
	msg_init(VU_SET_MEM_TABLE, 0, 8);
	ck_assert_int_eq(handle(), 0);
	ck_assert(!vu_dev_ring_runnable(&dev));
	ck_assert(!vu_dev_ring_runnable(&dev));
	ck_assert_uint_eq(vu_dev_take_ring_errors(&dev), 1);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, an_eventfd()), 0);
	ck_assert(!vu_dev_ring_runnable(&dev));
	ck_assert_uint_eq(vu_dev_take_ring_errors(&dev), 1);
	ck_assert_int_eq(read(err, &v, sizeof(v)), sizeof(v));
	ck_assert_uint_eq(v, 2);
	close(err);
}
END_TEST

/* A ring not configured yet (no size, no addresses) is no error. */
START_TEST(ring_start_unconfigured_not_counted)
{
	ck_assert_int_eq(send_u64(VU_SET_FEATURES, 0, F_VERSION_1), 0);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, an_eventfd()), 0);
	ck_assert(!vu_dev_ring_runnable(&dev));
	ck_assert_uint_eq(vu_dev_take_ring_errors(&dev), 0);
}
END_TEST

/* --- the kick eventfd: drained, refused, watched --------------------- */

#define KICK_TAG	0x6b69636bull

/* The guest thread's epoll set, as guest.c hands it to the device. */
static int
watch_set(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);

	ck_assert_int_ge(ep, 0);
	dev.watch_fd = ep;
	dev.watch_kick_tag = KICK_TAG;
	return ep;
}

/* The device forgets the set before it goes (cleanup runs in teardown). */
static void
watch_end(int ep)
{
	vu_dev_cleanup(&dev);
	dev.watch_fd = -1;
	close(ep);
}

/* Events in the set now: 0, or 1 with the kick's tag. */
static int
watch_events(int ep)
{
	struct epoll_event ev[4];
	int n;

	while ((n = epoll_wait(ep, ev, 4, 0)) < 0 && errno == EINTR)
		;
	ck_assert_int_ge(n, 0);
	if (n == 1) {
		ck_assert_uint_eq(ev[0].data.u64, KICK_TAG);
		ck_assert(ev[0].events & EPOLLIN);
	}
	return n;
}

static void
kick_write(int fd, uint64_t v)
{
	ck_assert_int_eq(write(fd, &v, sizeof(v)), sizeof(v));
}

/*
 * A semaphore-mode kick loaded with a count reads 1 at a time and never
 * drains: the ring starts latched broken, the fd is not kept nor
 * watched.  The front-end still holds it; its kicks wake nobody.
 */
START_TEST(kick_semaphore_loaded_refused)
{
	int k = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
	int ep = watch_set(), mine = dup(k);

	ck_assert_int_ge(k, 0);
	kick_write(k, 1000);
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, mine), 0);
	ck_assert(dev.started);
	ck_assert(dev.vq.broken);
	ck_assert_ptr_nonnull(dev.vq.broken_why);
	ck_assert_ptr_nonnull(strstr(dev.vq.broken_why, "does not drain"));
	ck_assert(!dev.kick_polling);
	ck_assert_int_eq(dev.kick_fd, -1);
	ck_assert(unit_fd_closed(mine));
	ck_assert(!vu_dev_ring_runnable(&dev));
	kick_write(k, 1);
	ck_assert_int_eq(watch_events(ep), 0);
	/* A good kick afterwards restarts the ring: the latch is cleared. */
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, an_eventfd()),
	    0);
	ck_assert(!dev.vq.broken);
	ck_assert_int_ge(dev.kick_fd, 0);
	close(k);
	watch_end(ep);
}
END_TEST

/*
 * SET_VRING_KICK with (a duplicate of) the eventfd k starts the ring, and
 * k is read empty.
 */
static void
kick_starts_drained(int k)
{
	uint64_t v;

	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, dup(k)), 0);
	ck_assert(dev.started);
	ck_assert(!dev.vq.broken);
	ck_assert_int_ge(dev.kick_fd, 0);
	/* O_NONBLOCK is on the shared description now: no hang here. */
	ck_assert_int_eq(read(k, &v, sizeof(v)), -1);
	ck_assert_int_eq(errno, EAGAIN);
}

/* Boundary: a semaphore eventfd holding 1 drains in one read: accepted. */
START_TEST(kick_semaphore_count_one_accepted)
{
	int k = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);

	ck_assert_int_ge(k, 0);
	kick_write(k, 1);
	kick_starts_drained(k);
	close(k);
}
END_TEST

/*
 * A normal eventfd holding a count (kicks from before the ring started),
 * even a blocking one: read empty, and the ring starts.
 */
START_TEST(kick_count_drained_ring_starts)
{
	int k = eventfd(0, EFD_CLOEXEC);	/* blocking */

	ck_assert_int_ge(k, 0);
	kick_write(k, 0xfffffffffffffffeull);
	kick_starts_drained(k);
	ck_assert(!dev.kick_polling);
	close(k);
}
END_TEST

/*
 * The kick is in the guest thread's epoll set, edge-triggered: each
 * write of the front-end is one event with the kick's tag, and nothing
 * is pending while nobody reads the counter.  Replacing the kick moves
 * the registration; stopping the ring (GET_VRING_BASE) removes it, so
 * the front-end's later writes to the old eventfd wake nobody.
 */
START_TEST(kick_watched_edge_triggered)
{
	int k = an_eventfd(), k2 = an_eventfd(), ep = watch_set();

	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, dup(k)), 0);
	ck_assert_int_eq(watch_events(ep), 0);
	kick_write(k, 1);
	ck_assert_int_eq(watch_events(ep), 1);
	/* Edge-triggered: the unread counter is not reported again. */
	ck_assert_int_eq(watch_events(ep), 0);
	kick_write(k, 1);
	ck_assert_int_eq(watch_events(ep), 1);
	ck_assert_int_eq(watch_events(ep), 0);

	/* Replaced: the old eventfd is out of the set, the new one in. */
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, dup(k2)), 0);
	kick_write(k, 1);
	ck_assert_int_eq(watch_events(ep), 0);
	kick_write(k2, 1);
	ck_assert_int_eq(watch_events(ep), 1);

	/* Stopped: out of the set too. */
	ck_assert_int_eq(send_state(VU_GET_VRING_BASE, 0, 0, 0), 0);
	(void)reply_u64(VU_GET_VRING_BASE);
	ck_assert(!dev.started);
	ck_assert_int_eq(dev.kick_fd, -1);
	kick_write(k2, 1);
	ck_assert_int_eq(watch_events(ep), 0);
	kick_write(k, 1);
	ck_assert_int_eq(watch_events(ep), 0);

	/* Restarted with the no-fd bit: nothing watched. */
	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, -1), 0);
	ck_assert(dev.kick_polling);
	kick_write(k2, 1);
	ck_assert_int_eq(watch_events(ep), 0);
	close(k);
	close(k2);
	watch_end(ep);
}
END_TEST

/* The connection ends: the kick leaves the set with it. */
START_TEST(kick_unwatched_at_cleanup)
{
	int k = an_eventfd(), ep = watch_set();

	ck_assert_int_eq(send_vring_fd(VU_SET_VRING_KICK, 0, dup(k)), 0);
	vu_dev_cleanup(&dev);
	kick_write(k, 1);
	ck_assert_int_eq(watch_events(ep), 0);
	close(k);
	watch_end(ep);
}
END_TEST

SUITE(vu_dev, UNIT_TIMEOUT, setup, teardown,
    "replies", TESTS(get_features, get_others,
	get_with_need_reply_one_reply, reply_to_gone_peer_fails,
	reply_ack, need_reply_without_reply_ack),
    "rules", TESTS(size_rules, fd_rules, ring_index_rules,
	unsupported_request),
    "ring", TESTS(set_features_enables_without_protocol_features,
	set_features_with_protocol_features,
	set_features_masks_unoffered, vring_num_while_started,
	vring_num_values, vring_base_bounds, get_vring_base_stops,
	vring_kick_nofd_polls, vring_fds_replaced,
	vring_kick_clears_broken, vring_addr, reset_device,
	reset_owner_disables, ring_runnable_and_notify,
	ring_waits_for_enable, ring_region_removed, cleanup_closes_all),
    "memory", TESTS(mem_table_good, mem_table_nine_regions,
	mem_table_size_mismatch, mem_table_fd_count_mismatch,
	add_and_remove_region),
    "issue8", TESTS(get_max_mem_slots_509,
	vring_addr_outside_table_refused,
	vring_addr_checked_for_queue_size,
	vring_addr_after_empty_table_refused,
	ring_start_unmappable_counted_once,
	ring_start_unconfigured_not_counted),
    "kick", TESTS(kick_semaphore_loaded_refused,
	kick_semaphore_count_one_accepted,
	kick_count_drained_ring_starts, kick_watched_edge_triggered,
	kick_unwatched_at_cleanup))
