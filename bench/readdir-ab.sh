#!/usr/bin/env bash
# bench/readdir-ab.sh - directory listing through kiln's overlay, two builds of
# kiln A/B (e.g. a copied listing per opendir vs one shared listing),
# alternating in one run.
#   bench/readdir-ab.sh A_TREE B_TREE [REPS]   (default 5)
# A_TREE and B_TREE are kiln source trees with build/libkiln.a built. Run as
# root. The lower is one plain directory: tree/ (50,000 empty files, 100 per
# directory) and wide/ (20,000 entries in one directory). Every row runs on
# a fresh mount (bench/fuse_overhead_mount.c), so nothing is cached:
#   find       find tree/ | wc -l                       (readdir, lookups)
#   ls-lR      ls -lR tree/ > /dev/null                 (readdirplus + stat)
#   wide-x200  200 times ls -f wide/ > /dev/null        (opendir of one big directory)
#   churn      2,000 times: create a file in wide/, ls -f wide/ (a new listing each time)
# Prints the median milliseconds per row and build, and B/A.
set -euo pipefail
A=$(cd "$1" && pwd) B=$(cd "$2" && pwd) REPS=${3:-5}
[ "$(id -u)" = 0 ] || { echo "readdir-ab.sh: run as root" >&2; exit 1; }
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /var/tmp/kiln-readdir-ab.XXXXXX)
trap 'rm -rf --one-file-system "$work"' EXIT
read -r -a cflags <<< "$(pkg-config --cflags fuse3 yajl)"
read -r -a libs <<< "$(pkg-config --libs libseccomp libcap libarchive libcurl yajl fuse3 liburing libcrypto zlib libzstd libisal)"
for t in A B; do
  tree=${!t}
  cc -std=gnu11 -O2 -D_GNU_SOURCE -DFUSE_USE_VERSION=35 -pthread -I"$tree/src" "${cflags[@]}" \
    -o "$work/mount-$t" "$src/bench/fuse_overhead_mount.c" "$tree/build/libkiln.a" "${libs[@]}" -lm
done
L=$work/lower
mkdir -p "$L/tree" "$L/wide"
for d in $(seq -w 0 499); do
  mkdir "$L/tree/d$d"
  (cd "$L/tree/d$d" && touch $(seq -f 'f%03g' 0 99))
done
(cd "$L/wide" && seq -f 'entry-with-a-longer-name-%06g' 0 19999 | xargs touch)
sync
rows="find ls-lR wide-x200 churn"
cmd_of() { # ROW MNT
  case "$1" in
    find) echo "find '$2/tree' | wc -l > /dev/null" ;;
    ls-lR) echo "ls -lR '$2/tree' > /dev/null" ;;
    wide-x200) echo "for i in \$(seq 200); do ls -f '$2/wide' > /dev/null; done" ;;
    churn) echo "for i in \$(seq 2000); do : > '$2/wide/new-\$i'; ls -f '$2/wide' > /dev/null; done" ;;
  esac
}
one() { # BUILD ROW -> ms
  local d=$work/run mnt=$work/mnt
  rm -rf "$d"; mkdir -p "$d/scratch" "$mnt"
  unshare -m "$work/mount-$1" "$L" "$d/scratch" "$mnt" \
    sh -c "s=\$(date +%s%3N); $(cmd_of "$2" "$mnt"); e=\$(date +%s%3N); echo \$((e - s))" 2>/dev/null
}
declare -A V
for _ in $(seq "$REPS"); do
  for r in $rows; do
    for t in A B; do V[$r,$t]="${V[$r,$t]:-} $(one "$t" "$r")"; done
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| row | A ms | B ms | B / A |"
echo "| --- | --- | --- | --- |"
for r in $rows; do
  a=$(echo "${V[$r,A]}" | median) b=$(echo "${V[$r,B]}" | median)
  echo "| $r | $a | $b | $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }') |"
  echo "  $r A:${V[$r,A]}  B:${V[$r,B]}" >&2
done
