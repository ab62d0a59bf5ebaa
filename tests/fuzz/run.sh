#!/usr/bin/env bash
# Smoke-run every libFuzzer target built by `make fuzz-build`.
#   tests/fuzz/run.sh [SECONDS] [--bin DIR] [--only NAME]
# Each target in DIR (default build-fuzz/bin) runs for SECONDS (default 10)
# on a temporary copy of tests/fuzz/seeds/<name>/, so the repository is never
# modified. Any crash, leak, timeout, OOM or sanitizer report fails the run:
# the script names the target and keeps the reproducer under
# build-fuzz/artifacts/<name>/ (reproduce with: build-fuzz/bin/<name> FILE).
# Prints the executions per target; exits non-zero on any failure.
set -u
cd "$(dirname "$0")/../.."

secs=10 bindir=build-fuzz/bin only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bindir=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    [0-9]*) secs=$1; shift ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
case "$secs" in ''|*[!0-9]*|0) echo "run.sh: SECONDS must be a positive integer, got '$secs'" >&2; exit 2 ;; esac

targets=()
for t in "$bindir"/fuzz_*; do
  [ -x "$t" ] || continue
  n=$(basename "$t")
  [ -n "$only" ] && [ "$n" != "$only" ] && continue
  targets+=("$t")
done
if [ ${#targets[@]} -eq 0 ]; then
  echo "run.sh: no fuzz targets in $bindir (run 'make fuzz-build' first)" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
artroot=build-fuzz/artifacts
failed=()
summary=()

# Leaks and UBSan findings must stop the target, not just print.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"

for t in "${targets[@]}"; do
  n=$(basename "$t")
  corpus="$work/$n/corpus" art="$artroot/$n" log="$work/$n/log"
  mkdir -p "$corpus" "$art"
  rm -f "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-* "$art"/slow-unit-*
  nseeds=0
  if [ -d "tests/fuzz/seeds/$n" ]; then
    cp -R "tests/fuzz/seeds/$n/." "$corpus/"
    nseeds=$(find "$corpus" -type f | wc -l)
  fi
  echo "== fuzz: $n for ${secs}s ($nseeds seeds)"
  # The outer timeout only guards against a target that ignores
  # -max_total_time (a hang in a single input is caught by -timeout).
  TMPDIR="$work/$n" timeout -k 10 $((secs + 120)) "$t" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$art/" "$corpus" > "$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
  [ -n "$execs" ] || execs="?"
  ncorpus=$(find "$corpus" -type f | wc -l)
  artifact=$(ls -1 "$art" 2>/dev/null | head -1)
  report=$(grep -E -m1 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|==[0-9]+==ERROR' "$log")
  if [ "$rc" -ne 0 ] || [ -n "$artifact" ] || [ -n "$report" ]; then
    echo "   FAIL $n: exit status $rc after $execs executions"
    [ -n "$report" ] && echo "   $report"
    if [ -n "$artifact" ]; then
      echo "   crash file: $art/$artifact (reproduce: $t $art/$artifact)"
    else
      echo "   (no reproducer written)"
    fi
    echo "   --- last lines of the log ---"
    tail -n 40 "$log" | sed 's/^/   /'
    failed+=("$n")
    summary+=("$n: FAILED after $execs executions")
  else
    echo "   ok: $execs executions, corpus $nseeds -> $ncorpus inputs"
    summary+=("$n: $execs executions, corpus $nseeds -> $ncorpus")
    rmdir "$art" 2>/dev/null || true
  fi
done

echo
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of ${#targets[@]} targets failed: ${failed[*]}"
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${secs}s without findings"
