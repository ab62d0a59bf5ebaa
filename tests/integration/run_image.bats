#!/usr/bin/env bats
# kiln run IMAGE: an image kiln built (refs/build in the store), a registry
# reference (pulled into the store) or an OCI layout, run in the step sandbox
# over a throwaway overlay. Checks stdout and exit status, the image config
# (Env, WorkingDir, User, Cmd) and its overrides, that nothing is committed
# or left behind (store contents, tmp/, processes, mounts), SIGTERM/SIGINT,
# and the same as plain users with and without subuid ranges.

load helpers
bats_require_minimum_version 1.5.0

setup_file() {
  kiln_setup
  registry_start
  fixtures_push busybox >/dev/null
  export REGISTRY BUSYBOX_IMAGE
  export BUSYBOX_LAYOUT
  BUSYBOX_LAYOUT=$(fixtures_layout busybox)
}
teardown_file() { registry_stop_all; }

setup() {
  kiln_setup
  SHARED=""
  fuse_dev_open_for_all
}
teardown() {
  shared_dir_cleanup
  kiln_teardown
}

# app_context DIR: an image with ENV, a user made by the Dockerfile, WORKDIR,
# USER and CMD, all of which kiln run must apply.
app_context() {
  mkdir -p "$1"
  cat > "$1/Dockerfile" <<'DF'
ARG BASE
FROM $BASE
ENV GREETING=hello
RUN echo "app:x:1234:1234::/home/app:/bin/sh" >> /etc/passwd && echo "app:x:1234:" >> /etc/group && \
    mkdir -p /work /home/app && chown app:app /work /home/app && echo kept > /work/from-build
WORKDIR /work
USER app
CMD ["sh", "-c", "echo $GREETING from $(id -un):$(id -g) in $(pwd) home=$HOME"]
DF
  chmod -R a+rX "$1"
}

# store_state STORE: what a run must not change (refs, blobs, layers,
# diffIDs; tmp/ must be empty).
store_state() {
  (cd "$1" && ls -A refs blobs/sha256 layers/sha256 diffids/sha256 2>/dev/null)
}

# assert_clean STORE TAG: tmp/ empty, no process left whose command line
# holds TAG or the store path (kiln's helper and the step's init are forks
# of kiln; the step's mounts live only in their mount namespace, so no
# process means no mount; kiln_teardown checks the host side).
assert_clean() {
  local s=$1 tag=$2 i
  [ -z "$(ls -A "$s/tmp")" ] || { echo "left in $s/tmp:"; ls -la "$s/tmp"; return 1; }
  for i in $(seq 1 20); do
    pgrep -f -- "$tag" >/dev/null || pgrep -f -- "$s" >/dev/null || break
    sleep 0.1
  done
  if pgrep -af -- "$tag" || pgrep -af -- "$s"; then
    echo "processes left behind"
    return 1
  fi
}

@test "run: an image built by kiln build, by its -t name: config applied, overrides, status, nothing committed" {
  local s=$TEST_TMP/store
  app_context "$TEST_TMP/ctx"
  run "$KILN" build --root "$s" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" --no-push \
    -t localhost/app:1 "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  local before
  before=$(store_state "$s")

  # Default: the image's Cmd, as its USER, in its WORKDIR, with its ENV and
  # HOME from its passwd. Nothing is pulled (--pull=never).
  run --separate-stderr "$KILN" run --root "$s" --pull=never localhost/app:1
  echo "$output"; echo "$stderr"
  [ "$status" -eq 0 ]
  [ "$output" = "hello from app:1234 in /work home=/home/app" ]
  [[ $stderr == *"built by kiln"* ]]

  # Exit status propagates; a signal gives 128+N.
  run "$KILN" run --root "$s" --pull=never localhost/app:1 sh -c 'echo out; exit 7'
  echo "$output"
  [ "$status" -eq 7 ]
  [[ $output == *out* ]]
  [[ $output == *"command 'sh' exited with status 7"* ]]
  run "$KILN" run --root "$s" --pull=never localhost/app:1 sh -c 'kill -KILL $$'
  [ "$status" -eq 137 ]
  # The command starts with no signal blocked (kiln's helper and init keep
  # SIGINT/SIGTERM blocked), so SIGTERM inside the step works.
  run --separate-stderr "$KILN" run --root "$s" --pull=never localhost/app:1 sh -c \
    'grep SigBlk /proc/self/status; sleep 100 & kill -TERM $!; wait $!; echo "sleep: $?"'
  echo "$output"
  [ "${lines[0]}" = "SigBlk:	0000000000000000" ]
  [ "${lines[1]}" = "sleep: 143" ]

  # Overrides; the command's own flags (-c, -u) are not kiln's.
  run --separate-stderr "$KILN" run --root "$s" --pull=never -u 0:0 -w /tmp -e GREETING=bye -e NEW=1 \
    localhost/app:1 sh -c 'echo $GREETING $NEW $(id -u):$(id -g) $(pwd); cat /work/from-build; \
      echo scratch > /work/from-build; echo x > /new-file; id -u -n'
  echo "$output"; echo "$stderr"
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = "bye 1 0:0 /tmp" ]
  [ "${lines[1]}" = "kept" ]
  [ "${lines[2]}" = "root" ]
  run --separate-stderr "$KILN" run --root "$s" --pull=never --entrypoint /bin/echo localhost/app:1 a -n b
  [ "$status" -eq 0 ]
  [ "$output" = "a -n b" ]
  run --separate-stderr "$KILN" run --root "$s" --pull=never -u app localhost/app:1 -- id -u
  [ "$output" = "1234" ]
  run --separate-stderr "$KILN" run --root "$s" --pull=never -u nosuch localhost/app:1 true
  [ "$status" -eq 1 ]
  [[ $stderr == *"'nosuch' not found in the image's /etc/passwd"* ]]

  # The writes above were thrown away.
  run --separate-stderr "$KILN" run --root "$s" --pull=never localhost/app:1 sh -c 'cat /work/from-build; ls /new-file'
  echo "$output"
  [ "$status" -eq 1 ]
  [ "$output" = "kept" ]
  [ "$(store_state "$s")" = "$before" ]
  assert_clean "$s" "$TEST_TMP"
}

@test "run: a registry reference is pulled into the store once, then runs offline" {
  # A registry of its own: this test stops it.
  registry_start
  fixtures_push busybox >/dev/null
  local s=$TEST_TMP/store
  run --separate-stderr "$KILN" run --root "$s" --pull=never "$BUSYBOX_IMAGE" true
  [ "$status" -eq 1 ]
  [[ $stderr == *"is not in store"*"(--pull=never)"* ]]
  # Plain HTTP needs saying so, as for kiln pull.
  run --separate-stderr "$KILN" run --root "$s" --retries 0 "$BUSYBOX_IMAGE" true
  [ "$status" -eq 1 ]
  [[ $stderr == *"$REGISTRY"* ]]

  local n0
  n0=$(grep -c 'GET /v2/library/busybox/blobs/' "$REGISTRY_LOG" || true)
  run --separate-stderr "$KILN" run --root "$s" --insecure-registry "$REGISTRY" "$BUSYBOX_IMAGE" \
    sh -c 'echo from the registry; exit 3'
  echo "$output"; echo "$stderr"
  [ "$status" -eq 3 ]
  [ "$output" = "from the registry" ]
  [[ $stderr == *"pulling $BUSYBOX_IMAGE"* ]]
  local n1
  n1=$(grep -c 'GET /v2/library/busybox/blobs/' "$REGISTRY_LOG")
  [ "$n1" -gt "$n0" ]
  # Recorded like kiln pull --store: the second run needs no registry.
  registry_stop
  run --separate-stderr "$KILN" run --root "$s" --insecure-registry "$REGISTRY" "$BUSYBOX_IMAGE" echo offline
  echo "$stderr"
  [ "$status" -eq 0 ]
  [ "$output" = "offline" ]
  [[ $stderr == *"from the store"* ]]
  run --separate-stderr "$KILN" run --root "$s" --insecure-registry "$REGISTRY" --pull=always --retries 0 \
    "$BUSYBOX_IMAGE" true
  [ "$status" -eq 1 ]
  assert_clean "$s" "$TEST_TMP"
}

@test "run: --oci-layout DIR:TAG, layout only read; corrupt and missing layouts are refused" {
  local s=$TEST_TMP/store
  # A private copy: the shared fixture cache is used by other work too.
  local L=$TEST_TMP/layout
  cp -a "$BUSYBOX_LAYOUT" "$L"
  local sum
  sum=$(cd "$L" && find . -printf '%p %m %s %T@\n' | sort | md5sum)
  run --separate-stderr "$KILN" run --root "$s" --oci-layout "$L:latest" -- sh -c 'echo in layout; id -u'
  echo "$output"; echo "$stderr"
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = "in layout" ]
  [ "${lines[1]}" = "0" ]
  # Without a tag: the only image. Cmd is /bin/sh (stdin is empty: exit 0).
  run "$KILN" run --root "$s" --oci-layout "$L"
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(cd "$L" && find . -printf '%p %m %s %T@\n' | sort | md5sum)" = "$sum" ]

  run --separate-stderr "$KILN" run --root "$s" --oci-layout "$L:nosuch" true
  [ "$status" -eq 1 ]
  [[ $stderr == *"no image tagged 'nosuch'"* ]]
  run --separate-stderr "$KILN" run --root "$s" --oci-layout "$TEST_TMP/absent:x" true
  [ "$status" -eq 1 ]
  [ ! -e "$TEST_TMP/absent" ]
  mkdir "$TEST_TMP/plain"
  run --separate-stderr "$KILN" run --root "$s" --oci-layout "$TEST_TMP/plain" true
  [ "$status" -eq 1 ]
  [[ $stderr == *"not an OCI image layout"* ]]
  [ -z "$(ls -A "$TEST_TMP/plain")" ]

  # A layer blob whose bytes do not match its digest never reaches the store.
  cp -a "$L" "$TEST_TMP/bad"
  local layer
  layer=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["layers"][0]["digest"][7:])' \
    "$TEST_TMP/bad/blobs/sha256/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"][7:])' "$TEST_TMP/bad/index.json")")
  local size
  size=$(stat -c %s "$TEST_TMP/bad/blobs/sha256/$layer")
  chmod u+w "$TEST_TMP/bad/blobs/sha256/$layer"
  printf 'X' | dd of="$TEST_TMP/bad/blobs/sha256/$layer" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
  local s2=$TEST_TMP/store2
  run --separate-stderr "$KILN" run --root "$s2" --oci-layout "$TEST_TMP/bad" true
  echo "$stderr"
  [ "$status" -eq 1 ]
  [[ $stderr == *"sha256:$layer"* ]]
  [ -z "$(ls -A "$s2/layers/sha256" 2>/dev/null)" ]
  assert_clean "$s" "$TEST_TMP"
  assert_clean "$s2" "$TEST_TMP"
}

@test "run: SIGTERM and SIGINT kill the command, remove the upper, exit 143/130" {
  local s=$TEST_TMP/store sig code
  for sig in TERM INT; do
    "$KILN" run --root "$s" --oci-layout "$BUSYBOX_LAYOUT" -- sh -c 'echo started; touch /upper-file; exec sleep 1001' \
      > "$TEST_TMP/out" 2>&1 &
    local pid=$! i
    for i in $(seq 1 100); do
      grep -q started "$TEST_TMP/out" && break
      sleep 0.1
    done
    grep -q started "$TEST_TMP/out"
    [ -n "$(ls -A "$s/tmp")" ]
    kill -"$sig" "$pid"
    code=0
    wait "$pid" || code=$?
    cat "$TEST_TMP/out"
    if [ "$sig" = TERM ]; then [ "$code" -eq 143 ]; else [ "$code" -eq 130 ]; fi
    assert_clean "$s" "sleep 1001"
  done
}

@test "run: usage errors and --help" {
  run "$KILN" run
  [ "$status" -eq 2 ]
  [[ $output == *"no IMAGE given"* ]]
  run "$KILN" run --overlay --oci-layout "$BUSYBOX_LAYOUT" true
  [ "$status" -eq 2 ]
  [[ $output == *"--overlay needs --rootfs"* ]]
  run "$KILN" run --rootfs / --oci-layout "$BUSYBOX_LAYOUT" true
  [ "$status" -eq 2 ]
  run "$KILN" run --pull=sometimes x
  [ "$status" -eq 2 ]
  run "$KILN" run --rootfs / --entrypoint sh true
  [ "$status" -eq 2 ]
  run "$KILN" run --root "$TEST_TMP/store" --oci-layout "$BUSYBOX_LAYOUT" --entrypoint ''
  [ "$status" -eq 2 ] || [ "$status" -eq 1 ]
  [[ $output == *"has no Entrypoint or Cmd"* ]]
  run "$KILN" run --help
  [ "$status" -eq 0 ]
  for f in --oci-layout --rootfs --entrypoint --user --env --workdir --network --userns --pull --platform \
    --insecure-registry --registry-certificate --show-changes "IMAGE [COMMAND"; do
    [[ $output == *"$f"* ]] || { echo "help lacks $f"; return 1; }
  done
}

# as_user USER WHO [--subuid]: build the app image into the user's own store
# and run it, from the build result and from an OCI layout. WHO is what the
# image's Cmd reports for `id -un`:`id -g`: the image's user with full
# mapping; root in single mode, which maps only uid 0 (the documented
# limit: files the step creates are still recorded as the image user's).
# chown inside the step is recorded with the true owner in both modes.
as_user() {
  local u=$1 who=$2
  shift 2
  test_user_create "$u" "$@"
  shared_dir
  app_context "$SHARED/ctx"
  local s=$SHARED/store
  mkdir -p "$s" "$SHARED/out"
  chown "$u" "$s" "$SHARED/out"
  run run_as "$u" "$KILN" build --root "$s" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
    --no-push -t app --oci-layout "$SHARED/out/app:v1" "$SHARED/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  local before
  before=$(store_state "$s")
  run --separate-stderr run_as "$u" "$KILN" run --root "$s" --pull=never app
  echo "$output"; echo "$stderr"
  [ "$status" -eq 0 ]
  [ "$output" = "hello from $who in /work home=/home/app" ]
  run --separate-stderr run_as "$u" "$KILN" run --root "$s" --pull=never --show-changes -u 0 app sh -c \
    'mkdir /work/d && chown 1234:1234 /work/d && touch /work/d/f && exit 5'
  echo "$output"; echo "$stderr"
  [ "$status" -eq 5 ]
  run --separate-stderr run_as "$u" "$KILN" run --root "$s" --pull=never --show-changes -u 0 app sh -c \
    'mkdir /work/d && chown 1234:1234 /work/d && touch /work/d/f'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"add 040755 1234:1234 /work/d"* ]]
  [[ $output == *"add 100644 0:0 /work/d/f"* ]]
  run --separate-stderr run_as "$u" "$KILN" run --root "$s" --oci-layout "$SHARED/out/app:v1" -- \
    sh -c 'echo $GREETING; id -g'
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$output" = "hello
${who#*:}" ]
  [ "$(store_state "$s")" = "$before" ]
  assert_clean "$s" "$SHARED"
}

@test "run: as a plain user with subuid ranges (full mapping)" {
  require_root
  as_user kiln-t-sub app:1234 --subuid
  run run_as kiln-t-sub "$KILN" run --root "$SHARED/store" --pull=never app true
  [[ $output == *"user namespace: full"* ]]
}

@test "run: as a plain user without subuid ranges (single mapping)" {
  require_root
  # the image's USER app shows through id in single mode too (the
  # supervisor's fake credentials; docs/compatibility.md)
  as_user kiln-t-plain app:1234
  run run_as kiln-t-plain "$KILN" run --root "$SHARED/store" --pull=never app true
  [[ $output == *"user namespace: single"* ]]
  [[ $output == *"the step runs as uid 0 and sees 1234:1234 only through getuid()"* ]]
}
