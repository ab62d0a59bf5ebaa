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
