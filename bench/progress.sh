#!/usr/bin/env bash
# Progress benchmark: the cost of one line of RUN output in plain, json,
# tty (render thread on, 120x40) and quiet modes, output to /dev/null.
# Run from the repository root after `make`:
#   bench/progress.sh [LINES]   (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/libkiln.a
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -std=gnu11 -O2 -D_GNU_SOURCE -Isrc -o "$work/bench" bench/progress_bench.c \
  build/libkiln.a $(pkg-config --libs yajl libseccomp libcap libarchive libcurl fuse3 liburing libcrypto zlib libzstd libisal) -lm -pthread
"$work/bench" "${1:-200000}"
