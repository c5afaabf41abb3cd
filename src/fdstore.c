/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * systemd's file descriptor store, by hand (fdstore.h): the notify socket
 * the guest threads share, the FDSTORE/FDSTOREREMOVE datagrams, each
 * guest's set of stored names, and picking the states back up after a
 * restart.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdstore.h"
#include "log.h"
#include "sdnotify.h"

/* SCM_MAX_FD in Linux: fds one datagram may carry. */
#define FDSTORE_MAX_FDS	253

/* Set once by fdstore_open() before any thread: read-only after. */
static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_len;

int
fdstore_open(char *err, size_t errlen)
{
	switch (sdnotify_address(&notify_addr, &notify_len)) {
	case 0:
		snprintf(err, errlen, "--fd-store: NOTIFY_SOCKET is not set "
		    "(not started by systemd with Type=notify?)");
		return -1;
	case 1:
		break;
	default:
		snprintf(err, errlen, "--fd-store: NOTIFY_SOCKET=%s is not a "
		    "usable socket path", getenv("NOTIFY_SOCKET"));
		return -1;
	}
	if ((notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "--fd-store: socket: %s",
		    strerror(errno));
		return -1;
	}
	return 0;
}

bool
fdstore_enabled(void)
{
	return notify_fd >= 0;
}

static int
send_state(const char *text, const int *fds, unsigned nfds)
{
	union {
		struct cmsghdr	hdr;
		char buf[CMSG_SPACE(sizeof(int) * FDSTORE_MAX_FDS)];
	} ctl;
	struct iovec iov = { .iov_base = (void *)text,
	    .iov_len = strlen(text) };
	struct msghdr mh;
	struct cmsghdr *c;

	memset(&mh, 0, sizeof(mh));
	mh.msg_name = &notify_addr;
	mh.msg_namelen = notify_len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds > 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	if (sendmsg(notify_fd, &mh, MSG_NOSIGNAL) < 0) {
		log_warn("fd store: %.*s", (int)strcspn(text, "\n"), text);
		return -1;
	}
	return 0;
}

int
fdstore_put(const char *name, const int *fds, unsigned nfds)
{
	char text[32 + HANDOVER_NAME_MAX];

	if (notify_fd < 0 || nfds == 0 || nfds > FDSTORE_MAX_FDS ||
	    !handover_name_ok(name))
		return -1;
	snprintf(text, sizeof(text), "FDSTORE=1\nFDNAME=%s", name);
	return send_state(text, fds, nfds);
}

int
fdstore_remove(const char *name)
{
	char text[32 + HANDOVER_NAME_MAX];

	if (notify_fd < 0 || !handover_name_ok(name))
		return -1;
	snprintf(text, sizeof(text), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	return send_state(text, NULL, 0);
}

/* The index of name in the set, or -1. */
static int
set_find(const struct fdstore_set *set, const char *name)
{
	unsigned i;

	for (i = 0; i < set->n; i++)
		if (strcmp(set->names[i], name) == 0)
			return (int)i;
	return -1;
}

static int
set_add(struct fdstore_set *set, const char *name, uint32_t gen)
{
	char (*v)[HANDOVER_NAME_MAX];
	uint32_t *g;
	unsigned cap;

	if (set->n == set->cap) {
		cap = set->cap == 0 ? 8 : set->cap * 2;
		if ((v = reallocarray(set->names, cap, sizeof(*v))) == NULL)
			return -1;
		set->names = v;
		if ((g = reallocarray(set->gens, cap, sizeof(*g))) == NULL)
			return -1;
		set->gens = g;
		set->cap = cap;
	}
	strlcpy(set->names[set->n], name, HANDOVER_NAME_MAX);
	set->gens[set->n++] = gen;
	return 0;
}

/* Whether name came before index i already (a later region of a file). */
static bool
fds_index(const struct fdstore_fd *fds, unsigned i, const char *name)
{
	unsigned k;

	for (k = 0; k < i; k++)
		if (strcmp(fds[k].name, name) == 0)
			return true;
	return false;
}

static bool
fds_have(const struct fdstore_fd *fds, unsigned n, const char *name)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (strcmp(fds[i].name, name) == 0)
			return true;
	return false;
}

static void
state_name(const struct fdstore_set *set, uint32_t gen, char *out)
{
	snprintf(out, HANDOVER_NAME_MAX, "%sstate.%u", set->prefix, gen);
}

int
fdstore_sync(struct fdstore_set *set, const char *prefix,
    const struct fdstore_fd *fds, unsigned n, const struct handover_buf *b)
{
	char name[HANDOVER_NAME_MAX];
	unsigned i, j;
	int mfd, rc = 0;

	strlcpy(set->prefix, prefix, sizeof(set->prefix));
	/* New fds: first, so that the new state never names a missing one. */
	for (i = 0; i < n; i++) {
		int k = set_find(set, fds[i].name);

		/* Regions of one file: one fd is enough to map them all. */
		if (k >= 0 && (set->gens[k] == fds[i].gen ||
		    fds_index(fds, i, fds[i].name)))
			continue;
		if (k >= 0) {
			/* Sent again: remove, then store under the name. */
			(void)fdstore_remove(fds[i].name);
			if (fdstore_put(fds[i].name, &fds[i].fd, 1) < 0)
				return -1;
			set->gens[k] = fds[i].gen;
			continue;
		}
		if (fdstore_put(fds[i].name, &fds[i].fd, 1) < 0 ||
		    set_add(set, fds[i].name, fds[i].gen) < 0)
			return -1;
	}
	if ((mfd = handover_memfd(b, "vhost-device-rng-guest")) < 0) {
		log_warn("fd store: state memfd");
		return -1;
	}
	state_name(set, set->state_gen + 1, name);
	rc = fdstore_put(name, &mfd, 1);
	close(mfd);
	if (rc < 0)
		return -1;
	if (set->state_gen > 0) {
		state_name(set, set->state_gen, name);
		(void)fdstore_remove(name);
	}
	set->state_gen++;
	/* Then what the connection no longer holds. */
	for (i = j = 0; i < set->n; i++) {
		if (fds_have(fds, n, set->names[i])) {
			memmove(set->names[j], set->names[i],
			    HANDOVER_NAME_MAX);
			set->gens[j++] = set->gens[i];
			continue;
		}
		(void)fdstore_remove(set->names[i]);
	}
	set->n = j;
	return 0;
}

void
fdstore_set_free(struct fdstore_set *set)
{
	free(set->names);
	free(set->gens);
	memset(set, 0, sizeof(*set));
}

void
fdstore_forget(struct fdstore_set *set)
{
	char name[HANDOVER_NAME_MAX];
	unsigned i;

	for (i = 0; i < set->n; i++)
		(void)fdstore_remove(set->names[i]);
	if (set->state_gen > 0) {
		state_name(set, set->state_gen, name);
		(void)fdstore_remove(name);
	}
	fdstore_set_free(set);
}

/* ---- after a restart ----------------------------------------------- */

/*
 * "vrng.<slot>.<conn>.state.<gen>" -> slot, conn, gen; false for any other
 * name.
 */
static bool
parse_state_name(const char *name, unsigned *slot, unsigned long long *conn,
    unsigned *gen)
{
	int end = 0;

	if (sscanf(name, "vrng.%u.%llx.state.%u%n", slot, conn, gen,
	    &end) != 3)
		return false;
	return name[end] == '\0';
}

/* Tries one stored state for its slot; true if the guest came back. */
static bool
try_state(struct handover_fd *e, unsigned nslots,
    int (*restore)(unsigned, struct handover_cursor *, void *), void *arg)
{
	struct handover_cursor cur;
	unsigned slot, gen, blob_slot;
	unsigned long long conn;
	char err[256];
	uint8_t *blob;
	size_t len;
	bool ok = false;

	if (!parse_state_name(e->name, &slot, &conn, &gen) || slot >= nslots)
		return false;
	e->used = true;
	if ((blob = handover_read_fd(e->fd, &len)) == NULL) {
		log_warnx("fd store: %s cannot be read", e->name);
		return false;
	}
	if (handover_open(&cur, blob, len, HANDOVER_GUEST, err,
	    sizeof(err)) < 0) {
		log_warnx("fd store: %s: %s", e->name, err);
		free(blob);
		return false;
	}
	blob_slot = handover_get_u32(&cur);
	if (!cur.failed && blob_slot != slot)
		log_warnx("fd store: %s holds guest %u", e->name, blob_slot);
	else if (restore(slot, &cur, arg) == 0)
		ok = true;
	free(blob);
	return ok;
}

/* Order: slot, then newest connection, then newest state first. */
static int
state_order(const void *a, const void *b)
{
	const struct handover_fd *x = a, *y = b;
	unsigned xs = 0, ys = 0, xg = 0, yg = 0;
	unsigned long long xc = 0, yc = 0;
	bool xo = parse_state_name(x->name, &xs, &xc, &xg);
	bool yo = parse_state_name(y->name, &ys, &yc, &yg);

	if (xo != yo)
		return xo ? -1 : 1;
	if (xs != ys)
		return xs < ys ? -1 : 1;
	if (xc != yc)
		return xc > yc ? -1 : 1;
	if (xg != yg)
		return xg > yg ? -1 : 1;
	return 0;
}

/* FDSTOREREMOVE drops a whole name: only if no entry of it is in use. */
static bool
name_used(const struct handover_fds *stored, const char *name)
{
	unsigned i;

	for (i = 0; i < stored->n; i++)
		if (stored->v[i].used && strcmp(stored->v[i].name, name) == 0)
			return true;
	return false;
}

unsigned
fdstore_restore(struct handover_fds *stored, unsigned nslots,
    int (*restore)(unsigned, struct handover_cursor *, void *), void *arg)
{
	unsigned i, k, slot, gen, restored = 0, last = UINT32_MAX;
	unsigned long long conn;
	bool *was;

	qsort(stored->v, stored->n, sizeof(stored->v[0]), state_order);
	if ((was = calloc(stored->n + 1, sizeof(*was))) == NULL)
		return 0;
	for (i = 0; i < stored->n; i++) {
		if (!parse_state_name(stored->v[i].name, &slot, &conn, &gen))
			continue;
		if (slot == last) {
			stored->v[i].used = false;	/* an older one */
			continue;
		}
		for (k = 0; k < stored->n; k++)
			was[k] = stored->v[k].used;
		if (try_state(&stored->v[i], nslots, restore, arg)) {
			last = slot;
			restored++;
			continue;
		}
		/*
		 * What a failed restore took is not in use: its socket in
		 * particular goes from the store below, so the front-end
		 * sees the connection end instead of an answerless one.
		 */
		for (k = 0; k < stored->n; k++)
			stored->v[k].used = was[k];
	}
	free(was);
	/*
	 * What no guest took back: older states, connections that ended
	 * while we were down, or whose state did not check.  Keep the
	 * winning states (their guests store new ones at once).
	 */
	for (i = 0; i < stored->n; i++)
		if (!stored->v[i].used && !name_used(stored,
		    stored->v[i].name))
			(void)fdstore_remove(stored->v[i].name);
	return restored;
}
