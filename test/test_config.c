/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * config_parse: every option, the bounds of every number, and the
 * refusals, which must name the option they refuse.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "config.h"
#include "unit.h"

#define MAX_ARGS	32

static struct config cfg;
static char err[256];

/*
 * Runs config_parse over "vhost-device-rng" followed by the NULL-terminated
 * args.  getopt_long permutes the pointer array, so it is a fresh copy.
 */
static enum config_result
parse_v(const char *const *args)
{
	static char *argv[MAX_ARGS];
	int argc = 0;

	argv[argc++] = (char *)"vhost-device-rng";
	while (*args != NULL) {
		ck_assert_int_lt(argc, MAX_ARGS - 1);
		argv[argc++] = (char *)*args++;
	}
	argv[argc] = NULL;
	config_defaults(&cfg);
	memset(err, 'X', sizeof(err));
	return config_parse(&cfg, argc, argv, err, sizeof(err));
}

#define PARSE(...)	parse_v((const char *const[]){ __VA_ARGS__, NULL })
#define PARSE0()	parse_v((const char *const[]){ NULL })

/* The refusal must be CONFIG_ERROR with a message that names what. */
#define ck_refused(res, what) do {					\
	ck_assert_int_eq((res), CONFIG_ERROR);				\
	ck_assert_msg(strstr(err, (what)) != NULL,			\
	    "error \"%s\" does not name \"%s\"", err, (what));		\
} while (0)

/* The arguments parse, and set cfg.field to want. */
#define ck_accepted(field, want, ...) do {				\
	ck_assert_int_eq(PARSE(__VA_ARGS__), CONFIG_RUN);		\
	ck_assert_uint_eq(cfg.field, (want));				\
} while (0)

/*
 * Runs a parse with stdout sent to a temporary file and returns what was
 * printed.  fd 1 is swapped rather than freopen'd so that Check's own
 * output (on stdout, in CK_FORK=no mode) is untouched afterwards.
 */
static enum config_result
parse_capture(const char *opt, char *out, size_t outlen)
{
	FILE *tmp;
	enum config_result res;
	size_t n;
	int saved;

	ck_assert_ptr_nonnull(tmp = tmpfile());
	fflush(stdout);
	ck_assert_int_ge(saved = dup(STDOUT_FILENO), 0);
	ck_assert_int_ge(dup2(fileno(tmp), STDOUT_FILENO), 0);
	res = PARSE(opt);
	fflush(stdout);
	ck_assert_int_ge(dup2(saved, STDOUT_FILENO), 0);
	close(saved);
	rewind(tmp);
	n = fread(out, 1, outlen - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
	return res;
}

/* The options parsed set these values. */
static void
expect_set(const char *path, unsigned count, const char *file,
    uint32_t period_ms, uint64_t max_bytes)
{
	ck_assert_str_eq(cfg.socket_path, path);
	ck_assert_uint_eq(cfg.socket_count, count);
	ck_assert_str_eq(cfg.filename, file);
	ck_assert_uint_eq(cfg.period_ms, period_ms);
	ck_assert_uint_eq(cfg.max_bytes, max_bytes);
}

/* opt prints what contains want (into out) and exits 0. */
static void
exits_printing(const char *opt, const char *want, char *out, size_t len)
{
	ck_assert_int_eq(parse_capture(opt, out, len), CONFIG_EXIT);
	ck_assert_msg(strstr(out, want) != NULL, "%s: \"%s\"", opt, out);
}

/* A path of len bytes (plus NUL) in a static buffer. */
static const char *
path_of_len(size_t len)
{
	static char buf[512];

	ck_assert_uint_lt(len, sizeof(buf));
	memset(buf, 'a', len);
	buf[0] = '/';
	buf[len] = '\0';
	return buf;
}

START_TEST(defaults)
{
	config_defaults(&cfg);
	ck_assert_ptr_null(cfg.socket_path);
	ck_assert_uint_eq(cfg.socket_count, 1);
	ck_assert_str_eq(cfg.filename, "/dev/urandom");
	ck_assert_uint_eq(cfg.period_ms, 65536);
	ck_assert_uint_eq(cfg.max_bytes, UINT64_MAX);
	ck_assert_int_eq(cfg.verbose, 0);
	ck_assert_int_eq(cfg.fd, -1);
	ck_assert(!cfg.print_capabilities);
	ck_assert(cfg.health_tests);
	ck_assert_ptr_null(cfg.metrics_file);
	ck_assert_uint_eq(cfg.metrics_interval_s, 10);
	ck_assert(!cfg.metrics_interval_given);
}
END_TEST

START_TEST(no_arguments_keeps_defaults)
{
	ck_assert_int_eq(PARSE0(), CONFIG_RUN);
	ck_assert_str_eq(err, "");
	ck_assert_ptr_null(cfg.socket_path);
	ck_assert_uint_eq(cfg.socket_count, 1);
	ck_assert_str_eq(cfg.filename, "/dev/urandom");
	ck_assert_uint_eq(cfg.period_ms, 65536);
	ck_assert_uint_eq(cfg.max_bytes, UINT64_MAX);
	ck_assert_int_eq(cfg.fd, -1);
}
END_TEST

START_TEST(long_options_with_equals)
{
	ck_assert_int_eq(PARSE("--socket-path=/tmp/vrng.sock",
	    "--socket-count=3", "--filename=/dev/hwrng", "--period=1000",
	    "--max-bytes=4096", "--verbose"), CONFIG_RUN);
	expect_set("/tmp/vrng.sock", 3, "/dev/hwrng", 1000, 4096);
	ck_assert_int_eq(cfg.verbose, 1);
	ck_assert(!cfg.print_capabilities);
}
END_TEST

START_TEST(long_options_separate_values)
{
	ck_assert_int_eq(PARSE("--socket-path", "/tmp/s", "--socket-count",
	    "2", "--filename", "/tmp/f", "--period", "7", "--max-bytes", "9"),
	    CONFIG_RUN);
	expect_set("/tmp/s", 2, "/tmp/f", 7, 9);
}
END_TEST

START_TEST(short_options)
{
	ck_assert_int_eq(PARSE("-s", "/tmp/s", "-c", "4", "-f", "/tmp/f",
	    "-p", "10", "-m", "100", "-v"), CONFIG_RUN);
	expect_set("/tmp/s", 4, "/tmp/f", 10, 100);
	ck_assert_int_eq(cfg.verbose, 1);
}
END_TEST

START_TEST(short_options_attached_values)
{
	ck_assert_int_eq(PARSE("-s/tmp/s", "-c5", "-f/tmp/f", "-p11",
	    "-m12"), CONFIG_RUN);
	expect_set("/tmp/s", 5, "/tmp/f", 11, 12);
}
END_TEST

START_TEST(rng_source_is_filename_alias)
{
	ck_assert_int_eq(PARSE("--rng-source=/tmp/pool"), CONFIG_RUN);
	ck_assert_str_eq(cfg.filename, "/tmp/pool");
	/* The last of the two spellings wins, as for any repeated option. */
	ck_assert_int_eq(PARSE("--rng-source", "/a", "-f", "/b"), CONFIG_RUN);
	ck_assert_str_eq(cfg.filename, "/b");
	ck_assert_int_eq(PARSE("-f", "/b", "--rng-source", "/a"), CONFIG_RUN);
	ck_assert_str_eq(cfg.filename, "/a");
}
END_TEST

START_TEST(empty_paths_refused)
{
	ck_refused(PARSE("-s", ""), "--socket-path");
	ck_refused(PARSE("--filename="), "--filename");
	ck_refused(PARSE("--rng-source", ""), "--filename");
}
END_TEST

START_TEST(verbose_counts)
{
	ck_assert_int_eq(PARSE("-vv"), CONFIG_RUN);
	ck_assert_int_eq(cfg.verbose, 2);
	ck_assert_int_eq(PARSE("-v", "--verbose", "-v"), CONFIG_RUN);
	ck_assert_int_eq(cfg.verbose, 3);
}
END_TEST

START_TEST(socket_count_bounds)
{
	ck_accepted(socket_count, 1, "-c", "1");
	ck_accepted(socket_count, 1024, "-c", "1024");
	/* Leading zeros are still a decimal number. */
	ck_accepted(socket_count, 7, "-c", "007");
}
END_TEST

START_TEST(socket_count_refused)
{
	static const char *const bad[] = {
		"0", "-1", "3x", "x3", "", " 3", "+3", "0x10", "1025",
		"4294967297", "99999999999999999999",
	};
	unsigned i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(PARSE("-c", bad[i]) == CONFIG_ERROR,
		    "-c '%s' accepted", bad[i]);
		ck_assert_msg(strstr(err, "--socket-count") != NULL,
		    "-c '%s': error \"%s\" does not name the option", bad[i],
		    err);
		/* Refused values do not leak into the config. */
		ck_assert_uint_eq(cfg.socket_count, 1);
	}
	ck_refused(PARSE("--socket-count=1025"), "--socket-count");
}
END_TEST

START_TEST(period_bounds)
{
	ck_refused(PARSE("-p", "0"), "--period");
	ck_refused(PARSE("-p", "65537"), "--period");
	ck_refused(PARSE("--period=-5"), "--period");
	ck_refused(PARSE("--period=1ms"), "--period");
	ck_refused(PARSE("-p", "18446744073709551616"), "--period");
	ck_accepted(period_ms, 1, "-p", "1");
	ck_accepted(period_ms, 65536, "-p", "65536");
}
END_TEST

/* --metrics-interval: 1 s to a day; --metrics-file: any non-empty path. */
START_TEST(metrics_bounds)
{
	static const char *const refused[] = { "--metrics-interval=0",
	    "--metrics-interval=86401", "--metrics-interval=-1",
	    "--metrics-interval=10s", "--metrics-interval=",
	    "--metrics-file=", "--metrics-file" };
	size_t i;

	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		ck_refused(PARSE(refused[i]), strncmp(refused[i],
		    "--metrics-file", 14) == 0 ? "--metrics-file" :
		    "--metrics-interval");
	ck_assert_int_eq(PARSE("--metrics-interval", "1"), CONFIG_RUN);
	ck_assert_uint_eq(cfg.metrics_interval_s, 1);
	ck_assert(cfg.metrics_interval_given);
	ck_assert_ptr_null(cfg.metrics_file);
	ck_assert_int_eq(PARSE("--metrics-interval=86400",
	    "--metrics-file=/var/lib/x/rng.prom"), CONFIG_RUN);
	ck_assert_uint_eq(cfg.metrics_interval_s, 86400);
	ck_assert_str_eq(cfg.metrics_file, "/var/lib/x/rng.prom");
	ck_assert_int_eq(PARSE("--metrics-file", "rng.prom"), CONFIG_RUN);
	ck_assert_str_eq(cfg.metrics_file, "rng.prom");
	ck_assert_uint_eq(cfg.metrics_interval_s, 10);
	ck_assert(!cfg.metrics_interval_given);
}
END_TEST

/* --health-tests takes on or off, nothing else; the last one wins. */
START_TEST(health_tests_on_off)
{
	ck_assert_int_eq(PARSE("--health-tests=off"), CONFIG_RUN);
	ck_assert(!cfg.health_tests);
	ck_assert_int_eq(PARSE("--health-tests", "off", "--health-tests=on"),
	    CONFIG_RUN);
	ck_assert(cfg.health_tests);
	ck_refused(PARSE("--health-tests=yes"), "--health-tests");
	ck_refused(PARSE("--health-tests="), "--health-tests");
	ck_refused(PARSE("--health-tests=OFF"), "--health-tests");
	ck_refused(PARSE("--health-tests"), "--health-tests");
}
END_TEST

START_TEST(max_bytes_bounds)
{
	ck_refused(PARSE("-m", "0"), "--max-bytes");
	ck_refused(PARSE("-m", "-1"), "--max-bytes");
	ck_refused(PARSE("-m", "18446744073709551616"), "--max-bytes");
	ck_refused(PARSE("-m", "99999999999999999999"), "--max-bytes");
	ck_refused(PARSE("--max-bytes=1k"), "--max-bytes");
	ck_accepted(max_bytes, 1, "-m", "1");
	ck_accepted(max_bytes, UINT64_MAX, "-m", "18446744073709551615");
	ck_accepted(max_bytes, UINT64_MAX - 1, "-m", "18446744073709551614");
}
END_TEST

START_TEST(fd_option)
{
	ck_assert_int_eq(PARSE("--fd=3"), CONFIG_RUN);
	ck_assert_int_eq(cfg.fd, 3);
	ck_assert_int_eq(PARSE("--fd", "0"), CONFIG_RUN);
	ck_assert_int_eq(cfg.fd, 0);
	ck_assert_int_eq(PARSE("--fd", "2147483647"), CONFIG_RUN);
	ck_assert_int_eq(cfg.fd, 2147483647);
	ck_refused(PARSE("--fd", "2147483648"), "--fd");
	ck_refused(PARSE("--fd", "-1"), "--fd");
	ck_refused(PARSE("--fd", "3x"), "--fd");
}
END_TEST

START_TEST(fd_with_socket_path_refused)
{
	ck_refused(PARSE("--fd=3", "--socket-path=/tmp/s"), "--fd");
	ck_refused(PARSE("-s", "/tmp/s", "--fd", "4"), "--socket-path");
}
END_TEST

START_TEST(fd_with_socket_count_refused)
{
	ck_refused(PARSE("--fd=3", "-c", "2"), "--socket-count");
	ck_assert_int_eq(PARSE("--fd=3", "-c", "1"), CONFIG_RUN);
}
END_TEST

/* sun_path holds 107 bytes and a NUL; the name is <path><count - 1>. */
START_TEST(socket_path_fits_exactly)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;

	ck_assert_int_eq(PARSE("-s", path_of_len(max - 1)), CONFIG_RUN);
	ck_assert_uint_eq(strlen(cfg.socket_path), max - 1);
	/* "9" is one digit like "0"; "10" is two. */
	ck_assert_int_eq(PARSE("-c", "10", "-s", path_of_len(max - 1)),
	    CONFIG_RUN);
	ck_assert_int_eq(PARSE("-c", "11", "-s", path_of_len(max - 2)),
	    CONFIG_RUN);
	ck_assert_int_eq(PARSE("-c", "1024", "-s", path_of_len(max - 4)),
	    CONFIG_RUN);
}
END_TEST

START_TEST(socket_path_too_long)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;

	ck_refused(PARSE("-s", path_of_len(max)), "--socket-path");
	ck_refused(PARSE("-c", "11", "-s", path_of_len(max - 1)),
	    "--socket-path");
	/* The count may come after the path: checked once all is parsed. */
	ck_refused(PARSE("-s", path_of_len(max - 3), "-c", "1024"),
	    "--socket-path");
	ck_refused(PARSE("-s", path_of_len(400)), "--socket-path");
}
END_TEST

START_TEST(unknown_option)
{
	ck_refused(PARSE("--bogus"), "--bogus");
	ck_refused(PARSE("-x"), "-x");
	ck_refused(PARSE("-s", "/tmp/s", "--no-such=1"), "--no-such");
}
END_TEST

START_TEST(missing_value)
{
	ck_refused(PARSE("-c"), "-c");
	ck_refused(PARSE("-v", "-s"), "-s");
	ck_refused(PARSE("--period"), "--period");
	ck_refused(PARSE("--max-bytes"), "--max-bytes");
	ck_refused(PARSE("--fd"), "--fd");
	ck_assert_msg(strstr(err, "value") != NULL, "error \"%s\"", err);
}
END_TEST

/* A value is not taken for a flag that has none. */
START_TEST(flag_with_value_refused)
{
	ck_assert_int_eq(PARSE("--verbose=2"), CONFIG_ERROR);
	ck_assert_int_eq(PARSE("--print-capabilities=yes"), CONFIG_ERROR);
}
END_TEST

START_TEST(stray_argument)
{
	ck_refused(PARSE("stray"), "stray");
	ck_refused(PARSE("-s", "/tmp/s", "extra", "-v"), "extra");
	/* "--" ends the options; what follows is still an argument. */
	ck_refused(PARSE("--", "-v"), "-v");
}
END_TEST

START_TEST(print_capabilities)
{
	ck_assert_int_eq(PARSE("--print-capabilities"), CONFIG_RUN);
	ck_assert(cfg.print_capabilities);
	/*
	 * vhost-user.rst "Backend program conventions": other options and
	 * arguments are ignored with this one, even bad ones.
	 */
	ck_assert_int_eq(PARSE("--print-capabilities", "--fd=3", "-s",
	    "/tmp/s", "-c", "2"), CONFIG_RUN);
	ck_assert(cfg.print_capabilities);
	ck_assert_int_eq(PARSE("-c", "0", "--bogus", "--print-capabilities",
	    "stray", "-p"), CONFIG_RUN);
	ck_assert(cfg.print_capabilities);
	/* After "--" it is an argument, not the option. */
	ck_assert_int_eq(PARSE("--", "--print-capabilities"), CONFIG_ERROR);
}
END_TEST

/*
 * getopt_long takes any unambiguous prefix of a long option ("--print-c"),
 * so the option must behave the same however it is spelt.
 */
START_TEST(print_capabilities_abbreviated)
{
	ck_assert_int_eq(PARSE("--print-cap"), CONFIG_RUN);
	ck_assert(cfg.print_capabilities);
	ck_assert_msg(PARSE("--print-cap", "-c", "0") == CONFIG_RUN,
	    "--print-cap with a bad option: \"%s\" (the full spelling "
	    "ignores other options)", err);
	ck_assert(cfg.print_capabilities);
}
END_TEST

/* main() warns about -p without -m, and checks -c against systemd. */
START_TEST(given_flags)
{
	ck_assert_int_eq(PARSE0(), CONFIG_RUN);
	ck_assert(!cfg.period_given);
	ck_assert(!cfg.count_given);
	ck_assert_int_eq(PARSE("-p", "100", "-c", "1"), CONFIG_RUN);
	ck_assert(cfg.period_given);
	ck_assert(cfg.count_given);
	ck_assert_int_eq(PARSE("--period=65536"), CONFIG_RUN);
	ck_assert(cfg.period_given);
	ck_assert(!cfg.count_given);
}
END_TEST

START_TEST(help_exits)
{
	char out[4096];

	exits_printing("--help", "usage:", out, sizeof(out));
	ck_assert_msg(strstr(out, "--socket-path") != NULL, "help lacks -s");
	exits_printing("-h", "usage:", out, sizeof(out));
}
END_TEST

START_TEST(version_exits)
{
	char out[256];

	exits_printing("--version", VERSION, out, sizeof(out));
	exits_printing("-V", VERSION, out, sizeof(out));
}
END_TEST

/* The message is cut to errlen and still a string. */
START_TEST(error_fits_small_buffer)
{
	char *argv[] = { (char *)"vhost-device-rng", (char *)"-c",
	    (char *)"0", NULL };
	char small[8];

	config_defaults(&cfg);
	memset(small, 'X', sizeof(small));
	ck_assert_int_eq(config_parse(&cfg, 3, argv, small, sizeof(small)),
	    CONFIG_ERROR);
	ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
}
END_TEST

/*
 * config_parse may be called again (the tests do, a reload might): a parse
 * that stopped in the middle of "-xv" or "-hv" must not leave getopt state
 * that the next parse picks up.  glibc keeps its position inside a cluster
 * across calls unless optind is set to 0 (optind = 1 is not a full reset):
 * the next parse then reads the stale cluster and runs past its argv.
 *
 * Each sequence runs in a child, so that a crash is a failure of this test
 * and not of the runner (CK_FORK=no).
 */
static void
reparse_in_child(const char *first)
{
	char out[4096];
	pid_t pid;
	int status;

	fflush(stdout);
	fflush(stderr);
	ck_assert_int_ge(pid = fork(), 0);
	if (pid == 0) {
		enum config_result res;

		if (first[1] == 'h')
			(void)parse_capture(first, out, sizeof(out));
		else
			(void)PARSE(first);
		res = PARSE0();
		_exit(res == CONFIG_RUN && cfg.verbose == 0 ? 0 : 3);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(!WIFSIGNALED(status), "parse after \"%s\" crashed "
	    "(signal %d)", first, WTERMSIG(status));
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 3,
	    "parse after \"%s\" saw a stale -v", first);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "parse after \"%s\" crashed (exit %d, see the ASan report)",
	    first, WEXITSTATUS(status));
}

START_TEST(reparse_after_aborted_cluster)
{
	reparse_in_child("-xv");
	reparse_in_child("-hv");
}
END_TEST

SUITE(config, UNIT_TIMEOUT, NULL, NULL,
    "options", TESTS(defaults, no_arguments_keeps_defaults,
	long_options_with_equals, long_options_separate_values,
	short_options, short_options_attached_values,
	rng_source_is_filename_alias, verbose_counts, fd_option,
	print_capabilities, print_capabilities_abbreviated, given_flags,
	help_exits, version_exits),
    "bounds", TESTS(socket_count_bounds, socket_count_refused,
	period_bounds, max_bytes_bounds, health_tests_on_off,
	metrics_bounds, socket_path_fits_exactly,
	socket_path_too_long),
    "refusals", TESTS(empty_paths_refused, fd_with_socket_path_refused,
	fd_with_socket_count_refused, unknown_option, missing_value,
	flag_with_value_refused, stray_argument,
	error_fits_small_buffer, reparse_after_aborted_cluster))
