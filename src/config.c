/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Command line.  The options follow the Rust vhost-device-rng daemon (so a
 * user of that one misses nothing) and the "Backend program conventions" of
 * QEMU's docs/interop/vhost-user.rst (--socket-path, --fd,
 * --print-capabilities).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "config.h"

#ifndef VERSION
#define VERSION "0.0"
#endif

enum {
	OPT_FD = 0x100,
	OPT_PRINT_CAPS,
	OPT_POLL_US,
	OPT_NO_SANDBOX,
	OPT_HEALTH_TESTS,
	OPT_FD_STORE,
	OPT_METRICS_FILE,
	OPT_METRICS_INTERVAL,
};

/*
 * The options: getopt_long()'s table, the getopt string and --help are
 * all made from this one table, so adding an option is one entry here
 * (then its case in config_parse(), and its text in the man page and the
 * README, which scripts/check-options compares with --help).
 *
 * help is a printf format for at most two unsigned values, v1 and v2;
 * a '\n' in it continues the text on the next line of --help.  The short
 * option is shown with the first entry that has it (--rng-source is an
 * alias of --filename).
 */
static const struct opt {
	const char	*name;
	int		 has_arg;	/* no_argument or required_argument */
	int		 val;		/* the short option, or OPT_* */
	const char	*arg;		/* the value's name in --help */
	const char	*help;
	unsigned	 v1, v2;
} opts[] = {
	{ "socket-path", required_argument, 's', "PATH",
	    "listen on PATH0 .. PATH<count-1>", 0, 0 },
	{ "socket-count", required_argument, 'c', "N",
	    "number of guests (1..%u, default 1)", CONFIG_MAX_SOCKETS, 0 },
	{ "filename", required_argument, 'f', "FILE",
	    "entropy source (default " CONFIG_DEFAULT_SOURCE ");", 0, 0 },
	{ "rng-source", required_argument, 'f', "FILE",
	    "same as --filename", 0, 0 },
	{ "max-bytes", required_argument, 'm', "N",
	    "at most N bytes per period for the\n"
	    "whole daemon (default unlimited)", 0, 0 },
	{ "period", required_argument, 'p', "MS",
	    "rate-limit period, 1..%u ms\n(default %u)",
	    CONFIG_MAX_PERIOD_MS, CONFIG_DEFAULT_PERIOD_MS },
	{ "fd", required_argument, OPT_FD, "FDNUM",
	    "serve the socket open on FDNUM", 0, 0 },
	{ "poll-us", required_argument, OPT_POLL_US, "N",
	    "after serving, spin on the ring for\n"
	    "up to N us before sleeping (0..%u,\n"
	    "default 0: off; costs CPU)", CONFIG_MAX_POLL_US, 0 },
	{ "health-tests", required_argument, OPT_HEALTH_TESTS, "on|off",
	    "SP 800-90B health tests on a source\n"
	    "other than the kernel's CSPRNG\n"
	    "(default on)", 0, 0 },
	{ "metrics-file", required_argument, OPT_METRICS_FILE, "PATH",
	    "write the statistics to PATH for\n"
	    "Prometheus (text format), replaced\n"
	    "atomically every interval", 0, 0 },
	{ "metrics-interval", required_argument, OPT_METRICS_INTERVAL, "S",
	    "seconds between two writes of the\n"
	    "metrics file (1..%u, default %u)",
	    CONFIG_MAX_METRICS_INTERVAL, CONFIG_DEFAULT_METRICS_INTERVAL },
	{ "print-capabilities", no_argument, OPT_PRINT_CAPS, NULL,
	    "print the back-end JSON and exit", 0, 0 },
	{ "fd-store", no_argument, OPT_FD_STORE, NULL,
	    "keep connections in systemd's fd store\n"
	    "(a restart resumes every guest)", 0, 0 },
	{ "no-sandbox", no_argument, OPT_NO_SANDBOX, NULL,
	    "no seccomp filter (for debugging)", 0, 0 },
	{ "verbose", no_argument, 'v', NULL,
	    "more logging (twice: debug)", 0, 0 },
	{ "help", no_argument, 'h', NULL, "this help", 0, 0 },
	{ "version", no_argument, 'V', NULL, "print the version", 0, 0 },
};

#define NOPTS		(sizeof(opts) / sizeof(opts[0]))
/* Where the help text starts in a line of --help. */
#define HELP_COLUMN	27

/* Whether opts[i] is the first entry with its short option. */
static bool
shows_short(size_t i)
{
	size_t j;

	if (opts[i].val >= 0x100)
		return false;
	for (j = 0; j < i; j++)
		if (opts[j].val == opts[i].val)
			return false;
	return true;
}

/* getopt_long()'s table and option string ("+:s:c:..."), from opts. */
static void
getopt_tables(struct option *lo, char *shortopts, size_t len)
{
	size_t i, n = 0;

	shortopts[n++] = ':';
	for (i = 0; i < NOPTS; i++) {
		lo[i].name = opts[i].name;
		lo[i].has_arg = opts[i].has_arg;
		lo[i].flag = NULL;
		lo[i].val = opts[i].val;
		if (!shows_short(i) || n + 3 > len)
			continue;
		shortopts[n++] = (char)opts[i].val;
		if (opts[i].has_arg == required_argument)
			shortopts[n++] = ':';
	}
	memset(&lo[NOPTS], 0, sizeof(lo[NOPTS]));
	shortopts[n] = '\0';
}

void
config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->socket_count = 1;
	cfg->filename = CONFIG_DEFAULT_SOURCE;
	cfg->period_ms = CONFIG_DEFAULT_PERIOD_MS;
	cfg->max_bytes = CONFIG_UNLIMITED;
	cfg->fd = -1;
	cfg->health_tests = true;
	cfg->metrics_interval_s = CONFIG_DEFAULT_METRICS_INTERVAL;
}

void
config_usage(FILE *fp)
{
	char left[64], text[256], *line, *next;
	size_t i;
	int n;

	fprintf(fp,
	    "usage: %s -s path [-v] [-c count] [-f file] [-m bytes] [-p ms]\n"
	    "       %s --fd fdnum [-v] [-f file] [-m bytes] [-p ms]\n"
	    "       %s [-v] [-f file] [-m bytes] [-p ms]   (systemd "
	    "socket activation)\n"
	    "       %s --print-capabilities | -h | -V\n"
	    "\n",
	    getprogname(), getprogname(), getprogname(), getprogname());
	for (i = 0; i < NOPTS; i++) {
		if (shows_short(i))
			n = snprintf(left, sizeof(left), "  -%c, --%s%s%s",
			    opts[i].val, opts[i].name,
			    opts[i].arg != NULL ? "=" : "",
			    opts[i].arg != NULL ? opts[i].arg : "");
		else
			n = snprintf(left, sizeof(left), "      --%s%s%s",
			    opts[i].name, opts[i].arg != NULL ? "=" : "",
			    opts[i].arg != NULL ? opts[i].arg : "");
		snprintf(text, sizeof(text), opts[i].help, opts[i].v1,
		    opts[i].v2);
		fprintf(fp, "%s%*s", left,
		    n < HELP_COLUMN ? HELP_COLUMN - n : 1, "");
		for (line = text; line != NULL; line = next) {
			if ((next = strchr(line, '\n')) != NULL)
				*next++ = '\0';
			fprintf(fp, "%s\n", line);
			if (next != NULL)
				fprintf(fp, "%*s", HELP_COLUMN, "");
		}
	}
}

static enum config_result
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return CONFIG_ERROR;
}

/*
 * Unsigned decimal in [min, max]; no sign, no trailing garbage, no
 * overflow.  Returns NULL or what is wrong.
 */
static const char *
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return "not a non-negative number";
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0')
		return "not a number";
	if (errno == ERANGE || v > max)
		return "too large";
	if (v < min)
		return "too small";
	*out = v;
	return NULL;
}

/*
 * "--print-capabilities" or an abbreviation getopt_long would take for it
 * (at least "--pr": "--p" could also be --period).
 */
static bool
is_print_capabilities(const char *arg)
{
	static const char full[] = "--print-capabilities";
	size_t len = strlen(arg);

	return len >= 4 && len < sizeof(full) && strncmp(arg, full, len) == 0;
}

enum config_result
config_parse(struct config *cfg, int argc, char *argv[], char *err,
    size_t errlen)
{
	struct option long_options[NOPTS + 1];
	char shortopts[2 * NOPTS + 2];
	const char *why;
	uint64_t v;
	int ch, i;

	err[0] = '\0';
	getopt_tables(long_options, shortopts, sizeof(shortopts));
	/*
	 * vhost-user.rst "Backend program conventions": with
	 * --print-capabilities, "other options and arguments should be
	 * ignored", even bad ones.
	 */
	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (is_print_capabilities(argv[i])) {
			cfg->print_capabilities = true;
			return CONFIG_RUN;
		}
	/*
	 * optind = 0, not 1: glibc keeps its place inside an option cluster
	 * ("-xv") across calls unless told to start over completely.
	 */
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shortopts, long_options,
	    NULL)) != -1) {
		switch (ch) {
		case 's':
			if (optarg[0] == '\0')
				return fail(err, errlen,
				    "--socket-path: empty path");
			cfg->socket_path = optarg;
			break;
		case 'c':
			if ((why = parse_u64(optarg, 1, CONFIG_MAX_SOCKETS,
			    &v)) != NULL)
				return fail(err, errlen, "--socket-count %s: "
				    "%s (1..%u)", optarg, why,
				    CONFIG_MAX_SOCKETS);
			cfg->socket_count = (unsigned)v;
			cfg->count_given = true;
			break;
		case 'f':
			if (optarg[0] == '\0')
				return fail(err, errlen,
				    "--filename: empty path");
			cfg->filename = optarg;
			break;
		case 'p':
			if ((why = parse_u64(optarg, 1, CONFIG_MAX_PERIOD_MS,
			    &v)) != NULL)
				return fail(err, errlen, "--period %s: %s "
				    "(1..%u ms)", optarg, why,
				    CONFIG_MAX_PERIOD_MS);
			cfg->period_ms = (uint32_t)v;
			cfg->period_given = true;
			break;
		case 'm':
			if ((why = parse_u64(optarg, 1, UINT64_MAX, &v)) !=
			    NULL)
				return fail(err, errlen, "--max-bytes %s: %s "
				    "(1..%llu)", optarg, why,
				    (unsigned long long)UINT64_MAX);
			cfg->max_bytes = v;
			break;
		case OPT_FD:
			if ((why = parse_u64(optarg, 0, INT_MAX, &v)) != NULL)
				return fail(err, errlen, "--fd %s: %s",
				    optarg, why);
			cfg->fd = (int)v;
			break;
		case OPT_PRINT_CAPS:
			cfg->print_capabilities = true;
			break;
		case OPT_POLL_US:
			if ((why = parse_u64(optarg, 0, CONFIG_MAX_POLL_US,
			    &v)) != NULL)
				return fail(err, errlen, "--poll-us %s: %s "
				    "(0..%u)", optarg, why, CONFIG_MAX_POLL_US);
			cfg->poll_us = (uint32_t)v;
			break;
		case OPT_NO_SANDBOX:
			cfg->no_sandbox = true;
			break;
		case OPT_FD_STORE:
			cfg->fd_store = true;
			break;
		case OPT_HEALTH_TESTS:
			if (strcmp(optarg, "on") == 0)
				cfg->health_tests = true;
			else if (strcmp(optarg, "off") == 0)
				cfg->health_tests = false;
			else
				return fail(err, errlen, "--health-tests %s: "
				    "not on or off", optarg);
			break;
		case OPT_METRICS_FILE:
			if (optarg[0] == '\0')
				return fail(err, errlen,
				    "--metrics-file: empty path");
			cfg->metrics_file = optarg;
			break;
		case OPT_METRICS_INTERVAL:
			if ((why = parse_u64(optarg, 1,
			    CONFIG_MAX_METRICS_INTERVAL, &v)) != NULL)
				return fail(err, errlen, "--metrics-interval "
				    "%s: %s (1..%u s)", optarg, why,
				    CONFIG_MAX_METRICS_INTERVAL);
			cfg->metrics_interval_s = (uint32_t)v;
			cfg->metrics_interval_given = true;
			break;
		case 'v':
			cfg->verbose++;
			break;
		case 'h':
			config_usage(stdout);
			return CONFIG_EXIT;
		case 'V':
			printf("%s %s\n", getprogname(), VERSION);
			return CONFIG_EXIT;
		case ':':
			return fail(err, errlen, "option %s needs a value",
			    argv[optind - 1]);
		default:
			if (optopt != 0)
				return fail(err, errlen, "unknown option -%c",
				    optopt);
			return fail(err, errlen, "unknown option %s",
			    argv[optind - 1]);
		}
	}
	if (optind < argc)
		return fail(err, errlen, "unexpected argument '%s'",
		    argv[optind]);
	if (cfg->fd >= 0 && cfg->socket_path != NULL)
		return fail(err, errlen,
		    "--fd and --socket-path cannot be used together");
	if (cfg->fd >= 0 && cfg->socket_count != 1)
		return fail(err, errlen,
		    "--fd serves one socket: --socket-count must be 1");
	if (cfg->socket_path != NULL) {
		struct sockaddr_un sun;
		char probe[sizeof(sun.sun_path) + 16];
		int n;

		/* The longest name we will create is <path><count-1>. */
		n = snprintf(probe, sizeof(probe), "%s%u", cfg->socket_path,
		    cfg->socket_count - 1);
		if (n < 0 || (size_t)n >= sizeof(sun.sun_path))
			return fail(err, errlen, "--socket-path %s: too long "
			    "for a Unix socket (at most %zu bytes with the "
			    "index suffix)", cfg->socket_path,
			    sizeof(sun.sun_path) - 1);
	}
	return CONFIG_RUN;
}
