/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_FDSTORE_H
#define VRNG_FDSTORE_H

/*
 * Crash recovery through systemd's file descriptor store (--fd-store):
 * each guest thread keeps its connection's descriptors and a state blob
 * (handover.h, kind HANDOVER_GUEST) in the store of the service, spoken
 * by hand over $NOTIFY_SOCKET as sd_notify(3) documents it:
 * "FDSTORE=1\nFDNAME=name" with the fds attached, "FDSTOREREMOVE=1\n
 * FDNAME=name" to drop them.  After a crash, systemd (Restart=) starts
 * the daemon again with the stored fds in LISTEN_FDS/LISTEN_FDNAMES
 * (sd_listen_fds(3)) and every guest resumes where its last stored state
 * was.  The unit needs FileDescriptorStoreMax= (vhost-device-rng(8)).
 *
 * Names (at most HANDOVER_NAME_MAX - 1 characters, no ':'):
 *	vrng.listen.<i>				a socket made with --socket-path
 *	vrng.<slot>.<conn>.<role>		sock, kick, call, err
 *	vrng.<slot>.<conn>.m<dev>-<inode>	a memory region's file
 *	vrng.<slot>.<conn>.state.<gen>		the state blob (a memfd)
 * A new state is stored before the one it replaces is removed, so that a
 * crash between the two leaves one or the other: restore takes the
 * newest that checks.
 *
 * The store is refreshed when the connection's vhost-user state changes
 * (after a burst of messages), not per request: the ring position comes
 * back from the used index in guest memory, the statistics and the rate
 * limit's position from the last refresh.
 */

#include <stdbool.h>
#include <stdint.h>

#include "handover.h"

/*
 * Opens the notify socket for the whole daemon (call before the sandbox
 * and the threads).  Returns 0, or -1 with err filled (no NOTIFY_SOCKET,
 * or an unusable one).  After it, fdstore_enabled() is true.
 */
int	fdstore_open(char *err, size_t errlen);
bool	fdstore_enabled(void);

/*
 * Stores nfds (1..253) fds under name, or removes every fd of that name.
 * Thread-safe (one datagram each).  Return 0 or -1 (logged).
 */
int	fdstore_put(const char *name, const int *fds, unsigned nfds);
int	fdstore_remove(const char *name);

/*
 * The names one guest has in the store now, each with the generation of
 * the fd stored under it (owned by its thread).
 */
struct fdstore_set {
	char		(*names)[HANDOVER_NAME_MAX];
	uint32_t	*gens;
	unsigned	 n;
	unsigned	 cap;
	uint32_t	 state_gen;	/* of the stored state; 0: none */
	char		 prefix[32];	/* vu_dev fd_prefix */
};

/*
 * Makes the store hold exactly these fds (from vu_dev_each_fd; names may
 * repeat, the first counts) and the state blob b (finished), under the
 * connection prefix: fds first (a name whose generation moved on is
 * removed and stored again: the front-end sent that role's fd anew,
 * perhaps the very same file, which systemd would refuse as a duplicate
 * under a second name), then the new state, then the removal of the old
 * state and of names no longer held.  Returns 0 or -1 (logged; the next
 * sync tries again).
 */
struct fdstore_fd {
	char		 name[HANDOVER_NAME_MAX];
	int		 fd;
	uint32_t	 gen;
};
int	fdstore_sync(struct fdstore_set *, const char *prefix,
	    const struct fdstore_fd *, unsigned n,
	    const struct handover_buf *b);
/*
 * The connection ended: removes everything of it from the store, then
 * frees the set (fdstore_set_free).
 */
void	fdstore_forget(struct fdstore_set *);
/* Frees what the set holds, touching nothing in the store. */
void	fdstore_set_free(struct fdstore_set *);

/*
 * At start-up: picks from stored (the "vrng." fds systemd passed back) the
 * newest state blob that checks for each slot below nslots and calls
 * restore(slot, cursor, arg) with a cursor on its guest record.  Then
 * removes from the store every name nobody used (old states, fds of
 * connections that did not come back).  Returns the guests restored.
 */
unsigned fdstore_restore(struct handover_fds *stored, unsigned nslots,
	    int (*restore)(unsigned slot, struct handover_cursor *, void *),
	    void *arg);

#endif
