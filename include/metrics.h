/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_METRICS_H
#define VRNG_METRICS_H

/*
 * The statistics as a file that machines read (--metrics-file): the
 * per-guest counters of struct guest_stats and the daemon's own figures in
 * the Prometheus text exposition format (version 0.0.4), for the textfile
 * collector of Prometheus' node exporter, which reads every *.prom file of
 * one directory at each scrape.
 *
 * The file is replaced whole: written under a temporary name in the same
 * directory and renamed over the old one, so a reader sees the old file
 * or the new one, never a part.  The directory is opened at start-up,
 * before the sandbox, and every later call names the file relative to it:
 * the sandbox then allows creating and renaming in that directory only
 * (sandbox_allow_dir).
 *
 * Everything here runs on the main thread: the guest threads only bump
 * their counters, which are read with atomics (guest_stats_read).
 */

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "entropy.h"
#include "guest.h"

/* Every metric name starts with this. */
#define METRICS_PREFIX		"vhost_device_rng_"

/* What one write says; metrics_format() prints it. */
struct metrics_figures {
	const struct guest_stats *guests;	/* [nguests]; guest i at i */
	unsigned	 nguests;
	unsigned	 connected;	/* guests with a front-end now */
	enum entropy_state source;
};

/*
 * The most bytes metrics_format() writes for nguests guests, the NUL
 * included.  Takes the number of guests (0..CONFIG_MAX_SOCKETS); cannot
 * fail.
 */
size_t	metrics_format_size(unsigned nguests);

/*
 * Writes the figures into buf (len bytes) as Prometheus text: for each
 * metric a # HELP and a # TYPE line, then its samples, the per-guest ones
 * with a label guest="<index>".  Counters are whole numbers, but for the
 * throttled time, which is in seconds with nanosecond digits.
 *
 * Returns the length of the text (NUL not counted), or -1 with errno
 * ENOSPC when it does not fit in len bytes (then buf holds a cut text,
 * NUL-terminated when len > 0, that must not be used).
 */
ssize_t	metrics_format(char *buf, size_t len, const struct metrics_figures *);

struct metrics {
	const char	*path;		/* as given, for log lines; NULL: off */
	int		 dir_fd;	/* the file's directory (O_PATH), or -1 */
	int		 timer_fd;	/* timerfd, every interval_s, or -1 */
	unsigned	 interval_s;
	char		 name[NAME_MAX + 1];	/* the file, in dir_fd */
	char		 tmp[NAME_MAX + 1];	/* written, then renamed */
	/* Set by metrics_start(): */
	const struct guest_slot *slots;
	unsigned	 nslots;
	struct entropy	*source;
	struct guest_stats *stats;	/* [nslots], the copy being written */
	char		*buf;
	size_t		 size;
	bool		 failing;	/* the last write failed (logged) */
};

/*
 * Start-up, before the sandbox: opens the directory of path and a timer,
 * and checks the names.  path NULL turns the metrics off: every other call
 * then does nothing, and metrics_fd() is -1.
 *
 * Takes: path (--metrics-file; kept, not copied), interval_s (1..86400,
 * seconds between writes), err and errlen for a one-line reason.
 * Returns 0, or -1 with err filled: the directory cannot be opened (it
 * must exist: nothing is created but the file), path ends in '/' or names
 * "." or "..", the file name is too long for its temporary name, or no
 * timer.  Nothing is written yet; a file already at path stays as it is.
 *
 * The directory's descriptor stays open across execve, its number in the
 * environment (VRNG_METRICS_DIR_FD), so that the image a live upgrade
 * starts takes over the same descriptor: the seccomp filter still in
 * force names it by number.  Call while the process has one thread
 * (setenv).
 */
int	metrics_open(struct metrics *, const char *path, unsigned interval_s,
	    char *err, size_t errlen);

/* The directory to allow writes in (sandbox_allow_dir), or -1 when off. */
int	metrics_dir_fd(const struct metrics *);

/*
 * Once the guest slots exist (after the sandbox is in force): keeps slots
 * (nslots of them) and src, allocates the buffers, writes the file once
 * and starts the timer.  Returns 0, or -1 with errno ENOMEM (nothing
 * written); a write that fails is only logged, as in metrics_write().
 */
int	metrics_start(struct metrics *, const struct guest_slot *slots,
	    unsigned nslots, struct entropy *src);

/*
 * The descriptor for the main poll set: readable once per interval, or
 * -1 when the metrics are off (nothing to poll: no wake-up).
 */
int	metrics_fd(const struct metrics *);

/* The timer is readable: takes its expirations and writes the file. */
void	metrics_timer(struct metrics *);

/*
 * Reads the figures now (counters of every guest, connected front-ends,
 * the source's state) and replaces the file with them.  Returns 0, or -1
 * with errno when a step failed; the first failure of a streak is logged
 * (with the step and the reason), and so is the next success.  No
 * temporary file is left behind.  Main thread only (guest_slot.busy).
 */
int	metrics_write(struct metrics *);

/* Closes the directory and the timer and frees the buffers; the file stays. */
void	metrics_close(struct metrics *);

#endif
