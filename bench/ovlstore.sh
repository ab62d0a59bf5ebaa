#!/bin/sh
# bench/ovlstore.sh - overlay over a store layer (see bench/results/ovlstore.md):
# stack open time and step exit -> layer blob (commit, conversion to
# layer_change[], gzip layer write) for a store base of N index entries and a
# step creating M files through the mount. Runs as root.
# Usage: bench/ovlstore.sh [BASES] [CHANGES]   (default "10000 100000 200000" "1 100 10000")
set -eu
cd "$(dirname "$0")/.."
BASES=${1:-"10000 100000 200000"}
CHANGES=${2:-"1 100 10000"}
make -s build/libkiln.a
cc -std=gnu11 -O2 -D_GNU_SOURCE -DFUSE_USE_VERSION=35 -Isrc $(pkg-config --cflags fuse3) \
  -o build/bench_ovlstore bench/bench_ovlstore.c build/libkiln.a \
  $(pkg-config --libs libseccomp libcap libarchive libcurl yajl fuse3 libcrypto zlib libzstd libisal) -lm -pthread
for b in $BASES; do
  for c in $CHANGES; do
    unshare -m build/bench_ovlstore "$b" "$c"
  done
done
