#!/usr/bin/env bash
# bench/sandbox.sh - cost of an empty step (`true`, sandbox set-up to
# teardown, no layer packing) in kiln's sandbox against bwrap, crun and
# buildah run, all on the same busybox image/rootfs, in one run; then kiln's
# per-step cost inside a build (20 `RUN true` minus 1, divided by 19), which
# excludes process start and seccomp compilation, against buildah bud.
#
#   bench/sandbox.sh [N] [BUILD_RUNS]   (as root; default N=30 runs per fast
#                                        row, N/5 (>= 5) for buildah run,
#                                        BUILD_RUNS=3 builds per Dockerfile)
#
# The image is the busybox test fixture (scripts/make-base-images.sh, OCI
# layout); its rootfs is unpacked once with umoci for the runners that take
# a directory. Prints markdown tables: mean wall time per run.
#
# crun 1.8 refuses hybrid cgroup hierarchies ("cgroups in hybrid mode not
# supported, drop all controllers from cgroupv2"), and buildah's default OCI
# isolation runs crun. On such a host the script re-executes itself in a
# private mount namespace where the cgroup2 mount /sys/fs/cgroup/unified is
# detached, so every runner sees cgroup v1 only; the host is not changed.
set -euo pipefail
N=${1:-30}
BUILD_RUNS=${2:-3}
N_SLOW=$((N / 5 > 5 ? N / 5 : 5))
SRC=$(cd "$(dirname "$0")/.." && pwd)
KILN=${KILN:-$SRC/kiln}
[ "$(id -u)" = 0 ] || { echo "bench/sandbox.sh: run as root" >&2; exit 1; }

if [ -z "${KILN_BENCH_PRIVATE_NS:-}" ] && [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
  exec env KILN_BENCH_PRIVATE_NS=1 unshare -m --propagation private -- "$0" "$@"
fi
if [ -n "${KILN_BENCH_PRIVATE_NS:-}" ]; then
  umount /sys/fs/cgroup/unified
fi

# shellcheck source=tests/integration/helpers.bash
source "$SRC/tests/integration/helpers.bash"
# Lower case: buildah names an image pulled from oci:PATH after PATH.
work=/tmp/kiln-bench-sandbox.$$
mkdir -m 0700 "$work"
chmod 755 "$work"
B=(buildah --root "$work/buildah/root" --runroot "$work/buildah/run" --storage-driver overlay)
cleanup() {
  "${B[@]}" rm --all >/dev/null 2>&1 || true
  "${B[@]}" rmi --all --force >/dev/null 2>&1 || true
  kiln_shell_cleanup
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

layout=$work/layout
cp -a "$(fixtures_layout busybox)" "$layout"
r=$work/bundle/rootfs
mkdir -p "$work/bundle"
umoci raw unpack --image "$layout:latest" "$r" >/dev/null
# Mount points present, so no runner pays for creating them.
mkdir -p "$r/proc" "$r/dev" "$r/sys" "$r/etc" "$r/tmp"
: > "$r/etc/resolv.conf"; : > "$r/etc/hosts"; : > "$r/etc/hostname"
chmod 755 "$r"
store=$work/store
"$KILN" run --verbosity=error --root "$store" --oci-layout "$layout" -- true  # extract the layer once

# time_n LABEL COUNT CMD...: mean milliseconds over COUNT runs (after one
# untimed warm-up run that must succeed).
time_n() {
  local label=$1 count=$2
  shift 2
  "$@" >/dev/null 2>"$work/err" || { echo "| $label | failed: $(head -c 200 "$work/err" | tr '\n' ' ') |"; return; }
  local s e
  s=$(date +%s%N)
  for _ in $(seq "$count"); do "$@" >/dev/null 2>&1; done
  e=$(date +%s%N)
  awk -v l="$label" -v t=$((e - s)) -v n="$count" 'BEGIN { printf "| %s | %d | %.1f |\n", l, n, t / n / 1e6 }'
}

crun_bundle() { # DIR [--rootless]: a config.json for `true` on $r
  mkdir -p "$1"
  (cd "$1" && crun spec ${2:+"$2"} && sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"true"/' config.json &&
    sed -i "s|\"path\": \"rootfs\"|\"path\": \"$r\"|" config.json)
}
i=0
crun_once() { # BUNDLE [GLOBAL-FLAGS...]
  local b=$1
  shift
  i=$((i + 1))
  crun "$@" run --bundle "$b" "kiln-bench-$$-$i"
}

echo "Empty step: \`true\` in the busybox fixture image (as root; load average at start: $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| runner | runs | ms per run |"
echo "| --- | ---: | ---: |"
time_n "kiln version (process start only: baseline for the kiln rows)" "$N" "$KILN" version
time_n "kiln run --rootfs DIR --rootfs-readonly (bind mount; userns full, seccomp, pid/mnt/ipc/uts/cgroup ns)" "$N" \
  "$KILN" run --verbosity=error --rootfs "$r" --rootfs-readonly -- true
time_n "kiln run --oci-layout (image: store lookup, FUSE overlay of the store layer, throwaway upper)" "$N" \
  "$KILN" run --verbosity=error --root "$store" --oci-layout "$layout" -- true
time_n "kiln run --oci-layout --seccomp-policy=unconfined" "$N" \
  "$KILN" run --verbosity=error --root "$store" --oci-layout "$layout" --seccomp-policy=unconfined -- true
time_n "bwrap --unshare-all (user,ipc,pid,net,uts,cgroup) --ro-bind --proc --dev" "$N" \
  bwrap --unshare-all --ro-bind "$r" / --proc /proc --dev /dev -- /bin/true
crun_bundle "$work/crun"
crun_bundle "$work/crun-rootless" --rootless
time_n "crun run (crun spec: caps, mount/pid/ipc/uts/net ns, cgroupfs v1, no seccomp)" "$N" crun_once "$work/crun"
time_n "crun --cgroup-manager=disabled run (crun spec)" "$N" crun_once "$work/crun" --cgroup-manager=disabled
time_n "crun run (crun spec --rootless: + user namespace)" "$N" crun_once "$work/crun-rootless"
ctr=$("${B[@]}" from --quiet --name kiln-bench oci:"$layout":latest)
time_n "buildah run --isolation=chroot CTR true" "$N_SLOW" "${B[@]}" run --isolation=chroot "$ctr" -- true
time_n "buildah run CTR true (default: OCI isolation via crun)" "$N_SLOW" "${B[@]}" run "$ctr" -- true

# ---- per step inside a build ----
# shellcheck disable=SC2119
registry_start
fixtures_push busybox >/dev/null
ctx=$work/ctx
mkdir -p "$ctx"
{ echo "FROM $BUSYBOX_IMAGE"; echo "RUN true"; } > "$ctx/Dockerfile.1"
{ echo "FROM $BUSYBOX_IMAGE"; for _ in $(seq 20); do echo "RUN true"; done; } > "$ctx/Dockerfile.20"
"${B[@]}" tag "$("${B[@]}" images -q | head -n1)" localhost/kiln-bench-base >/dev/null
{ echo "FROM localhost/kiln-bench-base"; echo "RUN true"; } > "$ctx/Dockerfile.b1"
{ echo "FROM localhost/kiln-bench-base"; for _ in $(seq 20); do echo "RUN true"; done; } > "$ctx/Dockerfile.b20"
kbuild() { "$KILN" build --verbosity=error --root "$store" --insecure-registry "$REGISTRY" --no-push -f "$ctx/$1" "$ctx"; }
bbud() { "${B[@]}" bud --quiet --pull-never --isolation=chroot --layers=false -f "$ctx/$1" "$ctx"; }
mean_ms() { # COUNT CMD...: mean ms (after a warm-up run)
  local count=$1
  shift
  "$@" >/dev/null 2>&1 || { echo fail; return; }
  local s e
  s=$(date +%s%N)
  for _ in $(seq "$count"); do "$@" >/dev/null 2>&1; done
  e=$(date +%s%N)
  awk -v t=$((e - s)) -v n="$count" 'BEGIN { printf "%.1f", t / n / 1e6 }'
}
echo
echo "Per RUN step inside a build: (20 × \`RUN true\` − 1 × \`RUN true\`) / 19, mean of $BUILD_RUNS builds each (warm base)"
echo
echo "| builder | 1 step, ms | 20 steps, ms | ms per step |"
echo "| --- | ---: | ---: | ---: |"
k1=$(mean_ms "$BUILD_RUNS" kbuild Dockerfile.1)
k20=$(mean_ms "$BUILD_RUNS" kbuild Dockerfile.20)
awk -v a="$k1" -v b="$k20" 'BEGIN { printf "| kiln build --no-push | %s | %s | %.1f |\n", a, b, (b - a) / 19 }'
b1=$(mean_ms "$BUILD_RUNS" bbud Dockerfile.b1)
b20=$(mean_ms "$BUILD_RUNS" bbud Dockerfile.b20)
awk -v a="$b1" -v b="$b20" 'BEGIN { printf "| buildah bud --isolation=chroot --layers=false | %s | %s | %.1f |\n", a, b, (b - a) / 19 }'
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); nproc $(nproc); kiln $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?'); $(buildah --version); $(crun --version | head -n1); bwrap $(bwrap --version | cut -d' ' -f2)"
