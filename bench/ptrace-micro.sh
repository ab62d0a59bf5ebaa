#!/usr/bin/env bash
# bench/ptrace-micro.sh - the trapped-call micro figures of docs/design/ptrace.md
# ("Performance"): 20 empty `kiln run`s, 2000 × `stat /etc/passwd` and
# 20000 × `[ -e /etc/passwd ]` in a Debian root, for ptrace isolation before
# and after a change and for the userns mode, interleaved, medians of N.
#
#   KILN_BEFORE=old/kiln [KILN=./kiln] bench/ptrace-micro.sh ROOTFS [N]   (as root; N default 3)
#
# ROOTFS: a Debian root directory, e.g. the test fixture's layer untarred:
#   mkdir deb && tar -xf $KILN_TEST_CACHE/oci/debian-r2-bookworm-minbase/blobs/sha256/<layer> -C deb
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
D=$(readlink -f "${1:?usage: KILN_BEFORE=old/kiln bench/ptrace-micro.sh ROOTFS [N]}")
N=${2:-3}
A=$(readlink -f "${KILN:-$SRC/kiln}")
B=$(readlink -f "${KILN_BEFORE:?set KILN_BEFORE to the binary to compare with}")
cd /tmp
secs() { local s; s=$(date +%s.%N); "$@" > /dev/null 2>&1; awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }
declare -A R
for _ in $(seq "$N"); do
  for m in before after userns; do
    case $m in before) K=$B I=ptrace ;; after) K=$A I=ptrace ;; userns) K=$A I=userns ;; esac
    R[empty,$m]+=" $(secs bash -c "for i in \$(seq 20); do '$K' run --isolation $I --network host --rootfs '$D' true; done")"
    R[stat,$m]+=" $(secs "$K" run --isolation $I --network host --rootfs "$D" sh -c \
      'for i in $(seq 2000); do stat /etc/passwd >/dev/null; done')"
    R[test,$m]+=" $(secs "$K" run --isolation $I --network host --rootfs "$D" sh -c \
      'i=0; while [ $i -lt 20000 ]; do [ -e /etc/passwd ]; i=$((i+1)); done')"
  done
done
med() { printf '%s\n' $1 | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "| row | ptrace before s | ptrace after s | userns s | after/before | after/userns |"
echo "| --- | --- | --- | --- | --- | --- |"
for r in empty stat test; do
  case $r in
    empty) label='20 × `kiln run ... true`' ;;
    stat) label='2000 × `stat /etc/passwd`' ;;
    test) label='20000 × `[ -e /etc/passwd ]`' ;;
  esac
  awk -v l="$label" -v b="$(med "${R[$r,before]}")" -v a="$(med "${R[$r,after]}")" -v u="$(med "${R[$r,userns]}")" \
    'BEGIN { printf "| %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", l, b, a, u, a / b, a / u }'
done
echo
echo "medians of $N; before $B, after $A; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
