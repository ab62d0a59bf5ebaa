#!/usr/bin/env bash
# tests/stress/cancel-round.sh ROUND STORE LOG: one build of
# tests/stress/cancel-stages (three parallel stages, --jobs 3) stopped at
# the moment ROUND picks, then checked: the expected exit status, within a
# deadline (a hang gets a hang report in LOG and status 124), the failing
# step named, no step process, mount or temp dir left behind.
#   ROUND % 5 = 0: SIGTERM once all three steps run      -> 143
#               1: SIGINT once all three steps run       -> 130
#               2: stage c fails after 1 s              -> 1, names [c 3/3]
#               3: SIGTERM 0..400 ms after the start (set-up, mounts) -> 143
#               4: stage c fails and SIGTERM arrives at about the same time -> 1 or 143
# Needs KILN, KILN_SRC, REGISTRY and BUSYBOX_IMAGE (tests/integration/helpers.bash
# sets them); used by build_features.bats and bench/stress-cancel.sh.
set -uo pipefail
round=$1 store=$2 log=$3
# shellcheck source=../integration/helpers.bash
source "$KILN_SRC/tests/integration/helpers.bash"
moment=$((round % 5))
fail_after=3073
[ "$moment" = 2 ] && fail_after=1
[ "$moment" = 4 ] && fail_after=1
with_deadline 60 "$KILN" build --root "$store" --no-cache --jobs 3 --no-push --insecure-registry "$REGISTRY" \
  --build-arg "BASE=$BUSYBOX_IMAGE" --build-arg "FAIL_AFTER=$fail_after" "$KILN_SRC/tests/stress/cancel-stages" \
  > "$log" 2>&1 &
dl=$!
# the kiln process below with_deadline
kpid=""
for _ in $(seq 1 100); do
  kpid=$(pgrep -P "$dl" -x "$(basename "$KILN" | cut -c1-15)" | head -n 1)
  [ -n "$kpid" ] && break
  sleep 0.02
done
[ -n "$kpid" ] || { echo "round $round: kiln did not start" >&2; kill "$dl"; exit 1; }
# the steps' own output lines ("#2 0.063 a-started"), not their titles
printed() { grep -qE "^#[0-9]+ [0-9.]+ $1\$" "$log"; }
started() { printed a-started && printed b-started && printed c-started; }
wait_started() {
  local _
  for _ in $(seq 1 300); do started && return 0; sleep 0.1; done
  return 1
}
case $moment in
  0) wait_started && kill -TERM "$kpid" ;;
  1) wait_started && kill -INT "$kpid" ;;
  2) ;;
  3) delays=(0 0.05 0.1 0.2 0.4); sleep "${delays[round / 5 % 5]}"; kill -TERM "$kpid" 2>/dev/null ;;
  4) wait_started && sleep 1 && kill -TERM "$kpid" 2>/dev/null ;;
esac
rc=0
wait "$dl" || rc=$?
bad() { echo "round $round (moment $moment): $*" >> "$log"; echo "round $round (moment $moment): $*" >&2; exit 1; }
[ "$rc" = 124 ] && { echo "round $round (moment $moment): HANG (report in $log)" >&2; exit 124; }
case $moment in
  0|3) [ "$rc" = 143 ] || bad "exit status $rc, expected 143" ;;
  1) [ "$rc" = 130 ] || bad "exit status $rc, expected 130" ;;
  2) [ "$rc" = 7 ] || bad "exit status $rc, expected 7 (the failed step's)"
     grep -q '\[c 3/3\] RUN echo c-started.*exited with status 7' "$log" || bad "the failing step is not named" ;;
  4) [ "$rc" = 7 ] || [ "$rc" = 143 ] || bad "exit status $rc, expected 7 or 143" ;;
esac
# A stage torn down while the kernel hands a request to libfuse can make
# that read fail with ECONNABORTED (the request is aborted with the
# connection): libfuse prints it and its loop ends, which is what a cancelled
# stage wants. Any other libfuse line is a failure.
grep '^fuse: ' "$log" | grep -qv '^fuse: reading device: Software caused connection abort$' && bad "libfuse error"
for _ in $(seq 1 20); do pgrep -f 'sleep 307[123]' > /dev/null || break; sleep 0.1; done
pgrep -af 'sleep 307[123]' && bad "a step process is left"
grep -q " $store" /proc/self/mountinfo && bad "a mount is left under $store"
[ -z "$(ls -A "$store/tmp" 2>/dev/null)" ] || bad "temporary files left in $store/tmp"
exit 0
