/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-device-rng: a vhost-user back-end for the VirtIO entropy device.
 *
 * The main thread opens the entropy source and the sockets, then only
 * accepts front-ends and handles signals; each accepted front-end gets a
 * guest thread (guest.c) that owns everything of that guest.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "entropy.h"
#include "fdstore.h"
#include "guest.h"
#include "ioguard.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "sdnotify.h"
#include "sandbox.h"
#include "upgrade.h"
#include "vu_proto.h"

/* How long SIGTERM waits for the guest threads. */
#define STOP_WAIT_MS	700
/*
 * When accept(2) fails for want of resources (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM) the connection stays queued and the listener readable: polling
 * it again at once would spin.  So accepting pauses, for a delay that
 * doubles from the first to the last of these, and a streak of failures
 * logs its first line, one line per ACCEPT_LOG_EVERY failures after that
 * (about a minute apart at the longest delay) and its end.
 */
#define ACCEPT_BACKOFF_MIN_MS	100
#define ACCEPT_BACKOFF_MAX_MS	1000
#define ACCEPT_LOG_EVERY	64

struct daemon {
	struct config		 cfg;
	struct entropy		 source;
	struct ratelimit	 rl;
	struct guest_shared	 shared;
	struct metrics		 metrics;	/* --metrics-file */
	struct listener		*listeners;
	struct guest_slot	*slots;
	unsigned		 nslots;
	int			 signal_fd;
	int			 wake_fd;
	bool			 one_shot;	/* --fd was a connection */
	/* Accept back-off: no listener is polled before accept_resume. */
	uint64_t		 accept_resume;	/* monotonic ns; 0: none */
	struct upgrade		 up;	/* SIGUSR2, and a state to restore */
	unsigned		 restored_nslots;
	/* --fd-store: what systemd handed back from its store. */
	struct handover_fds	 stored;
	unsigned		 accept_backoff_ms;
	unsigned long		 accept_failures;	/* this streak */
};

static void
print_capabilities(void)
{
	/*
	 * vhost-user.rst "Backend program conventions" and the
	 * VHostUserBackendCapabilities of vhost-user.json: the rng type
	 * defines no features.
	 */
	printf("{\n  \"type\": \"rng\"\n}\n");
}

static void
print_stats(struct daemon *d)
{
	unsigned i;

	for (i = 0; i < d->nslots; i++) {
		struct guest_stats st;

		guest_stats_read(&d->slots[i], &st);
		log_warnx("stats guest %u: bytes %llu requests %llu "
		    "throttled %.3f s connects %llu errors %llu "
		    "health_failures %llu", i,
		    (unsigned long long)st.bytes,
		    (unsigned long long)st.requests,
		    (double)st.throttled_ns / 1e9,
		    (unsigned long long)st.connects,
		    (unsigned long long)st.errors,
		    (unsigned long long)st.health_failures);
	}
}

/*
 * vu_msg_recv_until() bounds each incoming message itself; these bound a
 * reply to a front-end that stopped reading, and back up the first read.
 */
static void
set_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = VU_MSG_TIMEOUT_MS / 1000,
	    .tv_usec = (VU_MSG_TIMEOUT_MS % 1000) * 1000 };

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		log_warn("socket timeouts");
}

static void
start_guest(struct daemon *d, unsigned i, int conn)
{
	struct guest_slot *slot = &d->slots[i];

	set_timeouts(conn);
	slot->conn_fd = conn;
	if (guest_start(slot) < 0) {
		/* With --fd's one connection there is nothing left to serve. */
		if (d->one_shot)
			fatal("cannot start a thread for guest %u", i);
		log_warn("cannot start a thread for guest %u", i);
		close(conn);
	}
}

/*
 * accept(2) failed with something that will not go away by itself (no
 * descriptors, no memory, a listener gone bad): stop accepting for a
 * while, on every listener (the shortage is the process's or the
 * system's, not one socket's).
 */
static void
accept_failed(struct daemon *d, unsigned i, int err)
{
	unsigned ms = d->accept_backoff_ms;

	ms = ms == 0 ? ACCEPT_BACKOFF_MIN_MS : ms * 2;
	if (ms > ACCEPT_BACKOFF_MAX_MS)
		ms = ACCEPT_BACKOFF_MAX_MS;
	d->accept_backoff_ms = ms;
	d->accept_resume = monotonic_ns() + (uint64_t)ms * 1000000;
	if (d->accept_failures++ % ACCEPT_LOG_EVERY == 0)
		log_warnx("accept on %s: %s (%lu time(s) in a row); not "
		    "accepting for %u ms", d->listeners[i].path,
		    strerror(err), d->accept_failures, ms);
}

static void
accept_on(struct daemon *d, unsigned i)
{
	int conn;

	conn = accept4(d->listeners[i].fd, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0) {
		/* Gone or interrupted: nothing to wait for. */
		if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			accept_failed(d, i, errno);
		return;
	}
	if (d->accept_failures > 0)
		log_warnx("accepting again after %lu failed attempt(s)",
		    d->accept_failures);
	d->accept_failures = 0;
	d->accept_backoff_ms = 0;
	log_info("guest %u: front-end connected on %s", i,
	    d->listeners[i].path);
	start_guest(d, i, conn);
}

/* poll(2) timeout: -1, or the ms until accepting resumes (rounded up). */
static int
accept_pause_ms(struct daemon *d)
{
	uint64_t now;

	if (d->accept_resume == 0)
		return -1;
	now = monotonic_ns();
	if (now >= d->accept_resume) {
		d->accept_resume = 0;
		return -1;
	}
	return (int)((d->accept_resume - now + 999999) / 1000000);
}

static void
reap_guests(struct daemon *d)
{
	uint64_t v;
	unsigned i;

	if (read(d->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("wake eventfd");
	for (i = 0; i < d->nslots; i++) {
		struct guest_slot *s = &d->slots[i];

		if (s->busy && __atomic_load_n(&s->finished,
		    __ATOMIC_ACQUIRE)) {
			pthread_join(s->thread, NULL);
			s->busy = false;
			/* Parked for an upgrade abandoned meanwhile. */
			if (s->parked != NULL && guest_resume(s) == 0)
				continue;
			guest_discard(s);
			log_info("guest %u: connection closed, socket free", i);
		}
	}
}

/*
 * Asks every guest thread to stop and waits for them, but not for ever:
 * SIGTERM must end the daemon within a second even if a thread is stuck
 * in something a front-end made blocking.  Returns false if one is.
 */
static bool
stop_guests(struct daemon *d)
{
	unsigned i;

	if (guests_end(d->slots, d->nslots, GUEST_STOP, STOP_WAIT_MS) == 0)
		return true;
	for (i = 0; i < d->nslots; i++)
		if (d->slots[i].busy)
			log_warnx("guest %u: thread does not stop; exiting "
			    "without it", i);
	return false;
}

/* Returns true when the daemon should exit. */
static bool
handle_signal(struct daemon *d)
{
	struct signalfd_siginfo si;

	if (read(d->signal_fd, &si, sizeof(si)) != sizeof(si))
		return false;
	switch (si.ssi_signo) {
	case SIGUSR1:
		print_stats(d);
		return false;
	case SIGUSR2:
		upgrade_run(&d->up);
		return false;
	case SIGTERM:
	case SIGINT:
		log_info("signal %u: shutting down", si.ssi_signo);
		return true;
	default:
		return false;
	}
}

static void
main_loop(struct daemon *d)
{
	struct pollfd *pfd;
	unsigned i, n;

	/* Signals, wake-ups, the listeners, and last the metrics timer. */
	pfd = reallocarray(NULL, d->nslots + 3, sizeof(*pfd));
	if (pfd == NULL)
		fatal("poll set");
	for (;;) {
		int timeout = accept_pause_ms(d);

		pfd[0].fd = d->signal_fd;
		pfd[0].events = POLLIN;
		pfd[1].fd = d->wake_fd;
		pfd[1].events = POLLIN;
		for (i = 0; i < d->nslots; i++) {
			/*
			 * A busy socket is not polled: a second front-end
			 * waits in the backlog and cannot disturb the first.
			 * Nor is any while accepting pauses.
			 */
			pfd[2 + i].fd = d->slots[i].busy || timeout >= 0 ||
			    !d->listeners[i].listening ? -1 :
			    d->listeners[i].fd;
			pfd[2 + i].events = POLLIN;
			pfd[2 + i].revents = 0;
		}
		/* -1 when the metrics are off: not polled, never a wake-up. */
		pfd[d->nslots + 2].fd = metrics_fd(&d->metrics);
		pfd[d->nslots + 2].events = POLLIN;
		n = d->nslots + 3;
		if (poll(pfd, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			fatal("poll");
		}
		if (pfd[0].revents && handle_signal(d))
			break;
		if (pfd[1].revents) {
			reap_guests(d);
			if (d->one_shot && !d->slots[0].busy)
				break;
		}
		if (pfd[d->nslots + 2].revents)
			metrics_timer(&d->metrics);
		for (i = 0; i < d->nslots; i++)
			if (pfd[2 + i].revents && !d->slots[i].busy)
				accept_on(d, i);
	}
	free(pfd);
}

/*
 * Each connected guest holds about six fds (socket, kick, call, err,
 * timer, stop); with many guests the usual soft limit of 1024 is too low,
 * so take what the hard limit allows.
 */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("raising the open file limit");
	}
}

static int
restore_one(unsigned slot, struct handover_cursor *cur, void *arg)
{
	struct daemon *d = arg;
	char err[512];

	if (d->slots[slot].parked != NULL)
		return -1;
	if (guest_restore(&d->slots[slot], cur, &d->stored, err,
	    sizeof(err)) < 0 || handover_close(cur, err, sizeof(err)) < 0) {
		guest_discard(&d->slots[slot]);
		log_warnx("fd store: guest %u not restored: %s", slot, err);
		return -1;
	}
	return 0;
}

/* After a restart: the guests systemd kept for us (fdstore.h). */
static void
restore_stored(struct daemon *d)
{
	unsigned n;

	n = fdstore_restore(&d->stored, d->nslots, restore_one, d);
	log_info("fd store: %u guest(s) restored from %u stored descriptors",
	    n, d->stored.n);
}

static void
resume_stored(struct daemon *d)
{
	unsigned i;

	for (i = 0; i < d->nslots; i++)
		if (d->slots[i].parked != NULL && !d->slots[i].busy &&
		    guest_resume(&d->slots[i]) < 0) {
			log_warn("guest %u: cannot start its thread", i);
			guest_discard(&d->slots[i]);
		}
	/* The originals: every guest holds duplicates. */
	handover_fds_release(&d->stored);
}

/*
 * The seccomp sandbox (sandbox.h).  After a live upgrade the previous
 * image's filters are still in force (they survive execve): the same
 * filter again is not loaded twice, and a filter that cannot be loaded
 * on top of them (the kernel's cap on a chain) leaves them in force
 * rather than the guests without a daemon.
 */
static void
enter_sandbox(struct daemon *d)
{
	char err[512];
	uint32_t fp;

	d->up.filter_fp = d->up.inherited_fp;
	if (d->cfg.no_sandbox) {
		log_info("sandbox: off (--no-sandbox)%s", d->up.filter_fp ?
		    "; the previous image's filter stays in force" : "");
		return;
	}
	if (sandbox_unsupported_build()) {
		log_info("sandbox: off in this sanitizer build");
		return;
	}
	fp = sandbox_fingerprint();
	if (d->up.restoring && fp != 0 && fp == d->up.inherited_fp) {
		log_info("sandbox: on (this filter is in force already)");
		return;
	}
	if (sandbox_enter(err, sizeof(err)) < 0) {
		if (!d->up.restoring)
			fatalx("%s (--no-sandbox runs without it)", err);
		log_warnx("%s; the previous image's filter stays in force",
		    err);
		return;
	}
	d->up.filter_fp = fp;
	log_info("sandbox: on");
}

/* A copy of the argv array (not of the strings): getopt reorders it. */
static char **
argv_copy(int argc, char *argv[])
{
	char **v = reallocarray(NULL, (size_t)argc + 1, sizeof(*v));
	int i;

	if (v == NULL)
		return argv;
	for (i = 0; i <= argc; i++)
		v[i] = argv[i];
	return v;
}

static void
usage_error(const char *msg)
{
	fprintf(stderr, "%s: %s\n", getprogname(), msg);
	config_usage(stderr);
	exit(1);
}

/*
 * --fd-store with --socket-path: the sockets we made go into the store,
 * so that after a crash the guests' QEMUs (connected or about to
 * reconnect) find the same listening socket, not a new file.
 */
static void
store_listeners(struct daemon *d)
{
	char name[HANDOVER_NAME_MAX];
	unsigned i;

	for (i = 0; i < d->nslots; i++) {
		snprintf(name, sizeof(name), "vrng.listen.%u", i);
		(void)fdstore_put(name, &d->listeners[i].fd, 1);
	}
}

/* The sockets of a predecessor from the fd store, if all are there. */
static bool
stored_listeners(struct daemon *d)
{
	char name[HANDOVER_NAME_MAX], path[sizeof(d->listeners->path)];
	char err[512];
	struct stat st;
	unsigned i;
	int fd;

	for (i = 0; i < d->nslots; i++) {
		snprintf(name, sizeof(name), "vrng.listen.%u", i);
		if ((fd = handover_fds_dup(&d->stored, name)) < 0) {
			if (i > 0)
				fatalx("fd store: socket %u is missing", i);
			return false;
		}
		snprintf(path, sizeof(path), "%s%u", d->cfg.socket_path, i);
		/* Ours to unlink at exit if the file is still that socket. */
		if (lstat(path, &st) < 0)
			memset(&st, 0, sizeof(st));
		if (listener_adopt(&d->listeners[i], fd, path, true,
		    st.st_dev, st.st_ino, err, sizeof(err)) < 0)
			fatalx("fd store: %s", err);
	}
	log_info("fd store: %u listening socket(s) taken back", d->nslots);
	return true;
}

static void
setup_listeners(struct daemon *d)
{
	char err[512];
	int n = 0;

	if (d->cfg.fd >= 0) {
		if (d->up.restoring)
			upgrade_listeners(&d->up, NULL, 0);
		d->nslots = 1;
		d->listeners = calloc(1, sizeof(*d->listeners));
		if (d->listeners == NULL)
			fatal("listeners");
		if (listener_from_fd(&d->listeners[0], d->cfg.fd, err,
		    sizeof(err)) < 0)
			fatalx("%s", err);
		d->one_shot = !d->listeners[0].listening;
		return;
	}
	d->listeners = calloc(CONFIG_MAX_SOCKETS, sizeof(*d->listeners));
	if (d->listeners == NULL)
		fatal("listeners");
	if (d->up.restoring) {
		/* The predecessor's sockets, whatever made them. */
		if (d->restored_nslots == 0 ||
		    d->restored_nslots > CONFIG_MAX_SOCKETS ||
		    (d->cfg.socket_path != NULL &&
		    d->cfg.socket_count != d->restored_nslots))
			fatalx("live upgrade: %u sockets handed over, %u "
			    "configured", d->restored_nslots,
			    d->cfg.socket_count);
		d->nslots = d->restored_nslots;
		upgrade_listeners(&d->up, d->listeners, d->nslots);
		return;
	}
	if (d->cfg.socket_path == NULL || d->cfg.fd_store) {
		n = listeners_from_systemd(d->listeners, CONFIG_MAX_SOCKETS,
		    d->cfg.fd_store ? &d->stored : NULL, err, sizeof(err));
		if (n < 0)
			fatalx("%s", err);
		if (d->cfg.socket_path != NULL && n > 0)
			fatalx("--socket-path, but systemd passed %d sockets",
			    n);
	}
	if (d->cfg.socket_path == NULL) {
		if (n == 0)
			usage_error("no socket: give --socket-path, --fd, or "
			    "start under systemd socket activation");
		if (d->cfg.count_given && d->cfg.socket_count != (unsigned)n)
			fatalx("--socket-count %u, but systemd passed %d "
			    "sockets", d->cfg.socket_count, n);
		d->nslots = (unsigned)n;
		return;
	}
	d->nslots = d->cfg.socket_count;
	if (stored_listeners(d))
		return;
	if (listeners_create(d->listeners, d->nslots, d->cfg.socket_path, err,
	    sizeof(err)) < 0)
		fatalx("%s", err);
	if (fdstore_enabled())
		store_listeners(d);
}

int
main(int argc, char *argv[])
{
	static struct daemon d;
	char err[512];
	sigset_t mask;
	unsigned i;

	/* Before getopt permutes argv: the upgrade execs the same one. */
	upgrade_init(&d.up, argv_copy(argc, argv));
	config_defaults(&d.cfg);
	switch (config_parse(&d.cfg, argc, argv, err, sizeof(err))) {
	case CONFIG_EXIT:
		return 0;
	case CONFIG_ERROR:
		usage_error(err);
		break;
	case CONFIG_RUN:
		break;
	}
	if (d.cfg.print_capabilities) {
		print_capabilities();
		return 0;
	}
	log_init(d.cfg.verbose);
	if (d.cfg.period_given && d.cfg.max_bytes == CONFIG_UNLIMITED)
		log_warnx("--period has no effect without --max-bytes");
	if (d.cfg.metrics_interval_given && d.cfg.metrics_file == NULL)
		log_warnx("--metrics-interval has no effect without "
		    "--metrics-file");
	raise_fd_limit();
	upgrade_load(&d.up, &d.restored_nslots);
	if (d.cfg.fd_store && fdstore_open(err, sizeof(err)) < 0)
		fatalx("%s", err);

	/* The source is checked before any socket exists. */
	if (d.up.restoring)
		upgrade_source(&d.up, &d.source, d.cfg.filename);
	else if (entropy_open(&d.source, d.cfg.filename, err,
	    sizeof(err)) < 0)
		fatalx("%s", err);
	entropy_set_health(&d.source, d.cfg.health_tests);
	if (d.source.tested)
		log_info("entropy source %s: SP 800-90B health tests on "
		    "(repetition count cut-off %u, adaptive proportion "
		    "cut-off %u of %u; H = %u bit per byte, alpha = 2^-%u)",
		    d.source.path, HEALTH_RCT_CUTOFF, HEALTH_APT_CUTOFF,
		    HEALTH_APT_WINDOW, HEALTH_H_BITS, HEALTH_ALPHA_LOG2);
	/* Its directory too, so that a wrong path leaves no socket behind. */
	if (metrics_open(&d.metrics, d.cfg.metrics_file,
	    d.cfg.metrics_interval_s, err, sizeof(err)) < 0)
		fatalx("%s", err);

	/* Signals are taken by the main thread only, through a signalfd. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0)
		fatalx("pthread_sigmask");
	signal(SIGPIPE, SIG_IGN);
	if (guest_install_fault_handler() < 0)
		fatal("SIGBUS handler");
	if (ioguard_install() < 0)
		fatal("eventfd guard handler");
	if ((d.signal_fd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0)
		fatal("signalfd");
	if ((d.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		fatal("eventfd");

	setup_listeners(&d);

	if (entropy_set_guests(&d.source, d.nslots) < 0)
		fatal("entropy source turns");
	d.shared.source = &d.source;
	d.shared.wake_main_fd = d.wake_fd;
	d.shared.poll_us = d.cfg.poll_us;
	if (d.cfg.max_bytes != CONFIG_UNLIMITED) {
		if (ratelimit_init(&d.rl, d.cfg.max_bytes, d.cfg.period_ms,
		    d.nslots, monotonic_ns()) < 0)
			fatal("rate limit");
		d.shared.rl = &d.rl;
	}
	if ((d.slots = calloc(d.nslots, sizeof(*d.slots))) == NULL)
		fatal("guest slots");
	for (i = 0; i < d.nslots; i++) {
		d.slots[i].index = i;
		d.slots[i].shared = &d.shared;
		d.slots[i].stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		d.slots[i].park_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (d.slots[i].stop_fd < 0 || d.slots[i].park_fd < 0)
			fatal("eventfd");
	}
	d.up.listeners = d.listeners;
	d.up.nslots = d.nslots;
	d.up.slots = d.slots;
	d.up.source = &d.source;
	d.up.rl = d.shared.rl;
	d.up.one_shot = d.one_shot;
	if (d.up.restoring)
		upgrade_guests(&d.up);
	else if (d.stored.n > 0)
		restore_stored(&d);

	/* Everything is open: from here on only what serving needs. */
	sandbox_allow_dir(metrics_dir_fd(&d.metrics));
	enter_sandbox(&d);

	if (d.one_shot && d.slots[0].parked == NULL)
		start_guest(&d, 0, d.listeners[0].fd);
	upgrade_resume(&d.up);
	resume_stored(&d);
	for (i = 0; i < d.nslots; i++)
		log_info("guest %u: listening on %s", i, d.listeners[i].path);
	if (d.shared.rl != NULL)
		log_info("rate limit: %llu bytes per %u ms, %llu per guest",
		    (unsigned long long)d.cfg.max_bytes, d.cfg.period_ms,
		    (unsigned long long)(d.cfg.max_bytes / d.nslots));
	if (metrics_start(&d.metrics, d.slots, d.nslots, &d.source) < 0)
		fatal("metrics");
	notify_systemd("READY=1");

	main_loop(&d);

	notify_systemd("STOPPING=1");
	if (!stop_guests(&d)) {
		/* A thread still uses the shared state: do not free it. */
		if (!d.one_shot)
			listeners_close(d.listeners, d.nslots);
		print_stats(&d);
		metrics_write(&d.metrics);
		_exit(0);
	}
	if (!d.one_shot)
		listeners_close(d.listeners, d.nslots);
	print_stats(&d);
	metrics_write(&d.metrics);
	for (i = 0; i < d.nslots; i++) {
		if (d.slots[i].log_budget.suppressed > 0)
			log_warnx("guest %u: %lu guest error lines "
			    "suppressed", i, d.slots[i].log_budget.suppressed);
		close(d.slots[i].stop_fd);
		close(d.slots[i].park_fd);
	}
	free(d.slots);
	free(d.listeners);
	if (d.shared.rl != NULL)
		ratelimit_destroy(&d.rl);
	metrics_close(&d.metrics);
	entropy_close(&d.source);
	close(d.signal_fd);
	close(d.wake_fd);
	return 0;
}
