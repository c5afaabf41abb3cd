/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_VU_PROTO_H
#define VRNG_VU_PROTO_H

/*
 * The vhost-user wire format, from QEMU docs/interop/vhost-user.rst
 * ("Message Specification").  Every field is host-endian (the protocol runs
 * between two processes on one host) and the structures are packed.
 */

#include <stddef.h>
#include <stdint.h>

enum vu_request {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_LOG_BASE = 6,
	VU_SET_LOG_FD = 7,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_RESET_DEVICE = 34,
	VU_GET_MAX_MEM_SLOTS = 36,
	VU_ADD_MEM_REG = 37,
	VU_REM_MEM_REG = 38,
	VU_REQUEST_MAX = 41,	/* one past the last request the spec names */
};

/* Header flags. */
#define VU_VERSION		0x1
#define VU_VERSION_MASK		0x3
#define VU_FLAG_REPLY		(1u << 2)
#define VU_FLAG_NEED_REPLY	(1u << 3)

/* Payload of SET_VRING_KICK/CALL/ERR: ring index and the "no fd" bit. */
#define VU_VRING_IDX_MASK	0xffu
#define VU_VRING_NOFD		(1u << 8)

/* Virtio and vhost-user feature bits we deal in. */
#define VIRTIO_RING_F_INDIRECT_DESC	28
#define VIRTIO_RING_F_EVENT_IDX		29
#define VHOST_USER_F_PROTOCOL_FEATURES	30
#define VIRTIO_F_VERSION_1		32

#define VU_PROTOCOL_F_MQ			0
#define VU_PROTOCOL_F_REPLY_ACK			3
#define VU_PROTOCOL_F_RESET_DEVICE		13
#define VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS	15

/* SET_MEM_TABLE carries at most this many regions (and as many fds). */
#define VU_MEM_TABLE_MAX	8
/* File descriptors one message may carry. */
#define VU_MAX_FDS		VU_MEM_TABLE_MAX

struct vu_header {
	uint32_t request;
	uint32_t flags;
	uint32_t size;		/* of the payload that follows */
} __attribute__((packed));
_Static_assert(sizeof(struct vu_header) == 12, "vhost-user header");

struct vu_vring_state {
	uint32_t index;
	uint32_t num;
} __attribute__((packed));
_Static_assert(sizeof(struct vu_vring_state) == 8, "vring state");

#define VU_VRING_F_LOG	(1u << 0)

struct vu_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc_user_addr;
	uint64_t used_user_addr;
	uint64_t avail_user_addr;
	uint64_t log_guest_addr;
} __attribute__((packed));
_Static_assert(sizeof(struct vu_vring_addr) == 40, "vring address");

struct vu_mem_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
} __attribute__((packed));
_Static_assert(sizeof(struct vu_mem_region) == 32, "memory region");

struct vu_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct vu_mem_region regions[VU_MEM_TABLE_MAX];
} __attribute__((packed));
_Static_assert(sizeof(struct vu_mem_table) == 8 + 8 * 32, "memory table");

/* ADD_MEM_REG / REM_MEM_REG. */
struct vu_mem_single {
	uint64_t padding;
	struct vu_mem_region region;
} __attribute__((packed));
_Static_assert(sizeof(struct vu_mem_single) == 40, "single region");

union vu_payload {
	uint64_t		u64;
	struct vu_vring_state	state;
	struct vu_vring_addr	addr;
	struct vu_mem_table	mem;
	struct vu_mem_single	single;
};

/*
 * The largest payload we accept.  Requests we do not implement may be
 * larger (GET_CONFIG carries up to 256 bytes of config space); their
 * payload is read and dropped so that the stream stays in step.
 */
#define VU_PAYLOAD_MAX	sizeof(union vu_payload)
#define VU_DISCARD_MAX	4096

struct vu_msg {
	struct vu_header	hdr;
	union vu_payload	payload;
	int			fds[VU_MAX_FDS];
	unsigned		nfds;
};

enum vu_recv_result {
	VU_RECV_OK = 0,
	VU_RECV_EOF,		/* peer closed between messages */
	VU_RECV_ERROR,		/* I/O error or malformed framing: hang up */
};

/*
 * Reads one whole message from a blocking socket.  On VU_RECV_OK the
 * caller owns msg->fds[0..nfds-1]; on any other result no fd is left open.
 * Framing is checked here (version, size bound, control data); whether the
 * size and fd count fit the request is the dispatcher's job.
 */
enum vu_recv_result vu_msg_recv(int sock, struct vu_msg *msg);
/*
 * The same, but the whole message must arrive within timeout_ms of the
 * call, and stop_fd (if >= 0) becoming readable abandons it.
 */
enum vu_recv_result vu_msg_recv_until(int sock, struct vu_msg *msg,
	    int stop_fd, int timeout_ms);
/* How long a front-end may take to send the rest of a started message. */
#define VU_MSG_TIMEOUT_MS	500
/* Sends a reply: sets the version and reply flags, clears need_reply. */
int	vu_msg_send_reply(int sock, struct vu_msg *msg);
/* Closes every fd the message still owns. */
void	vu_msg_close_fds(struct vu_msg *msg);
/* The request's name for log lines, or "unknown". */
const char *vu_request_name(uint32_t request);

#endif
