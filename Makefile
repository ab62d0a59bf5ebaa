# kiln - daemonless, rootless Dockerfile image builder.
# Plain Makefile: sources are discovered by wildcard, so adding a module means
# adding src/<dir>/<module>.{c,h}; a unit test is tests/unit/test_<name>.c; a
# fuzz target is tests/fuzz/fuzz_<name>.c.

VERSION    := 0.1.0
PREFIX     ?= /usr/local
DESTDIR    ?=
CC         ?= gcc
BUILD      ?= build
PKG_CONFIG ?= pkg-config
PKGS       := libseccomp libcap libarchive libcurl yajl fuse3 liburing libcrypto zlib libzstd libisal

GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

WARN      := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wformat=2
OPT       ?= -O2
CFLAGS    ?= $(OPT) -g
SANFLAGS  ?=
# A missing library stops the build here, naming its Debian package, instead
# of a compiler error about a header far down the line.
PKG_DEB_libseccomp := libseccomp-dev
PKG_DEB_libcap     := libcap-dev
PKG_DEB_libarchive := libarchive-dev
PKG_DEB_libcurl    := libcurl4-openssl-dev
PKG_DEB_yajl       := libyajl-dev
PKG_DEB_fuse3      := libfuse3-dev
PKG_DEB_liburing   := liburing-dev
PKG_DEB_libcrypto  := libssl-dev
PKG_DEB_zlib       := zlib1g-dev
PKG_DEB_libzstd    := libzstd-dev
PKG_DEB_libisal    := libisal-dev
ifeq ($(filter deps clean,$(MAKECMDGOALS)),)
PKG_MISSING := $(shell for p in $(PKGS); do $(PKG_CONFIG) --exists $$p 2>/dev/null || echo $$p; done)
ifneq ($(PKG_MISSING),)
$(error pkg-config cannot find: $(PKG_MISSING). Install the Debian packages $(foreach p,$(PKG_MISSING),$(PKG_DEB_$(p))) (scripts/install-deps.sh, or make deps, installs everything kiln needs))
endif
endif
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS))
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS))
ALL_CFLAGS := -std=gnu11 $(CFLAGS) $(WARN) $(SANFLAGS) -D_GNU_SOURCE -DFUSE_USE_VERSION=35 -pthread -Isrc $(PKG_CFLAGS)
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS) -pthread
LIBS       := $(PKG_LIBS) -lm

# The library folders make libkiln.a (unit tests and fuzz targets link it);
# the commands (src/cmd/, one file per command) and src/main.c only kiln.
LIB_SRCS   := $(sort $(filter-out src/cmd/%,$(wildcard src/*/*.c)))
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/%.o)
CMD_SRCS   := $(sort $(wildcard src/cmd/*.c)) src/main.c
CMD_OBJS   := $(CMD_SRCS:%.c=$(BUILD)/%.o)
LIBKILN    := $(BUILD)/libkiln.a
KILN_BIN   := $(if $(filter build,$(BUILD)),kiln,$(BUILD)/kiln)

UNIT_SRCS  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_HELPERS := $(wildcard tests/unit/helpers/*.c)
FUZZ_SRCS  := $(sort $(wildcard tests/fuzz/fuzz_*.c))

DEPFLAGS = -MMD -MP

.PHONY: all test test-slow test-unit test-integration unit-bins asan fuzz fuzz-build install clean demo deps help
all: $(KILN_BIN)

help:
	@echo "targets: all (./kiln), test, test-slow, test-unit, test-integration, asan, fuzz, demo, install PREFIX=..., clean"

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

# `kiln version` (src/cmd/version.c) prints these.
VERSION_OBJ := $(BUILD)/src/cmd/version.o
$(VERSION_OBJ): ALL_CFLAGS += -DKILN_VERSION='"$(VERSION)"' -DKILN_GIT_COMMIT='"$(GIT_COMMIT)"' -DKILN_LIBCAP_VERSION='"$(shell $(PKG_CONFIG) --modversion libcap)"' -DKILN_LIBISAL_VERSION='"$(shell $(PKG_CONFIG) --modversion libisal)"'
$(VERSION_OBJ): .git-commit-stamp

# Rebuild version.o when the commit changes, so `kiln version` never lies.
.git-commit-stamp: FORCE
	@echo '$(GIT_COMMIT)' | cmp -s - $@ || echo '$(GIT_COMMIT)' > $@
FORCE:

$(LIBKILN): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(KILN_BIN): $(CMD_OBJS) $(LIBKILN)
	$(CC) $(ALL_LDFLAGS) -o $@ $(CMD_OBJS) $(LIBKILN) $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIBKILN) $(UNIT_HELPERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -Itests/unit -o $@ $< $(UNIT_HELPERS) $(LIBKILN) $(LIBS) $(shell $(PKG_CONFIG) --libs cmocka)

# Test tools that need kiln's library (tests/tools/*.c).
TOOL_BINS := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(wildcard tests/tools/*.c))
$(BUILD)/tools/%: tests/tools/%.c $(LIBKILN)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIBKILN) $(LIBS)

unit-bins: $(UNIT_BINS) $(KILN_BIN) $(TOOL_BINS)

test-unit: unit-bins
	tests/run-tests.sh --build $(BUILD) --unit

test-integration: $(KILN_BIN) unit-bins
	tests/run-tests.sh --build $(BUILD) --integration

test: $(KILN_BIN) unit-bins
	tests/run-tests.sh --build $(BUILD) --unit --integration

# The real-workload tests left out of `make test` for time (tests/run-tests.sh SLOW_FILES).
test-slow: $(KILN_BIN) unit-bins
	KILN_SLOW_TESTS=1 tests/run-tests.sh --build $(BUILD) --integration --filter '^overlay_workloads$$'

# ASan + UBSan build in its own directory; its unit tests must pass too.
# The end-to-end build tests also run on the sanitized kiln binary.
asan:
	$(MAKE) BUILD=build-asan OPT=-O1 SANFLAGS='-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all' unit-bins build-asan/kiln
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  tests/run-tests.sh --build build-asan --unit
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  KILN_POLICY_DIR=$(CURDIR)/policies KILN=$(CURDIR)/build-asan/kiln KILN_SRC=$(CURDIR) \
	  bats --tap tests/integration/build.bats tests/integration/build_features.bats tests/integration/build_session.bats \
	    tests/integration/overlay_layers.bats

# libFuzzer targets, built with clang; `make fuzz` is a short smoke run of each.
FUZZ_SECONDS ?= 10
fuzz-build:
	$(MAKE) BUILD=build-fuzz CC=clang OPT=-O1 SANFLAGS='-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer' build-fuzz/libkiln.a
	@mkdir -p build-fuzz/bin && rm -f build-fuzz/bin/fuzz_*
	@for f in $(FUZZ_SRCS); do \
	  n=$$(basename $$f .c); \
	  echo "  FUZZ $$n"; \
	  clang -std=gnu11 -O1 -g -D_GNU_SOURCE -DFUSE_USE_VERSION=35 -Isrc $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -o build-fuzz/bin/$$n $$f build-fuzz/libkiln.a $(LIBS) -pthread || exit 1; \
	done

fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ_SECONDS)

demo:
	scripts/demo.sh

deps:
	scripts/install-deps.sh

install: $(KILN_BIN)
	install -D -m 0755 $(KILN_BIN) $(DESTDIR)$(PREFIX)/bin/kiln
	install -d $(DESTDIR)$(PREFIX)/share/kiln/policies
	install -m 0644 $(wildcard policies/*.json) policies/kiln-apparmor $(DESTDIR)$(PREFIX)/share/kiln/policies/

clean:
	rm -rf build build-asan build-fuzz kiln .git-commit-stamp

-include $(LIB_OBJS:.o=.d) $(CMD_OBJS:.o=.d)

# The default seccomp profile is assembled into the binary (.incbin).
$(BUILD)/src/sandbox/seccomp_builtin.o: policies/default.json
