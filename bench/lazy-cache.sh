#!/usr/bin/env bash
# lazy-cache.sh - w5 (../shared/workloads/w5-cached-rebuild) rebuilt from an
# EMPTY store whose only cache is the registry one, pushed to the registry
# that holds the cache and the base (issue 19 item 2: lazy layers), with
# nothing changed and with one source file changed; compared in the same run
# with buildah 1.28 (`bud --layers` with its local storage as cache, and
# `--cache-from` from a fresh storage, each followed by `buildah push`), and
# optionally with another kiln binary (KILN_OLD, e.g. before lazy layers).
#
#   bench/lazy-cache.sh [RUNS]        (as root; RUNS default 3; medians)
#
# Seeds once per builder: a cold build with --cache-repo / --cache-to and a
# push. Then per run and builder: "rebuild": a new empty store (buildah: new
# storage with --cache-from; buildah --layers: its warm storage) builds and
# pushes; "rebuild-1": the same after one more line in src/file1.txt (a new
# change every run, so the COPY and what follows always miss). The layer
# blob GETs the registry served during each kiln row are counted from its
# access log. The bases come from the bench registry (bench/workloads.sh);
# the seed's apt-get needs deb.debian.org.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-3}
KILN=${KILN:-$SRC/kiln}
KILN_OLD=${KILN_OLD:-}
export KILN KILN_POLICY_DIR=${KILN_POLICY_DIR:-$SRC/policies}
work=$(mktemp -d /var/tmp/kiln-lazy.XXXXXX)
export BATS_TEST_TMPDIR=$work BATS_FILE_TMPDIR=$work
# shellcheck source=tests/integration/helpers.bash
source "$SRC/tests/integration/helpers.bash"
# shellcheck source=bench/workload-lib.sh
source "$SRC/bench/workload-lib.sh"
CACHE=$KILN_TEST_CACHE/bench
umount_under() {
  awk -v d="$1" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}
cleanup() {
  registry_stop_all >/dev/null 2>&1 || true
  for d in "$work"/b-*; do
    [ -d "$d" ] && buildah --root "$d/root" --runroot "$d/runroot" --storage-driver=overlay rmi -a -f >/dev/null 2>&1
    [ -d "$d" ] && umount_under "$d" 2>/dev/null
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT INT TERM
debian_reachable || { echo "lazy-cache.sh: deb.debian.org is not reachable (w5's apt-get)" >&2; exit 2; }
registry_start --root "$CACHE/registry" >/dev/null
fuse_dev_open_for_all; tun_dev_open_for_all
skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/library/debian:bookworm" >/dev/null 2>&1 \
  || { echo "lazy-cache.sh: no debian:bookworm in the bench registry (run bench/workloads.sh once)" >&2; exit 1; }
RUN_ID=$(date +%s)-$$
src=/work/shared/workloads/$(bench_wl_dir w5)
[ -d "$src" ] || src=$SRC/../shared/workloads/$(bench_wl_dir w5)
ctx=$(bench_wl_context w5 "$src" "$work" "$CACHE")
sed "s#REGISTRY#$REGISTRY#g" "$src/Dockerfile" > "$work/Dockerfile"

now() { date +%s.%N; }
# t LOG CMD...: seconds, or exit with the log's tail
t() {
  local logf=$1 a b
  shift
  a=$(now)
  "$@" > "$logf" 2>&1 || { echo "lazy-cache.sh: failed: $* (log $logf)" >&2; tail -n 20 "$logf" >&2; exit 1; }
  b=$(now)
  awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f\n", b - a }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
log_lines() { wc -l < "$REGISTRY_LOG"; }
# layer blob GETs (200) since line $1: GETs of blobs that are not configs
# (config blobs are small JSON; layers of w5 are all > 100 bytes of gzip,
# so: the blobs of the pushed images' layer lists)
layer_gets() {
  local since=$1 image=$2 d n=0
  for d in $(skopeo inspect --tls-verify=false --raw "docker://$image" | jq -r '.layers[].digest'); do
    n=$(( n + $(tail -n +"$(( since + 1 ))" "$REGISTRY_LOG" | grep -cE "\"GET /v2/[^ ]*/blobs/$d HTTP/[0-9.]+\" 200 " || true) ))
  done
  echo "$n"
}

kb() { # BIN STORE TAG LOG
  local bin=$1 store=$2 tag=$3 logf=$4 cache=$5
  t "$logf" "$bin" build --progress plain --root "$store" --insecure-registry "$REGISTRY" --cache-repo "$cache" \
    -t "$REGISTRY/bench/w5-lazy:$tag" -f "$work/Dockerfile" "$ctx"
}
broot() { echo "buildah --root $work/b-$1/root --runroot $work/b-$1/runroot --storage-driver=overlay"; }
bb() { # STORAGE TAG LOG [bud flags]: bud then push to the registry
  local st=$1 tag=$2 logf=$3 a b
  shift 3
  mkdir -p "$work/b-$st"
  a=$(now)
  # shellcheck disable=SC2046
  $(broot "$st") bud --isolation=chroot --tls-verify=false "$@" -f "$work/Dockerfile" -t "localhost/w5:$tag" "$ctx" \
    > "$logf" 2>&1 || { echo "lazy-cache.sh: buildah bud failed (log $logf)" >&2; tail -n 20 "$logf" >&2; exit 1; }
  # shellcheck disable=SC2046
  $(broot "$st") push --tls-verify=false "localhost/w5:$tag" "docker://$REGISTRY/bench/w5-buildah:$tag" \
    >> "$logf" 2>&1 || { echo "lazy-cache.sh: buildah push failed (log $logf)" >&2; tail -n 20 "$logf" >&2; exit 1; }
  b=$(now)
  awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f\n", b - a }'
}
fresh_b() {
  local st=$1
  if [ -d "$work/b-$st" ]; then
    # shellcheck disable=SC2046
    $(broot "$st") rmi -a -f >/dev/null 2>&1 || true
    umount_under "$work/b-$st" 2>/dev/null || true
    rm -rf --one-file-system "$work/b-$st"
  fi
}

kc="$REGISTRY/cache/lazy-w5-$RUN_ID" kco="$REGISTRY/cache/lazy-w5-old-$RUN_ID" bc="$REGISTRY/cache/lazy-w5-buildah-$RUN_ID"
loads=()
echo "seeding (cold builds with the registry cache)..." >&2
seed=$(kb "$KILN" "$work/seed" seed "$work/seed.log" "$kc")
[ -z "$KILN_OLD" ] || seedo=$(kb "$KILN_OLD" "$work/seedo" seed-old "$work/seedo.log" "$kco")
seedb=$(bb warm seed "$work/seedb.log" --layers --cache-to "$bc")
declare -A T
declare -A G
for i in $(seq 1 "$RUNS"); do
  loads+=("$(cut -d' ' -f1 /proc/loadavg)")
  for row in rebuild rebuild-1; do
    if [ "$row" = rebuild-1 ]; then echo "changed in run $i" >> "$ctx/src/file1.txt"; fi
    rm -rf --one-file-system "$work/s"
    m=$(log_lines)
    T[kiln,$row]+="$(kb "$KILN" "$work/s" "$row-$i" "$work/k-$row-$i.log" "$kc") "
    G[kiln,$row]+="$(layer_gets "$m" "$REGISTRY/bench/w5-lazy:$row-$i") "
    if [ -n "$KILN_OLD" ]; then
      rm -rf --one-file-system "$work/s"
      m=$(log_lines)
      T[old,$row]+="$(kb "$KILN_OLD" "$work/s" "old-$row-$i" "$work/o-$row-$i.log" "$kco") "
      G[old,$row]+="$(layer_gets "$m" "$REGISTRY/bench/w5-lazy:old-$row-$i") "
    fi
    fresh_b fresh
    T[bfrom,$row]+="$(bb fresh "$row-$i" "$work/bf-$row-$i.log" --layers --cache-from "$bc") "
    T[blayers,$row]+="$(bb warm "l-$row-$i" "$work/bl-$row-$i.log" --layers) "
  done
done
rm -rf --one-file-system "$work/s"

med() { tr ' ' '\n' <<< "$1" | sed '/^$/d' | median; }
echo "| w5 from an empty store, pushed | kiln (s) | layer blob GETs | buildah --cache-from, fresh storage (s) | buildah --layers, warm storage (s) | kiln / buildah --cache-from |${KILN_OLD:+ kiln before (s) | its layer blob GETs |}"
echo "| --- | --- | --- | --- | --- | --- |${KILN_OLD:+ --- | --- |}"
for row in rebuild rebuild-1; do
  k=$(med "${T[kiln,$row]}") f=$(med "${T[bfrom,$row]}") l=$(med "${T[blayers,$row]}")
  g=$(med "${G[kiln,$row]}")
  extra=""
  [ -z "$KILN_OLD" ] || extra=" $(med "${T[old,$row]}") | $(med "${G[old,$row]}") |"
  label=$([ "$row" = rebuild ] && echo "nothing changed" || echo "one source file changed")
  awk -v r="$label" -v k="$k" -v g="$g" -v f="$f" -v l="$l" -v e="$extra" \
    'BEGIN { printf "| %s | %.2f | %s | %.2f | %.2f | %.2f |%s\n", r, k, g, f, l, k / f, e }'
done
echo
echo "medians of $RUNS runs; seeds (cold, s): kiln $seed${KILN_OLD:+, kiln before $seedo}, buildah $seedb;" \
  "kiln $(git -C "$SRC" rev-parse --short HEAD)${KILN_OLD:+, before: $KILN_OLD}, $(buildah --version | cut -d' ' -f1-3);" \
  "$(nproc) cores, load at each run: ${loads[*]}; $(date -u +%Y-%m-%dT%H:%MZ)"
echo "per-run seconds: kiln rebuild ${T[kiln,rebuild]}| rebuild-1 ${T[kiln,rebuild-1]}| buildah --cache-from ${T[bfrom,rebuild]}| ${T[bfrom,rebuild-1]}| buildah --layers ${T[blayers,rebuild]}| ${T[blayers,rebuild-1]}${KILN_OLD:+| before ${T[old,rebuild]}| ${T[old,rebuild-1]}}"
