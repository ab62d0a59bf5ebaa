#!/usr/bin/env bats
# Lazy layers for cache hits (issue 19 item 2): with --cache-repo a step that
# hits needs its layer's digest, not its files, so a fully cached build from
# an empty store downloads no layer blob; a layer is fetched when a step that
# misses needs the files below it, or an output needs its bytes. Counted in
# the registry's access log (GETs of layer blobs).

load helpers

setup_file() { build_file_setup; }
teardown_file() { registry_stop_all; }
setup() { kiln_setup; }
teardown() { kiln_teardown; }

# kb STORE CONTEXT [FLAGS...]
kb() {
  local store=$1 ctx=$2
  shift 2
  "$KILN" build --root "$store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" --progress=plain \
    "$@" "$ctx"
}

# w5's shape on busybox: a RUN that makes a user, COPY --chown by name, USER,
# WORKDIR, a RUN that reads what COPY wrote.
make_ctx() {
  mkdir -p "$1/src"
  cat > "$1/Dockerfile" <<'EOF2'
ARG BASE
FROM $BASE
RUN echo 'app:x:1234:1234::/srv:/bin/sh' >> /etc/passwd && echo 'app:x:1234:' >> /etc/group && mkdir -p /srv && chown app:app /srv && head -c 16 /dev/urandom | od -An -tx1 > /token1
COPY --chown=app:app src/ /srv/src/
USER app
WORKDIR /srv
RUN ls /srv/src > /srv/listing.txt && head -c 16 /dev/urandom | od -An -tx1 > /srv/token2
CMD ["sh"]
EOF2
  echo one > "$1/src/a.txt"
  echo two > "$1/src/b.txt"
}

# The layer digests of an image in the registry.
layers_of() {
  skopeo inspect --tls-verify=false --raw "docker://$1" | jq -r '.layers[].digest'
}

# Access log lines from line $1 on.
log_since() {
  tail -n +"$(( $1 + 1 ))" "$REGISTRY_LOG"
}

log_lines() {
  wc -l < "$REGISTRY_LOG"
}

# GETs of the given blob digests (answered 200 or 307) in the log text on stdin.
count_blob_gets() {
  local text n=0 d
  text=$(cat)
  for d in "$@"; do
    n=$(( n + $(grep -cE "\"GET /v2/[^ ]*/blobs/$d HTTP/[0-9.]+\" (200|206|307) " <<< "$text" || true) ))
  done
  echo "$n"
}

@test "lazy layers: a no-change rebuild from an empty store with --cache-repo pushed to the same registry downloads no layer blob and pushes the same image" {
  make_ctx "$TEST_TMP/ctx"
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/lazy1/cache" --reproducible -t "$REGISTRY/lazy1/app:1"
  echo "$output"
  [ "$status" -eq 0 ]
  d1=$(skopeo inspect --tls-verify=false "docker://$REGISTRY/lazy1/app:1" | jq -r .Digest)
  mapfile -t layers < <(layers_of "$REGISTRY/lazy1/app:1")
  [ "${#layers[@]}" -ge 4 ]
  mark=$(log_lines)
  run kb "$TEST_TMP/s2" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/lazy1/cache" --reproducible -t "$REGISTRY/lazy1/app:2"
  echo "$output"
  [ "$status" -eq 0 ]
  # every step that can be cached hits, and none ran
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 4 ]
  [[ $output == *"layer blobs pulled: 0 (0.0 MB)"* ]]
  [ "$(log_since "$mark" | count_blob_gets "${layers[@]}")" -eq 0 ]
  # the same image, its blobs already in the repository
  d2=$(skopeo inspect --tls-verify=false "docker://$REGISTRY/lazy1/app:2" | jq -r .Digest)
  [ "$d1" = "$d2" ]
  [ "$(registry_blob_uploads <(log_since "$mark"))" -eq 0 ]
  # the store has no layer of it (nothing was extracted)
  [ -z "$(ls "$TEST_TMP/s2/layers/sha256" 2>/dev/null)" ]
}

@test "lazy layers: a one-file change re-runs the COPY and what follows; the layers below are fetched then" {
  make_ctx "$TEST_TMP/ctx"
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/lazy2/cache" -t "$REGISTRY/lazy2/app:1"
  [ "$status" -eq 0 ]
  mapfile -t layers < <(layers_of "$REGISTRY/lazy2/app:1")
  echo changed > "$TEST_TMP/ctx/src/b.txt"
  mark=$(log_lines)
  run kb "$TEST_TMP/s2" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/lazy2/cache" -t "$REGISTRY/lazy2/app:2" \
    --oci-layout "$TEST_TMP/o2:t"
  echo "$output"
  [ "$status" -eq 0 ]
  # the first RUN hits; the COPY misses (naming the file), WORKDIR and the last RUN follow
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 1 ]
  [[ $output == *"cache miss: src/b.txt changed"* ]]
  # the base's and the first RUN's layers were fetched for the COPY (once each)
  [ "$(log_since "$mark" | count_blob_gets "${layers[0]}" "${layers[1]}")" -eq 2 ]
  # the new image: the first layers are the old ones, the RUN saw both files
  mapfile -t layers2 < <(layers_of "$REGISTRY/lazy2/app:2")
  [ "${layers2[0]}" = "${layers[0]}" ]
  [ "${layers2[1]}" = "${layers[1]}" ]
  [ "${layers2[2]}" != "${layers[2]}" ]
  run "$KILN" run --root "$TEST_TMP/s2" --oci-layout "$TEST_TMP/o2:t" -- cat /srv/listing.txt /srv/src/b.txt
  echo "$output"
  [[ $output == *"a.txt"*"b.txt"*"changed"* ]]
}

@test "lazy layers: an entry whose blob vanished from the registry is rebuilt with a warning" {
  make_ctx "$TEST_TMP/ctx"
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/lazy3/cache" --no-push
  [ "$status" -eq 0 ]
  # the first RUN's entry: its layer is the image's second
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --no-push --oci-layout "$TEST_TMP/o1:t"
  [ "$status" -eq 0 ]
  m=$(jq -r '.manifests[0].digest' "$TEST_TMP/o1/index.json")
  gone=$(jq -r '.layers[1].digest' "$TEST_TMP/o1/blobs/sha256/${m#sha256:}")
  run curl -fsS -X DELETE "http://$REGISTRY/v2/lazy3/cache/blobs/$gone"
  [ "$status" -eq 0 ]
  run kb "$TEST_TMP/s2" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/lazy3/cache" --no-push
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"warn: build cache entry $REGISTRY/lazy3/cache:"*": its layer blob $gone is not in registry '$REGISTRY', repository 'lazy3/cache'"*"rebuilding the step"* ]]
  # the RUN ran again (a new token: a new layer), the rest followed it
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 0 ]
}

@test "lazy layers: a base layer gone from its repository fails the push with registry, repository and digest" {
  make_ctx "$TEST_TMP/ctx"
  skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false "docker://$BUSYBOX_IMAGE" \
    "docker://$REGISTRY/lazy4/base:1"
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --build-arg "BASE=$REGISTRY/lazy4/base:1" --cache-repo "$REGISTRY/lazy4/cache" \
    --no-push
  [ "$status" -eq 0 ]
  base=$(layers_of "$REGISTRY/lazy4/base:1" | head -n1)
  run curl -fsS -X DELETE "http://$REGISTRY/v2/lazy4/base/blobs/$base"
  [ "$status" -eq 0 ]
  # every step hits; the push wants the base layer, which no repository of
  # the registry has under that name and whose source has lost it
  run kb "$TEST_TMP/s2" "$TEST_TMP/ctx" --build-arg "BASE=$REGISTRY/lazy4/base:1" --cache-repo "$REGISTRY/lazy4/cache" \
    -t "$REGISTRY/lazy4/app:1"
  echo "$output"
  [ "$status" -ne 0 ]
  [[ $output == *"$base"* ]]
  [[ $output == *"registry '$REGISTRY', repository 'lazy4/base'"* ]]
}

@test "lazy layers: a push to another repository mounts the blobs across repositories; to another registry they are fetched and verified" {
  make_ctx "$TEST_TMP/ctx"
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/lazy5/cache" --no-push
  [ "$status" -eq 0 ]
  mark=$(log_lines)
  run kb "$TEST_TMP/s2" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/lazy5/cache" -t "$REGISTRY/lazy5/other:1"
  echo "$output"
  [ "$status" -eq 0 ]
  mapfile -t layers < <(layers_of "$REGISTRY/lazy5/other:1")
  [ "$(log_since "$mark" | count_blob_gets "${layers[@]}")" -eq 0 ]
  # only the new config (its created time) is uploaded
  [ "$(registry_blob_uploads <(log_since "$mark"))" -eq 1 ]
  # every layer mounted: the base's from its repository, the steps' from the cache
  [ "$(log_since "$mark" | grep -cE '"POST /v2/lazy5/other/blobs/uploads/\?mount=sha256:[0-9a-f]+&from=(library%2Fbusybox|lazy5%2Fcache) HTTP/[0-9.]+" 201 ')" -eq "${#layers[@]}" ]
  # Another registry: the blobs are fetched (digest-verified) and uploaded.
  first=$REGISTRY
  registry_start
  second=$REGISTRY
  REGISTRY=$first
  run kb "$TEST_TMP/s3" "$TEST_TMP/ctx" --cache-repo "$first/lazy5/cache" --insecure-registry "$second" \
    -t "$second/lazy5/app:1"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"layer blobs pulled: ${#layers[@]} "* ]]
  # skopeo checks every blob's digest as it copies
  run skopeo copy --src-tls-verify=false "docker://$second/lazy5/app:1" "oci:$TEST_TMP/copy:t"
  [ "$status" -eq 0 ]
  [ "$(layers_of "$second/lazy5/app:1")" = "$(printf '%s\n' "${layers[@]}")" ]
}

@test "lazy layers: an OCI layout, --sbom and --single-snapshot of a fully cached build fetch the layers they read" {
  make_ctx "$TEST_TMP/ctx"
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/lazy6/cache" --no-push
  [ "$status" -eq 0 ]
  run kb "$TEST_TMP/s2" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/lazy6/cache" --oci-layout "$TEST_TMP/o2:t" --sbom
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 4 ]
  # the base's layer and the three cached steps' (WORKDIR made no layer)
  [[ $output == *"layer blobs pulled: 4 "* ]]
  [ -s "$TEST_TMP/o2/sbom.spdx.json" ]
  umoci unpack --image "$TEST_TMP/o2:t" "$TEST_TMP/u2" >/dev/null
  [ "$(cat "$TEST_TMP/u2/rootfs/srv/listing.txt")" = "$(printf 'a.txt\nb.txt')" ]
  run kb "$TEST_TMP/s3" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/lazy6/cache" --single-snapshot \
    --oci-layout "$TEST_TMP/o3:t"
  echo "$output"
  [ "$status" -eq 0 ]
  umoci unpack --image "$TEST_TMP/o3:t" "$TEST_TMP/u3" >/dev/null
  [ "$(cat "$TEST_TMP/u3/rootfs/srv/listing.txt")" = "$(printf 'a.txt\nb.txt')" ]
  [ "$(stat -c %u "$TEST_TMP/u3/rootfs/srv/src/a.txt")" = 1234 ]
}

@test "lazy layers: COPY --from a cached stage, in a cached build, reads nothing of that stage" {
  mkdir -p "$TEST_TMP/ctx"
  cat > "$TEST_TMP/ctx/Dockerfile" <<'EOF2'
ARG BASE
FROM $BASE AS builder
RUN mkdir /out && head -c 16 /dev/urandom | od -An -tx1 > /out/token
FROM $BASE
COPY --from=builder /out/ /app/
RUN cat /app/token > /seen
EOF2
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/lazy7/cache" -t "$REGISTRY/lazy7/app:1"
  [ "$status" -eq 0 ]
  mapfile -t layers < <(layers_of "$REGISTRY/lazy7/app:1")
  mark=$(log_lines)
  run kb "$TEST_TMP/s2" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/lazy7/cache" -t "$REGISTRY/lazy7/app:2"
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 3 ]
  [[ $output == *"layer blobs pulled: 0 (0.0 MB)"* ]]
  [ "$(log_since "$mark" | count_blob_gets "${layers[@]}")" -eq 0 ]
  [ "$(layers_of "$REGISTRY/lazy7/app:2")" = "$(layers_of "$REGISTRY/lazy7/app:1")" ]
}
