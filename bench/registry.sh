#!/usr/bin/env bash
# registry.sh - pull and push of a 3-layer image over loopback: kiln vs skopeo.
#
#   bench/registry.sh [SIZE_MB]     (default 300; results to $BENCH_OUT, default bench/results/registry.md)
#
# Builds a 3-layer OCI layout of SIZE_MB of random data (gzip layers; made
# with tar, gzip and python3, not kiln), starts Debian's docker-registry on
# 127.0.0.1 (tests/integration/helpers.bash), pushes it once with skopeo, then
# times in the same run: `kiln pull` vs `skopeo copy docker:// oci:` and
# `kiln push` vs `skopeo copy oci: docker://` (fresh repositories each time).
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-300}
out=${BENCH_OUT:-bench/results/registry.md}
mkdir -p "$(dirname "$out")"
KILN=${KILN:-$PWD/kiln}
work=$(mktemp -d)
export BATS_TEST_TMPDIR=$work BATS_FILE_TMPDIR=$work
# shellcheck source=/dev/null
source tests/integration/helpers.bash
cleanup() { registry_stop_all >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

mk_image() { # DIR SIZE_MB
  local dir=$1 mb=$2 per=$(( $2 / 3 ))
  mkdir -p "$dir/blobs/sha256" "$work/src"
  local layers=()
  for i in 1 2 3; do
    rm -rf "$work/src/l$i"; mkdir -p "$work/src/l$i/data$i"
    for j in $(seq 1 8); do
      head -c $(( per * 1024 * 1024 / 8 )) /dev/urandom > "$work/src/l$i/data$i/f$j"
    done
    tar -C "$work/src/l$i" --sort=name --mtime=@0 --owner=0 --group=0 -cf "$work/l$i.tar" .
    gzip -1 -n -c "$work/l$i.tar" > "$work/l$i.tgz"
    layers+=("$(sha256sum < "$work/l$i.tgz" | cut -d' ' -f1) $(stat -c %s "$work/l$i.tgz") $(sha256sum < "$work/l$i.tar" | cut -d' ' -f1)")
    cp "$work/l$i.tgz" "$dir/blobs/sha256/$(sha256sum < "$work/l$i.tgz" | cut -d' ' -f1)"
    rm -f "$work/l$i.tar" "$work/l$i.tgz"
  done
  python3 - "$dir" "${layers[@]}" <<'PY'
import hashlib, json, sys, os
d = sys.argv[1]
ls = [l.split() for l in sys.argv[2:]]
def put(b):
    h = hashlib.sha256(b).hexdigest()
    open(os.path.join(d, "blobs/sha256", h), "wb").write(b)
    return "sha256:" + h, len(b)
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + l[2] for l in ls]}}).encode()
cd, cs = put(cfg)
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + l[0],
                            "size": int(l[1])} for l in ls]}).encode()
md, ms = put(m)
open(os.path.join(d, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
open(os.path.join(d, "index.json"), "w").write(json.dumps({"schemaVersion": 2, "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
     "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}))
PY
}

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); awk -v a="$s" -v b="$e" 'BEGIN { print b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

mk_image "$work/img" "$size"
registry_start >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$work/img:bench" "docker://$REGISTRY/bench/src:1"

kp=$(t "$KILN" pull --insecure-registry "$REGISTRY" "$REGISTRY/bench/src:1" --oci-layout "$work/kp:1")
sp=$(t skopeo copy --src-tls-verify=false "docker://$REGISTRY/bench/src:1" "oci:$work/sp:1")
# Sanity: kiln's layout has the registry's manifest and skopeo accepts every blob.
[ "$(skopeo inspect --raw "oci:$work/kp:1" | sha256sum)" = "$(skopeo inspect --raw "oci:$work/sp:1" | sha256sum)" ]
skopeo copy -q "oci:$work/kp:1" "oci:$work/kpv:1"
rm -rf "$work/kpv"
# Pushes go to fresh, empty registries: skopeo's blob-info cache would
# otherwise mount the blobs it saw in bench/src instead of uploading them.
registry_start >/dev/null
kpu=$(t "$KILN" push --insecure-registry "$REGISTRY" --oci-layout "$work/img:bench" "$REGISTRY/bench/kiln:1")
[ "$(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/bench/kiln:1" | sha256sum)" = \
  "$(skopeo inspect --raw "oci:$work/img:bench" | sha256sum)" ]
registry_start >/dev/null
spu=$(t skopeo copy --dest-tls-verify=false "oci:$work/img:bench" "docker://$REGISTRY/bench/skopeo:1")

{
  echo "# Registry transfer benchmark"
  echo
  echo "Command: \`bench/registry.sh $size\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, docker-registry on 127.0.0.1;"
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Image: 3 gzip layers of random data, $size MB total."
  echo
  echo "| operation | kiln (s) | skopeo copy (s) | kiln / skopeo |"
  echo "|---|---|---|---|"
  printf '| pull | %.2f | %.2f | %.2f |\n' "$kp" "$sp" "$(ratio "$kp" "$sp")"
  printf '| push | %.2f | %.2f | %.2f |\n' "$kpu" "$spu" "$(ratio "$kpu" "$spu")"
} | tee "$out"
