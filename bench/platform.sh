#!/usr/bin/env bash
# bench/platform.sh - what binfmt_misc emulation costs a RUN step (issue 22):
# `apt-get update && apt-get install curl` from the Debian archive in a
# Debian bookworm minbase for linux/arm64 (qemu-aarch64 through binfmt_misc)
# against linux/amd64 (native), each build --no-cache, platforms alternating
# so that load drift hits both; then the two-platform build of the same
# Dockerfile, its platforms one after another (--jobs 1: the Dockerfile has
# one stage, so only the platforms' order changes) and at the same time
# (--jobs 2: a platform per thread, one stage each). Prints a Markdown
# table of medians, the arm64/amd64 ratio and concurrent/sequential.
#
#   bench/platform.sh [KILN] [RUNS]      (as root; RUNS default 3; needs deb.debian.org)
#
# The bases: the debian test fixture (scripts/make-base-images.sh debian) and
# the same recipe for arm64 (debootstrap --arch=arm64, its second stage run
# through qemu-aarch64; cached as $KILN_TEST_CACHE/bench/debian-arm64-minbase.tar),
# put into one OCI index and pushed to a throwaway registry.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
KILN_BIN=$(readlink -f "${1:-$SRC/kiln}") RUNS=${2:-3}
export KILN=$KILN_BIN KILN_POLICY_DIR=${KILN_POLICY_DIR:-$SRC/policies}
# shellcheck source=tests/integration/helpers.bash
source "$SRC/tests/integration/helpers.bash"
[ "$(id -u)" -eq 0 ] || { echo "platform.sh: run as root (debootstrap, binfmt_misc)" >&2; exit 1; }
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || { echo "platform.sh: no qemu-aarch64 binfmt_misc handler (scripts/install-deps.sh)" >&2; exit 1; }
EPOCH=1700000000
CREATED=$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)
W=$(mktemp -d /var/tmp/kiln-platform-bench.XXXXXX)
trap 'registry_stop_all; rm -rf --one-file-system "$W"' EXIT

# The arm64 rootfs, as make-base-images.sh makes the amd64 one.
tarball=$KILN_TEST_CACHE/bench/debian-arm64-minbase.tar
if [ ! -f "$tarball" ]; then
  mkdir -p "$KILN_TEST_CACHE/bench/debs-arm64"
  echo "platform.sh: debootstrap --arch=arm64 (a few minutes: the second stage runs under emulation)" >&2
  debootstrap --arch=arm64 --variant=minbase --cache-dir="$KILN_TEST_CACHE/bench/debs-arm64" bookworm \
    "$W/deboot" http://deb.debian.org/debian > "$W/deboot.log" 2>&1 || { tail -n 30 "$W/deboot.log" >&2; exit 1; }
  rm -f "$W/deboot"/var/cache/apt/archives/*.deb "$W/deboot"/var/log/bootstrap.log
  : > "$W/deboot/etc/resolv.conf"
  echo localhost > "$W/deboot/etc/hostname"
  tar --numeric-owner --xattrs --acls -C "$W/deboot" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf --one-file-system "$W/deboot"
fi
amd64=$("$SRC/scripts/make-base-images.sh" --print-layout debian 2>/dev/null) \
  || { "$SRC/scripts/make-base-images.sh" debian >&2; amd64=$("$SRC/scripts/make-base-images.sh" --print-layout debian); }

# arm64 layout with umoci, then one layout holding both and their index.
umoci init --layout "$W/arm"
umoci new --image "$W/arm:bookworm"
umoci unpack --image "$W/arm:bookworm" "$W/bundle" > /dev/null
tar --numeric-owner --xattrs --acls -C "$W/bundle/rootfs" -xpf "$tarball"
umoci repack --image "$W/arm:bookworm" --history.created "$CREATED" "$W/bundle"
umoci config --image "$W/arm:bookworm" --created "$CREATED" --no-history --os linux --architecture arm64 \
  --config.cmd bash --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
umoci gc --layout "$W/arm"
rm -rf --one-file-system "$W/bundle"
mkdir -p "$W/multi/blobs/sha256"
cp "$amd64/oci-layout" "$W/multi/"
cp -n "$amd64"/blobs/sha256/* "$W/arm"/blobs/sha256/* "$W/multi/blobs/sha256/"
idx=$(jq -cn --argjson a "$(jq -c '.manifests[0] | del(.annotations)' "$amd64/index.json")" \
  --argjson b "$(jq -c '.manifests[0] | del(.annotations)' "$W/arm/index.json")" \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [$a + {platform: {architecture: "amd64", os: "linux"}}, $b + {platform: {architecture: "arm64", os: "linux"}}]}')
printf '%s' "$idx" > "$W/idx"
d=$(sha256sum "$W/idx" | cut -d' ' -f1)
mv "$W/idx" "$W/multi/blobs/sha256/$d"
jq -n --arg d "sha256:$d" --argjson s "${#idx}" '{schemaVersion: 2, manifests: [{mediaType:
  "application/vnd.oci.image.index.v1+json", digest: $d, size: $s, annotations: {"org.opencontainers.image.ref.name": "bookworm"}}]}' \
  > "$W/multi/index.json"
registry_start >&2
fuse_dev_open_for_all
tun_dev_open_for_all
BASE=$REGISTRY/bench/debian-multi:bookworm
skopeo copy -q --all --dest-tls-verify=false "oci:$W/multi:bookworm" "docker://$BASE"

mkdir -p "$W/apt"
printf 'ARG BASE\nFROM $BASE\nARG NONCE\nRUN echo $NONCE > /dev/null && apt-get update -q && apt-get install -y -q --no-install-recommends curl && uname -m\n' \
  > "$W/apt/Dockerfile"
kb() { # kb PLATFORMS NONCE JOBS
  "$KILN" build --root "$W/store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BASE" --no-push --no-cache \
    --progress plain --platform "$1" --build-arg "NONCE=$2" --jobs "${3:-2}" "$W/apt" > "$W/log" 2>&1 \
    || { cat "$W/log" >&2; return 1; }
}
kb linux/amd64,linux/arm64 warm # pulls both bases into the store

now() { date +%s.%N; }
load0=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A T
for r in $(seq "$RUNS"); do
  # the two two-platform builds swap places every run (load drift)
  order="linux/amd64,linux/arm64@1 linux/amd64,linux/arm64@2"
  [ $((r % 2)) -eq 0 ] && order="linux/amd64,linux/arm64@2 linux/amd64,linux/arm64@1"
  for p in linux/arm64 linux/amd64 $order; do
    t0=$(now)
    kb "${p%@*}" "$r-$RANDOM" "$(if [[ $p == *@* ]]; then echo "${p#*@}"; fi)"
    T[$p]+="$(echo "$(now) - $t0" | bc) "
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { printf "%.2f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
runs() { for v in $1; do printf '%.1f ' "$v"; done; }
a=$(median <<< "${T[linux/amd64]}") b=$(median <<< "${T[linux/arm64]}")
c=$(median <<< "${T[linux/amd64,linux/arm64@1]}") d=$(median <<< "${T[linux/amd64,linux/arm64@2]}")
echo "$("$KILN" version 2>/dev/null | head -n1), $(nproc) cores, load $load0 at the start and $(cut -d' ' -f1-3 /proc/loadavg) at the end, $(date -u +%Y-%m-%dT%H:%MZ), $RUNS runs"
echo
echo "| build (apt-get update + install curl, --no-cache) | median s | runs (s) |"
echo "| --- | --- | --- |"
echo "| linux/amd64 (native) | $a | $(runs "${T[linux/amd64]}")|"
echo "| linux/arm64 (qemu-aarch64 via binfmt_misc) | $b | $(runs "${T[linux/arm64]}")|"
echo "| linux/amd64,linux/arm64 (one index), one after another (--jobs 1) | $c | $(runs "${T[linux/amd64,linux/arm64@1]}")|"
echo "| linux/amd64,linux/arm64 (one index), at the same time (--jobs 2) | $d | $(runs "${T[linux/amd64,linux/arm64@2]}")|"
echo
echo "arm64/amd64: $(echo "scale=2; $b / $a" | bc)x; two platforms one after another / (amd64 + arm64): $(echo "scale=2; $c / ($a + $b)" | bc); at the same time / one after another: $(echo "scale=2; $d / $c" | bc)"
