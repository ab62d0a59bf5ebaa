#!/usr/bin/env bats
# Resource limits of RUN steps (issue 16, item 7): --memory and
# --pids-limit, their defaults, the mechanism the log names (a cgroup kiln
# may make, else rlimits plus kiln's own accounting), fork bombs and memory
# fills killed with a clear error, and no cgroup left behind — as root and
# as plain users with and without subuid ranges.

load helpers

setup_file() { build_file_setup; }
teardown_file() { registry_stop_all; }
setup() { kiln_setup; SHARED=""; }
teardown() {
  shared_dir_cleanup
  kiln_teardown
}

# The steps' cgroups kiln made and did not remove (none may exist after a build).
kiln_cgroups() {
  find /sys/fs/cgroup -maxdepth 6 -type d -name 'kiln-[0-9]*-*' 2>/dev/null
}

# limits_ctx DIR RUN-COMMAND: a one-step Dockerfile.
limits_ctx() {
  mkdir -p "$1"
  printf 'ARG BASE\nFROM $BASE\nRUN %s\n' "$2" > "$1/Dockerfile"
  chmod -R a+rX "$1"
}

# kbl [as USER] STORE CONTEXT [FLAGS...]: build with a 180 s bound.
kbl() {
  local as=()
  if [ "$1" = as ]; then as=(run_as "$2"); shift 2; fi
  local store=$1 ctx=$2
  shift 2
  "${as[@]}" timeout 180 "$KILN" build --root "$store" --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --no-push --no-cache "$@" "$ctx"
}

# bomb_ctx DIR: a fork bomb that never ends by itself.
bomb_ctx() {
  mkdir -p "$1"
  cat > "$1/Dockerfile" <<'DF'
ARG BASE
FROM $BASE
RUN b(){ b|b& }; b; sleep 600
DF
  chmod -R a+rX "$1"
}

# fill_ctx DIR: eight processes hold 12 MB each and wait: together over a
# 64m limit, each alone far below it (per-process rlimits alone would not
# stop them).
fill_ctx() {
  mkdir -p "$1"
  # Each shell keeps its 12 MB while it sleeps: with `sleep 600` last, sh
  # execs it and the string is gone, so only the short peak while it is
  # built exceeded the limit, and kiln's accounting (sampled) missed it
  # now and then (the step then slept to the test's timeout).
  cat > "$1/Dockerfile" <<'DF'
ARG BASE
FROM $BASE
RUN for i in 1 2 3 4 5 6 7 8; do sh -c 'x=$(yes | head -c 12000000); echo ${#x}; sleep 600; echo ${#x}' & done; sleep 600
DF
  chmod -R a+rX "$1"
}

# check_gone: nothing of the step is left: no cgroup, no process.
check_gone() {
  [ -z "$(kiln_cgroups)" ]
  processes_gone -f 'b\(\)\{ b\|b& \}'
  processes_gone -f 'head -c 12000000'
  processes_gone -fx 'sleep 600'
}

@test "limits: the log names the mechanism once; a build under the defaults works and leaves no cgroup" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'ARG BASE\nFROM $BASE\nRUN for i in 1 2 3 4 5 6 7 8; do sleep 0.2 & done; wait; echo one > /one\nRUN cat /one > /two\n' \
    > "$TEST_TMP/ctx/Dockerfile"
  run kbl "$TEST_TMP/store" "$TEST_TMP/ctx" --oci-layout "$TEST_TMP/o:t"
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(grep -c 'resource limits: ' <<< "$output")" -eq 1 ]
  # the default memory is 3/4 of the machine's, in whole MiB
  local mem
  mem=$(( $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) * 1024 / 4 * 3 / 1048576 ))
  [[ $output == *"resource limits: memory ${mem}m, 4096 tasks per step, enforced by cgroup v"* ]]
  check_gone
}

@test "limits: a fork bomb under the default task limit is killed with a clear error; the machine stays usable" {
  bomb_ctx "$TEST_TMP/ctx"
  SECONDS=0
  run kbl "$TEST_TMP/store" "$TEST_TMP/ctx"
  echo "$output" | grep -v "can't fork" | tail -20
  [ "$status" -eq 1 ]
  [[ $output == *"RUN step killed: it reached its process limit (--pids-limit 4096)"* ]]
  [ "$SECONDS" -lt 60 ]
  check_gone
  # the host can still fork: a trivial command runs
  [ "$(sh -c 'echo ok')" = ok ]
}

@test "limits: memory fills with --memory 64m are killed as out of memory (one process, and many small ones)" {
  mkdir -p "$TEST_TMP/ctx1"
  printf 'ARG BASE\nFROM $BASE\nRUN head -c 300m /dev/zero | tail | wc -c\n' > "$TEST_TMP/ctx1/Dockerfile"
  run kbl "$TEST_TMP/store" "$TEST_TMP/ctx1" --memory 64m
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"RUN step killed: out of memory (--memory 64m)"* ]]
  check_gone
  fill_ctx "$TEST_TMP/ctx2"
  run kbl "$TEST_TMP/store" "$TEST_TMP/ctx2" --memory 64m
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"RUN step killed: out of memory (--memory 64m)"* ]]
  check_gone
}

@test "limits: SIGTERM mid-step removes the step's cgroup" {
  limits_ctx "$TEST_TMP/ctx" "echo step-running; sleep 600"
  # exec: $! is kiln itself, whose pid names its cgroups
  (exec "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
    --no-push --no-cache "$TEST_TMP/ctx") > "$TEST_TMP/out" 2>&1 &
  local pid=$!
  for _ in $(seq 1 150); do grep -qE '^#[0-9]+ [0-9.]+ step-running$' "$TEST_TMP/out" && break; sleep 0.1; done
  cat "$TEST_TMP/out"
  grep -qE '^#[0-9]+ [0-9.]+ step-running$' "$TEST_TMP/out"
  # while the step runs its cgroups exist, named after this kiln
  local during
  during=$(kiln_cgroups | grep -c "/kiln-$pid-" || true)
  kill -TERM "$pid"
  local st=0
  wait "$pid" || st=$?
  [ "$st" -eq 143 ]
  [ "$during" -ge 1 ]
  check_gone
}

@test "limits: plain users with and without subuid ranges: rlimits and kiln's accounting contain a fork bomb and stop a memory fill" {
  plain_users kiln-lim
  local u
  for u in "${PLAIN_USERS[@]}"; do
    # RLIMIT_NPROC contains the bomb; kiln kills the step when its count
    # of the step's tasks sees 7/8 of the limit, but a busybox bomb whose
    # forks fail often dies out first: then the step ends by itself
    mkdir -p "$SHARED/bomb-$u"
    printf 'ARG BASE\nFROM $BASE\nRUN b(){ b|b& }; b; sleep 2; exit 3\n' > "$SHARED/bomb-$u/Dockerfile"
    chmod -R a+rX "$SHARED/bomb-$u"
    SECONDS=0
    run kbl as "$u" "$SHARED/store-$u" "$SHARED/bomb-$u" --pids-limit 300
    echo "$output" | grep -v "can't fork" | tail -20
    # killed at the limit (1), or the step ended by itself (its status, 3)
    [ "$status" -eq 1 ] || [ "$status" -eq 3 ]
    # this machine gives plain users no writable cgroup
    [[ $output == *"resource limits: memory "*", 300 tasks per step, enforced by rlimits"* ]] ||
      [[ $output == *"resource limits: memory "*", 300 tasks per step, enforced by cgroup v2"* ]]
    [[ $output == *"RUN step killed: it reached its process limit (--pids-limit 300)"* ]] ||
      [[ $output == *"can't fork"*"exited with status"* ]]
    [ "$SECONDS" -lt 60 ]
    check_gone
    fill_ctx "$SHARED/fill-$u"
    run kbl as "$u" "$SHARED/store-$u" "$SHARED/fill-$u" --memory 64m
    echo "$output"
    [ "$status" -eq 1 ]
    [[ $output == *"RUN step killed: out of memory (--memory 64m)"* ]]
    check_gone
  done
}

@test "limits: bad --memory and --pids-limit values are usage errors; none disables both" {
  run "$KILN" build --memory 1k --no-push "$TEST_TMP"
  [ "$status" -eq 2 ]
  [[ $output == *"--memory: memory limit '1k' is below the minimum of 4m"* ]]
  run "$KILN" build --memory lots --no-push "$TEST_TMP"
  [ "$status" -eq 2 ]
  [[ $output == *"--memory"* ]]
  run "$KILN" build --pids-limit 12x --no-push "$TEST_TMP"
  [ "$status" -eq 2 ]
  [[ $output == *"--pids-limit: invalid process limit '12x'"* ]]
  limits_ctx "$TEST_TMP/ctx" "echo fine"
  run kbl "$TEST_TMP/store" "$TEST_TMP/ctx" --memory none --pids-limit none
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"resource limits: none (--memory none --pids-limit none)"* ]]
  check_gone
}
