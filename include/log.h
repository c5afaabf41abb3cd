/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_LOG_H
#define VRNG_LOG_H

#include <stdarg.h>
#include <stdbool.h>

/*
 * Logging in the OpenBSD daemon manner: log_warn appends strerror(errno),
 * log_warnx does not.  Lines go to stderr with the program name, and each
 * line says which guest (socket index) it concerns when a guest thread
 * writes it.
 *
 * Levels: 0 warnings only, 1 (-v) informational, 2 (-vv) debug.
 */

enum log_level {
	LOG_LVL_WARN = 0,
	LOG_LVL_INFO = 1,
	LOG_LVL_DEBUG = 2,
};

void	log_init(int verbosity);
int	log_verbosity(void);
/* Names the guest for every line this thread logs; -1 for the main thread. */
void	log_set_guest(int index);

void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/*
 * Errors caused by a guest or front-end go through this one: a hostile guest
 * gets a few lines per window, then one "suppressed" count, so it cannot
 * flood the log.  The budget belongs to the guest's socket (so reconnecting
 * does not refill it); a thread points the log at it with log_set_budget.
 */
struct log_budget {
	long		window_start;	/* CLOCK_MONOTONIC seconds */
	unsigned	in_window;
	unsigned long	suppressed;
};

void	log_guest_err(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_set_budget(struct log_budget *);
/* Reports the suppressed count now (a guest thread does, when it ends). */
void	log_flush_suppressed(void);

/* Debug lines that cost nothing unless -vv, but are still type-checked. */
#define DPRINTF(...) do {						\
	if (log_verbosity() >= LOG_LVL_DEBUG)				\
		log_debug(__VA_ARGS__);					\
} while (0)

#endif
