#!/usr/bin/env bash
# fetch.sh - cold pull of a base image into an unpacked form, over loopback:
# `kiln pull --store` (download -> decompress -> extract pipelined, blob kept)
# against `skopeo copy docker:// oci:` + `umoci unpack --rootless`.
#
#   bench/fetch.sh [RUNS] [debian|busybox]   (defaults 3, debian; results to bench/results/fetch.md)
#
# The image is the fixture base from scripts/make-base-images.sh, pushed to
# Debian's docker-registry on 127.0.0.1 (tests/integration/helpers.bash).
# Every run starts from an empty store / layout / bundle; page cache is not
# dropped (the registry's copy is hot for both tools alike). A warm kiln pull
# (same store again: no layer downloaded) is timed too. Each kiln store is
# checked afterwards with tests/integration/fetch_check.py (tar + tarfile).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
which=${2:-debian}
KILN=${KILN:-$PWD/kiln}
work=$(mktemp -d)
export BATS_TEST_TMPDIR=$work BATS_FILE_TMPDIR=$work
# shellcheck source=/dev/null
source tests/integration/helpers.bash
cleanup() { registry_stop_all >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || return 1; e=$(date +%s.%N); awk -v a="$s" -v b="$e" 'BEGIN { printf "%.2f\n", b - a }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

registry_start >/dev/null
fixtures_push "$which" >/dev/null 2>&1
img=$([ "$which" = debian ] && echo "$DEBIAN_IMAGE" || echo "$BUSYBOX_IMAGE")
layer_mb=$(skopeo inspect --raw --tls-verify=false "docker://$img" |
  python3 -c 'import json,sys; print("%.1f" % (sum(l["size"] for l in json.load(sys.stdin)["layers"]) / 1e6))')

kiln_pull() { "$KILN" pull --insecure-registry "$REGISTRY" --store --root "$1" "$img"; }
skopeo_umoci() {
  skopeo copy -q --src-tls-verify=false "docker://$img" "oci:$1/layout:img" &&
    umoci unpack --rootless --image "$1/layout:img" "$1/bundle"
}

kc=() kw=() su=()
for i in $(seq 1 "$runs"); do
  kc+=("$(t kiln_pull "$work/k$i")")
  kw+=("$(t kiln_pull "$work/k$i")")
  # Correctness of what was timed: every layer matches its blob.
  for l in "$work/k$i"/layers/sha256/*; do
    b=$(cat "$l/blob")
    python3 tests/integration/fetch_check.py "$l" "$work/k$i/blobs/sha256/${b#sha256:}" >/dev/null
  done
  rm -rf "$work/k$i"
  mkdir -p "$work/s$i"
  su+=("$(t skopeo_umoci "$work/s$i")")
  rm -rf "$work/s$i"
done

kcm=$(printf '%s\n' "${kc[@]}" | median)
kwm=$(printf '%s\n' "${kw[@]}" | median)
sum=$(printf '%s\n' "${su[@]}" | median)
{
  echo "# Base image fetch benchmark"
  echo
  echo "Command: \`bench/fetch.sh $runs $which\` at $(date -u '+%Y-%m-%d %H:%M') UTC, $(nproc) cores" \
    "(shared with other jobs; load average $(cut -d' ' -f1 /proc/loadavg) at the end), docker-registry on 127.0.0.1."
  echo "Image: \`$which\` fixture base (scripts/make-base-images.sh), $layer_mb MB of gzip layers."
  echo "Each run starts empty; median of $runs runs (all runs listed)."
  echo
  echo "| what | median (s) | runs (s) |"
  echo "|---|---:|---|"
  echo "| \`kiln pull --store\` cold (download, decompress, extract pipelined; blob kept) | $kcm | ${kc[*]} |"
  echo "| \`skopeo copy docker:// oci:\` + \`umoci unpack --rootless\` | $sum | ${su[*]} |"
  echo "| \`kiln pull --store\` warm (same store again: no blob downloaded) | $kwm | ${kw[*]} |"
  echo
  awk -v a="$sum" -v b="$kcm" 'BEGIN { printf "skopeo + umoci / kiln cold = %.2fx\n", a / b }'
} | tee bench/results/fetch.md
