# bench/workload-lib.sh - sourced by the bench scripts that build the
# workloads of ../shared/workloads (bench/ab-workloads.sh, bench/fuse-ops.sh):
# where a workload lives and its build context.

# bench_wl_dir WORKLOAD -> the workload's directory name (exits 2 if unknown)
bench_wl_dir() {
  case "$1" in
    w1) echo w1-small-steps ;; w2) echo w2-small-steps-huge ;; w3) echo w3-big-write ;; w4) echo w4-big-context ;;
    w5) echo w5-cached-rebuild ;; w6) echo w6-metadata-heavy ;;
    *) echo "$(basename "$0"): unknown workload '$1'" >&2; exit 2 ;;
  esac
}

# bench_wl_src WORKLOAD -> the workload's source directory: w1-w6 from
# $KILN_WORKLOADS (default /work/shared/workloads), kiln's own (c1) from
# bench/workloads/.
bench_wl_src() {
  case "$1" in
    c1) echo "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/workloads/c1-copy-then-run" ;;
    *) echo "${KILN_WORKLOADS:-/work/shared/workloads}/$(bench_wl_dir "$1")" ;;
  esac
}

# bench_wl_context WORKLOAD SRCDIR WORKDIR CACHE -> the build context's
# directory: w4's generated one (bench/w4-context.sh, kept in CACHE), else a
# copy of SRCDIR without its Dockerfile in WORKDIR/ctx-WORKLOAD.
bench_wl_context() {
  if [ "$1" = w4 ]; then
    "$(dirname "${BASH_SOURCE[0]}")/w4-context.sh" "$4"
  else
    local ctx="$3/ctx-$1"
    rm -rf "$ctx"; mkdir -p "$ctx"; cp -a "$2/." "$ctx/"; rm -f "$ctx/Dockerfile"
    echo "$ctx"
  fi
}

# bench_median: the median of the numbers on stdin, one a line (the mean
# of the middle two for an even count).
bench_median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
