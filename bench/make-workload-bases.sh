#!/usr/bin/env bash
# make-workload-bases.sh - build the benchmark bases `fat` and `huge` with
# buildah (not kiln) and push them to a local registry.
#
#   bench/make-workload-bases.sh --push REGISTRY [--workloads DIR] [fat|huge|all]
#
# REGISTRY is host:port of a plain-HTTP test registry (e.g. from
# tests/integration/helpers.bash's registry_start). The debian fixture is pushed
# first with scripts/make-base-images.sh. Dockerfiles come from
# DIR/bases/<name>.Dockerfile (default /work/shared/workloads or
# $KILN_WORKLOADS) with REGISTRY substituted. Builds run as root with
# `buildah --storage-driver=overlay bud --isolation=chroot`; `fat` downloads
# build-essential from the Debian archive (several minutes the first time),
# `huge` adds 150,000 files. Tags: REGISTRY/library/fat:1, REGISTRY/library/huge:1.
set -euo pipefail
cd "$(dirname "$0")/.."

push="" what=all workloads=${KILN_WORKLOADS:-/work/shared/workloads}
die() { echo "make-workload-bases: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --push) push=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    fat|huge|all) what=$1; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "make-workload-bases: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -n "$push" ] || die "--push REGISTRY is required"
[ "$(id -u)" -eq 0 ] || die "run as root (buildah overlay storage, chroot isolation)"
command -v buildah >/dev/null || die "'buildah' is not installed"
[ -d "$workloads/bases" ] || die "no workloads at '$workloads/bases'"

case "$what" in
  all) names=(fat huge) ;;
  *) names=("$what") ;;
esac

scripts/make-base-images.sh --push "$push" debian >&2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bases.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

B=(buildah --storage-driver=overlay)
for n in "${names[@]}"; do
  df="$workloads/bases/$n.Dockerfile"
  [ -f "$df" ] || die "missing '$df'"
  sed "s#REGISTRY#$push#g" "$df" > "$tmp/$n.Dockerfile"
  mkdir -p "$tmp/ctx-$n"
  ref="$push/library/$n:1"
  t0=$(date +%s)
  "${B[@]}" bud --isolation=chroot --tls-verify=false --layers=false \
    -f "$tmp/$n.Dockerfile" -t "$ref" "$tmp/ctx-$n" >&2
  t1=$(date +%s)
  "${B[@]}" push --tls-verify=false "$ref" "docker://$ref" >&2
  t2=$(date +%s)
  echo "$n: built in $((t1 - t0))s, pushed in $((t2 - t1))s: $ref"
done
