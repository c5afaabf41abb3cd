/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Live upgrade (upgrade.h): parking the guests, writing the daemon's
 * state with its descriptor directory, the execve, and on the other side
 * reading it all back.  Owns the handover of the daemon as a whole; each
 * guest's part is guest.c's and vu_dev.c's.
 *
 * The daemon blob (handover.h, kind HANDOVER_DAEMON), in this order:
 *	directory	u32 n; n x { name, u32 fd number }
 *	parked_at	u64 CLOCK_MONOTONIC ns when parking began
 *	filter		u32 sandbox_fingerprint() of the filter in force
 *			(0: none)
 *	slots		u32 socket count, bool one_shot
 *	source		name, str path
 *	listeners	u32 n (0 or the socket count);
 *			n x { name, bool created, u64 dev, u64 ino, str path }
 *	exe		name of the running image's fd
 *	rate limit	bool present; ratelimit_save()
 *	guests		u32 n;
 *			n x { u32 slot, u32 length, guest_save() }
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "upgrade.h"

extern char **environ;

#define NAME_EXE	"vrng.exe"
#define NAME_SOURCE	"vrng.source"

void
upgrade_init(struct upgrade *u, char **argv)
{
	ssize_t n;

	u->argv = argv;
	u->blob_fd = -1;
	n = readlink("/proc/self/exe", u->exe_path, sizeof(u->exe_path) - 1);
	u->exe_path[n > 0 ? n : 0] = '\0';
	/*
	 * The running image, kept for the fallback: if a successor refuses
	 * our state, it execs this very file, even after a package upgrade
	 * replaced the path.
	 */
	u->self_exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
}

/* ---- the old image ------------------------------------------------- */

/* Asks every busy guest to park and waits; false if one did not. */
static bool
park_all(struct upgrade *u)
{
	unsigned i, left;
	bool *was;

	/* Who was connected: one that ended meanwhile gets its log line. */
	if ((was = calloc(u->nslots + 1, sizeof(*was))) == NULL)
		return false;
	for (i = 0; i < u->nslots; i++)
		was[i] = u->slots[i].busy;
	left = guests_end(u->slots, u->nslots, GUEST_PARK,
	    UPGRADE_PARK_WAIT_MS);
	for (i = 0; i < u->nslots; i++) {
		if (u->slots[i].busy)
			log_warnx("live upgrade: guest %u does not park", i);
		else if (was[i] && u->slots[i].parked == NULL)
			log_info("guest %u: connection closed, socket free", i);
	}
	free(was);
	return left == 0;
}

/* Starts the threads of every parked guest again. */
static void
resume_all(struct upgrade *u)
{
	unsigned i;

	for (i = 0; i < u->nslots; i++) {
		if (u->slots[i].parked == NULL)
			continue;
		if (guest_resume(&u->slots[i]) < 0) {
			log_warn("guest %u: cannot resume; closing it", i);
			guest_discard(&u->slots[i]);
		}
	}
}

/* Directory entries are collected here before they are written. */
static int
collect(const char *name, int fd, uint32_t gen, void *arg)
{
	struct handover_fds *dir = arg;
	unsigned i;

	(void)gen;	/* one image to the next: the fds themselves */
	/* Regions of one file share a name: one fd serves them all. */
	for (i = 0; i < dir->n; i++)
		if (strcmp(dir->v[i].name, name) == 0)
			return 0;
	return handover_fds_add(dir, name, fd);
}

static int
build_directory(struct upgrade *u, struct handover_fds *dir)
{
	char name[HANDOVER_NAME_MAX];
	unsigned i;

	if (!u->one_shot)
		for (i = 0; i < u->nslots; i++) {
			snprintf(name, sizeof(name), "vrng.listen.%u", i);
			if (collect(name, u->listeners[i].fd, 0, dir) < 0)
				return -1;
		}
	if (collect(NAME_SOURCE, entropy_fd(u->source), 0, dir) < 0 ||
	    collect(NAME_EXE, u->self_exe_fd, 0, dir) < 0)
		return -1;
	for (i = 0; i < u->nslots; i++)
		if (u->slots[i].parked != NULL &&
		    guest_each_fd(&u->slots[i], collect, dir) != 0)
			return -1;
	return 0;
}

static void
write_blob(struct upgrade *u, struct handover_buf *b,
    const struct handover_fds *dir, uint64_t parked_at)
{
	unsigned i, n = 0;

	handover_put_u32(b, dir->n);
	for (i = 0; i < dir->n; i++) {
		handover_put_name(b, dir->v[i].name);
		handover_put_u32(b, (uint32_t)dir->v[i].fd);
	}
	handover_put_u64(b, parked_at);
	handover_put_u32(b, u->filter_fp);
	handover_put_u32(b, u->nslots);
	handover_put_u8(b, u->one_shot);
	handover_put_name(b, NAME_SOURCE);
	handover_put_str(b, u->source->path);
	handover_put_u32(b, u->one_shot ? 0 : u->nslots);
	for (i = 0; !u->one_shot && i < u->nslots; i++) {
		const struct listener *l = &u->listeners[i];
		char name[HANDOVER_NAME_MAX];

		snprintf(name, sizeof(name), "vrng.listen.%u", i);
		handover_put_name(b, name);
		handover_put_u8(b, l->created);
		handover_put_u64(b, (uint64_t)l->dev);
		handover_put_u64(b, (uint64_t)l->ino);
		handover_put_str(b, l->path);
	}
	handover_put_name(b, u->self_exe_fd >= 0 ? NAME_EXE : "");
	handover_put_u8(b, u->rl != NULL);
	if (u->rl != NULL)
		ratelimit_save(u->rl, b);
	for (i = 0; i < u->nslots; i++)
		n += u->slots[i].parked != NULL;
	handover_put_u32(b, n);
	for (i = 0; i < u->nslots; i++) {
		if (u->slots[i].parked == NULL)
			continue;
		size_t mark;

		handover_put_u32(b, i);
		mark = handover_nest_begin(b);
		guest_save(&u->slots[i], b);
		handover_nest_end(b, mark);
	}
}

static void
set_cloexec(const struct handover_fds *dir, int blob_fd, bool on)
{
	unsigned i;

	for (i = 0; i < dir->n; i++)
		if (fcntl(dir->v[i].fd, F_SETFD, on ? FD_CLOEXEC : 0) < 0)
			log_warn("fd %d (%s)", dir->v[i].fd, dir->v[i].name);
	if (blob_fd >= 0 && fcntl(blob_fd, F_SETFD, on ? FD_CLOEXEC : 0) < 0)
		log_warn("state memfd");
}

/* The new binary, opened and checked; -1 (logged) if it will not do. */
static int
open_new_binary(const struct upgrade *u)
{
	struct stat st;
	int fd;

	if (u->exe_path[0] == '\0') {
		log_warnx("live upgrade: the binary's path is unknown");
		return -1;
	}
	if ((fd = open(u->exe_path, O_RDONLY | O_CLOEXEC)) < 0) {
		log_warn("live upgrade: %s", u->exe_path);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (st.st_mode & 0111) == 0) {
		log_warnx("live upgrade: %s is not an executable file",
		    u->exe_path);
		close(fd);
		return -1;
	}
	return fd;
}

void
upgrade_run(struct upgrade *u)
{
	struct handover_fds dir = { 0 };
	struct handover_buf b;
	uint64_t t0 = monotonic_ns();
	char num[16], exe_num[16];
	int exe_fd, blob_fd = -1;
	unsigned i, n = 0;

	log_info("live upgrade: SIGUSR2; checking %s", u->exe_path);
	if ((exe_fd = open_new_binary(u)) < 0) {
		log_warnx("live upgrade: abandoned; serving on");
		return;
	}
	if (!park_all(u)) {
		log_warnx("live upgrade: abandoned; serving on");
		resume_all(u);
		close(exe_fd);
		return;
	}
	for (i = 0; i < u->nslots; i++)
		n += u->slots[i].parked != NULL;
	if (build_directory(u, &dir) < 0 ||
	    handover_begin(&b, HANDOVER_DAEMON) < 0) {
		log_warnx("live upgrade: out of memory; serving on");
		goto resume;
	}
	write_blob(u, &b, &dir, t0);
	if (handover_finish(&b) < 0 || (blob_fd = handover_memfd(&b,
	    "vhost-device-rng-state")) < 0) {
		log_warn("live upgrade: writing the state");
		handover_buf_free(&b);
		goto resume;
	}
	log_info("live upgrade: %u guest(s) parked, %zu bytes of state, %u "
	    "descriptors, after %.1f ms; executing %s", n, b.len, dir.n,
	    (double)(monotonic_ns() - t0) / 1e6, u->exe_path);
	handover_buf_free(&b);
	snprintf(num, sizeof(num), "%d", blob_fd);
	set_cloexec(&dir, blob_fd, false);
	snprintf(exe_num, sizeof(exe_num), "%d", u->self_exe_fd);
	if (setenv(UPGRADE_ENV, num, 1) == 0 && (u->self_exe_fd < 0 ||
	    setenv(UPGRADE_ENV_EXE, exe_num, 1) == 0))
		execveat(exe_fd, "", u->argv, environ, AT_EMPTY_PATH);
	log_warn("live upgrade: execve %s", u->exe_path);
	unsetenv(UPGRADE_ENV);
	unsetenv(UPGRADE_ENV_EXE);
	set_cloexec(&dir, blob_fd, true);
	close(blob_fd);
resume:
	/* The directory does not own its fds here: do not release it. */
	free(dir.v);
	close(exe_fd);
	resume_all(u);
	log_warnx("live upgrade: abandoned; serving on");
}

/* ---- the new image ------------------------------------------------- */

/*
 * The state is refused: back to the image that wrote it, which reads it
 * (once: a fallback that refuses too ends here), or exit.
 */
static void __attribute__((noreturn))
refuse(struct upgrade *u, const char *why)
{
	const char *exe_s = getenv(UPGRADE_ENV_EXE);
	char *end;
	long exe = -1;

	log_warnx("live upgrade: %s", why);
	if (exe_s != NULL) {
		errno = 0;
		exe = strtol(exe_s, &end, 10);
		if (errno != 0 || *end != '\0' || exe < 3 || exe > INT_MAX)
			exe = -1;
	}
	if (exe >= 0 && getenv(UPGRADE_ENV_FALLBACK) == NULL) {
		char num[16];
		unsigned i;

		log_warnx("live upgrade: going back to the previous binary "
		    "with the same state");
		/* Everything as it came: the fds without close-on-exec. */
		for (i = 0; i < u->fds.n; i++)
			(void)fcntl(u->fds.v[i].fd, F_SETFD, 0);
		(void)fcntl(u->blob_fd, F_SETFD, 0);
		(void)fcntl((int)exe, F_SETFD, 0);
		snprintf(num, sizeof(num), "%d", u->blob_fd);
		if (setenv(UPGRADE_ENV, num, 1) == 0 &&
		    setenv(UPGRADE_ENV_FALLBACK, "1", 1) == 0)
			execveat((int)exe, "", u->argv, environ,
			    AT_EMPTY_PATH);
		log_warn("live upgrade: execve of the previous binary");
	}
	fatalx("live upgrade: the guests' connections are lost");
}

static void
read_blob(struct upgrade *u)
{
	if ((u->blob = handover_read_fd(u->blob_fd, &u->blob_len)) == NULL)
		refuse(u, "the state cannot be read (not a file of 1 byte to "
		    "64 MiB?)");
}

/* The directory: names and fd numbers that must be open now. */
static void
read_directory(struct upgrade *u)
{
	char name[HANDOVER_NAME_MAX];
	uint32_t i, n, fd;

	n = handover_get_count(&u->cur, 65536);
	for (i = 0; i < n && !u->cur.failed; i++) {
		handover_get_name(&u->cur, name);
		fd = handover_get_u32(&u->cur);
		if (u->cur.failed)
			break;
		/* Not stdin, stdout or stderr: resume closes them all. */
		if (fd < 3 || fd > INT_MAX || (int)fd == u->blob_fd ||
		    fcntl((int)fd, F_GETFD) < 0) {
			handover_fail(&u->cur, "it names a descriptor that is "
			    "not open");
			break;
		}
		if (handover_fds_add(&u->fds, name, (int)fd) < 0)
			refuse(u, "no memory for the descriptor directory");
	}
}

static void
check_cursor(struct upgrade *u)
{
	char err[256];

	if (u->cur.failed && handover_close(&u->cur, err, sizeof(err)) < 0)
		refuse(u, err);
}

void
upgrade_load(struct upgrade *u, unsigned *nslots)
{
	const char *s = getenv(UPGRADE_ENV);
	char err[512];
	char *end;
	long fd;

	if (s == NULL)
		return;
	errno = 0;
	fd = strtol(s, &end, 10);
	unsetenv(UPGRADE_ENV);
	if (errno != 0 || *end != '\0' || fd < 3 || fd > INT_MAX ||
	    fcntl((int)fd, F_GETFD) < 0)
		fatalx("%s=%s: not an open descriptor", UPGRADE_ENV, s);
	u->restoring = true;
	u->blob_fd = (int)fd;
	read_blob(u);
	if (handover_open(&u->cur, u->blob, u->blob_len, HANDOVER_DAEMON, err,
	    sizeof(err)) < 0)
		refuse(u, err);
	read_directory(u);
	u->parked_at_ns = handover_get_u64(&u->cur);
	u->inherited_fp = handover_get_u32(&u->cur);
	*nslots = handover_get_count(&u->cur, 1u << 20);
	u->one_shot = handover_get_bool(&u->cur);
	check_cursor(u);
}

void
upgrade_listeners(struct upgrade *u, struct listener *ls, unsigned nslots)
{
	char name[HANDOVER_NAME_MAX], path[sizeof(ls->path)], err[512];
	uint64_t dev, ino;
	uint32_t i, n;
	bool created;
	int fd;

	n = handover_get_count(&u->cur, nslots);
	if (n != 0 && n != nslots)
		handover_fail(&u->cur, "its listener count is not its socket "
		    "count");
	for (i = 0; i < n && !u->cur.failed; i++) {
		handover_get_name(&u->cur, name);
		created = handover_get_bool(&u->cur);
		dev = handover_get_u64(&u->cur);
		ino = handover_get_u64(&u->cur);
		handover_get_str(&u->cur, path, sizeof(path));
		check_cursor(u);
		if ((fd = handover_fds_dup(&u->fds, name)) < 0)
			refuse(u, "a listening socket is missing");
		if (listener_adopt(&ls[i], fd, path, created, (dev_t)dev,
		    (ino_t)ino, err, sizeof(err)) < 0)
			refuse(u, err);
	}
	check_cursor(u);
}

void
upgrade_source(struct upgrade *u, struct entropy *src, const char *path)
{
	char name[HANDOVER_NAME_MAX], was[sizeof(src->path)], err[512];
	int fd;

	handover_get_name(&u->cur, name);
	handover_get_str(&u->cur, was, sizeof(was));
	check_cursor(u);
	/* --filename changed with the upgrade: open the new one. */
	if (strcmp(was, path) != 0 || (fd = handover_fds_dup(&u->fds,
	    name)) < 0) {
		log_info("live upgrade: opening the source %s again", path);
		if (entropy_open(src, path, err, sizeof(err)) < 0)
			refuse(u, err);
		return;
	}
	if (entropy_adopt(src, path, fd, err, sizeof(err)) < 0)
		refuse(u, err);
}

void
upgrade_guests(struct upgrade *u)
{
	char exe[HANDOVER_NAME_MAX], err[512];
	struct handover_cursor rec;
	uint32_t i, n, slot;
	bool rl;

	handover_get_name(&u->cur, exe);
	rl = handover_get_bool(&u->cur);
	check_cursor(u);
	if (rl && u->rl != NULL) {
		if (ratelimit_restore(u->rl, &u->cur) == 1)
			log_info("live upgrade: the rate limit changed; its "
			    "periods start afresh");
	} else if (rl) {
		/* Read past it: no limit any more. */
		struct ratelimit dummy;

		memset(&dummy, 0, sizeof(dummy));
		(void)ratelimit_restore(&dummy, &u->cur);
	}
	check_cursor(u);
	n = handover_get_count(&u->cur, u->nslots);
	for (i = 0; i < n; i++) {
		slot = handover_get_u32(&u->cur);
		if (!u->cur.failed && (slot >= u->nslots ||
		    u->slots[slot].parked != NULL))
			handover_fail(&u->cur, "a guest's socket index is out "
			    "of range or repeated");
		handover_get_nested(&u->cur, &rec);
		check_cursor(u);
		if (guest_restore(&u->slots[slot], &rec, &u->fds, err,
		    sizeof(err)) < 0 || handover_close(&rec, err,
		    sizeof(err)) < 0) {
			/* A malformed record: the blob is not sound. */
			if (rec.failed)
				refuse(u, err);
			guest_discard(&u->slots[slot]);
			/* The blob is sound; this guest's device is not. */
			log_warnx("guest %u: not restored, connection closed: "
			    "%s", slot, err);
			continue;
		}
		u->restored++;
	}
	if (handover_close(&u->cur, err, sizeof(err)) < 0)
		refuse(u, err);
}

void
upgrade_resume(struct upgrade *u)
{
	unsigned i;

	if (!u->restoring)
		return;
	for (i = 0; i < u->nslots; i++)
		if (u->slots[i].parked != NULL &&
		    guest_resume(&u->slots[i]) < 0) {
			log_warn("guest %u: cannot start its thread", i);
			guest_discard(&u->slots[i]);
		}
	log_info("live upgrade: %u guest(s) restored; serving %.1f ms after "
	    "they were parked", u->restored,
	    (double)(monotonic_ns() - u->parked_at_ns) / 1e6);
	/* The originals: everything in use holds a duplicate. */
	handover_fds_release(&u->fds);
	close(u->blob_fd);
	u->blob_fd = -1;
	free(u->blob);
	u->blob = NULL;
	unsetenv(UPGRADE_ENV_FALLBACK);
	unsetenv(UPGRADE_ENV_EXE);
	u->restoring = false;
}
