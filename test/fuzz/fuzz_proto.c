/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: a hostile vhost-user front-end against a real guest
 * thread.
 *
 * Each input is a small program run by a fake front-end on one end of a
 * socketpair; the other end is served by guest_start(), exactly as the
 * daemon serves an accepted connection.  The program sends messages (raw
 * or shaped like SET_MEM_TABLE, ADD_MEM_REG, SET_VRING_ADDR, ...) with
 * any number and kind of descriptors (eventfds, semaphore eventfds,
 * memfds holding guest RAM, pipes, /dev/null, sockets), writes ring
 * memory, kicks, shrinks the memory files under the mappings, and waits
 * for replies.  Then it hangs up.
 *
 * Oracles, beyond the sanitizers: the thread ends within HANG_MS of the
 * hang-up; afterwards the process has exactly the fds and the guest-RAM
 * mappings it had before the input.  A failure prints why and aborts.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "entropy.h"
#include "fuzz_input.h"
#include "guest.h"
#include "ioguard.h"
#include "log.h"
#include "virtq.h"
#include "vu_proto.h"

#define FUZZ_NAME	"fuzz_proto"
#include "fuzz_oracle.h"

/* How long the thread may take to end after the hang-up. */
#define HANG_MS		5000
/* How long OP_SYNC waits for a reply. */
#define SYNC_MS		100
#define NRAM		4
#define NEFD		4
#define PAGE		4096
/* Front-end virtual address of guest RAM k: a made-up, fixed layout. */
#define RAM_UVA(k)	(0x7f0000000000ull + (uint64_t)(k) * 0x1000000ull)
#define RAM_NAME	"fuzz-ram"

enum op {
	OP_MSG_RAW,
	OP_MSG_MEMTABLE,
	OP_MSG_ADD_REG,
	OP_MSG_VRING_ADDR,
	OP_MSG_VRING_FD,
	OP_MSG_STATE,
	OP_WRITE,
	OP_RING,
	OP_KICK,
	OP_SHRINK,
	OP_SYNC,
	OP_COUNT
};

enum fd_kind {
	FD_EVENT,
	FD_EVENT_SEM,
	FD_RAM,
	FD_PIPE_R,
	FD_PIPE_W,
	FD_DEVNULL,
	FD_SOCKET,
	FD_EMPTY_MEMFD,
	FD_KIND_COUNT
};

struct ram {
	int		 fd;
	uint64_t	 size;		/* as created */
	uint64_t	 cur;		/* after shrinking */
};

struct run {
	int		 sock;
	struct ram	 ram[NRAM];
	int		 efd[NEFD];	/* eventfds sent, for kicks */
	unsigned	 next_efd;
	/* Replies not yet parsed; GET_FEATURES asked and answered. */
	char		 rbuf[4096];
	size_t		 rlen;
	unsigned	 features_asked, features_replies;
};

static struct entropy source;
static struct guest_shared shared;
static struct guest_slot slot;

static void
init_once(void)
{
	static bool done;
	char err[512];

	if (done)
		return;
	done = true;
	/* As main() does before any guest thread; after libFuzzer's own. */
	signal(SIGPIPE, SIG_IGN);
	if (guest_install_fault_handler() < 0 || ioguard_install() < 0)
		fail("signal handlers: %s", strerror(errno));
	log_init(0);
	if (entropy_open(&source, "/dev/urandom", err, sizeof(err)) < 0)
		fail("%s", err);
	shared.source = &source;
	shared.wake_main_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	slot.index = 0;
	slot.shared = &shared;
	slot.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	slot.park_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (shared.wake_main_fd < 0 || slot.stop_fd < 0 || slot.park_fd < 0)
		fail("eventfd: %s", strerror(errno));
}

static struct ram *
ram_get(struct run *r, unsigned k)
{
	struct ram *m = &r->ram[k % NRAM];

	if (m->fd < 0) {
		m->fd = memfd_create(RAM_NAME, MFD_CLOEXEC);
		if (m->fd < 0)
			fail("memfd_create: %s", strerror(errno));
		m->size = (uint64_t)(1 + k / NRAM % 8) * PAGE;
		if (ftruncate(m->fd, (off_t)m->size) < 0)
			fail("ftruncate: %s", strerror(errno));
		m->cur = m->size;
	}
	return m;
}

/*
 * Reads what the thread sent back, without waiting, and counts the
 * replies to GET_FEATURES.  Returns false once the thread hung up.
 */
static bool
drain_replies(struct run *r)
{
	struct vu_header hdr;
	ssize_t n;
	size_t used;

	for (;;) {
		n = recv(r->sock, r->rbuf + r->rlen, sizeof(r->rbuf) - r->rlen,
		    MSG_DONTWAIT);
		if (n == 0)
			return false;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		r->rlen += (size_t)n;
		/* Whole replies out of the buffer; the payload is dropped. */
		used = 0;
		while (r->rlen - used >= sizeof(hdr)) {
			memcpy(&hdr, r->rbuf + used, sizeof(hdr));
			if (hdr.size > sizeof(r->rbuf) - sizeof(hdr))
				fail("reply with a %u-byte payload", hdr.size);
			if (r->rlen - used < sizeof(hdr) + hdr.size)
				break;
			if (hdr.request == VU_GET_FEATURES)
				r->features_replies++;
			used += sizeof(hdr) + hdr.size;
		}
		memmove(r->rbuf, r->rbuf + used, r->rlen - used);
		r->rlen -= used;
	}
}

/* A descriptor of the given kind; *keep says whether run owns it. */
static int
make_fd(struct run *r, struct input *in, bool *keep)
{
	int fd = -1, p[2];
	unsigned k;

	*keep = false;
	switch (take8(in) % FD_KIND_COUNT) {
	case FD_EVENT:
	case FD_EVENT_SEM:
		fd = eventfd(0, EFD_CLOEXEC | (in->p[-1] % FD_KIND_COUNT ==
		    FD_EVENT_SEM ? EFD_SEMAPHORE : 0));
		if (fd >= 0) {
			k = r->next_efd++ % NEFD;
			if (r->efd[k] >= 0)
				close(r->efd[k]);
			r->efd[k] = fd;
			*keep = true;
		}
		break;
	case FD_RAM:
		fd = ram_get(r, take8(in))->fd;
		*keep = true;
		break;
	case FD_PIPE_R:
	case FD_PIPE_W:
		if (pipe2(p, O_CLOEXEC) < 0)
			break;
		if (in->p[-1] % FD_KIND_COUNT == FD_PIPE_R) {
			fd = p[0];
			close(p[1]);
		} else {
			fd = p[1];
			close(p[0]);
		}
		break;
	case FD_DEVNULL:
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		break;
	case FD_SOCKET:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
		    p) == 0) {
			fd = p[0];
			close(p[1]);
		}
		break;
	case FD_EMPTY_MEMFD:
		fd = memfd_create(RAM_NAME, MFD_CLOEXEC);
		break;
	}
	if (fd < 0)
		fail("making a descriptor: %s", strerror(errno));
	return fd;
}

/*
 * Sends header + payload (size bytes, of which only len are available)
 * with the fds.  A short payload is a truncated message: what follows in
 * the stream is taken as its rest.
 */
static void
send_msg(struct run *r, uint32_t req, uint32_t flags, uint32_t size,
    const void *payload, size_t len, const int *fds, unsigned nfds)
{
	char buf[sizeof(struct vu_header) + 512];
	char cbuf[CMSG_SPACE(sizeof(int) * 16)];
	struct vu_header hdr = { req, flags, size };
	struct msghdr mh;
	struct iovec iov;
	struct cmsghdr *c;
	size_t n;

	if (len > sizeof(buf) - sizeof(hdr))
		len = sizeof(buf) - sizeof(hdr);
	memcpy(buf, &hdr, sizeof(hdr));
	if (len > 0)
		memcpy(buf + sizeof(hdr), payload, len);
	n = sizeof(hdr) + len;
	iov.iov_base = buf;
	iov.iov_len = n;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds > 0) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	(void)drain_replies(r);
	/* Never block: a thread that stopped reading must not hang us. */
	if (sendmsg(r->sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) ==
	    (ssize_t)n && req == VU_GET_FEATURES && size == 0 &&
	    (flags & ~VU_FLAG_NEED_REPLY) == VU_VERSION)
		r->features_asked++;
}

/* The header flags: mostly well-formed, sometimes anything. */
static uint32_t
msg_flags(struct input *in)
{
	uint8_t f = take8(in);

	if (f & 0x80)
		return f & 0x7f;
	return VU_VERSION | (f & 1 ? VU_FLAG_NEED_REPLY : 0);
}

static void
op_msg_raw(struct run *r, struct input *in)
{
	uint8_t payload[512];
	int fds[16];
	bool keep[16];
	uint32_t req, flags, size;
	unsigned nfds, i;
	size_t len;

	req = take8(in) % (VU_REQUEST_MAX + 8);
	flags = msg_flags(in);
	size = take8(in);
	if (size & 0x80)
		size = take16(in);
	else if (size > 0x60)
		size = 8;
	len = size < sizeof(payload) ? size : sizeof(payload);
	take_bytes(in, payload, len);
	nfds = take8(in) % 11;	/* up to VU_MAX_FDS + 2 */
	for (i = 0; i < nfds; i++)
		fds[i] = make_fd(r, in, &keep[i]);
	send_msg(r, req, flags, size, payload, len, fds, nfds);
	for (i = 0; i < nfds; i++)
		if (!keep[i])
			close(fds[i]);
}

/* A region of guest RAM k: mostly right, sometimes bent by the input. */
static void
make_region(struct run *r, struct input *in, struct vu_mem_region *reg,
    int *fd)
{
	uint8_t k = take8(in), how = take8(in);
	struct ram *m = ram_get(r, k);

	reg->guest_phys_addr = (uint64_t)(k % NRAM) * 0x100000;
	reg->memory_size = m->size;
	reg->userspace_addr = RAM_UVA(k % NRAM);
	reg->mmap_offset = 0;
	if (how & 1)
		reg->guest_phys_addr = take64(in);
	if (how & 2)
		reg->memory_size = take64(in);
	if (how & 4)
		reg->userspace_addr = take64(in);
	if (how & 8)
		reg->mmap_offset = take64(in);
	if (how & 16)
		reg->memory_size = m->size - (take16(in) % m->size);
	*fd = m->fd;
}

static void
op_msg_memtable(struct run *r, struct input *in)
{
	struct vu_mem_table mt;
	int fds[VU_MEM_TABLE_MAX + 1];
	uint32_t flags = msg_flags(in);
	unsigned n = take8(in) % (VU_MEM_TABLE_MAX + 1), nfds, i;

	memset(&mt, 0, sizeof(mt));
	mt.nregions = n;
	for (i = 0; i < n; i++)
		make_region(r, in, &mt.regions[i], &fds[i]);
	nfds = n;
	/* Sometimes one fd too few or too many. */
	switch (take8(in) % 8) {
	case 0:
		if (nfds > 0)
			nfds--;
		break;
	case 1:
		fds[nfds++] = ram_get(r, 0)->fd;
		break;
	}
	send_msg(r, VU_SET_MEM_TABLE, flags, 8 + n * 32, &mt, 8 + n * 32,
	    fds, nfds);
}

static void
op_msg_add_reg(struct run *r, struct input *in)
{
	struct vu_mem_single s;
	uint32_t flags = msg_flags(in);
	uint32_t req = take8(in) & 1 ? VU_REM_MEM_REG : VU_ADD_MEM_REG;
	int fd;

	memset(&s, 0, sizeof(s));
	make_region(r, in, &s.region, &fd);
	send_msg(r, req, flags, sizeof(s), &s, sizeof(s), &fd,
	    req == VU_ADD_MEM_REG || take8(in) & 1 ? 1 : 0);
}

static void
op_msg_vring_addr(struct run *r, struct input *in)
{
	struct vu_vring_addr a;
	uint32_t flags = msg_flags(in);
	uint8_t k = take8(in) % NRAM;

	memset(&a, 0, sizeof(a));
	a.index = take8(in) & 0x80 ? take32(in) : 0;
	a.flags = take8(in) & 0x80 ? VU_VRING_F_LOG : 0;
	a.desc_user_addr = RAM_UVA(k) + take16(in);
	a.avail_user_addr = RAM_UVA(k) + take16(in);
	a.used_user_addr = RAM_UVA(k) + take16(in);
	send_msg(r, VU_SET_VRING_ADDR, flags, sizeof(a), &a, sizeof(a), NULL,
	    0);
}

static void
op_msg_vring_fd(struct run *r, struct input *in)
{
	static const uint32_t reqs[] = { VU_SET_VRING_KICK,
	    VU_SET_VRING_CALL, VU_SET_VRING_ERR, VU_SET_LOG_FD };
	uint32_t flags = msg_flags(in);
	uint32_t req = reqs[take8(in) % 4];
	uint64_t v = take8(in);
	unsigned nfds = 0;
	bool keep = true;
	int fd = -1;

	/* Low byte: the ring index; bit 8: no fd. */
	v = (v & 0x80 ? v & 0x7f : 0) | (v & 0x40 ? VU_VRING_NOFD : 0);
	if (!(v & VU_VRING_NOFD) || take8(in) & 1) {
		fd = make_fd(r, in, &keep);
		nfds = 1;
	}
	send_msg(r, req, flags, sizeof(v), &v, sizeof(v), &fd, nfds);
	if (!keep)
		close(fd);
}

/* Messages whose payload is a u64 or a vring state. */
static void
op_msg_state(struct run *r, struct input *in)
{
	static const uint32_t reqs[] = { VU_GET_FEATURES, VU_SET_FEATURES,
	    VU_SET_OWNER, VU_RESET_OWNER, VU_SET_VRING_NUM, VU_SET_VRING_BASE,
	    VU_GET_VRING_BASE, VU_GET_PROTOCOL_FEATURES,
	    VU_SET_PROTOCOL_FEATURES, VU_GET_QUEUE_NUM, VU_SET_VRING_ENABLE,
	    VU_RESET_DEVICE, VU_GET_MAX_MEM_SLOTS };
	uint32_t flags = msg_flags(in);
	uint32_t req = reqs[take8(in) % (sizeof(reqs) / sizeof(reqs[0]))];
	struct vu_vring_state st;
	uint64_t v;

	switch (req) {
	case VU_SET_VRING_NUM:
	case VU_SET_VRING_BASE:
	case VU_GET_VRING_BASE:
	case VU_SET_VRING_ENABLE:
		st.index = take8(in) & 0x80 ? take8(in) : 0;
		st.num = req == VU_SET_VRING_NUM ? 1u << take8(in) % 16 :
		    take8(in) & 0x80 ? take32(in) : take8(in) & 1;
		send_msg(r, req, flags, sizeof(st), &st, sizeof(st), NULL, 0);
		break;
	case VU_SET_FEATURES:
	case VU_SET_PROTOCOL_FEATURES:
		v = take8(in) & 0x80 ? take64(in) : req == VU_SET_FEATURES ?
		    0x170000000ull : 0xa009ull;
		send_msg(r, req, flags, sizeof(v), &v, sizeof(v), NULL, 0);
		break;
	default:
		send_msg(r, req, flags, 0, NULL, 0, NULL, 0);
		break;
	}
}

/* Guest RAM writes go through the file, never past its current size. */
static void
ram_write(struct ram *m, uint64_t off, const void *buf, size_t len)
{
	if (off >= m->cur)
		return;
	if (len > m->cur - off)
		len = (size_t)(m->cur - off);
	if (pwrite(m->fd, buf, len, (off_t)off) < 0)
		fail("pwrite: %s", strerror(errno));
}

static void
op_write(struct run *r, struct input *in)
{
	uint8_t buf[256];
	struct ram *m = ram_get(r, take8(in));
	uint64_t off = take16(in) % m->size;
	size_t len = take8(in);

	take_bytes(in, buf, len);
	ram_write(m, off, buf, len);
}

/*
 * Lays out a whole ring of n descriptors in guest RAM k at the given
 * offsets (desc, avail, used): a chain per avail entry, the buffers in
 * that RAM, and avail->idx moved on.  The kinds of descriptor come from
 * the input.
 */
static void
op_ring(struct run *r, struct input *in)
{
	uint8_t k = take8(in) % NRAM;
	struct ram *m = ram_get(r, k);
	uint64_t gpa0 = (uint64_t)k * 0x100000;
	uint16_t n = (uint16_t)(1u << take8(in) % 5);
	uint16_t desc = take16(in) & ~15, avail = take16(in) & ~1;
	uint16_t used = take16(in) & ~3, idx = take16(in);
	uint16_t i, v;

	(void)used;
	for (i = 0; i < n; i++) {
		uint8_t kind = take8(in);
		struct {
			uint64_t addr;
			uint32_t len;
			uint16_t flags, next;
		} __attribute__((packed)) d;

		d.addr = gpa0 + take16(in) % m->size;
		d.len = kind & 0x80 ? take32(in) : take8(in) + 1u;
		d.flags = (kind & 1 ? VRING_DESC_F_NEXT : 0) |
		    (kind & 2 ? 0 : VRING_DESC_F_WRITE) |
		    (kind & 4 ? VRING_DESC_F_INDIRECT : 0);
		if (kind & 8)
			d.len &= ~15u;
		d.next = kind & 0x40 ? take16(in) : (uint16_t)(i + 1);
		ram_write(m, desc + 16u * i, &d, sizeof(d));
		v = kind & 0x20 ? take16(in) : i;
		ram_write(m, avail + 4u + 2u * ((idx + i) % n), &v, 2);
	}
	v = (uint16_t)(idx + n);
	ram_write(m, avail + 2u, &v, 2);
}

static void
op_kick(struct run *r, struct input *in)
{
	uint64_t v = take8(in) & 0x80 ? take64(in) : 1;
	int fd = r->efd[take8(in) % NEFD];

	/*
	 * The daemon made the description non-blocking already, or will;
	 * a counter the kick would overflow must not block us.
	 */
	if (fd >= 0 && fcntl(fd, F_SETFL, O_NONBLOCK) == 0)
		(void)write(fd, &v, sizeof(v));
}

static void
op_shrink(struct run *r, struct input *in)
{
	struct ram *m = ram_get(r, take8(in));
	uint64_t to = take16(in) % m->size;

	if (take8(in) & 1)
		to &= ~(uint64_t)(PAGE - 1);
	if (ftruncate(m->fd, (off_t)to) < 0)
		fail("ftruncate: %s", strerror(errno));
	if (to < m->cur)
		m->cur = to;
}

/*
 * Waits (SYNC_MS at most) until the thread has answered everything sent
 * so far: GET_FEATURES is answered in order, after all that came before.
 */
static void
op_sync(struct run *r)
{
	struct pollfd p = { .fd = r->sock, .events = POLLIN };
	struct timespec t0, t;
	long ms;

	send_msg(r, VU_GET_FEATURES, VU_VERSION, 0, NULL, 0, NULL, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (r->features_replies < r->features_asked) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		ms = (t.tv_sec - t0.tv_sec) * 1000 +
		    (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= SYNC_MS || poll(&p, 1, (int)(SYNC_MS - ms)) <= 0)
			break;
		if (!drain_replies(r))
			break;
	}
}

/* OP_SYNC: op_sync, which takes nothing from the input. */
static void
op_sync_in(struct run *r, struct input *in)
{
	(void)in;
	op_sync(r);
}

/* What each op does, indexed by enum op. */
static void (*const ops[OP_COUNT])(struct run *, struct input *) = {
	[OP_MSG_RAW] = op_msg_raw,
	[OP_MSG_MEMTABLE] = op_msg_memtable,
	[OP_MSG_ADD_REG] = op_msg_add_reg,
	[OP_MSG_VRING_ADDR] = op_msg_vring_addr,
	[OP_MSG_VRING_FD] = op_msg_vring_fd,
	[OP_MSG_STATE] = op_msg_state,
	[OP_WRITE] = op_write,
	[OP_RING] = op_ring,
	[OP_KICK] = op_kick,
	[OP_SHRINK] = op_shrink,
	[OP_SYNC] = op_sync_in,
};

static void
run_program(struct run *r, struct input *in)
{
	unsigned steps = 0;

	while (in->left > 0 && steps++ < 64)
		ops[take8(in) % OP_COUNT](r, in);
}

/* Hangs up and waits for the thread to end: HANG_MS at most. */
static void
finish(struct run *r)
{
	struct pollfd p = { .fd = shared.wake_main_fd, .events = POLLIN };
	uint64_t v;
	int n;

	close(r->sock);
	for (;;) {
		n = poll(&p, 1, HANG_MS);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail("guest thread still running %d ms after the "
			    "hang-up", HANG_MS);
		(void)read(shared.wake_main_fd, &v, sizeof(v));
		if (__atomic_load_n(&slot.finished, __ATOMIC_ACQUIRE))
			break;
	}
	pthread_join(slot.thread, NULL);
	slot.busy = false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct leak_mark before;
	struct run r;
	unsigned i;
	int sv[2];

	init_once();
	leak_mark(&before, RAM_NAME);

	memset(&r, 0, sizeof(r));
	for (i = 0; i < NRAM; i++)
		r.ram[i].fd = -1;
	for (i = 0; i < NEFD; i++)
		r.efd[i] = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		fail("socketpair: %s", strerror(errno));
	r.sock = sv[0];
	slot.conn_fd = sv[1];
	if (guest_start(&slot) < 0)
		fail("guest_start: %s", strerror(errno));

	run_program(&r, &in);
	/* Let the thread act on all of it before the hang-up. */
	op_sync(&r);
	finish(&r);

	for (i = 0; i < NRAM; i++)
		if (r.ram[i].fd >= 0)
			close(r.ram[i].fd);
	for (i = 0; i < NEFD; i++)
		if (r.efd[i] >= 0)
			close(r.efd[i]);
	leak_check(&before);
	return 0;
}
