#!/usr/bin/env bats
# One overlay mount per stage: the RUN steps share the FUSE mount (the
# overlay's commit starts a fresh upper on it; a COPY's layer is added to its
# view, overlay_layers.bats has more of that), and RUN --mount targets appear
# and disappear from step to step without ever reaching a layer. Checked as root, as a plain user with
# subuid ranges and as one without (single ID mode).

load helpers

setup_file() {
  kiln_setup
  registry_start
  fixtures_push busybox
  export REGISTRY BUSYBOX_IMAGE
}
teardown_file() { registry_stop_all; }
setup() { kiln_setup; SHARED=""; }
teardown() {
  shared_dir_cleanup
  kiln_teardown
}

# kb AS STORE CONTEXT OUT: build CONTEXT into the OCI layout OUT:t, as root
# (AS = root) or as the named plain user.
kb() {
  local as=$1 store=$2 ctx=$3 out=$4
  if [ "$as" = root ]; then
    "$KILN" build --root "$store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" --no-push \
      --progress plain --verbosity debug --oci-layout "$out:t" "$ctx"
  else
    mkdir -p "$store" "$(dirname "$out")"
    chown "$as" "$store" "$(dirname "$out")"
    run_as "$as" "$KILN" build --root "$store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
      --no-push --progress plain --verbosity debug --oci-layout "$out:t" "$ctx"
  fi
}

# layer_members LAYOUT N: the members of layer N (1-based, in manifest
# order) as GNU tar lists them, sorted.
layer_members() {
  local layout=$1 n=$2 m l
  m=$(jq -r '.manifests[0].digest' "$layout/index.json")
  l=$(jq -r ".layers[$((n - 1))].digest" "$layout/blobs/sha256/${m#sha256:}")
  tar -tzf "$layout/blobs/sha256/${l#sha256:}" | sed 's,/$,,' | LC_ALL=C sort
}

write_session_ctx() {
  mkdir -p "$1"
  cat > "$1/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE
RUN stat -c %d / > /dev1 && echo a > /f && echo keep > /k && ln /k /klink
RUN stat -c %d / > /dev2 && echo b >> /f && rm /k
ENV X=1
RUN stat -c %d / > /dev3 && cat /f > /g
COPY Dockerfile /Dockerfile.copy
RUN stat -c %d / > /dev4 && test -f /Dockerfile.copy && cat /klink > /h
EOF
}

check_session_image() { # LAYOUT ROOTFS LOG
  local layout=$1 r=$2 log=$3
  # One mount for all four RUNs (across ENV and COPY): the same superblock
  # (a later mount may get a recycled device number, so the log says that
  # one was made once, at the start, and the COPY's layer was added to it).
  [ "$(cat "$r/dev1")" = "$(cat "$r/dev2")" ]
  [ "$(cat "$r/dev2")" = "$(cat "$r/dev3")" ]
  [ "$(cat "$r/dev3")" = "$(cat "$r/dev4")" ]
  [ "$(grep -c "RUN on a new mount" <<< "$log")" -eq 1 ]
  [ "$(grep -c "RUN on a new mount of the stage's 1 layers" <<< "$log")" -eq 1 ]
  [ "$(grep -c "RUN on the stage's mount of 2 layers, step 2 on it" <<< "$log")" -eq 1 ]
  [ "$(grep -c "RUN on the stage's mount of 3 layers, step 3 on it" <<< "$log")" -eq 1 ]
  [ "$(grep -c "added 1 layer to the stage's mount" <<< "$log")" -eq 1 ]
  [ "$(grep -c "RUN on the stage's mount of 5 layers, step 4 on it" <<< "$log")" -eq 1 ]
  [ "$(cat "$r/f")" = "$(printf 'a\nb')" ]
  [ "$(cat "$r/g")" = "$(printf 'a\nb')" ]
  [ ! -e "$r/k" ]
  [ "$(cat "$r/klink")" = keep ]
  [ "$(cat "$r/h")" = keep ]
  # Each RUN's layer holds only what that step changed.
  [ "$(layer_members "$layout" 2 | tr '\n' ' ')" = "dev1 f k klink " ]
  [ "$(layer_members "$layout" 3 | tr '\n' ' ')" = ".wh.k dev2 f " ]
  [ "$(layer_members "$layout" 4 | tr '\n' ' ')" = "dev3 g " ]
  [ "$(layer_members "$layout" 6 | tr '\n' ' ')" = "dev4 h " ]
}

@test "session: the RUN steps share one mount, each layer holds its own step's changes; a COPY's layer joins it" {
  write_session_ctx "$TEST_TMP/ctx"
  run kb root "$TEST_TMP/store" "$TEST_TMP/ctx" "$TEST_TMP/o"
  echo "$output"
  [ "$status" -eq 0 ]
  umoci unpack --image "$TEST_TMP/o:t" "$TEST_TMP/u" >/dev/null
  check_session_image "$TEST_TMP/o" "$TEST_TMP/u/rootfs" "$output"
  # The layout's layer blobs are the store's, hard-linked, and each link is recorded so the store
  # checks the blob before handing it out again (issue 16 item 2: the layout must not be a way to
  # modify the store; build_immutable.bats edits one).
  local m l
  m=$(jq -r '.manifests[0].digest' "$TEST_TMP/o/index.json")
  l=$(jq -r '.layers[1].digest' "$TEST_TMP/o/blobs/sha256/${m#sha256:}")
  [ "$(stat -c %i "$TEST_TMP/o/blobs/sha256/${l#sha256:}")" = "$(stat -c %i "$TEST_TMP/store/blobs/sha256/${l#sha256:}")" ]
  [ -f "$TEST_TMP/store/bloblinks/sha256/${l#sha256:}" ]
  cmp "$TEST_TMP/o/blobs/sha256/${l#sha256:}" "$TEST_TMP/store/blobs/sha256/${l#sha256:}"
  # nothing left behind: no temp dir, no mount
  [ -z "$(ls -A "$TEST_TMP/store/tmp" 2>/dev/null)" ]
  ! grep -q fuse.kiln /proc/self/mountinfo || false
}

@test "session: the same as a plain user with subuid ranges and without (single ID mode)" {
  fuse_dev_open_for_all
  test_user_create kiln-bsub --subuid
  test_user_create kiln-bsingle
  shared_dir
  write_session_ctx "$SHARED/ctx"
  chmod -R a+rX "$SHARED/ctx"
  for u in kiln-bsub kiln-bsingle; do
    run kb "$u" "$SHARED/store-$u" "$SHARED/ctx" "$SHARED/$u/o"
    echo "$output"
    [ "$status" -eq 0 ]
    umoci unpack --image "$SHARED/$u/o:t" "$TEST_TMP/u-$u" >/dev/null
    check_session_image "$SHARED/$u/o" "$TEST_TMP/u-$u/rootfs" "$output"
  done
}

@test "session: RUN --mount targets come and go between steps on one mount and never reach a layer" {
  mkdir -p "$TEST_TMP/ctx"
  cat > "$TEST_TMP/ctx/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE
RUN --mount=type=cache,target=/newdir/cache echo x > /newdir/cache/c && ls -a /newdir > /seen1
RUN ls -a / > /seen2 && test ! -e /newdir
RUN --mount=type=tmpfs,target=/tmp2 test -d /tmp2 && touch /tmp2/x && ls / > /seen3
RUN test ! -e /tmp2 && mkdir /newdir && echo real > /newdir/r
RUN --mount=type=cache,target=/newdir/cache cat /newdir/r > /seen5 && ls /newdir/cache > /seen5c && ls /newdir > /seen6
RUN ls /newdir > /seen7 && stat -c %d / > /dev7
EOF
  run kb root "$TEST_TMP/store" "$TEST_TMP/ctx" "$TEST_TMP/o"
  echo "$output"
  [ "$status" -eq 0 ]
  umoci unpack --image "$TEST_TMP/o:t" "$TEST_TMP/u" >/dev/null
  local r="$TEST_TMP/u/rootfs"
  [ "$(tr '\n' ' ' < "$r/seen1")" = ". .. cache " ]
  ! grep -qx newdir "$r/seen2" || false
  grep -qx tmp2 "$r/seen3"
  [ ! -e "$r/tmp2" ]
  [ "$(cat "$r/seen5")" = real ]
  [ "$(cat "$r/seen5c")" = c ]        # the cache kept its content between steps
  [ "$(tr '\n' ' ' < "$r/seen6")" = "cache r " ]
  [ "$(cat "$r/seen7")" = r ]         # placeholder gone once unmasked
  [ "$(ls -A "$r/newdir")" = r ]
  for n in 2 3 4 5 6 7; do
    ! layer_members "$TEST_TMP/o" "$n" | grep -E '^(newdir/cache|tmp2)' || false
  done
  [ "$(layer_members "$TEST_TMP/o" 2 | tr '\n' ' ')" = "seen1 " ]
  [ "$(layer_members "$TEST_TMP/o" 5 | tr '\n' ' ')" = "newdir newdir/r " ]
}

@test "cache mount uid/gid/mode as a plain user: given to the ids from inside the user namespace (subuid), prune removes what the step wrote; single ID mode says why not" {
  fuse_dev_open_for_all
  test_user_create kiln-bsub --subuid
  test_user_create kiln-bsingle
  shared_dir
  mkdir -p "$SHARED/ctx"
  cat > "$SHARED/ctx/Dockerfile" <<'EOF2'
ARG BASE
FROM $BASE
RUN --mount=type=cache,id=owned,target=/var/cache/owned,uid=1234,gid=2345,mode=0700 stat -c '%u:%g:%a' /var/cache/owned > /owned
USER 1234:2345
RUN --mount=type=cache,id=owned,target=/var/cache/owned,uid=1234,gid=2345,mode=0700 mkdir -p /var/cache/owned/d && echo x > /var/cache/owned/d/f && ls -n /var/cache/owned/d > /tmp/written
EOF2
  chmod -R a+rX "$SHARED/ctx"
  run kb kiln-bsub "$SHARED/store-sub" "$SHARED/ctx" "$SHARED/sub/o"
  echo "$output"
  [ "$status" -eq 0 ]
  umoci unpack --image "$SHARED/sub/o:t" "$TEST_TMP/u" >/dev/null
  [ "$(cat "$TEST_TMP/u/rootfs/owned")" = "1234:2345:700" ]
  grep -q ' 1234 *2345 .* f$' "$TEST_TMP/u/rootfs/tmp/written"
  # On the host the cache belongs to subordinate ids the user cannot delete
  # as itself; prune --all removes it inside a user namespace.
  [ -n "$(find "$SHARED/store-sub/cache" -mindepth 1 -maxdepth 1)" ]
  run run_as kiln-bsub "$KILN" prune --root "$SHARED/store-sub" --all
  echo "$output"
  [ "$status" -eq 0 ]
  [ -z "$(find "$SHARED/store-sub/cache" -mindepth 1 -maxdepth 1)" ]
  # Single ID mode maps only root: a clear error naming what is missing.
  run kb kiln-bsingle "$SHARED/store-single" "$SHARED/ctx" "$SHARED/single/o"
  echo "$output"
  [ "$status" -ne 0 ]
  [[ $output == *"uid/gid other than 0 need subordinate ID ranges"* ]]
}
