#!/usr/bin/env bats
# Source checks that the compiler does not make: a goto over the
# initialisation of a cleanup variable (scripts/check-cleanup-jumps.sh), an
# include against the order of the source folders (scripts/check-layers.sh),
# a test assertion that cannot fail (scripts/check-test-asserts.sh).

load helpers

setup() { kiln_setup; }
teardown() { kiln_teardown; }

@test "lint: no goto skips the initialisation of a cleanup variable" {
  run "$KILN_SRC/scripts/check-cleanup-jumps.sh"
  echo "$output"
  [ "$status" -eq 0 ]
}

@test "lint: the cleanup-jump check finds a planted bug" {
  mkdir -p "$TEST_TMP/src/util"
  cp -r "$KILN_SRC/src/util/alloc.h" "$TEST_TMP/src/util/"
  cat > "$TEST_TMP/bad.c" <<'C'
#include "util/alloc.h"
int bad (int x);
int
bad (int x)
{
  if (x)
    goto out;
  autofree char *p = xstrdup ("x");
out:
  return x;
}
C
  KILN_CHECK_FILES="$TEST_TMP/bad.c" run "$KILN_SRC/scripts/check-cleanup-jumps.sh"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"bad.c:8: goto skips the initialisation of: autofree char *p"* ]]
}

@test "lint: every include follows the order of the source folders" {
  run "$KILN_SRC/scripts/check-layers.sh"
  echo "$output"
  [ "$status" -eq 0 ]
  [ -z "$output" ]
}

@test "lint: the layer check finds a planted upward include" {
  mkdir -p "$TEST_TMP/src/util" "$TEST_TMP/src/store" "$TEST_TMP/src/cmd" "$TEST_TMP/src/extra"
  # Downwards and within a folder: allowed.
  printf '#include "util/alloc.h"\n#include "store/store.h"\n' > "$TEST_TMP/src/store/fetch.c"
  printf '#include "store/store.h"\n#include "util/log.h"\n' > "$TEST_TMP/src/cmd/pull.c"
  printf '#include <stdio.h>\n#include "alloc.h"\n' > "$TEST_TMP/src/util/alloc.c"
  # Upwards, and a folder the order does not name.
  printf '#include "util/alloc.h"\n  #  include "store/store.h" /* no */\n' > "$TEST_TMP/src/util/bad.c"
  printf '#include "cmd/cmd.h"\n' > "$TEST_TMP/src/store/bad.h"
  printf '#include "util/alloc.h"\n' > "$TEST_TMP/src/extra/x.c"
  KILN_CHECK_ROOT="$TEST_TMP" run "$KILN_SRC/scripts/check-layers.sh"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *'src/util/bad.c: includes "store/store.h" (store is above util)'* ]]
  [[ $output == *'src/store/bad.h: includes "cmd/cmd.h" (cmd is above store)'* ]]
  [[ $output == *'src/extra/x.c: folder extra is not in the layer order'* ]]
  [ "$(printf '%s\n' "$output" | wc -l)" -eq 3 ]
}

@test "lint: a library pkg-config cannot find stops make at once, naming its Debian package" {
  # A pkg-config that knows every library but ISA-L.
  cat > "$TEST_TMP/pkg-config" <<'SH'
#!/bin/sh
for a in "$@"; do [ "$a" = libisal ] && exit 1; done
exec pkg-config "$@"
SH
  chmod +x "$TEST_TMP/pkg-config"
  run make -C "$KILN_SRC" -n PKG_CONFIG="$TEST_TMP/pkg-config" BUILD="$TEST_TMP/build"
  echo "$output"
  [ "$status" -ne 0 ]
  [[ $output == *"pkg-config cannot find: libisal. Install the Debian packages libisal-dev"* ]]
  run make -C "$KILN_SRC" -n BUILD="$TEST_TMP/build"
  [ "$status" -eq 0 ]
}

@test "lint: ptrace isolation's architecture code compiles for aarch64 (cross compiler, syntax only)" {
  command -v aarch64-linux-gnu-gcc >/dev/null || skip "aarch64-linux-gnu-gcc missing (scripts/install-deps.sh installs gcc-aarch64-linux-gnu)"
  local f
  for f in "$KILN_SRC"/src/sandbox/tracer*.c; do
    aarch64-linux-gnu-gcc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
      -fsyntax-only -I"$KILN_SRC/src" -idirafter /usr/include "$f"
  done
  # and the check sees an architecture mistake: x86_64's user_regs_struct fields do not exist there
  printf '#include <sys/user.h>\nunsigned long long f (struct user_regs_struct *r);\nunsigned long long f (struct user_regs_struct *r) { return r->orig_rax; }\n' \
    > "$TEST_TMP/x86only.c"
  run aarch64-linux-gnu-gcc -std=gnu11 -fsyntax-only "$TEST_TMP/x86only.c"
  [ "$status" -ne 0 ]
}

@test "lint: no test assertion that cannot fail (checks joined by &&, strings the test's RUN lines contain)" {
  run "$KILN_SRC/scripts/check-test-asserts.sh"
  echo "$output"
  [ "$status" -eq 0 ]
}

@test "lint: the assertion check finds planted vacuous assertions" {
  # (bats rewrites lines that start with @test, also in a here-document)
  echo '@''test "planted" {' > "$TEST_TMP/bad.bats"
  cat >> "$TEST_TMP/bad.bats" <<'B'
  cat > Dockerfile <<'EOF'
RUN echo "probe=ok"; \
    echo "other=1"
EOF
  [ "$status" -eq 0 ] && [[ $output == *x* ]]
  [[ $output == *"other=1"* ]]
  [[ $output == *"probe=$((1+1))"* ]]
}
B
  KILN_CHECK_FILES="$TEST_TMP/bad.bats" run "$KILN_SRC/scripts/check-test-asserts.sh"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"bad.bats:6: checks joined by && (only the last one counts)"* ]]
  [[ $output == *"bad.bats:7: asserted string 'other=1' is in the test's own RUN lines"* ]]
  [ "$(wc -l <<< "$output")" -eq 2 ]
}
