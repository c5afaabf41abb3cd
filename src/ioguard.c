/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Eventfd reads and writes bounded by a per-thread one-shot timer (a
 * front-end can clear O_NONBLOCK on the description we share with it).
 * See ioguard.h.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ioguard.h"
#include "log.h"

#define IOGUARD_SIGNAL	(SIGRTMIN + 1)

static _Thread_local timer_t guard_timer;
static _Thread_local bool have_timer;

static void
on_guard_signal(int sig)
{
	(void)sig;	/* only there to interrupt the system call */
}

int
ioguard_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_guard_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: the call must return EINTR */
	return sigaction(IOGUARD_SIGNAL, &sa, NULL);
}

int
ioguard_thread_init(void)
{
	struct sigevent sev;

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = IOGUARD_SIGNAL;
	/* glibc 2.36 names the field only through its union member. */
	sev._sigev_un._tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &guard_timer) < 0)
		return -1;
	have_timer = true;
	return 0;
}

void
ioguard_thread_fini(void)
{
	if (have_timer)
		timer_delete(guard_timer);
	have_timer = false;
}

static void
arm(long ms)
{
	struct itimerspec its;

	if (!have_timer)
		return;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = ms / 1000;
	its.it_value.tv_nsec = (ms % 1000) * 1000000L;
	timer_settime(guard_timer, 0, &its, NULL);
}

ssize_t
ioguard_read(int fd, void *buf, size_t len)
{
	ssize_t n;
	int saved;

	arm(IOGUARD_MS);
	n = read(fd, buf, len);
	saved = errno;
	arm(0);
	errno = saved;
	return n;
}

ssize_t
ioguard_write(int fd, const void *buf, size_t len)
{
	ssize_t n;
	int saved;

	arm(IOGUARD_MS);
	n = write(fd, buf, len);
	saved = errno;
	arm(0);
	errno = saved;
	return n;
}
