/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_TEST_FRONTEND_H
#define VRNG_TEST_FRONTEND_H

/*
 * A small fake QEMU for the integration tests: it talks vhost-user to
 * the daemon (started by daemon.h) over real Unix sockets, shares
 * memfd-backed guest memory and drives a split virtqueue in that memory
 * with real eventfds.
 *
 * The wire format and ring layout are written out here again from QEMU
 * docs/interop/vhost-user.rst and VIRTIO 1.x section 2.7, on purpose
 * without include/: a front-end that shared the daemon's headers would
 * share their mistakes too.
 *
 * Functions return 0 (or a value) on success and -1 on failure; the reason
 * of the last failure is in fe_errstr(), for assertion messages.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* vhost-user requests ("Front-end message types"). */
enum {
	FE_GET_FEATURES = 1,
	FE_SET_FEATURES = 2,
	FE_SET_OWNER = 3,
	FE_RESET_OWNER = 4,
	FE_SET_MEM_TABLE = 5,
	FE_SET_VRING_NUM = 8,
	FE_SET_VRING_ADDR = 9,
	FE_SET_VRING_BASE = 10,
	FE_GET_VRING_BASE = 11,
	FE_SET_VRING_KICK = 12,
	FE_SET_VRING_CALL = 13,
	FE_SET_VRING_ERR = 14,
	FE_GET_PROTOCOL_FEATURES = 15,
	FE_SET_PROTOCOL_FEATURES = 16,
	FE_GET_QUEUE_NUM = 17,
	FE_SET_VRING_ENABLE = 18,
	FE_RESET_DEVICE = 34,
	FE_GET_MAX_MEM_SLOTS = 36,
	FE_ADD_MEM_REG = 37,
	FE_REM_MEM_REG = 38,
};

/* Header flags. */
#define FE_FLAG_VERSION		0x1u
#define FE_FLAG_REPLY		0x4u
#define FE_FLAG_NEED_REPLY	0x8u
/* SET_VRING_KICK/CALL/ERR payload: "no file descriptor" bit. */
#define FE_VRING_NOFD		0x100u

/* Feature bits. */
#define FE_F_INDIRECT_DESC	28
#define FE_F_EVENT_IDX		29
#define FE_F_PROTOCOL_FEATURES	30
#define FE_F_VERSION_1		32
#define FE_PF_MQ		0
#define FE_PF_REPLY_ACK		3
#define FE_PF_RESET_DEVICE	13
#define FE_PF_CONFIGURE_MEM_SLOTS 15
#define FE_BIT(n)		(1ull << (n))

/* Split virtqueue (VIRTIO 1.x 2.7), little-endian on x86. */
#define FE_DESC_F_NEXT		1
#define FE_DESC_F_WRITE		2
#define FE_DESC_F_INDIRECT	4
#define FE_AVAIL_F_NO_INTERRUPT	1

struct fe_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct fe_used_elem {
	uint32_t id;
	uint32_t len;
};

struct fe_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
} __attribute__((packed));

struct fe_vring_state {
	uint32_t index;
	uint32_t num;
} __attribute__((packed));

struct fe_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc;
	uint64_t used;
	uint64_t avail;
	uint64_t log;
} __attribute__((packed));

struct fe_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uva;
	uint64_t mmap_offset;
} __attribute__((packed));

struct fe_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct fe_mem_region regions[8];
} __attribute__((packed));

struct fe_mem_single {
	uint64_t padding;
	struct fe_mem_region region;
} __attribute__((packed));

struct fe_msg {
	struct fe_hdr hdr;
	union {
		uint64_t		u64;
		struct fe_vring_state	state;
		struct fe_vring_addr	addr;
		struct fe_mem_table	mem;
		struct fe_mem_single	single;
		uint8_t			raw[4096];
	} p;
} __attribute__((packed));	/* the payload follows the header directly */

const char *fe_errstr(void);
/* Sets what fe_errstr() says (for daemon.c and the other helpers). */
void	fe_seterr(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t	fe_now_ms(void);
/* Nanoseconds on CLOCK_MONOTONIC. */
int64_t	fe_now_ns(void);
void	fe_sleep_ms(int ms);

/* One front-end: socket, guest memory, one split virtqueue, eventfds. */
#define FE_MAX_REGIONS	4

struct fe_region {
	int		 fd;
	uint8_t		*map;		/* our mapping of the whole memfd */
	uint8_t		*host;		/* map + mmap_offset: gpa base */
	uint64_t	 gpa;
	uint64_t	 size;
	uint64_t	 uva;		/* fake front-end address we announce */
	uint64_t	 mmap_offset;
};

struct fe_cfg {
	uint16_t	 qsize;
	uint64_t	 mem_size;	/* total guest memory */
	uint64_t	 gpa;		/* guest physical base */
	uint64_t	 uva;		/* announced userspace_addr base */
	uint64_t	 mmap_offset;	/* of each region inside its memfd */
	unsigned	 nregions;	/* split, adjacent in gpa, not in uva */
	bool		 add_mem_reg;	/* ADD_MEM_REG instead of SET_MEM_TABLE */
	bool		 event_idx;
	bool		 indirect;
	bool		 protocol;	/* ack VHOST_USER_F_PROTOCOL_FEATURES */
	bool		 reply_ack;	/* negotiate REPLY_ACK, check acks */
	bool		 enable;	/* send SET_VRING_ENABLE 1 at the end */
	bool		 start;		/* configure and kick-start the ring */
};

struct fe {
	int		 sock;
	struct fe_region reg[FE_MAX_REGIONS];
	unsigned	 nreg;
	struct fe_cfg	 cfg;

	uint64_t	 offered;	/* GET_FEATURES */
	uint64_t	 offered_pf;	/* GET_PROTOCOL_FEATURES */
	uint64_t	 queue_num;
	uint64_t	 max_mem_slots;
	uint64_t	 acked;		/* what we sent in SET_FEATURES */
	uint64_t	 acked_pf;

	/* The ring, in region 0. */
	uint16_t	 qsize;
	uint64_t	 desc_gpa, avail_gpa, used_gpa, ring_end_gpa;
	volatile struct fe_desc	 *desc;
	volatile uint16_t	 *avail;	/* flags, idx, ring[], used_event */
	volatile uint16_t	 *used;		/* flags, idx, then elements */
	uint16_t	 avail_idx;	/* next index we publish */
	uint16_t	 used_idx;	/* used entries we consumed */
	uint16_t	 free_head;
	unsigned	 nfree;
	struct fe_desc	*shadow;	/* what we wrote, for freeing chains */

	uint64_t	 heap;		/* next free gpa for buffers */
	uint64_t	 heap_start;

	int		 kick, call, err;
	uint64_t	 ncalls;	/* call eventfd signals seen */
	uint64_t	 nerrs;		/* err eventfd signals seen */
};

struct fe_buf {
	uint64_t	 gpa;
	uint32_t	 len;
};

void	fe_cfg_init(struct fe_cfg *);
void	fe_init(struct fe *);
/* Connects to a Unix socket path (retrying until timeout_ms). */
int	fe_connect(struct fe *, const char *path, int timeout_ms);
/* Takes an already connected socket. */
void	fe_attach(struct fe *, int sock);
/* Creates the memfds (filled with the canary) and the eventfds. */
int	fe_mem_create(struct fe *, const struct fe_cfg *);
/*
 * One more region of guest memory (canary-filled), not announced yet:
 * returns its index.
 */
int	fe_add_region(struct fe *, uint64_t gpa, uint64_t size, uint64_t uva);
/* SET_MEM_TABLE with all regions; ADD_MEM_REG/REM_MEM_REG of region i. */
int	fe_send_mem_table(struct fe *);
int	fe_send_add_region(struct fe *, unsigned i);
int	fe_send_rem_region(struct fe *, unsigned i);
/*
 * fe_mem_create (if needed) and the whole QEMU 7.2 start sequence, with
 * the settings of cfg (NULL: fe_cfg_init()'s).
 */
int	fe_setup(struct fe *, const struct fe_cfg *cfg);
/* Connect + setup. */
int	fe_open(struct fe *, const char *path, const struct fe_cfg *);
/* Closes the socket only (the daemon sees a disconnect). */
void	fe_disconnect(struct fe *);
/* Closes everything. */
void	fe_close(struct fe *);

/* Raw messages. */
int	fe_send(struct fe *, uint32_t req, uint32_t flags, const void *payload,
	    uint32_t size, const int *fds, unsigned nfds);
int	fe_send_bytes(struct fe *, const void *buf, size_t len,
	    const int *fds, unsigned nfds);
/* One reply; 0, -1 on error or timeout, -2 if the peer closed. */
int	fe_recv(struct fe *, struct fe_msg *, int timeout_ms);
/* The daemon closed the connection (read returns 0) within timeout_ms. */
bool	fe_peer_closed(struct fe *, int timeout_ms);
/* Request without payload, u64 reply (GET_FEATURES & co). */
int	fe_get_u64(struct fe *, uint32_t req, uint64_t *out);
/*
 * Sends a request; if need_reply, waits for the REPLY_ACK and returns its
 * value (0: success); else returns 0 once sent.
 */
int	fe_request(struct fe *, uint32_t req, const void *payload,
	    uint32_t size, const int *fds, unsigned nfds, bool need_reply);
int	fe_set_u64(struct fe *, uint32_t req, uint64_t v, bool need_reply);
int	fe_set_state(struct fe *, uint32_t req, uint32_t index, uint32_t num,
	    bool need_reply);
/* Round trip (GET_FEATURES): everything sent before has been handled. */
int	fe_sync(struct fe *);
/* SET_VRING_ENABLE 0 (if negotiated) and GET_VRING_BASE. */
int	fe_ring_stop(struct fe *, uint32_t *base);
int	fe_get_vring_base(struct fe *, uint32_t *base);
/*
 * Zeroes the rings and our ring state; used_idx/avail_idx start at base.
 */
void	fe_ring_reset(struct fe *, uint16_t base);
/* SET_VRING_NUM/BASE/ADDR/KICK and, if cfg.enable, SET_VRING_ENABLE 1. */
int	fe_ring_start(struct fe *, uint16_t base);

/* Guest memory. */
void	*fe_host(const struct fe *, uint64_t gpa);
uint64_t fe_alloc(struct fe *, uint64_t len, uint64_t align);
uint8_t	fe_canary_at(uint64_t gpa);
/* Refills [gpa, gpa+len) with the canary. */
void	fe_canary_fill(struct fe *, uint64_t gpa, uint64_t len);
/* Deterministic bytes with no repeated 4 KiB piece (xorshift64). */
void	fe_fill_prng(uint8_t *p, size_t len, uint64_t seed);
/* Bytes of [gpa, gpa+len) that still hold the canary. */
uint64_t fe_canary_count(const struct fe *, uint64_t gpa, uint64_t len);
/*
 * Bytes outside the rings and outside the given holes that lost their
 * canary (should be 0); *first gets the first such gpa.
 */
uint64_t fe_canary_damage(const struct fe *, const struct fe_buf *holes,
	    unsigned nholes, uint64_t *first);
/* Copies guest memory out (across regions). */
int	fe_read_mem(const struct fe *, uint64_t gpa, void *out, size_t len);
int	fe_write_mem(struct fe *, uint64_t gpa, const void *in, size_t len);

/* The ring, driver side. */
unsigned fe_free_descs(const struct fe *);
/* A chain of writable buffers; returns the head index or -1. */
int	fe_post(struct fe *, const struct fe_buf *, unsigned n);
int	fe_post1(struct fe *, uint64_t gpa, uint32_t len);
/* One descriptor pointing to an indirect table built at table_gpa. */
int	fe_post_indirect(struct fe *, uint64_t table_gpa,
	    const struct fe_buf *, unsigned n);
/* Puts head into the avail ring and publishes it (no kick). */
void	fe_publish(struct fe *, uint16_t head);
/* Writes descriptor i (raw; for hostile tests). */
void	fe_write_desc(struct fe *, uint16_t i, uint64_t addr, uint32_t len,
	    uint16_t flags, uint16_t next);
void	fe_set_avail_idx(struct fe *, uint16_t idx);
void	fe_kick(struct fe *);
/* Used entries the daemon published that we have not consumed. */
uint16_t fe_used_pending(const struct fe *);
uint16_t fe_used_idx(const struct fe *);
/*
 * Waits until at least n entries are pending (polling the call eventfd
 * and the ring, so it works without interrupts too).  Returns the
 * number pending, which is < n after a timeout.
 */
unsigned fe_wait_used(struct fe *, unsigned n, int timeout_ms);
/* Consumes the next used entry and frees its chain; false if none. */
bool	fe_get_used(struct fe *, struct fe_used_elem *);
/* Reads the call/err eventfds without blocking; returns the totals. */
uint64_t fe_drain_calls(struct fe *);
uint64_t fe_drain_errs(struct fe *);
bool	fe_wait_err(struct fe *, int timeout_ms);
/* EVENT_IDX fields. */
uint16_t fe_avail_event(const struct fe *);
void	fe_set_used_event(struct fe *, uint16_t);
void	fe_set_avail_flags(struct fe *, uint16_t);

/*
 * The common "one request" check: posts a buffer of len bytes, kicks,
 * waits for its completion and checks used.len == len, the id, that the
 * data is not the canary, and that the bytes around it kept theirs.
 * Returns 0 or -1 (fe_errstr() says why).
 */
int	fe_serve_one(struct fe *, uint32_t len, int timeout_ms);

/* Socket helpers for --fd and socket activation. */
int	fe_listen_unix(const char *path);

/* Jain's fairness index of n values. */
double	fe_jain(const double *, unsigned n);

#endif
