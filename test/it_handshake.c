/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: feature negotiation, REPLY_ACK, the two ways a ring gets
 * enabled, and stopping/restarting a ring (GET_VRING_BASE/SET_VRING_BASE).
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "it.h"

/*
 * Posts one fresh buffer of len bytes and kicks; after a round trip (the
 * daemon has seen the kick) nothing is used within ms: the request is
 * held.  Returns the buffer's gpa, and its head in *head if not NULL.
 */
static uint64_t
post_held(struct fe *fe, uint32_t len, int ms, int *head)
{
	uint64_t gpa = fe_alloc(fe, len, 64);
	int h = fe_post1(fe, gpa, len);

	ck_assert_int_ge(h, 0);
	fe_kick(fe);
	IT_OK(fe_sync(fe));
	ck_assert_uint_eq(fe_wait_used(fe, 1, ms), 0);
	if (head != NULL)
		*head = h;
	return gpa;
}

START_TEST(handshake_offers_features)
{
	struct vd vd;
	struct fe fe;
	uint64_t f, pf, q, slots;

	IT_START(&vd, 1, NULL);
	fe_init(&fe);
	IT_OK(fe_connect(&fe, vd_sock(&vd, 0, (char[256]){0}, 256), 3000));
	IT_OK(fe_get_u64(&fe, FE_GET_FEATURES, &f));
	ck_assert_msg(f & FE_BIT(FE_F_VERSION_1), "features 0x%llx",
	    (unsigned long long)f);
	ck_assert(f & FE_BIT(FE_F_EVENT_IDX));
	ck_assert(f & FE_BIT(FE_F_INDIRECT_DESC));
	ck_assert(f & FE_BIT(FE_F_PROTOCOL_FEATURES));
	/* Split rings only, no IOTLB: packed (34) and ACCESS_PLATFORM (33). */
	ck_assert_msg(!(f & (FE_BIT(33) | FE_BIT(34))), "features 0x%llx",
	    (unsigned long long)f);

	IT_OK(fe_get_u64(&fe, FE_GET_PROTOCOL_FEATURES, &pf));
	ck_assert_msg(pf & FE_BIT(FE_PF_MQ), "protocol features 0x%llx",
	    (unsigned long long)pf);
	ck_assert(pf & FE_BIT(FE_PF_REPLY_ACK));
	ck_assert(pf & FE_BIT(FE_PF_RESET_DEVICE));
	ck_assert(pf & FE_BIT(FE_PF_CONFIGURE_MEM_SLOTS));

	IT_OK(fe_set_u64(&fe, FE_SET_PROTOCOL_FEATURES, FE_BIT(FE_PF_MQ) |
	    FE_BIT(FE_PF_REPLY_ACK) | FE_BIT(FE_PF_CONFIGURE_MEM_SLOTS),
	    false));
	IT_OK(fe_get_u64(&fe, FE_GET_QUEUE_NUM, &q));
	ck_assert_uint_eq(q, 1);
	IT_OK(fe_get_u64(&fe, FE_GET_MAX_MEM_SLOTS, &slots));
	ck_assert_uint_ge(slots, 8);
	/* Asking again gives the same answers: nothing is consumed. */
	IT_OK(fe_get_u64(&fe, FE_GET_FEATURES, &q));
	ck_assert_uint_eq(q, f);
	IT_END(&vd, &fe);
}
END_TEST

START_TEST(handshake_qemu_order_then_served)
{
	struct vd vd;
	struct fe fe;

	/* fe_setup checks every REPLY_ACK of the sequence is 0. */
	IT_ONE_GUEST(&vd, &fe, NULL, NULL);
	ck_assert_uint_eq(fe.queue_num, 1);
	ck_assert(fe.acked_pf & FE_BIT(FE_PF_REPLY_ACK));
	IT_SERVE(&fe, 64, &vd);
	IT_END(&vd, &fe);
}
END_TEST

START_TEST(reply_ack_nacks_bad_requests_and_stays_up)
{
	struct fe_vring_addr a;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	uint64_t f;

	fe_cfg_init(&cfg);
	cfg.start = false;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);

	/* Not a power of two, zero, too large: refused, connection kept. */
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_NUM, 0, 3, true), 1);
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_NUM, 0, 0, true), 1);
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_NUM, 0, 65536, true),
	    1);
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_BASE, 0, 70000, true),
	    1);
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_ENABLE, 0, 2, true),
	    1);
	/* A ring that does not exist, asked politely. */
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_NUM, 1, 256, true),
	    1);
	/* Misaligned descriptor table (VIRTIO: 16-byte alignment). */
	memset(&a, 0, sizeof(a));
	a.desc = fe.reg[0].uva + 4096 + 8;
	a.avail = fe.reg[0].uva + 16384;
	a.used = fe.reg[0].uva + 20480;
	ck_assert_int_eq(fe_request(&fe, FE_SET_VRING_ADDR, &a, sizeof(a),
	    NULL, 0, true), 1);
	/* An unknown request with need_reply gets a nack, not a hang-up. */
	ck_assert_int_eq(fe_request(&fe, 99, NULL, 0, NULL, 0, true), 1);
	/*
	 * One we do not implement, with a payload larger than any we do
	 * (GET_CONFIG, 12 + 256 bytes): skipped whole, the stream stays in
	 * step.
	 */
	{
		uint8_t cfgspace[12 + 256];

		memset(cfgspace, 0xab, sizeof(cfgspace));
		ck_assert_int_eq(fe_request(&fe, 24, cfgspace,
		    sizeof(cfgspace), NULL, 0, true), 1);
	}

	/* Good requests are acked with 0. */
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_NUM, 0, 256, true),
	    0);
	IT_OK(fe_get_u64(&fe, FE_GET_FEATURES, &f));
	ck_assert(f & FE_BIT(FE_F_VERSION_1));
	/* And the device still works after all that. */
	IT_OK(fe_ring_start(&fe, 0));
	IT_SERVE(&fe, 128, &vd);
	/* The ring runs: its size and base are not to be changed now. */
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_NUM, 0, 128, true),
	    1);
	ck_assert_int_eq(fe_set_state(&fe, FE_SET_VRING_BASE, 0, 0, true), 1);
	IT_SERVE(&fe, 128, &vd);
	IT_END(&vd, &fe);
}
END_TEST

START_TEST(need_reply_without_reply_ack_gets_no_ack)
{
	struct fe_cfg cfg;
	struct fe_msg m;
	struct vd vd;
	struct fe fe;

	fe_cfg_init(&cfg);
	cfg.reply_ack = false;
	cfg.start = false;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	ck_assert(!(fe.acked_pf & FE_BIT(FE_PF_REPLY_ACK)));
	/* need_reply means nothing unless REPLY_ACK was negotiated. */
	IT_OK(fe_send(&fe, FE_SET_VRING_NUM, FE_FLAG_VERSION |
	    FE_FLAG_NEED_REPLY, &(struct fe_vring_state){ 0, 256 }, 8, NULL,
	    0));
	IT_OK(fe_send(&fe, FE_GET_FEATURES, FE_FLAG_VERSION, NULL, 0, NULL,
	    0));
	IT_OK(fe_recv(&fe, &m, 3000));
	ck_assert_uint_eq(m.hdr.request, FE_GET_FEATURES);
	ck_assert_uint_eq(m.hdr.size, 8);
	IT_OK(fe_ring_start(&fe, 0));
	IT_SERVE(&fe, 64, &vd);
	IT_END(&vd, &fe);
}
END_TEST

/* An old front-end: no protocol features, so no SET_VRING_ENABLE. */
START_TEST(enable_without_protocol_features_is_implicit)
{
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;

	fe_cfg_init(&cfg);
	cfg.protocol = false;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	ck_assert(!(fe.acked & FE_BIT(FE_F_PROTOCOL_FEATURES)));
	ck_assert_uint_eq(fe.offered_pf, 0);	/* never asked */
	IT_SERVE(&fe, 64, &vd);
	IT_SERVE(&fe, 4096, &vd);
	IT_END(&vd, &fe);
}
END_TEST

START_TEST(enable_with_protocol_features_waits_for_enable)
{
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	uint64_t gpa;

	fe_cfg_init(&cfg);
	cfg.enable = false;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	gpa = post_held(&fe, 256, 300, NULL);
	ck_assert_uint_eq(fe_canary_count(&fe, gpa, 256), 256);

	IT_OK(fe_set_state(&fe, FE_SET_VRING_ENABLE, 0, 1, true));
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 3000), 1);
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.len, 256);
	IT_END(&vd, &fe);
}
END_TEST

START_TEST(disable_holds_requests_until_enabled)
{
	struct fe_used_elem u;
	struct vd vd;
	struct fe fe;
	uint64_t gpa;
	int head;

	IT_ONE_GUEST(&vd, &fe, NULL, NULL);
	IT_SERVE(&fe, 64, &vd);

	IT_OK(fe_set_state(&fe, FE_SET_VRING_ENABLE, 0, 0, true));
	gpa = post_held(&fe, 512, 300, &head);
	ck_assert_uint_eq(fe_canary_count(&fe, gpa, 512), 512);

	IT_OK(fe_set_state(&fe, FE_SET_VRING_ENABLE, 0, 1, true));
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 3000), 1);
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.id, (unsigned)head);
	ck_assert_uint_eq(u.len, 512);
	IT_END(&vd, &fe);
}
END_TEST

START_TEST(vring_base_reports_avail_index_and_restarts)
{
	struct vd vd;
	struct fe fe;
	uint32_t base;
	int i;

	IT_ONE_GUEST(&vd, &fe, NULL, NULL);
	for (i = 0; i < 7; i++)
		IT_SERVE(&fe, 32, &vd);
	IT_OK(fe_ring_stop(&fe, &base));
	ck_assert_uint_eq(base, 7);

	/* Posted while stopped: held, not lost. */
	(void)post_held(&fe, 64, 300, NULL);

	/* Same ring, continue where it stopped. */
	IT_OK(fe_ring_start(&fe, (uint16_t)base));
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 3000), 1);
	ck_assert(fe_get_used(&fe, &(struct fe_used_elem){ 0, 0 }));
	ck_assert_uint_eq(fe_used_idx(&fe), 8);
	IT_SERVE(&fe, 32, &vd);
	IT_OK(fe_ring_stop(&fe, &base));
	ck_assert_uint_eq(base, 9);
	IT_END(&vd, &fe);
}
END_TEST

/* A fresh ring at an index near 65535: the 16-bit indexes wrap. */
START_TEST(vring_base_restart_at_new_index_wraps)
{
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	uint32_t base;
	int i;

	fe_cfg_init(&cfg);
	cfg.qsize = 8;
	IT_ONE_GUEST(&vd, &fe, &cfg, NULL);
	IT_SERVE(&fe, 16, &vd);
	IT_OK(fe_ring_stop(&fe, &base));
	ck_assert_uint_eq(base, 1);

	fe_ring_reset(&fe, 65533);
	IT_OK(fe_ring_start(&fe, 65533));
	for (i = 0; i < 6; i++)
		IT_SERVE(&fe, 16, &vd);
	ck_assert_uint_eq(fe_used_idx(&fe), 3);	/* 65533 + 6 */
	IT_OK(fe_ring_stop(&fe, &base));
	ck_assert_uint_eq(base, 3);
	IT_END(&vd, &fe);
}
END_TEST

/*
 * RESET_DEVICE (offered, so QEMU may send it): the ring stops, and the
 * front-end sets the device up again on the same connection.
 */
START_TEST(reset_device_then_set_up_again)
{
	struct vd vd;
	struct fe fe;

	IT_ONE_GUEST(&vd, &fe, NULL, NULL);
	ck_assert(fe.acked_pf & FE_BIT(FE_PF_RESET_DEVICE));
	IT_SERVE(&fe, 64, &vd);
	ck_assert_int_eq(fe_request(&fe, FE_RESET_DEVICE, NULL, 0, NULL, 0,
	    true), 0);
	/* Reset: nothing is served. */
	(void)post_held(&fe, 64, 200, NULL);
	/* Everything again, from a fresh ring. */
	fe_ring_reset(&fe, 0);
	IT_OK(fe_setup(&fe, NULL));
	IT_SERVE(&fe, 64, &vd);
	IT_SERVE(&fe, 4096, &vd);
	IT_END(&vd, &fe);
}
END_TEST

SUITE(it_handshake, IT_TIMEOUT, NULL, NULL,
    "negotiation", TESTS(handshake_offers_features,
	handshake_qemu_order_then_served,
	reply_ack_nacks_bad_requests_and_stays_up,
	need_reply_without_reply_ack_gets_no_ack,
	reset_device_then_set_up_again),
    "enable", TESTS(enable_without_protocol_features_is_implicit,
	enable_with_protocol_features_waits_for_enable,
	disable_holds_requests_until_enabled),
    "vring_base", TESTS(vring_base_reports_avail_index_and_restarts,
	vring_base_restart_at_new_index_wraps))
