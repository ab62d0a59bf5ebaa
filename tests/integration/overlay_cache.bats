#!/usr/bin/env bats
# The caching contract of kiln's overlay (issue 21): kiln is the only writer
# of the mounts it serves, so it lets the kernel cache entries, attributes,
# negative entries and symlink targets for a day (docs/design/overlay.md,
# "Threading"). After a step's own write, truncate, create, rename, unlink,
# rmdir, mkdir, chmod, chown, link and symlink, every path it reads must show
# the new state, in that step and in the next one, in every ID mode (root, a
# plain user with /etc/subuid ranges, one without: single mode, where chown
# to unmapped ids goes through the seccomp supervisor). The checks are in
# overlay_cache/check.sh; it reads each path before changing it, so that the
# kernel holds it in its caches.

load helpers

setup_file() {
  require_root
  kiln_setup
  registry_start
  fixtures_push all
  export REGISTRY BUSYBOX_IMAGE
}
teardown_file() { registry_stop_all; }
setup() {
  kiln_setup
  fuse_dev_open_for_all
  shared_dir
  mkdir -p "$SHARED/ctx"
  cp "$KILN_SRC/tests/integration/overlay_cache/check.sh" "$SHARED/ctx/"
  # busybox has no setcap: the static helper of build_ptrace.bats
  gcc -static -O1 -o "$SHARED/ctx/xattr" "$KILN_SRC/tests/integration/sandbox/xattr.c"
  # stage a: each change in its own step after the files were committed;
  # stage b: the files made and changed in one step
  cat > "$SHARED/ctx/Dockerfile" <<'DF'
ARG BASE
FROM $BASE AS a
COPY check.sh /
COPY xattr /usr/bin/xattr
RUN sh /check.sh setup
RUN sh /check.sh same
RUN sh /check.sh next
FROM $BASE AS b
COPY check.sh /
COPY xattr /usr/bin/xattr
RUN sh /check.sh setup && sh /check.sh same
RUN sh /check.sh next
COPY --from=a /cc /a-cc
DF
}
teardown() {
  fuse_uring_restore
  shared_dir_cleanup
  kiln_teardown
}

# cache_build MODE [uring]: build the context as root, as a plain user with
# subuid ranges (sub) or without (single); every check must pass and kiln
# must have run in MODE (with uring: every mount's requests through its
# io_uring queues).
cache_build() {
  local mode=$1 v=()
  [ "${2:-}" != uring ] || { fuse_uring_on; v=(-v debug); }
  mode_build "$mode" cache "$SHARED/store" "$SHARED/out" "${v[@]}" --progress plain --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --no-push --oci-layout "$SHARED/out/o:t" "$SHARED/ctx"
  echo "$output" | grep -E 'STALE|check.sh|user namespace|error' || true
  [[ $output != *STALE* ]]
  # every check ran: 3 passes of stage a and b, each ending with "all new"
  [ "$(grep -c 'check.sh [a-z]*: all new' <<< "$output")" -eq 6 ]
  [ "$(grep -c 'ok: ' <<< "$output")" -gt 80 ]
  grep -q 'ok: kill: write drops capabilities' <<< "$output"
  if [ "${2:-}" = uring ]; then
    # each of the two stages' mounts answered through its queues
    [ "$(grep -cE 'fuse io_uring: [0-9]{3,} requests answered through the queues' <<< "$output")" -ge 2 ]
  fi
}

@test "overlay cache: after each change the step and the next one read the new state (root)" {
  cache_build root
}

@test "overlay cache: after each change the step and the next one read the new state (subuid)" {
  cache_build sub
}

@test "overlay cache: after each change the step and the next one read the new state (single)" {
  cache_build single
}

@test "overlay cache: the same through FUSE over io_uring (root)" {
  cache_build root uring
}

@test "overlay cache: the same through FUSE over io_uring (subuid)" {
  cache_build sub uring
}

@test "overlay cache: the same through FUSE over io_uring (single)" {
  cache_build single uring
}
