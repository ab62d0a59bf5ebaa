#!/usr/bin/env bats
# Bearer token auth: docker-registry with `auth: token` and a small token
# server (RS256 JWTs signed with an openssl-made key).
load helpers

setup() { kiln_setup; }
teardown() {
  [ -n "${TOKEN_PID:-}" ] && kill "$TOKEN_PID" 2>/dev/null && wait "$TOKEN_PID" 2>/dev/null
  kiln_teardown
}

token_start() {
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TEST_TMP/tok.key" -out "$TEST_TMP/tok.crt" \
    -days 1 -subj /CN=kiln-token 2>/dev/null
  python3 "$KILN_SRC/tests/integration/tokenserver.py" "$TEST_TMP/tok.key" "$TEST_TMP/tok.crt" kiln-issuer \
    kiln-registry alice:wonderland "$TEST_TMP/tok.port" "$TEST_TMP/tok.log" &
  TOKEN_PID=$!
  for _ in $(seq 100); do [ -s "$TEST_TMP/tok.port" ] && break; sleep 0.1; done
  TOKEN_REALM=http://127.0.0.1:$(cat "$TEST_TMP/tok.port")/token
}

@test "token auth: push, pull and cross-repository mount" {
  token_start
  registry_start --token "$TOKEN_REALM" kiln-issuer kiln-registry "$TEST_TMP/tok.crt"
  src=$(fixtures_layout busybox)
  mkdir -p "$TEST_TMP/dc"
  printf '{"auths":{"%s":{"auth":"%s"}}}' "$REGISTRY" "$(printf alice:wonderland | base64)" > "$TEST_TMP/dc/config.json"
  export DOCKER_CONFIG="$TEST_TMP/dc" XDG_RUNTIME_DIR="$TEST_TMP/none"
  run "$KILN" push --verbosity debug --insecure-registry "$REGISTRY" --oci-layout "$src" "$REGISTRY/team/app:v1"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ "$output" != *wonderland* ]]
  want=$(echo "$output" | tail -1)
  grep -q '^alice repository:team/app:pull,push' "$TEST_TMP/tok.log"
  uploads=$(registry_blob_uploads)
  [ "$uploads" -gt 0 ]
  # Mount into another repository: the token asks for both scopes, no upload.
  run "$KILN" push --insecure-registry "$REGISTRY" --mount-from team/app --oci-layout "$src" "$REGISTRY/team/other:v1"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ "$output" == *": mounted"* ]]
  grep -q '^alice repository:team/other:pull,push repository:team/app:pull' "$TEST_TMP/tok.log"
  [ "$(registry_blob_uploads)" -eq "$uploads" ]
  # Pull back and compare with skopeo.
  run "$KILN" pull --insecure-registry "$REGISTRY" "$REGISTRY/team/other:v1" --oci-layout "$TEST_TMP/l:t"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [ "$(echo "$output" | tail -1)" = "$want" ]
  [ "$(skopeo inspect --raw "oci:$TEST_TMP/l:t" | sha256sum | cut -d' ' -f1)" = "${want#sha256:}" ]
  # Anonymous: pull works (the token server grants pull), push is refused clearly.
  export DOCKER_CONFIG="$TEST_TMP/empty"
  run "$KILN" pull --insecure-registry "$REGISTRY" "$REGISTRY/team/app:v1" --oci-layout "$TEST_TMP/l2:t"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  run "$KILN" push --insecure-registry "$REGISTRY" --oci-layout "$src" "$REGISTRY/team/anon:v1"
  [ "$status" -eq 1 ]
  [[ "$output" == *"registry '$REGISTRY', repository 'team/anon'"*"HTTP 401"* ]]
  # Wrong password: the token server's refusal is reported.
  printf '{"auths":{"%s":{"username":"alice","password":"nope"}}}' "$REGISTRY" > "$TEST_TMP/dc/config.json"
  export DOCKER_CONFIG="$TEST_TMP/dc"
  run "$KILN" pull --insecure-registry "$REGISTRY" "$REGISTRY/team/app:v1" --oci-layout "$TEST_TMP/l3:t"
  [ "$status" -eq 1 ]
  [[ "$output" == *"token server"*"HTTP 401"*"wrong or missing credentials"* ]]
  [[ "$output" != *nope* ]]
  # identitytoken: the OAuth2 refresh-token grant (POST) is used.
  printf '{"auths":{"%s":{"identitytoken":"kiln-refresh-token"}}}' "$REGISTRY" > "$TEST_TMP/dc/config.json"
  run "$KILN" push --insecure-registry "$REGISTRY" --oci-layout "$src" "$REGISTRY/team/idtok:v1"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  grep -q '^refresh repository:team/idtok:pull,push' "$TEST_TMP/tok.log"
  printf '{"auths":{"%s":{"identitytoken":"stale"}}}' "$REGISTRY" > "$TEST_TMP/dc/config.json"
  run "$KILN" pull --insecure-registry "$REGISTRY" "$REGISTRY/team/app:v1" --oci-layout "$TEST_TMP/l4:t"
  [ "$status" -eq 1 ]
  [[ "$output" == *"token server"*"HTTP 401"* ]]
  [[ "$output" != *stale* ]]
}
