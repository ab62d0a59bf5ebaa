#!/usr/bin/env bats
# RUN --mount=type=cache directories through a registry (--cache-mounts-repo):
# export by one build, import by the next on an empty store, no export
# without a change, concurrent exports of one id, hostile entries, --cache-ttl,
# the size limit, secrets.

load helpers

setup_file() { build_file_setup; }
teardown_file() { registry_stop_all; }
setup() { kiln_setup; SHARED=""; }
teardown() {
  shared_dir_cleanup
  kiln_teardown
}

# kb STORE CONTEXT [FLAGS...]
kb() {
  local store=$1 ctx=$2
  shift 2
  "$KILN" build --root "$store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" --no-push \
    "$@" "$ctx"
}

# tag_of ID: the repository tag of cache id ID.
tag_of() {
  echo "mount-$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)"
}

# manifest_of REPO TAG
manifest_of() {
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$REGISTRY_URL/v2/$1/manifests/$2"
}

# entry_tar REPO TAG OUT: the entry's layer, its digest checked against the manifest.
entry_tar() {
  local m digest
  m=$(manifest_of "$1" "$2")
  [ "$(jq '.layers | length' <<< "$m")" -eq 1 ]
  digest=$(jq -r '.layers[0].digest' <<< "$m")
  curl -sf "$REGISTRY_URL/v2/$1/blobs/$digest" -o "$3"
  [ "sha256:$(sha256sum "$3" | cut -d' ' -f1)" = "$digest" ]
}

# A Dockerfile whose RUN step mounts cache id apt at /var/cache/apt and runs $CMD.
cache_ctx() {
  mkdir -p "$1"
  cat > "$1/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE
ARG CMD=true
RUN --mount=type=cache,id=apt,target=/var/cache/apt sh -c "$CMD"
EOF
}

@test "cache mounts: exported by one build, imported by the next on an empty store; no change, no export" {
  cache_ctx "$TEST_TMP/ctx"
  local repo="$REGISTRY/cm/one"
  printf 's3cr3t-mount-value' > "$TEST_TMP/secret"
  cat >> "$TEST_TMP/ctx/Dockerfile" <<'EOF'
RUN --mount=type=cache,id=apt,target=/var/cache/apt --mount=type=secret,id=tok test -s /run/secrets/tok
EOF
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --cache-mounts-repo "$repo" --secret "id=tok,src=$TEST_TMP/secret" \
    --build-arg CMD='echo first > /var/cache/apt/hello; mkdir -p /var/cache/apt/d; echo x > /var/cache/apt/d/f; chmod 640 /var/cache/apt/d/f'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"cache mount 'apt': no entry in $repo"* ]]
  [[ $output == *"cache mount 'apt': exported to $repo:$(tag_of apt)"* ]]
  # The entry: one layer whose tar holds the directory (root included); the
  # config names the id. The secret's bytes are not in it.
  entry_tar cm/one "$(tag_of apt)" "$TEST_TMP/e.tgz"
  tar -tzf "$TEST_TMP/e.tgz" | sort > "$TEST_TMP/list"
  grep -qx './' "$TEST_TMP/list"
  grep -qx 'hello' "$TEST_TMP/list"
  grep -qx 'd/f' "$TEST_TMP/list"
  ! zcat "$TEST_TMP/e.tgz" | grep -q s3cr3t-mount-value || false
  cfg=$(jq -r .config.digest <<< "$(manifest_of cm/one "$(tag_of apt)")")
  curl -sf "$REGISTRY_URL/v2/cm/one/blobs/$cfg" | jq -e '.config.Labels["dev.kiln.cache-mount.id"] == "apt"'

  # Another empty store sees the file, with its mode; and the step's change
  # is exported again.
  run kb "$TEST_TMP/s2" "$TEST_TMP/ctx" --cache-mounts-repo "$repo" --secret "id=tok,src=$TEST_TMP/secret" \
    --build-arg CMD='cat /var/cache/apt/hello; stat -c "mode=%a" /var/cache/apt/d/f; echo second > /var/cache/apt/hello'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"cache mount 'apt': imported $repo:"* ]]
  [[ $output == *" first"* ]]
  [[ $output == *"mode=640"* ]]
  [[ $output == *"cache mount 'apt': exported to $repo"* ]]

  # A third build that only reads: imported (another store), nothing exported.
  local puts
  puts=$(grep -c '"PUT /v2/cm/one/manifests/' "$REGISTRY_LOG" || true)
  [ "$puts" -ge 2 ] # the two exports above
  run kb "$TEST_TMP/s3" "$TEST_TMP/ctx" --cache-mounts-repo "$repo" --secret "id=tok,src=$TEST_TMP/secret" \
    --build-arg CMD='cat /var/cache/apt/hello'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *" second"* ]]
  [[ $output == *"cache mount 'apt': unchanged, not exported"* ]]
  [[ $output != *"exported to"* ]]
  [ "$(grep -c '"PUT /v2/cm/one/manifests/' "$REGISTRY_LOG" || true)" -eq "$puts" ]
  # The same store again: the entry is the one it has, nothing is downloaded.
  run kb "$TEST_TMP/s3" "$TEST_TMP/ctx" --cache-mounts-repo "$repo" --secret "id=tok,src=$TEST_TMP/secret" --no-cache \
    --build-arg CMD='cat /var/cache/apt/hello'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"cache mount 'apt': up to date with $repo"* ]]
  [[ $output != *"exported to"* ]]
  # A secret cannot be mounted inside a cache directory (so an export
  # cannot carry it): the sandbox refuses the nested target.
  mkdir -p "$TEST_TMP/ctx2"
  cat > "$TEST_TMP/ctx2/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE
RUN --mount=type=cache,id=apt,target=/var/cache/apt --mount=type=secret,id=tok,target=/var/cache/apt/tok cp /var/cache/apt/tok /var/cache/apt/copy
EOF
  run kb "$TEST_TMP/s3" "$TEST_TMP/ctx2" --cache-mounts-repo "$repo" --secret "id=tok,src=$TEST_TMP/secret"
  echo "$output"
  [ "$status" -ne 0 ]
  [[ $output == *"mount target '/var/cache/apt/tok'"* ]]
  entry_tar cm/one "$(tag_of apt)" "$TEST_TMP/e2.tgz"
  ! zcat "$TEST_TMP/e2.tgz" | grep -q s3cr3t-mount-value || false
}

@test "cache mounts: a step that is a cache hit neither imports nor exports" {
  cache_ctx "$TEST_TMP/ctx"
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --build-arg CMD='echo a > /var/cache/apt/a'
  [ "$status" -eq 0 ]
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --cache-mounts-repo "$REGISTRY/cm/lazy" --build-arg CMD='echo a > /var/cache/apt/a'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *CACHED* ]]
  [[ $output != *"cache mount 'apt'"* ]]
  run skopeo list-tags --tls-verify=false "docker://$REGISTRY/cm/lazy"
  [ "$status" -ne 0 ] || [ "$(echo "$output" | jq '.Tags | length')" -eq 0 ]
}

@test "cache mounts: two concurrent builds exporting one id both succeed and the entry is whole" {
  cache_ctx "$TEST_TMP/ctx"
  local repo="$REGISTRY/cm/race" i
  # Each build fills the cache with 8 MB of its own random data and its checksum.
  local fill='head -c 8000000 /dev/urandom > /var/cache/apt/data; sha256sum /var/cache/apt/data > /var/cache/apt/data.sum; echo $WHO > /var/cache/apt/who'
  for i in 1 2; do
    kb "$TEST_TMP/s$i" "$TEST_TMP/ctx" --cache-mounts-repo "$repo" --build-arg WHO=b$i \
      --build-arg CMD="WHO=b$i; $fill" > "$TEST_TMP/log$i" 2>&1 &
    eval "pid$i=\$!"
  done
  wait "$pid1" || { cat "$TEST_TMP/log1"; false; }
  wait "$pid2" || { cat "$TEST_TMP/log2"; false; }
  grep -q "cache mount 'apt': exported to $repo" "$TEST_TMP/log1"
  grep -q "cache mount 'apt': exported to $repo" "$TEST_TMP/log2"
  # The tag names one whole entry: its blob has the manifest's digest, and
  # its files are one build's.
  entry_tar cm/race "$(tag_of apt)" "$TEST_TMP/e.tgz"
  mkdir "$TEST_TMP/x"
  tar -xzf "$TEST_TMP/e.tgz" -C "$TEST_TMP/x"
  (cd "$TEST_TMP/x" && sed 's| /var/cache/apt/| |' data.sum | sha256sum -c)
  grep -Eqx 'b[12]' "$TEST_TMP/x/who"
  # And a third store imports it whole.
  run kb "$TEST_TMP/s3" "$TEST_TMP/ctx" --cache-mounts-repo "$repo" --build-arg CMD='sha256sum -c /var/cache/apt/data.sum && cat /var/cache/apt/who'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"data: OK"* ]]
}

# push_entry REPO TAG ID TARFILE: an entry made by hand (as a hostile
# registry user could), pushed with skopeo from an OCI layout.
push_entry() {
  local repo=$1 tag=$2 id=$3 tar=$4 lay="$TEST_TMP/layout-$RANDOM" ld cd diff
  mkdir -p "$lay/blobs/sha256"
  gzip -n -c "$tar" > "$lay/l.gz"
  ld=$(sha256sum "$lay/l.gz" | cut -d' ' -f1)
  diff=$(sha256sum "$tar" | cut -d' ' -f1)
  mv "$lay/l.gz" "$lay/blobs/sha256/$ld"
  jq -cn --arg id "$id" --arg diff "sha256:$diff" --argjson t "${CREATED:-$(date +%s)}" \
    '{architecture:"amd64",os:"linux",created:($t|todate),config:{Labels:{"dev.kiln.cache-mount.id":$id}},
      rootfs:{type:"layers",diff_ids:[$diff]},history:[{created_by:"test"}]}' > "$lay/c.json"
  cd=$(sha256sum "$lay/c.json" | cut -d' ' -f1)
  mv "$lay/c.json" "$lay/blobs/sha256/$cd"
  jq -cn --arg cd "sha256:$cd" --argjson cs "$(stat -c %s "$lay/blobs/sha256/$cd")" --arg ld "sha256:$ld" \
    --argjson ls "$(stat -c %s "$lay/blobs/sha256/$ld")" \
    '{schemaVersion:2,mediaType:"application/vnd.oci.image.manifest.v1+json",
      config:{mediaType:"application/vnd.oci.image.config.v1+json",digest:$cd,size:$cs},
      layers:[{mediaType:"application/vnd.oci.image.layer.v1.tar+gzip",digest:$ld,size:$ls}]}' > "$lay/m.json"
  local md ms
  md=$(sha256sum "$lay/m.json" | cut -d' ' -f1)
  ms=$(stat -c %s "$lay/m.json")
  mv "$lay/m.json" "$lay/blobs/sha256/$md"
  echo '{"imageLayoutVersion":"1.0.0"}' > "$lay/oci-layout"
  jq -cn --arg md "sha256:$md" --argjson ms "$ms" \
    '{schemaVersion:2,manifests:[{mediaType:"application/vnd.oci.image.manifest.v1+json",digest:$md,size:$ms,
      annotations:{"org.opencontainers.image.ref.name":"t"}}]}' > "$lay/index.json"
  skopeo copy -q --dest-tls-verify=false --preserve-digests "oci:$lay:t" "docker://$REGISTRY/$repo:$tag"
}

@test "cache mounts: a hostile entry (.. members, members through a symlink) writes nothing outside the cache" {
  cache_ctx "$TEST_TMP/ctx"
  local repo=cm/evil
  # ../ escapes
  python3 - "$TEST_TMP/dotdot.tar" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    for name in ["ok", "../../../../../../../../pwned-dotdot", "a/../../pwned-dotdot2"]:
        data = b"pwned\n"
        ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
EOF
  push_entry "$repo" "$(tag_of apt)" apt "$TEST_TMP/dotdot.tar"
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --cache-mounts-repo "$REGISTRY/$repo" --build-arg CMD='ls -A /var/cache/apt | wc -l'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"cache mount 'apt': importing $REGISTRY/$repo:$(tag_of apt) failed"* ]]
  [ -z "$(find "$TEST_TMP" /tmp -maxdepth 6 -name 'pwned-dotdot*' 2>/dev/null)" ]
  [ ! -e /pwned-dotdot ]
  [ ! -e /pwned-dotdot2 ]
  # An absolute symlink, then a member through it.
  mkdir -p "$TEST_TMP/victim"
  python3 - "$TEST_TMP/link.tar" "$TEST_TMP/victim" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    ti = tarfile.TarInfo("esc"); ti.type = tarfile.SYMTYPE; ti.linkname = sys.argv[2]; t.addfile(ti)
    data = b"pwned\n"
    ti = tarfile.TarInfo("esc/pwned-link"); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
EOF
  push_entry "$repo" "$(tag_of apt)" apt "$TEST_TMP/link.tar"
  run kb "$TEST_TMP/s2" "$TEST_TMP/ctx" --cache-mounts-repo "$REGISTRY/$repo" --build-arg CMD='ls -A /var/cache/apt | wc -l'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"importing $REGISTRY/$repo:$(tag_of apt) failed"* ]]
  [ -z "$(ls -A "$TEST_TMP/victim")" ]
  # The symlink alone is imported as a symlink (never followed by kiln): the
  # step sees it, the host directory it names stays empty, and the export
  # that follows packs the link, not its target.
  python3 - "$TEST_TMP/link2.tar" "$TEST_TMP/victim" <<'EOF'
import sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    ti = tarfile.TarInfo("esc"); ti.type = tarfile.SYMTYPE; ti.linkname = sys.argv[2]; t.addfile(ti)
EOF
  echo host-file > "$TEST_TMP/victim/keep"
  push_entry "$repo" "$(tag_of apt)" apt "$TEST_TMP/link2.tar"
  run kb "$TEST_TMP/s3" "$TEST_TMP/ctx" --cache-mounts-repo "$REGISTRY/$repo" \
    --build-arg CMD='readlink /var/cache/apt/esc; echo new > /var/cache/apt/other'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"imported $REGISTRY/$repo"* ]]
  [[ $output == *" $TEST_TMP/victim"* ]]
  [ "$(ls -A "$TEST_TMP/victim")" = keep ]
  entry_tar "$repo" "$(tag_of apt)" "$TEST_TMP/e.tgz"
  tar -tvzf "$TEST_TMP/e.tgz" | grep -q "esc -> $TEST_TMP/victim"
  ! tar -tzf "$TEST_TMP/e.tgz" | grep -q keep || false
}

@test "cache mounts: an entry older than --cache-ttl, of another id or too large is ignored" {
  cache_ctx "$TEST_TMP/ctx"
  local repo=cm/ttl
  python3 - "$TEST_TMP/e.tar" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    data = b"old\n"
    ti = tarfile.TarInfo("f"); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
EOF
  CREATED=$(( $(date +%s) - 7200 )) push_entry "$repo" "$(tag_of apt)" apt "$TEST_TMP/e.tar"
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --cache-mounts-repo "$REGISTRY/$repo" --cache-ttl 1h \
    --build-arg CMD='cat /var/cache/apt/f || echo absent'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"is older than --cache-ttl; ignored"* ]]
  [[ $output == *absent* ]]
  # Within the TTL it is used.
  run kb "$TEST_TMP/s2" "$TEST_TMP/ctx" --cache-mounts-repo "$REGISTRY/$repo" --cache-ttl 3h \
    --build-arg CMD='cat /var/cache/apt/f || echo absent'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *" old"* ]]
  # An entry whose config names another id is not used for this one.
  push_entry "$repo" "$(tag_of apt)" other "$TEST_TMP/e.tar"
  run kb "$TEST_TMP/s3" "$TEST_TMP/ctx" --cache-mounts-repo "$REGISTRY/$repo" --build-arg CMD='cat /var/cache/apt/f || echo absent'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"ignored: its config names another cache id"* ]]
  [[ $output == *absent* ]]
  # An entry whose small blob inflates past --cache-mounts-max-size is
  # refused by the member headers, before the data is written.
  head -c 10000000 /dev/zero > "$TEST_TMP/zeros"
  tar -cf "$TEST_TMP/zeros.tar" -C "$TEST_TMP" zeros
  push_entry "$repo" "$(tag_of apt)" apt "$TEST_TMP/zeros.tar"
  run kb "$TEST_TMP/s5" "$TEST_TMP/ctx" --cache-mounts-repo "$REGISTRY/$repo" --cache-mounts-max-size 1m \
    --build-arg CMD='ls /var/cache/apt | wc -l'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"importing $REGISTRY/$repo:$(tag_of apt) failed"*"more than 1048576 bytes of file data"* ]]
  [ -z "$(find "$TEST_TMP/s5" -name zeros)" ]
  # A cache larger than --cache-mounts-max-size is not exported.
  run kb "$TEST_TMP/s4" "$TEST_TMP/ctx" --cache-mounts-repo "$REGISTRY/cm/big" --cache-mounts-max-size 4k \
    --build-arg CMD='head -c 10000 /dev/zero > /var/cache/apt/big'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"more than --cache-mounts-max-size (4096); not exported"* ]]
  [[ $output != *"exported to"* ]]
}

@test "cache mounts: as plain users (subordinate ranges and single ID mode) an export is imported by the other" {
  plain_users kiln-cm
  mkdir -p "$SHARED/ctx"
  cache_ctx "$SHARED/ctx"
  chmod -R a+rX "$SHARED/ctx"
  local repo="$REGISTRY/cm/users" first=${PLAIN_USERS[0]} second=${PLAIN_USERS[1]}
  run run_as "$first" "$KILN" build --root "$SHARED/store-$first" --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --no-push --cache-mounts-repo "$repo" \
    --build-arg CMD='echo from-first > /var/cache/apt/f; mkdir /var/cache/apt/d; chmod 700 /var/cache/apt/d' "$SHARED/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"cache mount 'apt': exported to $repo"* ]]
  run run_as "$second" "$KILN" build --root "$SHARED/store-$second" --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --no-push --cache-mounts-repo "$repo" \
    --build-arg CMD='cat /var/cache/apt/f; stat -c "d=%a %u" /var/cache/apt/d; echo from-second >> /var/cache/apt/f' "$SHARED/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"imported $repo"* ]]
  [[ $output == *" from-first"* ]]
  [[ $output == *"d=700 0"* ]]
  [[ $output == *"cache mount 'apt': exported to $repo"* ]]
}
