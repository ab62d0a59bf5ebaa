#!/usr/bin/env bash
# check-doc-functions.sh: every identifier named in the "Where is X" table of
# docs/architecture.md (backquoted words with an underscore in its third
# column, e.g. `build_run_step`) occurs in one of the files its row names
# in the second column (or, for a row naming no file, anywhere in src/,
# tests/, scripts/ or bench/): the map must not send a reader to a function
# that was renamed, removed or moved to another file.
# KILN_CHECK_ROOT points it at another tree; exit 1 lists what is wrong.
set -euo pipefail
root=${KILN_CHECK_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
doc=docs/architecture.md
missing=0 n=0
while IFS= read -r row; do
  IFS='|' read -r _ what files names _ <<< "$row"
  mapfile -t paths < <(grep -o '`[^`]*`' <<< "$files" | tr -d '`' | grep -E '^(src|tests|scripts|bench)/[^ ]*[^/]$' || true)
  [ ${#paths[@]} -gt 0 ] || paths=(src tests scripts bench)
  for name in $(grep -o '`[^`]*`' <<< "$names" | tr -d '`' | grep -oE '\b[a-z][a-z0-9]*_[a-z0-9_]+\b' | sort -u); do
    n=$((n + 1))
    if ! grep -rqw -- "$name" "${paths[@]}" 2>/dev/null; then
      echo "$doc: \"$(echo $what)\": \`$name\` is not in ${paths[*]}"
      missing=$((missing + 1))
    fi
  done
done < <(awk '/^## Where is X/ { on = 1; next } /^## / { on = 0 } on && /^\| / && !/^\| (behaviour|---)/ { print }' "$doc")
if ((missing)); then
  echo "check-doc-functions: $missing of $n names are not where \"Where is X\" says" >&2
  exit 1
fi
echo "check-doc-functions: all $n names in \"Where is X\" are in the files their rows name"
