/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The daemon controller of the integration tests: starts the daemon
 * binary in its own directory, watches its log, /proc entries and exit.
 * See daemon.h.
 *
 * Everything here has a timeout: a daemon that stops answering makes a
 * test fail, never hang.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "frontend.h"

/* A daemon under the sanitizers starts slowly on a busy machine. */
#define START_TIMEOUT_MS	10000

void
vd_opts_init(struct vd_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->keep_fd = -1;
	o->systemd_fd = -1;
}

int
vd_init(struct vd *vd)
{
	const char *run = getenv("VRNG_IT_RUNDIR");
	char tmpl[sizeof(vd->dir)];

	memset(vd, 0, sizeof(*vd));
	vd->pid = -1;
	if (run == NULL)
		run = "/tmp";
	snprintf(tmpl, sizeof(tmpl), "%s/t.XXXXXX", run);
	if (mkdtemp(tmpl) == NULL) {
		fe_seterr("mkdtemp %s: %s", tmpl, strerror(errno));
		return -1;
	}
	snprintf(vd->dir, sizeof(vd->dir), "%s", tmpl);
	snprintf(vd->base, sizeof(vd->base), "%s/rng.sock", vd->dir);
	snprintf(vd->log, sizeof(vd->log), "%s/stderr.log", vd->dir);
	return 0;
}

const char *
vd_path(const struct vd *vd, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", vd->dir, name);
	return buf;
}

const char *
vd_sock(const struct vd *vd, unsigned i, char *buf, size_t len)
{
	snprintf(buf, len, "%s%u", vd->base, i);
	return buf;
}

/*
 * In the child, between fork and exec.  The test process has one thread,
 * so setenv() here is safe although not async-signal-safe.
 */
static void __attribute__((noreturn))
child_exec(const char *bin, char *const argv[], pid_t parent, int nullfd,
    int outfd, int logfd, const struct vd_opts *o)
{
	char pidbuf[32];
	sigset_t none;
	int keep = -1, fd, max;

	/* A test that dies (failed assertion, timeout) takes us along. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	if (dup2(nullfd, 0) < 0 || dup2(outfd, 1) < 0 || dup2(logfd, 2) < 0)
		_exit(127);
	if (o->systemd_fd >= 0) {
		if (o->systemd_fd != 3 && dup2(o->systemd_fd, 3) < 0)
			_exit(127);
		fcntl(3, F_SETFD, 0);
		keep = 3;
	} else if (o->keep_fd >= 0) {
		/* --fd=N: N must survive exec. */
		fcntl(o->keep_fd, F_SETFD, 0);
		keep = o->keep_fd;
	}
	/* Whatever else the test process has open is none of its business. */
	max = (int)sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (fd = 3; fd < max; fd++)
		if (fd != keep)
			close(fd);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	if (o->systemd_fd >= 0) {
		snprintf(pidbuf, sizeof(pidbuf), "%ld", o->systemd_wrong_pid ?
		    (long)getppid() : (long)getpid());
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_PID", pidbuf, 1);
	}
	execv(bin, argv);
	_exit(127);
}

/* Reaps the daemon if it exited; true if it did (or was reaped). */
static bool
try_reap(struct vd *vd)
{
	int st;
	pid_t r;

	if (vd->reaped || vd->pid <= 0)
		return true;
	r = waitpid(vd->pid, &st, WNOHANG);
	if (r == vd->pid) {
		vd->status = st;
		vd->reaped = true;
		return true;
	}
	return false;
}

bool
vd_alive(struct vd *vd)
{
	return vd->pid > 0 && !try_reap(vd);
}

int
vd_spawn(struct vd *vd, const struct vd_opts *o)
{
	char bin[PATH_MAX], count[16], outpath[300];
	const char *env = getenv("VRNG_BIN");
	char *argv[48];
	int argc = 0, nullfd, outfd, logfd, expect, i;
	int64_t deadline;
	pid_t parent = getpid();

	if (env == NULL || env[0] == '\0')
		env = "./vhost-device-rng";
	if (realpath(env, bin) == NULL) {
		fe_seterr("daemon binary %s: %s", env, strerror(errno));
		return -1;
	}
	for (i = 0; i < 12 && o->wrap[i] != NULL; i++)
		argv[argc++] = (char *)o->wrap[i];
	argv[argc++] = bin;
	if (!o->quiet)
		argv[argc++] = (char *)"-v";
	if (o->nsock > 0) {
		snprintf(count, sizeof(count), "%u", o->nsock);
		argv[argc++] = (char *)"-s";
		argv[argc++] = vd->base;
		argv[argc++] = (char *)"-c";
		argv[argc++] = count;
	}
	for (i = 0; i < 16 && o->args[i] != NULL; i++)
		argv[argc++] = (char *)o->args[i];
	argv[argc] = NULL;
	vd->nsock = o->nsock;

	snprintf(outpath, sizeof(outpath), "%s/stdout.log", vd->dir);
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	outfd = open(outpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	    0644);
	logfd = open(vd->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	    0644);
	if (nullfd < 0 || outfd < 0 || logfd < 0) {
		fe_seterr("opening the daemon's stdio: %s", strerror(errno));
		return -1;
	}
	vd->reaped = false;
	vd->pid = fork();
	if (vd->pid == 0)
		child_exec(argv[0], argv, parent, nullfd, outfd, logfd, o);
	close(nullfd);
	close(outfd);
	close(logfd);
	if (vd->pid < 0) {
		fe_seterr("fork: %s", strerror(errno));
		return -1;
	}
	if (o->no_wait || (o->quiet && o->nsock == 0))
		return 0;

	/*
	 * Ready when it said "listening on" for every socket (-v); for
	 * sockets it creates, also when the socket files exist.
	 */
	expect = o->quiet ? 0 : o->nsock > 0 ? (int)o->nsock : 1;
	/* Under valgrind (make check-valgrind) start-up is many times slower. */
	deadline = fe_now_ms() + START_TIMEOUT_MS *
	    (getenv("VRNG_UNDER_VALGRIND") != NULL ? 3 : 1);
	for (;;) {
		bool ready = expect == 0 ||
		    vd_log_count(vd, "listening on") >= expect;
		unsigned s;

		for (s = 0; ready && s < o->nsock; s++) {
			char path[256];
			struct stat st;

			vd_sock(vd, s, path, sizeof(path));
			if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
				ready = false;
		}
		if (ready)
			return 0;
		if (!vd_alive(vd)) {
			fe_seterr("daemon exited during start (status "
			    "0x%x): %s", vd->status, vd_log_text(vd));
			return -1;
		}
		if (fe_now_ms() > deadline) {
			fe_seterr("daemon not ready after %d ms: %s",
			    START_TIMEOUT_MS, vd_log_text(vd));
			return -1;
		}
		fe_sleep_ms(5);
	}
}

int
vd_start(struct vd *vd, unsigned nsock, ...)
{
	struct vd_opts o;
	const char *a;
	va_list ap;
	int n = 0;

	vd_opts_init(&o);
	o.nsock = nsock;
	va_start(ap, nsock);
	while ((a = va_arg(ap, const char *)) != NULL && n < 15)
		o.args[n++] = a;
	va_end(ap);
	if (vd_init(vd) < 0)
		return -1;
	return vd_spawn(vd, &o);
}

int
vd_start_connected(struct vd *vd, struct fe *fe)
{
	struct vd_opts o;
	char arg[32];
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		fe_seterr("socketpair: %s", strerror(errno));
		return -1;
	}
	vd_opts_init(&o);
	snprintf(arg, sizeof(arg), "--fd=%d", sv[1]);
	o.args[0] = arg;
	o.keep_fd = sv[1];
	if (vd_init(vd) < 0 || vd_spawn(vd, &o) < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	close(sv[1]);
	fe_init(fe);
	fe_attach(fe, sv[0]);
	return fe_setup(fe, NULL);
}

int
vd_spawn_source(struct vd *vd, unsigned nsock, const char *path,
    const char *extra)
{
	struct vd_opts o;

	vd_opts_init(&o);
	o.nsock = nsock;
	o.args[0] = "-f";
	o.args[1] = path;
	o.args[2] = extra;
	return vd_spawn(vd, &o);
}

int
vd_wait_exit(struct vd *vd, int timeout_ms)
{
	int64_t deadline = fe_now_ms() + timeout_ms;

	while (!try_reap(vd)) {
		if (fe_now_ms() >= deadline) {
			fe_seterr("daemon still running after %d ms",
			    timeout_ms);
			return -1;
		}
		fe_sleep_ms(2);
	}
	if (WIFEXITED(vd->status))
		return WEXITSTATUS(vd->status);
	fe_seterr("daemon died of signal %d", WTERMSIG(vd->status));
	return -1;
}

int
vd_stop(struct vd *vd, int timeout_ms)
{
	int64_t t0 = fe_now_ms();
	int rc;

	if (vd->pid <= 0)
		return -1;
	if (!try_reap(vd))
		kill(vd->pid, SIGTERM);
	rc = vd_wait_exit(vd, timeout_ms);
	vd->stop_ms = fe_now_ms() - t0;
	if (!vd->reaped) {
		kill(vd->pid, SIGKILL);
		waitpid(vd->pid, &vd->status, 0);
		vd->reaped = true;
		fe_seterr("daemon ignored SIGTERM for %d ms: %s", timeout_ms,
		    vd_log_text(vd));
		return -1;
	}
	return rc;
}

int
vd_stop_clean(struct vd *vd)
{
	static const char *const bad[] = { "AddressSanitizer",
	    "LeakSanitizer", "runtime error", "fatal:" };
	unsigned i;
	int rc;

	rc = vd_stop(vd, 5000);
	if (rc != 0) {
		if (vd->reaped && WIFEXITED(vd->status))
			fe_seterr("daemon exited with %d: %s", rc,
			    vd_log_text(vd));
		else if (vd->reaped && WIFSIGNALED(vd->status))
			fe_seterr("daemon died of signal %d: %s",
			    WTERMSIG(vd->status), vd_log_text(vd));
		return -1;
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (vd_log_count(vd, bad[i]) > 0) {
			fe_seterr("daemon log has \"%s\": %s", bad[i],
			    vd_log_text(vd));
			return -1;
		}
	return 0;
}

void
vd_cleanup(struct vd *vd)
{
	if (vd->pid > 0 && !try_reap(vd)) {
		kill(vd->pid, SIGKILL);
		waitpid(vd->pid, &vd->status, 0);
		vd->reaped = true;
	}
}

/* Reads the log into a malloc'ed, NUL-terminated buffer. */
static char *
slurp(const char *path, size_t *lenp)
{
	size_t cap = 8192, len = 0;
	char *buf = malloc(cap);
	ssize_t n;
	int fd;

	if (buf == NULL)
		return NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		for (;;) {
			if (cap - len < 4096) {
				char *nb = realloc(buf, cap * 2);

				if (nb == NULL)
					break;
				buf = nb;
				cap *= 2;
			}
			n = read(fd, buf + len, cap - len - 1);
			if (n <= 0)
				break;
			len += (size_t)n;
		}
		close(fd);
	}
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return buf;
}

int
vd_log_count(const struct vd *vd, const char *needle)
{
	size_t len, nlen = strlen(needle);
	char *buf = slurp(vd->log, &len), *p;
	int n = 0;

	if (buf == NULL)
		return -1;
	for (p = buf; (p = memmem(p, len - (size_t)(p - buf), needle,
	    nlen)) != NULL; p += nlen)
		n++;
	free(buf);
	return n;
}

bool
vd_log_wait(const struct vd *vd, const char *needle, int n, int timeout_ms)
{
	int64_t deadline = fe_now_ms() + timeout_ms;

	while (vd_log_count(vd, needle) < n) {
		if (fe_now_ms() >= deadline)
			return false;
		fe_sleep_ms(5);
	}
	return true;
}

const char *
vd_log_text(const struct vd *vd)
{
	static char text[3000];
	size_t len;
	char *buf = slurp(vd->log, &len);

	if (buf == NULL)
		return "(no log)";
	/* The end of the log says most about a failure. */
	snprintf(text, sizeof(text), "\n--- daemon log%s ---\n%s",
	    len >= sizeof(text) - 40 ? " (tail)" : "",
	    len >= sizeof(text) - 40 ? buf + len - (sizeof(text) - 40) : buf);
	free(buf);
	return text;
}

/*
 * The entries of the directory path but "." and "..", each given to fn
 * (if not NULL) with arg; returns how many there were, or -1.
 */
static int
dir_entries(const char *path, void (*fn)(const char *name, void *arg),
    void *arg)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (fn != NULL)
			fn(de->d_name, arg);
		n++;
	}
	closedir(d);
	return n;
}

int
vd_count_fds(const struct vd *vd)
{
	char path[64];

	/* What "ls /proc/<pid>/fd | wc -l" prints. */
	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)vd->pid);
	return dir_entries(path, NULL, NULL);
}

int
vd_count_memfd_maps(const struct vd *vd)
{
	char path[64], *buf, *p;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/maps", (long)vd->pid);
	if ((buf = slurp(path, NULL)) == NULL)
		return -1;
	for (p = buf; (p = strstr(p, "memfd:")) != NULL; p++)
		n++;
	free(buf);
	return n;
}

int64_t
vd_cpu_ms(const struct vd *vd)
{
	unsigned long long ut, st;
	char path[64], *buf, *p;
	long hz = sysconf(_SC_CLK_TCK);

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)vd->pid);
	if ((buf = slurp(path, NULL)) == NULL)
		return -1;
	/* Fields 14 and 15, counted after the ")" that ends the name. */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
	    "%*u %*u %llu %llu", &ut, &st) != 2) {
		free(buf);
		return -1;
	}
	free(buf);
	return (int64_t)((ut + st) * 1000 / (unsigned long long)hz);
}

int64_t
proc_status_file(const char *path, const char *field)
{
	char *buf, *p;
	long long v;
	int64_t ret = -1;

	if ((buf = slurp(path, NULL)) == NULL)
		return -1;
	/* At a line start: "nonvoluntary_..." must not match "voluntary_". */
	for (p = buf; (p = strstr(p, field)) != NULL; p++)
		if (p == buf || p[-1] == '\n') {
			if (sscanf(p + strlen(field), " %lld", &v) == 1)
				ret = v;
			break;
		}
	free(buf);
	return ret;
}

struct switches {
	pid_t		 pid;
	int64_t		 sum;
};

/* Adds the voluntary context switches of task to s->sum. */
static void
add_switches(const char *task, void *arg)
{
	struct switches *s = arg;
	char path[300];
	int64_t v;

	snprintf(path, sizeof(path), "/proc/%ld/task/%s/status",
	    (long)s->pid, task);
	/* A thread that ended meanwhile counts for nothing. */
	if ((v = proc_status_file(path, "voluntary_ctxt_switches:")) > 0)
		s->sum += v;
}

int64_t
vd_ctxt_switches(const struct vd *vd)
{
	struct switches s = { vd->pid, 0 };
	char path[64];

	snprintf(path, sizeof(path), "/proc/%ld/task", (long)vd->pid);
	return dir_entries(path, add_switches, &s) < 0 ? -1 : s.sum;
}

struct vd_cost
vd_cost_over(const struct vd *vd, int ms)
{
	struct vd_cost c;

	c.cs0 = vd_ctxt_switches(vd);
	c.cpu0 = vd_cpu_ms(vd);
	fe_sleep_ms(ms);
	c.wakeups = vd_ctxt_switches(vd) - c.cs0;
	c.cpu_ms = vd_cpu_ms(vd) - c.cpu0;
	return c;
}

int64_t
proc_status(pid_t pid, const char *field)
{
	char path[64];

	if (pid == 0)
		snprintf(path, sizeof(path), "/proc/self/status");
	else
		snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	return proc_status_file(path, field);
}

int64_t
vd_vm_kib(const struct vd *vd)
{
	return proc_status(vd->pid, "VmSize:");
}
