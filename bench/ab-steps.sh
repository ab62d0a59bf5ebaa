#!/usr/bin/env bash
# bench/ab-steps.sh - per-RUN-step cost of two kiln binaries, A and B, built
# from different commits (e.g. before and after a change to the step path),
# in one run: a build of 20 `RUN echo` steps and one of a single step over
# the `fat` workload base, with --no-cache on a warm store, alternating
# A B A B. Per-step cost = (t20 - t1) / 19, from the medians.
#
#   bench/ab-steps.sh KILN_A KILN_B [RUNS]     (as root; RUNS default 5)
#
# Uses the persistent bench registry of bench/workloads.sh (fat:1 must be
# there: run bench/workloads.sh --workload w1 once). Prints a Markdown table.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
A=$(readlink -f "$1") B=$(readlink -f "$2") RUNS=${3:-5}
[ -x "$A" ] && [ -x "$B" ] || { echo "ab-steps: both binaries must be executable" >&2; exit 2; }
export KILN=$A
# shellcheck source=tests/integration/helpers.bash
source "$SRC/tests/integration/helpers.bash"
registry_start --root "$KILN_TEST_CACHE/bench/registry" >&2
skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/library/fat:1" >/dev/null 2>&1 \
  || { echo "ab-steps: no fat:1 in the bench registry (run bench/workloads.sh --workload w1 first)" >&2; exit 1; }
W=$(mktemp -d /var/tmp/kiln-ab.XXXXXX)
trap 'rm -rf --one-file-system "$W"; kiln_shell_cleanup' EXIT
mkdir -p "$W/ctx20" "$W/ctx1"
{ echo "FROM $REGISTRY/library/fat:1"; for i in $(seq 1 20); do echo "RUN echo $i > /step$i"; done; } > "$W/ctx20/Dockerfile"
printf 'FROM %s/library/fat:1\nRUN echo 1 > /step1\n' "$REGISTRY" > "$W/ctx1/Dockerfile"

build() { # BIN STORE CTX -> seconds
  local t0 t1
  t0=$(date +%s.%N)
  "$1" build --root "$2" --insecure-registry "$REGISTRY" --no-push --no-cache --progress plain "$3" >/dev/null 2>&1
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for who in A B; do # warm: base pulled into each store
  bin=$A; [ "$who" = B ] && bin=$B
  build "$bin" "$W/store-$who" "$W/ctx1" >/dev/null
done
declare -A T
for ctx in ctx20 ctx1; do
  : > "$W/A.$ctx"; : > "$W/B.$ctx"
  for _ in $(seq 1 "$RUNS"); do
    build "$A" "$W/store-A" "$W/$ctx" >> "$W/A.$ctx"
    build "$B" "$W/store-B" "$W/$ctx" >> "$W/B.$ctx"
  done
  T[A.$ctx]=$(median < "$W/A.$ctx")
  T[B.$ctx]=$(median < "$W/B.$ctx")
done
step() { echo "scale=4; ($1 - $2) / 19" | bc; }
sa=$(step "${T[A.ctx20]}" "${T[A.ctx1]}") sb=$(step "${T[B.ctx20]}" "${T[B.ctx1]}")
echo "#### kiln A/B per RUN step: $(date -u +%Y-%m-%dT%H:%M:%SZ), load $(cut -d' ' -f1 /proc/loadavg), $RUNS runs"
echo
echo "A = \`$A\` ($("$A" version 2>/dev/null | head -1)), B = \`$B\` ($("$B" version 2>/dev/null | head -1))"
echo
echo "| | A | B | A/B |"
echo "|---|---|---|---|"
echo "| 20 RUN steps (s) | ${T[A.ctx20]} | ${T[B.ctx20]} | $(echo "scale=2; ${T[A.ctx20]} / ${T[B.ctx20]}" | bc) |"
echo "| 1 RUN step (s) | ${T[A.ctx1]} | ${T[B.ctx1]} | $(echo "scale=2; ${T[A.ctx1]} / ${T[B.ctx1]}" | bc) |"
echo "| per RUN step (ms) | $(echo "$sa * 1000" | bc) | $(echo "$sb * 1000" | bc) | $(echo "scale=2; $sa / $sb" | bc) |"
