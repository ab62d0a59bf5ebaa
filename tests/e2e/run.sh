#!/usr/bin/env bash
# run.sh - kiln's end-to-end corpus: build each case with buildah and with
# `kiln build`, compare the two images with tests/tools/imgcompare, run the
# case's run-check on both. Prints TAP and a summary; exit 0 when all pass.
#
#   tests/e2e/run.sh [--kiln-only|--buildah-only] [--registry HOST:PORT]
#                    [--store DIR] [--work DIR] [--list] [CASE...]
#
#   CASE            a directory name under tests/e2e/cases (e.g. 01-run-shell, or
#                   just its number 01); default: every case
#   --buildah-only  build the buildah reference (cached) and run its run-check;
#                   no kiln build, no comparison
#   --kiln-only     build with kiln and run its run-check; no buildah, no comparison
#   --registry H:P  use this registry, the fixtures already pushed there
#                   (default: start one, push the fixtures, stop it at exit)
#   --store DIR     kiln store (--root) to use (default: a fresh one in the work dir)
#   --work DIR      keep outputs here: DIR/out/CASE.{buildah,kiln} (OCI layouts,
#                   tag img), DIR/logs/CASE.*.log (default: a temp dir, removed)
#   --kiln-user U   run `kiln build` as the existing plain user U (rootless;
#                   whether U has /etc/subuid ranges decides the ID-mapping mode);
#                   buildah and the checks still run as root
#   --list          print the case names and exit
#
# E2E_KILN_WRAP (words, e.g. "tests/tools/container-env docker --") runs
# `kiln build` under a launcher: the corpus in a default container's
# environment, where kiln picks ptrace isolation (build_ptrace.bats).
#
# Base images reach both builders as registry references on a loopback
# registry: --build-arg BASE=H:P/library/busybox:latest and
# --build-arg DEBIAN=H:P/library/debian:bookworm (the Dockerfiles use
# `ARG BASE` + `FROM $BASE`). kiln is called exactly as:
#   $KILN build --root STORE -f CASE/Dockerfile --build-arg BASE=... --build-arg DEBIAN=...
#       --insecure-registry H:P --oci-layout OUT:img --no-push [CASE/args...] CONTEXT
# buildah references are cached under $KILN_TEST_CACHE/e2e-buildah (default
# /var/cache/kiln-test) keyed by the case files, the prepared context, the
# base image digests and the buildah version. Needs root (buildah storage,
# chroot for run-checks, prepare scripts that setcap).
set -uo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KILN_SRC=$(cd "$E2E_DIR/../.." && pwd)
export KILN_SRC
# shellcheck source=../integration/helpers.bash
source "$KILN_SRC/tests/integration/helpers.bash"
IMGCOMPARE="$KILN_SRC/tests/tools/imgcompare"
RUNIMG="$E2E_DIR/lib/runimg.py"
CACHE="$KILN_TEST_CACHE/e2e-buildah"
BUILDAH_DRIVER=${E2E_BUILDAH_DRIVER:-overlay}
RECIPE=4 # bump when the way references are built changes

mode=both registry="" store="" work="" keep=0 list=0 kiln_user=""
cases=()
usage() { sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --kiln-only) mode=kiln; shift ;;
    --buildah-only) mode=buildah; shift ;;
    --registry) registry=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    --work) work=$2; keep=1; shift 2 ;;
    --kiln-user) kiln_user=$2; shift 2 ;;
    --list) list=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    *) cases+=("$1"); shift ;;
  esac
done

all_cases() { (cd "$E2E_DIR/cases" && for d in */; do [ -f "$d/Dockerfile" ] && echo "${d%/}"; done); }
if [ "$list" = 1 ]; then all_cases; exit 0; fi
if [ ${#cases[@]} -eq 0 ]; then
  mapfile -t cases < <(all_cases)
else
  resolved=()
  for c in "${cases[@]}"; do
    c=${c%/}; c=${c##*/}
    if [ -f "$E2E_DIR/cases/$c/Dockerfile" ]; then resolved+=("$c"); continue; fi
    m=$(cd "$E2E_DIR/cases" && ls -d "$c"-*/ 2>/dev/null | head -n1)
    [ -n "$m" ] || { echo "run.sh: no case '$c' in $E2E_DIR/cases" >&2; exit 2; }
    resolved+=("${m%/}")
  done
  cases=("${resolved[@]}")
fi

[ "$(id -u)" -eq 0 ] || { echo "run.sh: needs root (buildah storage, chroot run-checks, setcap in prepare scripts)" >&2; exit 2; }
for t in umoci skopeo python3; do command -v $t >/dev/null || { echo "run.sh: '$t' is not installed" >&2; exit 2; }; done
if [ "$mode" != kiln ]; then
  command -v buildah >/dev/null || { echo "run.sh: buildah is not installed (use --kiln-only)" >&2; exit 2; }
fi
if [ "$mode" != buildah ] && [ ! -x "$KILN" ]; then
  echo "run.sh: kiln binary '$KILN' not found (run make or set KILN)" >&2; exit 2
fi

if [ -z "$work" ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-e2e.XXXXXX")
fi
mkdir -p "$work/out" "$work/logs" "$work/ctx"
if [ -n "$kiln_user" ]; then
  id -u "$kiln_user" >/dev/null 2>&1 || { echo "run.sh: no user '$kiln_user'" >&2; exit 2; }
  # The user reads the contexts and case files and writes its outputs and store.
  chmod 0755 "$work" "$work/ctx"
  chown "$kiln_user:" "$work/out"
  [ -z "$store" ] || [ -d "$store" ] || { mkdir -p "$store" && chown "$kiln_user:" "$store"; }
fi
cleanup() {
  kiln_shell_cleanup
  [ "$keep" = 1 ] || rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "$registry" ]; then
  export REGISTRY=$registry
else
  registry_start >/dev/null || { echo "run.sh: cannot start a registry" >&2; exit 2; }
  fixtures_push all >/dev/null 2>&1 || { echo "run.sh: pushing the fixture images failed" >&2; exit 2; }
fi
export REGISTRY
BASE_REF="$REGISTRY/library/busybox:latest"
DEBIAN_REF="$REGISTRY/library/debian:bookworm"
if [ -z "$store" ]; then
  store="$work/kiln-store"
  mkdir -p "$store"
  [ -z "$kiln_user" ] || chown "$kiln_user:" "$store"
fi
export E2E_SECRET_ENV="secret-from-env"

# Digests of the fixture images: part of every cache key.
base_digests() {
  local n d
  for n in busybox debian; do
    d=$(fixtures_layout "$n" 2>/dev/null) || { echo "missing-$n"; continue; }
    sha256sum "$d/index.json" | cut -c1-64
  done
}
BASE_KEY=$(base_digests | tr '\n' ' ')
BUILDAH_VERSION=$(buildah --version 2>/dev/null || echo none)

# pax headers would carry atime/ctime/mtime (tar's --mtime only sets the
# ustar field), so they are deleted: the hash must not change between runs.
# tree_hash CASEDIR: the files that shape the build (not requires, expect,
# run-check, which only judge it); content, names, modes, links; not mtimes.
tree_hash() {
  tar -C "$1" --sort=name --numeric-owner --xattrs --xattrs-include='*' --mtime=@0 \
    --format=posix --pax-option=delete=atime,delete=ctime,delete=mtime \
    --owner=0 --group=0 --exclude=./context --exclude=./requires --exclude=./expect \
    --exclude=./run-check -cf - . 2>/dev/null | sha256sum | cut -c1-64
}
# ctx_hash DIR: like tree_hash but keeps owners (a context's owners matter).
ctx_hash() {
  tar -C "$1" --sort=name --numeric-owner --xattrs --xattrs-include='*' --mtime=@0 \
    --format=posix --pax-option=delete=atime,delete=ctime,delete=mtime \
    -cf - . 2>/dev/null | sha256sum | cut -c1-64
}

# read_expect FILE...: imgcompare arguments from expect files; the directives
# are `ignore GLOB`, `ignore-if-empty GLOB`, `ignore-owner GLOB`, `ignore-mode GLOB`, `ignore-field NAME` (anything after
# the argument is the reason) and `buildah-fails REASON`.
read_expect() {
  local f d a
  for f in "$@"; do
    [ -f "$f" ] || continue
    while read -r d a _; do
      case "$d" in
        ''|'#'*) ;;
        ignore|ignore-if-empty|ignore-field|ignore-owner|ignore-mode) printf '%s\n' "--$d" "$a" ;;
        buildah-fails) ;;
        *) echo "run.sh: $f: unknown directive '$d'" >&2; return 1 ;;
      esac
    done < "$f"
  done
}

buildah_fails_reason() {
  [ -f "$1/expect" ] || return 1
  sed -n 's/^buildah-fails[[:space:]]\{1,\}//p' "$1/expect" | head -n1 | grep .
}

# case_args CASEDIR CTX: extra builder arguments from CASEDIR/args (one or
# more words a line, $REGISTRY, $CASE and $CTX expanded).
case_args() {
  local cdir=$1 CTX=$2 CASE=$1 line
  [ -f "$cdir/args" ] || return 0
  while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    eval "set -- $line"
    printf '%s\n' "$@"
  done < "$cdir/args"
}

prepare_context() {
  local cdir=$1 ctx=$2
  rm -rf --one-file-system "$ctx"
  if [ -d "$cdir/context" ]; then
    cp -a "$cdir/context" "$ctx"
  else
    mkdir -p "$ctx"
  fi
  if [ -x "$cdir/prepare" ]; then
    (cd "$ctx" && "$cdir/prepare") || return 1
  fi
}

# The reference builder reads CASE/Dockerfile.reference when the case has one:
# an equivalent Dockerfile without syntax buildah 1.28 lacks (heredocs, --link,
# --exclude, --parents), so the comparison still checks kiln's result.
reference_dockerfile() {
  if [ -f "$1/Dockerfile.reference" ]; then echo "$1/Dockerfile.reference"; else echo "$1/Dockerfile"; fi
}

buildah_g() {
  buildah --root "$CACHE/storage" --runroot "$CACHE/runroot" --storage-driver="$BUILDAH_DRIVER" "$@"
}

# build_buildah CASE CASEDIR CTX LOG: ensure the cached reference; sets REF
# (DIR:img) and BUILDAH_CACHED.
build_buildah() {
  local name=$1 cdir=$2 ctx=$3 log=$4 key dir tmp args
  # The UTC day too: useradd writes it into /etc/shadow (50-debian-users),
  # so a reference from another day is not the same image.
  key=$(printf '%s\n' "$RECIPE" "$BUILDAH_VERSION" "$BASE_KEY" "$(tree_hash "$cdir")" \
    "$(ctx_hash "$ctx")" "$(date -u +%F)" | sha256sum | cut -c1-32)
  dir="$CACHE/images/$name-$key"
  REF="$dir:img"
  if [ -f "$dir/index.json" ]; then
    touch "$dir"
    BUILDAH_CACHED=1
    return 0
  fi
  BUILDAH_CACHED=0
  mkdir -p "$CACHE/images" "$CACHE/storage" "$CACHE/runroot"
  mapfile -t args < <(case_args "$cdir" "$ctx")
  # A docker-format build keeps its Docker-only config fields (OnBuild, Shell,
  # Healthcheck) only when pushed as a Docker v2s2 manifest; an OCI layout
  # holds that too.
  local pushfmt=() i
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
      --format=docker) pushfmt=(-f v2s2) ;;
      --format) [ "${args[i + 1]:-}" = docker ] && pushfmt=(-f v2s2) ;;
    esac
  done
  (
    flock 9
    # Containers of a build that was killed (they hold overlay mounts).
    buildah_g rm -a >/dev/null 2>&1
    # References nobody used for 14 days (another checkout may use other keys).
    find "$CACHE/images" -mindepth 1 -maxdepth 1 -name "$name-*" -mtime +14 \
      -exec rm -rf --one-file-system {} + 2>/dev/null
    tmp="$CACHE/images/.tmp-$name-$key"
    rm -rf --one-file-system "$tmp"
    # One commit at the end (no --layers): half the time per case, and only
    # the final filesystem and config are compared (layers are report-only).
    with_deadline 900 buildah_g bud --isolation=chroot --tls-verify=false --identity-label=false \
      --build-arg BASE="$BASE_REF" --build-arg DEBIAN="$DEBIAN_REF" \
      -f "$(reference_dockerfile "$cdir")" -t "e2e-$name" "${args[@]}" "$ctx" &&
      buildah_g push --quiet "${pushfmt[@]}" "e2e-$name" "oci:$tmp:img" &&
      mv "$tmp" "$dir"
    local rc=$?
    buildah_g rmi -f "e2e-$name" >/dev/null 2>&1
    buildah_g rmi --prune >/dev/null 2>&1
    exit $rc
  ) 9> "$KILN_TEST_CACHE/e2e-buildah.lock" > "$log" 2>&1
}

build_kiln() {
  local name=$1 cdir=$2 ctx=$3 log=$4 out=$5 args
  mapfile -t args < <(case_args "$cdir" "$ctx")
  local as=() wrap=()
  [ -z "$kiln_user" ] || as=(run_as "$kiln_user")
  # shellcheck disable=SC2206
  [ -z "${E2E_KILN_WRAP:-}" ] || wrap=($E2E_KILN_WRAP)
  rm -rf --one-file-system "$out"
  with_deadline "${E2E_KILN_TIMEOUT:-300}" "${as[@]}" "${wrap[@]}" "$KILN" build --root "$store" -f "$cdir/Dockerfile" \
    --build-arg BASE="$BASE_REF" --build-arg DEBIAN="$DEBIAN_REF" \
    --insecure-registry "$REGISTRY" --oci-layout "$out:img" --no-push \
    "${args[@]}" "$ctx" > "$log" 2>&1 < /dev/null
}

diag() { sed 's/^/# /'; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fs", b - a }'; }

n=0 passed=0 failed=0 t_all=$(now)
echo "1..${#cases[@]}"
for name in "${cases[@]}"; do
  n=$((n + 1))
  cdir="$E2E_DIR/cases/$name"
  ctx="$work/ctx/$name"
  notes=() problems=()
  if ! prepare_context "$cdir" "$ctx" > "$work/logs/$name.prepare.log" 2>&1; then
    echo "not ok $n - $name"
    { echo "preparing the context failed:"; tail -n 20 "$work/logs/$name.prepare.log"; } | diag
    failed=$((failed + 1)); continue
  fi
  ref="" kout="$work/out/$name.kiln"
  reason=$(buildah_fails_reason "$cdir") || reason=""
  if [ "$mode" != kiln ]; then
    t0=$(now)
    if [ -n "$reason" ]; then
      notes+=("buildah reference skipped: $reason")
    elif build_buildah "$name" "$cdir" "$ctx" "$work/logs/$name.buildah.log"; then
      ref=$REF
      notes+=("buildah $(secs "$t0" "$(now)")$([ "$BUILDAH_CACHED" = 1 ] && echo ' cached')$([ -f "$cdir/Dockerfile.reference" ] && echo ' (from Dockerfile.reference)')")
      [ "$keep" = 1 ] && ln -sfn "${ref%:img}" "$work/out/$name.buildah"
    else
      problems+=("buildah build failed (if buildah cannot build this, add 'buildah-fails REASON' to expect):")
      problems+=("$(tail -n 15 "$work/logs/$name.buildah.log")")
      ref=""
    fi
  fi
  kiln_ok=0
  if [ "$mode" != buildah ]; then
    # A fresh context for kiln: buildah 1.28 writes a RUN --mount=type=bind,rw
    # step's changes back into the context (43-mount-bind), which Docker and
    # kiln discard.
    if [ "$mode" = both ] && ! prepare_context "$cdir" "$ctx" >> "$work/logs/$name.prepare.log" 2>&1; then
      problems+=("preparing the context again for kiln failed")
    fi
    t0=$(now)
    build_kiln "$name" "$cdir" "$ctx" "$work/logs/$name.kiln.log" "$kout"
    krc=$?
    if [ "$krc" = 0 ]; then
      kiln_ok=1
      notes+=("kiln $(secs "$t0" "$(now)")")
    else
      problems+=("kiln build failed (status $krc): $KILN build ... (log $work/logs/$name.kiln.log):")
      # a hang report (status 124) is read whole
      problems+=("$(tail -n "$([ "$krc" = 124 ] && echo 200 || echo 15)" "$work/logs/$name.kiln.log")")
    fi
  fi
  if [ "$mode" = both ] && [ -n "$ref" ] && [ "$kiln_ok" = 1 ]; then
    mapfile -t cmpargs < <(read_expect "$E2E_DIR/expect.common" "$cdir/expect")
    if ! out=$("$IMGCOMPARE" "${cmpargs[@]}" "$ref" "$kout:img" 2>&1); then
      problems+=("images differ (A=buildah, B=kiln):" "$out")
    elif [ -n "$out" ]; then
      notes+=("$out")
    fi
  fi
  if [ -f "$cdir/run-check" ]; then
    for img in ${ref:+buildah:$ref} $([ "$kiln_ok" = 1 ] && echo "kiln:$kout:img"); do
      if ! out=$("$RUNIMG" "$cdir/run-check" "${img#*:}" 2>&1); then
        problems+=("run-check failed on the ${img%%:*} image:" "$out")
      fi
    done
  fi
  if [ ${#problems[@]} -eq 0 ]; then
    echo "ok $n - $name"
    passed=$((passed + 1))
  else
    echo "not ok $n - $name"
    printf '%s\n' "${problems[@]}" | diag
    failed=$((failed + 1))
  fi
  [ ${#notes[@]} -eq 0 ] || printf '%s\n' "${notes[@]}" | diag
done
echo "# $passed passed, $failed failed, ${#cases[@]} cases in $(secs "$t_all" "$(now)") (mode: $mode)"
[ "$failed" -eq 0 ]
