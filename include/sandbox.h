/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_SANDBOX_H
#define VRNG_SANDBOX_H

/*
 * The seccomp sandbox: once the daemon has made its sockets and opened its
 * source, it allows itself only the system calls that serving guests
 * needs (the list, grouped, is in sandbox.c and in the man page, SANDBOX).
 * Any other call fails with EPERM.
 */

#include <stdbool.h>
#include <stddef.h>

/*
 * Sets no_new_privs and loads the filter for the calling process.  Must be
 * called while the process has one thread: the filter is inherited by
 * every thread created afterwards, and is not pushed to threads that
 * already exist (that would need the seccomp(2) call, which systemd's
 * @system-service filter refuses; libseccomp then loads with prctl(2)).
 *
 * Takes: err, errlen: where to put a one-line reason on failure.
 * Returns 0 once the filter is in force, -1 on failure (err filled; errno
 * set: EBUSY if another thread exists, else what prctl(2) or libseccomp
 * reported, ENOMEM when the filter could not be built).  On failure no
 * filter is loaded, but no_new_privs may already be set.
 */
int	sandbox_enter(char *err, size_t errlen);

/*
 * Whether this build leaves the sandbox off: AddressSanitizer's leak check
 * at exit traces the process from a helper task (clone without
 * CLONE_THREAD, ptrace) and UBSan/ASan symbolize by running a program,
 * none of which the filter allows.  Takes nothing, cannot fail.
 */
bool	sandbox_unsupported_build(void);

#endif
