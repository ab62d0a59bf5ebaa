#!/usr/bin/env bats
# kiln build end to end: real registry, real base image (Debian's
# busybox-static), results checked with skopeo, umoci and tar, as root and
# as plain users with and without /etc/subuid ranges.

load helpers

setup_file() {
  kiln_setup
  registry_start
  fixtures_push busybox
  export REGISTRY BUSYBOX_IMAGE
}
teardown_file() { registry_stop_all; }
setup() { kiln_setup; SHARED=""; }
teardown() {
  shared_dir_cleanup
  kiln_teardown
}

# kbuild CONTEXT [FLAGS...]: build CONTEXT with a private store.
kbuild() {
  local ctx=$1
  shift
  "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" "$@" "$ctx"
}

# unpack LAYOUT:TAG DIR: unpack with umoci (independent of kiln).
unpack() {
  umoci unpack --image "$1" "$2" >/dev/null
}

@test "build: examples/hello is pushed, reads back with skopeo and its CMD runs" {
  run "$KILN" build --root "$TEST_TMP/store" --build-arg "REGISTRY=$REGISTRY" --insecure-registry "$REGISTRY" \
    -t "$REGISTRY/test/hello:v1" --digest-file "$TEST_TMP/digest" \
    --image-name-with-digest-file "$TEST_TMP/names" "$KILN_SRC/examples/hello"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"[stage-0 3/8] RUN echo"* ]]
  [[ $output == *"#"*" built sha256:"* ]]
  local digest
  digest=$(cat "$TEST_TMP/digest")
  [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]]
  [ "$(cat "$TEST_TMP/names")" = "$REGISTRY/test/hello@$digest" ]
  run skopeo inspect --tls-verify=false "docker://$REGISTRY/test/hello:v1"
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq -r .Digest)" = "$digest" ]
  skopeo inspect --tls-verify=false --config "docker://$REGISTRY/test/hello:v1" > "$TEST_TMP/config.json"
  [ "$(jq -r .config.User "$TEST_TMP/config.json")" = app ]
  [ "$(jq -r .config.WorkingDir "$TEST_TMP/config.json")" = /home/app ]
  [ "$(jq -c .config.Cmd "$TEST_TMP/config.json")" = '["/usr/local/bin/greeting"]' ]
  [ "$(jq -r '.config.Labels["org.opencontainers.image.title"]' "$TEST_TMP/config.json")" = "kiln hello example" ]
  # 1 base layer + RUN + COPY + RUN; metadata steps are empty_layer history.
  [ "$(jq '.rootfs.diff_ids | length' "$TEST_TMP/config.json")" -eq 4 ]
  [ "$(jq '[.history[] | select(.empty_layer != true)] | length' "$TEST_TMP/config.json")" -eq 4 ]
  skopeo copy --quiet --src-tls-verify=false "docker://$REGISTRY/test/hello@$digest" "oci:$TEST_TMP/oci:hello"
  unpack "$TEST_TMP/oci:hello" "$TEST_TMP/b"
  [ "$(stat -c %u:%g "$TEST_TMP/b/rootfs/home/app")" = 1000:1000 ]
  [ "$(stat -c %a "$TEST_TMP/b/rootfs/usr/local/bin/greeting")" = 755 ]
  run "$KILN" run --verbosity warn --rootfs "$TEST_TMP/b/rootfs" --user 1000:1000 --workdir /home/app /usr/local/bin/greeting
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = "hello from kiln" ]
  [ "${lines[1]}" = "running as app in /home/app" ]
}

# The same Dockerfile as root, as a plain user with subuid ranges (full
# mapping through newuidmap) and without (single mode: chown recorded by the
# seccomp supervisor into the overlay's metadata): identical file trees.
owners_dockerfile() {
  mkdir -p "$1"
  cat > "$1/Dockerfile" <<'DF'
ARG BASE
FROM $BASE
RUN mkdir -p /data/a /data/b && echo one > /data/a/f && echo two > /data/b/g \
 && chown -R 1234:5678 /data/a && chown 42 /data/b/g && chmod 4755 /data/a/f \
 && ln -s a/f /data/link && ln /data/b/g /data/hard && rm /bin/dmesg && id -u > /data/uid
USER 1234:5678
RUN touch /tmp/by-user && id > /tmp/id.txt
DF
}

build_as() { # USER CTX OUT
  local user=$1 ctx=$2 out=$3
  local store="$SHARED/store-$user"
  mkdir -p "$store" "$(dirname "$out")"
  chown "$user" "$store" "$(dirname "$out")"
  chmod 0755 "$(dirname "$out")"
  run_as "$user" "$KILN" build --root "$store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
    --no-push --oci-layout "$out:t" "$ctx"
}

tree_listing() { # ROOTFS: type mode owner size path (+ link target), sorted
  (cd "$1" && find . -path ./proc -prune -o -printf '%y %m %U:%G %s %p %l\n' | grep -v ' \./dev\| \./sys' | sort)
}

@test "build: RUN ownership and modes are identical as root, with subuid ranges and without" {
  fuse_dev_open_for_all
  test_user_create kiln-bsub --subuid
  test_user_create kiln-bsingle
  shared_dir
  owners_dockerfile "$SHARED/ctx"
  chmod -R a+rX "$SHARED/ctx"
  run kbuild "$SHARED/ctx" --no-push --oci-layout "$TEST_TMP/root/out:t"
  echo "$output"
  [ "$status" -eq 0 ]
  run build_as kiln-bsub "$SHARED/ctx" "$SHARED/sub/out"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"user namespace: full ("*"subuid"*"newuidmap"* ]]
  run build_as kiln-bsingle "$SHARED/ctx" "$SHARED/single/out"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"user namespace: single"* ]]
  mv "$SHARED/sub" "$SHARED/single" "$TEST_TMP/"
  for m in root sub single; do
    unpack "$TEST_TMP/$m/out:t" "$TEST_TMP/$m/b"
    tree_listing "$TEST_TMP/$m/b/rootfs" > "$TEST_TMP/$m.list"
  done
  diff "$TEST_TMP/root.list" "$TEST_TMP/sub.list"
  # Single mode runs a non-root USER as uid 0 (only one id is mapped); the
  # files it creates are still recorded as that user's, but what the step
  # itself prints with `id` differs (documented in docs/compatibility.md).
  diff <(grep -v id.txt "$TEST_TMP/root.list") <(grep -v id.txt "$TEST_TMP/single.list")
  local r="$TEST_TMP/single/b/rootfs"
  [ "$(stat -c '%u:%g %a' "$r/data/a")" = "1234:5678 755" ]
  # chown clears setuid; the chmod after it sets it again.
  [ "$(stat -c '%u:%g %a' "$r/data/a/f")" = "1234:5678 4755" ]
  [ "$(stat -c '%u:%g' "$r/data/b/g")" = "42:0" ]
  [ "$(stat -c %i "$r/data/b/g")" = "$(stat -c %i "$r/data/hard")" ]
  [ "$(readlink "$r/data/link")" = a/f ]
  [ ! -e "$r/bin/dmesg" ]
  [ "$(cat "$r/data/uid")" = 0 ]
  [ "$(stat -c '%u:%g' "$r/tmp/by-user")" = "1234:5678" ]
  grep -q 'uid=1234 gid=5678' "$TEST_TMP/sub/b/rootfs/tmp/id.txt"
  grep -q 'uid=1234 gid=5678' "$TEST_TMP/root/b/rootfs/tmp/id.txt"
}

@test "build: a failing RUN names the Dockerfile line, the step, the exit status and the last output" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'ARG BASE\nFROM $BASE\nRUN echo first\nRUN echo about to fail; echo oops >&2; exit 3\nRUN echo never\n' \
    > "$TEST_TMP/ctx/Dockerfile"
  run kbuild "$TEST_TMP/ctx" --no-push
  echo "$output"
  # kiln exits with the step's status, as kaniko does
  [ "$status" -eq 3 ]
  [[ $output == *"Dockerfile:4"* ]]
  [[ $output == *"[stage-0 3/4] RUN echo about to fail"* ]]
  [[ $output == *"exited with status 3"* ]]
  [[ $output == *"> oops"* ]]
  [[ $output != *"echo never"*"DONE"* ]]
  # Nothing half-made is left in the store.
  [ -z "$(ls -A "$TEST_TMP/store/tmp")" ]
}

@test "build: features kiln does not implement are clear errors, never silently dropped" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'x' > "$TEST_TMP/ctx/f"
  local df
  for df in 'RUN --mount=type=ssh true' 'RUN --mount=type=cache,target=/c,from=x true' 'ADD https://example.com/x.git /src' 'ADD git@example.com:x/y.git /src'; do
    printf 'ARG BASE\nFROM $BASE\n%s\n' "$df" > "$TEST_TMP/ctx/Dockerfile"
    run kbuild "$TEST_TMP/ctx" --no-push
    echo "$output"
    [ "$status" -eq 1 ]
    [[ $output == *"Dockerfile:3"* ]]
    [[ $output == *"not supported"* ]]
  done
  # kaniko's --bucket (a context kiln cannot fetch) is an error naming what to do instead
  run kbuild "$TEST_TMP/ctx" --no-push --bucket b
  [ "$status" -eq 2 ]
  [[ $output == *"--bucket 'b'"*"--context tar://FILE"* ]]
  run kbuild "$TEST_TMP/ctx" --no-push --no-such-flag
  [ "$status" -eq 2 ]
  [[ $output == *"no-such-flag"* ]]
}

@test "build: multi-stage COPY --from, --chown/--chmod, .dockerignore, directory and glob semantics" {
  mkdir -p "$TEST_TMP/ctx/src/sub" "$TEST_TMP/ctx/secret"
  echo a > "$TEST_TMP/ctx/src/a.txt"
  echo b > "$TEST_TMP/ctx/src/sub/b.txt"
  echo c > "$TEST_TMP/ctx/src/c.log"
  echo s > "$TEST_TMP/ctx/secret/key"
  ln "$TEST_TMP/ctx/src/a.txt" "$TEST_TMP/ctx/src/a-hard.txt"
  printf 'secret\n*.tmp\n' > "$TEST_TMP/ctx/.dockerignore"
  cat > "$TEST_TMP/ctx/Dockerfile" <<'DF'
ARG BASE
FROM $BASE AS build
RUN mkdir -p /out && echo built > /out/result && chmod 600 /out/result
FROM $BASE
COPY --from=build /out/result /app/
COPY --chown=7:8 --chmod=640 src/ /app/src/
COPY src/*.txt /globbed/
COPY secret* /maybe/
DF
  # secret/ is excluded by .dockerignore: the only match of secret* is
  # gone, and a wildcard that matches nothing copies nothing (BuildKit).
  run kbuild "$TEST_TMP/ctx" --no-push --oci-layout "$TEST_TMP/out:t"
  echo "$output"
  [ "$status" -eq 0 ]
  unpack "$TEST_TMP/out:t" "$TEST_TMP/b"
  local r="$TEST_TMP/b/rootfs"
  [ ! -e "$r/maybe/key" ]
  [ ! -e "$r/maybe/secret" ]
  ! grep -rqx s "$r/maybe" 2>/dev/null || false
  [ "$(cat "$r/app/result")" = built ]
  [ "$(stat -c '%u:%g %a' "$r/app/result")" = "0:0 600" ]
  [ "$(stat -c '%u:%g %a' "$r/app/src/sub/b.txt")" = "7:8 640" ]
  [ "$(stat -c '%u:%g' "$r/app/src")" = "7:8" ]
  [ "$(stat -c %i "$r/app/src/a.txt")" = "$(stat -c %i "$r/app/src/a-hard.txt")" ]
  [ -f "$r/globbed/a.txt" ]
  [ -f "$r/globbed/a-hard.txt" ]
  [ ! -e "$r/globbed/c.log" ]
  [ ! -e "$r/globbed/sub" ]
}

@test "build: --reproducible gives the same digest from two stores; --tar-path loads with skopeo" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'ARG BASE\nFROM $BASE\nRUN echo x > /x && mkdir /d && touch /d/now\nCOPY Dockerfile /\n' \
    > "$TEST_TMP/ctx/Dockerfile"
  run kbuild "$TEST_TMP/ctx" --no-push --reproducible -q
  [ "$status" -eq 0 ]
  local d1=${lines[-1]}
  sleep 1.1
  run "$KILN" build --root "$TEST_TMP/store2" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
    --no-push --reproducible -q --tar-path "$TEST_TMP/img.tar" "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  local d2=${lines[-1]}
  [[ $d1 =~ ^sha256: ]]
  # Another store, another second: file mtimes and created times are
  # clamped to SOURCE_DATE_EPOCH (0), so the digest is the same.
  [ "$d1" = "$d2" ]
  [ -s "$TEST_TMP/img.tar" ]
  run skopeo inspect "docker-archive:$TEST_TMP/img.tar"
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq '.Layers | length')" -eq 3 ]
  [ "$(echo "$output" | jq -r .Created)" = "1970-01-01T00:00:00Z" ]
}

@test "build: a warm rebuild downloads nothing and is byte-identical with --reproducible" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'ARG BASE\nFROM $BASE\nRUN echo same > /same\n' > "$TEST_TMP/ctx/Dockerfile"
  run kbuild "$TEST_TMP/ctx" --no-push --reproducible -q
  [ "$status" -eq 0 ]
  local d1=${lines[-1]}
  run kbuild "$TEST_TMP/ctx" --no-push --reproducible
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *cached* ]]
  [[ $output != *downloaded* ]]
  [[ $output == *"built $d1"* ]]
}

@test "build: SIGTERM and SIGINT mid-RUN exit 143/130 and leave no process, mount or temp dir" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'ARG BASE\nFROM $BASE\nRUN echo started; sleep 60 & sleep 61\nRUN echo never\n' > "$TEST_TMP/ctx/Dockerfile"
  local sig want
  for sig in TERM INT; do
    [ $sig = TERM ] && want=143 || want=130
    "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
      --no-push "$TEST_TMP/ctx" > "$TEST_TMP/out" 2>&1 &
    local pid=$!
    # the step's own output line ("#2 0.051 started"), not its title
    for _ in $(seq 1 100); do grep -qE '^#[0-9]+ [0-9.]+ started$' "$TEST_TMP/out" && break; sleep 0.1; done
    grep -qE '^#[0-9]+ [0-9.]+ started$' "$TEST_TMP/out"
    kill -$sig $pid
    local rc=0
    wait $pid || rc=$?
    cat "$TEST_TMP/out"
    [ "$rc" -eq "$want" ]
    grep -q "interrupted by signal" "$TEST_TMP/out"
    ! grep -q "echo never" "$TEST_TMP/out" || false
    processes_gone -fx "sleep 6[01]"
    ! grep -q "$TEST_TMP" /proc/self/mountinfo || false
    [ -z "$(ls -A "$TEST_TMP/store/tmp")" ]
  done
}

@test "build: ADD extracts local tar, gzip and xz archives with their owners; other files are copied" {
  mkdir -p "$TEST_TMP/src/d" "$TEST_TMP/ctx"
  echo data > "$TEST_TMP/src/d/f"
  ln -s f "$TEST_TMP/src/d/l"
  tar -C "$TEST_TMP/src" --owner=7 --group=9 -cf "$TEST_TMP/ctx/a.tar" d
  gzip -c "$TEST_TMP/ctx/a.tar" > "$TEST_TMP/ctx/a.tgz"
  xz -c "$TEST_TMP/ctx/a.tar" > "$TEST_TMP/ctx/a.txz"
  echo "not a tar" | gzip -c > "$TEST_TMP/ctx/plain.gz"
  printf 'ARG BASE\nFROM $BASE\nADD a.tar /t/\nADD a.tgz /g\nADD a.txz /x/\nADD plain.gz /p/\nADD --chown=1:2 a.tgz /c/\n' \
    > "$TEST_TMP/ctx/Dockerfile"
  run kbuild "$TEST_TMP/ctx" --no-push --oci-layout "$TEST_TMP/out:t"
  echo "$output"
  [ "$status" -eq 0 ]
  unpack "$TEST_TMP/out:t" "$TEST_TMP/b"
  local r="$TEST_TMP/b/rootfs" p
  for p in t g x; do
    [ "$(cat "$r/$p/d/f")" = data ]
    [ "$(stat -c %u:%g "$r/$p/d/f")" = 7:9 ]
    [ "$(readlink "$r/$p/d/l")" = f ]
  done
  [ "$(stat -c %u:%g "$r/c/d/f")" = 1:2 ]
  # A compressed file that holds no tar is copied as it is, as Docker does.
  [ "$(gzip -dc "$r/p/plain.gz")" = "not a tar" ]
  # An archive matched by a wildcard is extracted too (Docker); one inside
  # a copied directory is copied as it is; --chmod leaves the archive's modes.
  mkdir "$TEST_TMP/ctx/sub"
  cp "$TEST_TMP/ctx/a.tgz" "$TEST_TMP/ctx/sub/"
  printf 'ARG BASE\nFROM $BASE\nADD --chmod=700 *.tgz /w/\nADD sub /s/\n' > "$TEST_TMP/ctx/Dockerfile"
  run kbuild "$TEST_TMP/ctx" --no-push --oci-layout "$TEST_TMP/out2:t"
  echo "$output"
  [ "$status" -eq 0 ]
  unpack "$TEST_TMP/out2:t" "$TEST_TMP/b2"
  [ "$(cat "$TEST_TMP/b2/rootfs/w/d/f")" = data ]
  [ "$(stat -c %a "$TEST_TMP/b2/rootfs/w/d/f")" = "$(stat -c %a "$TEST_TMP/src/d/f")" ]
  cmp "$TEST_TMP/b2/rootfs/s/a.tgz" "$TEST_TMP/ctx/a.tgz"
}

@test "build: COPY wildcards: one match makes a file, an empty wildcard copies nothing unless its directory is missing" {
  mkdir -p "$TEST_TMP/ctx/sel" "$TEST_TMP/ctx/empty"
  echo s1 > "$TEST_TMP/ctx/sel/s1.txt"
  echo s2 > "$TEST_TMP/ctx/sel/s2.txt"
  echo x > "$TEST_TMP/ctx/x"
  # <Dockerfile>.dockerignore is read instead of .dockerignore: one file left.
  printf 'sel/s1.txt\n' > "$TEST_TMP/ctx/.dockerignore"
  printf 'sel/s2.txt\n' > "$TEST_TMP/ctx/Dockerfile.dockerignore"
  printf 'ARG BASE\nFROM $BASE\nCOPY sel/*.txt /sel.txt\nCOPY x none-* empty/* /multi/\n' > "$TEST_TMP/ctx/Dockerfile"
  run kbuild "$TEST_TMP/ctx" --no-push --oci-layout "$TEST_TMP/out:t"
  echo "$output"
  [ "$status" -eq 0 ]
  unpack "$TEST_TMP/out:t" "$TEST_TMP/b"
  [ -f "$TEST_TMP/b/rootfs/sel.txt" ]
  [ "$(cat "$TEST_TMP/b/rootfs/sel.txt")" = s1 ]
  [ "$(ls "$TEST_TMP/b/rootfs/multi")" = x ]
  # BuildKit fails when the directory a wildcard lists is not there.
  printf 'ARG BASE\nFROM $BASE\nCOPY x nodir/* /multi/\n' > "$TEST_TMP/ctx/Dockerfile"
  run kbuild "$TEST_TMP/ctx" --no-push
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"source 'nodir/*': its directory is not in the build context"* ]]
}

@test "build: USER root names uid 0 in a stage without /etc/passwd; other names stay an error" {
  mkdir -p "$TEST_TMP/ctx"
  echo f > "$TEST_TMP/ctx/f"
  printf 'FROM scratch\nUSER root:root\nWORKDIR /w\nCOPY f .\n' > "$TEST_TMP/ctx/Dockerfile"
  run kbuild "$TEST_TMP/ctx" --no-push --oci-layout "$TEST_TMP/out:t"
  echo "$output"
  [ "$status" -eq 0 ]
  printf 'FROM scratch\nUSER app\nWORKDIR /w\n' > "$TEST_TMP/ctx/Dockerfile"
  run kbuild "$TEST_TMP/ctx" --no-push
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"user 'app': the image has no /etc/passwd"* ]]
}

@test "build: VOLUME and WORKDIR make their directories through symlinks in the image; VOLUME leaves a file alone" {
  mkdir -p "$TEST_TMP/ctx/top"
  ln -s /tmp "$TEST_TMP/ctx/top/lnk"
  printf 'ARG BASE\nFROM $BASE\nCOPY top/ /\nWORKDIR /lnk/wd\nVOLUME /lnk/vol /etc/passwd\n' > "$TEST_TMP/ctx/Dockerfile"
  run kbuild "$TEST_TMP/ctx" --no-push --oci-layout "$TEST_TMP/out:t"
  echo "$output"
  [ "$status" -eq 0 ]
  unpack "$TEST_TMP/out:t" "$TEST_TMP/b"
  local r="$TEST_TMP/b/rootfs"
  [ "$(readlink "$r/lnk")" = /tmp ]
  [ -d "$r/tmp/wd" ]
  [ ! -L "$r/tmp/wd" ]
  [ -d "$r/tmp/vol" ]
  [ -f "$r/etc/passwd" ]
  skopeo inspect --config "oci:$TEST_TMP/out:t" > "$TEST_TMP/config.json"
  [ "$(jq -r '.config.Volumes | keys | join(",")' "$TEST_TMP/config.json")" = "/etc/passwd,/lnk/vol" ]
  [ "$(jq -r .config.WorkingDir "$TEST_TMP/config.json")" = /lnk/wd ]
}

mounts_case() { # DIR
  mkdir -p "$1"
  echo "s3cr3t-value" > "$1/secret.txt"
  echo "ctx-file" > "$1/in.txt"
  cat > "$1/Dockerfile" <<'DF'
ARG BASE
FROM $BASE
RUN --mount=type=cache,target=/cache echo one >> /cache/log && wc -l < /cache/log > /cache-count
RUN --mount=type=cache,target=/cache,sharing=locked echo two >> /cache/log && wc -l < /cache/log > /cache-count2
RUN --mount=type=tmpfs,target=/scratch,size=1m echo t > /scratch/t && cat /scratch/t > /from-tmpfs && df /scratch | tail -1 > /tmpfs-df
RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /secret-len && ! touch /run/secrets/tok 2>/dev/null
RUN --mount=type=bind,source=in.txt,target=/mnt/in cat /mnt/in > /from-bind
DF
}

check_mounts_image() { # ROOTFS
  local r=$1
  [ "$(cat "$r/cache-count")" -ge 1 ]
  [ "$(cat "$r/cache-count2")" -eq $(( $(cat "$r/cache-count") + 1 )) ]
  [ "$(cat "$r/from-tmpfs")" = t ]
  grep -q tmpfs "$r/tmpfs-df" || grep -q 1024 "$r/tmpfs-df"
  [ "$(cat "$r/secret-len")" -eq 13 ]
  [ "$(cat "$r/from-bind")" = ctx-file ]
  # Mount targets and secrets never reach a layer.
  [ ! -e "$r/cache" ]
  [ ! -e "$r/scratch" ]
  [ ! -e "$r/run/secrets" ]
  [ ! -e "$r/mnt/in" ]
}

@test "build: RUN --mount cache, tmpfs, secret and context bind, as root and as a plain user" {
  fuse_dev_open_for_all
  shared_dir
  mounts_case "$SHARED/ctx"
  chmod -R a+rX "$SHARED/ctx"
  run kbuild "$SHARED/ctx" --no-push --secret "id=tok,src=$SHARED/ctx/secret.txt" --oci-layout "$TEST_TMP/out:t"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output != *s3cr3t-value* ]]
  unpack "$TEST_TMP/out:t" "$TEST_TMP/b"
  check_mounts_image "$TEST_TMP/b/rootfs"
  ! grep -rq s3cr3t-value "$TEST_TMP/out/blobs" "$TEST_TMP/store/layers" || false
  # The cache mount persists across builds (--no-cache: the step must run again).
  run kbuild "$SHARED/ctx" --no-push --no-cache --secret "id=tok,src=$SHARED/ctx/secret.txt" \
    --oci-layout "$TEST_TMP/out2:t"
  [ "$status" -eq 0 ]
  unpack "$TEST_TMP/out2:t" "$TEST_TMP/b2"
  [ "$(cat "$TEST_TMP/b2/rootfs/cache-count")" -eq 3 ]
  # A required secret that is missing is an error naming it.
  sed -i 's/id=tok /id=tok,required=true /' "$SHARED/ctx/Dockerfile"
  run kbuild "$SHARED/ctx" --no-push
  [ "$status" -eq 1 ]
  [[ $output == *"secret 'tok' is required"* ]]
  sed -i 's/id=tok,required=true /id=tok /' "$SHARED/ctx/Dockerfile"
  for u in kiln-bsub kiln-bsingle; do
    if [ $u = kiln-bsub ]; then test_user_create $u --subuid; else test_user_create $u; fi
    mkdir -p "$SHARED/$u"
    chown $u "$SHARED/$u"
    run run_as $u "$KILN" build --root "$SHARED/$u/store" --insecure-registry "$REGISTRY" \
      --build-arg "BASE=$BUSYBOX_IMAGE" --secret "id=tok,src=$SHARED/ctx/secret.txt" --no-push \
      --oci-layout "$SHARED/$u/out:t" "$SHARED/ctx"
    echo "$output"
    [ "$status" -eq 0 ]
    unpack "$SHARED/$u/out:t" "$TEST_TMP/b-$u"
    check_mounts_image "$TEST_TMP/b-$u/rootfs"
  done
}

@test "build: one cache id mounted twice in one RUN (sharing=locked) is one directory, without waiting on its own lock" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM %s\nRUN --mount=type=cache,id=c,target=/c1,sharing=locked --mount=type=cache,id=c,target=/c2,sharing=locked echo both > /c1/f && cat /c2/f\n' \
    "$BUSYBOX_IMAGE" > "$TEST_TMP/ctx/Dockerfile"
  run timeout 60 "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" --no-push --progress plain \
    "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  grep -q '^#2 [0-9.]* both$' <<< "$output"
}

@test "build: a build waiting for a cache mount another build holds (sharing=locked) says so and stops on SIGTERM" {
  mkdir -p "$TEST_TMP/ctx1" "$TEST_TMP/ctx2"
  printf 'ARG BASE\nFROM $BASE\nRUN --mount=type=cache,id=held,target=/c,sharing=locked echo holding; sleep 30\n' \
    > "$TEST_TMP/ctx1/Dockerfile"
  printf 'ARG BASE\nFROM $BASE\nRUN --mount=type=cache,id=held,target=/c,sharing=locked echo got-it\n' \
    > "$TEST_TMP/ctx2/Dockerfile"
  # kiln itself in the background ($! of a shell function would be a subshell)
  "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
    --no-push --progress plain "$TEST_TMP/ctx1" > "$TEST_TMP/out1" 2>&1 &
  local holder=$!
  for _ in $(seq 1 100); do grep -qE '^#[0-9]+ [0-9.]+ holding$' "$TEST_TMP/out1" && break; sleep 0.1; done
  grep -qE '^#[0-9]+ [0-9.]+ holding$' "$TEST_TMP/out1"
  "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
    --no-push --progress plain "$TEST_TMP/ctx2" > "$TEST_TMP/out2" 2>&1 &
  local waiter=$!
  for _ in $(seq 1 100); do grep -q "cache mount 'held' is locked" "$TEST_TMP/out2" && break; sleep 0.1; done
  local t0=$SECONDS rc=0
  kill -TERM $waiter
  wait $waiter || rc=$?
  cat "$TEST_TMP/out2"
  grep -q "cache mount 'held' is locked by another step or build: waiting" "$TEST_TMP/out2"
  [ "$rc" -eq 143 ]
  [ $((SECONDS - t0)) -lt 10 ]
  ! grep -qE '^#[0-9]+ [0-9.]+ got-it$' "$TEST_TMP/out2" || false
  kill -TERM $holder
  wait $holder || true
  processes_gone -fx "sleep 30"
  processes_gone -f "$TEST_TMP/ctx"
}

@test "build: symlinks a step replaces read back new at once and in the next step (the kernel caches targets: CACHE_SYMLINKS)" {
  mkdir -p "$TEST_TMP/ctx"
  cat > "$TEST_TMP/ctx/Dockerfile" <<'DF'
ARG BASE
FROM $BASE
RUN ln -s a /l && readlink /l && rm /l && ln -s b /l && readlink /l && ln -sfn c /l && readlink /l \
 && mv /l /m && readlink /m && ln -s d /l && readlink /l && cat /l 2>&1 | head -c0
RUN echo "next: $(readlink /l) $(readlink /m)" && ln -sfn e /l && readlink /l && rm /m && ln -s /l /m && readlink /m
DF
  run kbuild "$TEST_TMP/ctx" --no-push --progress plain
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(grep -oE '^#2 [0-9.]+ .*' <<< "$output" | cut -d' ' -f3- | tr '\n' ' ')" = "a b c c d " ]
  [ "$(grep -oE '^#3 [0-9.]+ .*' <<< "$output" | cut -d' ' -f3- | tr '\n' ' ')" = "next: d c e /l " ]
}

@test "build: --registry-mirror serves docker.io bases (kaniko flag); a dead mirror falls through with a warning" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM busybox\nRUN echo via-mirror > /m\n' > "$TEST_TMP/ctx/Dockerfile"
  run "$KILN" build --root "$TEST_TMP/store" --registry-mirror "127.0.0.1:9" --registry-mirror "http://$REGISTRY" \
    --retries 0 --no-push --oci-layout "$TEST_TMP/out:t" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"mirror 127.0.0.1:9 failed"* ]]
  unpack "$TEST_TMP/out:t" "$TEST_TMP/b"
  [ "$(cat "$TEST_TMP/b/rootfs/m")" = via-mirror ]
}

@test "build: ADD of an http URL (mode 0600, --checksum verified); HTTP errors name the URL and status" {
  mkdir -p "$TEST_TMP/ctx"
  local sum
  sum=$(curl -s "http://$REGISTRY/v2/" | sha256sum | cut -d' ' -f1)
  printf 'ARG BASE\nFROM $BASE\nADD --checksum=sha256:%s http://%s/v2/ /dl/v2.json\nADD http://%s/v2/ /dir/\n' \
    "$sum" "$REGISTRY" "$REGISTRY" > "$TEST_TMP/ctx/Dockerfile"
  run kbuild "$TEST_TMP/ctx" --no-push --oci-layout "$TEST_TMP/out:t"
  echo "$output"
  [ "$status" -eq 0 ]
  unpack "$TEST_TMP/out:t" "$TEST_TMP/b"
  [ "$(stat -c %a "$TEST_TMP/b/rootfs/dl/v2.json")" = 600 ]
  [ "$(curl -s "http://$REGISTRY/v2/")" = "$(cat "$TEST_TMP/b/rootfs/dl/v2.json")" ]
  [ -f "$TEST_TMP/b/rootfs/dir/v2" ]
  printf 'ARG BASE\nFROM $BASE\nADD --checksum=sha256:%064d http://%s/v2/ /x\n' 0 "$REGISTRY" > "$TEST_TMP/ctx/Dockerfile"
  run kbuild "$TEST_TMP/ctx" --no-push
  [ "$status" -eq 1 ]
  [[ $output == *"checksum mismatch"* ]]
  printf 'ARG BASE\nFROM $BASE\nADD http://%s/no/such/thing /x\n' "$REGISTRY" > "$TEST_TMP/ctx/Dockerfile"
  run kbuild "$TEST_TMP/ctx" --no-push
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"http://$REGISTRY/no/such/thing"*"HTTP 404"* ]]
  [ -z "$(ls -A "$TEST_TMP/store/tmp")" ]
}

@test "build: Debian fixture as a plain user without subuid: useradd/chown/setuid owned as as root; apt-get works" {
  fuse_dev_open_for_all
  test_user_create kiln-bsingle
  fixtures_push debian
  shared_dir
  mkdir -p "$SHARED/ctx"
  printf 'FROM %s\nRUN useradd -m app && chown -R app:app /home/app && mkdir -p /usr/local/bin && cp /bin/true /usr/local/bin/x && chmod 4755 /usr/local/bin/x\n' \
    "$DEBIAN_IMAGE" > "$SHARED/ctx/Dockerfile"
  chmod -R a+rX "$SHARED/ctx"
  run kbuild "$SHARED/ctx" --no-push --oci-layout "$TEST_TMP/root/out:t"
  [ "$status" -eq 0 ]
  run build_as kiln-bsingle "$SHARED/ctx" "$SHARED/single/out"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"user namespace: single"* ]]
  mv "$SHARED/single" "$TEST_TMP/"
  # The step's own layer, read with tar (independent of kiln): same entries.
  local m
  for m in root single; do
    local layer
    layer=$(jq -r '.layers[-1].digest' "$TEST_TMP/$m/out/blobs/sha256/$(jq -r '.manifests[0].digest' "$TEST_TMP/$m/out/index.json" | cut -d: -f2)" | cut -d: -f2)
    tar -tvzf "$TEST_TMP/$m/out/blobs/sha256/$layer" | awk '{print $1, $2, $6}' | grep -v '^d.* var/\|/log/\|cache\|shadow-$\|passwd-$\|group-$\|gshadow-$' | sort > "$TEST_TMP/$m.tar.txt"
  done
  cat "$TEST_TMP/single.tar.txt"
  # useradd copies /etc/shadow's owner from stat() when it rewrites it: in
  # single mode the supervisor shows the recorded root:shadow (build_owners.bats).
  diff "$TEST_TMP/root.tar.txt" "$TEST_TMP/single.tar.txt"
  grep -q '^-rw-r----- 0/42 etc/shadow$' "$TEST_TMP/root.tar.txt"
  grep -q '^drwxr-xr-x app/app home/app/$' "$TEST_TMP/single.tar.txt" || grep -q '^drwxr-xr-x 1000/1000 home/app/$' "$TEST_TMP/single.tar.txt"
  grep -q '^-rwsr-xr-x 0/0 usr/local/bin/x$' "$TEST_TMP/single.tar.txt" || grep -q '^-rwsr-xr-x root/root usr/local/bin/x$' "$TEST_TMP/single.tar.txt"
  # apt drops privileges to _apt: in single mode the supervisor keeps the
  # ids it switches to (sandbox_creds.c), no apt configuration is needed.
  if ! curl -s -o /dev/null --max-time 5 http://deb.debian.org/debian/dists/bookworm/Release; then
    skip "no network to deb.debian.org for the apt-get part"
  fi
  printf 'FROM %s\nRUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*\nRUN curl --version > /v && env > /env\n' \
    "$DEBIAN_IMAGE" > "$SHARED/ctx/Dockerfile"
  run build_as kiln-bsingle "$SHARED/ctx" "$SHARED/apt/out"
  echo "$output" | tail -5
  [ "$status" -eq 0 ]
  unpack "$SHARED/apt/out:t" "$TEST_TMP/apt"
  grep -q '^curl ' "$TEST_TMP/apt/rootfs/v"
  ! grep -q APT_CONFIG "$TEST_TMP/apt/rootfs/env"
  [ ! -e "$TEST_TMP/apt/rootfs/dev/.kiln" ]
}

@test "build: ONBUILD triggers of a pulled base run after FROM, with the child's context, and are consumed" {
  mkdir -p "$TEST_TMP/parent" "$TEST_TMP/child"
  printf 'ARG BASE\nFROM $BASE\nENV DEST=/app\nONBUILD COPY . ${DEST}/\nONBUILD RUN ls $DEST > /listing\n' \
    > "$TEST_TMP/parent/Dockerfile"
  run kbuild "$TEST_TMP/parent" -t "$REGISTRY/test/onbuild-parent:1"
  echo "$output"
  [ "$status" -eq 0 ]
  echo hi > "$TEST_TMP/child/hello.txt"
  printf 'FROM %s/test/onbuild-parent:1\nRUN cat /listing > /seen\n' "$REGISTRY" > "$TEST_TMP/child/Dockerfile"
  run kbuild "$TEST_TMP/child" --no-push --oci-layout "$TEST_TMP/out:t"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"ONBUILD COPY . \${DEST}/"* ]]
  unpack "$TEST_TMP/out:t" "$TEST_TMP/b"
  [ "$(cat "$TEST_TMP/b/rootfs/app/hello.txt")" = hi ]
  grep -qx hello.txt "$TEST_TMP/b/rootfs/seen"
  # The image config (not umoci's runtime config) has no triggers left.
  local m c
  m=$(jq -r '.manifests[0].digest' "$TEST_TMP/out/index.json" | cut -d: -f2)
  c=$(jq -r '.config.digest' "$TEST_TMP/out/blobs/sha256/$m" | cut -d: -f2)
  jq -e '.config.Env | index("DEST=/app")' "$TEST_TMP/out/blobs/sha256/$c"
  [ "$(jq -c '.config.OnBuild // []' "$TEST_TMP/out/blobs/sha256/$c")" = "[]" ]
}

@test "build: tar contexts (kaniko tar://PATH, and - on stdin) with the Dockerfile inside; hostile names refused" {
  mkdir -p "$TEST_TMP/src/sub"
  echo in-tar > "$TEST_TMP/src/sub/f"
  printf 'ARG BASE\nFROM $BASE\nCOPY sub /sub\nRUN cat /sub/f > /g\n' > "$TEST_TMP/src/Dockerfile"
  tar -C "$TEST_TMP/src" -czf "$TEST_TMP/ctx.tgz" .
  run kbuild "tar://$TEST_TMP/ctx.tgz" --no-push --oci-layout "$TEST_TMP/out:t"
  echo "$output"
  [ "$status" -eq 0 ]
  unpack "$TEST_TMP/out:t" "$TEST_TMP/b"
  [ "$(cat "$TEST_TMP/b/rootfs/g")" = in-tar ]
  run bash -c "'$KILN' build --root '$TEST_TMP/store' --insecure-registry '$REGISTRY' --build-arg 'BASE=$BUSYBOX_IMAGE' --no-push - < '$TEST_TMP/ctx.tgz'"
  echo "$output"
  [ "$status" -eq 0 ]
  [ -z "$(ls -A "$TEST_TMP/store/tmp")" ]
  # A tar that climbs out with .. is refused and writes nothing outside.
  python3 - "$TEST_TMP/evil.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    data = b"pwned"
    ti = tarfile.TarInfo("../../../../../../tmp/kiln-evil-context")
    ti.size = len(data)
    t.addfile(ti, io.BytesIO(data))
PY
  run kbuild "tar://$TEST_TMP/evil.tar" --no-push
  echo "$output"
  [ "$status" -eq 1 ]
  [ ! -e /tmp/kiln-evil-context ]
  [ -z "$(ls -A "$TEST_TMP/store/tmp")" ]
}

@test "build: the built image is kept by prune (a build/ ref); prune --all empties the store, caches included" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'ARG BASE\nFROM $BASE\nRUN --mount=type=cache,target=/c echo x > /c/x && echo y > /y\n' > "$TEST_TMP/ctx/Dockerfile"
  run kbuild "$TEST_TMP/ctx" --no-push --oci-layout "$TEST_TMP/out:t"
  [ "$status" -eq 0 ]
  ls "$TEST_TMP/store/refs" | grep -q '^build'
  run "$KILN" prune --root "$TEST_TMP/store" --dry-run
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output != *"layers/sha256"* ]]
  [ -n "$(ls -A "$TEST_TMP/store/cache")" ]
  run "$KILN" prune --root "$TEST_TMP/store" --all
  [ "$status" -eq 0 ]
  [ -z "$(ls -A "$TEST_TMP/store/layers/sha256")" ]
  [ -z "$(ls -A "$TEST_TMP/store/cache" 2>/dev/null)" ]
  run "$KILN" build --compression-level 12 --no-push "$TEST_TMP/ctx"
  [ "$status" -eq 1 ]
  [[ $output == *"gzip takes 1 to 9"* ]]
}

@test "build: a kiln binary copied without its policies/ directory confines RUN steps with its built-in default profile" {
  mkdir -p "$TEST_TMP/bin" "$TEST_TMP/ctx"
  cp "$KILN" "$TEST_TMP/bin/kiln"
  printf 'ARG BASE\nFROM $BASE\nRUN grep "^Seccomp:" /proc/self/status\n' > "$TEST_TMP/ctx/Dockerfile"
  run env -u KILN_POLICY_DIR "$TEST_TMP/bin/kiln" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --no-push --progress plain --verbosity debug "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"using the built-in copy"* ]] || [ -e /usr/share/kiln/policies/default.json ] \
    || [ -e /usr/local/share/kiln/policies/default.json ]
  [[ $output == *"Seccomp:"*"2"* ]]
  [[ $output == *"compiled to "*" BPF instructions"* ]]
}
