#!/usr/bin/env bats
# kiln build features beyond build.bats: the build cache (local and --cache-repo),
# kaniko --single-snapshot and --ignore-path, parallel stages (--jobs), and
# store layers published from change lists.

load helpers

setup_file() { build_file_setup; }
teardown_file() { registry_stop_all; }
setup() { kiln_setup; }
teardown() { kiln_teardown; }

# kb STORE CONTEXT [FLAGS...]
kb() {
  local store=$1 ctx=$2
  shift 2
  "$KILN" build --root "$store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" --no-push \
    "$@" "$ctx"
}

# A context whose RUN steps leave a random token: a rerun of a step gives
# a different layer, a cache hit the same one.
make_ctx() {
  mkdir -p "$1/src"
  cat > "$1/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE
RUN head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > /token1
COPY src/ /app/
WORKDIR /app
ARG FLAVOUR=plain
RUN echo "$FLAVOUR" > /flavour && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > /token2 && cat /app/a.txt > /seen
EOF
  echo one > "$1/src/a.txt"
  echo two > "$1/src/b.txt"
}

diff_ids() {
  jq -r '.rootfs.diff_ids[]' "$1"
}

# config LAYOUT:TAG -> the image config JSON path (via umoci, not kiln).
config_of() {
  local layout=${1%%:*} tag=${1##*:}
  local m
  m=$(jq -r --arg t "$tag" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' \
    "$layout/index.json")
  local c
  c=$(jq -r .config.digest "$layout/blobs/sha256/${m#sha256:}")
  echo "$layout/blobs/sha256/${c#sha256:}"
}

@test "build cache: an unchanged rebuild is all CACHED with identical layers; an edited source rebuilds from its COPY" {
  make_ctx "$TEST_TMP/ctx"
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --oci-layout "$TEST_TMP/o1:t"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output != *CACHED* ]]
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --oci-layout "$TEST_TMP/o2:t"
  echo "$output"
  [ "$status" -eq 0 ]
  # RUN, COPY, WORKDIR, RUN: four cached layer steps.
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 4 ]
  [ "$(diff_ids "$(config_of "$TEST_TMP/o1:t")")" = "$(diff_ids "$(config_of "$TEST_TMP/o2:t")")" ]

  # Touching a file (new mtime, same content) still hits: keys use content.
  touch -d '2001-01-01' "$TEST_TMP/ctx/src/a.txt"
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --oci-layout "$TEST_TMP/o3:t"
  [ "$status" -eq 0 ]
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 4 ]

  # Editing a source: the first RUN stays cached, COPY and what follows rebuild.
  echo changed > "$TEST_TMP/ctx/src/a.txt"
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --oci-layout "$TEST_TMP/o4:t"
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 1 ]
  umoci unpack --image "$TEST_TMP/o4:t" "$TEST_TMP/u4" >/dev/null
  umoci unpack --image "$TEST_TMP/o1:t" "$TEST_TMP/u1" >/dev/null
  [ "$(cat "$TEST_TMP/u4/rootfs/seen")" = changed ]
  [ "$(cat "$TEST_TMP/u4/rootfs/token1")" = "$(cat "$TEST_TMP/u1/rootfs/token1")" ]
  [ "$(cat "$TEST_TMP/u4/rootfs/token2")" != "$(cat "$TEST_TMP/u1/rootfs/token2")" ]

  # A different build-arg value rebuilds the RUN that sees it (and only that).
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --build-arg FLAVOUR=spicy --oci-layout "$TEST_TMP/o5:t"
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 3 ]
  umoci unpack --image "$TEST_TMP/o5:t" "$TEST_TMP/u5" >/dev/null
  [ "$(cat "$TEST_TMP/u5/rootfs/flavour")" = spicy ]

  # --no-cache builds everything and --cache=false (kaniko) too.
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --no-cache --oci-layout "$TEST_TMP/o6:t"
  [ "$status" -eq 0 ]
  [[ $output != *CACHED* ]]
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --cache=false --oci-layout "$TEST_TMP/o7:t"
  [ "$status" -eq 0 ]
  [[ $output != *CACHED* ]]
  # --cache-copy-layers=false: COPY and WORKDIR run again; they make the
  # same layers, so the RUN after them still hits (keys chain on results).
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --cache-copy-layers=false --oci-layout "$TEST_TMP/o8:t"
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 2 ]
  [[ $output == *"RUN head"*"CACHED"*"COPY src/"*"DONE"*"WORKDIR"*"DONE"*"RUN echo"*"CACHED"* ]]
  # --cache-run-layers=false: the first RUN runs again and writes a new
  # token, so every later key (chained on results) misses.
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --cache-run-layers=false --oci-layout "$TEST_TMP/o9:t"
  [ "$status" -eq 0 ]
  [[ $output != *CACHED* ]]
}

@test "build cache: --reproducible rebuilds from cache give the same digest; entries survive prune, not prune --all" {
  make_ctx "$TEST_TMP/ctx"
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --reproducible -q
  [ "$status" -eq 0 ]
  local d1=${lines[-1]}
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --reproducible -q
  [ "$status" -eq 0 ]
  [ "${lines[-1]}" = "$d1" ]
  run "$KILN" prune --root "$TEST_TMP/store"
  [ "$status" -eq 0 ]
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --reproducible
  [ "$status" -eq 0 ]
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 4 ]
  run "$KILN" prune --root "$TEST_TMP/store" --all
  [ "$status" -eq 0 ]
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --reproducible
  [ "$status" -eq 0 ]
  [[ $output != *CACHED* ]]
}

@test "build cache: --cache-ttl expires entries; a pruned layer behind an entry is a miss, not an error" {
  make_ctx "$TEST_TMP/ctx"
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  sleep 2
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --cache-ttl 1s
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output != *CACHED* ]]
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --cache-ttl 1h
  [ "$status" -eq 0 ]
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 4 ]
  # Remove every extracted layer behind the entries' backs.
  rm -rf "$TEST_TMP/store/layers/sha256/"*
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output != *CACHED* ]]
}

@test "build cache: --cache-repo shares entries through a registry with a fresh store; secrets stay out of keys" {
  make_ctx "$TEST_TMP/ctx"
  printf 's3cr3t-cache-value' > "$TEST_TMP/secret"
  cat >> "$TEST_TMP/ctx/Dockerfile" <<'EOF'
RUN --mount=type=secret,id=tok test -s /run/secrets/tok && echo used > /secret-used
EOF
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/cache/app" --secret "id=tok,src=$TEST_TMP/secret" \
    --oci-layout "$TEST_TMP/o1:t"
  echo "$output"
  [ "$status" -eq 0 ]
  # The three RUN layers, the COPY and the WORKDIR (--cache-copy-layers is
  # on by default: rebuilding them would fetch every layer below them).
  [[ $output == *"pushed 5 build cache entries to $REGISTRY/cache/app"* ]]
  # Entries are tagged by key in the repository, and the newest entry of
  # each step also by its position (step-<hex>, for explaining misses).
  run skopeo list-tags --tls-verify=false "docker://$REGISTRY/cache/app"
  [ "$status" -eq 0 ]
  [ "$(echo "$output" | jq '[.Tags[] | select(startswith("step-") | not)] | length')" -eq 5 ]
  [ "$(echo "$output" | jq '[.Tags[] | select(startswith("step-"))] | length')" -eq 5 ]
  # A fresh store (another CI job) gets every step from the registry.
  run kb "$TEST_TMP/s2" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/cache/app" --secret "id=tok,src=$TEST_TMP/secret" \
    --oci-layout "$TEST_TMP/o2:t"
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 5 ]
  [ "$(diff_ids "$(config_of "$TEST_TMP/o1:t")")" = "$(diff_ids "$(config_of "$TEST_TMP/o2:t")")" ]
  # Another secret value does not change the key (as BuildKit), and the
  # value is nowhere in the stores or the registry's entries.
  printf 'another-value' > "$TEST_TMP/secret"
  run kb "$TEST_TMP/s2" "$TEST_TMP/ctx" --secret "id=tok,src=$TEST_TMP/secret"
  [ "$status" -eq 0 ]
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 5 ]
  ! grep -rq s3cr3t-cache-value "$TEST_TMP/s1" "$TEST_TMP/s2" || false
  # A cache repository that is down costs a warning, not the build.
  run kb "$TEST_TMP/s3" "$TEST_TMP/ctx" --cache-repo 127.0.0.1:1/cache/app --insecure-registry 127.0.0.1:1 \
    --secret "id=tok,src=$TEST_TMP/secret" --push-retry 0
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"127.0.0.1:1"* ]]
  # A tag in --cache-repo is a usage error.
  run kb "$TEST_TMP/s3" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/cache/app:v1"
  [ "$status" -ne 0 ]
  [[ $output == *"without tag"* ]]
}

@test "build cache: kaniko's semantics: --cache=true caches in <destination>/cache; a warm runner publishes its local hits; a fresh runner then hits every step" {
  make_ctx "$TEST_TMP/ctx"
  # A warm runner: its store has every step, the registry cache nothing yet.
  run kb "$TEST_TMP/warm" "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  run "$KILN" build --root "$TEST_TMP/warm" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
    --cache=true --cache-copy-layers=true -d "$REGISTRY/team/app:1" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"--cache=true without --cache-repo: the registry cache is '$REGISTRY/team/app/cache' (kaniko's default)"* ]]
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 4 ]
  [[ $output == *"pushed 4 build cache entries to $REGISTRY/team/app/cache"* ]]
  # Published once: the next warm build finds them there and pushes none.
  run "$KILN" build --root "$TEST_TMP/warm" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
    --cache=true --cache-copy-layers=true -d "$REGISTRY/team/app:1" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output != *"build cache entr"*"pushed"* ]]
  [[ $output != *"pushed "*" build cache entr"* ]]
  # A fresh runner (empty store) hits every step from the registry cache.
  run "$KILN" build --root "$TEST_TMP/fresh" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
    --cache=true --cache-copy-layers=true -d "$REGISTRY/team/app:2" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 4 ]
  [ "$(skopeo inspect --tls-verify=false "docker://$REGISTRY/team/app:1" | jq -c .Layers)" = \
    "$(skopeo inspect --tls-verify=false "docker://$REGISTRY/team/app:2" | jq -c .Layers)" ]
}

@test "build: --single-snapshot (kaniko) squashes the target stage into one layer equal to the layered result" {
  mkdir -p "$TEST_TMP/ctx"
  cat > "$TEST_TMP/ctx/Dockerfile" <<'EOF2'
ARG BASE
FROM $BASE
RUN mkdir -p /d/sub /gone /re && echo 1 > /d/sub/f && echo x > /gone/x && echo old > /re/old && echo a > /hl-a \
 && ln /hl-a /hl-b && rm /bin/ls
RUN rm -rf /gone /re && mkdir /re && echo new > /re/new && echo 2 > /d/sub/f && rm /hl-a && chmod 4755 /bin/cat
COPY f /d/copied
WORKDIR /w
EOF2
  printf 'copied' > "$TEST_TMP/ctx/f"
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --oci-layout "$TEST_TMP/o1:t"
  echo "$output"
  [ "$status" -eq 0 ]
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --single-snapshot --oci-layout "$TEST_TMP/o2:t"
  echo "$output"
  [ "$status" -eq 0 ]
  local c1 c2
  c1=$(config_of "$TEST_TMP/o1:t")
  c2=$(config_of "$TEST_TMP/o2:t")
  [ "$(jq '.rootfs.diff_ids | length' "$c1")" -eq 5 ]
  [ "$(jq '.rootfs.diff_ids | length' "$c2")" -eq 2 ]
  [ "$(jq '[.history[] | select(.empty_layer != true)] | length' "$c2")" -eq 2 ]
  [ "$(jq '.history | length' "$c1")" = "$(jq '.history | length' "$c2")" ]
  umoci unpack --image "$TEST_TMP/o1:t" "$TEST_TMP/u1" >/dev/null
  umoci unpack --image "$TEST_TMP/o2:t" "$TEST_TMP/u2" >/dev/null
  # Same tree (names, types, modes, owners, sizes, link counts, contents).
  (cd "$TEST_TMP/u1/rootfs" && find . -printf '%p %y %m %U:%G %s %n\n' | sort) > "$TEST_TMP/l1"
  (cd "$TEST_TMP/u2/rootfs" && find . -printf '%p %y %m %U:%G %s %n\n' | sort) > "$TEST_TMP/l2"
  diff "$TEST_TMP/l1" "$TEST_TMP/l2"
  diff -r "$TEST_TMP/u1/rootfs" "$TEST_TMP/u2/rootfs"
  [ ! -e "$TEST_TMP/u2/rootfs/gone" ]
  [ ! -e "$TEST_TMP/u2/rootfs/re/old" ]
  [ ! -e "$TEST_TMP/u2/rootfs/bin/ls" ]
  [ "$(cat "$TEST_TMP/u2/rootfs/re/new")" = new ]
  # The squashed layer itself: whiteouts for base paths, opaque /re.
  local top
  top=$(jq -r '.layers[-1].digest' "$TEST_TMP/o2/blobs/sha256/$(jq -r '.manifests[0].digest' "$TEST_TMP/o2/index.json" | cut -d: -f2)")
  tar -tzf "$TEST_TMP/o2/blobs/sha256/${top#sha256:}" > "$TEST_TMP/top"
  grep -qx 'bin/.wh.ls' "$TEST_TMP/top"
  grep -qx 're/.wh..wh..opq' "$TEST_TMP/top"
  ! grep -q 'gone/x' "$TEST_TMP/top" || false
}

@test "build: --ignore-path (kaniko) keeps paths out of every layer; a relative path is a usage error" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'ARG BASE\nFROM $BASE\nRUN mkdir -p /var/tmp/junk /keep && echo j > /var/tmp/junk/a && echo k > /keep/k && echo t > /tmpfile\nCOPY f /var/tmp/junk/copied\n' \
    > "$TEST_TMP/ctx/Dockerfile"
  printf 'x' > "$TEST_TMP/ctx/f"
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --ignore-path /var/tmp/junk --ignore-path /tmpfile --oci-layout "$TEST_TMP/o:t"
  echo "$output"
  [ "$status" -eq 0 ]
  umoci unpack --image "$TEST_TMP/o:t" "$TEST_TMP/u" >/dev/null
  [ "$(cat "$TEST_TMP/u/rootfs/keep/k")" = k ]
  [ ! -e "$TEST_TMP/u/rootfs/var/tmp/junk" ]
  [ ! -e "$TEST_TMP/u/rootfs/tmpfile" ]
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --ignore-path var/tmp
  [ "$status" -eq 2 ]
  [[ $output == *"--ignore-path 'var/tmp'"* ]]
}

@test "build: a store layer made from the change list equals the extraction of its pushed blob (index and tree)" {
  mkdir -p "$TEST_TMP/ctx/c"
  printf 'one' > "$TEST_TMP/ctx/c/a"
  ln "$TEST_TMP/ctx/c/a" "$TEST_TMP/ctx/c/a-link"
  ln -s a "$TEST_TMP/ctx/c/sym"
  cat > "$TEST_TMP/ctx/Dockerfile" <<'EOF2'
ARG BASE
FROM $BASE
RUN mkdir -p /d/e /o && echo x > /d/e/f && ln /d/e/f /d/hl && ln -s ../d/e/f /d/sl && mkfifo /d/fifo \
 && chown 12:34 /d/e/f && chmod 4711 /d/e/f && rm /bin/ls && echo o > /o/old && touch -d @1000 /d/e
RUN rm -rf /o && mkdir /o && echo n > /o/new && echo more >> /d/e/f && chmod 700 /d
COPY c/ /c/
EOF2
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --oci-layout "$TEST_TMP/o:t" -t "$REGISTRY/test/fromchanges:v1" --no-push=false
  echo "$output"
  [ "$status" -eq 0 ]
  run "$KILN" pull --root "$TEST_TMP/s2" --insecure-registry "$REGISTRY" --store "$REGISTRY/test/fromchanges:v1"
  echo "$output"
  [ "$status" -eq 0 ]
  local id n=0
  for id in $(diff_ids "$(config_of "$TEST_TMP/o:t")"); do
    local h=${id#sha256:}
    cmp "$TEST_TMP/s1/layers/sha256/$h/index" "$TEST_TMP/s2/layers/sha256/$h/index"
    diff -r "$TEST_TMP/s1/layers/sha256/$h/tree" "$TEST_TMP/s2/layers/sha256/$h/tree"
    n=$((n + 1))
  done
  [ "$n" -eq 4 ]
}

# Two stages that can only finish "together" if they run at the same time:
# each leaves a mark in a shared cache mount and waits for the other's.
jobs_ctx() {
  mkdir -p "$1"
  cat > "$1/Dockerfile" <<'EOF2'
ARG BASE
FROM $BASE AS a
RUN --mount=type=cache,id=meet,target=/c,sharing=shared touch /c/a; i=0; \
    while [ ! -e /c/b ] && [ $i -lt 60 ]; do sleep 0.25; i=$((i+1)); done; \
    if [ -e /c/b ]; then echo together; else echo alone; fi > /res-a
FROM $BASE AS b
RUN --mount=type=cache,id=meet,target=/c,sharing=shared touch /c/b; i=0; \
    while [ ! -e /c/a ] && [ $i -lt 60 ]; do sleep 0.25; i=$((i+1)); done; \
    if [ -e /c/a ]; then echo together; else echo alone; fi > /res-b
FROM $BASE
COPY --from=a /res-a /
COPY --from=b /res-b /
EOF2
}

@test "build: --jobs builds independent stages at once; --jobs 1 one after another" {
  jobs_ctx "$TEST_TMP/ctx"
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --jobs 2 --no-cache --oci-layout "$TEST_TMP/o1:t"
  echo "$output"
  [ "$status" -eq 0 ]
  umoci unpack --image "$TEST_TMP/o1:t" "$TEST_TMP/u1" >/dev/null
  [ "$(cat "$TEST_TMP/u1/rootfs/res-a")" = together ]
  [ "$(cat "$TEST_TMP/u1/rootfs/res-b")" = together ]
  run kb "$TEST_TMP/s2" "$TEST_TMP/ctx" --jobs 1 --no-cache --oci-layout "$TEST_TMP/o2:t"
  [ "$status" -eq 0 ]
  umoci unpack --image "$TEST_TMP/o2:t" "$TEST_TMP/u2" >/dev/null
  [ "$(cat "$TEST_TMP/u2/rootfs/res-a")" = alone ]
  run kb "$TEST_TMP/s2" "$TEST_TMP/ctx" --jobs 0
  [ "$status" -eq 2 ]
}

# Three stages at once exec'ing the same lower busybox and moving data
# through their mounts. With READ replies spliced, the kernel now and then
# refused one ("fuse: splice from pipe: Invalid argument") and libfuse
# dropped the request: a step slept for ever. How often depended on what
# else ran: 4 builds in 49 beside other builds and tests, 1 in 115 on an
# idle machine (bench/RESULTS.md "Session 5"), so this guards the class
# (a hang or any libfuse error fails it) more than it reproduces that bug.
@test "build: parallel stages on one base, two at a time, 6 times: no build hangs, libfuse never fails a reply" {
  # Two builds at a time (own stores): six stages' mounts reading busybox.
  local i j pids
  for i in $(seq 1 6); do
    pids=()
    for j in 1 2; do
      with_deadline 60 kb "$TEST_TMP/store$j" "$KILN_SRC/tests/stress/parallel-stages" --no-cache --jobs 3 \
        > "$TEST_TMP/log.$i.$j" 2>&1 &
      pids+=($!)
    done
    for j in 1 2; do
      if ! wait "${pids[j - 1]}"; then
        echo "build $i.$j failed:"; tail -n 60 "$TEST_TMP/log.$i.$j"; return 1
      fi
      if grep '^fuse: ' "$TEST_TMP/log.$i.$j"; then
        echo "build $i.$j: libfuse error"; return 1
      fi
    done
  done
}

@test "build: with --jobs, a failing stage stops the build naming its step; SIGTERM stops parallel RUNs cleanly" {
  mkdir -p "$TEST_TMP/ctx"
  cat > "$TEST_TMP/ctx/Dockerfile" <<'EOF2'
ARG BASE
FROM $BASE AS slow
RUN echo slow-started; sleep 30
FROM $BASE AS bad
RUN sleep 1; exit 7
FROM $BASE
COPY --from=slow /etc/hostname /a
COPY --from=bad /etc/hostname /b
EOF2
  SECONDS=0
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --jobs 2
  echo "$output"
  [ "$status" -eq 7 ]
  [[ $output == *"Dockerfile:5"*"[bad 2/2] RUN sleep 1; exit 7"*"exited with status 7"* ]]
  # The slow stage's step is not waited for to its end.
  [ "$SECONDS" -lt 25 ]
  processes_gone -fx "sleep 30"
  [ -z "$(ls -A "$TEST_TMP/store/tmp")" ]

  sed -i 's/exit 7/echo bad-started; sleep 30/' "$TEST_TMP/ctx/Dockerfile"
  "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
    --no-push --jobs 2 "$TEST_TMP/ctx" > "$TEST_TMP/out" 2>&1 &
  local pid=$!
  # the steps' own output lines ("#3 0.05 bad-started"), not their titles
  for _ in $(seq 1 150); do
    grep -qE '^#[0-9]+ [0-9.]+ bad-started$' "$TEST_TMP/out" && grep -qE '^#[0-9]+ [0-9.]+ slow-started$' "$TEST_TMP/out" &&
      break
    sleep 0.1
  done
  kill -TERM $pid
  local rc=0
  wait $pid || rc=$?
  cat "$TEST_TMP/out"
  [ "$rc" -eq 143 ]
  processes_gone -fx "sleep 30"
  ! grep -q "$TEST_TMP" /proc/self/mountinfo || false
  [ -z "$(ls -A "$TEST_TMP/store/tmp")" ]
}

@test "build: parallel stages stopped by SIGTERM, SIGINT, a failing stage, both, or a signal during set-up, 10 rounds: never a hang, nothing left" {
  # tests/stress/cancel-round.sh picks the moment from the round number and
  # checks the exit status, a 60 s deadline (hang report), the failing step
  # named, and no process, mount or temp dir left. bench/stress-cancel.sh
  # runs the same rounds hundreds of times.
  local i
  for i in $(seq 0 9); do
    if ! "$KILN_SRC/tests/stress/cancel-round.sh" "$i" "$TEST_TMP/store" "$TEST_TMP/log.$i"; then
      tail -n 80 "$TEST_TMP/log.$i"
      return 1
    fi
  done
}

@test "build: two builds at the same time on one store (cold base, same steps) both succeed with correct images" {
  local n
  for n in 1 2; do
    mkdir -p "$TEST_TMP/ctx$n"
    printf 'ARG BASE\nFROM $BASE\nRUN echo shared > /shared && sleep 1\nRUN echo "build %s" > /own\nCOPY f /f\n' "$n" \
      > "$TEST_TMP/ctx$n/Dockerfile"
    printf 'file %s' "$n" > "$TEST_TMP/ctx$n/f"
  done
  kb "$TEST_TMP/store" "$TEST_TMP/ctx1" --oci-layout "$TEST_TMP/o1:t" > "$TEST_TMP/log1" 2>&1 &
  local p1=$!
  kb "$TEST_TMP/store" "$TEST_TMP/ctx2" --oci-layout "$TEST_TMP/o2:t" > "$TEST_TMP/log2" 2>&1 &
  local p2=$! r1=0 r2=0
  wait $p1 || r1=$?
  wait $p2 || r2=$?
  cat "$TEST_TMP/log1" "$TEST_TMP/log2"
  [ "$r1" -eq 0 ]
  [ "$r2" -eq 0 ]
  for n in 1 2; do
    umoci unpack --image "$TEST_TMP/o$n:t" "$TEST_TMP/u$n" >/dev/null
    [ "$(cat "$TEST_TMP/u$n/rootfs/own")" = "build $n" ]
    [ "$(cat "$TEST_TMP/u$n/rootfs/f")" = "file $n" ]
    [ "$(cat "$TEST_TMP/u$n/rootfs/shared")" = shared ]
  done
  [ -z "$(ls -A "$TEST_TMP/store/tmp")" ]
  # The store is consistent afterwards: a third build hits the cache.
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx1" --oci-layout "$TEST_TMP/o3:t"
  [ "$status" -eq 0 ]
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 3 ]
}

@test "build: RUN --security=insecure needs --allow security.insecure; granted, the step has every capability and no seccomp" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'ARG BASE\nFROM $BASE\nRUN --security=insecure grep -E "^(CapEff|Seccomp):" /proc/self/status > /status\nRUN grep -E "^(CapEff|Seccomp):" /proc/self/status > /status-default\n' \
    > "$TEST_TMP/ctx/Dockerfile"
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --oci-layout "$TEST_TMP/o:t"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"Dockerfile:3"*"--allow security.insecure"* ]]
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --allow network.host
  [ "$status" -eq 2 ]
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --allow security.insecure --oci-layout "$TEST_TMP/o:t"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"RUN --security=insecure: all capabilities"* ]]
  umoci unpack --image "$TEST_TMP/o:t" "$TEST_TMP/u" >/dev/null
  cat "$TEST_TMP/u/rootfs/status" "$TEST_TMP/u/rootfs/status-default"
  local all def
  all=$(awk '/^CapEff:/ { print $2 }' "$TEST_TMP/u/rootfs/status")
  def=$(awk '/^CapEff:/ { print $2 }' "$TEST_TMP/u/rootfs/status-default")
  # Every capability the kernel has vs Docker's 14-capability default set.
  local last
  last=$(cat /proc/sys/kernel/cap_last_cap)
  [ "$all" = "$(printf '%016x' $(( (1 << (last + 1)) - 1 )))" ]
  [ "$def" = 00000000a80425fb ]
  grep -qx 'Seccomp:[[:space:]]*0' "$TEST_TMP/u/rootfs/status"
  grep -qx 'Seccomp:[[:space:]]*2' "$TEST_TMP/u/rootfs/status-default"
}

# A context for explained misses: a COPY of several files, a RUN that sees
# a build-arg, a RUN after both.
make_explain_ctx() {
  mkdir -p "$1/src"
  cat > "$1/Dockerfile" <<'EOF2'
ARG BASE
FROM $BASE
RUN echo base > /base
ARG VERSION=1.0
RUN echo "$VERSION" > /version
COPY src/ /srv/src/
RUN cat /srv/src/* > /all
EOF2
  for i in 1 2 3 4 5; do echo "file $i" > "$1/src/file$i.txt"; done
}

@test "build cache: a miss says why (file, build-arg, instruction, parent, no earlier build); json carries the reason; the summary counts" {
  make_explain_ctx "$TEST_TMP/ctx"
  # A proxy build-arg (it may hold credentials) is in no key, so in no recorded component.
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --build-arg VERSION=1.2 --progress=plain \
    --build-arg HTTP_PROXY=http://u:proxy-s3cret@127.0.0.1:9
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(grep -c 'cache miss: no earlier build of this step' <<< "$output")" -eq 4 ]
  [[ $output == *"cache: 0 hits, 4 misses"* ]]
  grep -rlq 'dev.kiln.cache.components' "$TEST_TMP/store/blobs"
  ! grep -rq proxy-s3cret "$TEST_TMP/store/blobs" "$TEST_TMP/store/refs" || false
  # One file changed: the COPY names it, the RUN after it names the COPY;
  # the RUNs before it hit.
  echo changed > "$TEST_TMP/ctx/src/file3.txt"
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --build-arg VERSION=1.2 --progress=plain
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"cache miss: src/file3.txt changed"* ]]
  [[ $output != *"more file"* ]]
  [[ $output == *"cache miss: parent changed (step 5 re-ran)"* ]]
  [[ $output == *"cache: 2 hits, 2 misses"* ]]
  # Three files: the first and a count.
  for i in 1 2 4; do echo "v2 $i" > "$TEST_TMP/ctx/src/file$i.txt"; done
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --build-arg VERSION=1.2 --progress=plain
  echo "$output"
  [[ $output == *"cache miss: src/file1.txt changed (and 2 more files)"* ]]
  # A build-arg: named with both values where a RUN sees it; the COPY after
  # the ARG names that step.
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --build-arg VERSION=1.3 --progress=plain
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *'RUN echo "$VERSION" > /version'*"cache miss: build-arg VERSION changed (1.2 -> 1.3)"* ]]
  [[ $output == *"COPY src/ /srv/src/"*"cache miss: parent changed (step 3 ARG changed)"* ]]
  [[ $output == *"cache: 1 hit, 3 misses"* ]]
  # json: a structured reason.
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --build-arg VERSION=1.4 --progress=json
  echo "$output"
  [ "$status" -eq 0 ]
  local ev
  ev=$(grep '"event":"cache"' <<< "$output" | head -1)
  [ "$(jq -r .reason <<< "$ev")" = build_arg_changed ]
  [ "$(jq -r '.reasons[0].name + " " + .reasons[0].old + " " + .reasons[0].new' <<< "$ev")" = "VERSION 1.3 1.4" ]
  [ "$(grep '"event":"summary"' <<< "$output" | jq '[.cache_hits, .cache_misses] | @csv' -r)" = "1,3" ]
  echo new > "$TEST_TMP/ctx/src/file6.txt"
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --build-arg VERSION=1.4 --progress=json
  echo "$output"
  ev=$(grep '"event":"cache"' <<< "$output" | head -1)
  [ "$(jq -r .reason <<< "$ev")" = files_changed ]
  [ "$(jq -c '.reasons[0].files' <<< "$ev")" = '[{"path":"src/file6.txt","change":"added"}]' ]
  # An edited instruction.
  sed -i 's|RUN cat /srv/src/\* > /all|RUN cat /srv/src/* > /everything|' "$TEST_TMP/ctx/Dockerfile"
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --build-arg VERSION=1.4 --progress=plain
  echo "$output"
  [[ $output == *"cache miss: instruction changed (was: RUN cat /srv/src/* > /all)"* ]]
  [[ $output == *"cache: 3 hits, 1 miss"* ]]
  # A new step: no earlier build.
  echo 'RUN echo more > /more' >> "$TEST_TMP/ctx/Dockerfile"
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --build-arg VERSION=1.4 --progress=plain
  echo "$output"
  [[ $output == *"[stage-0 7/7] RUN echo more"*"cache miss: no earlier build of this step"* ]]
}

@test "build cache: a fresh store with --cache-repo explains a miss from the registry entry's components" {
  make_explain_ctx "$TEST_TMP/ctx"
  run kb "$TEST_TMP/s1" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/cache/explain" --cache-copy-layers --build-arg VERSION=1.2
  echo "$output"
  [ "$status" -eq 0 ]
  run kb "$TEST_TMP/s2" "$TEST_TMP/ctx" --cache-repo "$REGISTRY/cache/explain" --cache-copy-layers --build-arg VERSION=2.0 \
    --progress=plain
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"cache miss: build-arg VERSION changed (1.2 -> 2.0)"* ]]
  [[ $output == *"cache: 1 hit, 3 misses"* ]]
}
