/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: malformed vhost-user messages from a hostile front-end.
 *
 * They end that connection (the daemon cannot trust the stream any more)
 * and nothing else: the socket takes the next front-end, and nothing the
 * message carried stays open in the daemon.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostile.h"
#include "it.h"

Suite	*it_messages_suite(void);

static void
b_set_features_short(struct fe *fe)
{
	uint32_t v = 1;

	IT_OK(fe_send(fe, FE_SET_FEATURES, FE_FLAG_VERSION, &v, 4, NULL, 0));
}

static void
b_get_features_with_payload(struct fe *fe)
{
	uint64_t v = 0;

	IT_OK(fe_send(fe, FE_GET_FEATURES, FE_FLAG_VERSION, &v, 8, NULL, 0));
}

static void
b_vring_num_long(struct fe *fe)
{
	uint32_t v[3] = { 0, 256, 0 };

	IT_OK(fe_send(fe, FE_SET_VRING_NUM, FE_FLAG_VERSION, v, 12, NULL, 0));
}

static void
b_kick_two_fds(struct fe *fe)
{
	int fds[2] = { fe->kick, fe->call };
	uint64_t v = 0;

	IT_OK(fe_send(fe, FE_SET_VRING_KICK, FE_FLAG_VERSION, &v, 8, fds, 2));
}

/* The "no fd" bit, and an fd all the same. */
static void
b_call_nofd_with_fd(struct fe *fe)
{
	uint64_t v = FE_VRING_NOFD;

	IT_OK(fe_send(fe, FE_SET_VRING_CALL, FE_FLAG_VERSION, &v, 8, &fe->call,
	    1));
}

static void
b_mem_table_fd_count(struct fe *fe)
{
	struct fe_mem_table t;

	memset(&t, 0, sizeof(t));
	t.nregions = 2;
	t.regions[0].gpa = 0;
	t.regions[0].size = 4096;
	t.regions[0].uva = 0x10000000;
	t.regions[1].gpa = 0x100000;
	t.regions[1].size = 4096;
	t.regions[1].uva = 0x20000000;
	IT_OK(fe_send(fe, FE_SET_MEM_TABLE, FE_FLAG_VERSION, &t, 8 + 64,
	    &fe->reg[0].fd, 1));
}

static void
b_ring_index_1(struct fe *fe)
{
	struct fe_vring_state s = { 1, 256 };

	IT_OK(fe_send(fe, FE_SET_VRING_NUM, FE_FLAG_VERSION, &s, 8, NULL, 0));
}

static void
b_kick_ring_index_1(struct fe *fe)
{
	uint64_t v = 1;

	IT_OK(fe_send(fe, FE_SET_VRING_KICK, FE_FLAG_VERSION, &v, 8, &fe->kick,
	    1));
}

static void
b_unknown_request(struct fe *fe)
{
	IT_OK(fe_send(fe, 99, FE_FLAG_VERSION, NULL, 0, NULL, 0));
}

static void
b_payload_too_large(struct fe *fe)
{
	struct fe_hdr h = { FE_SET_FEATURES, FE_FLAG_VERSION, 5000 };

	IT_OK(fe_send_bytes(fe, &h, sizeof(h), NULL, 0));
}

static void
b_bad_version(struct fe *fe)
{
	IT_OK(fe_send(fe, FE_GET_FEATURES, 0x2, NULL, 0, NULL, 0));
}

/* A truncated header, then silence: dropped after a stall timeout. */
static void
b_truncated_header_stall(struct fe *fe)
{
	struct fe_hdr h = { FE_GET_FEATURES, FE_FLAG_VERSION, 0 };

	IT_OK(fe_send_bytes(fe, &h, 6, NULL, 0));
}

/* Header announces 8 bytes, 4 come. */
static void
b_truncated_payload_stall(struct fe *fe)
{
	struct fe_hdr h = { FE_SET_FEATURES, FE_FLAG_VERSION, 8 };
	char m[16];

	memcpy(m, &h, 12);
	memset(m + 12, 0, 4);
	IT_OK(fe_send_bytes(fe, m, 16, NULL, 0));
}

/* More fds than any message may carry: the control data is cut. */
static void
b_too_many_fds(struct fe *fe)
{
	struct fe_mem_table t;
	int fds[12], i;

	for (i = 0; i < 12; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	memset(&t, 0, sizeof(t));
	t.nregions = 1;
	t.regions[0].size = 4096;
	IT_OK(fe_send(fe, FE_SET_MEM_TABLE, FE_FLAG_VERSION, &t, 8 + 32, fds,
	    12));
	for (i = 0; i < 12; i++)
		close(fds[i]);
}

/* A truncated header and then the front-end goes away. */
static void
b_truncated_header_close(struct fe *fe)
{
	struct fe_hdr h = { FE_GET_FEATURES, FE_FLAG_VERSION, 0 };

	IT_OK(fe_send_bytes(fe, &h, 6, NULL, 0));
	fe_disconnect(fe);
}

/* Each case: its name, its message, whether it costs the connection. */
static const struct {
	const char	*name;
	bad_msg_fn	 bad;
	bool		 drop;	/* the daemon hangs up */
} msg_cases[] = {
	{ "msg_size_mismatch_set_features", b_set_features_short, true },
	{ "msg_size_mismatch_get_features", b_get_features_with_payload, true },
	{ "msg_size_mismatch_vring_state", b_vring_num_long, true },
	{ "msg_kick_with_two_fds", b_kick_two_fds, true },
	{ "msg_call_nofd_bit_with_fd", b_call_nofd_with_fd, true },
	{ "msg_mem_table_nregions_ne_nfds", b_mem_table_fd_count, true },
	{ "msg_ring_index_1", b_ring_index_1, true },
	{ "msg_kick_ring_index_1", b_kick_ring_index_1, true },
	{ "msg_unknown_request_99", b_unknown_request, true },
	{ "msg_payload_over_4096", b_payload_too_large, true },
	{ "msg_bad_version", b_bad_version, true },
	{ "msg_truncated_header_stalls", b_truncated_header_stall, true },
	{ "msg_truncated_payload_stalls", b_truncated_payload_stall, true },
	{ "msg_too_many_fds", b_too_many_fds, true },
	{ "msg_truncated_header_then_close", b_truncated_header_close, false },
};

START_TEST(msg_case)
{
	malformed(msg_cases[_i].bad, msg_cases[_i].drop);
}
END_TEST

Suite *
it_messages_suite(void)
{
	Suite *s = suite_create("it_messages");
	TCase *tc;

	tc = add_case(s, "messages", IT_TIMEOUT, NULL, NULL, NULL);
	ADD_TABLE(tc, msg_case, msg_cases);
	return s;
}
