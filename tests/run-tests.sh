#!/usr/bin/env bash
# Run kiln's test suites and end with one line "N passed, M failed".
#   tests/run-tests.sh --build DIR [--unit] [--integration] [--filter REGEX]
# Unit tests are cmocka binaries in DIR/tests/ (TAP output); integration tests
# are bats files in tests/integration/. A test binary that crashes counts as a
# failure even if it printed no "not ok" line.
set -u
cd "$(dirname "$0")/.." || exit 2
build=build unit=0 integ=0 filter=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --unit) unit=1; shift ;;
    --integration) integ=1; shift ;;
    --filter) filter=$2; shift 2 ;;
    *) echo "run-tests.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

passed=0 failed=0 skipped=0
SLOW_FILES="overlay_workloads"
failures=()

# count_tap NAME FILE RC: add the ok/not ok lines of a TAP log to the totals.
count_tap() {
  local name=$1 log=$2 rc=$3 ok notok skip
  ok=$(grep -cE '^ok ' "$log" || true)
  skip=$(grep -cE '^ok .*# (skip|SKIP)' "$log" || true)
  notok=$(grep -cE '^not ok ' "$log" || true)
  ok=$((ok - skip))
  passed=$((passed + ok)); skipped=$((skipped + skip)); failed=$((failed + notok))
  while IFS= read -r l; do failures+=("$name: ${l#not ok }"); done < <(grep -E '^not ok ' "$log" || true)
  if [ "$rc" -ne 0 ] && [ "$notok" -eq 0 ]; then
    failed=$((failed + 1)); failures+=("$name: exited with status $rc without a failing test (crash?)")
  fi
}

logdir=$(mktemp -d "${TMPDIR:-/tmp}/kiln-tests.XXXXXX")
running=""
on_signal() {
  [ -n "$running" ] && kill -TERM -- "-$running" 2>/dev/null
  exit 130
}
trap 'rm -rf "$logdir"' EXIT
trap on_signal INT TERM

# run_budget SECONDS LOG CMD...: run CMD in its own session, output to LOG.
# A file that is still running after SECONDS (a hang: no file takes near
# that long) gets a hang report (tests/tools/hang-report: process tree,
# kernel stacks of kiln's threads, FUSE requests waiting) appended to LOG,
# then its whole process tree is stopped, so one hang costs its file and
# not the suite's time budget. Returns CMD's status, 124 on timeout.
run_budget() {
  local budget=$1 log=$2 start pid
  shift 2
  start=$(date +%s)
  # O_APPEND: the report appended below must not be overwritten by the
  # file's own late writes.
  : > "$log"
  setsid "$@" >> "$log" 2>&1 < /dev/null &
  pid=$! running=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [ $(( $(date +%s) - start )) -ge "$budget" ] && kill -0 "$pid" 2>/dev/null; then
      {
        echo "not ok - $(basename "${*: -1}") was still running after ${budget}s and was stopped; it was waiting for:"
        tests/tools/hang-report "$pid" | sed 's/^/# /'
      } >> "$log"
      local tree
      mapfile -t tree < <(ps -e -o pid=,sess= | awk -v s="$pid" '$2 == s { print $1 }')
      kill -TERM -- "-$pid" "${tree[@]}" 2>/dev/null
      sleep 5
      kill -KILL -- "-$pid" "${tree[@]}" 2>/dev/null
      wait "$pid" 2>/dev/null
      running=""
      return 124
    fi
    sleep 1
  done
  wait "$pid"
  local rc=$?
  running=""
  return $rc
}

if [ "$unit" = 1 ]; then
  for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    n=$(basename "$t")
    [ -n "$filter" ] && ! [[ $n =~ $filter ]] && continue
    echo "== unit: $n"
    run_budget "${KILN_TEST_FILE_TIMEOUT:-600}" "$logdir/$n.log" env CMOCKA_MESSAGE_OUTPUT=TAP "$t"
    rc=$?
    cat "$logdir/$n.log"
    count_tap "$n" "$logdir/$n.log" $rc
  done
fi

if [ "$integ" = 1 ]; then
  export KILN="${KILN:-$PWD/$( [ "$build" = build ] && echo kiln || echo "$build/kiln")}"
  export KILN_SRC="$PWD"
  for f in tests/integration/*.bats; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .bats)
    [ -n "$filter" ] && ! [[ $n =~ $filter ]] && continue
    # Minutes-long real-workload files (apt-get install build-essential,
    # 50,000-file trees) would take the suite past its 20-minute budget on
    # 2 cores: `make test-slow` (KILN_SLOW_TESTS=1) runs them.
    if [[ " $SLOW_FILES " == *" $n "* ]] && [ "${KILN_SLOW_TESTS:-0}" != 1 ]; then
      echo "== integration: $n: not run (slow; make test-slow runs it)"
      continue
    fi
    echo "== integration: $n"
    start=$(date +%s)
    budget=${KILN_TEST_FILE_TIMEOUT:-600}
    [[ " $SLOW_FILES " == *" $n "* ]] && budget=${KILN_TEST_SLOW_TIMEOUT:-3600}
    run_budget "$budget" "$logdir/$n.log" bats --tap "$f"
    rc=$?
    cat "$logdir/$n.log"
    echo "   ($n took $(( $(date +%s) - start ))s)"
    count_tap "$n" "$logdir/$n.log" $rc
  done
fi

if [ ${#failures[@]} -gt 0 ]; then
  echo
  echo "failures:"
  printf '  %s\n' "${failures[@]}"
fi
echo
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ] && [ $((passed + failed)) -gt 0 ]
