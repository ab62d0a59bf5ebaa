#!/usr/bin/env bats
# kiln pull --store: registry images into the layer store, pipelined.
# Extracted layers are checked against their blobs with GNU tar and Python's
# tarfile (fetch_check.py reads the index from its documented format).
load helpers

setup() {
  kiln_setup
  STORE=$TEST_TMP/store
}
teardown() {
  [ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
  for p in ${KILN_PIDS:-}; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  kiln_teardown
}

# proxy_start BYTES_PER_SEC: throttling proxy in front of $REGISTRY -> $PROXY.
proxy_start() {
  rm -f "$TEST_TMP/proxy.port" "$TEST_TMP/proxy.log"
  python3 "$KILN_SRC/tests/integration/throttleproxy.py" "$REGISTRY" "$1" "$TEST_TMP/proxy.port" \
    "$TEST_TMP/proxy.log" &
  PROXY_PID=$!
  for _ in $(seq 100); do [ -s "$TEST_TMP/proxy.port" ] && break; sleep 0.1; done
  PROXY=127.0.0.1:$(cat "$TEST_TMP/proxy.port")
}

pull_store() { # REF [ARGS...]
  local ref=$1
  shift
  "$KILN" pull --insecure-registry "$REGISTRY" ${PROXY:+--insecure-registry "$PROXY"} --store --root "$STORE" \
    "$ref" "$@" 2>&1
}

# Layer blob digests of an image, from skopeo (independent of kiln).
layer_digests() {
  skopeo inspect --raw --tls-verify=false "docker://$1" | python3 -c '
import json, sys
for l in json.load(sys.stdin)["layers"]: print(l["digest"])'
}

# Every layer of image $1 is extracted in $STORE and matches its blob.
check_image_layers() {
  local d hex diff n=0
  for d in $(layer_digests "$1"); do
    hex=${d#sha256:}
    [ -f "$STORE/blobs/sha256/$hex" ] || { echo "blob $d not kept"; return 1; }
    [ "$(sha256sum < "$STORE/blobs/sha256/$hex" | cut -d' ' -f1)" = "$hex" ] || { echo "blob $d corrupt"; return 1; }
    diff=$(cat "$STORE/diffids/sha256/$hex")
    [ "$(cat "$STORE/layers/sha256/${diff#sha256:}/blob")" = "$d" ]
    # The diffID is the SHA-256 of the uncompressed tar (zcat, not kiln).
    [ "$(zcat -f "$STORE/blobs/sha256/$hex" | sha256sum | cut -d' ' -f1)" = "${diff#sha256:}" ]
    python3 "$KILN_SRC/tests/integration/fetch_check.py" "$STORE/layers/sha256/${diff#sha256:}" \
      "$STORE/blobs/sha256/$hex" || return 1
    n=$((n + 1))
  done
  [ "$n" -gt 0 ]
}

no_leftovers() {
  [ -z "$(ls -A "$STORE/tmp")" ] || { ls -la "$STORE/tmp"; return 1; }
}

@test "pull --store: layers match tar -tvf of their blobs, blobs kept, ref recorded" {
  registry_start
  fixtures_push all
  run pull_store "$BUSYBOX_IMAGE" --digest-file "$TEST_TMP/digest"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  want=$(skopeo inspect --raw --tls-verify=false "docker://$BUSYBOX_IMAGE" | sha256sum | cut -d' ' -f1)
  [ "$(cat "$TEST_TMP/digest")" = "sha256:$want" ]
  [ "$(echo "$output" | tail -1)" = "sha256:$want" ]
  [[ $output == *"MB downloaded in"*"MB/s"* ]]
  # Manifest and config blobs are kept too.
  [ -f "$STORE/blobs/sha256/$want" ]
  cfg=$(skopeo inspect --config --raw --tls-verify=false "docker://$BUSYBOX_IMAGE" | sha256sum | cut -d' ' -f1)
  [ -f "$STORE/blobs/sha256/$cfg" ]
  ls "$STORE/refs" | grep -q "^image%2F.*busybox%3Alatest%40linux%2F"
  [ "$(cat "$STORE"/refs/*busybox*)" = "sha256:$want" ]
  check_image_layers "$BUSYBOX_IMAGE"
  run pull_store "$DEBIAN_IMAGE"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  check_image_layers "$DEBIAN_IMAGE"
  no_leftovers
  # prune keeps what the refs reach.
  run "$KILN" prune --root "$STORE"
  [ "$status" -eq 0 ]
  [[ $output == *"removed 0 blobs, 0 layers"* ]]
}

@test "fetch_check.py notices a tree that differs from the blob" {
  registry_start
  fixtures_push busybox
  run pull_store "$BUSYBOX_IMAGE"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  d=$(layer_digests "$BUSYBOX_IMAGE" | head -1)
  diff=$(cat "$STORE/diffids/sha256/${d#sha256:}")
  f=$(find "$STORE/layers/sha256/${diff#sha256:}/tree" -type f -size +0 | head -1)
  chmod u+w "$f"
  echo tampered >> "$f"
  run python3 "$KILN_SRC/tests/integration/fetch_check.py" "$STORE/layers/sha256/${diff#sha256:}" \
    "$STORE/blobs/sha256/${d#sha256:}"
  [ "$status" -eq 1 ]
  [[ $output == *"MISMATCH tree/"* ]]
}

@test "warm pull --store downloads no layer blob" {
  registry_start
  fixtures_push debian
  proxy_start 0
  img=$PROXY/library/debian:bookworm
  run pull_store "$img"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ $output == *"downloaded in"* ]]
  nl=$(layer_digests "$DEBIAN_IMAGE" | wc -l)
  for d in $(layer_digests "$DEBIAN_IMAGE"); do
    [ "$(grep -c "^GET /v2/library/debian/blobs/$d 200" "$TEST_TMP/proxy.log")" -eq 1 ]
  done
  before=$(grep -c '/blobs/' "$TEST_TMP/proxy.log")
  run pull_store "$img"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [ "$(echo "$output" | grep -c 'MB cached$')" -eq "$nl" ]
  [[ $output == *"0.0 MB downloaded"* ]]
  # Not a single blob request (layers nor config) the second time.
  [ "$(grep -c '/blobs/' "$TEST_TMP/proxy.log")" -eq "$before" ]
  no_leftovers
}

@test "kill -9 mid-download leaves no partial blob or layer; a rerun succeeds" {
  registry_start
  fixtures_push debian
  proxy_start 4000000
  d=$(layer_digests "$DEBIAN_IMAGE" | head -1)
  "$KILN" pull --insecure-registry "$PROXY" --store --root "$STORE" "$PROXY/library/debian:bookworm" \
    > "$TEST_TMP/pull.out" 2>&1 &
  pid=$!
  KILN_PIDS=$pid
  # Wait until a few MB of the layer have arrived (temp blob in tmp/) and,
  # extraction running meanwhile (pipelined), the layer temp dir has files.
  sz="" tf=""
  for _ in $(seq 100); do
    sz=$(find "$STORE/tmp" -maxdepth 1 -name 'blob-*' -size +3M 2>/dev/null | head -1)
    tf=$(find "$STORE/tmp" -path '*/tree/*' -type f 2>/dev/null | head -1)
    [ -n "$sz" ] && [ -n "$tf" ] && break
    sleep 0.1
  done
  [ -n "$sz" ] && [ -n "$tf" ] || { cat "$TEST_TMP/pull.out"; ls -laR "$STORE/tmp" | head -20; false; }
  # Still downloading: the blob is not complete yet.
  kill -0 "$pid"
  kill -9 "$pid"
  wait "$pid" || true
  KILN_PIDS=
  [ ! -e "$STORE/blobs/sha256/${d#sha256:}" ]
  [ -z "$(ls -A "$STORE/layers/sha256")" ]
  [ ! -e "$STORE/diffids/sha256/${d#sha256:}" ]
  [ -z "$(ls -A "$STORE/refs" 2>/dev/null)" ]
  # The rerun (straight from the registry) cleans tmp/ and succeeds.
  kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID= PROXY=
  run pull_store "$DEBIAN_IMAGE"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  no_leftovers
  check_image_layers "$DEBIAN_IMAGE"
}

@test "two concurrent pulls of one image into one store both succeed, one extraction" {
  registry_start
  fixtures_push debian
  proxy_start 30000000
  img=$PROXY/library/debian:bookworm
  pull_store "$img" > "$TEST_TMP/a.out" &
  a=$!
  pull_store "$img" > "$TEST_TMP/b.out" &
  b=$!
  KILN_PIDS="$a $b"
  ra=0 rb=0
  wait "$a" || ra=$?
  wait "$b" || rb=$?
  KILN_PIDS=
  cat "$TEST_TMP/a.out" "$TEST_TMP/b.out"
  [ "$ra" -eq 0 ]
  [ "$rb" -eq 0 ]
  [ "$(tail -1 "$TEST_TMP/a.out")" = "$(tail -1 "$TEST_TMP/b.out")" ]
  nl=$(layer_digests "$DEBIAN_IMAGE" | wc -l)
  # Each layer extracted once: exactly one "downloaded in" line per layer
  # over both runs; the other run found it extracted (or cached).
  [ "$(cat "$TEST_TMP/a.out" "$TEST_TMP/b.out" | grep -c 'MB downloaded in')" -eq "$nl" ]
  [ "$(ls "$STORE/layers/sha256" | wc -l)" -eq "$nl" ]
  no_leftovers
  check_image_layers "$DEBIAN_IMAGE"
}

@test "a corrupted blob in the registry fails clearly and leaves nothing" {
  registry_start
  fixtures_push busybox
  d=$(layer_digests "$BUSYBOX_IMAGE" | head -1)
  hex=${d#sha256:}
  data="$REGISTRY_DIR/data/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data"
  [ -f "$data" ]
  size=$(stat -c %s "$data")
  printf 'this is not the layer you are looking for' |
    dd of="$data" bs=1 seek=$((size / 2)) conv=notrunc status=none
  run pull_store "$BUSYBOX_IMAGE"
  [ "$status" -eq 1 ]
  echo "$output"
  [[ $output == *"repository 'library/busybox'"* ]]
  [[ $output == *"$hex"* ]]
  [[ $output == *"corrupt"* || $output == *"digest"* || $output == *"gzip"* ]]
  [ ! -e "$STORE/blobs/sha256/$hex" ]
  [ -z "$(ls -A "$STORE/layers/sha256")" ]
  [ ! -e "$STORE/diffids/sha256/$hex" ]
  [ -z "$(ls -A "$STORE/refs" 2>/dev/null)" ]
  no_leftovers
}

@test "pull --store: usage errors" {
  run "$KILN" pull --store --oci-layout "$TEST_TMP/l" localhost:1/a:b
  [ "$status" -eq 2 ]
  [[ $output == *"--store cannot be combined with --oci-layout"* ]]
  run "$KILN" pull --store
  [ "$status" -eq 2 ]
}

@test "pull --store as a plain user without subuid ranges gives the same layers and indexes as root" {
  require_root "creates a test user"
  registry_start
  fixtures_push busybox
  test_user_create kilnfetch
  run pull_store "$BUSYBOX_IMAGE"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  ustore=$TEST_USER_TMP/store
  run run_as "$TEST_USER" "$KILN" pull --insecure-registry "$REGISTRY" --store --root "$ustore" "$BUSYBOX_IMAGE"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [ "$(stat -c %U "$ustore/blobs/sha256")" = "$TEST_USER" ]
  n=0
  for l in "$STORE"/layers/sha256/*; do
    h=$(basename "$l")
    cmp "$l/index" "$ustore/layers/sha256/$h/index"
    # Owners in the tree are the user's; the index keeps the image's.
    [ -z "$(find "$ustore/layers/sha256/$h/tree" ! -user "$TEST_USER" | head -1)" ]
    b=$(cat "$ustore/layers/sha256/$h/blob")
    python3 "$KILN_SRC/tests/integration/fetch_check.py" "$ustore/layers/sha256/$h" "$ustore/blobs/sha256/${b#sha256:}"
    n=$((n + 1))
  done
  [ "$n" -gt 0 ]
  [ -z "$(ls -A "$ustore/tmp")" ]
}

@test "pull --store: docker.io images from --registry-mirror are recorded under the docker.io name" {
  registry_start
  fixtures_push busybox
  want=$(skopeo inspect --raw --tls-verify=false "docker://$BUSYBOX_IMAGE" | sha256sum | cut -d' ' -f1)
  run "$KILN" pull --registry-mirror "http://$REGISTRY" --store --root "$STORE" busybox
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ $output == *"from mirror $REGISTRY"* ]]
  [ "$(echo "$output" | tail -1)" = "sha256:$want" ]
  ls "$STORE/refs" | grep -q "^image%2Fdocker.io%2Flibrary%2Fbusybox%3Alatest%40linux%2F"
  [ "$(cat "$STORE"/refs/image%2Fdocker.io*)" = "sha256:$want" ]
  check_image_layers "$BUSYBOX_IMAGE"
}
