/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ioguard owns each guest thread's guard timer (a POSIX timer that signals
 * that thread only) and the state of its periodic "watch" mode; see
 * include/ioguard.h for why eventfd calls need a guard at all.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ioguard.h"
#include "log.h"

#define IOGUARD_SIGNAL	(SIGRTMIN + 1)

static _Thread_local timer_t guard_timer;
static _Thread_local bool have_timer;
/*
 * Watch mode, shared by the thread and its own signal handler (which runs
 * on the thread it interrupts, so plain volatile flags are enough):
 * watching: the periodic timer runs; in_call: a guarded call is under
 * way; used: a guarded call started since the last tick.
 */
static _Thread_local volatile sig_atomic_t watching, in_call, used;

static void
arm(long ms, bool periodic)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = ms / 1000;
	its.it_value.tv_nsec = (ms % 1000) * 1000000L;
	if (periodic)
		its.it_interval = its.it_value;
	/* timer_settime is async-signal-safe (POSIX.1-2008 2.4.3). */
	timer_settime(guard_timer, 0, &its, NULL);
}

static void
on_guard_signal(int sig)
{
	int saved = errno;

	(void)sig;
	/*
	 * Interrupting the call is the point.  The periodic timer stops
	 * itself once a period passed with no guarded call, so a thread
	 * that went to sleep is not woken again.
	 */
	if (have_timer && watching && !in_call && !used) {
		arm(0, false);
		watching = 0;
	}
	used = 0;
	errno = saved;
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

	/*
	 * The timer's signal must never meet the default action (it ends
	 * the process): install the handler here too; it is idempotent.
	 */
	if (ioguard_install() < 0)
		return -1;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = IOGUARD_SIGNAL;
	/* glibc 2.36 names the field only through its union member. */
	sev._sigev_un._tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &guard_timer) < 0)
		return -1;
	watching = in_call = used = 0;
	have_timer = true;
	return 0;
}

void
ioguard_thread_fini(void)
{
	if (have_timer)
		timer_delete(guard_timer);
	have_timer = false;
	watching = 0;
}

bool
ioguard_watching(void)
{
	return watching != 0;
}

ssize_t
ioguard_read(int fd, void *buf, size_t len)
{
	bool oneshot = have_timer && !watching;
	ssize_t n;
	int saved;

	in_call = 1;
	if (oneshot)
		arm(IOGUARD_MS, false);
	n = read(fd, buf, len);
	saved = errno;
	if (oneshot)
		arm(0, false);
	in_call = 0;
	errno = saved;
	return n;
}

ssize_t
ioguard_write(int fd, const void *buf, size_t len)
{
	bool oneshot = have_timer && !watching;
	ssize_t n;
	int saved;

	in_call = 1;
	if (oneshot)
		arm(IOGUARD_MS, false);
	n = write(fd, buf, len);
	saved = errno;
	if (oneshot)
		arm(0, false);
	in_call = 0;
	errno = saved;
	return n;
}

ssize_t
ioguard_write_often(int fd, const void *buf, size_t len)
{
	ssize_t n;

	/*
	 * Flags first, timer second: a tick between them sees in_call and
	 * leaves the timer running.
	 */
	used = 1;
	in_call = 1;
	if (have_timer && !watching) {
		watching = 1;
		arm(IOGUARD_MS, true);
	}
	n = write(fd, buf, len);
	in_call = 0;
	return n;
}
