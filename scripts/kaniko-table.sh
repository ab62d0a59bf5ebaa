#!/usr/bin/env bash
# scripts/kaniko-table.sh - docs/compatibility.md's table of kaniko's
# executor flags is generated from kiln build's flag table
# (`kiln build --help-kaniko-table`, src/cmd/build_kaniko.c); it sits
# between the markers <!-- kaniko-table:begin --> and
# <!-- kaniko-table:end -->.
#
#   scripts/kaniko-table.sh          rewrite the table in place
#   scripts/kaniko-table.sh --check  exit 1 with a diff when it is stale
#
# KILN names the binary (default ./kiln; run make first), KILN_COMPAT_DOC the
# document (default docs/compatibility.md).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
kiln=${KILN:-$root/kiln}
doc=${KILN_COMPAT_DOC:-$root/docs/compatibility.md}
begin='<!-- kaniko-table:begin -->'
end='<!-- kaniko-table:end -->'

table=$("$kiln" build --help-kaniko-table)
grep -qxF "$begin" "$doc" && grep -qxF "$end" "$doc" ||
  { echo "kaniko-table: $doc lacks the markers $begin / $end" >&2; exit 2; }
new=$(awk -v b="$begin" -v e="$end" -v t="$table" '
  $0 == b { print; print t; skip = 1; next }
  $0 == e { skip = 0 }
  !skip { print }' "$doc")

if [ "${1:-}" = --check ]; then
  if ! diff -u "$doc" <(printf '%s\n' "$new"); then
    echo "kaniko-table: docs/compatibility.md disagrees with kiln build's flag table; run scripts/kaniko-table.sh" >&2
    exit 1
  fi
  exit 0
fi
printf '%s\n' "$new" > "$doc"
