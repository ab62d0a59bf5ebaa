#!/usr/bin/env bash
# bench/fuse-read-ab.sh - sequential read through kiln's overlay, two builds of
# kiln A/B (e.g. READ replies spliced vs copied), alternating in one run.
#   bench/fuse-read-ab.sh A_TREE B_TREE [MB] [REPS]   (defaults 512 5)
# A_TREE and B_TREE are kiln source trees with build/libkiln.a built. Run as
# root. The lower is one plain directory holding a MB MiB file; every read is
# `dd bs=1M` of that file through a fresh mount (so the FUSE page cache is
# empty), in two cases:
#   cold   after sync + drop_caches (the host reads the disk)
#   warm   the host's page cache holds the file: only FUSE's cost is left
# Prints the median MiB/s per case and build, and B/A.
set -euo pipefail
A=$(cd "$1" && pwd) B=$(cd "$2" && pwd) MB=${3:-512} REPS=${4:-5}
[ "$(id -u)" = 0 ] || { echo "fuse-read-ab.sh: run as root" >&2; exit 1; }
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /var/tmp/kiln-read-ab.XXXXXX)
trap 'rm -rf --one-file-system "$work"' EXIT
read -r -a cflags <<< "$(pkg-config --cflags fuse3 yajl)"
read -r -a libs <<< "$(pkg-config --libs libseccomp libcap libarchive libcurl yajl fuse3 liburing libcrypto zlib libzstd libisal)"
for t in A B; do
  tree=${!t}
  cc -std=gnu11 -O2 -D_GNU_SOURCE -DFUSE_USE_VERSION=35 -pthread -I"$tree/src" "${cflags[@]}" \
    -o "$work/mount-$t" "$src/bench/fuse_overhead_mount.c" "$tree/build/libkiln.a" "${libs[@]}" -lm
done
mkdir -p "$work/lower"
dd if=/dev/urandom of="$work/lower/big" bs=1M count="$MB" status=none
one() { # BUILD CASE -> MiB/s
  local d=$work/run mnt=$work/mnt
  rm -rf "$d"; mkdir -p "$d/scratch" "$mnt"
  if [ "$2" = cold ]; then sync; echo 3 > /proc/sys/vm/drop_caches; else cat "$work/lower/big" > /dev/null; fi
  unshare -m "$work/mount-$1" "$work/lower" "$d/scratch" "$mnt" \
    sh -c "s=\$(date +%s%3N); dd if='$mnt/big' of=/dev/null bs=1M status=none; e=\$(date +%s%3N); echo \$((e - s))" 2>/dev/null |
    awk -v mb="$MB" '{ printf "%.0f\n", mb * 1000 / $1 }'
}
declare -A V
for _ in $(seq "$REPS"); do
  for c in cold warm; do
    for t in A B; do V[$c,$t]="${V[$c,$t]:-} $(one "$t" "$c")"; done
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| read $MB MiB | A MiB/s | B MiB/s | B / A |"
echo "| --- | --- | --- | --- |"
for c in cold warm; do
  a=$(echo "${V[$c,A]}" | median) b=$(echo "${V[$c,B]}" | median)
  echo "| $c | $a | $b | $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }') |"
  echo "  $c A:${V[$c,A]}  B:${V[$c,B]}" >&2
done
