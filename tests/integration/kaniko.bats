#!/usr/bin/env bats
# kaniko drop-in (issue 18): every executor flag of kaniko v1.24.0 accepted
# with kaniko's meaning (kaniko-executor-flags.txt, extracted from kaniko's
# root.go), docs/compatibility.md's table generated from kiln's flag table,
# kaniko's short forms, and the push access check before the build.

load helpers

setup() { kiln_setup; }
teardown() { kiln_teardown; }

# A value kiln accepts for kaniko flag $1 of type $2.
sample_value() {
  case "$1" in
    --verbosity) echo debug ;;
    --log-format) echo color ;;
    --dockerfile) echo Dockerfile ;;
    --context) echo "dir://$TEST_TMP/ctx" ;;
    --context-sub-path) echo . ;;
    --destination) echo registry.example/app:1 ;;
    --snapshot-mode|--snapshotMode) echo redo ;;
    --custom-platform|--customPlatform) echo linux/amd64 ;;
    --build-arg) echo A=1 ;;
    --cache-repo) echo registry.example/cache ;;
    --compression) echo zstd ;;
    --compression-level) echo 3 ;;
    --cache-ttl) echo 6h ;;
    --insecure-registry|--skip-tls-verify-registry|--registry-mirror) echo registry.example ;;
    --registry-certificate) echo registry.example=/ca.pem ;;
    --registry-client-cert) echo registry.example=/c.pem,/k.pem ;;
    --registry-map) echo "index.docker.io=mirror.example;quay.io=mirror.example" ;;
    --label) echo k=v ;;
    --git) echo branch=main ;;
    --ignore-path) echo /ignored ;;
    --bucket) echo my-bucket ;;
    --target) echo base ;;
    *)
      case "$2" in
        int) echo 2 ;;
        *) echo "$TEST_TMP/out-${1#--}" ;;
      esac ;;
  esac
}

kaniko_flags() { grep -v '^#' "$KILN_SRC/tests/integration/kaniko-executor-flags.txt"; }

@test "kaniko: every executor flag of v1.24.0 (kaniko-executor-flags.txt) and its short form is accepted by kiln build --dry-run" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM scratch AS base\nCOPY a /a\n' > "$TEST_TMP/ctx/Dockerfile"
  echo a > "$TEST_TMP/ctx/a"
  [ "$(kaniko_flags | wc -l)" -ge 60 ]
  local flag short type dflt args
  while IFS=$'\t' read -r flag short type dflt; do
    if [ "$type" = bool ]; then
      args=("$flag" "$flag=false")
    else
      args=("$flag" "$(sample_value "$flag" "$type")")
    fi
    run "$KILN" build --dry-run -c "$TEST_TMP/ctx" "${args[@]}"
    [[ $output != *"unknown flag"* ]] || { echo "$flag: $output"; false; }
    if [ "$flag" = --bucket ]; then
      # The one flag kiln cannot honour: a clear error naming what to do.
      [ "$status" -eq 2 ]
      [[ $output == *"--bucket 'my-bucket': kiln cannot fetch a build context from a bucket"* ]]
      continue
    fi
    [ "$status" -eq 0 ] || { echo "$flag: status $status: $output"; false; }
    if [ "$short" != - ] && [ "$type" != bool ]; then
      run "$KILN" build --dry-run -c "$TEST_TMP/ctx" "$short" "$(sample_value "$flag" "$type")"
      [ "$status" -eq 0 ] || { echo "$short ($flag): status $status: $output"; false; }
    fi
  done < <(kaniko_flags)
  # A flag kiln has nothing to do for says so in one line, never silently.
  run "$KILN" build --dry-run -c "$TEST_TMP/ctx" --force --compressed-caching=false --kaniko-dir /kaniko --use-new-run
  [ "$status" -eq 0 ]
  [[ $output == *"--force has no effect: "* ]]
  [[ $output == *"--compressed-caching has no effect: "* ]]
  [[ $output == *"--kaniko-dir has no effect: kiln keeps its state in its store"* ]]
  [[ $output == *"--use-new-run has no effect: "* ]]
  # Values kaniko refuses are refused.
  run "$KILN" build --dry-run -c "$TEST_TMP/ctx" --snapshot-mode fast
  [ "$status" -eq 2 ]
  [[ $output == *"--snapshot-mode 'fast': expected full, redo or time"* ]]
  run "$KILN" build --dry-run -c "$TEST_TMP/ctx" --registry-client-cert registry.example=/c.pem
  [ "$status" -eq 2 ]
  [[ $output == *"expected REGISTRY=CERT,KEY"* ]]
  run "$KILN" build --dry-run -c "$TEST_TMP/ctx" --context-sub-path ../up
  [ "$status" -eq 2 ]
  [[ $output == *"expected a relative path inside the context"* ]]
  # An unknown flag still is one.
  run "$KILN" build --dry-run -c "$TEST_TMP/ctx" --no-such-kaniko-flag
  [ "$status" -eq 2 ]
  [[ $output == *"unknown flag '--no-such-kaniko-flag'"* ]]
}

@test "kaniko: docs/compatibility.md's table is kiln build --help-kaniko-table, and it lists exactly kaniko's flags" {
  run "$KILN_SRC/scripts/kaniko-table.sh" --check
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  run "$KILN" build --help-kaniko-table
  [ "$status" -eq 0 ]
  local table=$output flag short rest n=0
  while IFS=$'\t' read -r flag short rest; do
    n=$((n + 1))
    if [ "$short" = - ]; then
      grep -qF "| \`$flag\` |" <<< "$table" || { echo "no row for $flag"; false; }
    else
      grep -qF "| \`$flag\`, \`$short\` |" <<< "$table" || { echo "no row for $flag, $short"; false; }
    fi
  done < <(kaniko_flags)
  [ "$(grep -c '^| `--' <<< "$table")" -eq "$n" ]
  # -d is kaniko's --destination, kiln's -t.
  grep -qF '| `--destination`, `-d` | `-t`, `--tag` |' <<< "$table"
  # A stale document is reported.
  sed 's/^| `--force` | same | .*/| `--force` | same | something else |/' "$KILN_SRC/docs/compatibility.md" > "$TEST_TMP/c.md"
  KILN_COMPAT_DOC="$TEST_TMP/c.md" run "$KILN_SRC/scripts/kaniko-table.sh" --check
  [ "$status" -eq 1 ]
  [[ $output == *"disagrees with kiln build's flag table"* ]]
}

@test "kaniko: -c dir:// -f -d from another directory, --context-sub-path, the digest files" {
  build_file_setup
  export KILN_ROOT="$TEST_TMP/store" # a fresh store: the RUN step runs, no cache hit
  mkdir -p "$TEST_TMP/repo/app" "$TEST_TMP/elsewhere"
  printf 'ARG BASE\nFROM $BASE\nCOPY a.txt /a.txt\nRUN cat /a.txt\n' > "$TEST_TMP/repo/app/Dockerfile"
  echo kaniko-ctx > "$TEST_TMP/repo/app/a.txt"
  cd "$TEST_TMP/elsewhere"
  # kaniko's GitHub Actions style: short forms, a relative Dockerfile found in the context.
  run "$KILN" build -c "dir://$TEST_TMP/repo" --context-sub-path app -f Dockerfile \
    -d "$REGISTRY/kaniko/app:1" -d "$REGISTRY/kaniko/app:2" --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --cache=true --snapshot-mode=redo --use-new-run --cleanup \
    --compressed-caching=false --image-name-tag-with-digest-file "$TEST_TMP/ntd" \
    --image-name-with-digest-file "$TEST_TMP/nd" --digest-file "$TEST_TMP/d" --progress plain
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ $output == *kaniko-ctx* ]]
  local d
  d=$(cat "$TEST_TMP/d")
  [[ $d == sha256:* ]]
  [ "$(cat "$TEST_TMP/ntd")" = "$(printf '%s\n' "$REGISTRY/kaniko/app:1@$d" "$REGISTRY/kaniko/app:2@$d")" ]
  [ "$(cat "$TEST_TMP/nd")" = "$(printf '%s\n' "$REGISTRY/kaniko/app@$d" "$REGISTRY/kaniko/app@$d")" ]
  [ "$(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/kaniko/app:2" | sha256sum | cut -d' ' -f1)" = "${d#sha256:}" ]
  # A sub-path that is not there names it.
  run "$KILN" build -c "dir://$TEST_TMP/repo" --context-sub-path nope --no-push
  [ "$status" -eq 1 ]
  [[ $output == *"--context-sub-path 'nope'"* ]]
}

@test "kaniko: its README's invocation in long forms (absolute --dockerfile, --destination x2) with --cache=true --cache-repo --single-snapshot --reproducible; a fresh runner gives the same image from the cache" {
  build_file_setup
  mkdir -p "$TEST_TMP/workspace" "$TEST_TMP/elsewhere"
  printf 'ARG BASE\nFROM $BASE\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt && echo ran-$RANDOM\n' > "$TEST_TMP/workspace/Dockerfile"
  echo readme-ctx > "$TEST_TMP/workspace/a.txt"
  cd "$TEST_TMP/elsewhere"
  local store
  for store in warm fresh; do
    KILN_ROOT="$TEST_TMP/$store" run "$KILN" build --dockerfile "$TEST_TMP/workspace/Dockerfile" \
      --context "dir://$TEST_TMP/workspace/" --destination "$REGISTRY/readme/app:1" \
      --destination "$REGISTRY/readme/app:latest" --cache=true --cache-repo "$REGISTRY/readme/cache" \
      --single-snapshot --reproducible --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
      --digest-file "$TEST_TMP/digest-$store" --progress plain
    echo "$output"
    [ "$status" -eq 0 ]
  done
  # The fresh runner (empty store) took the RUN step from the cache repository.
  [[ $output == *"RUN cat /a.txt > /b.txt"*"CACHED"* ]]
  [[ ! $output =~ ran-[0-9] ]]
  local d
  d=$(cat "$TEST_TMP/digest-warm")
  [ "$(cat "$TEST_TMP/digest-fresh")" = "$d" ]
  local tag
  for tag in 1 latest; do
    [ "$(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/readme/app:$tag" | sha256sum | cut -d' ' -f1)" = "${d#sha256:}" ]
  done
  # --single-snapshot: the base's layer and one more; --reproducible:
  # created at the epoch.
  skopeo inspect --config --tls-verify=false "docker://$REGISTRY/readme/app:1" > "$TEST_TMP/config.json"
  jq -e '(.rootfs.diff_ids | length) == 2 and .created == "1970-01-01T00:00:00Z"' "$TEST_TMP/config.json"
  skopeo list-tags --tls-verify=false "docker://$REGISTRY/readme/cache" | jq -e '.Tags | length >= 1'
  skopeo copy --quiet --src-tls-verify=false "docker://$REGISTRY/readme/app:1" "oci:$TEST_TMP/oci:t"
  umoci unpack --rootless --image "$TEST_TMP/oci:t" "$TEST_TMP/b" > /dev/null
  [ "$(cat "$TEST_TMP/b/rootfs/b.txt")" = readme-ctx ]
  [ -x "$TEST_TMP/b/rootfs/bin/busybox" ]
}

@test "kaniko: push access is checked before anything is pulled or run: wrong password, good password, TLS" {
  kiln_setup
  [ "$(id -u)" -ne 0 ] || chmod 0666 /dev/fuse
  registry_start --tls --htpasswd pusher:right
  fixtures_push busybox
  export KILN_ROOT="$TEST_TMP/store" # a fresh store: the RUN step runs, no cache hit
  mkdir -p "$TEST_TMP/ctx" "$TEST_TMP/bad" "$TEST_TMP/good"
  printf 'FROM %s\nRUN echo kiln-step-ran-$((6*7))\n' "$BUSYBOX_IMAGE" > "$TEST_TMP/ctx/Dockerfile"
  printf '{"auths":{"%s":{"auth":"%s"}}}' "$REGISTRY" "$(printf pusher:wrong | base64)" > "$TEST_TMP/bad/config.json"
  printf '{"auths":{"%s":{"auth":"%s"}}}' "$REGISTRY" "$(printf pusher:right | base64)" > "$TEST_TMP/good/config.json"
  local pulls_before
  pulls_before=$(grep -c 'GET /v2/library/busybox/manifests' "$REGISTRY_LOG" || true)
  run env DOCKER_CONFIG="$TEST_TMP/bad" REGISTRY_AUTH_FILE= XDG_RUNTIME_DIR="$TEST_TMP/none" \
    "$KILN" build -c "$TEST_TMP/ctx" -d "$REGISTRY/team/app:1" --registry-certificate "$REGISTRY=$REGISTRY_CA" \
    --progress plain --retries 0
  [ "$status" -eq 1 ]
  [[ $output == *"no push access to '$REGISTRY/team/app'"* ]] || { echo "$output"; false; }
  [[ $output == *"registry '$REGISTRY', repository 'team/app'"*"authentication failed"* ]]
  [[ $output != *kiln-step-ran-42* ]]
  [ "$(grep -c 'GET /v2/library/busybox/manifests' "$REGISTRY_LOG" || true)" -eq "$pulls_before" ]
  # Without the CA: the TLS failure is what the check reports.
  run env DOCKER_CONFIG="$TEST_TMP/good" XDG_RUNTIME_DIR="$TEST_TMP/none" \
    "$KILN" build -c "$TEST_TMP/ctx" -d "$REGISTRY/team/app:1" --progress plain --retries 0
  [ "$status" -eq 1 ]
  [[ $output == *"no push access to '$REGISTRY/team/app'"*"certificate"* ]] || { echo "$output"; false; }
  [[ $output != *kiln-step-ran-42* ]]
  # A cache repository with the wrong credentials fails early too (also with --no-push, as kaniko).
  run env DOCKER_CONFIG="$TEST_TMP/bad" REGISTRY_AUTH_FILE= XDG_RUNTIME_DIR="$TEST_TMP/none" \
    "$KILN" build -c "$TEST_TMP/ctx" --no-push --cache-repo "$REGISTRY/team/cache" \
    --registry-certificate "$REGISTRY=$REGISTRY_CA" --progress plain --retries 0
  [ "$status" -eq 1 ]
  [[ $output == *"no push access to '$REGISTRY/team/cache'"*"authentication failed"* ]] || { echo "$output"; false; }
  [[ $output != *kiln-step-ran-42* ]]
  # --skip-push-permission-check: no check, so the build starts (and its pull fails on the same credentials).
  run env DOCKER_CONFIG="$TEST_TMP/bad" REGISTRY_AUTH_FILE= XDG_RUNTIME_DIR="$TEST_TMP/none" \
    "$KILN" build -c "$TEST_TMP/ctx" -d "$REGISTRY/team/app:1" --registry-certificate "$REGISTRY=$REGISTRY_CA" \
    --progress plain --retries 0 --skip-push-permission-check
  [ "$status" -eq 1 ]
  [[ $output != *"no push access"* ]]
  [[ $output == *"library/busybox"* ]] || { echo "$output"; false; }
  # The right password: checked, built, pushed; the check's upload was cancelled.
  run env DOCKER_CONFIG="$TEST_TMP/good" XDG_RUNTIME_DIR="$TEST_TMP/none" \
    "$KILN" build -c "$TEST_TMP/ctx" -d "$REGISTRY/team/app:1" --registry-certificate "$REGISTRY=$REGISTRY_CA" \
    --progress plain
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ $output == *kiln-step-ran-42* ]]
  grep -qE '"DELETE /v2/team/app/blobs/uploads/[^ ]+ HTTP/[0-9.]+" 204' "$REGISTRY_LOG"
}

@test "kaniko: an unreachable destination fails before the build; an unreachable cache repository is a warning; --no-push-cache skips its check" {
  build_file_setup
  export KILN_ROOT="$TEST_TMP/store" # a fresh store: the RUN step runs, no cache hit
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM %s\nRUN echo kiln-step-ran-$((6*7))\n' "$BUSYBOX_IMAGE" > "$TEST_TMP/ctx/Dockerfile"
  run "$KILN" build -c "$TEST_TMP/ctx" -d 127.0.0.1:1/team/app:1 --insecure-registry "$REGISTRY" \
    --insecure-registry 127.0.0.1:1 --retries 0 --progress plain
  [ "$status" -eq 1 ]
  [[ $output == *"no push access to '127.0.0.1:1/team/app'"* ]] || { echo "$output"; false; }
  [[ $output == *"registry '127.0.0.1:1'"*"onnect"* ]]
  [[ $output != *kiln-step-ran-42* ]]
  # A cache repository whose registry is down is checked too, but costs a
  # warning only (the build goes on without the registry cache) ...
  run "$KILN" build -c "$TEST_TMP/ctx" --no-push --cache-repo 127.0.0.1:1/cache --insecure-registry "$REGISTRY" \
    --insecure-registry 127.0.0.1:1 --retries 0 --progress plain
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ $output == *"warn: --cache-repo '127.0.0.1:1/cache': registry '127.0.0.1:1', repository 'cache': push access check"* ]]
  [[ $output == *kiln-step-ran-42* ]]
  # ... and with --no-push-cache it is not checked at all.
  run "$KILN" build -c "$TEST_TMP/ctx" --no-push --cache-repo 127.0.0.1:1/cache --no-push-cache --no-cache \
    --insecure-registry "$REGISTRY" --insecure-registry 127.0.0.1:1 --retries 0 --progress plain
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ $output != *"push access check"* ]]
}

# --- papercuts found on the way (issue 18 item 9) ---

@test "papercuts: -q prints nothing but the digest; step titles without line continuations; pushes are a step of their own" {
  build_file_setup
  export KILN_ROOT="$TEST_TMP/store"
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM %s\nRUN echo one \\\n    && echo two\nCOPY f /f\n' "$BUSYBOX_IMAGE" > "$TEST_TMP/ctx/Dockerfile"
  echo f > "$TEST_TMP/ctx/f"
  "$KILN" build --insecure-registry "$REGISTRY" -t "$REGISTRY/pc/app:1" -q "$TEST_TMP/ctx" \
    > "$TEST_TMP/q.out" 2> "$TEST_TMP/q.err"
  [ ! -s "$TEST_TMP/q.err" ] || { cat "$TEST_TMP/q.err"; false; }
  grep -qxE 'sha256:[0-9a-f]{64}' "$TEST_TMP/q.out"
  [ "$(wc -l < "$TEST_TMP/q.out")" -eq 1 ]
  # plain progress: the title is the instruction on one line, no backslash
  run "$KILN" build --insecure-registry "$REGISTRY" -t "$REGISTRY/pc/app:2" --progress plain "$TEST_TMP/ctx"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  grep -qxF '#2 [stage-0 2/3] RUN echo one && echo two' <<< "$output" || { echo "$output"; false; }
  [[ $output != *'\ &&'* ]]
  # the push lines carry the id of the output step, not of COPY (#3)
  grep -qxF '#4 [output 1/1] exporting the image' <<< "$output"
  grep -qxF "#4 pushing $REGISTRY/pc/app:2" <<< "$output"
  grep -qE "^#4 pushed $REGISTRY/pc/app:2@sha256:" <<< "$output"
  ! grep -qE '^#3 push' <<< "$output"
  grep -qE '^#4 DONE [0-9.]+s$' <<< "$output"
}

@test "papercuts: --log-format takes text, color and json only; --progress=json ends a failed build with a JSON error event" {
  build_file_setup
  export KILN_ROOT="$TEST_TMP/store"
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM scratch\n' > "$TEST_TMP/ctx/Dockerfile"
  run "$KILN" build --dry-run --log-format=logfmt "$TEST_TMP/ctx"
  [ "$status" -eq 2 ]
  [[ $output == *"invalid log format 'logfmt' (expected text, color or json)"* ]]
  run "$KILN" build --dry-run --log-format=color --force "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  [[ $output == *$'\e[36minfo\e[0m: --force has no effect'* ]]
  # a failing RUN step under --progress=json: every line JSON, the last one the error
  printf 'FROM %s\nRUN echo about-to-fail; exit 3\n' "$BUSYBOX_IMAGE" > "$TEST_TMP/ctx/Dockerfile"
  run bash -c "'$KILN' build --no-push --insecure-registry '$REGISTRY' --progress=json '$TEST_TMP/ctx' 2>&1 >/dev/null"
  [ "$status" -ne 0 ]
  jq -e . <<< "$output" > /dev/null || { echo "$output"; false; }
  [ "$(tail -n1 <<< "$output" | jq -r .event)" = error ]
  tail -n1 <<< "$output" | jq -e '.level == "error" and (.msg | contains("RUN echo about-to-fail")) and .exit == '"$status"
}

@test "papercuts: a plain-HTTP registry without --insecure-registry gets a hint naming the flag; NAME:TAG without a host is docker.io, logged" {
  build_file_setup
  export KILN_ROOT="$TEST_TMP/store"
  run "$KILN" pull --retries 0 "$BUSYBOX_IMAGE" --oci-layout "$TEST_TMP/l"
  [ "$status" -eq 1 ]
  [[ $output == *"plain HTTP, not TLS"*"give --insecure-registry $REGISTRY"* ]] || { echo "$output"; false; }
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM scratch\nCOPY f /f\n' > "$TEST_TMP/ctx/Dockerfile"
  echo f > "$TEST_TMP/ctx/f"
  run "$KILN" build -t "$REGISTRY/pc/app:1" --retries 0 "$TEST_TMP/ctx"
  [ "$status" -eq 1 ]
  [[ $output == *"give --insecure-registry $REGISTRY"* ]]
  printf 'FROM %s\nCOPY f /f\n' "$BUSYBOX_IMAGE" > "$TEST_TMP/ctx/Dockerfile"
  run "$KILN" build -t myapp:1.0 --no-push --insecure-registry "$REGISTRY" "$TEST_TMP/ctx"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ $output == *"'myapp:1.0' names no registry: it means docker.io/library/myapp:1.0 (Docker Hub, Docker's default)"* ]]
  run "$KILN" build -t docker.io/library/myapp:1.0 --no-push --insecure-registry "$REGISTRY" "$TEST_TMP/ctx"
  [[ $output != *"names no registry"* ]]
  # kiln run NAME:TAG (the README's table) runs what was built under that name
  grep -qF '`kiln run NAME:TAG' "$KILN_SRC/README.md"
  run "$KILN" run myapp:1.0 cat /f
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [ "${lines[-1]}" = f ]
}

@test "kaniko: --registry-map, --skip-default-registry-fallback, --skip-tls-verify-registry, --ignore-var-run, --no-push-cache do what kaniko's do" {
  kiln_setup
  [ "$(id -u)" -ne 0 ] || chmod 0666 /dev/fuse
  registry_start --tls
  fixtures_push busybox
  export KILN_ROOT="$TEST_TMP/store"
  mkdir -p "$TEST_TMP/ctx"
  # A base named after a registry that does not exist, mapped to the test registry (TLS, not verified).
  printf 'FROM nowhere.invalid/library/busybox:latest\nRUN mkdir -p /var/run/kept /other && echo x > /var/run/kept/f && echo y > /other/f\n' \
    > "$TEST_TMP/ctx/Dockerfile"
  run "$KILN" build -c "$TEST_TMP/ctx" --no-push --oci-layout "$TEST_TMP/plain:t" \
    --registry-map "nowhere.invalid=$REGISTRY" --skip-tls-verify-registry "$REGISTRY" --progress plain
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ $output == *"pulling nowhere.invalid/library/busybox:latest from mirror $REGISTRY"* ]]
  # without --skip-tls-verify-registry the mirror fails TLS and the fallback (nowhere.invalid) fails too;
  # with --skip-default-registry-fallback there is no fallback at all
  run "$KILN" build -c "$TEST_TMP/ctx" --no-push --no-cache --registry-map "nowhere.invalid=$REGISTRY" \
    --skip-default-registry-fallback --retries 0 --root "$TEST_TMP/store2"
  [ "$status" -eq 1 ]
  [[ $output == *"mirror $REGISTRY failed"* ]]
  [[ $output == *"every mirror failed and --skip-default-registry-fallback forbids pulling from 'nowhere.invalid'"* ]]
  # --ignore-var-run: /var/run stays out of the layer, the rest is kept; not given, /var/run is kept (Docker)
  run "$KILN" build -c "$TEST_TMP/ctx" --no-push --no-cache --oci-layout "$TEST_TMP/ivr:t" --ignore-var-run \
    --registry-map "nowhere.invalid=$REGISTRY" --skip-tls-verify-registry "$REGISTRY"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  local top
  top=$(jq -r '.manifests[0].digest' "$TEST_TMP/ivr/index.json" | cut -d: -f2)
  top=$(jq -r '.layers[-1].digest' "$TEST_TMP/ivr/blobs/sha256/$top" | cut -d: -f2)
  tar -tzf "$TEST_TMP/ivr/blobs/sha256/$top" > "$TEST_TMP/ivr.txt"
  grep -q '^other/f$' "$TEST_TMP/ivr.txt"
  ! grep -q 'var/run' "$TEST_TMP/ivr.txt" || { cat "$TEST_TMP/ivr.txt"; false; }
  top=$(jq -r '.manifests[0].digest' "$TEST_TMP/plain/index.json" | cut -d: -f2)
  top=$(jq -r '.layers[-1].digest' "$TEST_TMP/plain/blobs/sha256/$top" | cut -d: -f2)
  tar -tzf "$TEST_TMP/plain/blobs/sha256/$top" | grep -q 'var/run/kept/f'
  # --no-push-cache: the cache repository is read, nothing is pushed to it
  run "$KILN" build -c "$TEST_TMP/ctx" --no-push --cache-repo "$REGISTRY/cache/app" --no-push-cache \
    --registry-map "nowhere.invalid=$REGISTRY" --skip-tls-verify-registry "$REGISTRY" --root "$TEST_TMP/store3"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ $output != *"build cache entr"*"to $REGISTRY/cache/app"* ]]
  ! grep -q 'PUT /v2/cache/app/manifests' "$REGISTRY_LOG" || false
  run "$KILN" build -c "$TEST_TMP/ctx" --no-push --cache-repo "$REGISTRY/cache/app" \
    --registry-map "nowhere.invalid=$REGISTRY" --skip-tls-verify-registry "$REGISTRY" --root "$TEST_TMP/store4"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  grep -q 'PUT /v2/cache/app/manifests' "$REGISTRY_LOG"
}

@test "pull policy: an unreachable registry falls back to the store's last resolution of the tag, naming its digest; --pull=missing and never use the store" {
  build_file_setup
  registry_start
  fixtures_push busybox
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM %s\nRUN echo built-$((6*7))\n' "$BUSYBOX_IMAGE" > "$TEST_TMP/ctx/Dockerfile"
  kb() { "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" --no-push --no-cache \
    --image-download-retry 0 --progress plain "$@" "$TEST_TMP/ctx"; }
  # --pull=never with nothing in the store: a clear error, nothing pulled
  run kb --pull=never
  [ "$status" -ne 0 ]
  [[ $output == *"is not in the store and --pull=never forbids pulling it"* ]]
  run kb
  [ "$status" -eq 0 ]
  local digest
  digest=$(skopeo inspect --raw --tls-verify=false "docker://$BUSYBOX_IMAGE" | sha256sum | cut -d' ' -f1)
  registry_stop
  # the registry is gone: the default (always) warns and builds from the store
  run kb
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"pulling '$BUSYBOX_IMAGE' failed ("*"): using the store's last resolution of it, manifest sha256:$digest"* ]]
  [[ $output == *"built-42"* ]]
  # missing and never use the store without asking the registry
  for p in missing never; do
    run kb --pull=$p
    [ "$status" -eq 0 ]
    [[ $output != *"failed"* ]]
  done
  run kb --pull=sometimes
  [ "$status" -eq 2 ]
  [[ $output == *"--pull 'sometimes': expected always, missing or never"* ]]
}

@test "kiln warm (kaniko's warmer): two images into an empty store; a build with --pull=missing uses them without the registry; a missing image fails naming it" {
  build_file_setup
  registry_start
  fixtures_push busybox
  # A second image: busybox and a file.
  mkdir -p "$TEST_TMP/base2" "$TEST_TMP/ctx"
  printf 'FROM %s\nRUN echo from-base2 > /mark\n' "$BUSYBOX_IMAGE" > "$TEST_TMP/base2/Dockerfile"
  run "$KILN" build --root "$TEST_TMP/builder" --insecure-registry "$REGISTRY" -t "$REGISTRY/app/base2:1" \
    "$TEST_TMP/base2"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  run "$KILN" warm --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" "$BUSYBOX_IMAGE" -i "$REGISTRY/app/base2:1"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"$BUSYBOX_IMAGE linux/"*" sha256:"* ]]
  [[ $output == *"$REGISTRY/app/base2:1 linux/"*" sha256:"* ]]
  printf 'FROM %s\nCOPY --from=%s /mark /mark\nRUN cat /mark\n' "$BUSYBOX_IMAGE" "$REGISTRY/app/base2:1" \
    > "$TEST_TMP/ctx/Dockerfile"
  registry_stop
  run "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" --no-push --pull=missing \
    --image-download-retry 0 --progress plain "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"from-base2"* ]]
  [[ $output != *"failed"* ]]
  [[ $output != *"warn"* ]]
  # Without the warm store the same build needs the registry, which is gone.
  run "$KILN" build --root "$TEST_TMP/cold" --insecure-registry "$REGISTRY" --no-push --pull=missing \
    --image-download-retry 0 --retries 0 --progress plain "$TEST_TMP/ctx"
  [ "$status" -ne 0 ]
  # A missing image fails, naming it; the others are still pulled.
  registry_start
  fixtures_push busybox
  run "$KILN" warm --root "$TEST_TMP/store2" --insecure-registry "$REGISTRY" --retries 0 \
    "$REGISTRY/library/nothere:1" "$BUSYBOX_IMAGE"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"kiln warm: 1 of 2 images failed: '$REGISTRY/library/nothere:1'"* ]]
  [[ $output == *"$BUSYBOX_IMAGE linux/"*" sha256:"* ]]
  run "$KILN" warm --root "$TEST_TMP/store2"
  [ "$status" -eq 2 ]
  run "$KILN" warm --root "$TEST_TMP/store2" --platform linux "$BUSYBOX_IMAGE"
  [ "$status" -eq 2 ]
}
