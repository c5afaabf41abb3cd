/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A connection handed over (vu_dev_save, vu_dev_restore, guest_save,
 * guest_restore): what a predecessor writes, read back whole, and read
 * back cut short or holding values the message path would refuse.
 *
 * The device saved is set up as a front-end would set it up: vhost-user
 * messages through vu_dev_handle, with memfds as guest memory (three
 * regions, two of them of one file) and eventfds.  Its descriptors go to
 * a directory the way upgrade.c collects them.  A hostile value is saved
 * by vu_dev_save from a copy of that device with the value changed, so
 * that every blob here is one a daemon in that state would write.  Each
 * refusal must name its reason and leave no fd open and no memfd mapped
 * that was not before.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "entropy.h"
#include "guest.h"
#include "handover.h"
#include "ratelimit.h"
#include "unit.h"
#include "virtq.h"
#include "vu_dev.h"

Suite	*restore_suite(void);

#define MEMFD_NAME	"vrng-restore-mem"
#define PREFIX		"vrng.0.1f."
#define UVA0		0x7f5500000000ull
#define MEM_SIZE	(64ull << 10)
#define PAGE		4096ull
/* The guest's regions: gpa, front-end address, memfd, offset in it. */
#define GPA1		0x100000000ull
#define UVA1		(UVA0 + 0x10000000ull)
#define GPA2		0x200000000ull
#define UVA2		(UVA0 + 0x20000000ull)
#define QSZ		8
#define BASE		5

static struct vu_dev src;
static int peer = -1;
static int mem0 = -1, mem1 = -1;
static struct handover_fds dir;
static struct handover_buf blob;
static struct handover_cursor cur;
static char err[512];

/* For guest_restore. */
static struct entropy source;
static struct guest_shared shared;
static struct guest_slot slot;

/* Hands dev one message, as the guest thread would after vu_msg_recv. */
static void
deliver(struct vu_dev *dev, uint32_t request, const void *payload,
    uint32_t size, int fd)
{
	struct vu_msg m;
	unsigned i;

	memset(&m, 0, sizeof(m));
	m.hdr.request = request;
	m.hdr.flags = VU_VERSION;
	m.hdr.size = size;
	if (size > 0)
		memcpy(&m.payload, payload, size);
	for (i = 0; i < VU_MAX_FDS; i++)
		m.fds[i] = -1;
	if (fd >= 0)
		m.fds[m.nfds++] = fd;
	ck_assert_msg(vu_dev_handle(dev, &m) == 0, "%s refused",
	    vu_request_name(request));
}

static void
deliver_u64(struct vu_dev *dev, uint32_t request, uint64_t v)
{
	deliver(dev, request, &v, sizeof(v), -1);
}

static void
deliver_state(struct vu_dev *dev, uint32_t request, uint32_t num)
{
	struct vu_vring_state st = { .index = 0, .num = num };

	deliver(dev, request, &st, sizeof(st), -1);
}

static int
an_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	ck_assert_int_ge(fd, 0);
	return fd;
}

/* The ring's set-up: size, base, addresses at uva, the three eventfds. */
static void
deliver_ring(struct vu_dev *dev, uint64_t uva)
{
	struct vu_vring_addr a = { .desc_user_addr = uva,
	    .avail_user_addr = uva + 0x1000, .used_user_addr = uva + 0x2000 };

	deliver_state(dev, VU_SET_VRING_NUM, QSZ);
	deliver_state(dev, VU_SET_VRING_BASE, BASE);
	deliver(dev, VU_SET_VRING_ADDR, &a, sizeof(a), -1);
	deliver(dev, VU_SET_VRING_CALL, &(uint64_t){ 0 }, 8, an_eventfd());
	deliver(dev, VU_SET_VRING_ERR, &(uint64_t){ 0 }, 8, an_eventfd());
	deliver(dev, VU_SET_VRING_KICK, &(uint64_t){ 0 }, 8, an_eventfd());
}

static void
add_region(uint64_t gpa, uint64_t uva, uint64_t off, int fd)
{
	struct vu_mem_single r = { .region = { .guest_phys_addr = gpa,
	    .memory_size = MEM_SIZE, .userspace_addr = uva,
	    .mmap_offset = off } };

	deliver(&src, VU_ADD_MEM_REG, &r, sizeof(r), dup(fd));
}

/*
 * A duplicate of each fd of a device, owned by dir.  Regions of one file
 * repeat a name: the first serves (handover_fds_dup).
 */
static int
collect(const char *name, int fd, uint32_t gen, void *arg)
{
	(void)gen;
	(void)arg;
	return handover_fds_add(&dir, name, dup(fd));
}

/* A guest blob holding what vu_dev_save writes of dev. */
static void
save(const struct vu_dev *dev)
{
	handover_buf_free(&blob);
	ck_assert_int_eq(handover_begin(&blob, HANDOVER_GUEST), 0);
	vu_dev_save(dev, &blob);
	ck_assert_int_eq(handover_finish(&blob), 0);
}

static void
open_blob_kind(enum handover_kind kind)
{
	ck_assert_msg(handover_open(&cur, blob.data, blob.len, kind, err,
	    sizeof(err)) == 0, "%s", err);
}

static void
open_blob(void)
{
	open_blob_kind(HANDOVER_GUEST);
}

static void
setup(void)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	vu_dev_init(&src, sv[0]);
	peer = sv[1];
	strlcpy(src.fd_prefix, PREFIX, sizeof(src.fd_prefix));
	mem0 = unit_memfd(MEMFD_NAME, MEM_SIZE);
	mem1 = unit_memfd(MEMFD_NAME, PAGE + MEM_SIZE);

	deliver_u64(&src, VU_SET_FEATURES, VU_OFFERED_FEATURES);
	deliver_u64(&src, VU_SET_PROTOCOL_FEATURES,
	    VU_OFFERED_PROTOCOL_FEATURES);
	deliver(&src, VU_SET_OWNER, NULL, 0, -1);
	add_region(0, UVA0, 0, mem0);
	add_region(GPA1, UVA1, PAGE, mem1);
	add_region(GPA2, UVA2, 0, mem0);
	deliver_ring(&src, UVA0);
	deliver_state(&src, VU_SET_VRING_ENABLE, 1);
	ck_assert(src.started && src.enabled);
	ck_assert_uint_eq(src.mt.nregions, 3);

	memset(&dir, 0, sizeof(dir));
	ck_assert_int_eq(vu_dev_each_fd(&src, collect, NULL), 0);
	/* sock, kick, call, err, and one per region. */
	ck_assert_uint_eq(dir.n, 7);
	memset(&blob, 0, sizeof(blob));
	save(&src);
}

static void
teardown(void)
{
	vu_dev_cleanup(&src);
	handover_fds_release(&dir);
	handover_buf_free(&blob);
	close(peer);
	close(mem0);
	close(mem1);
}

static void
blob_teardown(void)
{
	handover_buf_free(&blob);
}

static void
guest_setup(void)
{
	char e[256];

	setup();
	ck_assert_msg(entropy_open(&source, "/dev/urandom", e, sizeof(e)) ==
	    0, "%s", e);
	memset(&shared, 0, sizeof(shared));
	shared.source = &source;
	memset(&slot, 0, sizeof(slot));
	slot.shared = &shared;
	slot.stop_fd = an_eventfd();
	slot.park_fd = an_eventfd();
}

static void
guest_teardown(void)
{
	guest_discard(&slot);
	close(slot.stop_fd);
	close(slot.park_fd);
	entropy_close(&source);
	teardown();
}

/*
 * vu_dev_restore of what cur holds is refused with why: in the cursor
 * (malformed: the blob is not sound) or in err (a device check: the blob
 * is sound, this connection is not).  Once the device is cleaned up, as
 * its owner does, the fds and memfd mappings are as they were.
 */
static void
expect_refused(bool malformed, const char *why)
{
	int fds = unit_count_fds(), maps = unit_count_maps(MEMFD_NAME);
	struct vu_dev dst;

	vu_dev_init(&dst, -1);
	err[0] = '\0';
	ck_assert_int_eq(vu_dev_restore(&dst, &cur, &dir, err, sizeof(err)),
	    -1);
	ck_assert_msg(err[0] != '\0', "no error sentence");
	ck_assert_msg(cur.failed == malformed, "cursor %s: %s",
	    cur.failed ? "failed" : "good", err);
	if (malformed) {
		ck_assert_str_eq(err, "state blob is malformed");
		ck_assert_int_eq(handover_close(&cur, err, sizeof(err)), -1);
	}
	ck_assert_msg(strstr(err, why) != NULL, "\"%s\" not in \"%s\"", why,
	    err);
	vu_dev_cleanup(&dst);
	ck_assert_int_eq(unit_count_fds(), fds);
	ck_assert_int_eq(unit_count_maps(MEMFD_NAME), maps);
}

/* Saves dev (a changed copy of src) and expects its restore refused. */
static void
expect_saved_refused(const struct vu_dev *dev, bool malformed,
    const char *why)
{
	save(dev);
	open_blob();
	expect_refused(malformed, why);
}

/* --- vu_dev ---------------------------------------------------------- */

/* Restored whole: the same device, which saves to the same bytes. */
START_TEST(device_round_trip)
{
	struct handover_buf again = { 0 };
	int fds = unit_count_fds(), maps = unit_count_maps(MEMFD_NAME);
	struct vu_dev dst;
	unsigned i;

	vu_dev_init(&dst, -1);
	open_blob();
	ck_assert_msg(vu_dev_restore(&dst, &cur, &dir, err, sizeof(err)) ==
	    0, "%s", err);
	ck_assert_msg(handover_close(&cur, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(dst.fd_prefix, PREFIX);
	ck_assert_uint_eq(dst.features, VU_OFFERED_FEATURES);
	ck_assert_uint_eq(dst.protocol_features,
	    VU_OFFERED_PROTOCOL_FEATURES);
	ck_assert(dst.owner && dst.started && dst.enabled);
	ck_assert(dst.vq.event_idx);
	ck_assert_uint_eq(dst.mt.nregions, 3);
	for (i = 0; i < 3; i++) {
		ck_assert_uint_eq(dst.mt.regions[i].gpa, src.mt.regions[i].gpa);
		ck_assert_uint_eq(dst.mt.regions[i].uva, src.mt.regions[i].uva);
		ck_assert_uint_eq(dst.mt.regions[i].size,
		    src.mt.regions[i].size);
		ck_assert_uint_eq(dst.mt.regions[i].mmap_offset,
		    src.mt.regions[i].mmap_offset);
	}
	ck_assert_uint_eq(dst.vq.num, QSZ);
	ck_assert_uint_eq(dst.vq.desc_uva, UVA0);
	ck_assert_uint_eq(dst.vq.last_avail_idx, BASE);
	ck_assert_int_ge(dst.kick_fd, 0);
	ck_assert_int_ge(dst.call_fd, 0);
	ck_assert_int_ge(dst.err_fd, 0);
	/* sock, kick, call, err and three regions: all new fds. */
	ck_assert_int_eq(unit_count_fds(), fds + 7);
	ck_assert_int_eq(unit_count_maps(MEMFD_NAME), maps + 3);

	handover_begin(&again, HANDOVER_GUEST);
	vu_dev_save(&dst, &again);
	ck_assert_int_eq(handover_finish(&again), 0);
	ck_assert_uint_eq(again.len, blob.len);
	ck_assert_int_eq(memcmp(again.data, blob.data, blob.len), 0);
	handover_buf_free(&again);

	/* It runs, from the used index the driver sees. */
	ck_assert(vu_dev_ring_runnable(&dst));
	ck_assert_uint_eq(dst.vq.last_avail_idx, dst.vq.used_idx);
	vu_dev_cleanup(&dst);
	ck_assert_int_eq(unit_count_fds(), fds);
	ck_assert_int_eq(unit_count_maps(MEMFD_NAME), maps);
}
END_TEST

/* Every length short of the whole: malformed, nothing left behind. */
START_TEST(device_truncated_at_every_length)
{
	const uint8_t *body = blob.data + HANDOVER_HEADER_SIZE;
	size_t len = blob.len - HANDOVER_HEADER_SIZE, n;

	for (n = 0; n < len; n++) {
		memset(&cur, 0, sizeof(cur));
		cur.p = body;
		cur.left = n;
		expect_refused(true, "it ends in the middle of a field");
	}
}
END_TEST

START_TEST(device_features_not_offered)
{
	struct vu_dev d = src;

	d.features |= 1ull << 40;
	expect_saved_refused(&d, true, "features this binary does not offer");
	d = src;
	d.protocol_features |= 1ull << 63;
	expect_saved_refused(&d, true, "features this binary does not offer");
}
END_TEST

START_TEST(device_ring_size_not_power_of_two)
{
	static const uint32_t bad[] = { 3, QSZ + 1, 32767, 65536, UINT32_MAX };
	struct vu_dev d = src;
	unsigned i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		d.vq.num = bad[i];
		expect_saved_refused(&d, false, "is not a power of two");
	}
}
END_TEST

START_TEST(device_ring_outside_memory)
{
	struct vu_dev d = src;

	/* Past region 0, in the hole before region 1, straddling its end. */
	d.vq.desc_uva = UVA0 + MEM_SIZE;
	expect_saved_refused(&d, false, "does not fit guest memory");
	d.vq.desc_uva = UVA1 - 0x100;
	expect_saved_refused(&d, false, "does not fit guest memory");
	d.vq.desc_uva = UVA0;
	d.vq.used_uva = UVA0 + MEM_SIZE - 8;
	expect_saved_refused(&d, false, "does not fit guest memory");
	/* Misaligned. */
	d = src;
	d.vq.desc_uva = UVA0 + 8;
	expect_saved_refused(&d, false, "misaligned");
	/* The same ring fits 8 entries, not 4096 (the used ring's end). */
	d = src;
	d.vq.used_uva = UVA0 + MEM_SIZE - 0x1000;
	save(&d);
	open_blob();
	{
		struct vu_dev ok;

		vu_dev_init(&ok, -1);
		ck_assert_msg(vu_dev_restore(&ok, &cur, &dir, err,
		    sizeof(err)) == 0, "%s", err);
		vu_dev_cleanup(&ok);
	}
	d.vq.num = 4096;
	expect_saved_refused(&d, false, "does not fit guest memory");
}
END_TEST

/*
 * A ring set up before any table (a front-end that reconnects does so) is
 * taken by SET_VRING_ADDR, so it must survive a handover as well.
 */
START_TEST(device_ring_before_table)
{
	struct vu_dev early, dst;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	vu_dev_init(&early, sv[0]);
	strlcpy(early.fd_prefix, "vrng.1.2.", sizeof(early.fd_prefix));
	deliver_u64(&early, VU_SET_FEATURES, VU_OFFERED_FEATURES);
	deliver_ring(&early, UVA0);
	deliver_state(&early, VU_SET_VRING_ENABLE, 1);
	ck_assert(early.vq.addr_set && !early.has_mem_table);
	ck_assert(!vu_dev_ring_runnable(&early));
	ck_assert_int_eq(vu_dev_each_fd(&early, collect, NULL), 0);
	save(&early);
	open_blob();
	vu_dev_init(&dst, -1);
	ck_assert_msg(vu_dev_restore(&dst, &cur, &dir, err, sizeof(err)) ==
	    0, "%s", err);
	ck_assert(dst.vq.addr_set && dst.started && dst.map_failed);
	ck_assert_uint_eq(dst.vq.desc_uva, UVA0);
	ck_assert(!vu_dev_ring_runnable(&dst));
	vu_dev_cleanup(&dst);
	vu_dev_cleanup(&early);
	close(sv[1]);
}
END_TEST

/* A region whose memory file is not in the directory. */
START_TEST(device_region_fd_missing)
{
	struct mem_region r[3];
	struct vu_dev d = src;
	int other = unit_memfd(MEMFD_NAME, MEM_SIZE + PAGE);

	memcpy(r, src.mt.regions, sizeof(r));
	r[1].fd = other;	/* saved under that file's name */
	d.mt.regions = r;
	expect_saved_refused(&d, false, "memory region descriptor");
	ck_assert_ptr_nonnull(strstr(err, "is missing"));
	close(other);
}
END_TEST

START_TEST(device_region_larger_than_file)
{
	struct mem_region r[3];
	struct vu_dev d = src;

	memcpy(r, src.mt.regions, sizeof(r));
	d.mt.regions = r;
	r[1].size = MEM_SIZE + PAGE;	/* the file has offset + MEM_SIZE */
	expect_saved_refused(&d, false, "does not map again");
	r[1].size = MEM_SIZE;
	r[1].mmap_offset = 2 * PAGE;
	expect_saved_refused(&d, false, "does not map again");
	/* Two regions on one guest range. */
	r[1].mmap_offset = PAGE;
	r[2].gpa = r[1].gpa + PAGE;
	expect_saved_refused(&d, false, "does not map again");
	r[2].gpa = GPA2;
	r[2].size = 0;
	expect_saved_refused(&d, false, "does not map again");
}
END_TEST

/* 509 regions restore (the most GET_MAX_MEM_SLOTS allows); 510 do not. */
START_TEST(device_510_regions)
{
	int fds = unit_count_fds(), maps = unit_count_maps(MEMFD_NAME);
	struct mem_region *r;
	struct vu_dev d = src, dst;
	unsigned i;

	ck_assert_ptr_nonnull(r = calloc(MEMTABLE_MAX_SLOTS + 1,
	    sizeof(*r)));
	for (i = 0; i <= MEMTABLE_MAX_SLOTS; i++) {
		r[i].gpa = i * 0x10000ull;
		r[i].uva = UVA0 + i * 0x10000ull;
		r[i].size = PAGE;
		r[i].fd = mem0;
	}
	d.mt.regions = r;
	d.vq.addr_set = false;
	d.mt.nregions = MEMTABLE_MAX_SLOTS;
	save(&d);
	open_blob();
	vu_dev_init(&dst, -1);
	ck_assert_msg(vu_dev_restore(&dst, &cur, &dir, err, sizeof(err)) ==
	    0, "%s", err);
	ck_assert_uint_eq(dst.mt.nregions, MEMTABLE_MAX_SLOTS);
	ck_assert_int_eq(unit_count_maps(MEMFD_NAME), maps +
	    MEMTABLE_MAX_SLOTS);
	vu_dev_cleanup(&dst);
	ck_assert_int_eq(unit_count_fds(), fds);

	d.mt.nregions = MEMTABLE_MAX_SLOTS + 1;
	expect_saved_refused(&d, true, "a count is out of range");
	free(r);
}
END_TEST

/* The directory's entry called name, now called "vrng.gone". */
static void
hide(const char *name)
{
	unsigned i;

	for (i = 0; i < dir.n; i++)
		if (strcmp(dir.v[i].name, name) == 0)
			strlcpy(dir.v[i].name, "vrng.gone", HANDOVER_NAME_MAX);
}

/* The eventfds and the socket: missing, or something else by that name. */
START_TEST(device_fd_missing_or_wrong_kind)
{
	struct vu_dev d = src;
	char name[HANDOVER_NAME_MAX];

	hide(PREFIX "kick");
	expect_saved_refused(&d, false, "descriptor " PREFIX "kick is "
	    "missing");
	hide(PREFIX "call");
	ck_assert_int_eq(handover_fds_add(&dir, PREFIX "call",
	    unit_memfd(MEMFD_NAME, PAGE)), 0);
	expect_saved_refused(&d, false, "descriptor " PREFIX "call is not an "
	    "eventfd");
	strlcpy(d.fd_prefix, "vrng.other.", sizeof(d.fd_prefix));
	expect_saved_refused(&d, false, "descriptor vrng.other.sock is "
	    "missing");
	ck_assert_int_eq(handover_fds_add(&dir, "vrng.other.sock",
	    an_eventfd()), 0);
	expect_saved_refused(&d, false, "descriptor vrng.other.sock is not a "
	    "socket");
	/* A prefix the blob may hold but the device may not. */
	memset(name, 'p', sizeof(name));
	name[40] = '\0';
	handover_buf_free(&blob);
	ck_assert_int_eq(handover_begin(&blob, HANDOVER_GUEST), 0);
	handover_put_name(&blob, name);
	ck_assert_int_eq(handover_finish(&blob), 0);
	strcat(name, "sock");
	ck_assert_int_eq(handover_fds_add(&dir, name, dup(src.sock)), 0);
	open_blob();
	expect_refused(true, "descriptor prefix is too long");
}
END_TEST

/* --- guest ----------------------------------------------------------- */

static const struct guest_stats saved_stats = { 1, 2, 3, 4, 5, 6 };

/*
 * A blob as guest_save writes it: the statistics, the fd store's state
 * generation, then the device.
 */
static void
save_guest(void)
{
	handover_buf_free(&blob);
	ck_assert_int_eq(handover_begin(&blob, HANDOVER_GUEST), 0);
	handover_put_u64(&blob, saved_stats.bytes);
	handover_put_u64(&blob, saved_stats.requests);
	handover_put_u64(&blob, saved_stats.throttled_ns);
	handover_put_u64(&blob, saved_stats.connects);
	handover_put_u64(&blob, saved_stats.errors);
	handover_put_u64(&blob, saved_stats.health_failures);
	handover_put_u32(&blob, 3);
	vu_dev_save(&src, &blob);
	ck_assert_int_eq(handover_finish(&blob), 0);
}

START_TEST(guest_round_trip)
{
	int fds = unit_count_fds(), maps = unit_count_maps(MEMFD_NAME);
	struct handover_buf again = { 0 };
	struct guest_stats st;

	save_guest();
	open_blob();
	ck_assert_msg(guest_restore(&slot, &cur, &dir, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_int_eq(handover_close(&cur, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(slot.parked);
	guest_stats_read(&slot, &st);
	ck_assert_int_eq(memcmp(&st, &saved_stats, sizeof(st)), 0);
	ck_assert_int_eq(handover_begin(&again, HANDOVER_GUEST), 0);
	guest_save(&slot, &again);
	ck_assert_int_eq(handover_finish(&again), 0);
	ck_assert_uint_eq(again.len, blob.len);
	ck_assert_int_eq(memcmp(again.data, blob.data, blob.len), 0);
	handover_buf_free(&again);
	guest_discard(&slot);
	ck_assert_ptr_null(slot.parked);
	ck_assert_int_eq(unit_count_fds(), fds);
	ck_assert_int_eq(unit_count_maps(MEMFD_NAME), maps);
}
END_TEST

/* guest_restore refuses with a sentence and leaves nothing behind. */
static void
expect_guest_refused(bool malformed, const char *why)
{
	int fds = unit_count_fds(), maps = unit_count_maps(MEMFD_NAME);

	err[0] = '\0';
	ck_assert_int_eq(guest_restore(&slot, &cur, &dir, err, sizeof(err)),
	    -1);
	ck_assert_ptr_null(slot.parked);
	ck_assert_msg(strstr(err, why) != NULL, "\"%s\" not in \"%s\"", why,
	    err);
	ck_assert_int_eq(cur.failed, malformed);
	ck_assert_int_eq(unit_count_fds(), fds);
	ck_assert_int_eq(unit_count_maps(MEMFD_NAME), maps);
}

/* Every length short of the whole, without anyone cleaning up after. */
START_TEST(guest_truncated_at_every_length)
{
	size_t len, n;

	save_guest();
	len = blob.len - HANDOVER_HEADER_SIZE;
	for (n = 0; n < len; n++) {
		memset(&cur, 0, sizeof(cur));
		cur.p = blob.data + HANDOVER_HEADER_SIZE;
		cur.left = n;
		expect_guest_refused(true, "malformed");
	}
}
END_TEST

/* A sound blob whose device the checks refuse, with regions mapped. */
START_TEST(guest_device_refused)
{
	src.vq.num = 7;
	save_guest();
	src.vq.num = QSZ;
	open_blob();
	expect_guest_refused(false, "not a power of two");
	src.vq.desc_uva = UVA1 - 0x100;
	save_guest();
	src.vq.desc_uva = UVA0;
	open_blob();
	expect_guest_refused(false, "does not fit guest memory");
}
END_TEST

/*
 * A sound blob and device, but the thread's set-up fails (a park fd
 * epoll cannot watch): the half-made guest is freed as a whole.
 */
START_TEST(guest_setup_fails)
{
	int park = slot.park_fd;

	ck_assert_int_ge(slot.park_fd = open("/dev/null", O_RDONLY |
	    O_CLOEXEC), 0);
	save_guest();
	open_blob();
	expect_guest_refused(false, "the guest thread cannot be set up");
	close(slot.park_fd);
	slot.park_fd = park;
}
END_TEST

/* --- rate limit ------------------------------------------------------ */

#define RL_MAX		1000
#define RL_MS		100
#define RL_NS		(RL_MS * 1000000ull)

/* rl saved at epoch and period: guest 0 took its whole share. */
static void
save_rl(struct ratelimit *rl, uint64_t epoch, uint64_t period)
{
	unsigned i;

	handover_buf_free(&blob);
	ck_assert_int_eq(handover_begin(&blob, HANDOVER_DAEMON), 0);
	handover_put_u64(&blob, rl->max_bytes);
	handover_put_u64(&blob, rl->period_ns);
	handover_put_u32(&blob, rl->nguests);
	handover_put_u64(&blob, epoch);
	handover_put_u64(&blob, period);
	for (i = 0; i < rl->nguests; i++)
		handover_put_u64(&blob, i == 0 ? rl->max_bytes / 2 : 0);
	ck_assert_int_eq(handover_finish(&blob), 0);
	open_blob_kind(HANDOVER_DAEMON);
}

/* What guest 0 gets now, and when it would be woken if nothing. */
static uint64_t
take_now(struct ratelimit *rl, uint64_t *wake)
{
	*wake = 0;
	return ratelimit_take(rl, 0, RL_MAX, monotonic_ns(), wake);
}

START_TEST(ratelimit_round_trip)
{
	uint64_t now = monotonic_ns(), wake;
	struct ratelimit a, b;

	ck_assert_int_eq(ratelimit_init(&a, RL_MAX, RL_MS, 2, now), 0);
	ck_assert_int_eq(ratelimit_init(&b, RL_MAX, RL_MS, 2, now), 0);
	ck_assert_uint_eq(ratelimit_take(&a, 0, 300, now, NULL), 300);
	handover_buf_free(&blob);
	ck_assert_int_eq(handover_begin(&blob, HANDOVER_DAEMON), 0);
	ratelimit_save(&a, &blob);
	ck_assert_int_eq(handover_finish(&blob), 0);
	open_blob_kind(HANDOVER_DAEMON);
	ck_assert_int_eq(ratelimit_restore(&b, &cur), 0);
	ck_assert_int_eq(handover_close(&cur, err, sizeof(err)), 0);
	ck_assert_uint_eq(b.used[0], 300);
	ck_assert_uint_eq(b.period, a.period);
	/* A guest that took its share waits for the next period. */
	ck_assert_uint_eq(ratelimit_take(&b, 0, 1000, now, &wake), 200);
	ck_assert_uint_eq(ratelimit_take(&b, 0, 1000, now, &wake), 0);
	ck_assert_uint_gt(wake, now);
	ck_assert_uint_le(wake, now + RL_NS);
	ratelimit_destroy(&a);
	ratelimit_destroy(&b);
}
END_TEST

/*
 * A period ahead of the clock (not from a predecessor on this boot) would
 * never roll over: a guest that had taken its share would wait for ever,
 * or, at 2^64 - 1, be woken in the past again and again.  The limit
 * starts afresh instead, as for an epoch ahead of the clock.
 */
START_TEST(ratelimit_period_ahead_starts_afresh)
{
	const uint64_t ahead[] = { 1000000, UINT64_MAX };
	uint64_t now = monotonic_ns(), wake;
	struct ratelimit rl;
	unsigned i;

	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(ratelimit_init(&rl, RL_MAX, RL_MS, 2, now), 0);
		save_rl(&rl, now, ahead[i]);
		ck_assert_int_eq(ratelimit_restore(&rl, &cur), 1);
		ck_assert_int_eq(handover_close(&cur, err, sizeof(err)), 0);
		ck_assert_uint_eq(take_now(&rl, &wake), RL_MAX / 2);
		ratelimit_destroy(&rl);
	}
	/* The epoch ahead: afresh too. */
	ck_assert_int_eq(ratelimit_init(&rl, RL_MAX, RL_MS, 2, now), 0);
	save_rl(&rl, UINT64_MAX, 0);
	ck_assert_int_eq(ratelimit_restore(&rl, &cur), 1);
	ck_assert_uint_eq(take_now(&rl, &wake), RL_MAX / 2);
	ratelimit_destroy(&rl);
	/* The current period on the same epoch: guest 0 has nothing left. */
	ck_assert_int_eq(ratelimit_init(&rl, RL_MAX, RL_MS, 2, now), 0);
	save_rl(&rl, now, 0);
	ck_assert_int_eq(ratelimit_restore(&rl, &cur), 0);
	if (monotonic_ns() - now < RL_NS / 2) {
		ck_assert_uint_eq(take_now(&rl, &wake), 0);
		ck_assert_uint_gt(wake, now);
	}
	ratelimit_destroy(&rl);
}
END_TEST

/* Every length short of the whole fails; so does a count over 2^20. */
START_TEST(ratelimit_malformed)
{
	uint64_t now = monotonic_ns();
	struct ratelimit rl, zero;
	size_t len, n;

	ck_assert_int_eq(ratelimit_init(&rl, RL_MAX, RL_MS, 2, now), 0);
	save_rl(&rl, now, 0);
	len = blob.len - HANDOVER_HEADER_SIZE;
	for (n = 0; n < len; n++) {
		memset(&cur, 0, sizeof(cur));
		cur.p = blob.data + HANDOVER_HEADER_SIZE;
		cur.left = n;
		ck_assert_int_eq(ratelimit_restore(&rl, &cur), -1);
		ck_assert(cur.failed);
	}
	/* What upgrade.c reads a limit into when it has none: all zero. */
	memset(&zero, 0, sizeof(zero));
	save_rl(&zero, 0, 0);
	ck_assert_int_eq(ratelimit_restore(&zero, &cur), 1);
	ck_assert_int_eq(handover_close(&cur, err, sizeof(err)), 0);
	handover_buf_free(&blob);
	ck_assert_int_eq(handover_begin(&blob, HANDOVER_DAEMON), 0);
	handover_put_u64(&blob, RL_MAX);
	handover_put_u64(&blob, RL_NS);
	handover_put_u32(&blob, (1u << 20) + 1);
	ck_assert_int_eq(handover_finish(&blob), 0);
	open_blob_kind(HANDOVER_DAEMON);
	ck_assert_int_eq(ratelimit_restore(&rl, &cur), -1);
	ck_assert_int_eq(handover_close(&cur, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "a count is out of range"));
	ratelimit_destroy(&rl);
}
END_TEST

Suite *
restore_suite(void)
{
	Suite *s = suite_create("restore");

	add_cases(s, UNIT_TIMEOUT, setup, teardown,
	    "device", TESTS(device_round_trip,
		device_truncated_at_every_length, device_features_not_offered,
		device_ring_size_not_power_of_two, device_ring_outside_memory,
		device_ring_before_table, device_region_fd_missing,
		device_region_larger_than_file, device_510_regions,
		device_fd_missing_or_wrong_kind),
	    NULL);
	add_cases(s, UNIT_TIMEOUT, guest_setup, guest_teardown,
	    "guest", TESTS(guest_round_trip, guest_truncated_at_every_length,
		guest_device_refused, guest_setup_fails),
	    NULL);
	add_cases(s, UNIT_TIMEOUT, NULL, blob_teardown,
	    "ratelimit", TESTS(ratelimit_round_trip,
		ratelimit_period_ahead_starts_afresh, ratelimit_malformed),
	    NULL);
	return s;
}
