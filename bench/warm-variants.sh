#!/usr/bin/env bash
# bench/warm-variants.sh - one kiln binary, one workload's warm build
# (--no-cache, base in the store) with different flags, alternating so that
# load drift hits each the same: e.g. the default private network against
# --network host, or with and without resource limits. Prints each variant's
# times, sorted.
#
#   bench/warm-variants.sh KILN WORKLOAD RUNS 'FLAGS A' 'FLAGS B' ...
#   e.g. bench/warm-variants.sh ./kiln w1 5 '' '--network host' '--memory none --pids-limit none'
#
# The bases come from the bench registry of bench/workloads.sh (as root).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 4 ] || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
BIN=$(readlink -f "$1") WL=$2 RUNS=$3
shift 3
export KILN=$BIN KILN_POLICY_DIR=${KILN_POLICY_DIR:-$SRC/policies}
# shellcheck source=tests/integration/helpers.bash
source "$SRC/tests/integration/helpers.bash"
CACHE=$KILN_TEST_CACHE/bench
registry_start --root "$CACHE/registry" >&2
fuse_dev_open_for_all; tun_dev_open_for_all
W=$(mktemp -d /var/tmp/kiln-variants.XXXXXX)
trap 'rm -rf --one-file-system "$W"; kiln_shell_cleanup' EXIT
# shellcheck source=bench/workload-lib.sh
source "$SRC/bench/workload-lib.sh"
src="${KILN_WORKLOADS:-/work/shared/workloads}/$(bench_wl_dir "$WL")"
ctx=$(bench_wl_context "$WL" "$src" "$W" "$CACHE")
sed "s#REGISTRY#$REGISTRY#g" "$src/Dockerfile" > "$W/Dockerfile"
b() { # FLAGS (one word list) -> seconds
  local t0 t1
  # the previous build's dirty pages (60,000 files of w6) would otherwise be
  # written back during this one: a fixed order then favours the first
  sync
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$BIN" build --progress plain --root "$W/s" --insecure-registry "$REGISTRY" --no-push --no-cache \
    -f "$W/Dockerfile" $1 "$ctx" > "$W/log" 2>&1 || { tail -n 20 "$W/log" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}
b "" > /dev/null # the base into the store
variants=("$@") times=()
for _ in $(seq "$RUNS"); do
  for i in "${!variants[@]}"; do times[i]="${times[i]:-} $(b "${variants[i]}")"; done
done
for i in "${!variants[@]}"; do
  echo "${variants[i]:-(default)}: $(tr ' ' '\n' <<< "${times[i]}" | grep . | sort -n | tr '\n' ' ')"
done
echo "$WL, $RUNS runs each; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%RZ)"
