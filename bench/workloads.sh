#!/usr/bin/env bash
# workloads.sh - run the benchmark workloads w1-w5 with kiln and with buildah in
# the same run and print a Markdown table of seconds and kiln/buildah ratios.
#
#   bench/workloads.sh [--workload wN]... [--as root|user|both] [--runs N]
#                      [--out FILE] [--workloads DIR] [--logs DIR]
#
# Rows per workload and identity (root, or a plain user with subuid ranges):
#   cold   empty kiln store / fresh buildah storage (base pulled from the registry)
#   warm   base already pulled: a second build from the same state minus the
#          first build's output (kiln: `kiln prune` drops the built layers and
#          keeps the base; buildah: `buildah rmi` of the built image)
#          (kiln with --no-cache: its build cache would otherwise answer every step;
#          buildah runs without --layers, so neither builder caches steps)
# w5 instead: cold, then `rebuild` with nothing changed, then `rebuild-1` with
# one source file changed (local caches: kiln's build cache, buildah --layers),
# then `regcache`: a fresh store/storage (a new CI runner) whose only cache is
# the registry one (kiln --cache-repo, buildah --cache-from; both builders push
# it with --cache-repo / --cache-to during the first three rows).
#
# kiln writes its result as an OCI layout (--oci-layout: compressed layers);
# buildah bud leaves an uncompressed image in its storage, so each buildah row
# is also timed with `buildah push IMAGE oci:DIR` added (the same artifact as
# kiln's): columns "buildah" and "buildah + push to OCI layout".
# buildah as root: `buildah --storage-driver=overlay bud --isolation=chroot` with
# its own --root/--runroot; as the user: its rootless default storage in the
# user's home, `--isolation=chroot` (OCI isolation fails on this machine).
# The user (kilnbench) is made with tests/integration/helpers.bash's
# test_user_create --subuid; /dev/fuse is opened for all (mode 0666).
#
# The bases (debian, fat, huge) live in a persistent registry root under
# $KILN_TEST_CACHE/bench/registry, built once with bench/make-workload-bases.sh;
# a registry on a random loopback port serves it for the run. w4's context
# (200 dirs x 100 files of 1-20 KB, seed 4242, package.json, .dockerignore) is
# generated once into $KILN_TEST_CACHE/bench/w4-context-v1.
#
# Per-step figures come from kiln's plain progress (`#N DONE 0.2s` after each
# `#N [stage k/n] RUN ...`) and the summary line's phase times.
# --runs N takes the median of N runs of every figure. --out FILE appends the
# tables plus the command line, date, nproc, kiln commit, buildah version and
# load averages to FILE. Build logs are kept in --logs DIR (default a new dir
# under /var/tmp). Needs root (users, buildah overlay storage).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
CMDLINE="bench/workloads.sh $*"
RUN_ID=$(date +%s)-$$

workloads_dir=${KILN_WORKLOADS:-/work/shared/workloads}
as=root runs=1 out="" logs="" wl=()
die() { echo "workloads: $*" >&2; exit 1; }
log() { echo "workloads: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --workload) case "$2" in w[1-5]) wl+=("$2") ;; *) die "unknown workload '$2' (w1..w5)" ;; esac; shift 2 ;;
    --as) case "$2" in root|user|both) as=$2 ;; *) die "--as takes root, user or both" ;; esac; shift 2 ;;
    --runs) [[ $2 =~ ^[1-9][0-9]*$ ]] || die "--runs takes a positive number"; runs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --workloads) workloads_dir=$2; shift 2 ;;
    --logs) logs=$2; shift 2 ;;
    -h|--help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1'" ;;
  esac
done
[ ${#wl[@]} -gt 0 ] || wl=(w1 w2 w3 w4 w5)
[ "$(id -u)" -eq 0 ] || die "run as root (creates the test user, buildah overlay storage)"
for t in buildah skopeo docker-registry python3 setpriv; do
  command -v $t >/dev/null || die "'$t' is not installed"
done
KILN=${KILN:-$SRC/kiln}
[ -x "$KILN" ] || die "kiln binary '$KILN' not found (run make -j2)"
export KILN
[ -d "$workloads_dir/w1-small-steps" ] || die "no workloads at '$workloads_dir'"

# shellcheck source=tests/integration/helpers.bash
source "$SRC/tests/integration/helpers.bash"
CACHE=$KILN_TEST_CACHE/bench
mkdir -p "$CACHE/registry"

BUSER=kilnbench
work=$(mktemp -d /var/tmp/kiln-workloads.XXXXXX)
chmod 0755 "$work"
[ -n "$logs" ] || logs="$work.logs"
mkdir -p "$logs"
RESULTS="$work/results.tsv"   # workload as row builder seconds load
STEPS="$work/steps.tsv"       # workload as row step seconds
PHASES="$work/phases.tsv"     # workload as row pull run snap copy push total
: > "$RESULTS"; : > "$STEPS"; : > "$PHASES"

# --- cleanup: stores, buildah storage, mounts, registry ----------------------

umount_under() {
  local d=$1
  awk -v d="$d" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}
buser_storage_reset() {
  getent passwd "$BUSER" >/dev/null || return 0
  local home
  home=$(getent passwd "$BUSER" | cut -d: -f6)
  run_as "$BUSER" buildah rmi -a -f >/dev/null 2>&1 || true
  umount_under "$home/.local/share/containers"
  rm -rf --one-file-system "$home/.local/share/containers" "$home/.config/containers"
}
cleanup_done=0
cleanup() {
  [ "$cleanup_done" = 1 ] && return 0
  cleanup_done=1
  set +e
  for d in "$work"/buildah-*; do
    [ -d "$d" ] || continue
    buildah --root "$d/root" --runroot "$d/runroot" --storage-driver=overlay rmi -a -f >/dev/null 2>&1
  done
  case "$as" in user|both) buser_storage_reset ;; esac
  umount_under "$work"
  rm -rf --one-file-system "$work"
  kiln_shell_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- registry and bases ----------------------------------------------------------

registry_start --root "$CACHE/registry"
log "registry $REGISTRY (data $CACHE/registry)"
have_image() { skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/library/$1" >/dev/null 2>&1; }
need_fat=0 need_huge=0
for w in "${wl[@]}"; do
  case "$w" in w1|w3) need_fat=1 ;; w2) need_huge=1 ;; esac
done
have_image debian:bookworm || fixtures_push debian >/dev/null
if [ "$need_huge" = 1 ] && ! have_image huge:1; then
  have_image fat:1 || "$SRC/bench/make-workload-bases.sh" --push "$REGISTRY" --workloads "$workloads_dir" fat >&2
  "$SRC/bench/make-workload-bases.sh" --push "$REGISTRY" --workloads "$workloads_dir" huge >&2
fi
if [ "$need_fat" = 1 ] && ! have_image fat:1; then
  "$SRC/bench/make-workload-bases.sh" --push "$REGISTRY" --workloads "$workloads_dir" fat >&2
fi

# --- contexts ----------------------------------------------------------------------

w4_context() { "$SRC/bench/w4-context.sh" "$CACHE"; }

# prepare WL: copy context + Dockerfile (REGISTRY substituted) into $work/ctx-WL
# (readable by the test user); prints the context dir.
wl_dir() {
  case "$1" in
    w1) echo w1-small-steps ;; w2) echo w2-small-steps-huge ;; w3) echo w3-big-write ;;
    w4) echo w4-big-context ;; w5) echo w5-cached-rebuild ;;
  esac
}
prepare() {
  local w=$1 src ctx
  src="$workloads_dir/$(wl_dir "$w")"
  ctx="$work/ctx-$w"
  rm -rf "$ctx"
  if [ "$w" = w4 ]; then
    ctx=$(w4_context)
  else
    mkdir -p "$ctx"
    cp -a "$src/." "$ctx/"
    rm -f "$ctx/Dockerfile"
    chmod -R a+rX "$ctx"
  fi
  sed "s#REGISTRY#$REGISTRY#g" "$src/Dockerfile" > "$work/Dockerfile.$w"
  chmod 0644 "$work/Dockerfile.$w"
  echo "$ctx"
}

# --- runners -------------------------------------------------------------------------

now() { date +%s.%N; }
load1() { cut -d' ' -f1 /proc/loadavg; }

# as_who WHO CMD...: run as root or as the bench user.
as_who() {
  local who=$1
  shift
  if [ "$who" = root ]; then "$@"; else run_as "$BUSER" "$@"; fi
}

# timed LOG WHO CMD...: run, print seconds; on failure show the log's tail.
timed() {
  local logf=$1 who=$2 t0 t1 rc=0
  shift 2
  t0=$(now)
  as_who "$who" "$@" > "$logf" 2>&1 || rc=$?
  t1=$(now)
  if [ $rc -ne 0 ]; then
    log "FAILED ($rc): $* (log $logf):"
    tail -n 15 "$logf" | sed 's/^/    /' >&2
    echo FAIL
    return 0
  fi
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }'
}

record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RESULTS"; }

# kiln_extract WL WHO ROW LOG: per-RUN-step times and phase times from the log.
kiln_extract() {
  local w=$1 who=$2 row=$3 f=$4
  awk -v w="$w" -v a="$who" -v r="$row" '
    /^#[0-9]+ \[/ { id = $1; sub(/^#[0-9]+ \[[^]]*\] /, ""); instr[id] = $0 }
    /^#[0-9]+ DONE [0-9.]+s$/ { t = $3; sub(/s$/, "", t)
      if (instr[$1] ~ /^RUN /) printf "%s\t%s\t%s\t%s\t%s\n", w, a, r, instr[$1], t }
  ' "$f" >> "$STEPS"
  sed -n 's/.* \([0-9.]*\)s total (pull \([0-9.]*\)s, run \([0-9.]*\)s, snapshot \([0-9.]*\)s, pack \([0-9.]*\)s, copy \([0-9.]*\)s, push \([0-9.]*\)s).*/\2\t\3\t\4\t\5\t\6\t\7\t\1/p' "$f" |
    tail -n1 | sed "s/^/$w\t$who\t$row\t/" >> "$PHASES"
}

# kiln store / buildah storage per identity
kiln_store() { if [ "$1" = root ]; then echo "$work/kiln-root"; else echo "$TEST_USER_TMP/kiln-store"; fi; }
kiln_out() { if [ "$1" = root ]; then echo "$work/kiln-out"; else echo "$TEST_USER_TMP/kiln-out"; fi; }
kiln_reset() {
  local who=$1
  rm -rf --one-file-system "$(kiln_store "$who")" "$(kiln_out "$who")"
}
kiln_build() { # WHO WL CTX LOG [extra build flags]
  local who=$1 w=$2 ctx=$3 logf=$4
  shift 4
  rm -rf --one-file-system "$(kiln_out "$who")"
  timed "$logf" "$who" "$KILN" build --progress plain --root "$(kiln_store "$who")" \
    --insecure-registry "$REGISTRY" --no-push --oci-layout "$(kiln_out "$who"):bench" \
    -f "$work/Dockerfile.$w" "$@" "$ctx"
}

B_ROOT=()
buildah_reset() {
  local who=$1
  if [ "$who" = root ]; then
    local d="$work/buildah-root"
    if [ -d "$d" ]; then
      buildah --root "$d/root" --runroot "$d/runroot" --storage-driver=overlay rmi -a -f >/dev/null 2>&1 || true
      umount_under "$d"
      rm -rf --one-file-system "$d"
    fi
    mkdir -p "$d"
    B_ROOT=(buildah --root "$d/root" --runroot "$d/runroot" --storage-driver=overlay)
  else
    buser_storage_reset
    B_ROOT=(buildah)
  fi
}
buildah_build() { # WHO WL CTX LOG [extra bud flags]
  local who=$1 w=$2 ctx=$3 logf=$4
  shift 4
  timed "$logf" "$who" "${B_ROOT[@]}" bud --isolation=chroot --tls-verify=false "$@" \
    -f "$work/Dockerfile.$w" -t "localhost/bench-$w:latest" "$ctx"
}
# buildah_row WHO WL CTX LOG ROW [bud flags]: build and record "buildah"; then
# `buildah push` the image into an OCI layout (compressing its layers, as
# kiln's --oci-layout output is) and record "buildah+oci" = build + push.
buildah_row() {
  local who=$1 w=$2 ctx=$3 logf=$4 row=$5 l t t2
  shift 5
  l=$(load1)
  t=$(buildah_build "$who" "$w" "$ctx" "$logf" "$@")
  record "$w" "$who" "$row" buildah "$t" "$l"
  [ "$t" != FAIL ] || { record "$w" "$who" "$row" buildah+oci FAIL "$l"; return 0; }
  local out
  out=$(kiln_out "$who")-buildah
  rm -rf --one-file-system "$out"
  t2=$(timed "${logf%.log}-push.log" "$who" "${B_ROOT[@]}" push "localhost/bench-$w:latest" "oci:$out:bench")
  if [ "$t2" = FAIL ]; then
    record "$w" "$who" "$row" buildah+oci FAIL "$l"
  else
    record "$w" "$who" "$row" buildah+oci "$(awk -v a="$t" -v b="$t2" 'BEGIN { printf "%.2f", a + b }')" "$l"
  fi
  rm -rf --one-file-system "$out"
}

buildah_rmi_output() {
  as_who "$1" "${B_ROOT[@]}" rmi -f "localhost/bench-$2:latest" >/dev/null 2>&1 || true
}

# one_round WL WHO RUN: every row of WL for both builders.
one_round() {
  local w=$1 who=$2 i=$3 ctx t l lg
  ctx=$(prepare "$w")
  lg="$logs/$w-$who-$i"
  if [ "$w" = w5 ]; then
    # kiln: its build cache, shared through the registry too
    # Cache repositories unique to this invocation: the bench registry's data
    # persists across runs, and a cold row must not find an earlier run's cache.
    local kc="$REGISTRY/cache/kiln-w5-$who-$i-$RUN_ID" bc="$REGISTRY/cache/buildah-w5-$who-$i-$RUN_ID"
    kiln_reset "$who"
    l=$(load1); t=$(kiln_build "$who" w5 "$ctx" "$lg-kiln-cold.log" --cache-repo "$kc"); record w5 "$who" cold kiln "$t" "$l"
    kiln_extract w5 "$who" cold "$lg-kiln-cold.log"
    l=$(load1); t=$(kiln_build "$who" w5 "$ctx" "$lg-kiln-rebuild.log" --cache-repo "$kc"); record w5 "$who" rebuild kiln "$t" "$l"
    kiln_extract w5 "$who" rebuild "$lg-kiln-rebuild.log"
    echo "changed in run $i" >> "$ctx/src/file1.txt"
    l=$(load1); t=$(kiln_build "$who" w5 "$ctx" "$lg-kiln-rebuild-1.log" --cache-repo "$kc"); record w5 "$who" rebuild-1 kiln "$t" "$l"
    kiln_extract w5 "$who" rebuild-1 "$lg-kiln-rebuild-1.log"
    kiln_reset "$who"
    l=$(load1); t=$(kiln_build "$who" w5 "$ctx" "$lg-kiln-regcache.log" --cache-repo "$kc"); record w5 "$who" regcache kiln "$t" "$l"
    kiln_extract w5 "$who" regcache "$lg-kiln-regcache.log"
    kiln_reset "$who"
    # buildah with its layer cache (--layers) and its registry cache
    ctx=$(prepare "$w")
    buildah_reset "$who"
    buildah_row "$who" w5 "$ctx" "$lg-buildah-cold.log" cold --layers --cache-to "$bc"
    buildah_row "$who" w5 "$ctx" "$lg-buildah-rebuild.log" rebuild --layers --cache-to "$bc"
    echo "changed in run $i" >> "$ctx/src/file1.txt"
    buildah_row "$who" w5 "$ctx" "$lg-buildah-rebuild-1.log" rebuild-1 --layers --cache-to "$bc"
    buildah_reset "$who"
    buildah_row "$who" w5 "$ctx" "$lg-buildah-regcache.log" regcache --layers --cache-from "$bc"
    buildah_reset "$who"
    return 0
  fi
  kiln_reset "$who"
  l=$(load1); t=$(kiln_build "$who" "$w" "$ctx" "$lg-kiln-cold.log" --no-cache); record "$w" "$who" cold kiln "$t" "$l"
  kiln_extract "$w" "$who" cold "$lg-kiln-cold.log"
  as_who "$who" "$KILN" prune --root "$(kiln_store "$who")" > "$lg-kiln-prune.log" 2>&1 || log "kiln prune failed: see $lg-kiln-prune.log"
  l=$(load1); t=$(kiln_build "$who" "$w" "$ctx" "$lg-kiln-warm.log" --no-cache); record "$w" "$who" warm kiln "$t" "$l"
  kiln_extract "$w" "$who" warm "$lg-kiln-warm.log"
  kiln_reset "$who"
  buildah_reset "$who"
  buildah_row "$who" "$w" "$ctx" "$lg-buildah-cold.log" cold
  buildah_rmi_output "$who" "$w"
  buildah_row "$who" "$w" "$ctx" "$lg-buildah-warm.log" warm
  buildah_reset "$who"
}

# --- main ------------------------------------------------------------------------------

whos=()
case "$as" in root) whos=(root) ;; user) whos=(user) ;; both) whos=(root user) ;; esac
buildah_user_driver=""
if [ "$as" != root ]; then
  test_user_create "$BUSER" --subuid
  fuse_dev_open_for_all; tun_dev_open_for_all
  chmod o+x "$work"
  buser_storage_reset
  buildah_user_driver=$(run_as "$BUSER" buildah info --format '{{.store.GraphDriverName}}' 2>/dev/null || echo '?')
fi

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for who in "${whos[@]}"; do
  for w in "${wl[@]}"; do
    for i in $(seq 1 "$runs"); do
      log "$w as $who, run $i/$runs (load $(load1))"
      one_round "$w" "$who" "$i"
    done
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ------------------------------------------------------------------------------

report() {
  local kc bv
  kc=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$SRC" diff --quiet HEAD 2>/dev/null || kc="$kc+dirty"
  bv=$(buildah --version | awk '{print $3}')
  echo "### kiln vs buildah: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "Command: \`$CMDLINE\`  "
  echo "nproc $(nproc), kiln $kc ($("$KILN" version 2>/dev/null | head -n1)), buildah $bv${buildah_user_driver:+ (rootless driver: $buildah_user_driver)}, runs $runs (median)  "
  echo "load average at start $load_start, at end $load_end; logs in $logs"
  echo
  echo "| workload | as | row | kiln s | buildah s | kiln/buildah | buildah + push to OCI layout s | kiln/(buildah+push) | load (kiln / buildah) |"
  echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
  python3 - "$RESULTS" <<'EOF'
import sys, statistics, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    w, a, r, b, t, l = line.rstrip("\n").split("\t")
    rows.setdefault((w, a, r), {}).setdefault(b, []).append((t, l))
def med(v):
    ok = [float(t) for t, _ in v if t != "FAIL"]
    if len(ok) < len(v) or not ok:
        return None
    return statistics.median(ok)
for (w, a, r), d in rows.items():
    k, b, bo = med(d.get("kiln", [])), med(d.get("buildah", [])), med(d.get("buildah+oci", []))
    ks = "FAIL" if k is None else "%.2f" % k
    bs = "FAIL" if b is None else "%.2f" % b
    bos = "FAIL" if bo is None else "%.2f" % bo
    ratio = "%.2f" % (k / b) if k is not None and b else "-"
    ratio2 = "%.2f" % (k / bo) if k is not None and bo else "-"
    loads = "%s / %s" % (",".join(l for _, l in d.get("kiln", [])), ",".join(l for _, l in d.get("buildah", [])))
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (w, a, r, ks, bs, ratio, bos, ratio2, loads))
EOF
  if [ -s "$PHASES" ]; then
    echo
    echo "kiln phase times from its summary line (s, median):"
    echo
    echo "| workload | as | row | pull | run | snapshot | pack | copy | push/write | total |"
    echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    python3 - "$PHASES" <<'EOF'
import sys, statistics, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    rows.setdefault(tuple(f[:3]), []).append([float(x) for x in f[3:]])
for k, v in rows.items():
    m = [statistics.median(c) for c in zip(*v)]
    print("| %s | %s | %s | " % k + " | ".join("%.2f" % x for x in m) + " |")
EOF
  fi
  if [ -s "$STEPS" ]; then
    echo
    echo "kiln per-RUN-step times (\`#N DONE\`, s, median over runs):"
    echo
    echo "| workload | as | row | RUN steps | mean s/step | max | per step |"
    echo "| --- | --- | --- | ---: | ---: | ---: | --- |"
    python3 - "$STEPS" <<'EOF'
import sys, statistics, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    w, a, r, instr, t = line.rstrip("\n").split("\t")
    rows.setdefault((w, a, r), collections.OrderedDict()).setdefault(instr, []).append(float(t))
for k, steps in rows.items():
    m = [statistics.median(v) for v in steps.values()]
    print("| %s | %s | %s | %d | %.2f | %.2f | %s |" % (k + (len(m), sum(m) / len(m), max(m),
          " ".join("%.1f" % x for x in m))))
EOF
  fi
}

report | tee "$work/report.md"
if [ -n "$out" ]; then
  { echo; cat "$work/report.md"; } >> "$out"
  log "appended to $out"
fi
