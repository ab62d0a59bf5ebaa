# helpers.bash - shared helpers for kiln's bats integration tests.
#
# Load from a .bats file with `load helpers`. Also usable from plain bash
# scripts (bench/, scripts/demo.sh): `source tests/integration/helpers.bash`.
#
# Registry:
#   registry_start [--tls] [--htpasswd USER:PASS] [--token REALM ISSUER SERVICE CERT]
#                  [--root DIR] [--env NAME=VALUE]...
#       Starts Debian's docker-registry (CNCF distribution 2.8) on 127.0.0.1 with
#       a kernel-chosen free port, debug log, storage in its own temp dir; waits
#       until /v2/ answers. Exports REGISTRY (host:port), REGISTRY_URL
#       (http[s]://host:port), REGISTRY_DIR, REGISTRY_PID, REGISTRY_LOG,
#       REGISTRY_CONFIG; with --tls REGISTRY_CA (CA cert PEM), REGISTRY_CERT_DIR
#       (a dir holding only ca.crt, for skopeo/buildah --cert-dir) and
#       REGISTRY_CERT / REGISTRY_KEY (server pair); with --htpasswd REGISTRY_USER, REGISTRY_PASS,
#       REGISTRY_HTPASSWD. --env passes REGISTRY_* overrides of any config key
#       (distribution's env override, e.g. REGISTRY_STORAGE_DELETE_ENABLED=false).
#       The registry gets SIGKILL when the shell that started it exits (pdeathsig),
#       so call registry_start directly in setup/setup_file/the test body, never
#       inside $(...), a pipeline or `run`.
#   registry_stop [PID]   stop the current (or given) registry and wait for it.
#   registry_stop_all     stop every registry started in this scope.
#   registry_curl ARGS... curl against the current registry with CA and
#                         credentials (if any), e.g. registry_curl -sf "$REGISTRY_URL/v2/"
#   registry_blob_uploads count of completed blob uploads in REGISTRY_LOG.
#
# Fixture images (built without kiln by scripts/make-base-images.sh, cached):
#   fixtures_push [busybox|debian|all]  push into the current registry; exports
#       BUSYBOX_IMAGE=$REGISTRY/library/busybox:latest,
#       DEBIAN_IMAGE=$REGISTRY/library/debian:bookworm,
#       BUSYBOX_MULTI_IMAGE=$REGISTRY/library/busybox-multi:latest (an index of
#       linux/amd64 and linux/arm64: fixtures_push busybox-multi).
#   fixtures_layout NAME   print the cached OCI layout dir (image ref is DIR:TAG).
#
# Users (root only; they skip the test otherwise):
#   require_root [REASON]                skip unless running as root.
#   test_user_create NAME [--subuid]     plain user with home; with --subuid it gets
#       distinct /etc/subuid and /etc/subgid ranges of 65536, without it any ranges
#       are removed. Idempotent. Exports TEST_USER, TEST_UID, TEST_GID, TEST_HOME,
#       TEST_USER_TMP (a private dir the user owns, removed at kiln_teardown).
#   run_as USER CMD...    run CMD as USER (setpriv, no PAM) with HOME/USER/LOGNAME
#       set, XDG_RUNTIME_DIR and TMPDIR pointing at a dir the user owns, and the
#       environment (KILN, KILN_SRC, REGISTRY*, PATH, ...) preserved.
#   fuse_dev_open_for_all  chmod 0666 /dev/fuse as distributions ship it.
#   plain_users PREFIX     users PREFIX-sub (subuid ranges) and PREFIX-single, with
#       SHARED/store-USER each; PLAIN_USERS lists them.
#   processes_gone ARGS    no process matches `pgrep ARGS` within 2 s.
#   debian_reachable       true when the Debian archive answers over HTTP.
#   tun_dev_open_for_all   chmod 0666 /dev/net/tun as distributions ship it (as root;
#       kiln_setup does it: pasta, a RUN step's private network, needs it).
#   build_file_setup       setup_file of a file that builds with RUN steps: kiln_setup,
#       /dev/fuse 0666 (as root), a registry with the busybox fixture.
#
# Per-test plumbing:
#   kiln_setup      sets KILN (default: $KILN_SRC/kiln), KILN_SRC, TEST_TMP (a fresh
#                   dir under $BATS_TEST_TMPDIR).
#   kiln_teardown   stops registries started in this scope, removes test-user
#                   temp dirs, and fails if a mount is left under TEST_TMP.
#   A .bats file typically has:
#       setup()    { kiln_setup; }
#       teardown() { kiln_teardown; }
#   and for a file-wide registry:
#       setup_file()    { registry_start; }
#       teardown_file() { registry_stop_all; }

: "${KILN_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${KILN:=$KILN_SRC/kiln}"
export KILN KILN_SRC
: "${KILN_TEST_CACHE:=/var/cache/kiln-test}"
export KILN_TEST_CACHE

# --- scope bookkeeping -------------------------------------------------------

# Directory that holds state for the current scope: the test, the file
# (setup_file/teardown_file) or, outside bats, a temp dir for this shell.
_kiln_scope_dir() {
  # Only dirs of this bats run: a nested bats inherits the outer ones.
  if [ -n "${BATS_TEST_TMPDIR:-}" ] && [ -d "${BATS_TEST_TMPDIR}" ] &&
    [[ $BATS_TEST_TMPDIR == "${BATS_RUN_TMPDIR:-/nonexistent}/"* ]]; then
    echo "$BATS_TEST_TMPDIR"
  elif [ -n "${BATS_FILE_TMPDIR:-}" ] && [ -d "${BATS_FILE_TMPDIR}" ] &&
    [[ $BATS_FILE_TMPDIR == "${BATS_RUN_TMPDIR:-/nonexistent}/"* ]]; then
    echo "$BATS_FILE_TMPDIR"
  else
    echo "$_KILN_SHELL_TMPDIR"
  fi
}

# Outside bats: one temp dir per sourcing shell (made here, not lazily, since
# _kiln_scope_dir runs inside $(...)). kiln_shell_cleanup removes it.
if [ -z "${BATS_VERSION:-}${BATS_TEST_FILENAME:-}" ]; then
  _KILN_SHELL_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/kiln-test.XXXXXX")
fi

# For scripts that source this file: stop registries, remove the temp dir.
kiln_shell_cleanup() {
  registry_stop_all
  _test_user_tmp_cleanup
  if [ -n "${_KILN_SHELL_TMPDIR:-}" ]; then
    rm -rf --one-file-system "$_KILN_SHELL_TMPDIR"
  fi
}

_kiln_die() {
  echo "helpers: $*" >&2
  return 1
}

kiln_setup() {
  TEST_TMP=$(mktemp -d "$(_kiln_scope_dir)/t.XXXXXX")
  export TEST_TMP KILN KILN_SRC
  [ -x "$KILN" ] || _kiln_die "kiln binary '$KILN' not found (run make first or set KILN)"
  tun_dev_open_for_all
}

# plain_users PREFIX: the two plain users a test runs kiln as (root only):
# PREFIX-sub with /etc/subuid ranges and PREFIX-single without, a SHARED
# dir, and SHARED/store-USER owned by each. Sets PLAIN_USERS to both names.
plain_users() {
  require_root
  test_user_create "$1-sub" --subuid
  test_user_create "$1-single"
  shared_dir
  PLAIN_USERS=("$1-sub" "$1-single")
  local u
  for u in "${PLAIN_USERS[@]}"; do
    mkdir -p "$SHARED/store-$u"
    chown "$u" "$SHARED/store-$u"
  done
}

# processes_gone PGREP_ARGS...: no process matches within 2 s (a pid
# namespace's processes die with its init, but the kernel reaps them after
# the SIGKILL, not at once); prints the survivors and fails otherwise.
processes_gone() {
  local _
  for _ in $(seq 20); do
    pgrep "$@" > /dev/null || return 0
    sleep 0.1
  done
  echo "still running:" >&2
  pgrep -a "$@" >&2
  return 1
}

# debian_reachable: the Debian archive answers (tests that need it skip
# without it).
debian_reachable() {
  curl -s -o /dev/null --max-time 5 http://deb.debian.org/debian/dists/bookworm/Release
}

# tun_dev_open_for_all: pasta (a RUN step's private network) opens
# /dev/net/tun as root of the step's user namespace, not as host root;
# distributions ship the node 0666, this machine 0600.
tun_dev_open_for_all() {
  [ "$(id -u)" -ne 0 ] || [ ! -e /dev/net/tun ] || chmod 0666 /dev/net/tun
}

# build_file_setup: the setup_file of a file whose tests build with RUN
# steps: kiln_setup, /dev/fuse usable by a user namespace's root (as root:
# a file must not depend on another having done it), a registry with the
# busybox fixture; exports REGISTRY and BUSYBOX_IMAGE.
build_file_setup() {
  kiln_setup
  [ "$(id -u)" -ne 0 ] || chmod 0666 /dev/fuse
  registry_start
  fixtures_push busybox
  export REGISTRY BUSYBOX_IMAGE
}

# shared_dir: SHARED = a new directory plain test users can reach (TEST_TMP's
# parents are private). shared_dir_cleanup (in teardown) removes it.
shared_dir() {
  SHARED=$(mktemp -d "/tmp/kiln-shared-$(basename "${BATS_TEST_FILENAME:-test}" .bats).XXXXXX")
  chmod 0755 "$SHARED"
}
shared_dir_cleanup() {
  [ -z "${SHARED:-}" ] || rm -rf --one-file-system "$SHARED"
  SHARED=""
}

kiln_teardown() {
  local rc=0
  registry_stop_all || rc=1
  _test_user_tmp_cleanup || rc=1
  if [ -n "${TEST_TMP:-}" ] && [ -d "$TEST_TMP" ]; then
    local m
    m=$(awk -v d="$TEST_TMP" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo)
    if [ -n "$m" ]; then
      echo "helpers: mounts left behind under $TEST_TMP:" >&2
      echo "$m" >&2
      # Detach them so the temp dir can be removed, but still fail the test.
      echo "$m" | sort -r | while read -r p; do umount -l "$p" 2>/dev/null; done
      rc=1
    fi
  fi
  return $rc
}

# --- registry ----------------------------------------------------------------

# _registry_make_tls DIR: self-signed CA plus a server cert for 127.0.0.1 and
# localhost (SAN), ECDSA P-256 so it takes milliseconds.
_registry_make_tls() {
  local d=$1
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$d/ca.key" -out "$d/ca.crt" -days 3650 -subj "/CN=kiln test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1 ||
    { _kiln_die "openssl: creating test CA failed"; return 1; }
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=127.0.0.1" >/dev/null 2>&1 ||
    { _kiln_die "openssl: creating server key failed"; return 1; }
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" > "$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -out "$d/server.crt" -days 3650 -extfile "$d/server.ext" >/dev/null 2>&1 ||
    { _kiln_die "openssl: signing server cert failed"; return 1; }
  # A directory with only the CA: containers/image's --cert-dir takes every
  # *.key there for a client key.
  mkdir -p "$d/certs"
  cp "$d/ca.crt" "$d/certs/ca.crt"
}

registry_start() {
  local tls=0 htpasswd="" token_realm="" token_issuer="" token_service="" token_cert=""
  local root="" envs=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --tls) tls=1; shift ;;
      --htpasswd) htpasswd=$2; shift 2 ;;
      --token) token_realm=$2 token_issuer=$3 token_service=$4 token_cert=$5; shift 5 ;;
      --root) root=$2; shift 2 ;;
      --env) envs+=("$2"); shift 2 ;;
      *) _kiln_die "registry_start: unknown argument '$1'"; return 1 ;;
    esac
  done
  command -v docker-registry >/dev/null || { _kiln_die "docker-registry not installed"; return 1; }

  local dir
  dir=$(mktemp -d "$(_kiln_scope_dir)/registry.XXXXXX") || return 1
  [ -n "$root" ] || root="$dir/data"
  mkdir -p "$root"
  local scheme=http
  {
    echo "version: 0.1"
    echo "log:"
    echo "  level: debug"
    echo "  formatter: text"
    echo "  accesslog:"
    echo "    disabled: false"
    echo "storage:"
    echo "  filesystem:"
    echo "    rootdirectory: $root"
    echo "  delete:"
    echo "    enabled: true"
    echo "  maintenance:"
    echo "    uploadpurging:"
    echo "      enabled: false"
    echo "http:"
    echo "  addr: 127.0.0.1:0"
    echo "  secret: kiln-test-$RANDOM$RANDOM"
    echo "  headers:"
    echo "    X-Content-Type-Options: [nosniff]"
  } > "$dir/config.yml"
  if [ "$tls" = 1 ]; then
    _registry_make_tls "$dir" || return 1
    scheme=https
    {
      echo "  tls:"
      echo "    certificate: $dir/server.crt"
      echo "    key: $dir/server.key"
    } >> "$dir/config.yml"
  fi
  if [ -n "$htpasswd" ] && [ -n "$token_realm" ]; then
    _kiln_die "registry_start: --htpasswd and --token are exclusive"; return 1
  fi
  if [ -n "$htpasswd" ]; then
    local user=${htpasswd%%:*} pass=${htpasswd#*:}
    htpasswd -Bbn "$user" "$pass" > "$dir/htpasswd" 2>/dev/null ||
      { _kiln_die "htpasswd -B failed (apache2-utils installed?)"; return 1; }
    {
      echo "auth:"
      echo "  htpasswd:"
      echo "    realm: kiln-test"
      echo "    path: $dir/htpasswd"
    } >> "$dir/config.yml"
    export REGISTRY_USER=$user REGISTRY_PASS=$pass REGISTRY_HTPASSWD="$dir/htpasswd"
  else
    unset REGISTRY_USER REGISTRY_PASS REGISTRY_HTPASSWD
  fi
  if [ -n "$token_realm" ]; then
    {
      echo "auth:"
      echo "  token:"
      echo "    realm: $token_realm"
      echo "    service: $token_service"
      echo "    issuer: $token_issuer"
      echo "    rootcertbundle: $token_cert"
    } >> "$dir/config.yml"
  fi

  # pdeathsig: if this shell dies (failed test, SIGKILLed bats) the registry
  # follows. A clean environment: distribution reads REGISTRY_* variables as
  # config overrides, and ours (REGISTRY_LOG, ...) mean something else.
  # Extra fds are closed: a registry holding bats' fd 3 would hang bats.
  # The log exists before the loop below reads it (under set -e and
  # pipefail, as in scripts/demo.sh, a sed that cannot open it would end
  # the script).
  : > "$dir/registry.log"
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
    done
    exec env -i PATH="$PATH" "${envs[@]}" setpriv --pdeathsig KILL -- \
      docker-registry serve "$dir/config.yml"
  ) > "$dir/registry.log" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid" > "$dir/pid"
  echo "$pid $dir" >> "$(_kiln_scope_dir)/.kiln-registries"

  export REGISTRY_DIR=$dir REGISTRY_PID=$pid REGISTRY_LOG="$dir/registry.log" \
    REGISTRY_CONFIG="$dir/config.yml"
  if [ "$tls" = 1 ]; then
    export REGISTRY_CA="$dir/certs/ca.crt" REGISTRY_CERT_DIR="$dir/certs" \
      REGISTRY_CERT="$dir/server.crt" REGISTRY_KEY="$dir/server.key"
  else
    unset REGISTRY_CA REGISTRY_CERT_DIR REGISTRY_CERT REGISTRY_KEY
  fi

  # The registry logs the address the kernel picked for :0.
  local i addr=""
  for i in $(seq 1 200); do
    addr=$(sed -n 's/.*msg="listening on \(127\.0\.0\.1:[0-9][0-9]*\)[",].*/\1/p' "$dir/registry.log" | head -n1)
    [ -n "$addr" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "helpers: docker-registry exited during start-up; log:" >&2
      cat "$dir/registry.log" >&2
      return 1
    fi
    sleep 0.05
  done
  [ -n "$addr" ] || { cat "$dir/registry.log" >&2; registry_stop "$pid"; _kiln_die "registry did not report its address"; return 1; }
  export REGISTRY=$addr REGISTRY_URL="$scheme://$addr"
  local code
  for i in $(seq 1 200); do
    code=$(curl -s -o /dev/null -w '%{http_code}' ${REGISTRY_CA:+--cacert "$REGISTRY_CA"} "$REGISTRY_URL/v2/" 2>/dev/null)
    case "$code" in 200|401) return 0 ;; esac
    sleep 0.05
  done
  cat "$dir/registry.log" >&2
  registry_stop "$pid"
  _kiln_die "registry at $REGISTRY_URL did not answer /v2/ (last status '$code')"
}

# _registry_alive PID DIR: PID is a live (non-zombie) docker-registry serving
# DIR's config; the cmdline check guards against a recycled PID.
_registry_alive() {
  local pid=$1 dir=$2 st
  st=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$pid/status" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir/config.yml"
}

# registry_stop [PID]: TERM, then KILL after 5 s; returns once it is gone.
registry_stop() {
  local pid=${1:-${REGISTRY_PID:-}} dir="" i sig
  [ -n "$pid" ] || return 0
  if [ -f "$(_kiln_scope_dir)/.kiln-registries" ]; then
    dir=$(awk -v p="$pid" '$1 == p { print $2 }' "$(_kiln_scope_dir)/.kiln-registries" | tail -n1)
  fi
  [ -n "$dir" ] || { [ "$pid" = "${REGISTRY_PID:-}" ] && dir=${REGISTRY_DIR:-}; }
  [ -n "$dir" ] || { _kiln_die "registry_stop: $pid is not a registry started here"; return 1; }
  for sig in TERM KILL; do
    _registry_alive "$pid" "$dir" || break
    kill -"$sig" "$pid" 2>/dev/null
    for i in $(seq 1 100); do
      _registry_alive "$pid" "$dir" || break
      sleep 0.05
    done
  done
  # Our child that has not exec'd docker-registry yet (a script that fails
  # right after registry_start) is not "alive" above, and wait would block
  # until the registry it becomes exits: kill it too (an unreaped child's
  # pid is not recycled).
  if [ "$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$pid/status" 2>/dev/null)" = "$BASHPID" ]; then
    kill -KILL "$pid" 2>/dev/null
  fi
  # Reap it when it is our child (no zombie left); harmless otherwise.
  wait "$pid" 2>/dev/null || true
  [ "$pid" = "${REGISTRY_PID:-}" ] && unset REGISTRY_PID
  ! _registry_alive "$pid" "$dir" || { _kiln_die "registry $pid survived SIGKILL"; return 1; }
}

registry_stop_all() {
  local f pid dir rc=0
  f="$(_kiln_scope_dir)/.kiln-registries"
  [ -f "$f" ] || return 0
  while read -r pid dir; do
    registry_stop "$pid" || rc=1
  done < "$f"
  rm -f "$f"
  return $rc
}

registry_curl() {
  curl ${REGISTRY_CA:+--cacert "$REGISTRY_CA"} \
    ${REGISTRY_USER:+-u "$REGISTRY_USER:$REGISTRY_PASS"} "$@"
}

# Number of blob uploads the registry completed, from its access log: the
# final PUT of a chunked upload or a monolithic POST with ?digest=, status 201.
# Cross-repository mounts (POST ?mount=) do not count.
registry_blob_uploads() {
  grep -cE '"(PUT|POST) /v2/[^ ]*/blobs/uploads/[^ ]*digest=[^ ]* HTTP/[0-9.]+" 201 ' \
    "${1:-$REGISTRY_LOG}" || true
}

# --- fixture images ----------------------------------------------------------

fixtures_push() {
  local what=${1:-all}
  [ -n "${REGISTRY:-}" ] || { _kiln_die "fixtures_push: no registry started"; return 1; }
  local creds=()
  [ -n "${REGISTRY_USER:-}" ] && creds=(--dest-creds "$REGISTRY_USER:$REGISTRY_PASS")
  "$KILN_SRC/scripts/make-base-images.sh" --cache "$KILN_TEST_CACHE" \
    --push "$REGISTRY" ${REGISTRY_CERT_DIR:+--dest-cert-dir "$REGISTRY_CERT_DIR"} \
    "${creds[@]}" "$what" >&2 || return 1
  export BUSYBOX_IMAGE="$REGISTRY/library/busybox:latest"
  export DEBIAN_IMAGE="$REGISTRY/library/debian:bookworm"
  export BUSYBOX_MULTI_IMAGE="$REGISTRY/library/busybox-multi:latest"
}

fixtures_layout() {
  "$KILN_SRC/scripts/make-base-images.sh" --cache "$KILN_TEST_CACHE" --print-layout "$1"
}

# --- users -------------------------------------------------------------------

require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    skip "${1:-needs root (creates users and changes /etc/subuid)}"
  fi
}

# _subid_set FILE NAME [START COUNT]: drop NAME's lines, append the new range.
_subid_set() {
  local file=$1 name=$2 start=${3:-} count=${4:-}
  touch "$file"
  local tmp
  tmp=$(mktemp "$file.kiln.XXXXXX")
  awk -F: -v n="$name" '$1 != n' "$file" > "$tmp"
  [ -n "$start" ] && echo "$name:$start:$count" >> "$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$file"
}

# First start >= 100000 that overlaps no range in /etc/subuid or /etc/subgid.
_subid_free_start() {
  cat /etc/subuid /etc/subgid 2>/dev/null | awk -F: '
    BEGIN { s = 100000 }
    NF >= 3 { e = $2 + $3; if (e > s) s = e }
    END { if (s % 65536) s += 65536 - (s % 65536); print s }'
}

test_user_create() {
  require_root "needs root to create test users"
  local name=$1 subuid=0
  shift
  [ "${1:-}" = "--subuid" ] && subuid=1
  if ! getent passwd "$name" >/dev/null; then
    useradd --create-home --shell /bin/bash --user-group "$name" >/dev/null 2>&1 ||
      getent passwd "$name" >/dev/null || { _kiln_die "useradd '$name' failed"; return 1; }
  fi
  # With or without ranges, exactly as asked, so the test runs the mode it names.
  (
    flock 9
    if [ "$subuid" = 1 ]; then
      if ! grep -q "^$name:" /etc/subuid 2>/dev/null || ! grep -q "^$name:" /etc/subgid 2>/dev/null; then
        local start
        start=$(_subid_free_start)
        _subid_set /etc/subuid "$name" "$start" 65536
        _subid_set /etc/subgid "$name" "$start" 65536
      fi
    else
      _subid_set /etc/subuid "$name"
      _subid_set /etc/subgid "$name"
    fi
  ) 9> /run/kiln-test-subid.lock
  TEST_USER=$name
  TEST_UID=$(id -u "$name")
  TEST_GID=$(id -g "$name")
  TEST_HOME=$(getent passwd "$name" | cut -d: -f6)
  TEST_USER_TMP=$(_test_user_tmp "$name")
  export TEST_USER TEST_UID TEST_GID TEST_HOME TEST_USER_TMP
}

# A private temp dir the user owns (bats' own temp dirs are 0700 root).
_test_user_tmp() {
  local name=$1 scope d
  scope=$(_kiln_scope_dir)
  if [ -f "$scope/.kiln-usertmp-$name" ]; then
    cat "$scope/.kiln-usertmp-$name"
    return
  fi
  d=$(mktemp -d "/tmp/kiln-test-$name.XXXXXX")
  chown "$name:" "$d"
  chmod 0700 "$d"
  echo "$d" > "$scope/.kiln-usertmp-$name"
  echo "$d"
}

_test_user_tmp_cleanup() {
  local scope f d
  scope=$(_kiln_scope_dir)
  for f in "$scope"/.kiln-usertmp-*; do
    [ -f "$f" ] || continue
    d=$(cat "$f")
    case "$d" in /tmp/kiln-test-*) rm -rf --one-file-system "$d" ;; esac
    rm -f "$f"
  done
}

# host_runs_i386: whether this machine runs i386 system calls (int 0x80).
# Some hypervisors fault them although the kernel has IA32 emulation, and
# then no 32-bit program runs; the answer is kept for the test file.
host_runs_i386() {
  [ "$(uname -m)" = x86_64 ] || return 1
  local d=${BATS_FILE_TMPDIR:-/tmp}
  if [ ! -f "$d/.kiln-int80" ]; then
    printf 'int main (void) { long r; __asm__ volatile ("int $0x80" : "=a"(r) : "a"(20L) : "memory"); return r > 0 ? 0 : 1; }\n' \
      > "$d/int80.c"
    if cc -o "$d/int80" "$d/int80.c" 2> /dev/null && ("$d/int80" || exit 1) 2> /dev/null; then
      echo yes > "$d/.kiln-int80"
    else
      echo no > "$d/.kiln-int80"
    fi
  fi
  [ "$(cat "$d/.kiln-int80")" = yes ]
}

# mode_build MODE TAG STORE OUTDIR [ARGS...]: `kiln build --root STORE
# ARGS...` as root (MODE root), as a plain user with /etc/subuid ranges
# (sub: user kiln-TAG-sub) or one without (single: kiln-TAG-single), the
# user owning STORE and OUTDIR and $SHARED/ctx readable to it. Sets
# $output/$status as bats' run does; fails, showing the end of the log,
# unless the build succeeded in the user namespace mode MODE stands for.
mode_build() {
  local mode=$1 tag=$2 store=$3 outdir=$4 as=()
  shift 4
  mkdir -p "$store" "$outdir"
  case "$mode" in
    root) ;;
    sub) test_user_create "kiln-$tag-sub" --subuid; as=(run_as "kiln-$tag-sub") ;;
    single) test_user_create "kiln-$tag-single"; as=(run_as "kiln-$tag-single") ;;
    *) echo "mode_build: unknown mode '$mode'" >&2; return 2 ;;
  esac
  [ "$mode" = root ] || chown "$TEST_USER" "$store" "$outdir"
  chmod -R a+rX "$SHARED/ctx"
  chmod 0755 "$SHARED" "$outdir"
  run "${as[@]}" "$KILN" build --root "$store" "$@"
  [ "$status" -eq 0 ] || { echo "$output" | tail -30; return 1; }
  case "$mode" in
    root) [[ $output == *"user namespace: full ("*"as root"* ]] ;;
    sub) [[ $output == *"user namespace: full ("*"subuid"* ]] ;;
    single) [[ $output == *"user namespace: single"* ]] ;;
  esac
}

run_as() {
  require_root "needs root to switch to a test user"
  local name=$1
  shift
  local uid gid home tmp
  uid=$(id -u "$name") || return 1
  gid=$(id -g "$name")
  home=$(getent passwd "$name" | cut -d: -f6)
  tmp=$(_test_user_tmp "$name")
  mkdir -p "$tmp/run"
  chown "$name:" "$tmp/run"
  chmod 0700 "$tmp/run"
  setpriv --reuid "$uid" --regid "$gid" --init-groups --inh-caps=-all -- \
    env HOME="$home" USER="$name" LOGNAME="$name" TMPDIR="$tmp" \
    XDG_RUNTIME_DIR="$tmp/run" "$@"
}

# fuse_uring_on: the fuse module offers FUSE over io_uring to the mounts
# made from now on (kiln's src/overlay/overlay_ring.c takes it); skips where
# the kernel has no such parameter. fuse_uring_restore (in teardown) puts the
# parameter back as it was (a connection that started with it keeps it).
FUSE_URING_PARAM=/sys/module/fuse/parameters/enable_uring
fuse_uring_on() {
  [ -w "$FUSE_URING_PARAM" ] || skip "this kernel has no fuse enable_uring parameter (FUSE over io_uring is Linux 6.14+)"
  [ -n "${FUSE_URING_WAS:-}" ] || FUSE_URING_WAS=$(cat "$FUSE_URING_PARAM")
  echo Y > "$FUSE_URING_PARAM"
}
fuse_uring_restore() {
  [ -z "${FUSE_URING_WAS:-}" ] || echo "$FUSE_URING_WAS" > "$FUSE_URING_PARAM"
}

fuse_dev_open_for_all() {
  require_root "needs root to chmod /dev/fuse"
  [ -c /dev/fuse ] || skip "/dev/fuse does not exist"
  chmod 0666 /dev/fuse
}

# with_deadline SECONDS CMD...: run CMD (a command or function); if it is
# still running after SECONDS, print a hang report (tests/tools/hang-report)
# to stderr, stop CMD and everything below it, and return 124. A hang then
# fails its own case with a description instead of eating the suite's time.
with_deadline() {
  local secs=$1 start pid rc
  shift
  start=$(date +%s)
  "$@" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [ $(( $(date +%s) - start )) -ge "$secs" ]; then
      {
        echo "still running after ${secs}s, stopped: $*"
        "$KILN_SRC/tests/tools/hang-report" "$pid"
      } >&2
      _kill_tree "$pid"
      wait "$pid" 2>/dev/null
      return 124
    fi
    sleep 0.5
  done
  wait "$pid"
  rc=$?
  return $rc
}

# _kill_tree PID: SIGKILL PID and its descendants, children first found.
_kill_tree() {
  local p
  for p in $(ps -e -o pid=,ppid= | awk -v r="$1" '$2 == r { print $1 }'); do
    _kill_tree "$p"
  done
  kill -KILL "$1" 2>/dev/null || true
}
