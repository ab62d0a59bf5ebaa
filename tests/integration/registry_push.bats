#!/usr/bin/env bats
# kiln push against Debian's docker-registry; results checked with skopeo.
load helpers

setup() { kiln_setup; }
teardown() { kiln_teardown; }

raw_digest() {
  skopeo inspect --raw "$@" | sha256sum | sed 's/^/sha256:/; s/ .*//'
}

@test "push round trip over plain HTTP is byte-identical (skopeo)" {
  registry_start
  src=$(fixtures_layout busybox)
  want=$(raw_digest "oci:$src")
  run "$KILN" push --insecure-registry "$REGISTRY" --digest-file "$TEST_TMP/d" --oci-layout "$src" \
    "$REGISTRY/kiln/bb:one" "$REGISTRY/kiln/bb2:two"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [ "$(cat "$TEST_TMP/d")" = "$want" ]
  [ "$(raw_digest --tls-verify=false "docker://$REGISTRY/kiln/bb:one")" = "$want" ]
  [ "$(raw_digest --tls-verify=false "docker://$REGISTRY/kiln/bb2:two")" = "$want" ]
  # The blobs read back through skopeo (which verifies them) match the source.
  skopeo copy -q --src-tls-verify=false "docker://$REGISTRY/kiln/bb:one" "oci:$TEST_TMP/back:x"
  [ "$(raw_digest "oci:$TEST_TMP/back:x")" = "$want" ]
  for f in "$src"/blobs/sha256/*; do
    b=$(basename "$f")
    if [ -f "$TEST_TMP/back/blobs/sha256/$b" ]; then cmp "$f" "$TEST_TMP/back/blobs/sha256/$b"; fi
  done
  # A second push finds every blob already there.
  uploads=$(registry_blob_uploads)
  run "$KILN" push --insecure-registry "$REGISTRY" --oci-layout "$src" "$REGISTRY/kiln/bb:again"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ "$output" == *": exists"* ]]
  [ "$(registry_blob_uploads)" -eq "$uploads" ]
  # Cross-repository mount: nothing uploaded again.
  run "$KILN" push --insecure-registry "$REGISTRY" --mount-from kiln/bb --oci-layout "$src" "$REGISTRY/other/bb:m"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ "$output" == *": mounted"* ]]
  [ "$(registry_blob_uploads)" -eq "$uploads" ]
  [ "$(raw_digest --tls-verify=false "docker://$REGISTRY/other/bb:m")" = "$want" ]
}

@test "pull then push: kiln's own layout pushes back to the same digest" {
  registry_start
  fixtures_push busybox
  run "$KILN" pull --insecure-registry "$REGISTRY" "$BUSYBOX_IMAGE" --oci-layout "$TEST_TMP/l:t"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  d=$(echo "$output" | tail -1)
  run "$KILN" push --insecure-registry "$REGISTRY" --oci-layout "$TEST_TMP/l:t" "$REGISTRY/copy/bb:t"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [ "$(echo "$output" | tail -1)" = "$d" ]
  [ "$(raw_digest --tls-verify=false "docker://$REGISTRY/copy/bb:t")" = "$d" ]
}

@test "push errors: corrupt blob in the layout, bad destination, missing tag" {
  registry_start
  src=$(fixtures_layout busybox)
  cp -r "$src" "$TEST_TMP/bad"
  chmod -R u+w "$TEST_TMP/bad"
  # Corrupt the largest blob (a layer) keeping its size.
  big=$(ls -S "$TEST_TMP"/bad/blobs/sha256/* | head -1)
  printf 'XXXX' | dd of="$big" bs=1 seek=100 conv=notrunc 2>/dev/null
  run "$KILN" push --insecure-registry "$REGISTRY" --oci-layout "$TEST_TMP/bad" "$REGISTRY/bad/img:t"
  [ "$status" -eq 1 ]
  [[ "$output" == *"registry '$REGISTRY', repository 'bad/img'"* ]]
  # Nothing was tagged.
  run skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/bad/img:t"
  [ "$status" -ne 0 ]
  run "$KILN" push --insecure-registry "$REGISTRY" --oci-layout "$src:nosuchtag" "$REGISTRY/x/y:t"
  [ "$status" -eq 1 ]
  [[ "$output" == *"no image tagged 'nosuchtag'"* ]]
  run "$KILN" push --oci-layout "$src" "localhost/a//b"
  [ "$status" -eq 1 ]
  [[ "$output" == *"invalid reference"* ]]
}
