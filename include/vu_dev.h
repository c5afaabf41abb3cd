/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_VU_DEV_H
#define VRNG_VU_DEV_H

/*
 * The vhost-user device of one guest: negotiated features, the memory
 * table, the one virtqueue of virtio-rng (VIRTIO 1.x 5.4.2: "0 requestq")
 * and its eventfds.  Owned by that guest's thread.
 */

#include <stdbool.h>
#include <stdint.h>

#include "handover.h"
#include "memtable.h"
#include "virtq.h"
#include "vu_proto.h"

#define VU_NUM_QUEUES	1

#define VU_OFFERED_FEATURES						\
	((1ull << VIRTIO_F_VERSION_1) |					\
	 (1ull << VIRTIO_RING_F_EVENT_IDX) |				\
	 (1ull << VIRTIO_RING_F_INDIRECT_DESC) |			\
	 (1ull << VHOST_USER_F_PROTOCOL_FEATURES))

#define VU_OFFERED_PROTOCOL_FEATURES					\
	((1ull << VU_PROTOCOL_F_MQ) |					\
	 (1ull << VU_PROTOCOL_F_REPLY_ACK) |				\
	 (1ull << VU_PROTOCOL_F_RESET_DEVICE) |				\
	 (1ull << VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS))

struct vu_dev {
	int		 sock;
	uint64_t	 features;		/* acked by SET_FEATURES */
	uint64_t	 protocol_features;	/* acked */
	bool		 owner;

	struct memtable	 mt;
	struct virtq	 vq;

	/* Ring state, vhost-user.rst "Ring states". */
	bool		 started;	/* from SET_VRING_KICK to GET_VRING_BASE */
	bool		 enabled;
	bool		 kick_polling;	/* SET_VRING_KICK with the no-fd bit */
	int		 kick_fd;	/* in watch_fd's set, edge-triggered */
	int		 watch_fd;	/* the guest thread's epoll fd, or -1 */
	uint64_t	 watch_kick_tag; /* epoll data for the kick fd */
	int		 call_fd;
	int		 err_fd;

	/* A memory table was accepted (SET_MEM_TABLE, ADD_MEM_REG). */
	bool		 has_mem_table;
	/*
	 * A started, configured ring that does not map: reported once per
	 * start or loss of a mapping that worked (map_failed), and not tried
	 * again until the table or the ring changes (map_stale at table
	 * generation map_gen).
	 */
	bool		 map_failed;
	bool		 map_stale;
	uint64_t	 map_gen;

	/*
	 * Handover (handover.h): each fd is named <fd_prefix><role>; the
	 * generation of a role moves on whenever the front-end sends its fd
	 * again, so that the fd store replaces it (fdstore.h).
	 */
	char		 fd_prefix[32];
	uint32_t	 kick_gen, call_gen, err_gen;
	/* Restored: completions resume from the used index in the ring. */
	bool		 resume_from_used;

	/* Counters for the statistics (this thread only). */
	uint64_t	 bad_messages;
	uint64_t	 ring_errors;	/* not yet taken, see below */
};

void	vu_dev_init(struct vu_dev *, int sock);
/* Releases everything the connection holds (mappings, fds, the socket). */
void	vu_dev_cleanup(struct vu_dev *);

/*
 * Validates and executes one message (taking or closing its fds), sends
 * the reply or REPLY_ACK.  Returns 0 to go on, -1 to hang up.
 */
int	vu_dev_handle(struct vu_dev *, struct vu_msg *);

/*
 * The ring may be processed now (started, enabled, mapped, not broken).
 * Maps the rings, so it touches guest memory: call it under the SIGBUS
 * guard.  A started ring whose addresses do not map counts one ring
 * error per start, or per loss of a mapping that worked (logged, and
 * signalled on the err eventfd).
 */
bool	vu_dev_ring_runnable(struct vu_dev *);
/* Ring errors counted since the last call, for the statistics. */
uint64_t vu_dev_take_ring_errors(struct vu_dev *);
/*
 * Handover: calls fn once for each fd the connection holds, with the name
 * vu_dev_save() gives it (<prefix>sock, kick, call, err; memory fds
 * <prefix>m<dev>-<inode>, several regions of one file share a name) and
 * its generation (moves on each time the front-end sends that role's fd
 * again; 0 for the others).  Stops at and returns fn's first non-zero
 * result.
 */
int	vu_dev_each_fd(const struct vu_dev *,
	    int (*fn)(const char *name, int fd, uint32_t gen, void *arg),
	    void *arg);
/*
 * Writes what a successor needs to resume this connection (vhost-user
 * features, the memory table without its mappings, the ring's size,
 * addresses, state and indexes, fd names).  Call it while no thread
 * serves the connection.
 */
void	vu_dev_save(const struct vu_dev *, struct handover_buf *);
/*
 * The other side: dev was vu_dev_init()ed with its socket and its
 * watch_fd set.  Takes duplicates of the named fds from fds, and checks
 * every value as the messages that set it would (features offered, ring
 * size, ring addresses, memory regions).  Returns 0, or -1 with a
 * sentence in err (the cursor is failed for a malformed blob; a value
 * that fails a device check leaves the cursor good).
 */
int	vu_dev_restore(struct vu_dev *, struct handover_cursor *,
	    struct handover_fds *, char *err, size_t errlen);
/* Signals the guest (call eventfd) if the driver wants it. */
void	vu_dev_notify(struct vu_dev *);
/* Signals the guest (call eventfd) whatever the driver asked. */
void	vu_dev_signal_used(struct vu_dev *);
/* Tells the front-end (err eventfd) that the ring broke. */
void	vu_dev_signal_error(struct vu_dev *);

#endif
