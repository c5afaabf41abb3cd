/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The seccomp sandbox (libseccomp).  Loaded by main() after start-up:
 * sockets made, source open, signal handlers, signalfd and eventfds in
 * place, and before the first guest thread.  From then on a guest that
 * took over a guest thread could still use only what serving needs: no
 * new processes, no programs, no network sockets, no files opened for
 * writing, no executable memory, no ptrace, no mounts, no new filters.
 *
 * A forbidden call fails with EPERM; it does not kill the process.  One
 * daemon serves many guests, and QEMU 7.2 stops a guest whose back-end
 * goes away: a call we missed on some rare path (a library that changed,
 * an error path) must cost one failed operation, which the code handles
 * and logs, not every guest at once.  The call is refused either way, so
 * an attacker gains nothing from the difference; and it is the answer
 * systemd's SystemCallErrorNumber=EPERM gives in our unit as well.
 *
 * The list was built from what the code calls (and what glibc turns it
 * into), checked with strace -f over the integration suites and a QEMU
 * guest (scripts/run-guest); every name below must stay inside the
 * systemd unit's SystemCallFilter= (scripts/check-sandbox checks).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "sandbox.h"

/* Allowed whatever their arguments. */
static const int allow_any[] = {
	/* Front-end connections: accept, messages with fds, replies. */
	SCMP_SYS(accept4),
	SCMP_SYS(recvmsg),
	SCMP_SYS(recvfrom),
	SCMP_SYS(sendmsg),
	SCMP_SYS(sendto),
	SCMP_SYS(connect),
	/* Waiting: the poll loops of main and of each guest. */
	SCMP_SYS(poll),
	SCMP_SYS(ppoll),
	SCMP_SYS(epoll_create1),
	SCMP_SYS(epoll_ctl),
	SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait),
	/* Descriptors we hold: source, eventfds, timers, signalfd, log. */
	SCMP_SYS(read),
	SCMP_SYS(readv),
	SCMP_SYS(preadv2),
	SCMP_SYS(write),
	SCMP_SYS(writev),
	SCMP_SYS(close),
	SCMP_SYS(fcntl),
	SCMP_SYS(dup3),
	SCMP_SYS(fstat),
	SCMP_SYS(newfstatat),
	SCMP_SYS(statx),
	SCMP_SYS(lstat),
	SCMP_SYS(readlink),
	SCMP_SYS(readlinkat),
	SCMP_SYS(eventfd2),
	/* Sockets are removed at exit. */
	SCMP_SYS(unlink),
	SCMP_SYS(unlinkat),
	/* Throttling, guards and backoff timers; clocks. */
	SCMP_SYS(timerfd_create),
	SCMP_SYS(timerfd_settime),
	SCMP_SYS(timerfd_gettime),
	SCMP_SYS(timer_create),
	SCMP_SYS(timer_settime),
	SCMP_SYS(timer_delete),
	SCMP_SYS(clock_gettime),
	SCMP_SYS(clock_nanosleep),
	SCMP_SYS(nanosleep),
	/* Memory: malloc, thread stacks, guest memory (mmap: below). */
	SCMP_SYS(munmap),
	SCMP_SYS(mremap),
	SCMP_SYS(madvise),
	SCMP_SYS(brk),
	/* Threads: start (clone: below), locks, exit. */
	SCMP_SYS(futex),
	SCMP_SYS(set_robust_list),
	SCMP_SYS(rseq),
	SCMP_SYS(sched_yield),
	SCMP_SYS(sched_getaffinity),	/* pthread_getattr_np() */
	SCMP_SYS(exit),
	SCMP_SYS(exit_group),
	SCMP_SYS(getpid),
	SCMP_SYS(gettid),
	SCMP_SYS(prlimit64),
	SCMP_SYS(getrandom),
	/*
	 * Signals: SIGBUS and guard-timer handlers, thread masks, and the
	 * SIGBUS handler's fall-back to the default action.
	 */
	SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(rt_sigreturn),
	SCMP_SYS(rt_sigaction),
	SCMP_SYS(sigaltstack),
	SCMP_SYS(restart_syscall),
};

static int
fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < errlen)
		snprintf(err + n, errlen - (size_t)n, ": %s", strerror(e));
	errno = e;
	return -1;
}

/* Threads of this process, or 0 if /proc cannot tell. */
static unsigned
count_threads(void)
{
	struct dirent *de;
	unsigned n = 0;
	DIR *d;

	if ((d = opendir("/proc/self/task")) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/*
 * Live upgrade (upgrade.h): the filter stays on across execve, so the new
 * image starts inside it, dynamic loader and all.  What that needs, and
 * no more: the state memfd; execveat of an fd we opened (AT_EMPTY_PATH,
 * so no path is looked up in the exec itself); mapping the libraries'
 * code from their files (executable, never writable at the same time,
 * never anonymous); the thread-area and TID calls of a new image's start;
 * and loading the new image's own filter, which can only take rights
 * away (filters stack).
 *
 * The price, stated plainly: an attacker who took a guest thread could
 * exec a program it can read, or map a file it can read (guest memory
 * included) as code.  Either runs inside this same filter with
 * no_new_privs, with no system call our image does not have.
 */
static int
add_upgrade_rules(scmp_filter_ctx ctx)
{
	static const int start_calls[] = {
		SCMP_SYS(arch_prctl),
		SCMP_SYS(set_tid_address),
		SCMP_SYS(access),
		SCMP_SYS(faccessat),
		SCMP_SYS(faccessat2),
		SCMP_SYS(pread64),
		SCMP_SYS(signalfd4),
		SCMP_SYS(getsockopt),
	};
	unsigned i;
	int rc;

	for (i = 0; i < sizeof(start_calls) / sizeof(start_calls[0]); i++)
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, start_calls[i],
		    0)) < 0)
			return rc;
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(memfd_create),
	    1, SCMP_A1(SCMP_CMP_EQ, MFD_CLOEXEC, 0))) < 0)
		return rc;
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(execveat), 1,
	    SCMP_A4(SCMP_CMP_EQ, AT_EMPTY_PATH, 0))) < 0)
		return rc;
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 2,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_WRITE | PROT_EXEC, PROT_EXEC),
	    SCMP_A3(SCMP_CMP_MASKED_EQ, MAP_ANONYMOUS, 0))) < 0)
		return rc;
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
	    SCMP_A0(SCMP_CMP_EQ, PR_SET_NO_NEW_PRIVS, 0))) < 0)
		return rc;
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
	    SCMP_A0(SCMP_CMP_EQ, PR_SET_SECCOMP, 0));
}

/* The rules that look at arguments; returns 0 or a negative errno. */
static int
add_arg_rules(scmp_filter_ctx ctx)
{
	int rc;

	/*
	 * Threads only: clone without CLONE_THREAD would be a new process.
	 * clone3 passes its flags in memory, which a filter cannot read, so
	 * it says ENOSYS and glibc falls back to clone.
	 */
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
	    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD))) < 0)
		return rc;
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
	    SCMP_SYS(clone3), 0)) < 0)
		return rc;
	/* Never executable memory (guest memory is data). */
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0)
		return rc;
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect),
	    1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0)
		return rc;
	/*
	 * Files are only read: the FIFO source is reopened, /proc/self/fd
	 * is looked at.  Nothing is created, truncated or written.
	 */
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC,
	    O_RDONLY))) < 0)
		return rc;
	if ((rc = add_upgrade_rules(ctx)) < 0)
		return rc;
	/* Unix sockets only (sd_notify); no network. */
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
	    SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0))) < 0)
		return rc;
	/* Socket timeouts of accepted connections. */
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setsockopt),
	    1, SCMP_A1(SCMP_CMP_EQ, SOL_SOCKET, 0))) < 0)
		return rc;
	/* Signals to ourselves only (raise, abort). */
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
	    SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0));
}

/* The one directory files may be created and renamed in; -1: none. */
static int writable_dir = -1;

void
sandbox_allow_dir(int dirfd)
{
	writable_dir = dirfd;
}

/*
 * The metrics file (metrics.c): a new file, write-only, created in that
 * directory, then renamed within it.  The directory is named by its
 * descriptor, which a filter can compare, not by a path, which it cannot
 * read.  (unlinkat(2), which removes a leftover temporary file, is allowed
 * anyway, for the sockets.)  Returns 0 or a negative errno.
 */
static int
add_dir_rules(scmp_filter_ctx ctx)
{
	scmp_datum_t dir = (scmp_datum_t)writable_dir;
	int rc;

	if (writable_dir < 0)
		return 0;
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 2,
	    SCMP_A0(SCMP_CMP_EQ, dir, 0),
	    SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC,
	    O_WRONLY | O_CREAT | O_EXCL))) < 0)
		return rc;
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(renameat), 2,
	    SCMP_A0(SCMP_CMP_EQ, dir, 0), SCMP_A2(SCMP_CMP_EQ, dir, 0));
}

/* The filter, built but not loaded; NULL with *rc set on failure. */
static scmp_filter_ctx
build_filter(int *rc)
{
	scmp_filter_ctx ctx;
	unsigned i;

	if ((ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM))) == NULL) {
		*rc = -ENOMEM;
		return NULL;
	}
	*rc = 0;
	for (i = 0; *rc == 0 &&
	    i < sizeof(allow_any) / sizeof(allow_any[0]); i++)
		*rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allow_any[i], 0);
	if (*rc == 0)
		*rc = add_arg_rules(ctx);
	if (*rc == 0)
		*rc = add_dir_rules(ctx);
	if (*rc < 0) {
		seccomp_release(ctx);
		return NULL;
	}
	return ctx;
}

int
sandbox_enter(char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	int rc;

	if (count_threads() > 1)
		return fail(err, errlen, EBUSY, "sandbox: %u threads run "
		    "already", count_threads());
	/*
	 * Without CAP_SYS_ADMIN the kernel takes a filter only under
	 * no_new_privs; it also keeps any exec from gaining privileges.
	 */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail(err, errlen, errno, "sandbox: PR_SET_NO_NEW_PRIVS");
	if ((ctx = build_filter(&rc)) == NULL)
		return fail(err, errlen, -rc, "sandbox: building the filter");
	rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc < 0)
		return fail(err, errlen, -rc, "sandbox: loading the filter");
	return 0;
}

uint32_t
sandbox_fingerprint(void)
{
	uint8_t buf[4096];
	scmp_filter_ctx ctx;
	uLong crc = crc32(0L, Z_NULL, 0);
	ssize_t n;
	off_t off = 0;
	int fd, rc;

	if ((ctx = build_filter(&rc)) == NULL)
		return 0;
	/* libseccomp 2.5 exports to an fd only. */
	fd = memfd_create("vhost-device-rng-filter", MFD_CLOEXEC);
	if (fd < 0 || seccomp_export_bpf(ctx, fd) < 0) {
		seccomp_release(ctx);
		if (fd >= 0)
			close(fd);
		return 0;
	}
	seccomp_release(ctx);
	while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
		crc = crc32(crc, buf, (uInt)n);
		off += n;
	}
	close(fd);
	return n < 0 || off == 0 ? 0 : (uint32_t)crc | 1;
}

bool
sandbox_unsupported_build(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return true;
#else
	return false;
#endif
#else
	return false;
#endif
}
