#!/usr/bin/env bash
# check-layers.sh - the folders of src/ are layers, lowest first:
LAYERS=(util registry store overlay sandbox build cmd)
# A file may include headers of its own folder and of the folders before
# it, never of a folder after it: each folder builds on the ones below and
# nothing reaches back up (src/cmd/, the commands, sits on top; src/main.c
# above it is not checked). Prints every include against that order, as
#   src/X/file.c: includes "Y/z.h" (Y is above X)
# and exits 1 if there is any. A folder missing from LAYERS is reported too.
# KILN_CHECK_ROOT names the tree to check (default: this repository; the
# lint test points it at a tree with a planted violation).
set -euo pipefail
cd "${KILN_CHECK_ROOT:-$(dirname "$0")/..}"

# rank FOLDER: its position in LAYERS, or nothing if it is not there.
rank() {
  local i
  for i in "${!LAYERS[@]}"; do
    if [ "${LAYERS[$i]}" = "$1" ]; then
      echo "$i"
      return
    fi
  done
}

bad=0
shopt -s nullglob
for f in src/*/*.c src/*/*.h; do
  dir=${f#src/}
  dir=${dir%%/*}
  own=$(rank "$dir")
  if [ -z "$own" ]; then
    echo "$f: folder $dir is not in the layer order (LAYERS in $0)"
    bad=1
    continue
  fi
  while IFS= read -r inc; do
    to=${inc%%/*}
    other=$(rank "$to")
    if [ -z "$other" ]; then
      echo "$f: includes \"$inc\" ($to is not in the layer order)"
      bad=1
    elif [ "$other" -gt "$own" ]; then
      echo "$f: includes \"$inc\" ($to is above $dir)"
      bad=1
    fi
  done < <(sed -n 's|^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"/]*/[^"]*\)".*|\1|p' "$f")
done
exit $bad
