#!/usr/bin/env bash
# cache-mounts.sh - an `apt-get install` step rebuilt from an empty store,
# with and without its RUN --mount=type=cache,target=/var/cache/apt directory
# (the downloaded .debs, kept: docker-clean removed) imported from
# --cache-mounts-repo.
#
#   bench/cache-mounts.sh [RUNS] [PACKAGES...]   (defaults 3, "git curl")
#
# Needs deb.debian.org (the step downloads packages) and the Debian fixture
# base (scripts/make-base-images.sh), pushed to Debian's docker-registry on
# 127.0.0.1 (tests/integration/helpers.bash). Not part of `make test`.
# A seed build fills the repository once; then each run builds in two new
# empty stores, one without --cache-mounts-repo (every .deb downloaded) and
# one with it (the entry imported, apt finds the .debs and the lists), in
# alternating order. --no-push: only the build and, for the second, the
# import and the export (apt rewrites pkgcache.bin, so the directory always
# changes) are timed; the import and export seconds kiln reports are
# printed too. The same Dockerfile is also built by buildah 1.28 (`bud`,
# isolation chroot, a new storage per run: its cache mount starts empty as on
# a fresh CI runner; buildah has no way to export one), in the same
# alternation, when buildah is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shift || true
pkgs=${*:-git curl}
KILN=${KILN:-$PWD/kiln}
work=$(mktemp -d)
export BATS_TEST_TMPDIR=$work BATS_FILE_TMPDIR=$work
# shellcheck source=/dev/null
source tests/integration/helpers.bash
bclean() { # DIR: a buildah storage, removed with its overlay mounts
  [ -d "$1" ] || return 0
  buildah --root "$1/root" --runroot "$1/runroot" --storage-driver=overlay rmi -a -f > /dev/null 2>&1 || true
  umount -R "$1/root/overlay" 2> /dev/null || true
  rm -rf "$1"
}
cleanup() { registry_stop_all >/dev/null 2>&1 || true; for d in "$work"/bah*; do bclean "$d"; done; rm -rf "$work"; }
trap cleanup EXIT INT TERM

t() { local s e; s=$(date +%s.%N); "$@" > "$work/last.log" 2>&1 || { tail -20 "$work/last.log" >&2; return 1; }; e=$(date +%s.%N); awk -v a="$s" -v b="$e" 'BEGIN { printf "%.2f\n", b - a }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

debian_reachable || { echo "cache-mounts.sh: deb.debian.org is not reachable" >&2; exit 2; }
[ "$(id -u)" -ne 0 ] || chmod 0666 /dev/fuse
registry_start >/dev/null
fixtures_push debian >/dev/null 2>&1
mkdir -p "$work/ctx"
cat > "$work/ctx/Dockerfile" <<DF
ARG BASE
FROM \$BASE
RUN rm -f /etc/apt/apt.conf.d/docker-clean && echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' > /etc/apt/apt.conf.d/keep-cache
RUN --mount=type=cache,id=apt-cache,target=/var/cache/apt,sharing=locked \\
    apt-get update && apt-get install -y --no-install-recommends $pkgs
DF
build() { # STORE [FLAGS...]
  local st=$1
  shift
  "$KILN" build --root "$st" --insecure-registry "$REGISTRY" --build-arg "BASE=$DEBIAN_IMAGE" --no-push \
    --progress=plain "$@" "$work/ctx"
}
bbuild() { # DIR: buildah bud in a new storage under DIR
  buildah --root "$1/root" --runroot "$1/runroot" --storage-driver=overlay bud --isolation=chroot \
    --tls-verify=false --layers=false --build-arg "BASE=$DEBIAN_IMAGE" -t cache-mounts-bench "$work/ctx"
}
have_buildah=false
[ "$(id -u)" -ne 0 ] || ! command -v buildah > /dev/null || have_buildah=true
repo="$REGISTRY/bench/cache-mounts"
seed=$(t build "$work/seed" --cache-mounts-repo "$repo")
grep -q "exported to" "$work/last.log"
size=$(grep -o "apt-cache': exported to [^ ]* ([^,]*, [0-9]* entries, [0-9]* bytes)" "$work/last.log" | grep -o '[0-9]* bytes' || true)
rm -rf "$work/seed"
without=() with=() bah=()
for i in $(seq 1 "$runs"); do
  if [ $((i % 2)) -eq 1 ]; then
    without+=("$(t build "$work/a$i")")
    with+=("$(t build "$work/b$i" --cache-mounts-repo "$repo")")
    cp "$work/last.log" "$work/w$i.log"
  else
    with+=("$(t build "$work/b$i" --cache-mounts-repo "$repo")")
    cp "$work/last.log" "$work/w$i.log"
    without+=("$(t build "$work/a$i")")
  fi
  grep -q "imported $repo" "$work/w$i.log"
  rm -rf "$work/a$i" "$work/b$i"
  if $have_buildah; then
    bah+=("$(t bbuild "$work/bah$i")")
    bclean "$work/bah$i"
  fi
done
mw=$(printf '%s\n' "${without[@]}" | median)
mc=$(printf '%s\n' "${with[@]}" | median)
echo "apt-get install -y $pkgs from an empty store, $runs runs, load $(cut -d' ' -f1 /proc/loadavg)"
echo "  seed build (exports the cache mounts): ${seed} s; apt cache entry ${size:-?}"
echo "  without --cache-mounts-repo: ${without[*]} s (median $mw)"
echo "  with --cache-mounts-repo:    ${with[*]} s (median $mc)"
if $have_buildah; then
  mb=$(printf '%s\n' "${bah[@]}" | median)
  echo "  buildah bud, new storage:     ${bah[*]} s (median $mb)"
  awk -v a="$mc" -v b="$mb" 'BEGIN { printf "  ratio kiln with / buildah: %.2f\n", a / b }'
fi
echo "  import: $(cat "$work"/w*.log | grep -o "imported [^)]*) in [0-9.]* s" | grep -o '[0-9.]* s$' | tr '\n' ' ')"
echo "  export: $(cat "$work"/w*.log | grep -o "exported to [^)]*) in [0-9.]* s" | grep -o '[0-9.]* s$' | tr '\n' ' ')"
awk -v a="$mc" -v b="$mw" 'BEGIN { printf "  ratio with/without: %.2f\n", a / b }'
