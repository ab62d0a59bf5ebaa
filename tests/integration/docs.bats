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

@test "docs: every function the \"Where is X\" table names is in its row's files; a renamed or moved one is reported" {
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
  [[ $output == *'`gone_fn` is not in src/a.c'* ]]
  [[ $output != *'`real_fn`'* ]]
  # a function that moved to another file than its row names
  printf 'int\ngone_fn (void)\n{\n  return 1;\n}\n' > "$TEST_TMP/src/b.c"
  KILN_CHECK_ROOT=$TEST_TMP run "$KILN_SRC/scripts/check-doc-functions.sh"
  [ "$status" -eq 1 ]
  [[ $output == *'`gone_fn` is not in src/a.c'* ]]
  sed -i 's|`src/a.c`|`src/a.c`, `src/b.c`|' "$TEST_TMP/docs/architecture.md"
  KILN_CHECK_ROOT=$TEST_TMP run "$KILN_SRC/scripts/check-doc-functions.sh"
  [ "$status" -eq 0 ]
}

@test "docs: the README's main job, make demo (scripts/demo.sh), builds examples/hello, pushes it and runs its CMD" {
  cd "$KILN_SRC"
  run scripts/demo.sh
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"demo: pushed 127.0.0.1:"*"/demo/hello@sha256:"* ]]
  [[ $output == *"hello from kiln"* ]]
  [[ $output == *"running as app in /home/app"* ]]
}
