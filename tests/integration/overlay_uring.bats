#!/usr/bin/env bats
# FUSE over io_uring (src/overlay/overlay_ring.h, issue 21): where the kernel
# offers it (Linux 6.14+ with the fuse module's enable_uring on), kiln's
# overlay takes a step's requests from one io_uring queue per CPU instead of
# reading /dev/fuse. The kernel only offers it with the parameter on, an
# administrator's choice, so these tests switch it on for their builds and
# back to what it was (a connection that started with it keeps it). The
# caching contract through the queues, in every ID mode, is in
# overlay_cache.bats.

load helpers

setup_file() {
  require_root
  build_file_setup
}
teardown_file() { registry_stop_all; }
setup() {
  kiln_setup
  fuse_uring_on
  mkdir -p "$TEST_TMP/ctx"
}
teardown() {
  fuse_uring_restore
  kiln_teardown
}

# answered OUTPUT: the requests the queues answered, summed over the mounts
answered() {
  grep -oE 'fuse io_uring: [0-9]+ requests answered' <<< "$1" | awk '{ n += $3 } END { print n + 0 }'
}

@test "io_uring: a step's data and metadata go through the queues and come out right" {
  # sizes around the 1 MiB payload (max_write), names of every length class,
  # links, renames, modes; the next step and the image read them back
  cat > "$TEST_TMP/ctx/Dockerfile" <<'DF'
ARG BASE
FROM $BASE
RUN mkdir -p /d/sub && cd /d \
 && for n in 1 4095 4096 65537 1048575 1048576 1048577 3000000; do head -c $n /dev/urandom > f$n; done \
 && for i in $(seq 1 500); do echo $i > sub/s$i; done \
 && ln f4096 hard && ln -s f65537 soft && mv f1 renamed && chmod 0640 f4095 && rm sub/s7 \
 && cat f3000000 f1048577 > cat2 \
 && sha256sum f* renamed hard soft cat2 > /sums && ls sub | wc -l > /count
RUN cd /d && sha256sum -c /sums > /dev/null && echo sums-ok && [ "$(cat /count)" = 499 ] \
 && [ "$(stat -c %a f4095)" = 640 ] && [ "$(readlink soft)" = f65537 ] && [ "$(stat -c %h hard)" = 2 ] && echo meta-ok
DF
  run "$KILN" build -v debug --progress plain --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --no-push --oci-layout "$TEST_TMP/out:t" "$TEST_TMP/ctx"
  grep -E 'io_uring|-ok|error' <<< "$output" || true
  [ "$status" -eq 0 ]
  grep -qE 'fuse io_uring: [0-9]+ queues of [0-9]+ entries' <<< "$output"
  grep -q 'sums-ok' <<< "$output"
  grep -q 'meta-ok' <<< "$output"
  [ "$(answered "$output")" -gt 1000 ]
  # the image's files are the step's (read by umoci, not kiln)
  umoci unpack --image "$TEST_TMP/out:t" "$TEST_TMP/b" > /dev/null
  (cd "$TEST_TMP/b/rootfs/d" && sha256sum -c "$TEST_TMP/b/rootfs/sums")
  [ "$(ls "$TEST_TMP/b/rootfs/d/sub" | wc -l)" -eq 499 ]
}

@test "io_uring: KILN_FUSE_URING=off keeps every request on /dev/fuse" {
  printf 'ARG BASE\nFROM $BASE\nRUN echo a > /a && cat /a\n' > "$TEST_TMP/ctx/Dockerfile"
  KILN_FUSE_URING=off run "$KILN" build -v debug --progress plain --root "$TEST_TMP/store" \
    --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" --no-push "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  [[ $output != *"fuse io_uring"* ]]
  # and on by default (the parameter is on)
  run "$KILN" build -v debug --progress plain --root "$TEST_TMP/store" --no-cache \
    --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" --no-push "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  [ "$(answered "$output")" -gt 0 ]
  # a value kiln does not know is said, not ignored
  KILN_FUSE_URING=yes run "$KILN" build --progress plain --root "$TEST_TMP/store" --no-cache \
    --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" --no-push "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  [[ $output == *"KILN_FUSE_URING='yes' is neither 'auto' nor 'off'"* ]]
}

@test "io_uring: with the parameter off, requests go through /dev/fuse and the debug log says why" {
  echo N > "$FUSE_URING_PARAM"
  printf 'ARG BASE\nFROM $BASE\nRUN echo a > /a && cat /a\n' > "$TEST_TMP/ctx/Dockerfile"
  run "$KILN" build -v debug --progress plain --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --no-push "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  [[ $output != *"fuse io_uring:"* ]]
  [[ $output == *"this kernel has FUSE over io_uring, off as the fuse module's enable_uring parameter is"* ]]
}

@test "io_uring: parallel stages, each on its own mount and queues, build the same files" {
  cat > "$TEST_TMP/ctx/Dockerfile" <<'DF'
ARG BASE
FROM $BASE AS a
RUN mkdir /o && for i in $(seq 1 300); do echo a$i > /o/$i; done && head -c 2000000 /dev/zero > /o/z
FROM $BASE AS b
RUN mkdir /o && for i in $(seq 1 300); do echo b$i > /o/$i; done && head -c 2000000 /dev/zero > /o/z
FROM $BASE
COPY --from=a /o /a
COPY --from=b /o /b
RUN [ "$(cat /a/300)" = a300 ] && [ "$(cat /b/300)" = b300 ] && [ "$(wc -c < /a/z)" = 2000000 ] && [ "$(ls /a /b | wc -l)" -ge 602 ] && echo parallel-ok
DF
  run "$KILN" build -v debug --progress plain --jobs 2 --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --no-push "$TEST_TMP/ctx"
  grep -E 'io_uring|-ok|error' <<< "$output" || true
  [ "$status" -eq 0 ]
  grep -q 'parallel-ok' <<< "$output"
  [ "$(grep -c 'requests answered through the queues' <<< "$output")" -ge 3 ]
}

@test "io_uring: SIGINT and SIGTERM mid-RUN with the queues busy exit 130/143 and leave no process, thread or mount" {
  printf 'ARG BASE\nFROM $BASE\nRUN echo started; while :; do echo x > /f; cat /f > /dev/null; done\nRUN echo never\n' \
    > "$TEST_TMP/ctx/Dockerfile"
  local sig want
  for sig in INT TERM; do
    [ $sig = TERM ] && want=143 || want=130
    "$KILN" build -v debug --progress plain --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" \
      --build-arg "BASE=$BUSYBOX_IMAGE" --no-push "$TEST_TMP/ctx" > "$TEST_TMP/out" 2>&1 &
    local pid=$!
    for _ in $(seq 1 100); do grep -qE '^#[0-9]+ [0-9.]+ started$' "$TEST_TMP/out" && break; sleep 0.1; done
    grep -qE '^#[0-9]+ [0-9.]+ started$' "$TEST_TMP/out"
    grep -q 'fuse io_uring: [0-9]* queues' "$TEST_TMP/out"
    sleep 0.5
    kill -$sig $pid
    local rc=0
    wait $pid || rc=$?
    grep -E 'io_uring|interrupted' "$TEST_TMP/out" || true
    [ "$rc" -eq "$want" ]
    ! grep -q "echo never" "$TEST_TMP/out" || false
    ! grep -q "$TEST_TMP" /proc/self/mountinfo || false
    ! pgrep -f "kiln build -v debug --progress plain --root $TEST_TMP/store" > /dev/null || false
    [ -z "$(ls -A "$TEST_TMP/store/tmp")" ]
  done
}
