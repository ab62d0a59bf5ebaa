#!/usr/bin/env bash
# check-doc-functions.sh: every identifier named in the "Where is X" table of
# docs/architecture.md (backquoted words with an underscore in its third
# column, e.g. `build_run_step`) occurs in src/, tests/, scripts/ or bench/:
# the map must not send a reader to a function that was renamed or removed.
# KILN_CHECK_ROOT points it at another tree; exit 1 lists the missing names.
set -euo pipefail
root=${KILN_CHECK_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
doc=docs/architecture.md
names=$(awk '/^## Where is X/ { on = 1; next } /^## / { on = 0 } on && /^\| / { print }' "$doc" |
  awk -F'|' '{ print $4 }' | grep -o '`[^`]*`' | tr -d '`' | grep -oE '\b[a-z][a-z0-9]*_[a-z0-9_]+\b' |
  sort -u)
missing=0 n=0
for name in $names; do
  n=$((n + 1))
  if ! grep -rqw -- "$name" src tests scripts bench 2>/dev/null; then
    echo "$doc: \`$name\` is named in \"Where is X\" but occurs nowhere in the tree"
    missing=$((missing + 1))
  fi
done
if ((missing)); then
  echo "check-doc-functions: $missing of $n names do not exist" >&2
  exit 1
fi
echo "check-doc-functions: all $n names in \"Where is X\" exist"
