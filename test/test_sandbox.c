/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The seccomp sandbox, tried for real: each test forks a child that
 * loads the filter with sandbox_enter() and then makes calls, and reports
 * to the parent through a pipe what each call returned (errno, or 0).  The
 * filter stays with the child; the test process is never confined.
 */
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "sandbox.h"
#include "unit.h"

#define MAX_PROBES	16

enum probe {
	P_SOCKET_INET,
	P_SOCKET_UNIX,
	P_EXECVE,
	P_FORK,
	P_THREAD,
	P_OPEN_WRITE,
	P_OPEN_CREATE,
	P_OPEN_READ,
	P_MMAP_EXEC,
	P_MPROTECT_EXEC,
	P_MMAP_DATA,
	P_EVENTFD,
	P_PTRACE,
	P_KILL_PARENT,
	P_COUNT
};

/* What each probe returned in the child: 0 or the errno. */
struct report {
	int	entered;		/* sandbox_enter(): 0 or errno */
	char	err[200];		/* and its message */
	int	result[P_COUNT];
};

static void *
thread_main(void *arg)
{
	return arg;
}

/* Makes the call and returns 0 if it worked, else errno. */
static int
probe(enum probe p)
{
	char *argv[] = { "true", NULL };
	pthread_t t;
	void *m;
	pid_t pid;
	int fd, rc;

	errno = 0;
	switch (p) {
	case P_SOCKET_INET:
	case P_SOCKET_UNIX:
		fd = socket(p == P_SOCKET_INET ? AF_INET : AF_UNIX,
		    SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return errno;
		close(fd);
		return 0;
	case P_EXECVE:
		execve("/bin/true", argv, NULL);
		return errno;
	case P_FORK:
		/* The raw call: glibc's fork() may try clone3 first. */
		pid = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, 0);
		if (pid == 0)
			_exit(0);
		if (pid < 0)
			return errno;
		waitpid(pid, NULL, 0);
		return 0;
	case P_THREAD:
		/* glibc asks clone3 first; ENOSYS makes it use clone. */
		if ((rc = pthread_create(&t, NULL, thread_main, NULL)) != 0)
			return rc;
		pthread_join(t, NULL);
		return 0;
	case P_OPEN_WRITE:
	case P_OPEN_CREATE:
	case P_OPEN_READ:
		fd = open(p == P_OPEN_CREATE ? "/tmp/vrng-sandbox-test" :
		    "/dev/null", p == P_OPEN_READ ? O_RDONLY | O_CLOEXEC :
		    p == P_OPEN_WRITE ? O_WRONLY | O_CLOEXEC :
		    O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return errno;
		close(fd);
		return 0;
	case P_MMAP_EXEC:
	case P_MMAP_DATA:
		m = mmap(NULL, 4096, PROT_READ | (p == P_MMAP_EXEC ?
		    PROT_EXEC : PROT_WRITE), MAP_PRIVATE | MAP_ANONYMOUS, -1,
		    0);
		if (m == MAP_FAILED)
			return errno;
		munmap(m, 4096);
		return 0;
	case P_MPROTECT_EXEC:
		m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
		if (m == MAP_FAILED)
			return -1;
		rc = mprotect(m, 4096, PROT_READ | PROT_EXEC) < 0 ? errno : 0;
		munmap(m, 4096);
		return rc;
	case P_EVENTFD:
		if ((fd = eventfd(0, EFD_CLOEXEC)) < 0)
			return errno;
		close(fd);
		return 0;
	case P_PTRACE:
		/* 0: PTRACE_TRACEME. */
		return syscall(SYS_ptrace, 0, 0, 0, 0) < 0 ? errno : 0;
	case P_KILL_PARENT:
		/* Signal 0 only checks; the call itself is not allowed. */
		return kill(getppid(), 0) < 0 ? errno : 0;
	case P_COUNT:
		break;
	}
	return -1;
}

/*
 * Runs before() (may be NULL) and sandbox_enter() in a child, then the
 * probes; returns what the child reported.
 */
static struct report
run_child(void (*before)(void))
{
	struct report rep;
	int pfd[2], st;
	unsigned i;
	pid_t pid;

	memset(&rep, 0, sizeof(rep));
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(pfd[0]);
		if (before != NULL)
			before();
		rep.entered = sandbox_enter(rep.err, sizeof(rep.err)) < 0 ?
		    errno : 0;
		if (rep.entered == 0)
			for (i = 0; i < P_COUNT; i++)
				rep.result[i] = probe((enum probe)i);
		if (write(pfd[1], &rep, sizeof(rep)) != sizeof(rep))
			_exit(2);
		/* No exit handlers (LeakSanitizer) under the filter. */
		_exit(0);
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], &rep, sizeof(rep)), sizeof(rep));
	close(pfd[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "child status 0x%x", st);
	return rep;
}

/* run_child() for a child that entered the sandbox. */
static struct report
run_confined(void (*before)(void))
{
	struct report rep = run_child(before);

	ck_assert_msg(rep.entered == 0, "%s", rep.err);
	return rep;
}

#define REFUSED(rep, p)							\
	ck_assert_msg((rep).result[p] == EPERM, "%s: %s, not EPERM",	\
	    #p, strerror((rep).result[p]))
#define ALLOWED(rep, p)							\
	ck_assert_msg((rep).result[p] == 0, "%s: %s", #p,		\
	    strerror((rep).result[p]))

START_TEST(forbidden_calls_fail_with_eperm)
{
	struct report rep = run_confined(NULL);

	REFUSED(rep, P_SOCKET_INET);
	REFUSED(rep, P_EXECVE);
	REFUSED(rep, P_FORK);
	REFUSED(rep, P_OPEN_WRITE);
	REFUSED(rep, P_OPEN_CREATE);
	REFUSED(rep, P_MMAP_EXEC);
	REFUSED(rep, P_MPROTECT_EXEC);
	REFUSED(rep, P_PTRACE);
	REFUSED(rep, P_KILL_PARENT);
	ck_assert_msg(access("/tmp/vrng-sandbox-test", F_OK) < 0,
	    "the sandboxed child created a file");
}
END_TEST

START_TEST(serving_calls_still_work)
{
	struct report rep = run_confined(NULL);

	ALLOWED(rep, P_SOCKET_UNIX);
	ALLOWED(rep, P_THREAD);
	ALLOWED(rep, P_OPEN_READ);
	ALLOWED(rep, P_MMAP_DATA);
	ALLOWED(rep, P_EVENTFD);
}
END_TEST

/*
 * systemd's SystemCallFilter=@system-service refuses seccomp(2) itself
 * (EPERM); libseccomp must then load our filter with prctl(2).
 */
static void
forbid_seccomp_syscall(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);

	if (ctx == NULL || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM),
	    SCMP_SYS(seccomp), 0) < 0 || seccomp_load(ctx) < 0)
		_exit(3);
	seccomp_release(ctx);
	/* Forget that seccomp(2) worked a moment ago, as a fresh process. */
	seccomp_reset(NULL, 0);
	if (syscall(SYS_seccomp, 1 /* SET_MODE_FILTER */, 0, NULL) == 0 ||
	    errno != EPERM)
		_exit(4);
}

START_TEST(loads_when_an_outer_filter_forbids_seccomp)
{
	struct report rep = run_confined(forbid_seccomp_syscall);

	REFUSED(rep, P_SOCKET_INET);
	REFUSED(rep, P_EXECVE);
	ALLOWED(rep, P_THREAD);
}
END_TEST

/* A thread that exists before the load would stay unconfined. */
static pthread_t early;

static void *
wait_forever(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void
start_a_thread(void)
{
	if (pthread_create(&early, NULL, wait_forever, NULL) != 0)
		_exit(5);
}

START_TEST(refuses_to_load_with_threads_running)
{
	struct report rep = run_child(start_a_thread);

	ck_assert_msg(rep.entered == EBUSY, "sandbox_enter: %s (%s)",
	    strerror(rep.entered), rep.err);
	ck_assert_ptr_nonnull(strstr(rep.err, "2 threads"));
}
END_TEST

SUITE(sandbox, UNIT_TIMEOUT, NULL, NULL,
    "filter", TESTS(forbidden_calls_fail_with_eperm,
	serving_calls_still_work, loads_when_an_outer_filter_forbids_seccomp,
	refuses_to_load_with_threads_running))
