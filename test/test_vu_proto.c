/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user framing over a socketpair: whole messages with their fds,
 * messages in pieces, and every malformed case ending the connection
 * without leaving a received fd open.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "sendfds.h"
#include "unit.h"
#include "vu_proto.h"

#define MAX_SEND_FDS	16

static int sv[2];	/* sv[0]: the back-end reads here; sv[1]: the test */
static struct vu_msg msg;

static void
setup(void)
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	memset(&msg, 0, sizeof(msg));
}

static void
teardown(void)
{
	vu_msg_close_fds(&msg);
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	sv[0] = sv[1] = -1;
}

/* One sendmsg of len bytes carrying nfds fds. */
static void
send_raw(const void *buf, size_t len, const int *fds, unsigned nfds)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	ck_assert_uint_le(nfds, MAX_SEND_FDS);
	ck_assert_int_eq(send_fds(sv[1], &iov, 1, fds, nfds), (ssize_t)len);
}

static struct vu_header
hdr(uint32_t request, uint32_t flags, uint32_t size)
{
	struct vu_header h = { .request = request, .flags = flags,
	    .size = size };

	return h;
}

/* Header and payload in one piece, the way QEMU sends. */
static void
send_msg(uint32_t request, uint32_t flags, const void *payload,
    uint32_t size, const int *fds, unsigned nfds)
{
	char buf[sizeof(struct vu_header) + 8192];
	struct vu_header h = hdr(request, flags, size);

	ck_assert_uint_le(size, 8192);
	memcpy(buf, &h, sizeof(h));
	if (size > 0)
		memcpy(buf + sizeof(h), payload, size);
	send_raw(buf, sizeof(h) + size, fds, nfds);
}

/* n memfds, all the same file, so the receiver's copies can be checked. */
static void
make_fds(int *fds, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		fds[i] = unit_memfd("vu", 4096);
}

static void
close_all(int *fds, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		close(fds[i]);
}

static bool
same_file(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	    sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

START_TEST(recv_with_fds)
{
	struct vu_mem_table t;
	int fds[2];

	memset(&t, 0, sizeof(t));
	t.nregions = 2;
	t.regions[0].guest_phys_addr = 0x1000;
	t.regions[1].memory_size = 0x2000;
	make_fds(fds, 2);
	send_msg(VU_SET_MEM_TABLE, VU_VERSION, &t, 8 + 2 * 32, fds, 2);

	ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_OK);
	ck_assert_uint_eq(msg.hdr.request, VU_SET_MEM_TABLE);
	ck_assert_uint_eq(msg.hdr.flags, VU_VERSION);
	ck_assert_uint_eq(msg.hdr.size, 72);
	ck_assert_uint_eq(msg.payload.mem.nregions, 2);
	ck_assert_uint_eq(msg.payload.mem.regions[0].guest_phys_addr, 0x1000);
	ck_assert_uint_eq(msg.payload.mem.regions[1].memory_size, 0x2000);
	ck_assert_uint_eq(msg.nfds, 2);
	ck_assert(same_file(msg.fds[0], fds[0]));
	ck_assert(same_file(msg.fds[1], fds[1]));
	ck_assert(!same_file(msg.fds[0], fds[1]));
	/* Received fds are close-on-exec. */
	ck_assert(fcntl(msg.fds[0], F_GETFD) & FD_CLOEXEC);
	close_all(fds, 2);

	fds[0] = msg.fds[0];
	vu_msg_close_fds(&msg);
	ck_assert_uint_eq(msg.nfds, 0);
	ck_assert_int_eq(msg.fds[0], -1);
	ck_assert(unit_fd_closed(fds[0]));
}
END_TEST

START_TEST(recv_no_payload)
{
	send_msg(VU_GET_FEATURES, VU_VERSION, NULL, 0, NULL, 0);
	ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_OK);
	ck_assert_uint_eq(msg.hdr.request, VU_GET_FEATURES);
	ck_assert_uint_eq(msg.hdr.size, 0);
	ck_assert_uint_eq(msg.nfds, 0);
}
END_TEST

/* Two messages back to back are read one at a time. */
START_TEST(recv_back_to_back)
{
	uint64_t v = 0x1122334455667788ull;

	send_msg(VU_SET_FEATURES, VU_VERSION, &v, 8, NULL, 0);
	send_msg(VU_SET_OWNER, VU_VERSION | VU_FLAG_NEED_REPLY, NULL, 0, NULL,
	    0);
	ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_OK);
	ck_assert_uint_eq(msg.hdr.request, VU_SET_FEATURES);
	ck_assert_uint_eq(msg.payload.u64, v);
	ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_OK);
	ck_assert_uint_eq(msg.hdr.request, VU_SET_OWNER);
	ck_assert_uint_eq(msg.hdr.flags, VU_VERSION | VU_FLAG_NEED_REPLY);
	/* The previous payload does not linger. */
	ck_assert_uint_eq(msg.payload.u64, 0);
}
END_TEST

/*
 * The header in two pieces (the first with the fds) and the payload in
 * three.  A Unix stream read stops after a piece that carried fds, so the
 * back-end really sees a short header.
 */
START_TEST(recv_split)
{
	struct vu_vring_addr a;
	struct vu_header h = hdr(VU_SET_VRING_ADDR, VU_VERSION, sizeof(a));
	int fds[2];

	memset(&a, 0, sizeof(a));
	a.index = 0;
	a.desc_user_addr = 0xd000;
	a.used_user_addr = 0xe000;
	a.avail_user_addr = 0xa000;
	a.log_guest_addr = 0x1234;
	make_fds(fds, 2);
	send_raw(&h, 5, fds, 2);
	send_raw((char *)&h + 5, 7, NULL, 0);
	send_raw(&a, 1, NULL, 0);
	send_raw((char *)&a + 1, 20, NULL, 0);
	send_raw((char *)&a + 21, sizeof(a) - 21, NULL, 0);
	close_all(fds, 2);

	ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_OK);
	ck_assert_uint_eq(msg.hdr.request, VU_SET_VRING_ADDR);
	ck_assert_uint_eq(msg.hdr.size, sizeof(a));
	ck_assert_uint_eq(msg.nfds, 2);
	ck_assert_mem_eq(&msg.payload.addr, &a, sizeof(a));
	/* Nothing of it is left in the stream. */
	{
		char c;

		ck_assert_int_eq(recv(sv[0], &c, 1, MSG_DONTWAIT | MSG_PEEK),
		    -1);
		ck_assert_int_eq(errno, EAGAIN);
	}
}
END_TEST

START_TEST(recv_eof)
{
	close(sv[1]);
	sv[1] = -1;
	ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_EOF);
	ck_assert_uint_eq(msg.nfds, 0);
}
END_TEST

/* Expects vu_msg_recv to fail with no fd of ours left open. */
static void
expect_recv_fails(int fds_before)
{
	enum vu_recv_result r = vu_msg_recv(sv[0], &msg);

	ck_assert_msg(r == VU_RECV_ERROR || r == VU_RECV_EOF,
	    "result %d", r);
	ck_assert_uint_eq(msg.nfds, 0);
	ck_assert_int_eq(unit_count_fds(), fds_before);
}

START_TEST(recv_truncated_header)
{
	struct vu_header h = hdr(VU_SET_MEM_TABLE, VU_VERSION, 40);
	int fds[3], before;

	make_fds(fds, 3);
	send_raw(&h, 5, fds, 3);
	close_all(fds, 3);
	close(sv[1]);
	sv[1] = -1;
	before = unit_count_fds();
	expect_recv_fails(before);
}
END_TEST

/* The next message is refused, and no fd it carried is left open. */
static void
recv_refused_fds_closed(void)
{
	int before = unit_count_fds();

	ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_ERROR);
	ck_assert_uint_eq(msg.nfds, 0);
	ck_assert_int_eq(unit_count_fds(), before);
}

START_TEST(recv_truncated_payload)
{
	char buf[sizeof(struct vu_header) + 10];
	struct vu_header h = hdr(VU_SET_MEM_TABLE, VU_VERSION, 40);
	int fds[2];

	memset(buf, 0, sizeof(buf));
	memcpy(buf, &h, sizeof(h));
	make_fds(fds, 2);
	send_raw(buf, sizeof(buf), fds, 2);
	close_all(fds, 2);
	close(sv[1]);
	sv[1] = -1;
	recv_refused_fds_closed();
}
END_TEST

/* A discarded payload that is cut short ends the connection too. */
START_TEST(recv_truncated_discard)
{
	char buf[sizeof(struct vu_header) + 500];
	struct vu_header h = hdr(24, VU_VERSION, 1000);
	int before;

	memset(buf, 0, sizeof(buf));
	memcpy(buf, &h, sizeof(h));
	send_raw(buf, sizeof(buf), NULL, 0);
	close(sv[1]);
	sv[1] = -1;
	before = unit_count_fds();
	ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_ERROR);
	ck_assert_int_eq(unit_count_fds(), before);
}
END_TEST

START_TEST(recv_wrong_version)
{
	static const uint32_t bad[] = { 0, 2, 3, VU_FLAG_REPLY,
	    VU_FLAG_NEED_REPLY | 2 };
	unsigned i;
	int fds[1], before;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		teardown();
		setup();
		make_fds(fds, 1);
		send_msg(VU_SET_OWNER, bad[i], NULL, 0, fds, 1);
		close_all(fds, 1);
		before = unit_count_fds();
		ck_assert_msg(vu_msg_recv(sv[0], &msg) == VU_RECV_ERROR,
		    "flags 0x%x accepted", bad[i]);
		ck_assert_uint_eq(msg.nfds, 0);
		ck_assert_int_eq(unit_count_fds(), before);
	}
	/* Other flag bits do not matter to the framing. */
	send_msg(VU_SET_OWNER, VU_VERSION | VU_FLAG_REPLY | 0xff00, NULL, 0,
	    NULL, 0);
	ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_OK);
}
END_TEST

START_TEST(recv_size_too_large)
{
	static char payload[8192];
	int fds[1], before;

	make_fds(fds, 1);
	send_msg(24, VU_VERSION, payload, VU_DISCARD_MAX + 1, fds, 1);
	close_all(fds, 1);
	before = unit_count_fds();
	ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_ERROR);
	ck_assert_uint_eq(msg.nfds, 0);
	ck_assert_int_eq(unit_count_fds(), before);

	/* A size the peer never sends: refused from the header alone. */
	teardown();
	setup();
	send_msg(24, VU_VERSION, NULL, 0, NULL, 0);
	{
		struct vu_header h = hdr(24, VU_VERSION, UINT32_MAX);

		send_raw(&h, sizeof(h), NULL, 0);
	}
	ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_OK);
	ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_ERROR);
}
END_TEST

/*
 * Payloads larger than any request we implement but within 4096 bytes
 * are read and dropped, so that the next message is framed right.
 */
START_TEST(recv_discards_large_payload)
{
	static char junk[VU_DISCARD_MAX];
	static const uint32_t sizes[] = { VU_PAYLOAD_MAX + 1, 256 + 1, 1000,
	    VU_DISCARD_MAX };
	uint64_t v = 42;
	unsigned i;

	memset(junk, 0x01, sizeof(junk));	/* looks like a header */
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		send_msg(25, VU_VERSION, junk, sizes[i], NULL, 0);
		send_msg(VU_SET_FEATURES, VU_VERSION, &v, 8, NULL, 0);
		ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_OK);
		ck_assert_uint_eq(msg.hdr.request, 25);
		ck_assert_uint_eq(msg.hdr.size, sizes[i]);
		ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_OK);
		ck_assert_uint_eq(msg.hdr.request, VU_SET_FEATURES);
		ck_assert_uint_eq(msg.payload.u64, 42);
	}
	/* The largest payload we keep is kept whole. */
	send_msg(VU_SET_MEM_TABLE, VU_VERSION, junk, VU_PAYLOAD_MAX, NULL, 0);
	ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_OK);
	ck_assert_mem_eq(&msg.payload, junk, VU_PAYLOAD_MAX);
}
END_TEST

START_TEST(recv_max_fds)
{
	int fds[VU_MAX_FDS];
	unsigned i;

	make_fds(fds, VU_MAX_FDS);
	send_msg(VU_SET_MEM_TABLE, VU_VERSION, "\0\0\0\0\0\0\0\0", 8, fds,
	    VU_MAX_FDS);
	ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_OK);
	ck_assert_uint_eq(msg.nfds, VU_MAX_FDS);
	for (i = 0; i < VU_MAX_FDS; i++)
		ck_assert(same_file(msg.fds[i], fds[i]));
	close_all(fds, VU_MAX_FDS);
}
END_TEST

/* More fds than a message may carry: the kernel truncates, we refuse. */
START_TEST(recv_too_many_fds)
{
	int fds[MAX_SEND_FDS];
	unsigned n = (unsigned)_i;

	make_fds(fds, n);
	send_msg(VU_SET_MEM_TABLE, VU_VERSION, "\0\0\0\0\0\0\0\0", 8, fds, n);
	close_all(fds, n);
	recv_refused_fds_closed();
}
END_TEST

/* fds may only come with the header; elsewhere they are dropped. */
START_TEST(recv_fds_with_payload_dropped)
{
	struct vu_header h = hdr(VU_SET_FEATURES, VU_VERSION, 8);
	uint64_t v = 7;
	int fds[2], before;

	make_fds(fds, 2);
	send_raw(&h, sizeof(h), NULL, 0);
	send_raw(&v, sizeof(v), fds, 2);
	close_all(fds, 2);
	before = unit_count_fds();
	ck_assert_int_eq(vu_msg_recv(sv[0], &msg), VU_RECV_OK);
	ck_assert_uint_eq(msg.payload.u64, 7);
	ck_assert_uint_eq(msg.nfds, 0);
	ck_assert_int_eq(unit_count_fds(), before);
}
END_TEST

START_TEST(send_reply_sets_flags)
{
	struct {
		struct vu_header h;
		uint64_t v;
	} __attribute__((packed)) raw;

	memset(&msg, 0, sizeof(msg));
	msg.hdr = hdr(VU_GET_FEATURES, VU_VERSION | VU_FLAG_NEED_REPLY |
	    0x10, 8);
	msg.payload.u64 = 0xfeedfacecafebeefull;
	ck_assert_int_eq(vu_msg_send_reply(sv[0], &msg), 0);
	ck_assert_int_eq(recv(sv[1], &raw, sizeof(raw), MSG_DONTWAIT),
	    (ssize_t)sizeof(raw));
	ck_assert_uint_eq(raw.h.request, VU_GET_FEATURES);
	ck_assert_uint_eq(raw.h.flags, VU_VERSION | VU_FLAG_REPLY);
	ck_assert_uint_eq(raw.h.size, 8);
	ck_assert_uint_eq(raw.v, 0xfeedfacecafebeefull);
	/* Exactly one message. */
	ck_assert_int_eq(recv(sv[1], &raw, 1, MSG_DONTWAIT), -1);
	ck_assert_int_eq(errno, EAGAIN);

	/* A reply without payload is a bare header. */
	msg.hdr = hdr(VU_SET_OWNER, VU_VERSION, 0);
	ck_assert_int_eq(vu_msg_send_reply(sv[0], &msg), 0);
	ck_assert_int_eq(recv(sv[1], &raw, sizeof(raw), MSG_DONTWAIT),
	    (ssize_t)sizeof(struct vu_header));
	ck_assert_uint_eq(raw.h.flags, VU_VERSION | VU_FLAG_REPLY);
}
END_TEST

/* What we send, we can also read back. */
START_TEST(send_reply_round_trip)
{
	struct vu_msg reply;

	memset(&msg, 0, sizeof(msg));
	msg.hdr = hdr(VU_GET_VRING_BASE, VU_VERSION, 8);
	msg.payload.state.index = 0;
	msg.payload.state.num = 4321;
	ck_assert_int_eq(vu_msg_send_reply(sv[1], &msg), 0);
	memset(&reply, 0, sizeof(reply));
	ck_assert_int_eq(vu_msg_recv(sv[0], &reply), VU_RECV_OK);
	ck_assert_uint_eq(reply.hdr.flags, VU_VERSION | VU_FLAG_REPLY);
	ck_assert_uint_eq(reply.payload.state.num, 4321);
}
END_TEST

/* A front-end gone away is an error, not a SIGPIPE. */
START_TEST(send_reply_peer_gone)
{
	close(sv[1]);
	sv[1] = -1;
	msg.hdr = hdr(VU_GET_FEATURES, VU_VERSION, 8);
	ck_assert_int_eq(vu_msg_send_reply(sv[0], &msg), -1);
}
END_TEST

START_TEST(close_fds)
{
	int fds[3];

	make_fds(fds, 3);
	msg.fds[0] = fds[0];
	msg.fds[1] = -1;	/* taken by a handler */
	msg.fds[2] = fds[2];
	msg.nfds = 3;
	vu_msg_close_fds(&msg);
	ck_assert_uint_eq(msg.nfds, 0);
	ck_assert(unit_fd_closed(fds[0]));
	ck_assert(!unit_fd_closed(fds[1]));
	ck_assert(unit_fd_closed(fds[2]));
	close(fds[1]);
	vu_msg_close_fds(&msg);	/* nothing left: harmless */
}
END_TEST

START_TEST(request_names)
{
	ck_assert_str_eq(vu_request_name(VU_GET_FEATURES), "GET_FEATURES");
	ck_assert_str_eq(vu_request_name(VU_SET_MEM_TABLE), "SET_MEM_TABLE");
	ck_assert_str_eq(vu_request_name(VU_SET_VRING_ENABLE),
	    "SET_VRING_ENABLE");
	ck_assert_str_eq(vu_request_name(VU_RESET_DEVICE), "RESET_DEVICE");
	ck_assert_str_eq(vu_request_name(VU_REM_MEM_REG), "REM_MEM_REG");
	ck_assert_str_eq(vu_request_name(24), "GET_CONFIG");
	ck_assert_str_eq(vu_request_name(40), "GET_STATUS");
	ck_assert_str_eq(vu_request_name(0), "unknown");
	ck_assert_str_eq(vu_request_name(VU_REQUEST_MAX), "unknown");
	ck_assert_str_eq(vu_request_name(1000), "unknown");
	ck_assert_str_eq(vu_request_name(UINT32_MAX), "unknown");
}
END_TEST

Suite *
vu_proto_suite(void)
{
	Suite *s = suite_create("vu_proto");
	TCase *tc;

	add_case(s, "recv", UNIT_TIMEOUT, setup, teardown, TESTS(recv_with_fds,
	    recv_no_payload, recv_back_to_back, recv_split, recv_eof,
	    recv_max_fds, recv_discards_large_payload,
	    recv_fds_with_payload_dropped));

	tc = add_case(s, "malformed", UNIT_TIMEOUT, setup, teardown, TESTS(
	    recv_truncated_header, recv_truncated_payload,
	    recv_truncated_discard, recv_wrong_version, recv_size_too_large));
	tcase_add_loop_test(tc, recv_too_many_fds, VU_MAX_FDS + 1,
	    MAX_SEND_FDS + 1);

	add_case(s, "reply", UNIT_TIMEOUT, setup, teardown, TESTS(
	    send_reply_sets_flags, send_reply_round_trip, send_reply_peer_gone,
	    close_fds, request_names));
	return s;
}
