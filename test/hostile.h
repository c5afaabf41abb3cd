/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_TEST_HOSTILE_H
#define VRNG_TEST_HOSTILE_H

/*
 * Shared by the hostile-guest suites (it_ring, it_messages, it_memory,
 * it_eventfd, it_stalls, it_addrspace, it_polling): the queue size they
 * use and the checks more than one of them makes.  See hostile.c.
 */

#include <stdbool.h>
#include <stdint.h>

#include "daemon.h"
#include "frontend.h"

#define QSIZE		16

/* The front-end settings these suites use: the defaults, a QSIZE ring. */
const struct fe_cfg *hostile_cfg(void);

/* A valid writable buffer somewhere in the heap. */
uint64_t buf(struct fe *, uint32_t len);

/* Sends one malformed message. */
typedef void (*bad_msg_fn)(struct fe *);
/*
 * Two guests; guest 0 sends what bad sends (and is dropped for it if
 * expect_drop); guest 1 never notices, socket 0 takes the next
 * front-end, and the daemon is back at its fd count.
 */
void	malformed(bad_msg_fn bad, bool expect_drop);
/* Daemon fd count back at baseline once it has reaped the connection. */
bool	fds_settle(struct vd *, int want, int *got);

/* A memfd of size bytes (the test closes it). */
int	memfd(uint64_t size);
/*
 * Sends one region table (SET_MEM_TABLE, each region its own memfd of
 * the given size) with need_reply; returns the ack.
 */
int	send_table(struct fe *, const struct fe_mem_region *r, unsigned n,
	    const uint64_t *fdsize);

/* The daemon used less than a fifth of a CPU over the next second. */
void	no_spin(struct vd *, const char *what);
/* GET_FEATURES is answered, within 500 ms. */
void	answers_promptly(struct fe *, struct vd *, const char *what);
/* SIGTERM: exit 0 with a clean log, within a second, no thread left. */
void	stops_within_1s(struct vd *);
/* fe_close(), then stops_within_1s() and vd_cleanup(). */
void	end_within_1s(struct vd *, struct fe *);
/* A new fe on socket 0 is served; then stops_within_1s() and vd_cleanup(). */
void	served_again_then_stop(struct vd *, struct fe *,
	    const struct fe_cfg *);

#endif
