#!/usr/bin/env bash
# bench/fuse-overhead.sh - FUSE overhead of kiln's overlay (issue 7) against
# the native disk and fuse-overlayfs over the same lower layer, in one run.
# kiln runs twice: over the lower as a plain directory (attributes from its
# inodes: every directory's entries are stat'ed when it is first listed) and
# over the same tree as a store layer (attributes from the layer's index),
# which is what builds serve their base images from.
#   bench/fuse-overhead.sh [REPS] [DATA_MB] [FILES]   (defaults 3 1024 50000)
# Run as root (fuse-overlayfs and kiln's overlay are mounted with mount(2);
# kiln's inside `unshare -m` via bench/fuse_overhead_mount.c).
#
# The lower layer is a plain directory with base/ (FILES small files, 100 per
# directory, the contents of the untar tarball) and proj/ (a generated C
# project: 32 generated .c files + main.c + Makefile). Every row runs on a fresh mount (kiln:
# new overlay; fuse-overlayfs: new upper) or, native, on a copy of
# the lower (find/du: one copy for all runs, compile: a fresh copy of proj/);
# mounting and copying are not timed. Rows:
#   untar    tar -xf TARBALL (FILES files) into a new directory
#   find     find over base/ (cold FUSE caches, warm host page cache)
#   du       du -s over base/
#   compile  make -j2 in proj/ (33 gcc -O2 compiles, objects written to the mount)
#   write    dd 1 MiB blocks, DATA_MB MiB, conv=fsync
#   read     the same file after sync + drop_caches, dd to /dev/null
# Each figure is the median of REPS runs in milliseconds. Prints a markdown
# table with ratios against native and against fuse-overlayfs, and the load
# average before and after.
set -euo pipefail

if [ "${1:-}" = "--inner" ]; then
  # --inner WORKLOAD DIR TARBALL DATA_MB: run one workload in DIR, print ms.
  w=$2 d=$3 tarball=$4 mb=$5
  ms() { echo $(( $(date +%s%N) / 1000000 )); }
  case "$w" in
    untar)
      mkdir "$d/untar"; s=$(ms); tar -xf "$tarball" -C "$d/untar"; e=$(ms) ;;
    find)
      s=$(ms); n=$(find "$d/base" | wc -l); e=$(ms); [ "$n" -gt 1 ] ;;
    du)
      s=$(ms); du -s "$d/base" >/dev/null; e=$(ms) ;;
    compile)
      s=$(ms); make -s -C "$d/proj" -j2 >/dev/null; e=$(ms); [ -x "$d/proj/prog" ] ;;
    data)
      s=$(ms); dd if=/dev/zero of="$d/big" bs=1M count="$mb" conv=fsync status=none; e=$(ms)
      sync; echo 3 > /proc/sys/vm/drop_caches
      s2=$(ms); dd if="$d/big" of=/dev/null bs=1M status=none; e2=$(ms)
      echo "$((e - s)) $((e2 - s2))"; exit 0 ;;
    *) echo "fuse-overhead: unknown workload $w" >&2; exit 2 ;;
  esac
  echo "$((e - s))"
  exit 0
fi

REPS=${1:-3} MB=${2:-1024} FILES=${3:-50000}
[ "$(id -u)" = 0 ] || { echo "fuse-overhead.sh: run as root" >&2; exit 1; }
command -v fuse-overlayfs >/dev/null || { echo "fuse-overhead.sh: needs fuse-overlayfs (apt-get install fuse-overlayfs)" >&2; exit 1; }
src=$(cd "$(dirname "$0")/.." && pwd)
self="$src/bench/fuse-overhead.sh"
work=$(mktemp -d /var/tmp/kiln-fuse-overhead.XXXXXX)
cleanup() {
  for m in "$work"/mnt*; do mountpoint -q "$m" 2>/dev/null && umount -l "$m"; done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make -s -C "$src" build/libkiln.a
cc -std=gnu11 -O2 -D_GNU_SOURCE -DFUSE_USE_VERSION=35 -I"$src/src" $(pkg-config --cflags fuse3) \
  -o "$work/fuse_overhead_mount" "$src/bench/fuse_overhead_mount.c" "$src/build/libkiln.a" \
  $(pkg-config --libs libseccomp libcap libarchive libcurl yajl fuse3 liburing libcrypto zlib libzstd libisal) -lm -pthread

# ---- inputs: tarball of FILES small files, lower = base/ + proj/ ----
python3 - "$work/gen" "$FILES" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)
for i in range(n):
    d = os.path.join(root, "pkg%04d" % (i // 100))
    if i % 100 == 0:
        os.makedirs(d)
    with open(os.path.join(d, "f%03d.js" % (i % 100)), "wb") as f:
        f.write(rnd.randbytes(rnd.randint(0, 4096)))
EOF
tar -cf "$work/files.tar" -C "$work/gen" .
L=$work/lower
mkdir -p "$L/proj"
mv "$work/gen" "$L/base"
for i in $(seq -w 1 32); do
  {
    echo '#include <stdio.h>'; echo '#include <stdlib.h>'; echo '#include <string.h>'
    for j in $(seq 1 12); do
      echo "int f${i}_$j (const char *s, int n) { int h = $j; for (int k = 0; k < n && s[k]; k++) h = h * 31 + s[k] * 1$i; char b[64]; snprintf (b, sizeof b, \"%d\", h); return (int) strlen (b) + atoi (b) % 7; }"
    done
  } > "$L/proj/u$i.c"
done
{
  echo '#include <stdio.h>'
  echo "int f01_1 (const char *s, int n);"
  echo 'int main (void) { printf ("%d\n", f01_1 ("kiln", 4)); return 0; }'
} > "$L/proj/main.c"
printf 'CFLAGS = -O2 -Wall\nSRCS = $(wildcard *.c)\nprog: $(SRCS:.c=.o)\n\t$(CC) -o $@ $^\n' > "$L/proj/Makefile"
tar -cf "$work/lower.tar" -C "$L" .
sync

# run_one MODE WORKLOAD: prints the inner output (ms, or "write read")
n=0
run_one() {
  local mode=$1 w=$2 out
  n=$((n + 1))
  local d=$work/run$n mnt=$work/mnt$n
  mkdir -p "$d"
  case "$mode" in
    native)
      # find/du only read: one copy of the lower serves every run; compile
      # gets a fresh copy of proj/; untar and data start from an empty dir.
      case "$w" in
        find|du) [ -d "$work/native" ] || cp -a "$L" "$work/native"; d=$work/native ;;
        compile) cp -a "$L/proj" "$d/" ;;
      esac
      out=$("$self" --inner "$w" "$d" "$work/files.tar" "$MB") ;;
    fuse-overlayfs)
      mkdir -p "$d/upper" "$d/work" "$mnt"
      fuse-overlayfs -o "lowerdir=$L,upperdir=$d/upper,workdir=$d/work" "$mnt"
      out=$("$self" --inner "$w" "$mnt" "$work/files.tar" "$MB") || { umount "$mnt"; return 1; }
      umount "$mnt" ;;
    kiln|kiln-store)
      mkdir -p "$d/scratch" "$mnt"
      local lower=("$L")
      [ "$mode" = kiln ] || lower=(--store "$work/store" "$work/lower.tar")
      out=$(unshare -m "$work/fuse_overhead_mount" "${lower[@]}" "$d/scratch" "$mnt" \
              "$self" --inner "$w" "$mnt" "$work/files.tar" "$MB" 2>"$d/commit.log") \
        || { cat "$d/commit.log" >&2; return 1; } ;;
  esac
  rm -rf --one-file-system "$work/run$n" "$mnt"
  echo "$out"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Modes are interleaved within each repetition, so a change in the machine's
# load (it is shared) hits all three alike.
declare -A R V
modes="native fuse-overlayfs kiln kiln-store"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for w in untar find du compile data; do
  for _ in $(seq "$REPS"); do
    for m in $modes; do
      if [ "$w" = data ]; then
        read -r a b < <(run_one "$m" data)
        V[write,$m]="${V[write,$m]:-} $a" V[read,$m]="${V[read,$m]:-} $b"
      else
        V[$w,$m]="${V[$w,$m]:-} $(run_one "$m" "$w")"
      fi
    done
  done
done
for w in untar find du compile write read; do
  for m in $modes; do
    R[$w,$m]=$(printf '%s\n' ${V[$w,$m]} | median)
    echo "  $w $m:${V[$w,$m]}" >&2
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "| workload | native ms | fuse-overlayfs ms | kiln ms | kiln, store lower, ms | kiln / native | kiln, store lower / native | kiln / fuse-overlayfs |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
label() {
  case "$1" in
    untar) echo "untar $FILES files (tar -xf)" ;;
    find) echo "find over $FILES lower files" ;;
    du) echo "du -s over $FILES lower files" ;;
    compile) echo "C compile (33 files, make -j2)" ;;
    write) echo "sequential write $MB MiB (dd, fsync)" ;;
    read) echo "sequential read $MB MiB (caches dropped)" ;;
  esac
}
for w in untar find du compile write read; do
  a=${R[$w,native]} b=${R[$w,fuse-overlayfs]} c=${R[$w,kiln]} k=${R[$w,kiln-store]}
  awk -v l="$(label "$w")" -v a="$a" -v b="$b" -v c="$c" -v k="$k" 'BEGIN {
    printf "| %s | %d | %d | %d | %d | %.2f | %.2f | %.2f |\n", l, a, b, c, k, a ? c / a : 0, a ? k / a : 0, b ? c / b : 0 }'
done
echo
echo "REPS=$REPS (median of each), load average after: $load_after"
