#!/usr/bin/env bats
# A committed layer is immutable (issue 16, items 1 and 2). Each test
# performs an attack on the store's files after a layer was committed and
# checks that the store, and the images later builds make from it, keep
# what was committed:
#   - a RUN step hands an O_RDWR fd of a file on its FUSE root to a parallel
#     stage's step, which writes through it after the first step's commit;
#   - a context file that COPY put into a layer is edited in place;
#   - a blob of an --oci-layout output is edited in place.

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

# The store's copies of a file named NAME in every layer tree (one line each).
store_files() { # STORE NAME
  find "$1/layers/sha256" -path "*/tree/$2" -type f | sort
}

# The layer blobs of LAYOUT:TAG, one sha256:HEX per line.
layout_layers() { # LAYOUT:TAG
  local layout=${1%%:*} tag=${1##*:} m
  m=$(jq -r --arg t "$tag" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' \
    "$layout/index.json")
  jq -r '.layers[].digest' "$layout/blobs/sha256/${m#sha256:}"
}

# The file PATH of the image LAYOUT:TAG, unpacked by umoci (not kiln).
image_file() { # LAYOUT:TAG PATH DIR
  umoci unpack --image "$1" "$3" > /dev/null
  cat "$3/rootfs/$2"
}

@test "immutable: a step's fd passed to a parallel stage cannot write the layer after it was committed" {
  mkdir -p "$TEST_TMP/ctx"
  gcc -static -O1 -o "$TEST_TMP/ctx/fdpass" "$KILN_SRC/tests/integration/sandbox/fdpass.c"
  # a: step 1 makes /victim and hands an O_RDWR fd of it to b; step 2 runs
  # once step 1 is committed (its layer is in the store), tells b so and
  # waits until b has written. b writes through the fd then. The shared
  # cache mount carries the socket and the marks.
  cat > "$TEST_TMP/ctx/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE AS a
COPY fdpass /fdpass
RUN --mount=type=cache,id=imm,target=/c,sharing=shared rm -f /c/sock /c/committed /c/done; \
    printf original-content > /victim && /fdpass send /c/sock /victim
RUN --mount=type=cache,id=imm,target=/c,sharing=shared touch /c/committed; i=0; \
    while [ ! -e /c/done ] && [ $i -lt 240 ]; do sleep 0.25; i=$((i+1)); done; \
    echo "a sees: $(cat /victim)"
FROM $BASE AS b
COPY fdpass /fdpass
RUN --mount=type=cache,id=imm,target=/c,sharing=shared /fdpass recv /c/sock /c/committed /c/done POISONED-content \
    && echo ran > /b-ran
FROM $BASE
COPY --from=a /victim /victim
COPY --from=b /b-ran /b-ran
EOF
  run with_deadline 120 kb "$TEST_TMP/store" "$TEST_TMP/ctx" --jobs 2 --oci-layout "$TEST_TMP/o1:t"
  echo "$output"
  [ "$status" -eq 0 ]
  local log=$output
  # b got the fd and wrote through it after a's step 1 was committed
  [[ $log == *"fdpass: write="*" fsync="* ]]
  # the store's file is what step 1 committed, and so is the image's
  run store_files "$TEST_TMP/store" victim
  [ -n "$output" ]
  local f
  for f in $output; do
    [ "$(cat "$f")" = original-content ]
  done
  [ "$(image_file "$TEST_TMP/o1:t" victim "$TEST_TMP/u1")" = original-content ]
  # whatever b's write(2) said (the kernel's page cache may take it), the
  # data never reached the file: its fsync failed
  [[ $log != *"fdpass: write=ok fsync=ok"* ]]
  # a's next step is not failed by b's refused write-back; kiln says what happened
  [[ $log == *"writes through a file handle of an earlier step"*"were refused"* ]]
  # a later build that hits the cache gets the committed content too
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --jobs 2 --oci-layout "$TEST_TMP/o2:t"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *CACHED* ]]
  [ "$(image_file "$TEST_TMP/o2:t" victim "$TEST_TMP/u2")" = original-content ]
}

@test "immutable: editing a COPY source in place after the build does not change what later builds run" {
  mkdir -p "$TEST_TMP/ctx1"
  printf 'echo original\n' > "$TEST_TMP/ctx1/app.sh"
  # (settled: a file changed within the clock tick of the build is copied)
  touch -d '2024-01-02 03:04:05.123456789' "$TEST_TMP/ctx1/app.sh"
  sleep 0.05
  printf 'ARG BASE\nFROM $BASE\nCOPY app.sh /app.sh\n' > "$TEST_TMP/ctx1/Dockerfile"
  # the same sources elsewhere (a second checkout), with the same mtime
  cp -a "$TEST_TMP/ctx1" "$TEST_TMP/ctx2"
  printf 'ARG BASE\nFROM $BASE\nCOPY app.sh /app.sh\nRUN echo "runs: $(cat /app.sh)"\n' > "$TEST_TMP/ctx2/Dockerfile"
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx1"
  echo "$output"
  [ "$status" -eq 0 ]
  local sum f
  sum=$(sha256sum < "$TEST_TMP/ctx2/app.sh")
  # the layer's tree links the context file (no copy), and records it
  run store_files "$TEST_TMP/store" app.sh
  [ -n "$output" ]
  for f in $output; do
    [ "$(stat -c %i "$f")" = "$(stat -c %i "$TEST_TMP/ctx1/app.sh")" ]
    [ -f "$(dirname "$(dirname "$f")")/links" ]
  done
  # same size, in place (the inode keeps its blocks), and the mtime put back
  local mt
  mt=$(stat -c %y "$TEST_TMP/ctx1/app.sh")
  printf 'echo EVILEVIL' | dd of="$TEST_TMP/ctx1/app.sh" conv=notrunc bs=1 seek=0 status=none
  touch -d "$mt" "$TEST_TMP/ctx1/app.sh"
  [ "$(cat "$TEST_TMP/ctx1/app.sh")" = "echo EVILEVIL" ]
  [ "$(stat -c %y "$TEST_TMP/ctx1/app.sh")" = "$mt" ]
  # the original sources hit the cache, and the step runs on what they hold:
  # the store noticed the changed inode and extracted the layer again
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx2"
  echo "$output"
  [ "$status" -eq 0 ]
  grep -E '^#[0-9]+ CACHED' <<< "$output"
  [[ $output == *"runs: echo original"* ]]
  [[ $output != *EVIL* ]]
  [[ $output == *"'app.sh', hard-linked from a build context, changed after the layer was stored"* ]]
  # the store's tree is its own again, with what was committed
  run store_files "$TEST_TMP/store" app.sh
  [ -n "$output" ]
  for f in $output; do
    [ "$(sha256sum < "$f")" = "$sum" ]
    [ ! -e "$(dirname "$(dirname "$f")")/links" ]
  done
}

@test "immutable: a COPY source edited while its layer is made is an error, or the store keeps what was packed" {
  mkdir -p "$TEST_TMP/ctx"
  head -c 4000000 /dev/urandom > "$TEST_TMP/ctx/big"
  touch -d '2024-01-02 03:04:05' "$TEST_TMP/ctx/big"
  printf 'ARG BASE\nFROM $BASE\nCOPY big /big\nRUN sha256sum /big\n' > "$TEST_TMP/ctx/Dockerfile"
  # an editor rewriting the file in place, with its mtime put back, while
  # kiln builds (until the build is over)
  ( while [ ! -e "$TEST_TMP/stop" ]; do
      printf 'EVIL' | dd of="$TEST_TMP/ctx/big" conv=notrunc bs=1 seek=100 status=none
      touch -d '2024-01-02 03:04:05' "$TEST_TMP/ctx/big"
    done ) &
  local pid=$!
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --oci-layout "$TEST_TMP/o:t"
  touch "$TEST_TMP/stop"
  wait "$pid"
  echo "$output"
  if [ "$status" -ne 0 ]; then
    [[ $output == *"changed during the build"* ]]
    return 0
  fi
  # the image's /big, the store's and what the RUN step hashed are one
  local want
  want=$(image_file "$TEST_TMP/o:t" big "$TEST_TMP/u" | sha256sum | cut -d' ' -f1)
  [[ $output == *"$want  /big"* ]]
}

@test "immutable: editing a blob of an --oci-layout output in place does not corrupt later builds" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'ARG BASE\nFROM $BASE\nRUN echo made-by-run > /made\n' > "$TEST_TMP/ctx/Dockerfile"
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --oci-layout "$TEST_TMP/o1:t"
  echo "$output"
  [ "$status" -eq 0 ]
  run layout_layers "$TEST_TMP/o1:t"
  [ -n "$output" ]
  local d hex
  for d in $output; do
    hex=${d#sha256:}
    # a hard link of the store's blob, recorded by the store
    [ "$(stat -c %i "$TEST_TMP/o1/blobs/sha256/$hex")" = "$(stat -c %i "$TEST_TMP/store/blobs/sha256/$hex")" ]
    [ -f "$TEST_TMP/store/bloblinks/sha256/$hex" ]
    printf 'XXXXXXXX' | dd of="$TEST_TMP/o1/blobs/sha256/$hex" conv=notrunc bs=1 seek=0 status=none
    [ "$(sha256sum < "$TEST_TMP/o1/blobs/sha256/$hex" | cut -d' ' -f1)" != "$hex" ]
  done
  # the next build notices, drops the modified blobs, and makes or fetches
  # them again: its layout is intact
  run kb "$TEST_TMP/store" "$TEST_TMP/ctx" --oci-layout "$TEST_TMP/o2:t"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"was modified after it was written (hard-linked into an --oci-layout?): removed"* ]]
  run layout_layers "$TEST_TMP/o2:t"
  for d in $output; do
    hex=${d#sha256:}
    [ "$(sha256sum < "$TEST_TMP/o2/blobs/sha256/$hex" | cut -d' ' -f1)" = "$hex" ]
    [ "$(sha256sum < "$TEST_TMP/store/blobs/sha256/$hex" | cut -d' ' -f1)" = "$hex" ]
  done
  [ "$(image_file "$TEST_TMP/o2:t" made "$TEST_TMP/u2")" = made-by-run ]
}
