#!/usr/bin/env bash
# bench/isal.sh - gzip layer packing and extraction, ISA-L vs zlib.
#
#   bench/isal.sh [--base DIR] [--src DIR[:DIR...]] [--threads N] [--levels LIST]
#
# Packs the trees in --src (default: /usr/lib/llvm-14, python3.11, python3
# and cni, about 650 MB of tar) with kiln's layer writer (bench/store_bench.c
# pack: tar + diffID + gzip + blob digest, written to $TMPDIR) at each gzip
# level in LIST (default -1,1,2,3,6; -1 = the default), --threads N workers
# (default 2), then extracts the default-level and level-6 blobs with kiln's
# extractor (store_bench extract). With --base DIR (a built checkout of an
# older kiln, e.g. `git worktree add --detach DIR main && make -C DIR
# build/libkiln.a`) the same harness also runs against DIR/build/libkiln.a:
# the "before" rows. One run each; markdown on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
base="" src=/usr/lib/llvm-14:/usr/lib/python3.11:/usr/lib/python3:/usr/lib/cni threads=2 levels=-1,1,2,3,6
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base=$2; shift 2 ;;
    --src) src=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --levels) levels=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "isal.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
make -s -j2 build/libkiln.a
work=$(mktemp -d "${TMPDIR:-/var/tmp}/kiln-bench-isal.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
libs() { pkg-config --libs libarchive yajl libcrypto zlib libzstd "$@"; }
# shellcheck disable=SC2046  # pkg-config prints several words
cc -std=gnu11 -O2 -D_GNU_SOURCE -Isrc bench/store_bench.c build/libkiln.a $(libs libisal) -pthread -o "$work/sb-new"
if [ -n "$base" ]; then
  # the base may predate libisal; link it anyway (unused then)
  # shellcheck disable=SC2046
  cc -std=gnu11 -O2 -D_GNU_SOURCE -I"$base/src" bench/store_bench.c "$base/build/libkiln.a" $(libs libisal) \
    -pthread -o "$work/sb-base"
fi
load() { cut -d' ' -f1-3 /proc/loadavg; }
IFS=: read -ra dirs <<< "$src"
# warm the page cache so both sides read from memory
for d in "${dirs[@]}"; do tar -C "$(dirname "$d")" -cf - "$(basename "$d")" > /dev/null; done

echo "# gzip layers: ISA-L vs zlib ($(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M') UTC)"
echo
echo "Command: \`bench/isal.sh${base:+ --base $base} --src $src --threads $threads --levels $levels\`;" \
  "$(nproc) cores shared with other jobs; load average at the start $(load)."
echo
echo "## pack (store_bench pack SRC OUT gzip LEVEL $threads)"
echo
echo "| build | level | seconds | MB/s (tar) | user s | sys s | blob MB | blob / tar |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
row() { # row LABEL BIN LEVEL
  local out
  out=$( { /usr/bin/time -f "TIME %U %S" "$2" pack "$src" "$work/l.gz" gzip "$3" "$threads"; } 2>&1)
  echo "$out" | awk -v label="$1" -v lv="$3" '
    /^pack-gzip/ { s = $2; mbs = $4; for (i = 1; i <= NF; i++) { if ($i ~ /^in=/) tin = substr($i, 4); if ($i ~ /^out=/) tout = substr($i, 5) } }
    /^TIME/ { u = $2; y = $3 }
    END { printf "| %s | %s | %.2f | %.1f | %.2f | %.2f | %.1f | %.3f |\n", label, lv, s, mbs, u, y, tout / 1e6, tout / tin }'
}
[ -z "$base" ] || row "before (base)" "$work/sb-base" -1
IFS=, read -ra lvs <<< "$levels"
for lv in "${lvs[@]}"; do row "after" "$work/sb-new" "$lv"; done
echo
echo "## extract (store_bench extract BLOB DIR; extraction under ${TMPDIR:-/var/tmp}, single thread)"
echo
echo "| build | blob | seconds | user s | sys s |"
echo "|---|---|---:|---:|---:|"
"$work/sb-new" pack "$src" "$work/l3.gz" gzip -1 "$threads" > /dev/null
"$work/sb-new" pack "$src" "$work/l6.gz" gzip 6 "$threads" > /dev/null
xrow() { # xrow LABEL BIN BLOB
  local out
  rm -rf "$work/x"
  out=$( { /usr/bin/time -f "TIME %U %S" "$2" extract "$3" "$work/x"; } 2>&1)
  rm -rf "$work/x"
  echo "$out" | awk -v label="$1" -v blob="$(basename "$3")" '
    /^extract/ { s = $2 } /^TIME/ { u = $2; y = $3 }
    END { printf "| %s | %s | %.2f | %.2f | %.2f |\n", label, blob, s, u, y }'
}
for b in l6.gz l3.gz; do
  [ -z "$base" ] || xrow "before (zlib inflate)" "$work/sb-base" "$work/$b"
  xrow "after (isal_inflate)" "$work/sb-new" "$work/$b"
done
echo
echo "Load average at the end: $(load)."
