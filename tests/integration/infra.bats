#!/usr/bin/env bats
# Tests of the test infrastructure itself: registry helper, fixture images,
# test users. Everything else relies on these, so they check real behaviour
# with independent tools (curl, skopeo, umoci, tar).

load helpers

setup() { kiln_setup; }
teardown() { kiln_teardown; }

@test "registry: starts on a free 127.0.0.1 port and answers /v2/" {
  registry_start
  [[ $REGISTRY =~ ^127\.0\.0\.1:[0-9]+$ ]]
  [ "$REGISTRY_URL" = "http://$REGISTRY" ]
  run curl -s -o /dev/null -w '%{http_code}' "$REGISTRY_URL/v2/"
  [ "$output" = 200 ]
  # Its log is at debug level and records our request.
  grep -q 'level=debug' "$REGISTRY_LOG"
  grep -q 'http.request.uri=/v2/ ' "$REGISTRY_LOG"
  # Storage lives in its own temp dir.
  grep -q "rootdirectory: $REGISTRY_DIR/data" "$REGISTRY_CONFIG"
}

@test "registry: two at once get different ports; stop leaves nothing" {
  registry_start
  local a=$REGISTRY apid=$REGISTRY_PID adir=$REGISTRY_DIR
  registry_start
  [ "$a" != "$REGISTRY" ]
  kill -0 "$apid"
  registry_stop "$apid"
  ! kill -0 "$apid" 2>/dev/null || false
  ! pgrep -f "$adir/config.yml" || false
  curl -s -f -o /dev/null "$REGISTRY_URL/v2/"
  registry_stop
  ! pgrep -f "$REGISTRY_DIR/config.yml" || false
}

@test "registry: TLS with htpasswd: CA + credentials 200, without 401, no CA fails" {
  registry_start --tls --htpasswd alice:s3cret
  [ "$REGISTRY_URL" = "https://$REGISTRY" ]
  [ -f "$REGISTRY_CA" ]
  [ -f "$REGISTRY_CERT_DIR/ca.crt" ]
  # The server cert is for 127.0.0.1 and localhost, signed by our CA.
  openssl verify -CAfile "$REGISTRY_CA" "$REGISTRY_CERT"
  openssl x509 -in "$REGISTRY_CERT" -noout -ext subjectAltName | grep -q 'IP Address:127.0.0.1'
  openssl x509 -in "$REGISTRY_CERT" -noout -ext subjectAltName | grep -q 'DNS:localhost'
  run curl -s -o /dev/null -w '%{http_code}' --cacert "$REGISTRY_CA" -u alice:s3cret "$REGISTRY_URL/v2/"
  [ "$output" = 200 ]
  run curl -s -o /dev/null -w '%{http_code}' --cacert "$REGISTRY_CA" "$REGISTRY_URL/v2/"
  [ "$output" = 401 ]
  run curl -s -o /dev/null -w '%{http_code}' --cacert "$REGISTRY_CA" -u alice:wrong "$REGISTRY_URL/v2/"
  [ "$output" = 401 ]
  run curl -s -o /dev/null -w '%{http_code}' "$REGISTRY_URL/v2/"
  [ "$output" = 000 ]   # unknown CA: TLS handshake refused
  run curl -s -o /dev/null -w '%{http_code}' --cacert "$REGISTRY_CA" "https://localhost:${REGISTRY#*:}/v2/"
  [ "$output" = 401 ]
  # The challenge names Basic auth.
  curl -s -D - -o /dev/null --cacert "$REGISTRY_CA" "$REGISTRY_URL/v2/" | grep -qi '^www-authenticate: basic realm="kiln-test"'
  # registry_curl adds CA and credentials itself.
  run registry_curl -s -o /dev/null -w '%{http_code}' "$REGISTRY_URL/v2/"
  [ "$output" = 200 ]
}

@test "registry: token auth config is written and enforced" {
  local d=$TEST_TMP
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$d/token.key" -out "$d/token.crt" -days 1 -subj "/CN=kiln token" 2>/dev/null
  registry_start --token "http://127.0.0.1:1/token" kiln-issuer kiln-registry "$d/token.crt"
  grep -q 'realm: http://127.0.0.1:1/token' "$REGISTRY_CONFIG"
  grep -q "rootcertbundle: $d/token.crt" "$REGISTRY_CONFIG"
  run curl -s -D - -o /dev/null "$REGISTRY_URL/v2/"
  [[ $output == *" 401"* ]]
  [[ ${output,,} == *'www-authenticate: bearer realm="http://127.0.0.1:1/token",service="kiln-registry"'* ]]
}

@test "registry: --env overrides reach the registry and our REGISTRY_* do not" {
  export REGISTRY_LOG=/nonexistent   # would break the registry's config if passed
  registry_start --env REGISTRY_STORAGE_DELETE_ENABLED=false
  run curl -s -o /dev/null -w '%{http_code}' -X DELETE \
    "$REGISTRY_URL/v2/x/manifests/sha256:0000000000000000000000000000000000000000000000000000000000000000"
  [ "$output" = 405 ]   # deletes disabled by the override
}

# Nested bats run whose tests fail with registries running, once with
# teardown/teardown_file hooks and once without any: either way every
# registry it started must be gone afterwards.
_run_leak_file() {
  local with_teardown=$1 f="$TEST_TMP/leak-$1.bats"
  cp "$KILN_SRC/tests/integration/infra-fixtures/leak.bats.in" "$f"
  if [ "$with_teardown" = 1 ]; then
    printf '%s\n' 'teardown() { kiln_teardown; }' 'teardown_file() { registry_stop_all; }' >> "$f"
  fi
  export LEAK_RECORD="$TEST_TMP/leak-$1.pids"
  : > "$LEAK_RECORD"
  run bats --tap "$f"
  [ "$status" -ne 0 ]
  [[ $output == *"not ok 1"* ]]
  # setup_file's registry plus one per test.
  [ "$(wc -l < "$LEAK_RECORD")" -eq 3 ]
  local pid dir i left
  for i in $(seq 1 100); do
    left=""
    while read -r pid dir; do
      if pgrep -f "$dir/config.yml" >/dev/null; then left="$left $pid"; fi
    done < "$LEAK_RECORD"
    [ -z "$left" ] && break
    sleep 0.1
  done
  if [ -n "$left" ]; then
    echo "registries left running:$left"
    kill -KILL $left
    false
  fi
}

@test "registry: no process survives failing tests (with teardown)" {
  _run_leak_file 1
}

@test "registry: no process survives failing tests (no teardown, test shell killed)" {
  _run_leak_file 0
}

@test "fixtures: busybox and debian pushed, read back with skopeo" {
  registry_start
  fixtures_push all
  [ "$BUSYBOX_IMAGE" = "$REGISTRY/library/busybox:latest" ]
  [ "$DEBIAN_IMAGE" = "$REGISTRY/library/debian:bookworm" ]

  run skopeo inspect --tls-verify=false "docker://$BUSYBOX_IMAGE"
  [ "$status" -eq 0 ]
  [ "$(jq '.Layers | length' <<< "$output")" -eq 1 ]
  [ "$(jq -r .Os <<< "$output")/$(jq -r .Architecture <<< "$output")" = linux/amd64 ]
  run skopeo inspect --tls-verify=false --config "docker://$BUSYBOX_IMAGE"
  [ "$(jq -c .config.Cmd <<< "$output")" = '["/bin/sh"]' ]
  jq -r '.config.Env[]' <<< "$output" | grep -q '^PATH=/usr/local/sbin:'

  run skopeo inspect --tls-verify=false "docker://$DEBIAN_IMAGE"
  [ "$status" -eq 0 ]
  [ "$(jq '.Layers | length' <<< "$output")" -eq 1 ]
  run skopeo inspect --tls-verify=false --config "docker://$DEBIAN_IMAGE"
  [ "$(jq -c .config.Cmd <<< "$output")" = '["bash"]' ]

  # The registry saw both layers uploaded.
  [ "$(registry_blob_uploads)" -ge 2 ]
}

@test "fixtures: busybox layer content checked with tar" {
  registry_start
  fixtures_push busybox
  skopeo copy -q --src-tls-verify=false "docker://$BUSYBOX_IMAGE" "oci:$TEST_TMP/bb:t"
  local digest
  digest=$(jq -r '.manifests[0].digest' "$TEST_TMP/bb/index.json")
  local layer
  layer=$(jq -r '.layers[0].digest' "$TEST_TMP/bb/blobs/sha256/${digest#sha256:}")
  tar -tvzf "$TEST_TMP/bb/blobs/sha256/${layer#sha256:}" > "$TEST_TMP/list"
  # Relative member names, owned by root, the modes the spec asks for.
  ! grep -qE ' /' <(awk '{print $6}' "$TEST_TMP/list") || false
  grep -qE '^-rwxr-xr-x 0/0 .* bin/busybox$' "$TEST_TMP/list"
  grep -qE '^lrwxrwxrwx 0/0 .* bin/ls -> /bin/busybox$' "$TEST_TMP/list"
  grep -qE '^drwxrwxrwt 0/0 .* tmp/$' "$TEST_TMP/list"
  grep -qE '^drwx------ 0/0 .* root/$' "$TEST_TMP/list"
  ! grep -qvE ' 0/0 ' "$TEST_TMP/list" || false
  tar -xzf "$TEST_TMP/bb/blobs/sha256/${layer#sha256:}" -C "$TEST_TMP" etc/passwd etc/group
  [ "$(cat "$TEST_TMP/etc/passwd")" = 'root:x:0:0:root:/root:/bin/sh' ]
  [ "$(cat "$TEST_TMP/etc/group")" = 'root:x:0:' ]
}

@test "fixtures: debian rootfs unpacks with umoci and is a bookworm minbase" {
  local layout
  layout=$(fixtures_layout debian)
  umoci unpack --image "$layout:bookworm" "$TEST_TMP/deb" >/dev/null
  grep -q '^VERSION_CODENAME=bookworm' "$TEST_TMP/deb/rootfs/etc/os-release"
  [ -x "$TEST_TMP/deb/rootfs/bin/bash" ]
  [ -f "$TEST_TMP/deb/rootfs/var/lib/dpkg/status" ]
  # minbase: apt present, no .debs left over from the build cache.
  [ -x "$TEST_TMP/deb/rootfs/usr/bin/apt-get" ]
  ! ls "$TEST_TMP"/deb/rootfs/var/cache/apt/archives/*.deb 2>/dev/null || false
  local n
  n=$(find "$TEST_TMP/deb/rootfs" | wc -l)
  [ "$n" -gt 5000 ]
  [ "$n" -lt 9000 ]
}

@test "fixtures: cached rerun takes seconds and gives the same digests" {
  local t0 before after
  before=$(cat "$(fixtures_layout busybox)/index.json" "$(fixtures_layout debian)/index.json")
  t0=$(date +%s)
  "$KILN_SRC/scripts/make-base-images.sh" all
  [ $(( $(date +%s) - t0 )) -lt 10 ]
  after=$(cat "$(fixtures_layout busybox)/index.json" "$(fixtures_layout debian)/index.json")
  [ "$before" = "$after" ]
}

@test "fixtures: busybox-multi is an index of busybox (amd64) and busybox-arm64, whose busybox is Debian's aarch64 one" {
  ls "$KILN_TEST_CACHE"/debs/busybox-static_*_arm64.deb >/dev/null 2>&1 || [ "$(id -u)" -eq 0 ] \
    || skip "no busybox-static arm64 .deb in the cache (scripts/install-deps.sh as root)"
  "$KILN_SRC/scripts/make-base-images.sh" busybox-multi
  local l
  l=$(fixtures_layout busybox-multi)
  run skopeo inspect --raw "oci:$l:latest"
  [ "$status" -eq 0 ]
  [ "$(jq -r '[.manifests[].platform | .architecture + "/" + (.variant // "")] | join(",")' <<<"$output")" = amd64/,arm64/v8 ]
  skopeo copy -q --override-arch arm64 "oci:$l:latest" "oci:$TEST_TMP/arm:t"
  umoci raw unpack --rootless --image "$TEST_TMP/arm:t" "$TEST_TMP/root" >/dev/null
  file -L "$TEST_TMP/root/bin/busybox" | grep -q 'ARM aarch64'
  [ -L "$TEST_TMP/root/bin/sh" ]
  local m c
  m=$(jq -r '.manifests[1].digest' <<<"$output")
  c=$(jq -r .config.digest "$l/blobs/sha256/${m#sha256:}")
  [ "$(jq -r .architecture "$l/blobs/sha256/${c#sha256:}")" = arm64 ]
}

@test "fixtures: push into a TLS + htpasswd registry" {
  registry_start --tls --htpasswd pusher:pw
  fixtures_push busybox
  run skopeo inspect --cert-dir "$REGISTRY_CERT_DIR" --creds pusher:pw "docker://$BUSYBOX_IMAGE"
  [ "$status" -eq 0 ]
  run skopeo inspect --cert-dir "$REGISTRY_CERT_DIR" "docker://$BUSYBOX_IMAGE"
  [ "$status" -ne 0 ]
}

@test "users: test_user_create with and without subuid ranges, run_as" {
  require_root
  test_user_create kiln-t-plain
  [ "$TEST_USER" = kiln-t-plain ]
  ! grep -q '^kiln-t-plain:' /etc/subuid || false
  ! grep -q '^kiln-t-plain:' /etc/subgid || false
  run run_as kiln-t-plain id -u
  [ "$output" = "$TEST_UID" ]
  [ "$TEST_UID" -ne 0 ]
  # Environment kept, HOME/TMPDIR the user's own and writable.
  run run_as kiln-t-plain sh -c 'echo "$KILN|$HOME|$USER"; touch "$TMPDIR/x" && echo tmp-ok'
  [ "${lines[0]}" = "$KILN|$TEST_HOME|kiln-t-plain" ]
  [ "${lines[1]}" = tmp-ok ]
  # No capabilities left.
  run run_as kiln-t-plain grep CapEff /proc/self/status
  [[ $output == *0000000000000000 ]]

  test_user_create kiln-t-sub --subuid
  local a b
  a=$(grep '^kiln-t-sub:' /etc/subuid)
  [ "$(grep -c '^kiln-t-sub:' /etc/subuid)" -eq 1 ]
  [ "${a##*:}" = 65536 ]
  grep -q "^$a\$" /etc/subgid
  # Idempotent: same range again.
  test_user_create kiln-t-sub --subuid
  b=$(grep '^kiln-t-sub:' /etc/subuid)
  [ "$a" = "$b" ]
  # Distinct from every other range.
  local start=${a#*:}; start=${start%%:*}
  ! awk -F: -v n=kiln-t-sub -v s="$start" '$1 != n && s < $2 + $3 && $2 < s + 65536' /etc/subuid | grep -q . || false
  # And a user namespace with the full range works through newuidmap.
  if command -v unshare >/dev/null && command -v newuidmap >/dev/null; then
    run run_as kiln-t-sub unshare --user --map-auto cat /proc/self/uid_map
    [ "$status" -eq 0 ]
    [ "$(echo $output)" = "0 $start 65536" ]
  fi
  # Asked again without --subuid: ranges removed.
  test_user_create kiln-t-sub
  ! grep -q '^kiln-t-sub:' /etc/subuid || false
}

@test "users: fuse_dev_open_for_all makes /dev/fuse 0666" {
  fuse_dev_open_for_all
  [ "$(stat -c %a /dev/fuse)" = 666 ]
}

@test "kiln_teardown fails on a mount left under TEST_TMP and detaches it" {
  require_root "needs root to mount a tmpfs"
  mkdir "$TEST_TMP/m"
  mount -t tmpfs kiln-test-leak "$TEST_TMP/m"
  run kiln_teardown
  [ "$status" -ne 0 ]
  [[ $output == *"mounts left behind under $TEST_TMP"* ]]
  ! grep -q " $TEST_TMP/m " /proc/self/mountinfo || false
  run kiln_teardown
  [ "$status" -eq 0 ]
}
