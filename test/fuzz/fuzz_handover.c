/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: a successor reading the state it was handed
 * (handover.h) over a fixed directory of real descriptors.
 *
 * The first byte of an input says what the rest is (enum mode):
 *
 *	MODE_DEVICE	 the body of a guest record's device part, as
 *			 vu_dev_save() writes it, read by vu_dev_restore()
 *			 (the checksum is taken as good: these bytes are
 *			 what a blob that checks may hold)
 *	MODE_STORED	 a slot byte, then a whole guest blob with its
 *			 header, as the fd store keeps it (u32 slot, the
 *			 guest record of guest_save()), in a memfd named
 *			 vrng.<slot>.1.state.1 beside the directory:
 *			 fdstore_restore() calls guest_restore() and
 *			 handover_close() as the daemon does after a crash
 *	MODE_STORED_BODY the same, the rest being the body: the header is
 *			 made good
 *	MODE_RATELIMIT	 a byte (bit 0: the limit is the all-zero one
 *			 upgrade.c reads into when it has none), then what
 *			 ratelimit_save() writes, read by ratelimit_restore()
 *			 into a limit of 1000 bytes per 100 ms for 2 guests
 *
 * The directory holds what a predecessor with connections "vrng.0.1."
 * and "vrng.1.1." hands over: for each, sock (a socket), kick, call
 * and err (eventfds); and vrng.0.1.m0 .. m2, guest memory
 * (memfds of 4 KiB, 64 KiB, 1 MiB), and vrng.0.1.pipe (a pipe).  Each
 * input gets duplicates of them, owned by its directory, as the
 * successor owns what it inherits.  The daemon-blob reader of upgrade.c
 * is not here: it execs or exits on a blob it refuses.
 *
 * Oracles, beyond the sanitizers: afterwards the process has exactly
 * the fds and guest-memory mappings it had before the input.  A device
 * restored holds values the vhost-user messages would accept; it saves,
 * and what it saves restores again from the fds it holds, to the same
 * bytes (for guests: guest_save, guest_restore).  A rate limit restored
 * is not ahead of the clock; a guest it gives nothing is woken in the
 * future.  A failure prints why and aborts.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "entropy.h"
#include "fdstore.h"
#include "guest.h"
#include "handover.h"
#include "log.h"
#include "ratelimit.h"
#include "virtq.h"
#include "vu_dev.h"

#define FUZZ_NAME	"fuzz_handover"
#include "fuzz_oracle.h"

#define RAM_NAME	"fuzz-ram"
#define NSLOTS		2
#define RL_MAX		1000
#define RL_MS		100

enum mode {
	MODE_DEVICE,
	MODE_STORED,
	MODE_STORED_BODY,
	MODE_RATELIMIT,
	MODE_COUNT
};

/* What the predecessor left open, by the name it gave each. */
struct inherited {
	const char	*name;
	int		 fd;
};

static struct inherited inherited[] = {
	{ "vrng.0.1.sock", -1 }, { "vrng.0.1.kick", -1 },
	{ "vrng.0.1.call", -1 }, { "vrng.0.1.err", -1 },
	{ "vrng.1.1.sock", -1 }, { "vrng.1.1.kick", -1 },
	{ "vrng.1.1.call", -1 }, { "vrng.1.1.err", -1 },
	{ "vrng.0.1.m0", -1 }, { "vrng.0.1.m1", -1 }, { "vrng.0.1.m2", -1 },
	{ "vrng.0.1.pipe", -1 },
	/* A connection prefix longer than struct vu_dev holds. */
	{ "vrng.0.0123456789abcdef01234567.sock", -1 },
};
#define NINHERITED	(sizeof(inherited) / sizeof(inherited[0]))

static struct entropy source;
static struct guest_shared shared;
/* The slots restored into, and one more for the round trip. */
static struct guest_slot slots[NSLOTS + 1];
static int watch_fd = -1;

static int
checked(int fd, const char *what)
{
	if (fd < 0)
		fail("%s: %s", what, strerror(errno));
	return fd;
}

static int
ram(size_t size)
{
	int fd = checked(memfd_create(RAM_NAME, MFD_CLOEXEC), "memfd");

	if (ftruncate(fd, (off_t)size) < 0)
		fail("ftruncate: %s", strerror(errno));
	return fd;
}

static void
init_once(void)
{
	static bool done;
	char err[256];
	int sv[2], p[2];
	unsigned i;

	if (done)
		return;
	done = true;
	signal(SIGPIPE, SIG_IGN);
	log_init(0);
	for (i = 0; i < 2; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			fail("socketpair: %s", strerror(errno));
		inherited[4 * i].fd = sv[0];	/* sv[1] stays open: a peer */
		inherited[4 * i + 1].fd = checked(eventfd(0, EFD_CLOEXEC |
		    EFD_NONBLOCK), "eventfd");
		inherited[4 * i + 2].fd = checked(eventfd(0, EFD_CLOEXEC |
		    EFD_NONBLOCK), "eventfd");
		inherited[4 * i + 3].fd = checked(eventfd(0, EFD_CLOEXEC |
		    EFD_NONBLOCK), "eventfd");
	}
	inherited[8].fd = ram(4096);
	inherited[9].fd = ram(64 * 1024);
	inherited[10].fd = ram(1024 * 1024);
	if (pipe2(p, O_CLOEXEC) < 0)
		fail("pipe: %s", strerror(errno));
	inherited[11].fd = p[0];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		fail("socketpair: %s", strerror(errno));
	inherited[12].fd = sv[0];
	watch_fd = checked(epoll_create1(EPOLL_CLOEXEC), "epoll");
	if (entropy_open(&source, "/dev/urandom", err, sizeof(err)) < 0)
		fail("%s", err);
	shared.source = &source;
	for (i = 0; i <= NSLOTS; i++) {
		slots[i].index = i;
		slots[i].shared = &shared;
		slots[i].stop_fd = checked(eventfd(0, EFD_CLOEXEC |
		    EFD_NONBLOCK), "eventfd");
		slots[i].park_fd = checked(eventfd(0, EFD_CLOEXEC |
		    EFD_NONBLOCK), "eventfd");
	}
}

/*
 * A duplicate of each fd of a device into a directory.  Regions of one
 * file repeat a name: the first serves (handover_fds_dup).
 */
static int
collect(const char *name, int fd, uint32_t gen, void *arg)
{
	(void)gen;
	return handover_fds_add(arg, name, checked(fcntl(fd, F_DUPFD_CLOEXEC,
	    3), "dup"));
}

/* A blob of kind GUEST with these bytes for a body. */
static void
wrap(struct handover_buf *b, const uint8_t *body, size_t len)
{
	size_t i;

	if (handover_begin(b, HANDOVER_GUEST) < 0)
		fail("handover_begin");
	for (i = 0; i < len; i++)
		handover_put_u8(b, body[i]);
	if (handover_finish(b) < 0)
		fail("a blob of %zu bytes does not finish", len);
}

static bool
is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if ((n = readlink(path, target, sizeof(target) - 1)) < 0)
		return false;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventfd]") == 0;
}

/* What SET_FEATURES .. SET_VRING_KICK would have let through. */
static void
check_device(const struct vu_dev *dev)
{
	const struct virtq *vq = &dev->vq;
	struct stat st;

	if (strnlen(dev->fd_prefix, sizeof(dev->fd_prefix)) ==
	    sizeof(dev->fd_prefix))
		fail("fd prefix not terminated");
	if ((dev->features & ~VU_OFFERED_FEATURES) ||
	    (dev->protocol_features & ~VU_OFFERED_PROTOCOL_FEATURES))
		fail("features 0x%llx / 0x%llx not offered",
		    (unsigned long long)dev->features,
		    (unsigned long long)dev->protocol_features);
	if (vq->num > VIRTQ_MAX_SIZE || (vq->num & (vq->num - 1)) != 0)
		fail("ring size %u", vq->num);
	if (dev->mt.nregions > MEMTABLE_MAX_SLOTS)
		fail("%u regions", dev->mt.nregions);
	if (vq->addr_set && ((vq->desc_uva & 15) || (vq->avail_uva & 1) ||
	    (vq->used_uva & 3)))
		fail("misaligned ring");
	/*
	 * Outside memory only as the message path leaves it: a started ring
	 * that stopped fitting (map_failed), which never maps (virtq_map
	 * translates every access through the table).
	 */
	if (vq->addr_set && dev->has_mem_table && !dev->map_failed &&
	    !virtq_addr_in_memory(vq, &dev->mt, vq->desc_uva, vq->avail_uva,
	    vq->used_uva))
		fail("ring outside memory");
	if (vq->addr_set && dev->map_failed && !virtq_addr_in_memory(vq,
	    &dev->mt, vq->desc_uva, vq->avail_uva, vq->used_uva)) {
		struct virtq probe = *vq;

		if (virtq_map(&probe, &dev->mt) == 0)
			fail("a ring outside memory was mapped");
	}
	if (fstat(dev->sock, &st) < 0 || !S_ISSOCK(st.st_mode))
		fail("connection fd %d is not a socket", dev->sock);
	if ((dev->kick_fd >= 0 && !is_eventfd(dev->kick_fd)) ||
	    (dev->call_fd >= 0 && !is_eventfd(dev->call_fd)) ||
	    (dev->err_fd >= 0 && !is_eventfd(dev->err_fd)))
		fail("a ring fd is not an eventfd");
}

/*
 * Saves a restored device (or the guest in a slot), restores that from
 * the fds it holds into another, saves that: the same bytes.
 */
static void
round_trip(const struct vu_dev *dev, const struct guest_slot *slot)
{
	struct guest_slot *spare = &slots[NSLOTS];
	struct handover_fds dir = { 0 };
	struct handover_buf b1, b2;
	struct handover_cursor cur;
	struct vu_dev again;
	char err[512];
	int r;

	if (handover_begin(&b1, HANDOVER_GUEST) < 0 ||
	    handover_begin(&b2, HANDOVER_GUEST) < 0)
		fail("handover_begin");
	if (dev != NULL)
		vu_dev_save(dev, &b1);
	else
		guest_save(slot, &b1);
	if (handover_finish(&b1) < 0)
		fail("a restored connection does not save");
	if ((dev != NULL ? vu_dev_each_fd(dev, collect, &dir) :
	    guest_each_fd(slot, collect, &dir)) != 0)
		fail("directory of a restored connection");
	if (handover_open(&cur, b1.data, b1.len, HANDOVER_GUEST, err,
	    sizeof(err)) < 0)
		fail("its own blob: %s", err);
	vu_dev_init(&again, -1);
	r = dev != NULL ? vu_dev_restore(&again, &cur, &dir, err,
	    sizeof(err)) : guest_restore(spare, &cur, &dir, err, sizeof(err));
	if (r < 0 || handover_close(&cur, err, sizeof(err)) < 0)
		fail("a restored connection does not restore again: %s", err);
	if (dev != NULL)
		vu_dev_save(&again, &b2);
	else
		guest_save(spare, &b2);
	if (handover_finish(&b2) < 0)
		fail("a connection restored twice does not save");
	if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
		fail("a restored connection saves %zu bytes, restored again "
		    "%zu other bytes", b1.len, b2.len);
	vu_dev_cleanup(&again);
	guest_discard(spare);
	handover_fds_release(&dir);
	handover_buf_free(&b1);
	handover_buf_free(&b2);
}

static void
run_device(const uint8_t *body, size_t len, struct handover_fds *dir)
{
	struct handover_cursor cur = { .p = body, .left = len };
	struct vu_dev dev;
	char err[512];

	vu_dev_init(&dev, -1);
	dev.watch_fd = watch_fd;
	if (vu_dev_restore(&dev, &cur, dir, err, sizeof(err)) == 0 &&
	    handover_close(&cur, err, sizeof(err)) == 0) {
		check_device(&dev);
		round_trip(&dev, NULL);
		/* It maps its rings (or says once that it cannot). */
		(void)vu_dev_ring_runnable(&dev);
	} else if (err[0] == '\0')
		fail("refused without a sentence");
	vu_dev_cleanup(&dev);
}

/* main.c's restore_one: a guest back in its slot, or nothing. */
static int
restore_slot(unsigned slot, struct handover_cursor *cur, void *arg)
{
	struct handover_fds *dir = arg;
	char err[512];

	if (slots[slot].parked != NULL)
		return -1;
	if (guest_restore(&slots[slot], cur, dir, err, sizeof(err)) < 0 ||
	    handover_close(cur, err, sizeof(err)) < 0) {
		guest_discard(&slots[slot]);
		return -1;
	}
	return 0;
}

static void
run_stored(const uint8_t *data, size_t len, bool make_header,
    struct handover_fds *dir)
{
	struct handover_buf b = { 0 };
	char name[HANDOVER_NAME_MAX];
	unsigned slot = len > 0 ? data[0] % NSLOTS : 0, i;
	int fd;

	if (len > 0) {
		data++;
		len--;
	}
	if (make_header)
		wrap(&b, data, len);
	else {
		b.data = (uint8_t *)data;	/* only read */
		b.len = len;
	}
	/* The state as systemd hands it back: a memfd of its own. */
	fd = checked(handover_memfd(&b, "vhost-device-rng-guest"), "memfd");
	if (!make_header)
		memset(&b, 0, sizeof(b));
	snprintf(name, sizeof(name), "vrng.%u.1.state.1", slot);
	if (handover_fds_add(dir, name, fd) < 0)
		fail("handover_fds_add");
	handover_buf_free(&b);
	(void)fdstore_restore(dir, NSLOTS, restore_slot, dir);
	for (i = 0; i < NSLOTS; i++)
		if (slots[i].parked != NULL) {
			round_trip(NULL, &slots[i]);
			guest_discard(&slots[i]);
		}
}

static void
run_ratelimit(const uint8_t *data, size_t len)
{
	struct handover_cursor cur;
	struct ratelimit rl;
	uint64_t now, wake, got, share;
	bool zero = len > 0 && (data[0] & 1);
	unsigned g;
	int r;

	now = monotonic_ns();
	if (zero)
		memset(&rl, 0, sizeof(rl));
	else if (ratelimit_init(&rl, RL_MAX, RL_MS, 2, now) < 0)
		fail("ratelimit_init: %s", strerror(errno));
	memset(&cur, 0, sizeof(cur));
	cur.p = len > 0 ? data + 1 : data;
	cur.left = len > 0 ? len - 1 : 0;
	r = ratelimit_restore(&rl, &cur);
	if ((r == -1) != cur.failed)
		fail("restore %d with the cursor %s", r, cur.failed ? "failed" :
		    "good");
	if (zero)
		return;
	now = monotonic_ns();
	if (r == 0 && (rl.epoch_ns > now ||
	    rl.period > (now - rl.epoch_ns) / rl.period_ns))
		fail("period %llu restored ahead of the clock",
		    (unsigned long long)rl.period);
	for (g = 0; g < 2; g++) {
		if (rl.used[g] > RL_MAX)
			fail("guest %u took %llu", g,
			    (unsigned long long)rl.used[g]);
		got = ratelimit_take(&rl, g, RL_MAX, now, &wake);
		share = ratelimit_share(&rl, g, rl.period);
		if (got > share)
			fail("guest %u got %llu of a %llu share", g,
			    (unsigned long long)got,
			    (unsigned long long)share);
		if (got == 0 && wake <= now)
			fail("guest %u given nothing and woken in the past",
			    g);
	}
	ratelimit_destroy(&rl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct handover_fds dir = { 0 };
	struct leak_mark before;
	enum mode mode;
	unsigned i;

	if (size == 0)
		return 0;
	init_once();
	leak_mark(&before, RAM_NAME);
	for (i = 0; i < NINHERITED; i++)
		if (handover_fds_add(&dir, inherited[i].name,
		    checked(fcntl(inherited[i].fd, F_DUPFD_CLOEXEC, 3),
		    "dup")) < 0)
			fail("handover_fds_add");

	mode = (enum mode)(data[0] % MODE_COUNT);
	data++;
	size--;
	switch (mode) {
	case MODE_DEVICE:
		run_device(data, size, &dir);
		break;
	case MODE_STORED:
	case MODE_STORED_BODY:
		run_stored(data, size, mode == MODE_STORED_BODY, &dir);
		break;
	case MODE_RATELIMIT:
	case MODE_COUNT:
		run_ratelimit(data, size);
		break;
	}

	handover_fds_release(&dir);
	leak_check(&before);
	return 0;
}
