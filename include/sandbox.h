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
#include <stdint.h>

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
 * A fingerprint of the filter sandbox_enter() would load (CRC-32 of its
 * BPF program, never 0), or 0 if it cannot be built.  A live upgrade
 * passes it on: filters survive execve and stack, so a new image whose
 * filter is the very one in force need not load it again, and the chain
 * does not grow by one filter per upgrade (the kernel caps it at 32768
 * instructions in all; every system call runs the whole chain).
 */
uint32_t sandbox_fingerprint(void);

/*
 * Lets the filter sandbox_enter() loads allow creating a file, write-only
 * and new (O_CREAT | O_EXCL, no O_TRUNC), with openat(2) in the directory
 * open on dirfd, and renameat(2) from that directory to itself: what the
 * metrics file needs (metrics.h), and nowhere else.  Call before
 * sandbox_enter().  Takes the directory's descriptor (O_PATH will do), or
 * -1 for none (the default).  Cannot fail; the descriptor must stay open.
 */
void	sandbox_allow_dir(int dirfd);

/*
 * Whether this build leaves the sandbox off: AddressSanitizer's leak check
 * at exit traces the process from a helper task (clone without
 * CLONE_THREAD, ptrace) and UBSan/ASan symbolize by running a program,
 * none of which the filter allows.  Takes nothing, cannot fail.
 */
bool	sandbox_unsupported_build(void);

#endif
