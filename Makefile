# vhost-device-rng -- see README.  BSD-3-Clause.

PROG =		vhost-device-rng
VERSION =	0.1.0

PREFIX ?=	/usr/local
BINDIR ?=	$(PREFIX)/bin
MANPREFIX ?=	$(PREFIX)/share/man
DATADIR ?=	$(PREFIX)/share
SYSTEMDDIR ?=	$(PREFIX)/lib/systemd/system
DESTDIR ?=

CC ?=		cc
PKG_CONFIG ?=	pkg-config
CFLAGS ?=	-O2 -g
WARNFLAGS =	-Wall -Wextra -Werror
ALL_CFLAGS =	-std=c11 $(WARNFLAGS) $(CFLAGS) -D_GNU_SOURCE \
		-DVERSION=\"$(VERSION)\" -Iinclude \
		$(shell $(PKG_CONFIG) --cflags libbsd-overlay libseccomp zlib)
LIBS =		$(shell $(PKG_CONFIG) --libs libbsd-overlay libseccomp zlib) -pthread
CHECK_CFLAGS =	$(shell $(PKG_CONFIG) --cflags check)
CHECK_LIBS =	$(shell $(PKG_CONFIG) --libs check)
# Tests build the code again with these, so that every test run is
# also an AddressSanitizer/UBSan run.
SAN_FLAGS =	-fsanitize=address,undefined -fno-omit-frame-pointer \
		-fno-sanitize-recover=undefined

LIB_SRCS =	src/clock.c src/config.c src/entropy.c src/fdstore.c src/guest.c src/handover.c src/health.c \
		src/ioguard.c src/listener.c src/log.c src/memtable.c \
		src/metrics.c src/ratelimit.c src/sandbox.c src/sdnotify.c src/serve.c \
		src/upgrade.c \
		src/virtq.c src/vu_dev.c src/vu_proto.c
SRCS =		$(LIB_SRCS) src/main.c
HDRS =		$(wildcard include/*.h)
OBJS =		$(SRCS:src/%.c=build/obj/%.o)

# Test case registration, shared by unit and integration suites.
SUITE_SRCS =	test/suite.c
# Guest memory and the driver's side of a ring, for test_serve and test_guest.
UNIT_SRCS =	$(wildcard test/test_*.c) $(SUITE_SRCS) test/unit_ring.c
UNIT_HDRS =	$(wildcard test/*.h)
# The one SCM_RIGHTS sender, shared by unit and integration suites.
SENDFDS_SRCS =	test/sendfds.c
FRONTEND_SRCS =	test/frontend.c test/daemon.c $(SENDFDS_SRCS)
IT_SRCS =	$(filter-out test/it_main.c,$(wildcard test/it_*.c)) \
		test/hostile.c
# The stand-in for systemd in crash-recovery tests (libc only), and the
# scripted service that test/check-supervisor runs under it.
SUPERVISOR_SRCS = test/supervisor.c
PROBE_SRCS =	test/fdstore_probe.c $(SENDFDS_SRCS)

all: $(PROG)

$(PROG): $(OBJS)
	$(CC) $(ALL_CFLAGS) -o $@ $(OBJS) $(LIBS)

build/obj/%.o: src/%.c $(HDRS) Makefile
	@mkdir -p build/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The daemon under the sanitizers, for the integration tests.
build/$(PROG)-san: $(SRCS) $(HDRS) Makefile
	@mkdir -p build
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -o $@ $(SRCS) $(LIBS)

# The daemon again with another handover format version: a "new binary"
# that refuses the state, for the live-upgrade fallback test.
build/$(PROG)-v99: $(SRCS) $(HDRS) Makefile
	@mkdir -p build
	$(CC) $(ALL_CFLAGS) -DHANDOVER_VERSION=99 -o $@ $(SRCS) $(LIBS)

build/unit-tests: $(LIB_SRCS) $(UNIT_SRCS) $(SENDFDS_SRCS) test/unit_main.c \
		$(HDRS) $(UNIT_HDRS) Makefile
	@mkdir -p build
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) $(CHECK_CFLAGS) -Itest -o $@ \
	    $(LIB_SRCS) $(UNIT_SRCS) $(SENDFDS_SRCS) test/unit_main.c \
	    $(LIBS) $(CHECK_LIBS)

build/integration-tests: $(FRONTEND_SRCS) $(IT_SRCS) $(SUITE_SRCS) \
		test/it_main.c $(UNIT_HDRS) $(HDRS) Makefile
	@mkdir -p build
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) $(CHECK_CFLAGS) -Itest -o $@ \
	    $(FRONTEND_SRCS) $(IT_SRCS) $(SUITE_SRCS) test/it_main.c src/log.c \
	    $(LIBS) $(CHECK_LIBS)

build/test-supervisor: $(SUPERVISOR_SRCS) Makefile
	@mkdir -p build
	$(CC) -std=c11 $(WARNFLAGS) $(CFLAGS) -D_GNU_SOURCE -o $@ \
	    $(SUPERVISOR_SRCS)

build/fdstore-probe: $(PROBE_SRCS) test/sendfds.h Makefile
	@mkdir -p build
	$(CC) -std=c11 $(WARNFLAGS) $(CFLAGS) -D_GNU_SOURCE -Itest -o $@ \
	    $(PROBE_SRCS)

# Every test that needs neither the network nor QEMU (a distribution can
# run it in an offline build): unit and integration suites, each under
# the sanitizers and the integration suites against the plain binary too,
# the test supervisor's own test, the man page lint, the option check and
# the install test.  The integration suites' crash tests run the daemon
# under build/test-supervisor; their upgrade tests use build/$(PROG)-v99.
check: $(PROG) build/$(PROG)-san build/$(PROG)-v99 build/unit-tests \
		build/integration-tests build/test-supervisor build/fdstore-probe
	./build/unit-tests
	VRNG_BIN=./build/$(PROG)-san ./build/integration-tests
	VRNG_BIN=./$(PROG) ./build/integration-tests
	test/check-supervisor build/test-supervisor build/fdstore-probe
	mandoc -Tlint -Wwarning man/$(PROG).8
	scripts/check-options
	scripts/check-sandbox
	MAKE="$(MAKE)" scripts/test-install

# The end-to-end tests: boot a Linux guest under QEMU against the daemon
# (builds the guest in build/guest first, downloading Debian's kernel
# package once), then the same guest as a libvirt domain made from
# scripts/libvirt-guest.xml (a private libvirtd; needs root).  The crash
# step of scripts/e2e-test runs the daemon under build/test-supervisor.
check-e2e: $(PROG) build/test-supervisor
	scripts/e2e-test
	scripts/e2e-libvirt

# Both, one after the other; CI runs this.
check-all:
	$(MAKE) check
	$(MAKE) check-e2e

# shellcheck, mandoc -Tlint, and every C file of the daemon and the tests
# compiled by each of LINT_CCS with the build's -Wall -Wextra -Werror.
LINT_CCS =	gcc clang
SH_SCRIPTS =	$(shell grep -lsE '^\#!/bin/(ba)?sh' scripts/* .ci/run \
		    test/check-supervisor)
LINT_SRCS =	$(SRCS) $(UNIT_SRCS) test/unit_main.c $(FRONTEND_SRCS) \
		$(IT_SRCS) test/it_main.c test/bench.c $(SUPERVISOR_SRCS) \
		test/fdstore_probe.c

lint:
	shellcheck $(SH_SCRIPTS)
	mandoc -Tlint -Wwarning man/$(PROG).8
	@for cc in $(LINT_CCS); do \
		echo "$$cc: $(WARNFLAGS): src/ and test/"; \
		for f in $(LINT_SRCS); do \
			$$cc $(ALL_CFLAGS) $(CHECK_CFLAGS) -Itest -c \
			    -o /dev/null $$f || exit 1; \
		done; \
	done

demo: $(PROG)
	scripts/demo

install: $(PROG) install-extra
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANPREFIX)/man8
	install -m 755 $(PROG) $(DESTDIR)$(BINDIR)/$(PROG)
	install -m 644 man/$(PROG).8 $(DESTDIR)$(MANPREFIX)/man8/$(PROG).8

uninstall: uninstall-extra
	rm -f $(DESTDIR)$(BINDIR)/$(PROG)
	rm -f $(DESTDIR)$(MANPREFIX)/man8/$(PROG).8

clean:
	rm -rf build/obj build/unit-tests build/integration-tests \
	    build/$(PROG)-san build/bench build/bench-memtable build/fuzz \
	    build/test-supervisor build/fdstore-probe $(PROG)

.PHONY: all check check-e2e check-all lint demo install uninstall clean

# Fuzzers: clang's libFuzzer (Debian: clang-14 and libclang-rt-14-dev)
# with ASan/UBSan; each runs FUZZ_SECONDS from the seeds.  See scripts/fuzz.
FUZZ_CC ?=	clang
FUZZ_SECONDS ?=	60
FUZZ_FLAGS =	-fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer \
		-fno-sanitize-recover=undefined
FUZZ_TARGETS =	build/fuzz/fuzz_proto build/fuzz/fuzz_virtq \
		build/fuzz/fuzz_handover

build/fuzz/fuzz_%: test/fuzz/fuzz_%.c test/fuzz/fuzz_input.h \
		test/fuzz/fuzz_oracle.h test/procself.h $(LIB_SRCS) $(HDRS) \
		Makefile
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(ALL_CFLAGS) $(FUZZ_FLAGS) \
	    -o $@ $< $(LIB_SRCS) $(LIBS)

fuzz: $(FUZZ_TARGETS)
	scripts/fuzz $(FUZZ_SECONDS)

# Lines of src/ the corpora reach (clang coverage build, llvm-cov report).
fuzz-coverage:
	scripts/fuzz-coverage

# The integration suites against the release daemon under memcheck:
# no error, no definite leak (scripts/valgrind-daemon).  Checks that
# measure time are skipped under valgrind (VRNG_UNDER_VALGRIND, named in
# test/it.h).
check-valgrind: $(PROG) build/integration-tests
	VRNG_BIN=scripts/valgrind-daemon VRNG_UNDER_VALGRIND=1 \
	    CK_TIMEOUT_MULTIPLIER=3 ./build/integration-tests

.PHONY: fuzz fuzz-coverage check-valgrind

include scripts/install.mk

# Figures, not tests: scripts/bench runs it.
build/bench: test/bench.c $(FRONTEND_SRCS) $(UNIT_HDRS) Makefile
	@mkdir -p build
	$(CC) $(ALL_CFLAGS) -Itest -o $@ test/bench.c $(FRONTEND_SRCS) \
	    src/log.c $(LIBS)

bench: $(PROG) build/bench
	scripts/bench
.PHONY: bench

# Address translation with 1, 32 and 509 memory regions.
build/bench-memtable: test/bench_memtable.c src/memtable.c src/log.c $(HDRS) \
		Makefile
	@mkdir -p build
	$(CC) $(ALL_CFLAGS) -o $@ test/bench_memtable.c src/memtable.c \
	    src/log.c $(LIBS)
