#!/usr/bin/env bats
# A full file system under the store: pulling, extracting, a RUN step that
# fills the disk and packing a layer each fail with "No space left on
# device" naming the store (or the file in it), exit 1, and leave no
# temporary file or half-extracted layer behind; after space is added
# (remount bigger) the same store works. The store is a small tmpfs.

load helpers

setup_file() {
  kiln_setup
  [ "$(id -u)" -ne 0 ] || chmod 0666 /dev/fuse
  registry_start
  fixtures_push debian
  export REGISTRY DEBIAN_IMAGE
}
teardown_file() { registry_stop_all; }
setup() {
  kiln_setup
  require_root "needs root to mount a tmpfs"
  S=$TEST_TMP/store
  mkdir -p "$S"
}
teardown() {
  if mountpoint -q "$S"; then umount "$S"; fi
  kiln_teardown
}

# store_clean: nothing temporary is left in $S and its layers are $LAYERS
# (no half-extracted or new layer).
store_clean() {
  find "$S/tmp" -mindepth 1 | { ! grep .; }
  [ "$(ls "$S/layers/sha256")" = "$LAYERS" ]
}

# resize SIZE: remount the store's tmpfs with SIZE, keeping its content.
resize() { mount -o "remount,size=$1" "$S"; }

@test "store full: pulling and extracting say no space left on device, name the store, leave nothing half done" {
  mount -t tmpfs -o size=2m tmpfs "$S"
  LAYERS=""
  run "$KILN" pull --store --root "$S" --insecure-registry "$REGISTRY" "$DEBIAN_IMAGE"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"'$S/"*"No space left on device"* || $output == *"store '$S'"*"No space left on device"* ]]
  store_clean
  # An OCI layout's layer is extracted into the store (its blob stays in
  # the layout): the extraction finds the disk full.
  run "$KILN" run --root "$S" --oci-layout "$(fixtures_layout debian):bookworm" true
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"extracting layer sha256:"*" into store '$S': layer member '"*"': "*"No space left on device"* ]]
  store_clean
  # Room for the 63 MB blob but not for it and the extracted tree (~170
  # MB): whichever of the blob's download and the extraction, which run
  # together, finds the disk full first fails.
  resize 150m
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM %s\nRUN echo hi > /x\n' "$DEBIAN_IMAGE" > "$TEST_TMP/ctx/Dockerfile"
  run "$KILN" build --root "$S" --insecure-registry "$REGISTRY" --no-push "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"'$S/"*"No space left on device"* || $output == *"store '$S'"*"No space left on device"* ]]
  store_clean
  resize 400m
  run "$KILN" build --root "$S" --insecure-registry "$REGISTRY" --no-push "$TEST_TMP/ctx"
  echo "$output" | tail -3
  [ "$status" -eq 0 ]
  run "$KILN" run --root "$S" --oci-layout "$(fixtures_layout debian):bookworm" true
  [ "$status" -eq 0 ]
  find "$S/tmp" -mindepth 1 | { ! grep .; }
}

@test "store full: a RUN step that fills the disk names the step; packing its layer names the blob; the store stays usable" {
  mount -t tmpfs -o size=400m tmpfs "$S"
  run "$KILN" pull --store --root "$S" --insecure-registry "$REGISTRY" "$DEBIAN_IMAGE"
  [ "$status" -eq 0 ]
  LAYERS=$(ls "$S/layers/sha256")
  [ -n "$LAYERS" ]
  mkdir -p "$TEST_TMP/ctx"
  local iso
  for iso in userns ptrace; do
    printf 'FROM %s\nRUN dd if=/dev/zero of=/big bs=1M count=1000\n' "$DEBIAN_IMAGE" > "$TEST_TMP/ctx/Dockerfile"
    run "$KILN" build --root "$S" --isolation "$iso" --insecure-registry "$REGISTRY" --no-push "$TEST_TMP/ctx"
    echo "$output"
    [ "$status" -eq 1 ]
    [[ $output == *"[stage-0 2/2] RUN dd if=/dev/zero of=/big bs=1M count=1000: command"*"exited with status 1"* ]]
    [[ $output == *"No space left on device"* ]]
    store_clean
  done
  # The step fits, its layer's blob does not: 40 MB that do not compress,
  # 60 MB free.
  local used
  used=$(df --output=used -m "$S" | tail -1)
  resize "$((used + 60))m"
  printf 'FROM %s\nRUN head -c 40000000 /dev/urandom > /big\n' "$DEBIAN_IMAGE" > "$TEST_TMP/ctx/Dockerfile"
  run "$KILN" build --root "$S" --insecure-registry "$REGISTRY" --no-push "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"RUN head -c 40000000 /dev/urandom > /big: writing the layer to '$S/tmp/blob-"*"': writing layer blob: No space left on device"* ]]
  store_clean
  resize 400m
  run "$KILN" build --root "$S" --insecure-registry "$REGISTRY" --no-push "$TEST_TMP/ctx"
  echo "$output" | tail -3
  [ "$status" -eq 0 ]
  find "$S/tmp" -mindepth 1 | { ! grep .; }
}
