#!/usr/bin/env bash
# bench/ab-fixed-cost.sh - the fixed cost of a build and of a RUN step, two kiln
# binaries A and B alternating: warm builds (--no-cache, base in the store)
# of `FROM fat:1` plus STEPS times `RUN echo N > /sN` (0: one COPY instead).
# Prints each binary's sorted times, median and first quartile in ms.
#
#   bench/ab-fixed-cost.sh KILN_A KILN_B [RUNS] [STEPS...]
#       (as root; RUNS default 15; STEPS default 0 1 30)
#
# The base comes from the bench registry of bench/workloads.sh.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
A=$(readlink -f "$1") B=$(readlink -f "$2") RUNS=${3:-15}
shift 2; [ $# -gt 0 ] && shift
STEPS=("$@"); [ ${#STEPS[@]} -gt 0 ] || STEPS=(0 1 30)
export KILN=$A KILN_POLICY_DIR=${KILN_POLICY_DIR:-$SRC/policies}
# shellcheck source=tests/integration/helpers.bash
source "$SRC/tests/integration/helpers.bash"
registry_start --root "$KILN_TEST_CACHE/bench/registry" >&2
fuse_dev_open_for_all; tun_dev_open_for_all
W=$(mktemp -d /var/tmp/kiln-abs.XXXXXX)
trap 'rm -rf --one-file-system "$W"; kiln_shell_cleanup' EXIT
echo hi > "$W/app.txt"
ms() { # BIN STORE DOCKERFILE -> milliseconds
  local t0
  sync
  t0=$(date +%s%N)
  "$1" build --progress plain --root "$2" --insecure-registry "$REGISTRY" --no-push --no-cache \
    -f "$3" "$W" > "$W/log" 2>&1 || { tail -n 20 "$W/log" >&2; exit 1; }
  echo $(( ($(date +%s%N) - t0) / 100000 ))
}
stats() { sort -n | awk '{ v[NR] = $1 / 10; l = l " " $1 / 10 } END { printf "median %.1f, q1 %.1f:%s\n", v[int((NR + 1) / 2)], v[int((NR + 3) / 4)], l }'; }
for n in "${STEPS[@]}"; do
  df=$W/Dockerfile.$n
  echo "FROM $REGISTRY/library/fat:1" > "$df"
  if [ "$n" = 0 ]; then echo "COPY app.txt /app.txt" >> "$df"; fi
  for i in $(seq 1 "$n"); do echo "RUN echo $i > /s$i" >> "$df"; done
  ms "$A" "$W/sa" "$df" > /dev/null; ms "$B" "$W/sb" "$df" > /dev/null
  ta=() tb=()
  for _ in $(seq 1 "$RUNS"); do ta+=("$(ms "$A" "$W/sa" "$df")"); tb+=("$(ms "$B" "$W/sb" "$df")"); done
  echo "$n RUN steps, A: $(printf '%s\n' "${ta[@]}" | stats)"
  echo "$n RUN steps, B: $(printf '%s\n' "${tb[@]}" | stats)"
done
echo "A = $A, B = $B; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
