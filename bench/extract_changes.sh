#!/usr/bin/env bash
# bench/extract_changes.sh - time extract_from_changes (a RUN step's layer
# published from its change list: index + tree of hardlinks to the data) on
# a synthetic layer of FILES files in DIRS directories DEPTH levels deep.
#
#   bench/extract_changes.sh [FILES [DIRS [DEPTH [RUNS]]]]   (50000 500 4 3)
#
# Needs build/libkiln.a (make; LIBKILN=PATH: another build of it, e.g. an older
# commit's, to compare). Work dir: $TMPDIR (removed afterwards).
# Output: one line per run, then the median.
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-50000} dirs=${2:-500} depth=${3:-4} runs=${4:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-xchg.XXXXXX")
trap 'rm -rf "$work"' EXIT
cc -std=gnu11 -O2 -D_GNU_SOURCE -Isrc bench/extract_changes_bench.c "${LIBKILN:-build/libkiln.a}" \
  $(pkg-config --libs libarchive yajl libcrypto zlib libzstd) -pthread -o "$work/bench"
"$work/bench" "$work/w" "$files" "$dirs" "$depth" "$runs" | tee "$work/out"
echo "median seconds: $(awk '{print $4}' "$work/out" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
