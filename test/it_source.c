/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Integration: the entropy source (-f).  A regular file is delivered
 * byte for byte, in order, once for all guests together, and then runs
 * dry (requests wait, one log line).  A FIFO delivers what its writers
 * write, and waiting on it never holds up the control channel nor spins.
 * Nor does a device that polls readable but has nothing (/dev/hwrng).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "it.h"

static void
write_file(const char *path, const uint8_t *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* Starts a daemon on a source file in its directory. */
static void
start_with_file(struct vd *vd, unsigned nsock, const uint8_t *data,
    size_t len, char *path, size_t pathlen)
{

	IT_OK(vd_init(vd));
	vd_path(vd, "entropy.bin", path, pathlen);
	write_file(path, data, len);
	IT_OK(vd_spawn_source(vd, nsock, path, NULL));
}

START_TEST(file_source_delivers_file_in_order)
{
	enum { SIZE = 100000, LEN = 4096, BUFS = 32 };
	static uint8_t file[SIZE], got[SIZE];
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	char path[256];
	uint64_t area, last_gpa = 0;
	size_t off = 0;
	unsigned k, completions = 0;

	fe_fill_prng(file, SIZE, 0x1234);
	start_with_file(&vd, 1, file, SIZE, path, sizeof(path));
	fe_cfg_init(&cfg);
	cfg.qsize = BUFS;
	IT_OPEN(&fe, &vd, 0, &cfg);
	/* 32 x 4 KiB = 128 KiB of buffers for 100000 bytes. */
	area = fe_alloc(&fe, (uint64_t)BUFS * LEN, 4096);
	/* A fresh ring hands out descriptors 0, 1, ...: slot k is head k. */
	for (k = 0; k < BUFS; k++)
		ck_assert_int_eq(fe_post1(&fe, area + (uint64_t)k * LEN, LEN),
		    (int)k);
	fe_kick(&fe);
	/* 24 full buffers and one of 100000 - 24 * 4096 = 1696 bytes. */
	ck_assert_uint_eq(fe_wait_used(&fe, 25, 3000), 25);
	while (fe_get_used(&fe, &u)) {
		uint64_t gpa = area + (uint64_t)u.id * LEN;

		ck_assert_uint_ge(u.len, 1);
		ck_assert_uint_le(off + u.len, SIZE);
		IT_OK(fe_read_mem(&fe, gpa, got + off, u.len));
		off += u.len;
		last_gpa = gpa;
		completions++;
	}
	ck_assert_uint_eq(completions, 25);
	ck_assert_uint_eq(off, SIZE);
	ck_assert(memcmp(got, file, SIZE) == 0);
	/* The short last completion wrote nothing past its used.len. */
	ck_assert_uint_eq(fe_canary_count(&fe, last_gpa + 1696, LEN - 1696),
	    LEN - 1696);
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 200), 0);
	IT_END(&vd, &fe);
}
END_TEST

static int
cmp_u64(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return *x < *y ? -1 : *x > *y;
}

/*
 * Two guests on one file: each byte goes to exactly one of them.  First
 * strictly alternating (so the split is known), then both flat out at
 * once; every piece received must be a piece of the file, and the pieces
 * must tile the file without overlap or gap.
 */
START_TEST(file_source_two_guests_share_it_once)
{
	enum { SIZE = 256 * 1024, LEN = 4096, Q = 64, MAXP = 2 * SIZE / LEN };
	static uint8_t file[SIZE];
	static uint64_t piece_off[MAXP], piece_len[MAXP];
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe[2];
	char path[256];
	uint64_t area[2], total = 0, got[2] = { 0, 0 };
	uint64_t slot_of[2][Q];
	unsigned npieces = 0, i, k;
	int64_t deadline;

	fe_fill_prng(file, SIZE, 0xfeed);
	start_with_file(&vd, 2, file, SIZE, path, sizeof(path));
	fe_cfg_init(&cfg);
	cfg.qsize = Q;
	for (i = 0; i < 2; i++) {
		IT_OPEN(&fe[i], &vd, i, &cfg);
		area[i] = fe_alloc(&fe[i], (uint64_t)Q * LEN, 4096);
	}

	/* Phase 1: turns.  Guest i gets piece 2k+i of the file. */
	for (k = 0; k < 8; k++)
		for (i = 0; i < 2; i++) {
			uint8_t *p = fe_host(&fe[i], area[i]);

			ck_assert(fe_post1(&fe[i], area[i], LEN) >= 0);
			fe_kick(&fe[i]);
			ck_assert_uint_eq(fe_wait_used(&fe[i], 1, 3000), 1);
			ck_assert(fe_get_used(&fe[i], &u));
			ck_assert_uint_eq(u.len, LEN);
			ck_assert(memcmp(p, file + total, LEN) == 0);
			piece_off[npieces] = total;
			piece_len[npieces++] = LEN;
			total += LEN;
			got[i] += LEN;
		}

	/* Phase 2: both rings full, kicked together, until the file ends. */
	for (i = 0; i < 2; i++) {
		for (k = 0; k < Q; k++) {
			uint64_t gpa = area[i] + (uint64_t)k * LEN;
			int head = fe_post1(&fe[i], gpa, LEN);

			ck_assert_int_ge(head, 0);
			slot_of[i][head] = gpa;
		}
	}
	fe_kick(&fe[0]);
	fe_kick(&fe[1]);
	deadline = fe_now_ms() + 5000;
	while (total < SIZE && fe_now_ms() < deadline) {
		for (i = 0; i < 2; i++) {
			fe_wait_used(&fe[i], 1, 5);
			while (fe_get_used(&fe[i], &u)) {
				const uint8_t *p, *at;

				ck_assert_uint_lt(u.id, Q);
				p = fe_host(&fe[i], slot_of[i][u.id]);
				ck_assert_uint_ge(u.len, 1);
				ck_assert_uint_lt(npieces, MAXP);
				at = memmem(file, SIZE, p, u.len);
				ck_assert_msg(at != NULL, "guest %u got %u bytes "
				    "that are not in the file", i, u.len);
				piece_off[npieces] = (uint64_t)(at - file);
				piece_len[npieces++] = u.len;
				total += u.len;
				got[i] += u.len;
			}
		}
	}
	ck_assert_msg(total == SIZE, "%llu of %u bytes arrived",
	    (unsigned long long)total, SIZE);
	/* Tiling: sort by offset (lengths are 4096 but the last ones). */
	for (i = 0; i < npieces; i++)
		piece_off[i] = piece_off[i] << 20 | piece_len[i];
	qsort(piece_off, npieces, sizeof(piece_off[0]), cmp_u64);
	for (i = 0, total = 0; i < npieces; i++) {
		uint64_t off = piece_off[i] >> 20, len = piece_off[i] & 0xfffff;

		ck_assert_msg(off == total, "piece %u at %llu, expected %llu "
		    "(overlap or gap)", i, (unsigned long long)off,
		    (unsigned long long)total);
		total += len;
	}
	ck_assert_uint_eq(total, SIZE);
	ck_assert_uint_ge(got[0], 8 * LEN);
	ck_assert_uint_ge(got[1], 8 * LEN);
	/* Nothing more: the file is used up for both, said once. */
	ck_assert_uint_eq(fe_wait_used(&fe[0], 1, 100), 0);
	ck_assert_uint_eq(fe_wait_used(&fe[1], 1, 100), 0);
	ck_assert_int_eq(vd_log_count(&vd, "used up"), 1);
	fe_close(&fe[0]);
	IT_END(&vd, &fe[1]);
}
END_TEST

/*
 * Used up: the request that finds the end waits (it is not completed with
 * 0 bytes, nor consumed), the daemon says so once however often the guest
 * kicks, and keeps answering.
 */
START_TEST(file_source_used_up_waits_and_logs_once)
{
	enum { SIZE = 1000 };
	uint8_t file[SIZE];
	struct fe_used_elem u;
	struct vd vd;
	struct fe fe;
	char path[256];
	uint64_t a, b;
	uint32_t base;
	int i;

	fe_fill_prng(file, SIZE, 77);
	start_with_file(&vd, 1, file, SIZE, path, sizeof(path));
	IT_OPEN(&fe, &vd, 0, NULL);
	a = fe_alloc(&fe, 4096, 64);
	b = fe_alloc(&fe, 4096, 64);
	ck_assert(fe_post1(&fe, a, 4096) >= 0);
	ck_assert(fe_post1(&fe, b, 4096) >= 0);
	fe_kick(&fe);
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 3000), 1);
	ck_assert(fe_get_used(&fe, &u));
	ck_assert_uint_eq(u.len, SIZE);
	ck_assert(memcmp(fe_host(&fe, a), file, SIZE) == 0);
	ck_assert_msg(vd_log_wait(&vd, "used up", 1, 2000), "%s",
	    vd_log_text(&vd));

	for (i = 0; i < 5; i++) {
		fe_kick(&fe);
		IT_OK(fe_sync(&fe));
	}
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 300), 0);
	ck_assert_int_eq(vd_log_count(&vd, "used up"), 1);
	ck_assert_uint_eq(fe_canary_count(&fe, b, 4096), 4096);
	/* The waiting request was not consumed. */
	IT_OK(fe_ring_stop(&fe, &base));
	ck_assert_uint_eq(base, 1);
	IT_END(&vd, &fe);
}
END_TEST

/* Waits for a completion of exactly want bytes; checks them. */
static void
expect_bytes(struct fe *fe, struct vd *vd, uint64_t gpa, const void *want,
    uint32_t len)
{
	struct fe_used_elem u;

	ck_assert_msg(fe_wait_used(fe, 1, 3000) == 1, "no completion%s",
	    vd_log_text(vd));
	ck_assert(fe_get_used(fe, &u));
	ck_assert_uint_eq(u.len, len);
	ck_assert(memcmp(fe_host(fe, gpa), want, len) == 0);
}

/*
 * GET_FEATURES is answered promptly.  (A daemon blocked in a read of the
 * FIFO would not answer at all; the margin is for a busy machine.)
 */
static void
control_prompt(struct fe *fe)
{
	int64_t t0 = fe_now_ms();

	IT_OK(fe_sync(fe));
	ck_assert_int_lt(fe_now_ms() - t0, 250);
}

/* The daemon used less than a tenth of a CPU over the next 500 ms. */
static void
not_spinning(struct vd *vd)
{
	struct vd_cost c = vd_cost_over(vd, 500);

	ck_assert_int_ge(c.cpu0, 0);
	ck_assert_msg(c.cpu_ms < 50, "the daemon used %lld ms of CPU in 500 ms "
	    "waiting for the FIFO", (long long)c.cpu_ms);
}

/*
 * A 4 KiB buffer posted and kicked waits for the FIFO: nothing used
 * within ms, the control channel answers promptly, the daemon does not
 * spin.  Returns the buffer's gpa.
 */
static uint64_t
waits_for_fifo(struct fe *fe, struct vd *vd, int ms)
{
	uint64_t gpa = fe_alloc(fe, 4096, 64);

	ck_assert(fe_post1(fe, gpa, 4096) >= 0);
	fe_kick(fe);
	ck_assert_uint_eq(fe_wait_used(fe, 1, ms), 0);
	control_prompt(fe);
	not_spinning(vd);
	return gpa;
}

START_TEST(fifo_source_delivers_writes_and_never_blocks_control)
{
	static const char hello[] = "the first writer's 40 bytes of entropy";
	static const char again[] = "a second writer, after the first left";
	uint8_t big[5000], got[5000];
	struct fe_used_elem u;
	struct vd vd;
	struct fe fe;
	char path[256];
	uint64_t a, b[2], c;
	size_t off;
	int w, h0;

	IT_OK(vd_init(&vd));
	vd_path(&vd, "entropy.fifo", path, sizeof(path));
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	IT_OK(vd_spawn_source(&vd, 1, path, NULL));
	IT_OPEN(&fe, &vd, 0, NULL);

	/* No writer yet: the request waits, control is prompt, no spin. */
	a = waits_for_fifo(&fe, &vd, 200);

	/* A writer without data changes nothing. */
	w = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(w, 0);
	ck_assert_uint_eq(fe_wait_used(&fe, 1, 200), 0);
	control_prompt(&fe);

	ck_assert_int_eq(write(w, hello, sizeof(hello)), sizeof(hello));
	expect_bytes(&fe, &vd, a, hello, sizeof(hello));

	/* 5000 bytes into two 4 KiB buffers: all of it, in order. */
	fe_fill_prng(big, sizeof(big), 5);
	ck_assert_int_eq(write(w, big, sizeof(big)), sizeof(big));
	b[0] = fe_alloc(&fe, 4096, 64);
	b[1] = fe_alloc(&fe, 4096, 64);
	h0 = fe_post1(&fe, b[0], 4096);
	ck_assert_int_ge(h0, 0);
	ck_assert(fe_post1(&fe, b[1], 4096) >= 0);
	fe_kick(&fe);
	for (off = 0; off < sizeof(big);) {
		ck_assert_msg(fe_wait_used(&fe, 1, 3000) >= 1, "%zu bytes",
		    off);
		ck_assert(fe_get_used(&fe, &u));
		ck_assert_uint_le(off + u.len, sizeof(big));
		memcpy(got + off, fe_host(&fe, b[u.id == (unsigned)h0 ? 0 : 1]), u.len);
		off += u.len;
	}
	ck_assert(memcmp(got, big, sizeof(big)) == 0);

	/* The writer leaves: wait again, promptly answering, no spin. */
	close(w);
	c = waits_for_fifo(&fe, &vd, 300);

	/* A new writer comes: its data arrives. */
	w = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(w, 0);
	ck_assert_int_eq(write(w, again, sizeof(again)), sizeof(again));
	expect_bytes(&fe, &vd, c, again, sizeof(again));
	close(w);
	IT_END(&vd, &fe);
}
END_TEST

/*
 * Three guests on a slow FIFO, each keeping its ring full: the source, not
 * the budget, is the bottleneck, and every waiting guest gets its turn
 * (entropy.h, turns).  128 KiB written 1 KiB a millisecond; each guest
 * must get at least a quarter of it (a third is fair).
 */
START_TEST(fifo_source_shared_fairly_by_three_guests)
{
	enum { G = 3, Q = 64, LEN = 512, CHUNK = 1024, TOTAL = 128 * 1024 };
	static uint8_t chunk[CHUNK];
	uint64_t got[G] = { 0 }, area[G], sum = 0;
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct fe fe[G];
	struct vd vd;
	char path[256];
	size_t written = 0;
	int64_t end;
	unsigned g, k;
	int w;

	IT_OK(vd_init(&vd));
	vd_path(&vd, "entropy.fifo", path, sizeof(path));
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	IT_OK(vd_spawn_source(&vd, G, path, NULL));
	fe_cfg_init(&cfg);
	cfg.qsize = Q;
	for (g = 0; g < G; g++) {
		IT_OPEN(&fe[g], &vd, g, &cfg);
		area[g] = fe_alloc(&fe[g], (uint64_t)Q * LEN, 64);
		for (k = 0; k < Q; k++)
			ck_assert(fe_post1(&fe[g], area[g] + (uint64_t)k * LEN,
			    LEN) >= 0);
		fe_kick(&fe[g]);
	}
	w = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(w, 0);
	fe_fill_prng(chunk, sizeof(chunk), 7);
	end = fe_now_ms() + 20000;
	while (sum < TOTAL && fe_now_ms() < end) {
		if (written < TOTAL && write(w, chunk, CHUNK) == CHUNK)
			written += CHUNK;
		fe_sleep_ms(1);
		for (g = 0; g < G; g++) {
			bool posted = false;

			while (fe_get_used(&fe[g], &u)) {
				ck_assert_uint_ge(u.len, 1);
				got[g] += u.len;
				sum += u.len;
				ck_assert(fe_post1(&fe[g], area[g] +
				    (uint64_t)(u.id % Q) * LEN, LEN) >= 0);
				posted = true;
			}
			if (posted)
				fe_kick(&fe[g]);
		}
	}
	close(w);
	ck_assert_msg(sum == TOTAL, "%llu of %d bytes arrived%s",
	    (unsigned long long)sum, TOTAL, vd_log_text(&vd));
	for (g = 0; g < G; g++)
		ck_assert_msg(got[g] >= TOTAL / 4, "guest %u got %llu of %d "
		    "bytes (%llu, %llu, %llu)", g, (unsigned long long)got[g],
		    TOTAL, (unsigned long long)got[0],
		    (unsigned long long)got[1], (unsigned long long)got[2]);
	fprintf(stderr, "fifo fairness: guests got %llu, %llu, %llu of %d "
	    "bytes\n", (unsigned long long)got[0], (unsigned long long)got[1],
	    (unsigned long long)got[2], TOTAL);
	for (g = 0; g < G; g++)
		fe_close(&fe[g]);
	IT_STOP(&vd);
	vd_cleanup(&vd);
}
END_TEST

/*
 * Whether path is a device that polls readable but says EAGAIN under
 * O_NONBLOCK when it has nothing, as hw_random's /dev/hwrng does (it has
 * no poll method).  If not, why in why.
 */
static bool
polls_readable_says_eagain(const char *path, char *why, size_t len)
{
	struct pollfd p;
	uint8_t buf[64];
	bool seen = false;
	int fd, i;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len, "%s: %s", path, strerror(errno));
		return false;
	}
	p.fd = fd;
	p.events = POLLIN;
	for (i = 0; i < 1000 && !seen; i++)
		seen = poll(&p, 1, 0) == 1 && (p.revents & POLLIN) &&
		    read(fd, buf, sizeof(buf)) < 0 && errno == EAGAIN;
	close(fd);
	if (!seen)
		snprintf(why, len, "%s never said EAGAIN while polling "
		    "readable", path);
	return seen;
}

/*
 * A device source that polls readable but says EAGAIN (/dev/hwrng): the
 * daemon retries it with a backoff instead of spinning on poll and read,
 * serves what the device delivers and answers the control channel.  Needs
 * such a /dev/hwrng (a virtio-rng guest has one, as root); elsewhere the
 * test says why it did nothing.
 */
START_TEST(chardev_source_saying_eagain_does_not_spin)
{
	enum { N = 8, LEN = 4096 };
	struct fe_used_elem u;
	struct fe_cfg cfg;
	struct vd vd;
	struct fe fe;
	char why[300];
	uint64_t area;
	int64_t c0, t0, cpu, wall;
	unsigned done = 0, i;

	if (!polls_readable_says_eagain("/dev/hwrng", why, sizeof(why))) {
		printf("chardev_source_saying_eagain_does_not_spin: not run: "
		    "%s\n", why);
		return;
	}
	fe_cfg_init(&cfg);
	cfg.qsize = 16;
	IT_ONE_GUEST(&vd, &fe, &cfg, "-f", "/dev/hwrng", NULL);
	area = fe_alloc(&fe, (uint64_t)N * LEN, 16);
	for (i = 0; i < N; i++)
		ck_assert(fe_post1(&fe, area + (uint64_t)LEN * i, LEN) >= 0);
	fe_kick(&fe);
	c0 = vd_cpu_ms(&vd);
	ck_assert_int_ge(c0, 0);
	t0 = fe_now_ms();
	while (fe_now_ms() - t0 < 1000) {
		while (fe_get_used(&fe, &u)) {
			ck_assert_uint_ge(u.len, 1);
			ck_assert_uint_le(u.len, LEN);
			ck_assert(fe_post1(&fe, area + (uint64_t)LEN *
			    (done++ % N), LEN) >= 0);
			fe_kick(&fe);
		}
		fe_sleep_ms(5);
	}
	cpu = vd_cpu_ms(&vd) - c0;
	wall = fe_now_ms() - t0;
	ck_assert_msg(cpu < 200, "the daemon used %lld ms of CPU in %lld ms "
	    "reading a device that says EAGAIN%s", (long long)cpu,
	    (long long)wall, vd_log_text(&vd));
	t0 = fe_now_ms();
	IT_OK(fe_sync(&fe));
	ck_assert_int_lt(fe_now_ms() - t0, 500);
	/* What the device has comes through (slowly). */
	if (done == 0)
		ck_assert_msg(fe_wait_used(&fe, 1, 5000) >= 1, "nothing from "
		    "/dev/hwrng in 6 s%s", vd_log_text(&vd));
	IT_END(&vd, &fe);
}
END_TEST

SUITE(it_source, IT_TIMEOUT, NULL, NULL,
    "file", TESTS(file_source_delivers_file_in_order,
	file_source_two_guests_share_it_once,
	file_source_used_up_waits_and_logs_once),
    "fifo", TESTS(fifo_source_delivers_writes_and_never_blocks_control,
	fifo_source_shared_fairly_by_three_guests),
    "device", TESTS(chardev_source_saying_eagain_does_not_spin))
