#!/usr/bin/env bash
# bench/store.sh - layer store benchmarks on the issue's workloads.
#
#   bench/store.sh [--runs N] [--size-mb N] [--bomb N] [--only LIST]
#
# LIST is a comma-separated subset of fat,pack,huge,bomb (default: all but
# bomb; --bomb N adds it). Sections:
#   fat   the `fat` workload base (/work/shared/workloads/bases, built once by
#         bench/make-workload-bases.sh into $KILN_TEST_CACHE/bench/registry and
#         served by docker-registry on 127.0.0.1), cold (empty store, page cache
#         dropped before every run when root), median of N runs (default 3):
#           from the registry: `kiln pull --store` vs `skopeo copy docker:// oci:`
#             + `umoci unpack --rootless`;
#           from local blobs (an OCI layout made once by skopeo): kiln's
#             extractor on every layer (bench/store_bench.c) vs
#             `umoci unpack --rootless`.
#   pack  a generated tree of mixed files (N MB, default 1024): kiln's layer
#         writer gzip (all cores, pigz-style; default level = ISA-L 3, and
#         level 6 = zlib) and zstd (all cores), both digests in the same
#         pass, vs `tar | gzip` and `tar | pigz`.
#   huge  the `huge` base pulled into a kiln store; load (open + mmap +
#         validate) of its whole index stack: first open and best of 20.
#   bomb  a tar bomb of N empty files (tests/store/mkbomb.py; the issue's case
#         is --bomb 1000000): extraction with the default entry limit
#         (1,000,000 members: refused) and with KILN_MAX_LAYER_ENTRIES=2000000
#         (accepted), time and peak RSS.
# Output: markdown on stdout (figures, load average, commands).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
runs=3 size_mb=1024 bomb=0 only=fat,pack,huge
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --size-mb) size_mb=$2; shift 2 ;;
    --bomb) bomb=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "store.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ "$bomb" = 0 ] || [[ ",$only," == *",bomb,"* ]] || only=$only,bomb
want() { [[ ",$only," == *",$1,"* ]]; }
KILN=${KILN:-$SRC/kiln}
make -s -j2 kiln build/libkiln.a
work=$(mktemp -d "${TMPDIR:-/var/tmp}/kiln-bench-store.XXXXXX")
export BATS_TEST_TMPDIR=$work BATS_FILE_TMPDIR=$work
# shellcheck source=tests/integration/helpers.bash
source tests/integration/helpers.bash
cleanup() { registry_stop_all >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# shellcheck disable=SC2046  # pkg-config prints several words
cc -std=gnu11 -O2 -D_GNU_SOURCE -Isrc bench/store_bench.c build/libkiln.a \
  $(pkg-config --libs libarchive yajl libcrypto zlib libzstd libisal) -pthread -o "$work/store_bench"
B=$work/store_bench

drop() { if [ "$(id -u)" = 0 ]; then sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; fi; }
# t CMD...: wall seconds of CMD (output discarded); fails if CMD fails.
t() {
  local s e
  s=$(date +%s.%N)
  "$@" > "$work/t.out" 2>&1 || { cat "$work/t.out" >&2; return 1; }
  e=$(date +%s.%N)
  awk -v a="$s" -v b="$e" 'BEGIN { printf "%.2f\n", b - a }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
# rss CMD...: run CMD, print "SECONDS PEAK_RSS_KB EXIT" (output to $work/rss.out).
rss() {
  python3 -c '
import resource, subprocess, sys, time
t = time.monotonic()
with open(sys.argv[1], "wb") as out:
    rc = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT).returncode
print("%.2f %d %d" % (time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc))' \
    "$work/rss.out" "$@"
}

echo "# Layer store benchmarks ($(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M') UTC)"
echo
bomb_arg=""
[ "$bomb" = 0 ] || bomb_arg=" --bomb $bomb"
echo "Command: \`bench/store.sh --runs $runs --size-mb $size_mb$bomb_arg --only $only\`;" \
  "$(nproc) cores shared with other jobs; load average at the start $(load)."

if want fat || want huge; then
  registry_start --root "$KILN_TEST_CACHE/bench/registry" >/dev/null
  have_image() { skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/library/$1" >/dev/null 2>&1; }
fi

# --- fat: cold extraction -----------------------------------------------------
if want fat; then
  img=$REGISTRY/library/fat:1
  if ! have_image fat:1; then
    echo; echo "## fat: skipped (no fat:1 in $KILN_TEST_CACHE/bench/registry; run bench/make-workload-bases.sh)"
  else
    read -r nlayers mb < <(skopeo inspect --raw --tls-verify=false "docker://$img" |
      python3 -c 'import json,sys; l=json.load(sys.stdin)["layers"]; print(len(l), "%.1f" % (sum(x["size"] for x in l) / 1e6))')
    kiln_pull() { "$KILN" pull --insecure-registry "$REGISTRY" --store --root "$1" "$img"; }
    skopeo_umoci() {
      skopeo copy -q --src-tls-verify=false "docker://$img" "oci:$1/layout:img" &&
        umoci unpack --rootless --image "$1/layout:img" "$1/bundle"
    }
    kp=() su=()
    for i in $(seq 1 "$runs"); do
      drop; kp+=("$(t kiln_pull "$work/k$i")")
      paths=$(find "$work/k$i/layers" -mindepth 3 -path '*/tree/*' | wc -l)
      rm -rf "$work/k$i"
      mkdir -p "$work/s$i"
      drop; su+=("$(t skopeo_umoci "$work/s$i")")
      rm -rf "$work/s$i"
    done
    # From local blobs: one OCI layout (not timed), then extraction only.
    skopeo copy -q --src-tls-verify=false "docker://$img" "oci:$work/fat:img"
    mapfile -t layers < <(python3 -c '
import json, sys
d = sys.argv[1]
i = json.load(open(d + "/index.json"))["manifests"][0]["digest"].split(":")[1]
print("\n".join(d + "/blobs/sha256/" + l["digest"].split(":")[1] for l in json.load(open(d + "/blobs/sha256/" + i))["layers"]))' "$work/fat")
    kx=() ux=()
    extract_all() { local n=0 l; mkdir -p "$1"; for l in "${layers[@]}"; do "$B" extract "$l" "$1/l$n" || return 1; n=$((n + 1)); done; }
    for i in $(seq 1 "$runs"); do
      drop; kx+=("$(t extract_all "$work/x$i")")
      rm -rf "$work/x$i"
      drop; ux+=("$(t umoci unpack --rootless --image "$work/fat:img" "$work/u$i")")
      rm -rf "$work/u$i"
    done
    echo
    echo "## fat base, cold ($nlayers layers, $mb MB gzip, $paths paths in kiln's trees; load $(load))"
    echo
    echo "| what | median (s) | runs (s) |"
    echo "|---|---:|---|"
    echo "| \`kiln pull --store\` from docker-registry on 127.0.0.1 (download, gunzip, extract pipelined) | $(printf '%s\n' "${kp[@]}" | median) | ${kp[*]} |"
    echo "| \`skopeo copy docker:// oci:\` + \`umoci unpack --rootless\` | $(printf '%s\n' "${su[@]}" | median) | ${su[*]} |"
    echo "| kiln extractor on each layer blob from local disk (bench/store_bench.c extract) | $(printf '%s\n' "${kx[@]}" | median) | ${kx[*]} |"
    echo "| \`umoci unpack --rootless\` of the same local layout | $(printf '%s\n' "${ux[@]}" | median) | ${ux[*]} |"
  fi
fi

# --- pack: 1 GB mixed tree ----------------------------------------------------
if want pack; then
  python3 - "$work/tree" "$size_mb" <<'PY'
import os, random, sys
root, mb = sys.argv[1], int(sys.argv[2])
random.seed(1)
total, i = 0, 0
words = [bytes(random.choice(b"abcdefghij klmnop\n") for _ in range(64)) for _ in range(256)]
while total < mb << 20:
    d = os.path.join(root, "d%03d" % (i % 200)); os.makedirs(d, exist_ok=True)
    kind = i % 10
    if kind < 6:   n = random.randint(1, 16) << 10; data = b"".join(random.choice(words) for _ in range(n // 64))
    elif kind < 9: n = random.randint(64, 1024) << 10; data = b"".join(random.choice(words) for _ in range(n // 64))
    else:          n = random.randint(1, 8) << 20; data = os.urandom(n)
    open(os.path.join(d, "f%06d" % i), "wb").write(data); total += len(data); i += 1
PY
  files=$(find "$work/tree" -type f | wc -l)
  bytes=$(du -sb --apparent-size "$work/tree" | cut -f1)
  echo
  echo "## pack: $size_mb MB tree of mixed files ($files files: 60% 1-16 KB text, 30% 64 KB-1 MB text, 10% 1-8 MB random; load $(load))"
  echo
  echo "| tool | seconds | MB/s (input) | output / input |"
  echo "|---|---:|---:|---:|"
  # gzip default = ISA-L level 3; level 6 = zlib (the default before ISA-L)
  for cl in gzip:-1 gzip:6 zstd:-1; do
    c=${cl%:*} lv=${cl#*:}
    drop
    line=$("$B" pack "$work/tree" "$work/l.$c" "$c" "$lv")
    s=$(echo "$line" | awk '{print $2}')
    what=$c
    [ "$cl" = gzip:-1 ] && what="gzip default (ISA-L level 3)"
    [ "$cl" = gzip:6 ] && what="gzip level 6 (zlib)"
    echo "| kiln layer writer, $what (all cores; tar + diffID + blob digest in one pass) | $s |" \
      "$(awk -v b="$bytes" -v s="$s" 'BEGIN { printf "%.1f", b / s / 1e6 }') |" \
      "$(awk -v a="$(stat -c %s "$work/l.$c")" -v b="$bytes" 'BEGIN { printf "%.3f", a / b }') |"
    rm -f "$work/l.$c"
  done
  for z in gzip pigz; do
    drop
    s=$(t sh -c "tar -C '$work/tree' -cf - . | $z > '$work/t.$z'")
    echo "| \`tar \| $z\` | $s | $(awk -v b="$bytes" -v s="$s" 'BEGIN { printf "%.1f", b / s / 1e6 }') |" \
      "$(awk -v a="$(stat -c %s "$work/t.$z")" -v b="$bytes" 'BEGIN { printf "%.3f", a / b }') |"
    rm -f "$work/t.$z"
  done
  rm -rf "$work/tree"
fi

# --- huge: index stack load ---------------------------------------------------
if want huge; then
  img=$REGISTRY/library/huge:1
  if ! have_image huge:1; then
    echo; echo "## huge: skipped (no huge:1 in $KILN_TEST_CACHE/bench/registry)"
  else
    "$KILN" pull --insecure-registry "$REGISTRY" --store --root "$work/hs" "$img" >/dev/null 2>&1
    mapfile -t idx < <(skopeo inspect --config --raw --tls-verify=false "docker://$img" |
      python3 -c 'import json,sys; print("\n".join(sys.argv[1] + "/layers/sha256/" + d.split(":")[1] + "/index" for d in json.load(sys.stdin)["rootfs"]["diff_ids"]))' "$work/hs")
    drop
    cold=$("$B" load "${idx[@]}")
    warm=$("$B" load "${idx[@]}")
    echo
    echo "## huge base: index stack load (load $(load))"
    echo
    echo "| stack | result |"
    echo "|---|---|"
    echo "| all layers of huge:1, page cache dropped before the first open | $cold |"
    echo "| same again (page cache warm) | $warm |"
    for i in "${idx[@]}"; do
      echo "| one layer: $(basename "$(dirname "$i")" | cut -c1-12), $(stat -c %s "$i") bytes of index | $("$B" load "$i") |"
    done
    rm -rf "$work/hs"
  fi
fi

# --- bomb ----------------------------------------------------------------------
if want bomb && [ "$bomb" -gt 0 ]; then
  s=$(t python3 tests/store/mkbomb.py "$bomb" "$work/bomb.tar.gz")
  echo
  echo "## tar bomb: $bomb empty files in 1,000 directories ($(stat -c %s "$work/bomb.tar.gz") bytes gzip, generated in $s s; load $(load))"
  echo
  echo "| extraction | seconds | peak RSS (KB) | exit | result |"
  echo "|---|---:|---:|---:|---|"
  for lim in "" 2000000; do
    drop
    read -r sec kb rc < <(KILN_MAX_LAYER_ENTRIES=$lim rss "$B" extract "$work/bomb.tar.gz" "$work/xb")
    what="default limit (1,000,000 members)"
    [ -z "$lim" ] || what="KILN_MAX_LAYER_ENTRIES=$lim"
    echo "| $what | $sec | $kb | $rc | $(tr '|' '/' < "$work/rss.out" | head -c 300) |"
    rm -rf "$work/xb"
  done
  rm -f "$work/bomb.tar.gz"
fi
echo
echo "Load average at the end: $(load)."
