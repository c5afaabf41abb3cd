/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_TEST_DAEMON_H
#define VRNG_TEST_DAEMON_H

/*
 * The daemon controller of the integration tests (vd_*): starts the
 * daemon binary ($VRNG_BIN), stops it, reads its log and /proc entries.
 * The front-end that talks to it is frontend.h.
 *
 * Functions return 0 (or a value) on success and -1 on failure; the
 * reason of the last failure is in fe_errstr() (frontend.h).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct fe;

/*
 * The daemon under test.  Each one lives in its own temporary directory
 * (under the run directory that it_main creates and removes), with its
 * stderr in <dir>/stderr.log.
 */
struct vd {
	pid_t	 pid;		/* -1 when not running */
	int	 status;	/* waitpid() status once reaped */
	bool	 reaped;
	int64_t	 stop_ms;	/* how long the last vd_stop() waited */
	char	 dir[160];
	char	 base[200];	/* socket base: sockets are <base><i> */
	char	 log[200];
	unsigned nsock;
};

struct vd_opts {
	/* Sockets to create with -s/-c and wait for; 0: no -s, no -c. */
	unsigned	 nsock;
	/* Extra arguments (NULL-terminated); "%d" is not expanded. */
	const char	*args[16];
	/* >= 0: this fd stays open at its number in the daemon (--fd). */
	int		 keep_fd;
	/* >= 0: becomes fd 3 with LISTEN_FDS=1 and LISTEN_PID set. */
	int		 systemd_fd;
	/* Set LISTEN_PID to some other process (the daemon must ignore). */
	bool		 systemd_wrong_pid;
	/* Do not wait for the daemon to come up (expected to fail). */
	bool		 no_wait;
	/* Leave out -v. */
	bool		 quiet;
	/*
	 * A program that runs the daemon (NULL-terminated argv, the daemon's
	 * command line follows it), such as build/test-supervisor ... --.
	 * vd->pid is then that program's.
	 */
	const char	*wrap[12];
};

void	vd_opts_init(struct vd_opts *);
/* Creates the temporary directory; vd_spawn() then starts the daemon. */
int	vd_init(struct vd *);
int	vd_spawn(struct vd *, const struct vd_opts *);
/* vd_init + vd_spawn with nsock sockets and extra args (NULL-terminated). */
int	vd_start(struct vd *, unsigned nsock, ...);
/*
 * QEMU's way: vd_init + vd_spawn of a daemon given one end of a new
 * socketpair with --fd, and fe on the other end, set up with the default
 * settings.
 */
int	vd_start_connected(struct vd *, struct fe *);
/*
 * vd_spawn (after vd_init, which made the directory the source may live
 * in) with nsock sockets, -f path and one more argument (or NULL).
 */
int	vd_spawn_source(struct vd *, unsigned nsock, const char *path,
	    const char *extra);
/* A path inside the daemon's directory. */
const char *vd_path(const struct vd *, const char *name, char *buf,
	    size_t len);
const char *vd_sock(const struct vd *, unsigned i, char *buf, size_t len);
/* Still running (reaps it if not). */
bool	vd_alive(struct vd *);
/* Waits for the daemon to exit by itself; returns the exit code or -1. */
int	vd_wait_exit(struct vd *, int timeout_ms);
/*
 * SIGTERM, then waits up to timeout_ms (SIGKILL after that).  Returns the
 * exit code, or -1 if it had to be killed or died of a signal.
 */
int	vd_stop(struct vd *, int timeout_ms);
/* vd_stop() and checks exit 0 and no sanitizer report in the log. */
int	vd_stop_clean(struct vd *);
/* Kills whatever is left; the directory goes with the run directory. */
void	vd_cleanup(struct vd *);
/* Occurrences of needle in the daemon's stderr so far. */
int	vd_log_count(const struct vd *, const char *needle);
/* Waits until the log contains needle at least n times. */
bool	vd_log_wait(const struct vd *, const char *needle, int n,
	    int timeout_ms);
/* The whole log (static buffer, truncated), for failure messages. */
const char *vd_log_text(const struct vd *);
/* Open fds of the daemon (/proc/<pid>/fd), or -1. */
int	vd_count_fds(const struct vd *);
/* Lines of /proc/<pid>/maps mentioning "memfd:", or -1. */
int	vd_count_memfd_maps(const struct vd *);
/* CPU time (user + system) the daemon used so far, in ms, or -1. */
int64_t	vd_cpu_ms(const struct vd *);
/*
 * Voluntary context switches of all the daemon's threads so far (each
 * wake-up from poll(2) is one), or -1.
 */
int64_t	vd_ctxt_switches(const struct vd *);
/*
 * The number after field ("VmRSS:", at a line start) in the /proc status
 * file path, or -1; proc_status() reads /proc/<pid>/status (pid 0: this
 * process's).
 */
int64_t	proc_status_file(const char *path, const char *field);
int64_t	proc_status(pid_t pid, const char *field);
/*
 * What the daemon costs while the caller sleeps ms: the CPU time and the
 * voluntary context switches (wake-ups) it used meanwhile, and the counts
 * at the start (-1 if they could not be read).
 */
struct vd_cost {
	int64_t		 cpu0, cs0;
	int64_t		 cpu_ms;
	int64_t		 wakeups;
};
struct vd_cost vd_cost_over(const struct vd *, int ms);
/* The daemon's address space (VmSize), in KiB, or -1. */
int64_t	vd_vm_kib(const struct vd *);

#endif
