#!/usr/bin/env bash
# bench/stress-cancel.sh - N rounds of tests/stress/cancel-round.sh: a build
# of three parallel stages stopped by SIGTERM, SIGINT, a failing stage, a
# SIGTERM during set-up, or a failure and a SIGTERM together (round % 5),
# each checked for its exit status, a hang (60 s deadline, hang report kept)
# and anything left behind. Run as root.
#   bench/stress-cancel.sh [N] [KILN]   (defaults 200, ./kiln)
# Logs stay in the printed directory. Needs docker-registry and the fixture
# tools (scripts/install-deps.sh).
set -uo pipefail
N=${1:-200}
src=$(cd "$(dirname "$0")/.." && pwd)
export KILN_SRC=$src KILN=${2:-$src/kiln}
# a kiln binary copied elsewhere finds the seccomp profile here
export KILN_POLICY_DIR=${KILN_POLICY_DIR:-$src/policies}
# shellcheck source=../tests/integration/helpers.bash
source "$src/tests/integration/helpers.bash"
trap kiln_shell_cleanup EXIT
chmod 0666 /dev/fuse; [ ! -e /dev/net/tun ] || chmod 0666 /dev/net/tun
registry_start
fixtures_push busybox 2>/dev/null || { echo "stress-cancel: fixture push failed" >&2; exit 1; }
export REGISTRY BUSYBOX_IMAGE
logs=$(mktemp -d /var/tmp/kiln-stress-cancel.XXXXXX)
ok=0 hung=0 failed=0
start=$(date +%s)
for i in $(seq 0 $((N - 1))); do
  "$src/tests/stress/cancel-round.sh" "$i" "$logs/store" "$logs/log.$i"
  case $? in
    0) ok=$((ok + 1)); rm -f "$logs/log.$i" ;;
    124) hung=$((hung + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
done
echo "$N rounds in $(( $(date +%s) - start )) s: $ok ok, $hung hung, $failed failed (logs: $logs)"
