#!/usr/bin/env bash
# bench/single-ids.sh - two kiln binaries, A and B, building workloads in
# single ID mode (a plain user without /etc/subuid ranges: every stat, chown
# and get/set-id call of a step is a round trip to kiln's supervisor). For
# each workload: one cold build per binary (empty store), then RUNS warm
# builds (--no-cache), alternating A B A B. Prints a Markdown table of
# medians and B/A ratios.
#
#   bench/single-ids.sh KILN_A KILN_B [RUNS] [WORKLOAD...]
#       (as root, which creates the plain user kiln-bench-single; RUNS
#       default 3; workloads default w5, which needs the Debian archive)
#
# The bases come from the bench registry of bench/workloads.sh, as for
# bench/ab-workloads.sh.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
A=$(readlink -f "$1") B=$(readlink -f "$2") RUNS=${3:-3}
shift 2; [ $# -gt 0 ] && shift
WL=("$@"); [ ${#WL[@]} -gt 0 ] || WL=(w5)
[ -x "$A" ] && [ -x "$B" ] || { echo "single-ids: both binaries must be executable" >&2; exit 2; }
workloads_dir=${KILN_WORKLOADS:-/work/shared/workloads}
export KILN=$A KILN_POLICY_DIR=${KILN_POLICY_DIR:-$SRC/policies}
# shellcheck source=tests/integration/helpers.bash
source "$SRC/tests/integration/helpers.bash"
CACHE=$KILN_TEST_CACHE/bench
registry_start --root "$CACHE/registry" >&2
fuse_dev_open_for_all; tun_dev_open_for_all
USR=kiln-bench-single
test_user_create "$USR"
W=$(mktemp -d /var/tmp/kiln-single-ids.XXXXXX)
chmod 0755 "$W"
trap 'rm -rf --one-file-system "$W"; kiln_shell_cleanup' EXIT

# shellcheck source=bench/workload-lib.sh
source "$SRC/bench/workload-lib.sh"
# build BIN STORE WL CTX -> seconds (exits on failure)
build() {
  local t0 t1
  rm -rf --one-file-system "$W/out"
  mkdir -p "$W/out" "$2"; chown "$USR" "$W/out" "$2"
  t0=$(date +%s.%N)
  if ! run_as "$USR" "$1" build --progress plain --root "$2" --insecure-registry "$REGISTRY" --no-push --no-cache \
      --oci-layout "$W/out:bench" -f "$W/Dockerfile.$3" "$4" > "$W/log" 2>&1; then
    echo "single-ids: $1 failed on $3:" >&2; tail -n 20 "$W/log" >&2; exit 1
  fi
  t1=$(date +%s.%N)
  grep -q 'user namespace: single' "$W/log" || { echo "single-ids: not single ID mode" >&2; exit 1; }
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

runs=()
echo "| workload | row | A (s) | B (s) | B/A |"
echo "| --- | --- | --- | --- | --- |"
for w in "${WL[@]}"; do
  src="$workloads_dir/$(bench_wl_dir "$w")"
  ctx=$(bench_wl_context "$w" "$src" "$W" "$CACHE")
  chmod -R a+rX "$ctx"
  sed "s#REGISTRY#$REGISTRY#g" "$src/Dockerfile" > "$W/Dockerfile.$w"
  chmod a+r "$W/Dockerfile.$w"
  rm -rf --one-file-system "$W/sa" "$W/sb"
  ca=$(build "$A" "$W/sa" "$w" "$ctx")
  cb=$(build "$B" "$W/sb" "$w" "$ctx")
  ta=() tb=()
  for _ in $(seq 1 "$RUNS"); do
    ta+=("$(build "$A" "$W/sa" "$w" "$ctx")")
    tb+=("$(build "$B" "$W/sb" "$w" "$ctx")")
  done
  ma=$(printf '%s\n' "${ta[@]}" | median)
  mb=$(printf '%s\n' "${tb[@]}" | median)
  awk -v w="$w" -v a="$ca" -v b="$cb" 'BEGIN { printf "| %s | cold | %.2f | %.2f | %.2f |\n", w, a, b, b / a }'
  awk -v w="$w" -v a="$ma" -v b="$mb" -v n="$RUNS" \
    'BEGIN { printf "| %s | warm (median of %d) | %.2f | %.2f | %.2f |\n", w, n, a, b, b / a }'
  runs+=("$w warm runs: A ${ta[*]}; B ${tb[*]}")
done
echo
printf '%s\n' "${runs[@]}"
echo
echo "A = $A, B = $B; single ID mode ($USR); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
