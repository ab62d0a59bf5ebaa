#!/usr/bin/env bats
# Source checks that the compiler does not make: a goto over the
# initialisation of a cleanup variable (scripts/check-cleanup-jumps.sh).

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
