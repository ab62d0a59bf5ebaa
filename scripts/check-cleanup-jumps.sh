#!/usr/bin/env bash
# check-cleanup-jumps.sh - find gotos that jump over the initialisation of a
# variable with a cleanup attribute (autofree, autoclose, ...). GCC accepts
# such code, and the cleanup then runs on an uninitialised value at the
# jump's target (a crash or a double free on an error path only).
# Exit 1 and list them if there are any. KILN_CHECK_FILES overrides the
# file list (the lint test feeds it a known-bad file).
set -euo pipefail
cd "$(dirname "$0")/.."
flags=$(pkg-config --cflags libseccomp libcap libarchive libcurl yajl fuse3 libcrypto zlib libzstd)
bad=0
for f in ${KILN_CHECK_FILES:-src/*/*.c src/main.c}; do
  # -Wjump-misses-init names each skipped variable in a note.
  # shellcheck disable=SC2086
  gcc -std=gnu11 -fsyntax-only -Wjump-misses-init -D_GNU_SOURCE -DFUSE_USE_VERSION=35 -Isrc $flags "$f" 2>&1 |
    sed -n 's/^\([^:]*\):\([0-9]*\):[0-9]*: note: .* declared here/\1 \2/p' | sort -u |
    while read -r file line; do
      if sed -n "${line}p" "$file" | grep -qE '\bauto[a-z]+\b|__attribute__ *\(\(cleanup'; then
        echo "$file:$line: goto skips the initialisation of: $(sed -n "${line}p" "$file" | sed 's/^ *//')"
      fi
    done
done > /tmp/kiln-cleanup-jumps.$$ || true
if [ -s /tmp/kiln-cleanup-jumps.$$ ]; then
  cat /tmp/kiln-cleanup-jumps.$$
  bad=1
fi
rm -f /tmp/kiln-cleanup-jumps.$$
exit $bad
