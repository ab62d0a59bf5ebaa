#!/usr/bin/env bash
# bench/ab-workloads.sh - two kiln binaries, A and B (e.g. before and after a
# refactoring), on the workloads w1-w6 in one run: for each workload two cold
# builds each (empty store; base pulled; A B B A) and then RUNS warm builds (base in the
# store, --no-cache, the output layout removed), alternating A B A B so that
# load drift hits both. Prints a Markdown table of medians and B/A ratios.
#
#   bench/ab-workloads.sh KILN_A KILN_B [RUNS] [WORKLOAD...]
#       (as root; RUNS default 3; workloads default w1 w2 w3 w4, also w5, w6
#       and kiln's own c1 (bench/workloads/c1-copy-then-run); w5 needs the
#       Debian archive, w6 is long)
#
# The bases come from the persistent bench registry of bench/workloads.sh
# ($KILN_TEST_CACHE/bench/registry: fat:1, huge:1, debian:bookworm; run
# bench/workloads.sh once, or bench/make-workload-bases.sh, to make them);
# w4's context from bench/w4-context.sh.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
A=$(readlink -f "$1") B=$(readlink -f "$2") RUNS=${3:-3}
shift 2; [ $# -gt 0 ] && shift
WL=("$@"); [ ${#WL[@]} -gt 0 ] || WL=(w1 w2 w3 w4)
[ -x "$A" ] && [ -x "$B" ] || { echo "ab-workloads: both binaries must be executable" >&2; exit 2; }
export KILN=$A KILN_POLICY_DIR=${KILN_POLICY_DIR:-$SRC/policies}
# shellcheck source=tests/integration/helpers.bash
source "$SRC/tests/integration/helpers.bash"
CACHE=$KILN_TEST_CACHE/bench
registry_start --root "$CACHE/registry" >&2
fuse_dev_open_for_all; tun_dev_open_for_all
for img in fat:1 huge:1 debian:bookworm; do
  skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/library/$img" >/dev/null 2>&1 \
    || { echo "ab-workloads: no $img in the bench registry (run bench/workloads.sh once)" >&2; exit 1; }
done
W=$(mktemp -d /var/tmp/kiln-abw.XXXXXX)
trap 'rm -rf --one-file-system "$W"; kiln_shell_cleanup' EXIT

# shellcheck source=bench/workload-lib.sh
source "$SRC/bench/workload-lib.sh"
# build BIN STORE WL CTX -> seconds (exits on failure)
build() {
  local t0 t1
  rm -rf --one-file-system "$W/out"
  # the previous build's dirty pages (60,000 files of w6) would otherwise be
  # written back during this one: a fixed order then favours the first
  sync
  t0=$(date +%s.%N)
  if ! "$1" build --progress plain --root "$2" --insecure-registry "$REGISTRY" --no-push --no-cache \
      --oci-layout "$W/out:bench" -f "$W/Dockerfile.$3" "$4" > "$W/log" 2>&1; then
    echo "ab-workloads: $1 failed on $3:" >&2; tail -n 20 "$W/log" >&2; exit 1
  fi
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

echo "| workload | row | A (s) | B (s) | B/A |"
echo "| --- | --- | --- | --- | --- |"
for w in "${WL[@]}"; do
  src=$(bench_wl_src "$w")
  ctx=$(bench_wl_context "$w" "$src" "$W" "$CACHE")
  sed "s#REGISTRY#$REGISTRY#g" "$src/Dockerfile" > "$W/Dockerfile.$w"
  # cold twice each, A B B A: one cold build each swung 2x with the disk's
  # state (which ran first), the pair's mean cancels a drift
  rm -rf --one-file-system "$W/sa" "$W/sb"
  ca1=$(build "$A" "$W/sa" "$w" "$ctx")
  cb1=$(build "$B" "$W/sb" "$w" "$ctx")
  rm -rf --one-file-system "$W/sa" "$W/sb"
  cb2=$(build "$B" "$W/sb" "$w" "$ctx")
  ca2=$(build "$A" "$W/sa" "$w" "$ctx")
  ca=$(awk -v x="$ca1" -v y="$ca2" 'BEGIN { print (x + y) / 2 }')
  cb=$(awk -v x="$cb1" -v y="$cb2" 'BEGIN { print (x + y) / 2 }')
  ta=() tb=()
  for _ in $(seq 1 "$RUNS"); do
    ta+=("$(build "$A" "$W/sa" "$w" "$ctx")")
    tb+=("$(build "$B" "$W/sb" "$w" "$ctx")")
  done
  ma=$(printf '%s\n' "${ta[@]}" | bench_median)
  mb=$(printf '%s\n' "${tb[@]}" | bench_median)
  awk -v w="$w" -v a="$ca" -v b="$cb" 'BEGIN { printf "| %s | cold (mean of 2, A B B A) | %.2f | %.2f | %.2f |\n", w, a, b, b / a }'
  # warm rows of w1 and w2 take a tenth of a second: milliseconds, not 10 ms
  awk -v w="$w" -v a="$ma" -v b="$mb" -v n="$RUNS" \
    'BEGIN { f = a < 1 ? "%.3f" : "%.2f"; printf "| %s | warm (median of %d) | " f " | " f " | %.2f |\n", w, n, a, b, b / a }'
done
echo
echo "A = $A, B = $B; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
