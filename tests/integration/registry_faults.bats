#!/usr/bin/env bats
# kiln pull through a fault-injecting proxy in front of docker-registry.
load helpers

setup() { kiln_setup; }
teardown() {
  [ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
  kiln_teardown
}

proxy_start() { # MODE COUNT
  rm -f "$TEST_TMP/proxy.port" "$TEST_TMP/proxy.log"
  python3 "$KILN_SRC/tests/integration/faultproxy.py" "$REGISTRY" "$1" "$2" "$TEST_TMP/proxy.port" "$TEST_TMP/proxy.log" &
  PROXY_PID=$!
  for _ in $(seq 100); do [ -s "$TEST_TMP/proxy.port" ] && break; sleep 0.1; done
  PROXY=127.0.0.1:$(cat "$TEST_TMP/proxy.port")
}

pull_via_proxy() {
  "$KILN" pull --insecure-registry "$PROXY" "$PROXY/library/busybox:latest" --oci-layout "$TEST_TMP/l:t" "$@" 2>&1
}

check_layout() {
  want=$(skopeo inspect --raw --tls-verify=false "docker://$BUSYBOX_IMAGE" | sha256sum | cut -d' ' -f1)
  [ "$(skopeo inspect --raw "oci:$TEST_TMP/l:t" | sha256sum | cut -d' ' -f1)" = "$want" ]
  skopeo copy -q "oci:$TEST_TMP/l:t" "oci:$TEST_TMP/verify:x"
}

no_partial_blobs() {
  for f in "$TEST_TMP"/l/blobs/sha256/*; do
    [ -e "$f" ] || continue
    [ "$(sha256sum < "$f" | cut -d' ' -f1)" = "$(basename "$f")" ]
  done
  [ -z "$(find "$TEST_TMP/l" -name '.*' -type f)" ]
}

@test "500 and 429 answers are retried" {
  registry_start
  fixtures_push busybox
  proxy_start 500 2
  run pull_via_proxy
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ "$output" == *"retrying"* ]]
  check_layout
  kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
  rm -rf "$TEST_TMP/l"
  proxy_start 429 1
  run pull_via_proxy
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  check_layout
  # Retries are bounded: a server that always fails gives a clear error.
  kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
  rm -rf "$TEST_TMP/l"
  proxy_start 500 1000
  run pull_via_proxy --retries 1
  [ "$status" -eq 1 ]
  [[ "$output" == *"repository 'library/busybox': GET blob sha256:"*"HTTP 500 UNAVAILABLE: injected fault"* ]]
  no_partial_blobs
}

@test "a connection cut mid-blob resumes with Range" {
  registry_start
  fixtures_push busybox
  proxy_start cut 1
  run pull_via_proxy
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  check_layout
  grep -q 'bytes=[1-9][0-9]*- -> pass' "$TEST_TMP/proxy.log"
}

@test "corrupted bytes are detected and nothing is stored" {
  registry_start
  fixtures_push busybox
  proxy_start corrupt 0
  run pull_via_proxy
  [ "$status" -eq 1 ]
  [[ "$output" == *"(corrupted)"* ]]
  [[ "$output" == *"registry '$PROXY', repository 'library/busybox'"* ]]
  no_partial_blobs
  [ ! -e "$TEST_TMP/l/index.json" ]
}

@test "an endless blob response is cut off at the expected size" {
  registry_start
  fixtures_push busybox
  proxy_start endless 0
  run timeout 60 "$KILN" pull --insecure-registry "$PROXY" "$PROXY/library/busybox:latest" --oci-layout "$TEST_TMP/l:t"
  [ "$status" -eq 1 ]
  [[ "$output" == *"response larger than the expected size"* ]]
  no_partial_blobs
}

@test "push falls back to a chunked upload when a monolithic PUT is refused (413)" {
  registry_start
  proxy_start no-monolithic 0
  src=$(fixtures_layout debian)
  want=$(skopeo inspect --raw "oci:$src" | sha256sum | cut -d' ' -f1)
  run "$KILN" push --insecure-registry "$PROXY" --oci-layout "$src" "$PROXY/chunked/debian:t"
  [ "$status" -eq 0 ] || { echo "$output"; tail -20 "$TEST_TMP/proxy.log"; false; }
  [[ "$output" == *"uploading sha256:"*"in chunks"* ]]
  # Several PATCH requests for the big layer, then the closing PUT without body.
  [ "$(grep -c '^PATCH ' "$TEST_TMP/proxy.log")" -ge 2 ]
  grep -q '^PUT .* 0 -> pass' "$TEST_TMP/proxy.log"
  [ "$(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/chunked/debian:t" | sha256sum | cut -d' ' -f1)" = "$want" ]
  skopeo copy -q --src-tls-verify=false "docker://$REGISTRY/chunked/debian:t" "oci:$TEST_TMP/back:x"
}
