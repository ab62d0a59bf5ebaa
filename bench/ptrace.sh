#!/usr/bin/env bash
# bench/ptrace.sh - kiln's ptrace isolation (issue 15) against the userns+FUSE
# mode and buildah bud, in one run: the workloads w1, w3 and w5 warm (base
# in the store, --no-cache, the output removed) and the per-step cost of an
# empty RUN (a Dockerfile of 20 `RUN true` against one without RUN steps on
# debian:bookworm: (t20 - t0) / 20), medians of RUNS builds, the three
# builders interleaved (ptrace, userns, buildah, ptrace, ...) so that load
# drift hits all of them; also (t20 - t1) / 19 (20 against 1 `RUN true`),
# which leaves out the first RUN's cost (under ptrace: making the stage's
# tree, docs/design/overlay-dir.md). Optionally the ptrace rows again inside
# build/tools/container-env "docker" (root, Docker's capabilities and
# seccomp allow-list) and "restricted" (uid 1000, no capabilities,
# no_new_privs; its store, output and HOME owned by uid 1000): the real
# target environments, where auto picks ptrace.
#
#   bench/ptrace.sh [RUNS] [ROW...]     (as root; RUNS default 3;
#                                        rows default w1 w3 w5 empty)
#   KILN=path/to/kiln          the binary (default ./kiln)
#   KILN_BEFORE=path/to/kiln   also its ptrace rows, interleaved with the
#                              others (before/after a change, same load)
#   PTRACE_ENVS="docker restricted"   also those environments (default none)
#   PTRACE_WORKDIR=DIR         where the stores, buildah's storage and the
#                              outputs live (default /var/tmp): e.g. a
#                              journaled ext4 mounted from a loop file, to
#                              measure away from this machine's root file
#                              system (ext4 without a journal, slow to make
#                              inodes after removals)
#
# Not a timed test. The bases come from the persistent bench registry
# ($KILN_TEST_CACHE/bench/registry: fat:1, debian:bookworm; made by
# bench/make-workload-bases.sh --push REGISTRY all, or bench/workloads.sh);
# w5 fetches from deb.debian.org. buildah as root: `buildah
# --storage-driver=overlay bud --isolation=chroot`, as bench/workloads.sh.
# Prints a Markdown table with ptrace/userns and ptrace/buildah ratios.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-3}
[ $# -gt 0 ] && shift
ROWS=("$@"); [ ${#ROWS[@]} -gt 0 ] || ROWS=(w1 w3 w5 empty)
[ "$(id -u)" = 0 ] || { echo "bench/ptrace.sh: run as root" >&2; exit 1; }
KILN=$(readlink -f "${KILN:-$SRC/kiln}")
[ -x "$KILN" ] || { echo "bench/ptrace.sh: no kiln binary at $KILN (make -j2)" >&2; exit 1; }
BEFORE=""
[ -z "${KILN_BEFORE:-}" ] || BEFORE=$(readlink -f "$KILN_BEFORE")
CENV=$SRC/build/tools/container-env
ENVS=(${PTRACE_ENVS:-})
[ ${#ENVS[@]} -eq 0 ] || [ -x "$CENV" ] || { echo "bench/ptrace.sh: no $CENV (make unit-bins)" >&2; exit 1; }
command -v buildah >/dev/null || { echo "bench/ptrace.sh: buildah is not installed" >&2; exit 1; }
workloads_dir=${KILN_WORKLOADS:-/work/shared/workloads}
export KILN KILN_POLICY_DIR=${KILN_POLICY_DIR:-$SRC/policies}
# shellcheck source=tests/integration/helpers.bash
source "$SRC/tests/integration/helpers.bash"
CACHE=$KILN_TEST_CACHE/bench
registry_start --root "$CACHE/registry" >&2
fuse_dev_open_for_all
have_image() { skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/library/$1" >/dev/null 2>&1; }
for img in fat:1 debian:bookworm; do
  have_image "$img" || "$SRC/bench/make-workload-bases.sh" --push "$REGISTRY" all >&2
done
W=$(mktemp -d "${PTRACE_WORKDIR:-/var/tmp}/kiln-ptrace.XXXXXX")
chmod 0755 "$W"
BR=(buildah --root "$W/buildah/root" --runroot "$W/buildah/runroot" --storage-driver=overlay)
cleanup() {
  set +e
  "${BR[@]}" rmi -a -f >/dev/null 2>&1
  awk -v d="$W" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf --one-file-system "$W"
  kiln_shell_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wl_dir() {
  case "$1" in
    w1) echo w1-small-steps ;; w3) echo w3-big-write ;; w5) echo w5-cached-rebuild ;;
    *) echo "bench/ptrace.sh: unknown row '$1'" >&2; exit 2 ;;
  esac
}
# prepare NAME -> context directory, Dockerfile at $W/Dockerfile.NAME
prepare() {
  local name=$1 ctx="$W/ctx-$1"
  rm -rf "$ctx"; mkdir -p "$ctx"
  case "$name" in
    e0) printf 'FROM %s/library/debian:bookworm\nLABEL bench=empty\n' "$REGISTRY" > "$W/Dockerfile.$name" ;;
    e1|e20)
      { printf 'FROM %s/library/debian:bookworm\n' "$REGISTRY"
        for _ in $(seq "${name#e}"); do echo 'RUN true'; done
        echo 'LABEL bench=empty'; } > "$W/Dockerfile.$name" ;;
    *)
      local src="$workloads_dir/$(wl_dir "$name")"
      cp -a "$src/." "$ctx/"; rm -f "$ctx/Dockerfile"
      sed "s#REGISTRY#$REGISTRY#g" "$src/Dockerfile" > "$W/Dockerfile.$name" ;;
  esac
  chmod -R a+rX "$ctx" "$W/Dockerfile.$name"
  echo "$ctx"
}

# elapsed LOG CMD... -> seconds on stdout (exits on failure, log shown)
elapsed() {
  local logf=$1 t0 t1
  shift
  t0=$(date +%s.%N)
  if ! "$@" > "$logf" 2>&1; then
    echo "bench/ptrace.sh: failed: $*" >&2; tail -n 20 "$logf" >&2; exit 1
  fi
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}
# build MODE NAME CTX -> seconds. MODE: ptrace, userns (host), buildah,
# docker or restricted (ptrace in container-env).
build() {
  local mode=$1 name=$2 ctx=$3 out="$W/out-$1"
  rm -rf --one-file-system "$out"
  case "$mode" in
    buildah)
      "${BR[@]}" rmi -f "localhost/bench-$name:latest" >/dev/null 2>&1 || true
      elapsed "$W/log" "${BR[@]}" bud --isolation=chroot --tls-verify=false -f "$W/Dockerfile.$name" \
        -t "localhost/bench-$name:latest" "$ctx" ;;
    before)
      elapsed "$W/log" "$BEFORE" build --isolation ptrace --progress plain --root "$W/store-$mode" \
        --insecure-registry "$REGISTRY" --no-push --no-cache --oci-layout "$out:bench" -f "$W/Dockerfile.$name" "$ctx" ;;
    ptrace|userns)
      elapsed "$W/log" "$KILN" build --isolation "$mode" --progress plain --root "$W/store-$mode" \
        --insecure-registry "$REGISTRY" --no-push --no-cache --oci-layout "$out:bench" -f "$W/Dockerfile.$name" "$ctx" ;;
    docker|restricted)
      mkdir -p "$out"
      [ "$mode" = docker ] || chown 1000:1000 "$out"
      elapsed "$W/log" "$CENV" "$mode" -- env HOME="$W/home-$mode" "$KILN" build --isolation ptrace --progress plain \
        --root "$W/store-$mode" --insecure-registry "$REGISTRY" --no-push --no-cache --oci-layout "$out/o:bench" \
        -f "$W/Dockerfile.$name" "$ctx" ;;
  esac
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

MODES=(ptrace userns buildah)
[ -z "$BEFORE" ] || MODES+=(before)
MODES+=("${ENVS[@]}")
for m in docker restricted; do
  mkdir -p "$W/store-$m" "$W/home-$m"
  [ "$m" = docker ] || chown 1000:1000 "$W/store-$m" "$W/home-$m"
done
declare -A T   # T[name,mode] = "t1 t2 ..."
names=()
for r in "${ROWS[@]}"; do
  if [ "$r" = empty ]; then names+=(e0 e1 e20); else names+=("$r"); fi
done
for name in "${names[@]}"; do
  ctx=$(prepare "$name")
  for m in "${MODES[@]}"; do build "$m" "$name" "$ctx" > /dev/null; done   # warm-up: the base in each store
  for _ in $(seq 1 "$RUNS"); do
    for m in "${MODES[@]}"; do
      t=$(build "$m" "$name" "$ctx")
      T[$name,$m]="${T[$name,$m]:-} $t"
      echo "  $name $m $t (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    done
  done
done

med() { printf '%s\n' ${T[$1,$2]} | median; }
fmt_row() { # label m_ptrace m_userns m_buildah [env medians...]
  local label=$1 p=$2 u=$3 b=$4
  shift 4
  local extra=""
  for v in "$@"; do extra="$extra $(printf '%.3f' "$v") |"; done
  awk -v l="$label" -v p="$p" -v u="$u" -v b="$b" -v x="$extra" \
    'BEGIN { printf "| %s | %.3f | %.3f | %.3f | %.2f | %.2f |%s\n", l, p, u, b, p / u, p / b, x }'
}
hdr="| row | ptrace s | userns s | buildah s | ptrace/userns | ptrace/buildah |"
sep="| --- | --- | --- | --- | --- | --- |"
[ -z "$BEFORE" ] || { hdr="$hdr ptrace before s |"; sep="$sep --- |"; }
for e in "${ENVS[@]}"; do hdr="$hdr ptrace in $e s |"; sep="$sep --- |"; done
echo "$hdr"
echo "$sep"
for r in "${ROWS[@]}"; do
  if [ "$r" = empty ]; then
    args=()
    for m in "${MODES[@]}"; do
      args+=("$(awk -v a="$(med e0 "$m")" -v b="$(med e20 "$m")" 'BEGIN { printf "%.4f", (b - a) / 20 }')")
    done
    fmt_row "empty RUN, per step ((t20 - t0) / 20)" "${args[@]}"
    args=()
    for m in "${MODES[@]}"; do
      args+=("$(awk -v a="$(med e1 "$m")" -v b="$(med e20 "$m")" 'BEGIN { printf "%.4f", (b - a) / 19 }')")
    done
    fmt_row "empty RUN after the first ((t20 - t1) / 19)" "${args[@]}"
    args=(); for m in "${MODES[@]}"; do args+=("$(med e0 "$m")"); done
    fmt_row "no RUN (t0)" "${args[@]}"
  else
    args=(); for m in "${MODES[@]}"; do args+=("$(med "$r" "$m")"); done
    fmt_row "$r warm" "${args[@]}"
  fi
done
echo
echo "medians of $RUNS warm builds (--no-cache, base in the store), interleaved; kiln $KILN" \
  "($(cd "$SRC" && git rev-parse --short HEAD 2>/dev/null || echo ?)), buildah $(buildah --version | awk '{print $3}');" \
  "$(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
[ -z "$BEFORE" ] || echo "ptrace before: $BEFORE"
