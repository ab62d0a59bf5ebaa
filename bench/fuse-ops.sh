#!/usr/bin/env bash
# bench/fuse-ops.sh - the FUSE requests a workload's warm build sends to
# kiln's overlay, counted per opcode from the kernel's own tracepoint
# (fuse:fuse_request_send, Linux 6.15+), so the figure needs no counter in
# kiln and costs the build nothing measurable: issue 21's "FUSE request counts
# per opcode per workload", the baseline every round-trip saving is judged by.
#
#   bench/fuse-ops.sh [WORKLOAD...]     (as root; default w6; KILN=path/to/kiln)
#
# Each workload is built once cold (base pulled into a fresh store), then
# once warm (--no-cache) under `perf record -a -e fuse:fuse_request_send`,
# while a second `perf record` of the build's own process tree names the FUSE
# connections (mounts) the build used: only requests on those connections
# count (the kernel's writeback threads included), not other FUSE mounts on
# the machine (other builds running at the same time).
# Bases from the persistent bench registry as bench/ab-workloads.sh; prints a
# Markdown table (opcode, requests, share) per workload and the build time.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
WL=("$@"); [ ${#WL[@]} -gt 0 ] || WL=(w6)
[ "$(id -u)" = 0 ] || { echo "bench/fuse-ops.sh: run as root" >&2; exit 1; }
KILN=$(readlink -f "${KILN:-$SRC/kiln}")
[ -x "$KILN" ] || { echo "bench/fuse-ops.sh: no kiln binary at $KILN (make -j2)" >&2; exit 1; }
command -v perf >/dev/null || { echo "bench/fuse-ops.sh: perf is not installed (linux-perf)" >&2; exit 1; }
# a fresh boot may not have tracefs mounted (perf needs it for tracepoints)
[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
[ -d /sys/kernel/tracing/events/fuse/fuse_request_send ] || [ -d /sys/kernel/debug/tracing/events/fuse/fuse_request_send ] \
  || { echo "bench/fuse-ops.sh: this kernel has no fuse:fuse_request_send tracepoint (6.15+)" >&2; exit 1; }
workloads_dir=${KILN_WORKLOADS:-/work/shared/workloads}
export KILN KILN_POLICY_DIR=${KILN_POLICY_DIR:-$SRC/policies}
# shellcheck source=tests/integration/helpers.bash
source "$SRC/tests/integration/helpers.bash"
CACHE=$KILN_TEST_CACHE/bench
registry_start --root "$CACHE/registry" >&2
fuse_dev_open_for_all; tun_dev_open_for_all
W=$(mktemp -d /var/tmp/kiln-fuseops.XXXXXX)
trap 'rm -rf --one-file-system "$W"; kiln_shell_cleanup' EXIT

# shellcheck source=bench/workload-lib.sh
source "$SRC/bench/workload-lib.sh"
build() {
  rm -rf --one-file-system "$W/out"
  "$@" "$KILN" build --progress plain --root "$W/store" --insecure-registry "$REGISTRY" --no-push --no-cache \
    --oci-layout "$W/out:bench" -f "$W/Dockerfile" "$ctx" > "$W/log" 2>&1 \
    || { echo "bench/fuse-ops.sh: the build failed:" >&2; tail -n 20 "$W/log" >&2; exit 1; }
}

for w in "${WL[@]}"; do
  src="$workloads_dir/$(bench_wl_dir "$w")"
  ctx=$(bench_wl_context "$w" "$src" "$W" "$CACHE")
  sed "s#REGISTRY#$REGISTRY#g" "$src/Dockerfile" > "$W/Dockerfile"
  rm -rf --one-file-system "$W/store"
  build                                        # cold: the base into the store
  perf record -q -a -e fuse:fuse_request_send -o "$W/all.data" & rec=$!
  sleep 1
  t0=$(date +%s.%N)
  build perf record -q -e fuse:fuse_request_send -o "$W/tree.data" --
  t1=$(date +%s.%N)
  kill -INT "$rec"; wait "$rec" || true
  perf script -i "$W/tree.data" -F trace 2>/dev/null | awk '{ print $2 }' | sort -u > "$W/conns"
  perf script -i "$W/all.data" -F trace 2>/dev/null \
    | awk 'NR == FNR { c[$1] = 1; next } ($2 in c) { print $0 }' "$W/conns" - \
    | grep -o '([A-Z_0-9]*)' | tr -d '()' | sort | uniq -c | sort -rn > "$W/counts"
  total=$(awk '{ s += $1 } END { print s + 0 }' "$W/counts")
  echo "### $w warm (--no-cache): $total FUSE requests on $(wc -l < "$W/conns") mounts, $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s under perf"
  echo
  echo "| opcode | requests | share |"
  echo "| --- | --- | --- |"
  awk -v t="$total" '{ printf "| %s | %d | %.1f %% |\n", $2, $1, t ? 100 * $1 / t : 0 }' "$W/counts"
  echo
done
echo "kiln $KILN ($(git -C "$SRC" rev-parse --short HEAD)); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
