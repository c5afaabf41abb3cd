/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_UPGRADE_H
#define VRNG_UPGRADE_H

/*
 * Live upgrade (SIGUSR2): the daemon parks its guest threads between two
 * batches and two messages, writes its state to a memfd (handover.h),
 * clears close-on-exec on every descriptor the state names and execs the
 * binary at the path it was started from, under the same PID.  The new
 * image restores every guest and serves on; no front-end sees a
 * disconnect.  Owned by the main thread.
 *
 * Safety: the new binary is opened and checked (a regular, executable
 * file) before anything stops; if execve fails, the threads resume.  If
 * the new image refuses the state (a format it does not know, a blob
 * that does not check), it execs the previous image from the descriptor
 * it was handed ("vrng.exe") with the same state, once.  Only a new
 * binary that crashes before it reads its state loses the guests (and
 * under systemd, the fd store then brings them back: fdstore.h).
 */

#include <stdbool.h>
#include <stdint.h>

#include "entropy.h"
#include "guest.h"
#include "handover.h"
#include "listener.h"
#include "ratelimit.h"

/* The environment variable that carries the state memfd's number. */
#define UPGRADE_ENV		"VRNG_HANDOVER_FD"
/*
 * The previous image's fd, beside the state rather than in it: a binary
 * that cannot read the state's format can still go back.  These two
 * variables are the contract every version keeps.
 */
#define UPGRADE_ENV_EXE		"VRNG_HANDOVER_EXE_FD"
/* Set when a refused state goes back to the previous image. */
#define UPGRADE_ENV_FALLBACK	"VRNG_HANDOVER_FALLBACK"
/* How long parking may take: a message in progress may need 500 ms. */
#define UPGRADE_PARK_WAIT_MS	2000

struct upgrade {
	/* The daemon's pieces, set by main before anything here runs: */
	struct listener		*listeners;
	unsigned		 nslots;
	struct guest_slot	*slots;
	struct entropy		*source;
	struct ratelimit	*rl;		/* NULL: unlimited */
	bool			 one_shot;	/* --fd was a connection */
	char			**argv;
	char			 exe_path[4096]; /* started from (at start) */
	int			 self_exe_fd;	/* the running image, or -1 */
	/* sandbox_fingerprint() of the filter last loaded, or 0: none. */
	uint32_t		 filter_fp;

	/* A state being restored (upgrade_load .. upgrade_resume): */
	bool			 restoring;
	int			 blob_fd;
	uint8_t			*blob;
	size_t			 blob_len;
	struct handover_cursor	 cur;
	struct handover_fds	 fds;
	uint64_t		 parked_at_ns;	/* when the predecessor parked */
	uint32_t		 inherited_fp;	/* the predecessor's filter_fp */
	unsigned		 restored;	/* guests restored */
};

/*
 * At start-up, before anything is opened: remembers where the binary is
 * (argv[0] may be relative; /proc/self/exe is what runs) and opens the
 * running image for the fallback.  Never fails; a daemon that cannot
 * upgrade says so on SIGUSR2.
 */
void	upgrade_init(struct upgrade *, char **argv);

/* SIGUSR2.  Returns only if the upgrade did not happen (logged why). */
void	upgrade_run(struct upgrade *);

/*
 * If UPGRADE_ENV is set: reads and checks the state and its descriptor
 * directory, and the daemon part (socket count, listeners, source).
 * Returns 0 with u->restoring false (no state), 0 with u->restoring true,
 * or falls back to the previous image / exits if the state is refused.
 */
void	upgrade_load(struct upgrade *, unsigned *nslots);
/* Restoring: the source (fills *src, as entropy_open would). */
void	upgrade_source(struct upgrade *, struct entropy *, const char *path);
/*
 * Restoring: the listeners (fills n of them; none if the daemon serves
 * one --fd connection).
 */
void	upgrade_listeners(struct upgrade *, struct listener *, unsigned n);
/*
 * Restoring, once slots and rate limit exist: the rate-limit position and
 * every guest (each left parked in its slot).  A guest whose device does
 * not restore is dropped with a log line; a malformed blob falls back.
 */
void	upgrade_guests(struct upgrade *);
/* Restoring, after the sandbox is on: starts the restored threads. */
void	upgrade_resume(struct upgrade *);

#endif
