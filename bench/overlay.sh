#!/bin/sh
# bench/overlay.sh - FUSE overlay figures (see bench/results/overlay.md).
# Snapshot cost (step exit -> change list): bench/bench_overlay.c mounts the
# overlay over a generated base of N empty files (1000 per directory), creates
# M files through the mount and times overlay_commit. Runs as root.
# Usage: bench/overlay.sh [BASES] [CHANGES]   (default "10000 100000 200000" "1 100 10000")
set -eu
cd "$(dirname "$0")/.."
BASES=${1:-"10000 100000 200000"}
CHANGES=${2:-"1 100 10000"}
make -s build/libkiln.a
cc -std=gnu11 -O2 -D_GNU_SOURCE -DFUSE_USE_VERSION=35 -Isrc $(pkg-config --cflags fuse3) \
  -o build/bench_overlay bench/bench_overlay.c build/libkiln.a \
  $(pkg-config --libs libseccomp libcap libarchive libcurl yajl fuse3 liburing libcrypto zlib libzstd libisal) -lm -pthread
for b in $BASES; do
  for c in $CHANGES; do
    unshare -m build/bench_overlay "$b" "$c"
  done
done
