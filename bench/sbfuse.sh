#!/usr/bin/env bash
# bench/sbfuse.sh - cost of the FUSE overlay root filesystem per step: N
# trivial steps `kiln run --overlay ... true` against `kiln run` on the plain
# directory (read-only bind), same busybox rootfs, same sandbox otherwise.
#   bench/sbfuse.sh [N]      (default N=50; run as root; also runs as a plain
#                             user when KILN_BENCH_USER names one, whose mode
#                             is then single or full depending on /etc/subuid)
# Prints a markdown table: mean wall time per step in milliseconds.
set -euo pipefail
N=${1:-50}
KILN=${KILN:-$(cd "$(dirname "$0")/.." && pwd)/kiln}
work=$(mktemp -d /tmp/kiln-bench-sbfuse.XXXXXX)
trap 'rm -rf --one-file-system "$work"' EXIT
chmod 755 "$work"
r=$work/rootfs
mkdir -p "$r/bin" "$r/proc" "$r/dev" "$r/sys" "$r/etc" "$r/tmp"
: > "$r/etc/resolv.conf"; : > "$r/etc/hosts"; : > "$r/etc/hostname"
cp /bin/busybox "$r/bin/"
for a in $(/bin/busybox --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done

# time_n LABEL CMD...: mean milliseconds over N runs
time_n() {
  local label=$1; shift
  "$@" >/dev/null 2>&1 || { echo "| $label | failed to run |"; return; }
  local s e
  s=$(date +%s%N)
  for _ in $(seq "$N"); do "$@" >/dev/null 2>&1; done
  e=$(date +%s%N)
  awk -v l="$label" -v t=$((e - s)) -v n="$N" 'BEGIN { printf "| %s | %.2f |\n", l, t / n / 1e6 }'
}

as_user() { setpriv --reuid "$KILN_BENCH_USER" --regid "$(id -g "$KILN_BENCH_USER")" --init-groups -- \
  env HOME=/tmp TMPDIR=/tmp "$@"; }

echo "| step (N=$N, \`true\` in a busybox rootfs) | ms per step |"
echo "| --- | --- |"
time_n "root: kiln run --rootfs DIR --rootfs-readonly (bind mount)" \
  "$KILN" run --verbosity=error --rootfs "$r" --rootfs-readonly -- true
time_n "root: kiln run --rootfs DIR --overlay (FUSE, mounted in the step's userns)" \
  "$KILN" run --verbosity=error --rootfs "$r" --overlay -- true
time_n "root: kiln run --rootfs DIR --overlay --show-changes" \
  "$KILN" run --verbosity=error --rootfs "$r" --overlay --show-changes -- true
# In-process: what a build pays per step (no kiln exec, no profile compile).
src=$(cd "$(dirname "$0")/.." && pwd)
cc -std=gnu11 -O2 -D_GNU_SOURCE -DFUSE_USE_VERSION=35 -I"$src/src" $(pkg-config --cflags fuse3) \
  -o "$work/sbfuse_bench" "$src/bench/sbfuse_bench.c" "$src/build/libkiln.a" \
  $(pkg-config --libs libseccomp libcap libarchive libcurl yajl fuse3 liburing libcrypto zlib libzstd libisal) -lm -pthread
chmod 755 "$work/sbfuse_bench"
"$work/sbfuse_bench" "$r" "$N" true
if [ -n "${KILN_BENCH_USER:-}" ]; then
  as_user "$work/sbfuse_bench" "$r" "$N" true
  time_n "$KILN_BENCH_USER: kiln run --rootfs DIR --rootfs-readonly" \
    as_user "$KILN" run --verbosity=error --rootfs "$r" --rootfs-readonly -- true
  time_n "$KILN_BENCH_USER: kiln run --rootfs DIR --overlay" \
    as_user "$KILN" run --verbosity=error --rootfs "$r" --overlay -- true
fi
