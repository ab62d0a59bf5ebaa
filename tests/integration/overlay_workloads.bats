#!/usr/bin/env bats
# Real workloads on kiln's FUSE overlay (issue 7, "Done when"), through
# `kiln build` as root: apt-get install build-essential on the Debian
# fixture, a C project compiled and its tests run with that gcc, and
# npm-style trees of 50,000 small files created and deleted (in one step, and
# across two steps, where the second step's layer must carry the whiteout).
# Layers are read back with tar (independent of kiln).

load helpers

setup_file() {
  kiln_setup
  registry_start
  fixtures_push all
  export REGISTRY BUSYBOX_IMAGE DEBIAN_IMAGE
  export OVLW_STORE=$TEST_TMP/store
}
teardown_file() { registry_stop_all; }
setup() { kiln_setup; }
teardown() { kiln_teardown; }

# kbuild CONTEXT [FLAGS...]: build with a store shared by this file's tests
# (the build-essential image is reused by the C project test).
kbuild() {
  local ctx=$1
  shift
  "$KILN" build --root "$OVLW_STORE" --insecure-registry "$REGISTRY" "$@" "$ctx"
}

# layer_blob LAYOUT INDEX: path of layer INDEX (negative counts from the end)
# of the only image in an OCI layout.
layer_blob() {
  local m
  m=$(jq -r '.manifests[0].digest' "$1/index.json" | cut -d: -f2)
  echo "$1/blobs/sha256/$(jq -r ".layers[$2].digest" "$1/blobs/sha256/$m" | cut -d: -f2)"
}

@test "overlay workloads: apt-get install -y build-essential on the Debian fixture" {
  debian_reachable || skip "no network to deb.debian.org (apt-get needs the Debian archive)"
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM %s\nRUN apt-get update && apt-get install -y build-essential && rm -rf /var/lib/apt/lists/*\nRUN gcc --version > /gcc-version && make --version > /make-version\n' \
    "$DEBIAN_IMAGE" > "$TEST_TMP/ctx/Dockerfile"
  local s=$SECONDS
  run kbuild "$TEST_TMP/ctx" -t "$REGISTRY/test/build-essential:1" --oci-layout "$TEST_TMP/out:t"
  echo "$output" | tail -20
  echo "# build-essential build: $((SECONDS - s)) s" >&3
  [ "$status" -eq 0 ]
  # The apt-get layer holds the compiler, dpkg's records of it, and no lists.
  tar -tzf "$(layer_blob "$TEST_TMP/out" -2)" > "$TEST_TMP/apt.txt"
  grep -qx 'usr/bin/gcc-12' "$TEST_TMP/apt.txt"
  grep -qx 'usr/bin/make' "$TEST_TMP/apt.txt"
  grep -qx 'var/lib/dpkg/info/build-essential.list' "$TEST_TMP/apt.txt"
  # (the fixture base has lists: removing them ships whiteouts, .wh.NAME)
  ! grep '^var/lib/apt/lists/' "$TEST_TMP/apt.txt" | grep -v '/\.wh\.' | grep -q 'Packages' || false
  grep -q '^var/lib/apt/lists/\.wh\..*Packages$' "$TEST_TMP/apt.txt"
  # dpkg's status in the layer says installed, as a tool reading the layer sees it.
  tar -xzf "$(layer_blob "$TEST_TMP/out" -2)" -C "$TEST_TMP" var/lib/dpkg/status
  grep -A1 '^Package: build-essential$' "$TEST_TMP/var/lib/dpkg/status" | grep -q '^Status: install ok installed$'
  # The next step ran that gcc on the mount.
  tar -xzf "$(layer_blob "$TEST_TMP/out" -1)" -C "$TEST_TMP" gcc-version make-version
  grep -q '^gcc (Debian 12' "$TEST_TMP/gcc-version"
  grep -q '^GNU Make' "$TEST_TMP/make-version"
}

# A small C project with a library, a program, a Makefile and a test target.
make_c_project() {
  local d=$1/proj i
  mkdir -p "$d/src" "$d/tests"
  for i in $(seq 1 24); do
    printf '#include "lib.h"\nint lib_f%d (int x) { return x * %d + lib_base (); }\n' "$i" "$i" > "$d/src/f$i.c"
    printf 'int lib_f%d (int x);\n' "$i" >> "$d/src/lib.h"
  done
  printf 'int lib_base (void);\n' >> "$d/src/lib.h"
  printf 'int lib_base (void) { return 1; }\n' > "$d/src/base.c"
  {
    printf '#include <stdio.h>\n#include "../src/lib.h"\nint main (void) {\n  int fails = 0;\n'
    for i in $(seq 1 24); do
      printf '  if (lib_f%d (2) != %d) { printf ("FAIL f%d\\n"); fails++; }\n' "$i" $((2 * i + 1)) "$i"
    done
    printf '  printf ("%%d tests, %%d failures\\n", 24, fails);\n  return fails != 0;\n}\n'
  } > "$d/tests/check.c"
  printf 'int main (void) { return 0; }\n' > "$d/src/main.c"
  cat > "$d/Makefile" <<'MK'
CFLAGS = -O2 -Wall -Werror
LIBSRC = $(filter-out src/main.c,$(wildcard src/*.c))
all: libproj.a prog
libproj.a: $(LIBSRC:.c=.o)
	ar rcs $@ $^
prog: src/main.o libproj.a
	$(CC) -o $@ $^
tests/check: tests/check.o libproj.a
	$(CC) -o $@ $^
test: tests/check
	./tests/check > test-results.txt
	cat test-results.txt
.PHONY: all test
MK
}

@test "overlay workloads: a C project is compiled and its tests run on the mount" {
  debian_reachable || skip "no network to deb.debian.org (needs the build-essential image of the previous test)"
  skopeo inspect --tls-verify=false "docker://$REGISTRY/test/build-essential:1" >/dev/null 2>&1 ||
    skip "the build-essential image was not built (previous test failed or skipped)"
  mkdir -p "$TEST_TMP/ctx"
  make_c_project "$TEST_TMP/ctx"
  printf 'FROM %s/test/build-essential:1\nCOPY proj /proj\nRUN cd /proj && make -j2 && make test && rm src/base.o\n' \
    "$REGISTRY" > "$TEST_TMP/ctx/Dockerfile"
  run kbuild "$TEST_TMP/ctx" --no-push --oci-layout "$TEST_TMP/out:t"
  echo "$output" | tail -20
  [ "$status" -eq 0 ]
  [[ $output == *"24 tests, 0 failures"* ]]
  tar -tzf "$(layer_blob "$TEST_TMP/out" -1)" | sort > "$TEST_TMP/run.txt"
  cat "$TEST_TMP/run.txt"
  # 24 objects of the library + main + check, both binaries, the archive, the results
  [ "$(grep -c '^proj/src/f[0-9]*\.o$' "$TEST_TMP/run.txt")" -eq 24 ]
  grep -qx 'proj/prog' "$TEST_TMP/run.txt"
  grep -qx 'proj/tests/check' "$TEST_TMP/run.txt"
  grep -qx 'proj/libproj.a' "$TEST_TMP/run.txt"
  # created and deleted in the same step: ships nothing (not even a whiteout)
  ! grep -q 'base\.o' "$TEST_TMP/run.txt" || false
  # sources came from the COPY layer and were not touched: not in this layer
  ! grep -q '\.c$' "$TEST_TMP/run.txt" || false
  tar -xzf "$(layer_blob "$TEST_TMP/out" -1)" -C "$TEST_TMP" proj/test-results.txt proj/tests/check
  [ "$(cat "$TEST_TMP/proj/test-results.txt")" = "24 tests, 0 failures" ]
  # the test binary from the layer runs on the host too (same libc ABI)
  run "$TEST_TMP/proj/tests/check"
  [ "$status" -eq 0 ]
}

# busybox sh: an npm-like tree of 500 packages x 100 small files under $1
NPM_TREE='mk() { i=0; while [ $i -lt 500 ]; do mkdir -p $1/pkg$i/lib; j=0; while [ $j -lt 98 ]; do echo "module.exports = $i + $j" > $1/pkg$i/lib/m$j.js; j=$((j + 1)); done; echo "{\"name\": \"pkg$i\"}" > $1/pkg$i/package.json; echo "# pkg$i" > $1/pkg$i/README.md; i=$((i + 1)); done; }'

@test "overlay workloads: 50,000 small files created and deleted in one step ship nothing" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM %s\nRUN mkdir /app && echo keep > /app/keep\nRUN %s; mk /app/node_modules && [ "$(find /app/node_modules -type f | wc -l)" -eq 50000 ] && rm -rf /app/node_modules && echo done > /app/done\n' \
    "$BUSYBOX_IMAGE" "$NPM_TREE" > "$TEST_TMP/ctx/Dockerfile"
  local s=$SECONDS
  run kbuild "$TEST_TMP/ctx" --no-push --oci-layout "$TEST_TMP/out:t"
  echo "$output" | tail -10
  echo "# 50k files created+deleted in one step: $((SECONDS - s)) s" >&3
  [ "$status" -eq 0 ]
  tar -tzf "$(layer_blob "$TEST_TMP/out" -1)" | sort > "$TEST_TMP/l.txt"
  cat "$TEST_TMP/l.txt"
  # only the new file and its directory; nothing of node_modules
  [ "$(cat "$TEST_TMP/l.txt")" = "$(printf 'app/\napp/done')" ]
}

@test "overlay workloads: 50,000 small files created in one step, deleted in the next: a whiteout" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM %s\nRUN %s; mkdir /app && mk /app/node_modules\nRUN rm -rf /app/node_modules\n' \
    "$BUSYBOX_IMAGE" "$NPM_TREE" > "$TEST_TMP/ctx/Dockerfile"
  local s=$SECONDS
  run kbuild "$TEST_TMP/ctx" --no-push --oci-layout "$TEST_TMP/out:t"
  echo "$output" | tail -10
  echo "# 50k files created, then deleted in the next step: $((SECONDS - s)) s" >&3
  [ "$status" -eq 0 ]
  tar -tzf "$(layer_blob "$TEST_TMP/out" -2)" > "$TEST_TMP/create.txt"
  [ "$(grep -c '^app/node_modules/pkg[0-9]*/.*[^/]$' "$TEST_TMP/create.txt")" -eq 50000 ]
  tar -tzf "$(layer_blob "$TEST_TMP/out" -1)" | sort > "$TEST_TMP/delete.txt"
  cat "$TEST_TMP/delete.txt"
  # the deleting step ships a single whiteout (plus its parent directory)
  [ "$(cat "$TEST_TMP/delete.txt")" = "$(printf 'app/\napp/.wh.node_modules')" ]
}
