#!/usr/bin/env bats
# The architecture map and the design notes name files of the tree; every
# src/, tests/, scripts/, bench/ and policies/ path they write in backquotes
# must exist (scripts/check-doc-paths.sh).

load helpers

setup() { kiln_setup; }
teardown() { kiln_teardown; }

@test "docs: every path named in docs/architecture.md and docs/design/ exists" {
  run "$KILN_SRC/scripts/check-doc-paths.sh"
  echo "$output"
  [ "$status" -eq 0 ]
}

@test "docs: every function the \"Where is X\" table names exists; a renamed one is reported" {
  run "$KILN_SRC/scripts/check-doc-functions.sh"
  echo "$output"
  [ "$status" -eq 0 ]
  mkdir -p "$TEST_TMP/docs" "$TEST_TMP/src"
  printf '## Where is X\n\n| a | b | c |\n| --- | --- | --- |\n| x | `src/a.c` | `real_fn` → `gone_fn` |\n## Next\n' \
    > "$TEST_TMP/docs/architecture.md"
  printf 'int\nreal_fn (void)\n{\n  return 0;\n}\n' > "$TEST_TMP/src/a.c"
  KILN_CHECK_ROOT=$TEST_TMP run "$KILN_SRC/scripts/check-doc-functions.sh"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *'`gone_fn` is named'* ]]
  [[ $output != *'`real_fn`'* ]]
}
