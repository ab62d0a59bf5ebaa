#!/usr/bin/env bats
# examples/ci/Containerfile, built by kiln from the root of a clone of this
# checkout (as CI does; the working tree's tracked files are copied over the
# clone, so uncommitted changes are in it too), with BASE pointed at the
# Debian fixture and Debian's mirrors for apt-get; then the kiln the image
# installs runs: `kiln version` names the commit, and it builds a Dockerfile.
#
# The store is kept in $KILN_TEST_CACHE/containerfile/DAY (UTC day): later
# runs of the day hit the cache for the apt-get steps and only `COPY . .`,
# make and what follows run again (the warm cost). A new day starts from an
# empty store (fresh packages); older days' stores are removed.

load helpers

setup_file() {
  kiln_setup
  [ "$(id -u)" -ne 0 ] || chmod 0666 /dev/fuse
  registry_start
  fixtures_push all
  export REGISTRY BUSYBOX_IMAGE DEBIAN_IMAGE
}
teardown_file() { registry_stop_all; }
setup() {
  kiln_setup
  require_root "needs root (the store in the shared test cache)"
  export KILN_POLICY_DIR=${KILN_POLICY_DIR:-$KILN_SRC/policies}
}
teardown() { kiln_teardown; }

# clone DIR: a clone of KILN_SRC at HEAD with the working tree's changes to
# tracked files (staged or not) applied.
clone() {
  git clone --quiet --no-hardlinks "$KILN_SRC" "$1"
  (cd "$KILN_SRC" && git diff -z --name-only --diff-filter=d HEAD | tar --null -T - -cf - | tar -xf - -C "$1")
  (cd "$KILN_SRC" && git diff -z --name-only --diff-filter=D HEAD) | (cd "$1" && xargs -0 -r rm -f --)
}

# cache_store: STORE = today's store in the test cache (older days removed;
# today's too once it passes 4 GiB: each run with changed sources adds its
# make layer, ~100 MB).
cache_store() {
  local base=$KILN_TEST_CACHE/containerfile day
  day=$(date -u +%F)
  mkdir -p "$base"
  STORE=$base/$day
  (
    flock 9
    find "$base" -mindepth 1 -maxdepth 1 -type d ! -name "$day" -exec rm -rf --one-file-system {} +
    if [ -d "$STORE" ] && [ "$(du -sm "$STORE" | cut -f1)" -gt 4096 ]; then
      rm -rf --one-file-system "$STORE"
    fi
  ) 9> "$KILN_TEST_CACHE/containerfile.lock"
}

@test "containerfile: the dockerignore keeps .git, build outputs and a store out of the context" {
  clone "$TEST_TMP/src"
  # What a developer's checkout has besides the sources.
  mkdir -p "$TEST_TMP/src/build/src/util" "$TEST_TMP/src/build-asan" "$TEST_TMP/src/.local/share/kiln"
  echo stale > "$TEST_TMP/src/kiln"
  echo stale > "$TEST_TMP/src/build/src/util/alloc.o"
  echo stale > "$TEST_TMP/src/build-asan/kiln"
  echo x > "$TEST_TMP/src/.local/share/kiln/store-file"
  mkdir -p "$TEST_TMP/df"
  cp "$KILN_SRC/examples/ci/Containerfile.dockerignore" "$TEST_TMP/df/Containerfile.dockerignore"
  printf 'FROM %s\nWORKDIR /src\nCOPY . .\nRUN find . | sort > /list\n' "$BUSYBOX_IMAGE" > "$TEST_TMP/df/Containerfile"
  run "$KILN" build --root "$TEST_TMP/store" -f "$TEST_TMP/df/Containerfile" --insecure-registry "$REGISTRY" \
    --no-push --oci-layout "$TEST_TMP/out:t" "$TEST_TMP/src"
  echo "$output" | tail -5
  [ "$status" -eq 0 ]
  umoci unpack --rootless --image "$TEST_TMP/out:t" "$TEST_TMP/b" > /dev/null
  local list=$TEST_TMP/b/rootfs/list
  grep -qx './Makefile' "$list"
  grep -qx './src/main.c' "$list"
  grep -qx './policies/default.json' "$list"
  ! grep -E '^\./(\.git|kiln|build|build-asan|\.local|\.git-commit-stamp)(/|$)' "$list"
  ! grep -E '\.o$' "$list"
}

@test "containerfile: kiln builds examples/ci/Containerfile from a clone and the image's kiln works" {
  debian_reachable || skip "deb.debian.org does not answer: the Containerfile's apt-get steps need Debian's mirrors"
  clone "$TEST_TMP/src"
  local commit
  commit=$(git -C "$TEST_TMP/src" rev-parse --short=12 HEAD)
  cache_store
  local start=$SECONDS
  # From the clone's root, as the Containerfile's header says; flock:
  # another run of the suite may build into today's store.
  cd "$TEST_TMP/src"
  run flock "$KILN_TEST_CACHE/containerfile.lock" "$KILN" build --root "$STORE" \
    -f examples/ci/Containerfile --build-arg BASE="$DEBIAN_IMAGE" --build-arg GIT_COMMIT="$commit" \
    --insecure-registry "$REGISTRY" -t "$REGISTRY/tools/kiln:ci" \
    --oci-layout "$TEST_TMP/out:kiln" .
  echo "$output" | tail -25
  echo "# build took $((SECONDS - start)) s" >&3
  [ "$status" -eq 0 ]
  skopeo inspect --tls-verify=false "docker://$REGISTRY/tools/kiln:ci" > "$TEST_TMP/inspect.json"
  jq -e '.Layers | length >= 2' "$TEST_TMP/inspect.json" > /dev/null
  # The image's kiln, in kiln's sandbox, as the image's user.
  run "$KILN" run --root "$TEST_TMP/runstore" --oci-layout "$TEST_TMP/out:kiln" version
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"commit: $commit"* ]]
  [[ $output == *"isa-l: "* ]]
  # ... and builds and pushes an image there (kiln's sandbox denies user
  # namespaces: ptrace isolation, as in a CI container).
  local df="FROM $BUSYBOX_IMAGE\\nCOPY hi.txt /\\nRUN cat /hi.txt > /seen && id -u >> /seen\\n"
  run "$KILN" run --root "$TEST_TMP/runstore" --network host --oci-layout "$TEST_TMP/out:kiln" --entrypoint sh -- -c \
    "mkdir c && echo hi-$$ > c/hi.txt && printf '$df' > c/Dockerfile && kiln build --insecure-registry $REGISTRY -t $REGISTRY/t/nested:1 c"
  echo "$output" | tail -15
  [ "$status" -eq 0 ]
  [[ $output == *"using --isolation=ptrace"* ]]
  skopeo copy --quiet --src-tls-verify=false "docker://$REGISTRY/t/nested:1" "oci:$TEST_TMP/nested:t"
  umoci unpack --rootless --image "$TEST_TMP/nested:t" "$TEST_TMP/n" > /dev/null
  [ "$(cat "$TEST_TMP/n/rootfs/seen")" = "$(printf 'hi-%s\n0' $$)" ]
}
