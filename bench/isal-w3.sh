#!/usr/bin/env bash
# bench/isal-w3.sh - workload w3 (RUN cp -a /usr/lib ..., a ~600 MB layer)
# with two kiln binaries, as root, base already pulled (store warm, build
# --no-cache), printing kiln's summary line (phase times incl. "pack").
#
#   bench/isal-w3.sh [--runs N] KILN_A KILN_B
#
# Needs the workload bases in $KILN_TEST_CACHE/bench/registry
# (bench/make-workload-bases.sh); serves them on 127.0.0.1 for the run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=1
[ "${1:-}" = --runs ] && { runs=$2; shift 2; }
[ $# = 2 ] || { echo "usage: bench/isal-w3.sh [--runs N] KILN_A KILN_B" >&2; exit 2; }
bins=("$(realpath "$1")" "$(realpath "$2")")
work=$(mktemp -d "${TMPDIR:-/var/tmp}/kiln-bench-w3.XXXXXX")
export BATS_TEST_TMPDIR=$work BATS_FILE_TMPDIR=$work
# shellcheck source=tests/integration/helpers.bash
source tests/integration/helpers.bash
cleanup() { registry_stop_all >/dev/null 2>&1 || true; rm -rf --one-file-system "$work"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
registry_start --root "$KILN_TEST_CACHE/bench/registry" >/dev/null
sed "s#REGISTRY#$REGISTRY#g" /work/shared/workloads/w3-big-write/Dockerfile > "$work/Dockerfile"
mkdir "$work/ctx"
build() { # BIN STORE
  rm -rf --one-file-system "$work/out"
  "$1" build --progress plain --root "$2" --insecure-registry "$REGISTRY" --no-push \
    --oci-layout "$work/out:bench" -f "$work/Dockerfile" --no-cache "$work/ctx" 2>&1 | grep -E "total \(pull" | tail -n1
}
for i in 0 1; do build "${bins[$i]}" "$work/store$i" > /dev/null; done # pull the base
for r in $(seq 1 "$runs"); do
  for i in 0 1; do
    echo "${bins[$i]} (run $r, load $(cut -d' ' -f1 /proc/loadavg)): $(build "${bins[$i]}" "$work/store$i")"
    du -sb "$work/out/blobs" | awk '{ printf "  OCI layout blobs: %.1f MB\n", $1 / 1e6 }'
  done
done
