/* SPDX-License-Identifier: BSD-3-Clause */
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

/* Guest-error budget of this thread (so of one guest). */
#define GUEST_ERR_BURST		10
#define GUEST_ERR_WINDOW_S	10
static _Thread_local time_t err_window_start;
static _Thread_local unsigned err_in_window;
static _Thread_local unsigned long err_suppressed;

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
log_guest_err(const char *fmt, ...)
{
	struct timespec ts;
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (ts.tv_sec - err_window_start >= GUEST_ERR_WINDOW_S) {
		if (err_suppressed > 0)
			log_warnx("%lu similar guest error lines suppressed",
			    err_suppressed);
		err_window_start = ts.tv_sec;
		err_in_window = 0;
		err_suppressed = 0;
	}
	if (err_in_window >= GUEST_ERR_BURST) {
		err_suppressed++;
		return;
	}
	err_in_window++;
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
