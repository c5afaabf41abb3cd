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
	OPT_NO_SANDBOX,
};

static const struct option long_options[] = {
	{ "socket-path",	required_argument,	NULL, 's' },
	{ "socket-count",	required_argument,	NULL, 'c' },
	{ "filename",		required_argument,	NULL, 'f' },
	{ "rng-source",		required_argument,	NULL, 'f' },
	{ "period",		required_argument,	NULL, 'p' },
	{ "max-bytes",		required_argument,	NULL, 'm' },
	{ "fd",			required_argument,	NULL, OPT_FD },
	{ "print-capabilities",	no_argument,		NULL, OPT_PRINT_CAPS },
	{ "no-sandbox",		no_argument,		NULL, OPT_NO_SANDBOX },
	{ "verbose",		no_argument,		NULL, 'v' },
	{ "help",		no_argument,		NULL, 'h' },
	{ "version",		no_argument,		NULL, 'V' },
	{ NULL,			0,			NULL, 0 },
};

void
config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->socket_count = 1;
	cfg->filename = CONFIG_DEFAULT_SOURCE;
	cfg->period_ms = CONFIG_DEFAULT_PERIOD_MS;
	cfg->max_bytes = CONFIG_UNLIMITED;
	cfg->fd = -1;
}

void
config_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: %s -s path [-v] [-c count] [-f file] [-m bytes] [-p ms]\n"
	    "       %s --fd fdnum [-v] [-f file] [-m bytes] [-p ms]\n"
	    "       %s [-v] [-f file] [-m bytes] [-p ms]   (systemd "
	    "socket activation)\n"
	    "       %s --print-capabilities | -h | -V\n"
	    "\n"
	    "  -s, --socket-path=PATH   listen on PATH0 .. PATH<count-1>\n"
	    "  -c, --socket-count=N     number of guests (1..%u, default 1)\n"
	    "  -f, --filename=FILE      entropy source (default %s);\n"
	    "      --rng-source=FILE    same as --filename\n"
	    "  -m, --max-bytes=N        at most N bytes per period for the\n"
	    "                           whole daemon (default unlimited)\n"
	    "  -p, --period=MS          rate-limit period, 1..%u ms\n"
	    "                           (default %u)\n"
	    "      --fd=FDNUM           serve the socket open on FDNUM\n"
	    "      --print-capabilities print the back-end JSON and exit\n"
	    "      --no-sandbox         no seccomp filter (for debugging)\n"
	    "  -v, --verbose            more logging (twice: debug)\n"
	    "  -h, --help               this help\n"
	    "  -V, --version            print the version\n",
	    getprogname(), getprogname(), getprogname(), getprogname(),
	    CONFIG_MAX_SOCKETS,
	    CONFIG_DEFAULT_SOURCE, CONFIG_MAX_PERIOD_MS,
	    CONFIG_DEFAULT_PERIOD_MS);
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
	const char *why;
	uint64_t v;
	int ch, i;

	err[0] = '\0';
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
	while ((ch = getopt_long(argc, argv, ":s:c:f:p:m:vhV", long_options,
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
		case OPT_NO_SANDBOX:
			cfg->no_sandbox = true;
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
