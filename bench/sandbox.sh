#!/usr/bin/env bash
# bench/sandbox.sh - cost of an empty step (`true`, sandbox set-up to
# teardown) in kiln's sandbox against bwrap and crun on the same busybox rootfs.
#   bench/sandbox.sh [N]     (default N=100 runs each; run as root)
# Prints a markdown table: mean wall time per run in milliseconds.
set -euo pipefail
N=${1:-100}
KILN=${KILN:-$(cd "$(dirname "$0")/.." && pwd)/kiln}
work=$(mktemp -d /tmp/kiln-bench-sandbox.XXXXXX)
trap 'rm -rf --one-file-system "$work"' EXIT
chmod 755 "$work"
r=$work/bundle/rootfs
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

echo "| runner (N=$N, \`true\` in a busybox rootfs) | ms per run |"
echo "| --- | --- |"
time_n "kiln version (process start only: baseline for the kiln rows)" "$KILN" version
time_n "kiln run (userns full, seccomp default.json, pid/mnt/ipc/uts/cgroup ns)" \
  "$KILN" run --verbosity=error --rootfs "$r" --rootfs-readonly -- true
time_n "kiln run --network=none" \
  "$KILN" run --verbosity=error --rootfs "$r" --rootfs-readonly --network=none -- true
time_n "kiln run --seccomp-policy=unconfined" \
  "$KILN" run --verbosity=error --rootfs "$r" --rootfs-readonly --seccomp-policy=unconfined -- true
if command -v bwrap >/dev/null; then
  time_n "bwrap --unshare-all (user,ipc,pid,net,uts,cgroup) --proc --dev" \
    bwrap --unshare-all --ro-bind "$r" / --proc /proc --dev /dev -- /bin/true
fi
if command -v crun >/dev/null; then
  (cd "$work/bundle" && crun spec >/dev/null && sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"true"/' config.json)
  i=0
  crun_once() { i=$((i + 1)); crun run --bundle "$work/bundle" "kiln-bench-$$-$i"; }
  time_n "crun run (default spec: caps, seccomp none, namespaces)" crun_once
fi
echo
echo "buildah run is not measured: it needs a working container from an image in buildah's storage."
