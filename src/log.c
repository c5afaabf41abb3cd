/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Logging: the level, "guest N:" prefixes per thread, and the per-guest
 * budget for lines a guest's errors cause.  See log.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "log.h"

/* Written once in main() before any thread exists, then only read. */
static int verbosity;

static _Thread_local int guest_index = -1;

/* Guest-error budget: the guest's (log_set_budget) or this thread's. */
#define GUEST_ERR_BURST		10
#define GUEST_ERR_WINDOW_S	10
static _Thread_local struct log_budget own_budget;
static _Thread_local struct log_budget *budget;

void
log_init(int v)
{
	verbosity = v;
}

int
log_verbosity(void)
{
	return verbosity;
}

void
log_set_guest(int index)
{
	guest_index = index;
}

static void
vlog(const char *level, const char *fmt, va_list ap, int errnum)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* One fprintf per line so lines of different threads do not mix. */
	if (guest_index >= 0 && errnum)
		fprintf(stderr, "%s: %sguest %d: %s: %s\n", getprogname(),
		    level, guest_index, msg, strerror(errnum));
	else if (guest_index >= 0)
		fprintf(stderr, "%s: %sguest %d: %s\n", getprogname(), level,
		    guest_index, msg);
	else if (errnum)
		fprintf(stderr, "%s: %s%s: %s\n", getprogname(), level, msg,
		    strerror(errnum));
	else
		fprintf(stderr, "%s: %s%s\n", getprogname(), level, msg);
}

void
log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog("", fmt, ap, saved);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("", fmt, ap, 0);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	if (verbosity < LOG_LVL_INFO)
		return;
	va_start(ap, fmt);
	vlog("", fmt, ap, 0);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (verbosity < LOG_LVL_DEBUG)
		return;
	va_start(ap, fmt);
	vlog("debug: ", fmt, ap, 0);
	va_end(ap);
}

void
log_set_budget(struct log_budget *b)
{
	budget = b;
}

void
log_flush_suppressed(void)
{
	struct log_budget *b = budget != NULL ? budget : &own_budget;

	if (b->suppressed > 0)
		log_warnx("%lu similar guest error lines suppressed",
		    b->suppressed);
	b->suppressed = 0;
}

void
log_guest_err(const char *fmt, ...)
{
	struct log_budget *b = budget != NULL ? budget : &own_budget;
	struct timespec ts;
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (ts.tv_sec - b->window_start >= GUEST_ERR_WINDOW_S) {
		log_flush_suppressed();
		b->window_start = ts.tv_sec;
		b->in_window = 0;
	}
	if (b->in_window >= GUEST_ERR_BURST) {
		b->suppressed++;
		return;
	}
	b->in_window++;
	va_start(ap, fmt);
	vlog("", fmt, ap, 0);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog("fatal: ", fmt, ap, saved);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("fatal: ", fmt, ap, 0);
	va_end(ap);
	exit(1);
}
