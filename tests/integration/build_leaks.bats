#!/usr/bin/env bats
# Nothing of the builder is visible to a RUN step (issue 16, item 4): the
# step's pid 1 is a fork of kiln, and its /proc/1/cmdline and
# /proc/1/environ must not show kiln's command line (build-arg values the
# Dockerfile never declared, the store path) or kiln's environment — as
# root, with subuid ranges, in single ID mode, and with
# RUN --security=insecure (every capability in the step's namespace), and
# nothing of pid 1 (its fds, memory, environment) is reachable (item 5).

load helpers

setup_file() { build_file_setup; }
teardown_file() { registry_stop_all; }
setup() { kiln_setup; SHARED=""; }
teardown() {
  shared_dir_cleanup
  kiln_teardown
}

CANARY_ENV=kiln-env-canary-4d1a
CANARY_ARG=kiln-arg-canary-93c7

# The step prints what pid 1 shows (or why it cannot).
leak_dockerfile() { # DIR [RUN flags]
  mkdir -p "$1"
  printf 'ARG BASE\nFROM $BASE\nRUN %s echo "cmd=[$(tr "\\0" " " < /proc/1/cmdline)]"; echo "comm=$(cat /proc/1/comm)"; tr "\\0" "\\n" < /proc/1/environ 2>&1 | sed "s/^/env: /"; echo done\n' \
    "${2:-}" > "$1/Dockerfile"
  chmod -R a+rX "$1"
}

# check_no_leak: the last `run` built, pid 1 is kiln-init, no canary or store path.
check_no_leak() { # STORE
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"cmd=[kiln-init"* ]]
  [[ $output == *"comm=kiln-init"* ]]
  [[ $output == *" done"* ]]
  [[ $output != *"$CANARY_ENV"* ]]
  # the build-arg's value appears in kiln's own log only (the step title does
  # not name it); the step's lines must not
  ! grep -E '^#[0-9]+ [0-9.]+ .*'"$CANARY_ARG" <<< "$output" || false
  ! grep -E '^#[0-9]+ [0-9.]+ .*'"$1" <<< "$output" || false
}

@test "leaks: pid 1 of a RUN step shows neither kiln's argv nor its environment (root, default and --security=insecure)" {
  leak_dockerfile "$TEST_TMP/ctx"
  KILN_LEAK_TEST=$CANARY_ENV run "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" --no-cache \
    --build-arg "BASE=$BUSYBOX_IMAGE" --build-arg "UNDECLARED=$CANARY_ARG" --no-push "$TEST_TMP/ctx"
  check_no_leak "$TEST_TMP/store"
  leak_dockerfile "$TEST_TMP/ctx-insecure" --security=insecure
  KILN_LEAK_TEST=$CANARY_ENV run "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" --no-cache \
    --allow security.insecure --build-arg "BASE=$BUSYBOX_IMAGE" --build-arg "UNDECLARED=$CANARY_ARG" --no-push \
    "$TEST_TMP/ctx-insecure"
  check_no_leak "$TEST_TMP/store"
}

@test "leaks: the same as a plain user, with subuid ranges and in single ID mode" {
  plain_users kiln-leak
  local u
  for u in "${PLAIN_USERS[@]}"; do
    leak_dockerfile "$SHARED/ctx-$u" --security=insecure
    KILN_LEAK_TEST=$CANARY_ENV run run_as "$u" "$KILN" build --root "$SHARED/store-$u" --insecure-registry "$REGISTRY" \
      --allow security.insecure --build-arg "BASE=$BUSYBOX_IMAGE" --build-arg "UNDECLARED=$CANARY_ARG" --no-push \
      --no-cache "$SHARED/ctx-$u"
    check_no_leak "$SHARED/store-$u"
    # pid 1 is not dumpable: its environment is closed in every mode
    [[ $output == *"can't open /proc/1/environ: Permission denied"* ]]
  done
}

# probe_context DIR: a Dockerfile whose RUN --security=insecure step runs
# pid1probe (tests/integration/sandbox/pid1probe.c) against the step's pid 1.
probe_context() {
  mkdir -p "$1"
  gcc -static -O1 -o "$1/pid1probe" "$KILN_SRC/tests/integration/sandbox/pid1probe.c"
  printf 'ARG BASE\nFROM $BASE\nCOPY pid1probe /pid1probe\nRUN --security=insecure /pid1probe %s\n' "$CANARY_ENV" \
    > "$1/Dockerfile"
  chmod -R a+rX "$1"
}

# check_pid1_closed: the last `run` built, and the step reached nothing of pid 1.
check_pid1_closed() {
  echo "$output"
  [ "$status" -eq 0 ]
  local a got
  for a in environ maps mem fd_list fd_open ptrace_attach ptrace_seize vm_readv pidfd_getfd; do
    got=$(sed -nE "s/^#[0-9]+ [0-9.]+ $a=//p" <<< "$output")
    [ -n "$got" ] || { echo "no result for $a" >&2; return 1; }
    case "$got" in EACCES | EPERM) ;; *) echo "pid 1: $a gave '$got'" >&2; return 1 ;; esac
  done
  ! grep -E '^#[0-9]+ [0-9.]+ (fd_listed|fd_escape)=' <<< "$output" || false
  grep -qE '^#[0-9]+ [0-9.]+ environ_marker=absent$' <<< "$output"
}

@test "leaks: RUN --security=insecure reaches nothing through pid 1 (environ, fds, mem, ptrace) as root, with subuid ranges and in single ID mode" {
  require_root
  probe_context "$TEST_TMP/ctx"
  KILN_LEAK_TEST=$CANARY_ENV run "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" --no-cache \
    --allow security.insecure --build-arg "BASE=$BUSYBOX_IMAGE" --no-push "$TEST_TMP/ctx"
  check_pid1_closed
  plain_users kiln-leak
  local u
  for u in "${PLAIN_USERS[@]}"; do
    probe_context "$SHARED/ctx-$u"
    KILN_LEAK_TEST=$CANARY_ENV run run_as "$u" "$KILN" build --root "$SHARED/store-$u" --insecure-registry "$REGISTRY" \
      --allow security.insecure --build-arg "BASE=$BUSYBOX_IMAGE" --no-push --no-cache "$SHARED/ctx-$u"
    [[ $output == *"user namespace: "$( [ $u = kiln-leak-sub ] && echo full || echo single )* ]]
    check_pid1_closed
  done
}

@test "leaks: a RUN --mount=type=secret lives in memory: no byte of it in the store while the step runs or after SIGKILL" {
  local secret=kiln-secret-canary-58e0
  printf '%s\n' "$secret" > "$TEST_TMP/secret.txt"
  mkdir -p "$TEST_TMP/ctx"
  printf 'ARG BASE\nFROM $BASE\nRUN --mount=type=secret,id=tok,mode=0440,uid=0,gid=0 grep -c %s /run/secrets/tok && ls -ln /run/secrets/tok && echo step-running && sleep 30\n' \
    "$secret" > "$TEST_TMP/ctx/Dockerfile"
  "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
    --secret "id=tok,src=$TEST_TMP/secret.txt" --no-push --no-cache "$TEST_TMP/ctx" > "$TEST_TMP/out" 2>&1 &
  local pid=$!
  for _ in $(seq 1 150); do grep -qE '^#[0-9]+ [0-9.]+ step-running$' "$TEST_TMP/out" && break; sleep 0.1; done
  cat "$TEST_TMP/out"
  grep -qE '^#[0-9]+ [0-9.]+ step-running$' "$TEST_TMP/out"
  # the step read it (mode and owner as asked), and the store holds no copy
  grep -qE '^#[0-9]+ [0-9.]+ 1$' "$TEST_TMP/out"
  grep -qE '^#[0-9]+ [0-9.]+ -r--r----- +[0-9]+ 0 +0 ' "$TEST_TMP/out"
  ! grep -rqs "$secret" "$TEST_TMP/store" || false
  kill -KILL "$pid"
  wait "$pid" || true
  for _ in $(seq 1 50); do pgrep -f "sleep 30" > /dev/null || break; sleep 0.1; done
  ! grep -rqs "$secret" "$TEST_TMP/store" || false
}
