#!/usr/bin/env bash
# bench/store.sh - layer store benchmarks (figures go to bench/results/store.md).
#   bench/store.sh [--size-mb N] [--index-entries N] [--bomb N]
# 1. extraction of the Debian fixture base layer (cached OCI layout from
#    scripts/make-base-images.sh) cold: kiln's extractor vs `skopeo copy`
#    (oci -> oci) + `umoci unpack --rootless` in the same run;
# 2. packing a generated tree of mixed files (N MB, default 1024): kiln gzip
#    (all cores), kiln zstd (all cores), vs `tar | gzip` and `tar | pigz`;
# 3. load time of an index stack: a synthetic 166,000-entry index (the size
#    of the `huge` base) plus the Debian base index.
# 4. with --bomb N: extraction of a tar bomb of N empty files (the issue's
#    million-file case: --bomb 1000000).
# Caches are dropped between cold runs when running as root.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=1024 entries=166000 bomb=0
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mb) size_mb=$2; shift 2 ;;
    --index-entries) entries=$2; shift 2 ;;
    --bomb) bomb=$2; shift 2 ;;
    *) echo "store.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
make -s -j2 build/libkiln.a
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-store.XXXXXX")
trap 'rm -rf "$work"' EXIT
cc -std=gnu11 -O2 -D_GNU_SOURCE -Isrc bench/store_bench.c build/libkiln.a \
  $(pkg-config --libs libarchive yajl libcrypto zlib libzstd) -pthread -o "$work/store_bench"
B=$work/store_bench
drop() { if [ "$(id -u)" = 0 ]; then sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; fi; }
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }

echo "# store benchmarks, $(date -u +%FT%TZ), $(nproc) cores"
layout=$(scripts/make-base-images.sh --cache /var/cache/kiln-test --print-layout debian 2>/dev/null || true)
if [ -n "$layout" ] && [ -d "$layout" ]; then
  blob=$(ls -S "$layout"/blobs/sha256/* | head -1)
  echo "## extraction: debian minbase layer ($(du -h "$blob" | cut -f1) compressed)"
  drop; echo "kiln extract: $(t "$B" extract "$blob" "$work/x1") s"
  "$B" extract "$blob" "$work/x1b" | sed 's/^/  /'
  tag=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["manifests"][0]; print(m.get("annotations",{}).get("org.opencontainers.image.ref.name","latest"))' "$layout/index.json")
  drop; echo "skopeo copy + umoci unpack: $(t sh -c "skopeo copy -q oci:$layout:$tag oci:$work/copy:$tag && umoci unpack --rootless --image $work/copy:$tag $work/bundle") s"
else
  echo "## extraction: skipped (no cached debian fixture layout; run scripts/make-base-images.sh)"
fi

echo "## packing: ${size_mb} MB of mixed files"
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
for c in gzip zstd; do drop; "$B" pack "$work/tree" "$work/l.$c" "$c"; done
drop; echo "tar | gzip: $(t sh -c "tar -C $work/tree -cf - . | gzip > $work/t.gz") s"
drop; echo "tar | pigz: $(t sh -c "tar -C $work/tree -cf - . | pigz > $work/t.pgz") s"
rm -rf "$work/tree"

echo "## index stack load"
"$B" synth "$entries" "$work/i1"
if [ -d "$work/x1" ]; then "$B" load "$work/i1/index" "$work/x1/index"; fi
"$B" load "$work/i1/index"

if [ "$bomb" -gt 0 ]; then
  echo "## tar bomb: $bomb empty files"
  mkdir -p "$work/bomb"
  KILN_BOMB_FILES=$bomb python3 tests/store/mktars.py "$work/bomb" >/dev/null
  drop; /usr/bin/time -f "  peak RSS %M KB" "$B" extract "$work/bomb/bomb.tar.gz" "$work/xb"
fi
