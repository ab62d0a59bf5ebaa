#!/usr/bin/env bash
# bench/stress-parallel.sh - rebuild tests/stress/parallel-stages (parallel
# stages over one busybox base, many RUN steps, 20 MiB moved through the mounts) N
# times with --no-cache --jobs 3 and count builds that hang (still running
# after DEADLINE seconds: hang report kept in the log, build killed) or that
# print a libfuse error line ("fuse: ..."). Run as root.
#   bench/stress-parallel.sh [N] [KILN] [DEADLINE] [P]   (defaults 100, ./kiln, 60, 1)
# P builds run at a time, each on its own store (N rounds: N*P builds).
# STRESS_DROP_CACHES=1 drops the page cache before each round.
# Logs stay in the printed directory. Needs docker-registry and the fixture
# tools (scripts/install-deps.sh).
set -uo pipefail
N=${1:-100}
src=$(cd "$(dirname "$0")/.." && pwd)
export KILN_SRC=$src KILN=${2:-$src/kiln}
DEADLINE=${3:-60} P=${4:-1}
# shellcheck source=../tests/integration/helpers.bash
source "$src/tests/integration/helpers.bash"
trap kiln_shell_cleanup EXIT
registry_start
fixtures_push busybox 2>/dev/null || { echo "stress-parallel: fixture push failed" >&2; exit 1; }
logs=$(mktemp -d /var/tmp/kiln-stress.XXXXXX)
ok=0 hung=0 failed=0 fuse_err=0
for i in $(seq 1 "$N"); do
  # Cold page cache: lower files are then read from disk by the FUSE
  # server (tried in session 5: it did not make the old failure more
  # frequent; bench/RESULTS.md).
  [ "${STRESS_DROP_CACHES:-0}" = 1 ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }
  pids=()
  for j in $(seq 1 "$P"); do
    with_deadline "$DEADLINE" "$KILN" build --root "$logs/store$j" --no-cache --jobs 3 \
      --build-arg "BASE=$BUSYBOX_IMAGE" --insecure-registry "$REGISTRY" --no-push "$src/tests/stress/parallel-stages" \
      > "$logs/log.$i.$j" 2>&1 &
    pids+=($!)
  done
  for j in $(seq 1 "$P"); do
    wait "${pids[j - 1]}"
    case $? in
      0) ok=$((ok + 1)) ;;
      124) hung=$((hung + 1)); echo "build $i.$j hung: $logs/log.$i.$j" ;;
      *) failed=$((failed + 1)); echo "build $i.$j failed: $logs/log.$i.$j" ;;
    esac
    grep -q '^fuse: ' "$logs/log.$i.$j" && fuse_err=$((fuse_err + 1))
  done
done
echo "$((N * P)) builds ($P at a time): $ok ok, $hung hung, $failed failed; $fuse_err printed a libfuse error (logs: $logs)"
