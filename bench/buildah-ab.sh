#!/usr/bin/env bash
# bench/buildah-ab.sh - one workload's warm build with kiln and with `buildah bud`
# as root, alternating kiln buildah kiln buildah ... so that load drift hits
# both; prints the medians and the kiln/buildah ratio (issue 21's "w6 at most
# 0.7x buildah bud as root"). bench/workloads.sh does this for w1-w5 with more
# rows; this is the short form for any workload of ../shared/workloads (w6).
#
#   bench/buildah-ab.sh [--rootless] [WORKLOAD] [RUNS]
#       (started as root; default w6 3; KILN=path)
#
# --rootless: both run as the plain user kiln-bench-sub (made here, with
# /etc/subuid ranges: kiln's subuid mode), buildah with its rootless
# default storage (no --storage-driver; the footer names what it chose) and
# --isolation=chroot: its default (oci, crun) cannot run a RUN step on a
# cgroup v1/hybrid machine ("cgroups in hybrid mode not supported"), and
# chroot is what buildah's own container images use rootless.
# BUILDAH_DRIVER=overlay|vfs picks buildah's storage driver there.
#
# Warm: the base already in kiln's store / buildah's storage (one cold build
# of each first); kiln with --no-cache and --oci-layout, buildah without
# --layers (`--storage-driver=overlay bud --isolation=chroot`, the kernel's
# overlayfs, its own --root/--runroot; the built image removed after each
# build), so neither caches steps. buildah bud leaves uncompressed layers in
# its storage; kiln's --oci-layout output is compressed, so the last column
# adds `buildah push IMAGE oci:DIR` (the same artifact) to buildah's time.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOTLESS=0
[ "${1:-}" = --rootless ] && { ROOTLESS=1; shift; }
WLN=${1:-w6} RUNS=${2:-3}
[ "$(id -u)" = 0 ] || { echo "bench/buildah-ab.sh: run as root" >&2; exit 1; }
KILN=$(readlink -f "${KILN:-$SRC/kiln}")
export KILN KILN_POLICY_DIR=${KILN_POLICY_DIR:-$SRC/policies}
# shellcheck source=tests/integration/helpers.bash
source "$SRC/tests/integration/helpers.bash"
CACHE=$KILN_TEST_CACHE/bench
registry_start --root "$CACHE/registry" >&2
fuse_dev_open_for_all; tun_dev_open_for_all
W=$(mktemp -d /var/tmp/kiln-bab.XXXXXX)
AS=() BFLAGS=(--isolation=chroot)
B=(buildah --root "$W/broot" --runroot "$W/brun" --storage-driver=overlay)
if [ "$ROOTLESS" = 1 ]; then
  test_user_create kiln-bench-sub --subuid
  chmod 0755 "$W"
  mkdir -p "$W/u"
  chown kiln-bench-sub: "$W/u"
  AS=(run_as kiln-bench-sub)
  B=(buildah --root "$W/u/broot" --runroot "$W/u/brun")
  # BUILDAH_DRIVER=overlay: the kernel's overlayfs in buildah's user namespace
  [ -n "${BUILDAH_DRIVER:-}" ] && B+=(--storage-driver "$BUILDAH_DRIVER")
fi
cleanup() {
  "${AS[@]}" "${B[@]}" rmi -a -f > /dev/null 2>&1 || true
  umount -R "$W/broot/overlay" 2> /dev/null || true
  rm -rf --one-file-system "$W"
  kiln_shell_cleanup
}
trap cleanup EXIT
# shellcheck source=bench/workload-lib.sh
source "$SRC/bench/workload-lib.sh"
src=$(bench_wl_src "$WLN")
ctx=$(bench_wl_context "$WLN" "$src" "$W" "$CACHE")
sed "s#REGISTRY#$REGISTRY#g" "$src/Dockerfile" > "$W/Dockerfile"

# timed CMD... -> seconds (exits on failure, with the log's tail)
timed() {
  local t0 t1
  # the previous build's dirty pages (60,000 files of w6) would otherwise be
  # written back during this one: a fixed order then favours the first
  sync
  t0=$(date +%s.%N)
  "$@" > "$W/log" 2>&1 || { echo "bench/buildah-ab.sh: failed: $*" >&2; tail -n 20 "$W/log" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }'
}
D=$W; [ "$ROOTLESS" = 1 ] && D=$W/u  # where the builds write
kiln_build() {
  rm -rf --one-file-system "$D/out"
  timed "${AS[@]}" "$KILN" build --progress plain --root "$D/store" --insecure-registry "$REGISTRY" --no-push --no-cache \
    --oci-layout "$D/out:bench" -f "$W/Dockerfile" "$ctx"
}
# buildah_build -> "BUD_SECONDS PUSH_SECONDS"
buildah_build() {
  local t p
  t=$(timed "${AS[@]}" "${B[@]}" bud "${BFLAGS[@]}" --tls-verify=false -t bench-out -f "$W/Dockerfile" "$ctx")
  rm -rf --one-file-system "$D/bout"
  p=$(timed "${AS[@]}" "${B[@]}" push bench-out "oci:$D/bout:bench")
  "${AS[@]}" "${B[@]}" rmi -f bench-out > /dev/null 2>&1 || true
  echo "$t $p"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# row NAME KILN "BUD PUSH"
row() {
  awk -v w="$WLN" -v r="$1" -v a="$2" -v b="${3% *}" -v p="${3#* }" 'BEGIN {
    printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", w, r, a, b, a / b, b + p, a / (b + p) }'
}
kc=$(kiln_build) bc=$(buildah_build)
tk=() tb=() tp=()
for _ in $(seq 1 "$RUNS"); do
  tk+=("$(kiln_build)")
  read -r b p < <(buildah_build)
  tb+=("$b") tp+=("$(awk -v b="$b" -v p="$p" 'BEGIN { print b + p }')")
done
mk=$(printf '%s\n' "${tk[@]}" | median) mb=$(printf '%s\n' "${tb[@]}" | median)
mp=$(printf '%s\n' "${tp[@]}" | median)
echo "| workload | row | kiln (s) | buildah bud (s) | kiln/buildah | buildah + push to OCI layout (s) | kiln/that |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
row cold "$kc" "$bc"
row "warm (median of $RUNS)" "$mk" "$mb $(awk -v a="$mp" -v b="$mb" 'BEGIN { print a - b }')"
echo
as="as root, buildah with the kernel's overlayfs and --isolation=chroot"
[ "$ROOTLESS" = 1 ] && as="as kiln-bench-sub (subuid ranges), buildah rootless, storage driver $("${AS[@]}" "${B[@]}" info --format '{{.store.GraphDriverName}}' 2>/dev/null), --isolation=chroot"
echo "kiln $KILN; $as; $(buildah --version); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
