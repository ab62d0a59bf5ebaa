#!/usr/bin/env bats
# SIGINT / SIGTERM during `kiln pull` and `kiln push`: exit 130 / 143, no
# temporary file left, no half-written blob or archive visible, nothing
# half-pushed. Transfers are slowed by throttleproxy.py so the signal lands
# mid-blob.
load helpers

setup() { kiln_setup; }
teardown() {
  [ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
  [ -n "${KPID:-}" ] && kill -9 "$KPID" 2>/dev/null && wait "$KPID" 2>/dev/null
  kiln_teardown
}

proxy_start() { # BYTES_PER_SEC
  rm -f "$TEST_TMP/proxy.port" "$TEST_TMP/proxy.log"
  python3 "$KILN_SRC/tests/integration/throttleproxy.py" "$REGISTRY" "$1" "$TEST_TMP/proxy.port" \
    "$TEST_TMP/proxy.log" &
  PROXY_PID=$!
  for _ in $(seq 100); do [ -s "$TEST_TMP/proxy.port" ] && break; sleep 0.1; done
  PROXY=127.0.0.1:$(cat "$TEST_TMP/proxy.port")
}

# wait_for CMD...: poll up to 20 s until CMD succeeds.
wait_for() {
  for _ in $(seq 200); do "$@" && return 0; sleep 0.1; done
  return 1
}

# A temporary blob of at least 1 MB in the layout (dot-file), i.e. a
# download is half-way.
partial_blob() { [ -n "$(find "$1" -name '.*' -type f -size +1M 2>/dev/null | head -1)" ]; }

@test "SIGINT during pull --oci-layout --tar-path: exit 130, no temp file, no partial blob or archive" {
  registry_start
  fixtures_push debian
  proxy_start 2000000
  mkdir "$TEST_TMP/tmp" "$TEST_TMP/out"
  TMPDIR=$TEST_TMP/tmp "$KILN" pull --insecure-registry "$PROXY" "$PROXY/library/debian:bookworm" \
    --oci-layout "$TEST_TMP/out/layout:t" --tar-path "$TEST_TMP/out/img.tar" > "$TEST_TMP/pull.out" 2>&1 &
  KPID=$!
  wait_for partial_blob "$TEST_TMP/out/layout" || { cat "$TEST_TMP/pull.out"; false; }
  kill -INT "$KPID"
  rc=0; wait "$KPID" || rc=$?
  KPID=
  cat "$TEST_TMP/pull.out"
  [ "$rc" -eq 130 ]
  grep -q "interrupted by SIGINT" "$TEST_TMP/pull.out"
  # Nothing hidden (temporary) left, no archive, and every blob present is
  # complete (named by its content).
  [ -z "$(find "$TEST_TMP/out" -name '.*')" ]
  [ ! -e "$TEST_TMP/out/img.tar" ]
  for f in "$TEST_TMP"/out/layout/blobs/sha256/*; do
    [ -e "$f" ] || continue
    [ "$(sha256sum < "$f" | cut -d' ' -f1)" = "$(basename "$f")" ]
  done
  # The tag was never recorded.
  ! grep -q '"t"' "$TEST_TMP/out/layout/index.json" 2>/dev/null || false
}

@test "SIGTERM during pull --tar-path alone: exit 143, the staging directory is removed" {
  registry_start
  fixtures_push debian
  proxy_start 2000000
  mkdir "$TEST_TMP/tmp"
  TMPDIR=$TEST_TMP/tmp "$KILN" pull --insecure-registry "$PROXY" "$PROXY/library/debian:bookworm" \
    --tar-path "$TEST_TMP/img.tar" > "$TEST_TMP/pull.out" 2>&1 &
  KPID=$!
  wait_for partial_blob "$TEST_TMP/tmp" || { cat "$TEST_TMP/pull.out"; false; }
  kill -TERM "$KPID"
  rc=0; wait "$KPID" || rc=$?
  KPID=
  cat "$TEST_TMP/pull.out"
  [ "$rc" -eq 143 ]
  [ -z "$(ls -A "$TEST_TMP/tmp")" ]
  [ ! -e "$TEST_TMP/img.tar" ]
  [ "$(ls "$TEST_TMP" | grep -c img)" -eq 0 ]
}

@test "SIGINT during push: exit 130, no manifest pushed, the layout untouched; a rerun pushes" {
  registry_start
  src=$(fixtures_layout debian)
  before=$(cd "$src" && find . -type f | sort | xargs sha256sum)
  proxy_start 2000000
  "$KILN" push --insecure-registry "$PROXY" --digest-file "$TEST_TMP/d" --oci-layout "$src" \
    "$PROXY/kiln/deb:t" > "$TEST_TMP/push.out" 2>&1 &
  KPID=$!
  # Wait until an upload is under way (a PUT that has not finished yet:
  # the proxy logs requests when they end, so look for the POST).
  wait_for grep -q "^POST .*/blobs/uploads/ 202" "$TEST_TMP/proxy.log" || { cat "$TEST_TMP/push.out"; false; }
  sleep 1
  kill -INT "$KPID"
  rc=0; wait "$KPID" || rc=$?
  KPID=
  cat "$TEST_TMP/push.out"
  [ "$rc" -eq 130 ]
  grep -q "interrupted by SIGINT" "$TEST_TMP/push.out"
  [ ! -e "$TEST_TMP/d" ]
  [ -z "$(ls -A "$TEST_TMP" | grep '^\.\|^d\.')" ]
  run skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/kiln/deb:t"
  [ "$status" -ne 0 ]
  [ "$(cd "$src" && find . -type f | sort | xargs sha256sum)" = "$before" ]
  kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID=
  run "$KILN" push --insecure-registry "$REGISTRY" --oci-layout "$src" "$REGISTRY/kiln/deb:t"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [ "$(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/kiln/deb:t" | sha256sum)" = \
    "$(skopeo inspect --raw "oci:$src" | sha256sum)" ]
}

@test "progress: per-blob lines redrawn in place on a terminal, plain log lines otherwise" {
  registry_start
  fixtures_push debian
  proxy_start 20000000
  # A terminal (script(1) gives kiln a pty for stdout and stderr).
  script -qec "'$KILN' pull --insecure-registry '$PROXY' '$PROXY/library/debian:bookworm' \
    --oci-layout '$TEST_TMP/l1:t'" /dev/null > "$TEST_TMP/tty.out" 2>&1
  # Cursor movement, a running figure with a rate, and the final line.
  grep -q $'\033\\[[0-9]*A' "$TEST_TMP/tty.out"
  grep -aq 'sha256:[0-9a-f]\{12\}  pull   [0-9.]*/[0-9.]* MB   [0-9.]* MB/s' "$TEST_TMP/tty.out"
  grep -aq 'sha256:[0-9a-f]\{12\}  pull   done [0-9.]* [kM]B in' "$TEST_TMP/tty.out"
  script -qec "'$KILN' push --insecure-registry '$PROXY' --oci-layout '$TEST_TMP/l1:t' '$PROXY/kiln/p:t'" \
    /dev/null > "$TEST_TMP/tty2.out" 2>&1
  grep -aq 'sha256:[0-9a-f]\{12\}  push   done [0-9.]* [kM]B in' "$TEST_TMP/tty2.out" || { cat -v "$TEST_TMP/tty2.out"; false; }
  # Not a terminal: no escape sequences, one log line per blob as before.
  run "$KILN" pull --insecure-registry "$PROXY" "$PROXY/library/debian:bookworm" --oci-layout "$TEST_TMP/l2:t"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ "$output" != *$'\033'* ]]
  [[ "$output" == *"layer sha256:"*" done: "*" MB/s)"* ]]
  run "$KILN" push --insecure-registry "$PROXY" --oci-layout "$TEST_TMP/l2:t" "$PROXY/kiln/p2:t"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ "$output" != *$'\033'* ]]
  [[ "$output" == *"bytes): uploaded"* || "$output" == *"bytes): exists"* ]]
}
