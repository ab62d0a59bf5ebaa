#!/usr/bin/env bash
# bench/journal-ab.sh - two kiln binaries on a warm workload build whose
# store lives on a journalled ext4 filesystem (a loop device over a file in
# /var/tmp), as CI runners' disks are, where each fsync costs about a
# millisecond; this machine's own root has no journal and hides that cost.
#
#   bench/journal-ab.sh KILN_A KILN_B [RUNS] [WORKLOAD]   (as root; defaults 7 w1)
#
# Each binary gets its own store on the loop device, one cold build to fill
# it, then RUNS warm builds (--no-cache, --oci-layout written afresh on the
# same filesystem) alternating A B A B; prints each binary's times, medians,
# B/A, and the fsync(2) count of one more warm build of each (strace -f).
# Bases come from the persistent bench registry as for bench/ab-workloads.sh.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ "$(id -u)" = 0 ] || { echo "journal-ab.sh: run as root (loop mount)" >&2; exit 1; }
A=$(readlink -f "$1") B=$(readlink -f "$2") RUNS=${3:-7} WLN=${4:-w1}
[ -x "$A" ] && [ -x "$B" ] || { echo "journal-ab.sh: both binaries must be executable" >&2; exit 2; }
command -v strace >/dev/null || { echo "journal-ab.sh: needs strace" >&2; exit 1; }
export KILN=$A KILN_POLICY_DIR=${KILN_POLICY_DIR:-$SRC/policies}
# shellcheck source=tests/integration/helpers.bash
source "$SRC/tests/integration/helpers.bash"
# shellcheck source=bench/workload-lib.sh
source "$SRC/bench/workload-lib.sh"
registry_start --root "$KILN_TEST_CACHE/bench/registry" >&2
fuse_dev_open_for_all; tun_dev_open_for_all
W=$(mktemp -d /var/tmp/kiln-journal-ab.XXXXXX)
cleanup() {
  mountpoint -q "$W/fs" 2>/dev/null && umount "$W/fs"
  rm -rf --one-file-system "$W"
  kiln_shell_cleanup
}
trap cleanup EXIT
truncate -s 16G "$W/img"
mkfs.ext4 -q -F "$W/img"   # a journal, as mke2fs.conf's default ext4 has
mkdir "$W/fs" && mount -o loop "$W/img" "$W/fs"
src="${KILN_WORKLOADS:-/work/shared/workloads}/$(bench_wl_dir "$WLN")"
ctx=$(bench_wl_context "$WLN" "$src" "$W" "$KILN_TEST_CACHE/bench")
sed "s#REGISTRY#$REGISTRY#g" "$src/Dockerfile" > "$W/Dockerfile"

build() { # BIN KEY [PREFIX...] -> ms
  local bin=$1 k=$2; shift 2
  rm -rf "$W/fs/out"; sync
  local s e
  s=$(date +%s%N)
  "$@" "$bin" build --progress plain --root "$W/fs/store-$k" --insecure-registry "$REGISTRY" --no-push --no-cache \
    --oci-layout "$W/fs/out:b" -f "$W/Dockerfile" "$ctx" > "$W/log" 2>&1 \
    || { echo "journal-ab.sh: the build failed:" >&2; tail -n 20 "$W/log" >&2; exit 1; }
  e=$(date +%s%N)
  echo $(( (e - s) / 1000000 ))
}

"$A" build --progress plain --root "$W/fs/store-A" --insecure-registry "$REGISTRY" --no-push -f "$W/Dockerfile" "$ctx" > /dev/null 2>&1
"$B" build --progress plain --root "$W/fs/store-B" --insecure-registry "$REGISTRY" --no-push -f "$W/Dockerfile" "$ctx" > /dev/null 2>&1
ta=() tb=()
for _ in $(seq "$RUNS"); do
  ta+=("$(build "$A" A)")
  tb+=("$(build "$B" B)")
done
ma=$(printf '%s\n' "${ta[@]}" | bench_median) mb=$(printf '%s\n' "${tb[@]}" | bench_median)
fa=$(build "$A" A strace -f -qq -e trace=fsync -o "$W/fa" >/dev/null; grep -c 'fsync(' "$W/fa")
fb=$(build "$B" B strace -f -qq -e trace=fsync -o "$W/fb" >/dev/null; grep -c 'fsync(' "$W/fb")
echo "$WLN warm on journalled ext4 (loop), ms"
echo "A: ${ta[*]} (median $ma, $fa fsyncs)"
echo "B: ${tb[*]} (median $mb, $fb fsyncs)"
awk -v a="$ma" -v b="$mb" 'BEGIN { printf "B/A: %.2f\n", b / a }'
echo "A = $A, B = $B; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
