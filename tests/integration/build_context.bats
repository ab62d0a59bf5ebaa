#!/usr/bin/env bats
# A hostile build context (issue 16, item 3): a Dockerfile or
# Dockerfile.dockerignore that is a symlink out of the context is not read,
# and nothing of the file it points at reaches kiln's output; a symlink that
# stays inside the context is followed; a parse error quotes no more than
# the line it is about. Directory and tar:// contexts.

load helpers

setup_file() { build_file_setup; }
teardown_file() { registry_stop_all; }
setup() { kiln_setup; }
teardown() { kiln_teardown; }

CANARY=kiln-canary-b7f3e2

# kb CONTEXT [FLAGS...]
kb() {
  local ctx=$1
  shift
  "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
    --no-push "$@" "$ctx"
}

# refused: the last `run` failed naming the escape and printed no canary.
refused() {
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"leads outside the build context"* ]]
  [[ $output != *"$CANARY"* ]]
}

@test "context: a Dockerfile symlinked to a file outside the context is not read (absolute and ../ links)" {
  printf 'FROM %s\nRUN echo %s-line2\n' "$CANARY-line1" "$CANARY" > "$TEST_TMP/secret"
  mkdir -p "$TEST_TMP/ctx/sub"
  ln -s "$TEST_TMP/secret" "$TEST_TMP/ctx/Dockerfile"
  run kb "$TEST_TMP/ctx"
  refused
  # relative, through ..
  rm "$TEST_TMP/ctx/Dockerfile"
  ln -s ../secret "$TEST_TMP/ctx/Dockerfile"
  run kb "$TEST_TMP/ctx"
  refused
  # -f naming the link inside the context, and a link in a subdirectory
  ln -s ../../secret "$TEST_TMP/ctx/sub/Dockerfile"
  run kb "$TEST_TMP/ctx" -f "$TEST_TMP/ctx/sub/Dockerfile"
  refused
  cd "$TEST_TMP"
  run kb ctx -f ctx/sub/Dockerfile
  cd - > /dev/null
  refused
  # a directory on the way that is a symlink out of the context
  rm -r "$TEST_TMP/ctx/sub"
  mkdir -p "$TEST_TMP/outside"
  cp "$TEST_TMP/secret" "$TEST_TMP/outside/Dockerfile"
  ln -s "$TEST_TMP/outside" "$TEST_TMP/ctx/sub"
  run kb "$TEST_TMP/ctx" -f "$TEST_TMP/ctx/sub/Dockerfile"
  refused
}

@test "context: a Dockerfile symlinked to /proc/self/environ shows nothing of kiln's environment" {
  mkdir -p "$TEST_TMP/ctx"
  ln -s /proc/self/environ "$TEST_TMP/ctx/Dockerfile"
  KILN_TEST_SECRET=$CANARY run kb "$TEST_TMP/ctx"
  refused
}

@test "context: a Dockerfile symlinked inside the context is followed; a -f file outside the context is the user's" {
  mkdir -p "$TEST_TMP/ctx/docker" "$TEST_TMP/elsewhere"
  printf 'ARG BASE\nFROM $BASE\nRUN echo inside > /f\n' > "$TEST_TMP/ctx/docker/Dockerfile.real"
  ln -s docker/Dockerfile.real "$TEST_TMP/ctx/Dockerfile"
  run kb "$TEST_TMP/ctx" --oci-layout "$TEST_TMP/o1:t"
  echo "$output"
  [ "$status" -eq 0 ]
  umoci unpack --image "$TEST_TMP/o1:t" "$TEST_TMP/u1" > /dev/null
  [ "$(cat "$TEST_TMP/u1/rootfs/f")" = inside ]
  # the user names a file outside the context, through a symlink of theirs
  printf 'ARG BASE\nFROM $BASE\nRUN echo outside > /f\n' > "$TEST_TMP/elsewhere/real"
  ln -s real "$TEST_TMP/elsewhere/Dockerfile"
  run kb "$TEST_TMP/ctx" -f "$TEST_TMP/elsewhere/Dockerfile" --oci-layout "$TEST_TMP/o2:t"
  echo "$output"
  [ "$status" -eq 0 ]
}

@test "context: Dockerfile.dockerignore symlinked out of the context is not read" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'ARG BASE\nFROM $BASE\nCOPY . /c\n' > "$TEST_TMP/ctx/Dockerfile"
  echo "$CANARY" > "$TEST_TMP/ignore-secret"
  ln -s "$TEST_TMP/ignore-secret" "$TEST_TMP/ctx/Dockerfile.dockerignore"
  run kb "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"Dockerfile.dockerignore"* ]]
  [[ $output != *"$CANARY"* ]]
}

@test "context: tar:// context whose Dockerfile is a symlink out of it is not read" {
  printf 'FROM %s\n' "$CANARY" > "$TEST_TMP/secret"
  mkdir -p "$TEST_TMP/t"
  ln -s "$TEST_TMP/secret" "$TEST_TMP/t/Dockerfile"
  tar -C "$TEST_TMP/t" -cf "$TEST_TMP/ctx.tar" Dockerfile
  run kb "tar://$TEST_TMP/ctx.tar"
  refused
  [ -z "$(ls -A "$TEST_TMP/store/tmp")" ]
}

@test "context: a parse error quotes the line it is about and nothing after it" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'root:x:0:0:root:/root:/bin/sh\n%s:x:1:1::/:/bin/sh\n' "$CANARY" > "$TEST_TMP/ctx/Dockerfile"
  run kb "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -ne 0 ]
  [[ $output == *"Dockerfile:1"* ]]
  [[ $output != *"$CANARY"* ]]
}

@test "context: a store (--root) inside the context is left out of it, with a warning; a second build is all cached" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM %s\nCOPY . /ctx/\nRUN test ! -e /ctx/.kiln-store && ls /ctx | sort | tr "\\n" " "\n' "$BUSYBOX_IMAGE" \
    > "$TEST_TMP/ctx/Dockerfile"
  echo a > "$TEST_TMP/ctx/a.txt"
  for round in 1 2; do
    run "$KILN" build --root "$TEST_TMP/ctx/.kiln-store" --insecure-registry "$REGISTRY" --no-push --progress plain \
      "$TEST_TMP/ctx"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ $output == *"the store '$TEST_TMP/ctx/.kiln-store' lies inside the build context '$TEST_TMP/ctx': it is left out of the context"* ]]
  done
  # the second build's COPY and RUN hit: the store's own changes are not part of the context
  [ "$(grep -c ' CACHED' <<< "$output")" -eq 2 ]
  # the store as the context itself is an error
  run "$KILN" build --root "$TEST_TMP/ctx" --insecure-registry "$REGISTRY" --no-push "$TEST_TMP/ctx"
  [ "$status" -ne 0 ]
  [[ $output == *"is the build context itself"* ]]
}
