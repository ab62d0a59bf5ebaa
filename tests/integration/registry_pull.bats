#!/usr/bin/env bats
# kiln pull against Debian's docker-registry; results checked with skopeo.
load helpers

setup() { kiln_setup; }
teardown() { kiln_teardown; }

# Manifest digest as the registry serves it, computed by skopeo.
registry_digest() {
  skopeo inspect --raw "$@" | sha256sum | sed 's/^/sha256:/; s/ .*//'
}

@test "pull over plain HTTP gives the registry's digests (checked by skopeo)" {
  registry_start
  fixtures_push busybox
  run "$KILN" pull --insecure-registry "$REGISTRY" --digest-file "$TEST_TMP/digest" \
    "$BUSYBOX_IMAGE" --oci-layout "$TEST_TMP/layout:pulled"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  want=$(registry_digest --tls-verify=false "docker://$BUSYBOX_IMAGE")
  [ "$(cat "$TEST_TMP/digest")" = "$want" ]
  got=$(registry_digest "oci:$TEST_TMP/layout:pulled")
  [ "$got" = "$want" ]
  # skopeo verifies every blob digest while copying out of the layout.
  skopeo copy -q "oci:$TEST_TMP/layout:pulled" "oci:$TEST_TMP/copy:x"
  # Every blob in the layout is named by its content.
  for f in "$TEST_TMP"/layout/blobs/sha256/*; do
    [ "$(sha256sum < "$f" | cut -d' ' -f1)" = "$(basename "$f")" ]
  done
  # No temporary files left behind.
  [ -z "$(find "$TEST_TMP/layout" -name '.*' -type f)" ]
  # Pulling again keeps one index entry for the tag.
  run "$KILN" pull --insecure-registry "$REGISTRY" "$BUSYBOX_IMAGE" --oci-layout "$TEST_TMP/layout:pulled"
  [ "$status" -eq 0 ]
  [ "$(grep -o '"digest"' "$TEST_TMP/layout/index.json" | wc -l)" -eq 1 ]
}

@test "pull --tar-path writes a docker-archive that skopeo reads" {
  registry_start
  fixtures_push busybox
  cfg=$(skopeo inspect --config --raw --tls-verify=false "docker://$BUSYBOX_IMAGE" | sha256sum | cut -d' ' -f1)
  run env TMPDIR="$TEST_TMP" "$KILN" pull --insecure-registry "$REGISTRY" "$BUSYBOX_IMAGE" --tar-path "$TEST_TMP/img.tar"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  # No temporary layout or partial archive left behind.
  [ "$(ls "$TEST_TMP")" = "img.tar" ]
  tar -tf "$TEST_TMP/img.tar" | grep -qx manifest.json
  tar -xOf "$TEST_TMP/img.tar" manifest.json | grep -q "\"RepoTags\":\[\"$REGISTRY/library/busybox:latest\"\]"
  [ "$(skopeo inspect --config --raw "docker-archive:$TEST_TMP/img.tar" | sha256sum | cut -d' ' -f1)" = "$cfg" ]
  skopeo copy -q "docker-archive:$TEST_TMP/img.tar" "oci:$TEST_TMP/from-archive:x"
  rm -rf "$TEST_TMP/from-archive"
  # Both outputs at once.
  run "$KILN" pull --insecure-registry "$REGISTRY" "$BUSYBOX_IMAGE" --tar-path "$TEST_TMP/b.tar" --oci-layout "$TEST_TMP/l:t"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [ -s "$TEST_TMP/b.tar" ]
  [ -s "$TEST_TMP/l/index.json" ]
}

@test "pull by digest, and a wrong digest is refused" {
  registry_start
  fixtures_push busybox
  want=$(registry_digest --tls-verify=false "docker://$BUSYBOX_IMAGE")
  repo=${BUSYBOX_IMAGE%:*}
  run "$KILN" pull --insecure-registry "$REGISTRY" "$repo@$want" --oci-layout "$TEST_TMP/l"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [ "$(echo "$output" | tail -1)" = "$want" ]
  bad=sha256:0000000000000000000000000000000000000000000000000000000000000000
  run "$KILN" pull --insecure-registry "$REGISTRY" "$repo@$bad" --oci-layout "$TEST_TMP/l2"
  [ "$status" -eq 1 ]
  [[ "$output" == *"registry '$REGISTRY', repository 'library/busybox'"* ]]
  [[ "$output" == *"HTTP 404"* ]]
}

@test "pull errors name registry, repository and the server's answer" {
  registry_start
  run "$KILN" pull --insecure-registry "$REGISTRY" "$REGISTRY/nope/missing:t" --oci-layout "$TEST_TMP/l"
  [ "$status" -eq 1 ]
  [[ "$output" == *"registry '$REGISTRY', repository 'nope/missing': GET manifest 't': HTTP 404"* ]]
  [[ "$output" == *"MANIFEST_UNKNOWN"* || "$output" == *"NAME_UNKNOWN"* ]]
  run "$KILN" pull "Bad/Ref" --oci-layout "$TEST_TMP/l"
  [ "$status" -eq 1 ]
  [[ "$output" == *"invalid reference 'Bad/Ref'"* ]]
  run "$KILN" pull "$REGISTRY/a:b"
  [ "$status" -eq 2 ]
  run "$KILN" pull --registry-mirror 'bad host' "$REGISTRY/a:b" --oci-layout "$TEST_TMP/l"
  [ "$status" -eq 2 ]
  [[ "$output" == *"--registry-mirror: invalid host"* ]]
}

@test "docker.io images come from --registry-mirror (no traffic to Docker Hub)" {
  registry_start
  fixtures_push busybox
  want=$(skopeo inspect --raw --tls-verify=false "docker://$BUSYBOX_IMAGE" | sha256sum | cut -d' ' -f1)
  run "$KILN" pull --registry-mirror "http://$REGISTRY" busybox --oci-layout "$TEST_TMP/l:t"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ "$output" == *"from mirror $REGISTRY"* ]]
  [ "$(echo "$output" | tail -1)" = "sha256:$want" ]
  [ "$(skopeo inspect --raw "oci:$TEST_TMP/l:t" | sha256sum | cut -d' ' -f1)" = "$want" ]
  # Mirrors are for docker.io only: another registry is pulled directly.
  run "$KILN" pull --registry-mirror 127.0.0.1:1 --insecure-registry "$REGISTRY" "$BUSYBOX_IMAGE" --oci-layout "$TEST_TMP/l2:t"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ "$output" != *"mirror"* ]]
}

@test "pull with TLS and Basic auth: credentials from config.json, then from a credential helper" {
  registry_start --tls --htpasswd alice:wonderland
  fixtures_push busybox
  repo=${BUSYBOX_IMAGE#*/}
  # No credentials: a clear error.
  run env DOCKER_CONFIG="$TEST_TMP/none" REGISTRY_AUTH_FILE= XDG_RUNTIME_DIR="$TEST_TMP/none" \
    "$KILN" pull --registry-certificate "$REGISTRY=$REGISTRY_CA" "$BUSYBOX_IMAGE" --oci-layout "$TEST_TMP/l0"
  [ "$status" -eq 1 ]
  [[ "$output" == *"authentication required and no credentials found"* ]]
  # Without the CA: TLS verification fails.
  mkdir -p "$TEST_TMP/dc"
  printf '{"auths":{"%s":{"auth":"%s"}}}' "$REGISTRY" "$(printf alice:wonderland | base64)" > "$TEST_TMP/dc/config.json"
  run env DOCKER_CONFIG="$TEST_TMP/dc" XDG_RUNTIME_DIR="$TEST_TMP/none" "$KILN" pull "$BUSYBOX_IMAGE" --oci-layout "$TEST_TMP/l1"
  [ "$status" -eq 1 ]
  [[ "$output" == *"registry '$REGISTRY'"* ]]
  run env DOCKER_CONFIG="$TEST_TMP/dc" XDG_RUNTIME_DIR="$TEST_TMP/none" "$KILN" pull --verbosity debug \
    --registry-certificate "$REGISTRY=$REGISTRY_CA" "$BUSYBOX_IMAGE" --oci-layout "$TEST_TMP/l1:t" 2>&1
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ "$output" != *wonderland* ]]
  [[ "$output" != *"$(printf alice:wonderland | base64)"* ]]
  # One connection cache for the whole pull (transfer.h): the blobs reuse
  # the manifest's connection; the Go registry offers HTTP/2 over TLS.
  [[ "$output" == *"GET blob sha256:"*"over HTTP/2, reused connection"* ]]
  [ "$(grep -c ", new connection" <<< "$output")" -le 2 ]
  skopeo copy -q "oci:$TEST_TMP/l1:t" "oci:$TEST_TMP/c1:x"
  # Credential helper on PATH.
  mkdir -p "$TEST_TMP/bin" "$TEST_TMP/dh"
  cat > "$TEST_TMP/bin/docker-credential-kilntest" <<'SH'
#!/bin/sh
[ "$1" = get ] || exit 1
read -r server
echo "$server" > "$(dirname "$0")/asked"
printf '{"ServerURL":"%s","Username":"alice","Secret":"wonderland"}\n' "$server"
SH
  chmod +x "$TEST_TMP/bin/docker-credential-kilntest"
  printf '{"credHelpers":{"%s":"kilntest"}}' "$REGISTRY" > "$TEST_TMP/dh/config.json"
  run env PATH="$TEST_TMP/bin:$PATH" DOCKER_CONFIG="$TEST_TMP/dh" XDG_RUNTIME_DIR="$TEST_TMP/none" \
    "$KILN" pull --verbosity debug --registry-certificate "$REGISTRY=$REGISTRY_CA" "$BUSYBOX_IMAGE" --oci-layout "$TEST_TMP/l2:t" 2>&1
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [ "$(cat "$TEST_TMP/bin/asked")" = "$REGISTRY" ]
  [[ "$output" != *wonderland* ]]
  skopeo copy -q "oci:$TEST_TMP/l2:t" "oci:$TEST_TMP/c2:x"
}
