/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user requests for the entropy device (QEMU
 * docs/interop/vhost-user.rst).
 *
 * Security model: never assume a received field is sensible.  The
 * dispatcher checks, once and before any handler runs, that the request is
 * one we implement, that its payload has exactly the size the request
 * defines, that it carries the number of fds it may carry, and that a ring
 * index names our one queue.  Handlers then check the values.  Received
 * fds are closed on every failure path; a handler that keeps one sets its
 * slot to -1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ioguard.h"
#include "log.h"
#include "vu_dev.h"

enum size_rule {
	SZ_NONE,	/* no payload */
	SZ_U64,
	SZ_STATE,
	SZ_ADDR,
	SZ_MEM_TABLE,	/* 8 + 32 * nregions, checked by the handler */
	SZ_SINGLE,
};

enum fd_rule {
	FD_NONE,
	FD_TABLE,	/* 0 .. VU_MEM_TABLE_MAX */
	FD_ONE,		/* exactly one */
	FD_OPTIONAL,	/* 0 or 1 */
	FD_VRING,	/* 1, or 0 with the no-fd bit */
};

/* Handler results. */
enum handler_result {
	H_FAIL = -1,	/* refused: REPLY_ACK 1, or hang up */
	H_OK = 0,	/* done; REPLY_ACK 0 if asked */
	H_REPLIED = 1,	/* handler filled msg as the reply */
};

typedef enum handler_result (*handler_fn)(struct vu_dev *, struct vu_msg *);

struct request_rule {
	handler_fn	handler;
	enum size_rule	size;
	enum fd_rule	fds;
	bool		vring;		/* payload names a ring index */
	bool		replies;	/* has its own reply body */
};

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void
vu_dev_init(struct vu_dev *dev, int sock)
{
	memset(dev, 0, sizeof(*dev));
	dev->sock = sock;
	dev->kick_fd = dev->call_fd = dev->err_fd = -1;
	dev->watch_fd = -1;
	memtable_init(&dev->mt);
	virtq_init(&dev->vq);
}

/*
 * Replaces the kick fd.  The old one leaves the guest thread's epoll set
 * before it is closed: the front-end holds the same open file description,
 * so closing our fd alone would leave it registered (epoll(7), "Questions
 * and answers" 6) and its kicks would still wake us.
 */
static void
kick_replace(struct vu_dev *dev, int fd)
{
	struct epoll_event ev;

	if (dev->kick_fd >= 0 && dev->watch_fd >= 0)
		(void)epoll_ctl(dev->watch_fd, EPOLL_CTL_DEL, dev->kick_fd,
		    NULL);
	close_fd(&dev->kick_fd);
	dev->kick_fd = fd;
	if (fd < 0 || dev->watch_fd < 0)
		return;
	/*
	 * Edge-triggered: every write of the front-end (or KVM's ioeventfd)
	 * wakes us once, and we never read the counter.  So no read per
	 * kick, and a counter the front-end loads or makes blocking cannot
	 * make us spin or sleep.
	 */
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLET;
	ev.data.u64 = dev->watch_kick_tag;
	if (epoll_ctl(dev->watch_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		log_warn("watching the kick eventfd");
}

static void
ring_stop(struct vu_dev *dev)
{
	dev->started = false;
	dev->kick_polling = false;
	kick_replace(dev, -1);
}

void
vu_dev_cleanup(struct vu_dev *dev)
{
	ring_stop(dev);
	close_fd(&dev->call_fd);
	close_fd(&dev->err_fd);
	memtable_clear(&dev->mt);
	virtq_reset(&dev->vq);
	if (dev->sock >= 0)
		close(dev->sock);
	dev->sock = -1;
}

/* Something the rings' mapping depends on changed: try it again. */
static void
ring_changed(struct vu_dev *dev)
{
	dev->vq.mapped = false;
	dev->map_stale = false;
}

/*
 * A restored ring goes on from the used index the driver sees: a request
 * the predecessor took but did not complete is taken again (an entropy
 * request may be served twice; none is lost).  After a live upgrade the
 * two agree (a parked thread gave its unfinished requests back); after a
 * crash the saved index may be behind or ahead.
 */
static void
resume_at_used(struct vu_dev *dev)
{
	if (dev->vq.last_avail_idx != dev->vq.used_idx)
		log_info("ring resumes at used index %u (saved avail index "
		    "%u)", dev->vq.used_idx, dev->vq.last_avail_idx);
	dev->vq.last_avail_idx = dev->vq.used_idx;
	dev->resume_from_used = false;
}

bool
vu_dev_ring_runnable(struct vu_dev *dev)
{
	if (!dev->started || !dev->enabled || dev->vq.broken)
		return false;
	/* Failed with this table already: do not log it again. */
	if (dev->map_stale && dev->map_gen == dev->mt.generation)
		return false;
	if (virtq_ready(&dev->vq, &dev->mt)) {
		/* Losing the mapping later is news again. */
		dev->map_stale = dev->map_failed = false;
		if (dev->resume_from_used)
			resume_at_used(dev);
		return true;
	}
	if (dev->vq.num == 0 || !dev->vq.addr_set)
		return false;		/* not configured yet */
	/*
	 * vhost-user.rst "Ring states": the ring started with its kick, but
	 * cannot run.  Nothing else would tell anyone (the guest just waits),
	 * so it is an error, once per start, and the front-end hears of it
	 * on the err eventfd (vhost-user.rst VHOST_USER_SET_VRING_ERR).
	 */
	dev->map_stale = true;
	dev->map_gen = dev->mt.generation;
	if (!dev->map_failed) {
		log_guest_err("ring started but cannot run: its addresses do "
		    "not map to guest memory; front-end told on the err "
		    "eventfd");
		dev->map_failed = true;
		dev->ring_errors++;
		vu_dev_signal_error(dev);
	}
	return false;
}

uint64_t
vu_dev_take_ring_errors(struct vu_dev *dev)
{
	uint64_t n = dev->ring_errors;

	dev->ring_errors = 0;
	return n;
}

static void
eventfd_signal(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && ioguard_write(fd, &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		log_guest_err("signalling an eventfd: %s", errno == EINTR ?
		    "blocked (the front-end made it blocking?)" :
		    strerror(errno));
}

void
vu_dev_notify(struct vu_dev *dev)
{
	uint64_t one = 1;

	if (!virtq_should_notify(&dev->vq) || dev->call_fd < 0)
		return;
	/* Once per batch: the guard costs no system call here. */
	if (ioguard_write_often(dev->call_fd, &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		log_guest_err("signalling the call eventfd: %s", errno ==
		    EINTR ? "blocked (the front-end made it blocking?)" :
		    strerror(errno));
}

void
vu_dev_signal_used(struct vu_dev *dev)
{
	eventfd_signal(dev->call_fd);
}

void
vu_dev_signal_error(struct vu_dev *dev)
{
	eventfd_signal(dev->err_fd);
}

static enum handler_result
reply_u64(struct vu_msg *msg, uint64_t v)
{
	msg->hdr.size = sizeof(msg->payload.u64);
	msg->payload.u64 = v;
	return H_REPLIED;
}

static enum handler_result
get_features(struct vu_dev *dev, struct vu_msg *msg)
{
	(void)dev;
	return reply_u64(msg, VU_OFFERED_FEATURES);
}

static enum handler_result
set_features(struct vu_dev *dev, struct vu_msg *msg)
{
	uint64_t f = msg->payload.u64;

	if (f & ~VU_OFFERED_FEATURES)
		log_info("SET_FEATURES: ignoring bits 0x%llx we did not offer",
		    (unsigned long long)(f & ~VU_OFFERED_FEATURES));
	dev->features = f & VU_OFFERED_FEATURES;
	dev->vq.event_idx = (dev->features &
	    (1ull << VIRTIO_RING_F_EVENT_IDX)) != 0;
	/* The ring sizes depend on EVENT_IDX: translate again. */
	ring_changed(dev);
	/*
	 * vhost-user.rst "Ring states": without VHOST_USER_F_PROTOCOL_FEATURES
	 * rings start enabled; with it, SET_VRING_ENABLE enables them.
	 */
	if (!(dev->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)))
		dev->enabled = true;
	log_info("features 0x%llx (EVENT_IDX %s)",
	    (unsigned long long)dev->features, dev->vq.event_idx ? "on" :
	    "off");
	return H_OK;
}

static enum handler_result
get_protocol_features(struct vu_dev *dev, struct vu_msg *msg)
{
	(void)dev;
	return reply_u64(msg, VU_OFFERED_PROTOCOL_FEATURES);
}

static enum handler_result
set_protocol_features(struct vu_dev *dev, struct vu_msg *msg)
{
	uint64_t f = msg->payload.u64;

	if (f & ~VU_OFFERED_PROTOCOL_FEATURES)
		log_info("SET_PROTOCOL_FEATURES: ignoring bits 0x%llx we did "
		    "not offer", (unsigned long long)(f &
		    ~VU_OFFERED_PROTOCOL_FEATURES));
	dev->protocol_features = f & VU_OFFERED_PROTOCOL_FEATURES;
	return H_OK;
}

static enum handler_result
set_owner(struct vu_dev *dev, struct vu_msg *msg)
{
	(void)msg;
	dev->owner = true;
	return H_OK;
}

/* Deprecated; vhost-user.rst recommends treating it as "disable rings". */
static enum handler_result
reset_owner(struct vu_dev *dev, struct vu_msg *msg)
{
	(void)msg;
	ring_stop(dev);
	dev->enabled = false;
	return H_OK;
}

/* "disable all rings and reset all internal device state". */
static enum handler_result
reset_device(struct vu_dev *dev, struct vu_msg *msg)
{
	(void)msg;
	ring_stop(dev);
	close_fd(&dev->call_fd);
	close_fd(&dev->err_fd);
	dev->enabled = false;
	dev->features = 0;
	virtq_reset(&dev->vq);
	return H_OK;
}

static enum handler_result
set_mem_table(struct vu_dev *dev, struct vu_msg *msg)
{
	const struct vu_mem_table *t = &msg->payload.mem;
	int ret;

	if (t->nregions > VU_MEM_TABLE_MAX ||
	    msg->hdr.size != 8 + t->nregions * sizeof(t->regions[0])) {
		log_guest_err("SET_MEM_TABLE: %u regions in a %u-byte payload",
		    t->nregions, msg->hdr.size);
		return H_FAIL;	/* the dispatcher closes the fds */
	}
	ret = memtable_set(&dev->mt, t->regions, t->nregions, msg->fds,
	    msg->nfds);
	/* memtable_set closed them, whatever the outcome. */
	memset(msg->fds, -1, sizeof(msg->fds));
	msg->nfds = 0;
	if (ret < 0)
		return H_FAIL;
	dev->has_mem_table = true;
	log_info("memory table: %u region(s)", dev->mt.nregions);
	return H_OK;
}

static enum handler_result
get_max_mem_slots(struct vu_dev *dev, struct vu_msg *msg)
{
	(void)dev;
	return reply_u64(msg, MEMTABLE_MAX_SLOTS);
}

static enum handler_result
add_mem_reg(struct vu_dev *dev, struct vu_msg *msg)
{
	int fd = msg->fds[0];

	msg->fds[0] = -1;	/* memtable_add owns it now */
	if (memtable_add(&dev->mt, &msg->payload.single.region, fd) < 0)
		return H_FAIL;
	dev->has_mem_table = true;
	log_info("memory region added: %u region(s)", dev->mt.nregions);
	return H_OK;
}

static enum handler_result
rem_mem_reg(struct vu_dev *dev, struct vu_msg *msg)
{
	/*
	 * vhost-user.rst: "If a file descriptor is passed, the back-end MUST
	 * close it without using it otherwise" (the dispatcher does).
	 */
	if (memtable_remove(&dev->mt, &msg->payload.single.region) < 0)
		return H_FAIL;
	return H_OK;
}

static enum handler_result
set_vring_num(struct vu_dev *dev, struct vu_msg *msg)
{
	if (dev->started) {
		log_guest_err("SET_VRING_NUM while the ring runs");
		return H_FAIL;
	}
	if (virtq_set_num(&dev->vq, msg->payload.state.num) < 0)
		return H_FAIL;
	ring_changed(dev);
	return H_OK;
}

static enum handler_result
set_vring_addr(struct vu_dev *dev, struct vu_msg *msg)
{
	const struct vu_vring_addr *a = &msg->payload.addr;

	/*
	 * vhost-user.rst: the ring addresses are front-end virtual addresses
	 * in the memory the table shared.  Once a table exists, rings outside
	 * it can never run: refuse them now, where the front-end hears of it
	 * (before any table, as after a front-end reconnect, they are checked
	 * when the ring starts).
	 */
	if (dev->has_mem_table && !virtq_addr_in_memory(&dev->vq, &dev->mt,
	    a->desc_user_addr, a->avail_user_addr, a->used_user_addr)) {
		log_guest_err("SET_VRING_ADDR: rings (desc 0x%llx, avail "
		    "0x%llx, used 0x%llx, size %u) are not inside guest "
		    "memory (%u region(s))",
		    (unsigned long long)a->desc_user_addr,
		    (unsigned long long)a->avail_user_addr,
		    (unsigned long long)a->used_user_addr, dev->vq.num,
		    dev->mt.nregions);
		return H_FAIL;
	}
	if (virtq_set_addr(&dev->vq, a->desc_user_addr, a->avail_user_addr,
	    a->used_user_addr) < 0)
		return H_FAIL;
	ring_changed(dev);
	return H_OK;
}

static enum handler_result
set_vring_base(struct vu_dev *dev, struct vu_msg *msg)
{
	uint32_t base = msg->payload.state.num;

	if (dev->started) {
		log_guest_err("SET_VRING_BASE while the ring runs");
		return H_FAIL;
	}
	if (base > UINT16_MAX) {
		log_guest_err("SET_VRING_BASE: %u is not a split-ring index",
		    base);
		return H_FAIL;
	}
	virtq_set_base(&dev->vq, (uint16_t)base);
	return H_OK;
}

/* Stops the ring (vhost-user.rst "Ring states") and reports where it is. */
static enum handler_result
get_vring_base(struct vu_dev *dev, struct vu_msg *msg)
{
	ring_stop(dev);
	msg->payload.state.num = dev->vq.last_avail_idx;
	msg->hdr.size = sizeof(msg->payload.state);
	log_info("ring stopped at avail index %u", dev->vq.last_avail_idx);
	return H_REPLIED;
}

/* The kick, call and err fds must be eventfds (vhost-user.rst). */
static bool
is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventfd]") == 0;
}

/*
 * Takes the fd of SET_VRING_KICK/CALL/ERR into *slot, or -1 for no-fd.
 * Anything but an eventfd is refused: a file or a pipe would poll
 * readable forever and spin this thread.
 */
static int
take_vring_fd(struct vu_msg *msg, int *slot, uint32_t *gen)
{
	int fl;

	if (msg->nfds == 1 && !is_eventfd(msg->fds[0])) {
		log_guest_err("%s: the fd is not an eventfd",
		    vu_request_name(msg->hdr.request));
		return -1;
	}
	close_fd(slot);
	(*gen)++;
	if (msg->nfds == 1) {
		*slot = msg->fds[0];
		msg->fds[0] = -1;
		/*
		 * The spec does not promise non-blocking eventfds; a front-end
		 * could hand us one whose counter is full (write blocks) or
		 * that it drains itself (read blocks).  Either would stall
		 * this thread, and SIGTERM with it.
		 */
		if ((fl = fcntl(*slot, F_GETFL)) < 0 ||
		    fcntl(*slot, F_SETFL, fl | O_NONBLOCK) < 0)
			log_warn("making an eventfd non-blocking");
	}
	return 0;
}

/*
 * Reads a new kick eventfd empty: a kick from before the ring started means
 * nothing (we look at the ring anyway).  RWF_NOWAIT makes the read
 * non-blocking whatever O_NONBLOCK says (eventfd honours it since Linux
 * 5.12; before, EOPNOTSUPP and the guarded read).  One in semaphore mode
 * loaded with a count reads 1 at a time and never drains: it is refused.
 * Returns true if the eventfd is empty now.
 */
static bool
kick_drains(int fd)
{
	uint64_t v;
	struct iovec iov = { .iov_base = &v, .iov_len = sizeof(v) };
	ssize_t n;
	int i;

	for (i = 0; i < 16; i++) {
		n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
		if (n < 0 && errno == EOPNOTSUPP)
			n = ioguard_read(fd, &v, sizeof(v));
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
	}
	return false;
}

static enum handler_result
set_vring_kick(struct vu_dev *dev, struct vu_msg *msg)
{
	int fd = -1;

	if (take_vring_fd(msg, &fd, &dev->kick_gen) < 0)
		return H_FAIL;
	dev->kick_polling = fd < 0;
	if (fd >= 0 && !kick_drains(fd)) {
		/* A fresh start, latched broken at once. */
		close_fd(&fd);
		kick_replace(dev, -1);
		dev->started = true;
		dev->kick_polling = false;
		dev->vq.broken = false;
		dev->vq.mapped = false;
		virtq_break(&dev->vq, "kick eventfd does not drain (semaphore "
		    "mode?): kicks ignored");
		return H_OK;
	}
	kick_replace(dev, fd);
	/*
	 * The ring starts with its first kick; we treat the kick fd as that
	 * point and look at the ring at once, so buffers the driver queued
	 * before we got here are not left waiting.  A fresh start also clears
	 * a broken latch: the front-end restarted the ring.
	 */
	dev->started = true;
	dev->vq.broken = false;
	dev->map_failed = false;
	ring_changed(dev);
	if (dev->kick_polling)
		log_info("no kick fd: polling the ring");
	return H_OK;
}

static enum handler_result
set_vring_call(struct vu_dev *dev, struct vu_msg *msg)
{
	return take_vring_fd(msg, &dev->call_fd, &dev->call_gen) < 0 ?
	    H_FAIL : H_OK;
}

static enum handler_result
set_vring_err(struct vu_dev *dev, struct vu_msg *msg)
{
	return take_vring_fd(msg, &dev->err_fd, &dev->err_gen) < 0 ?
	    H_FAIL : H_OK;
}

static enum handler_result
get_queue_num(struct vu_dev *dev, struct vu_msg *msg)
{
	(void)dev;
	return reply_u64(msg, VU_NUM_QUEUES);
}

static enum handler_result
set_vring_enable(struct vu_dev *dev, struct vu_msg *msg)
{
	uint32_t on = msg->payload.state.num;

	if (on > 1) {
		log_guest_err("SET_VRING_ENABLE: %u is neither 0 nor 1", on);
		return H_FAIL;
	}
	dev->enabled = on == 1;
	log_info("ring %s", dev->enabled ? "enabled" : "disabled");
	return H_OK;
}

static const struct request_rule rules[VU_REQUEST_MAX] = {
	[VU_GET_FEATURES] = { .handler = get_features, .size = SZ_NONE,
	    .fds = FD_NONE, .replies = true },
	[VU_SET_FEATURES] = { .handler = set_features, .size = SZ_U64,
	    .fds = FD_NONE },
	[VU_SET_OWNER] = { .handler = set_owner, .size = SZ_NONE,
	    .fds = FD_NONE },
	[VU_RESET_OWNER] = { .handler = reset_owner, .size = SZ_NONE,
	    .fds = FD_NONE },
	[VU_SET_MEM_TABLE] = { .handler = set_mem_table, .size = SZ_MEM_TABLE,
	    .fds = FD_TABLE },
	[VU_SET_VRING_NUM] = { .handler = set_vring_num, .size = SZ_STATE,
	    .fds = FD_NONE, .vring = true },
	[VU_SET_VRING_ADDR] = { .handler = set_vring_addr, .size = SZ_ADDR,
	    .fds = FD_NONE, .vring = true },
	[VU_SET_VRING_BASE] = { .handler = set_vring_base, .size = SZ_STATE,
	    .fds = FD_NONE, .vring = true },
	[VU_GET_VRING_BASE] = { .handler = get_vring_base, .size = SZ_STATE,
	    .fds = FD_NONE, .vring = true, .replies = true },
	[VU_SET_VRING_KICK] = { .handler = set_vring_kick, .size = SZ_U64,
	    .fds = FD_VRING, .vring = true },
	[VU_SET_VRING_CALL] = { .handler = set_vring_call, .size = SZ_U64,
	    .fds = FD_VRING, .vring = true },
	[VU_SET_VRING_ERR] = { .handler = set_vring_err, .size = SZ_U64,
	    .fds = FD_VRING, .vring = true },
	[VU_GET_PROTOCOL_FEATURES] = { .handler = get_protocol_features,
	    .size = SZ_NONE, .fds = FD_NONE, .replies = true },
	[VU_SET_PROTOCOL_FEATURES] = { .handler = set_protocol_features,
	    .size = SZ_U64, .fds = FD_NONE },
	[VU_GET_QUEUE_NUM] = { .handler = get_queue_num, .size = SZ_NONE,
	    .fds = FD_NONE, .replies = true },
	[VU_SET_VRING_ENABLE] = { .handler = set_vring_enable, .size = SZ_STATE,
	    .fds = FD_NONE, .vring = true },
	[VU_RESET_DEVICE] = { .handler = reset_device, .size = SZ_NONE,
	    .fds = FD_NONE },
	[VU_GET_MAX_MEM_SLOTS] = { .handler = get_max_mem_slots,
	    .size = SZ_NONE, .fds = FD_NONE, .replies = true },
	[VU_ADD_MEM_REG] = { .handler = add_mem_reg, .size = SZ_SINGLE,
	    .fds = FD_ONE },
	[VU_REM_MEM_REG] = { .handler = rem_mem_reg, .size = SZ_SINGLE,
	    .fds = FD_OPTIONAL },
};

static bool
size_ok(const struct request_rule *r, uint32_t size)
{
	switch (r->size) {
	case SZ_NONE:
		return size == 0;
	case SZ_U64:
		return size == sizeof(uint64_t);
	case SZ_STATE:
		return size == sizeof(struct vu_vring_state);
	case SZ_ADDR:
		return size == sizeof(struct vu_vring_addr);
	case SZ_MEM_TABLE:
		return size >= 8 && size <= sizeof(struct vu_mem_table);
	case SZ_SINGLE:
		return size == sizeof(struct vu_mem_single);
	}
	return false;
}

static bool
fds_ok(const struct request_rule *r, const struct vu_msg *msg)
{
	switch (r->fds) {
	case FD_NONE:
		return msg->nfds == 0;
	case FD_TABLE:
		return msg->nfds <= VU_MEM_TABLE_MAX;
	case FD_ONE:
		return msg->nfds == 1;
	case FD_OPTIONAL:
		return msg->nfds <= 1;
	case FD_VRING:
		if (msg->payload.u64 & VU_VRING_NOFD)
			return msg->nfds == 0;
		return msg->nfds == 1;
	}
	return false;
}

static uint32_t
vring_index(const struct request_rule *r, const struct vu_msg *msg)
{
	if (r->size == SZ_U64)
		return (uint32_t)(msg->payload.u64 & VU_VRING_IDX_MASK);
	if (r->size == SZ_ADDR)
		return msg->payload.addr.index;
	return msg->payload.state.index;
}

/* Whether the front-end expects a u64 status for this message. */
static bool
wants_ack(const struct vu_dev *dev, const struct vu_msg *msg)
{
	return (msg->hdr.flags & VU_FLAG_NEED_REPLY) &&
	    (dev->protocol_features & (1ull << VU_PROTOCOL_F_REPLY_ACK));
}

int
vu_dev_handle(struct vu_dev *dev, struct vu_msg *msg)
{
	const struct request_rule *r = NULL;
	uint32_t req = msg->hdr.request;
	bool ack = wants_ack(dev, msg);
	enum handler_result res;

	DPRINTF("%s (%u) size %u fds %u flags 0x%x", vu_request_name(req),
	    req, msg->hdr.size, msg->nfds, msg->hdr.flags);

	if (req < VU_REQUEST_MAX && rules[req].handler != NULL)
		r = &rules[req];
	if (r == NULL) {
		log_guest_err("unsupported request %s (%u)",
		    vu_request_name(req), req);
		res = H_FAIL;
	} else if (!size_ok(r, msg->hdr.size)) {
		log_guest_err("%s: payload of %u bytes is malformed",
		    vu_request_name(req), msg->hdr.size);
		res = H_FAIL;
		ack = false;	/* a framing error: hang up */
	} else if (!fds_ok(r, msg)) {
		log_guest_err("%s: %u file descriptors is wrong here",
		    vu_request_name(req), msg->nfds);
		res = H_FAIL;
		ack = false;
	} else if (r->vring && vring_index(r, msg) >= VU_NUM_QUEUES) {
		log_guest_err("%s: ring %u does not exist (the device has %u)",
		    vu_request_name(req), vring_index(r, msg),
		    VU_NUM_QUEUES);
		res = H_FAIL;
	} else
		res = r->handler(dev, msg);
	vu_msg_close_fds(msg);
	/* REPLY_ACK changes nothing for requests with a reply of their own. */
	if (r != NULL && r->replies)
		ack = false;

	if (res == H_REPLIED)
		return vu_msg_send_reply(dev->sock, msg);
	if (res == H_FAIL)
		dev->bad_messages++;
	if (ack) {
		msg->hdr.size = sizeof(msg->payload.u64);
		msg->payload.u64 = res == H_OK ? 0 : 1;
		return vu_msg_send_reply(dev->sock, msg);
	}
	/* A failure the front-end would not hear of: hang up instead. */
	return res == H_OK ? 0 : -1;
}

/* ---- handover (handover.h) ----------------------------------------- */

enum fd_role { ROLE_SOCK, ROLE_KICK, ROLE_CALL, ROLE_ERR };

/*
 * The name of a role's fd: the same whatever fd the front-end sends, so
 * that a new one replaces the old under one name.  (Were the generation
 * in the name, an fd sent again, as QEMU sends its call eventfd twice,
 * would be a "new" name for a file the fd store holds already: systemd
 * drops such a duplicate, and removing the old name would then lose it.)
 */
static void
role_name(const struct vu_dev *dev, enum fd_role role, int fd, char *out)
{
	static const char *const roles[] = { "sock", "kick", "call", "err" };

	out[0] = '\0';
	if (fd >= 0)
		snprintf(out, HANDOVER_NAME_MAX, "%s%s", dev->fd_prefix,
		    roles[role]);
}

/* Which SET_VRING_* fd of its role this is: a new one moves it on. */
static uint32_t
role_gen(const struct vu_dev *dev, enum fd_role role)
{
	const uint32_t gens[] = { 0, dev->kick_gen, dev->call_gen,
	    dev->err_gen };

	return gens[role];
}

/* Regions of one file share a name: systemd stores a file once. */
static void
region_name(const struct vu_dev *dev, int fd, char *out)
{
	struct stat st;

	out[0] = '\0';
	if (fstat(fd, &st) == 0)
		snprintf(out, HANDOVER_NAME_MAX, "%sm%llx-%llx",
		    dev->fd_prefix, (unsigned long long)st.st_dev,
		    (unsigned long long)st.st_ino);
}

int
vu_dev_each_fd(const struct vu_dev *dev,
    int (*fn)(const char *name, int fd, uint32_t gen, void *arg), void *arg)
{
	const int fds[] = { dev->sock, dev->kick_fd, dev->call_fd,
	    dev->err_fd };
	char name[HANDOVER_NAME_MAX];
	unsigned i;
	int r;

	for (i = 0; i < 4; i++) {
		if (fds[i] < 0)
			continue;
		role_name(dev, (enum fd_role)i, fds[i], name);
		if ((r = fn(name, fds[i], role_gen(dev, (enum fd_role)i),
		    arg)) != 0)
			return r;
	}
	for (i = 0; i < dev->mt.nregions; i++) {
		region_name(dev, dev->mt.regions[i].fd, name);
		if ((r = fn(name, dev->mt.regions[i].fd, 0, arg)) != 0)
			return r;
	}
	return 0;
}

void
vu_dev_save(const struct vu_dev *dev, struct handover_buf *b)
{
	const struct virtq *vq = &dev->vq;
	char name[HANDOVER_NAME_MAX];
	unsigned i;

	handover_put_name(b, dev->fd_prefix);
	handover_put_u64(b, dev->features);
	handover_put_u64(b, dev->protocol_features);
	handover_put_u8(b, dev->owner);
	handover_put_u8(b, dev->started);
	handover_put_u8(b, dev->enabled);
	handover_put_u8(b, dev->kick_polling);
	handover_put_u8(b, dev->has_mem_table);
	handover_put_u8(b, dev->map_failed);
	handover_put_u32(b, dev->kick_gen);
	handover_put_u32(b, dev->call_gen);
	handover_put_u32(b, dev->err_gen);
	role_name(dev, ROLE_KICK, dev->kick_fd, name);
	handover_put_name(b, name);
	role_name(dev, ROLE_CALL, dev->call_fd, name);
	handover_put_name(b, name);
	role_name(dev, ROLE_ERR, dev->err_fd, name);
	handover_put_name(b, name);

	handover_put_u32(b, dev->mt.nregions);
	for (i = 0; i < dev->mt.nregions; i++) {
		const struct mem_region *r = &dev->mt.regions[i];

		handover_put_u64(b, r->gpa);
		handover_put_u64(b, r->size);
		handover_put_u64(b, r->uva);
		handover_put_u64(b, r->mmap_offset);
		region_name(dev, r->fd, name);
		handover_put_name(b, name);
	}

	handover_put_u32(b, vq->num);
	handover_put_u8(b, vq->addr_set);
	handover_put_u64(b, vq->desc_uva);
	handover_put_u64(b, vq->avail_uva);
	handover_put_u64(b, vq->used_uva);
	handover_put_u16(b, vq->last_avail_idx);
	handover_put_u16(b, vq->used_idx);
	handover_put_u8(b, vq->broken);
	handover_put_u32(b, vq->breaks);
}

/*
 * A duplicate of the fd called name, checked to be an eventfd; -1 with
 * err filled if it is missing or something else.
 */
static int
restore_eventfd(struct handover_fds *fds, const char *name, int *out,
    char *err, size_t errlen)
{
	int fd;

	*out = -1;
	if (name[0] == '\0')
		return 0;
	if ((fd = handover_fds_dup(fds, name)) < 0 || !is_eventfd(fd)) {
		snprintf(err, errlen, "descriptor %s is %s", name, fd < 0 ?
		    "missing" : "not an eventfd");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*out = fd;
	return 0;
}

static int
restore_regions(struct vu_dev *dev, struct handover_cursor *cur,
    struct handover_fds *fds, char *err, size_t errlen)
{
	char name[HANDOVER_NAME_MAX];
	struct vu_mem_region r;
	uint32_t i, n;
	int fd;

	n = handover_get_count(cur, MEMTABLE_MAX_SLOTS);
	for (i = 0; i < n && !cur->failed; i++) {
		memset(&r, 0, sizeof(r));
		r.guest_phys_addr = handover_get_u64(cur);
		r.memory_size = handover_get_u64(cur);
		r.userspace_addr = handover_get_u64(cur);
		r.mmap_offset = handover_get_u64(cur);
		handover_get_name(cur, name);
		if (cur->failed)
			break;
		if ((fd = handover_fds_dup(fds, name)) < 0) {
			snprintf(err, errlen, "memory region descriptor %s is "
			    "missing", name);
			return -1;
		}
		/* Checked and mapped as ADD_MEM_REG would (closes fd). */
		if (memtable_add(&dev->mt, &r, fd) < 0) {
			snprintf(err, errlen, "memory region 0x%llx+0x%llx "
			    "does not map again",
			    (unsigned long long)r.guest_phys_addr,
			    (unsigned long long)r.memory_size);
			return -1;
		}
	}
	return cur->failed ? -1 : 0;
}

int
vu_dev_restore(struct vu_dev *dev, struct handover_cursor *cur,
    struct handover_fds *fds, char *err, size_t errlen)
{
	char kick[HANDOVER_NAME_MAX], call[HANDOVER_NAME_MAX],
	    errn[HANDOVER_NAME_MAX];
	struct virtq *vq = &dev->vq;
	uint64_t desc, avail, used;
	bool started, broken;
	char name[HANDOVER_NAME_MAX];
	struct stat st;
	uint32_t num;
	int fd;

	snprintf(err, errlen, "state blob is malformed");
	/* A name may be longer than the prefix it becomes: read it apart. */
	handover_get_name(cur, name);
	if (strlen(name) >= sizeof(dev->fd_prefix))
		handover_fail(cur, "a connection's descriptor prefix is too "
		    "long");
	if (cur->failed)
		return -1;
	strlcpy(dev->fd_prefix, name, sizeof(dev->fd_prefix));
	role_name(dev, ROLE_SOCK, 0, name);
	if ((dev->sock = handover_fds_dup(fds, name)) < 0 ||
	    fstat(dev->sock, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "descriptor %s is %s", name,
		    dev->sock < 0 ? "missing" : "not a socket");
		return -1;
	}
	dev->features = handover_get_u64(cur);
	dev->protocol_features = handover_get_u64(cur);
	if ((dev->features & ~VU_OFFERED_FEATURES) ||
	    (dev->protocol_features & ~VU_OFFERED_PROTOCOL_FEATURES))
		handover_fail(cur, "it has features this binary does not "
		    "offer");
	dev->vq.event_idx = (dev->features &
	    (1ull << VIRTIO_RING_F_EVENT_IDX)) != 0;
	dev->owner = handover_get_bool(cur);
	started = handover_get_bool(cur);
	dev->enabled = handover_get_bool(cur);
	dev->kick_polling = handover_get_bool(cur);
	dev->has_mem_table = handover_get_bool(cur);
	dev->map_failed = handover_get_bool(cur);
	dev->kick_gen = handover_get_u32(cur);
	dev->call_gen = handover_get_u32(cur);
	dev->err_gen = handover_get_u32(cur);
	handover_get_name(cur, kick);
	handover_get_name(cur, call);
	handover_get_name(cur, errn);
	if (cur->failed)
		return -1;
	if (restore_eventfd(fds, call, &dev->call_fd, err, errlen) < 0 ||
	    restore_eventfd(fds, errn, &dev->err_fd, err, errlen) < 0 ||
	    restore_eventfd(fds, kick, &fd, err, errlen) < 0)
		return -1;
	if (restore_regions(dev, cur, fds, err, errlen) < 0) {
		close_fd(&fd);
		return -1;
	}
	num = handover_get_u32(cur);
	vq->addr_set = handover_get_bool(cur);
	desc = handover_get_u64(cur);
	avail = handover_get_u64(cur);
	used = handover_get_u64(cur);
	vq->last_avail_idx = handover_get_u16(cur);
	vq->used_idx = handover_get_u16(cur);
	broken = handover_get_bool(cur);
	vq->breaks = handover_get_u32(cur);
	if (cur->failed) {
		close_fd(&fd);
		return -1;
	}
	/*
	 * The checks of SET_VRING_NUM and SET_VRING_ADDR, the latter's
	 * against the memory only once a table came (set_vring_addr): a
	 * front-end that reconnects may set a ring up before any table.
	 */
	if (num != 0 && virtq_set_num(vq, num) < 0) {
		snprintf(err, errlen, "ring size %u is not a power of two in "
		    "1..%u", num, VIRTQ_MAX_SIZE);
		close_fd(&fd);
		return -1;
	}
	/*
	 * A ring that fitted when it was set may have stopped fitting since
	 * (a region removed, a larger size): the message path keeps such a
	 * ring and reports it when it starts (map_failed).  So may restore;
	 * every access still goes through the table (virtq_map).
	 */
	if (vq->addr_set && ((dev->has_mem_table && !dev->map_failed &&
	    !virtq_addr_in_memory(vq, &dev->mt, desc, avail, used)) ||
	    virtq_set_addr(vq, desc, avail, used) < 0)) {
		snprintf(err, errlen, "ring (size %u, desc 0x%llx, avail "
		    "0x%llx, used 0x%llx) is misaligned or does not fit guest "
		    "memory", num, (unsigned long long)desc,
		    (unsigned long long)avail, (unsigned long long)used);
		close_fd(&fd);
		return -1;
	}
	kick_replace(dev, fd);
	dev->started = started;
	dev->resume_from_used = true;
	if (broken) {
		uint32_t breaks = vq->breaks;

		virtq_break(vq, "broken before the handover");
		vq->breaks = breaks;	/* latched once, counted before */
	}
	return 0;
}
