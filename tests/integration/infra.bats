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
  ! kill -0 "$apid" 2>/dev/null
  ! pgrep -f "$adir/config.yml"
  curl -s -f -o /dev/null "$REGISTRY_URL/v2/"
  registry_stop
  ! pgrep -f "$REGISTRY_DIR/config.yml"
}

@test "registry: TLS with htpasswd: CA + credentials 200, without 401, no CA fails" {
  registry_start --tls --htpasswd alice:s3cret
  [ "$REGISTRY_URL" = "https://$REGISTRY" ]
  [ -f "$REGISTRY_CA" ] && [ -f "$REGISTRY_CERT_DIR/ca.crt" ]
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
