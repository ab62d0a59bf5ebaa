#!/usr/bin/env bats
# The architecture map and the design notes name files of the tree; every
# src/, tests/, scripts/, bench/ and policies/ path they write in backquotes
# must exist (scripts/check-doc-paths.sh).

load helpers

setup() { kiln_setup; }
teardown() { shared_dir_cleanup; kiln_teardown; }

@test "docs: every path named in docs/architecture.md and docs/design/ exists" {
  run "$KILN_SRC/scripts/check-doc-paths.sh"
  echo "$output"
  [ "$status" -eq 0 ]
}

@test "docs: every function the \"Where is X\" table names is in its row's files; a renamed or moved one is reported" {
  run "$KILN_SRC/scripts/check-doc-functions.sh"
  echo "$output"
  [ "$status" -eq 0 ]
  mkdir -p "$TEST_TMP/docs" "$TEST_TMP/src"
  printf '## Where is X\n\n| a | b | c |\n| --- | --- | --- |\n| x | `src/a.c` | `real_fn` → `gone_fn` |\n## Next\n' \
    > "$TEST_TMP/docs/architecture.md"
  printf 'int\nreal_fn (void)\n{\n  return 0;\n}\n' > "$TEST_TMP/src/a.c"
  KILN_CHECK_ROOT=$TEST_TMP run "$KILN_SRC/scripts/check-doc-functions.sh"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *'`gone_fn` is not in src/a.c'* ]]
  [[ $output != *'`real_fn`'* ]]
  # a function that moved to another file than its row names
  printf 'int\ngone_fn (void)\n{\n  return 1;\n}\n' > "$TEST_TMP/src/b.c"
  KILN_CHECK_ROOT=$TEST_TMP run "$KILN_SRC/scripts/check-doc-functions.sh"
  [ "$status" -eq 1 ]
  [[ $output == *'`gone_fn` is not in src/a.c'* ]]
  sed -i 's|`src/a.c`|`src/a.c`, `src/b.c`|' "$TEST_TMP/docs/architecture.md"
  KILN_CHECK_ROOT=$TEST_TMP run "$KILN_SRC/scripts/check-doc-functions.sh"
  [ "$status" -eq 0 ]
}

@test "docs: the README's main job, make demo (scripts/demo.sh), builds examples/hello, pushes it and runs its CMD" {
  cd "$KILN_SRC"
  run scripts/demo.sh
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"demo: pushed 127.0.0.1:"*"/demo/hello@sha256:"* ]]
  [[ $output == *"hello from kiln"* ]]
  [[ $output == *"running as app in /home/app"* ]]
}

# demo_as USER CACHE: make demo as USER from USER's own copy of the checkout
# with KILN_TEST_CACHE=CACHE (empty and root's: a fresh machine; or the
# system's, filled by root).
demo_as() {
  local u=$1 cache=$2 home tmp
  home=$(getent passwd "$u" | cut -d: -f6)
  tmp=$(_test_user_tmp "$u")
  # The objects are already built (the demo's make then only relinks); no
  # .git (another user's).
  rm -rf "$SHARED/$u"
  mkdir "$SHARED/$u"
  tar -C "$KILN_SRC" --exclude=./.git --exclude="./build-*" -cf - . | tar -C "$SHARED/$u" -xf -
  chown -R "$u:" "$SHARED/$u"
  rm -rf "$home/.cache/kiln-test"
  local pre=()
  # DEMO_FUSE_0600=1: /dev/fuse as some cloud images ship it (0600), in a
  # mount namespace of the demo's own.
  if [ "${DEMO_FUSE_0600:-0}" = 1 ]; then
    rm -f "$TEST_TMP/fuse"
    mknod -m 0600 "$TEST_TMP/fuse" c 10 229
    pre=(unshare -m --propagation private sh -c 'mount --bind "$0" /dev/fuse && exec "$@"' "$TEST_TMP/fuse")
  fi
  mkdir -p "$tmp/run"
  chown "$u:" "$tmp/run"
  chmod 0700 "$tmp/run"
  run "${pre[@]}" setpriv --reuid "$u" --regid "$(id -g "$u")" --init-groups --inh-caps=-all -- env -i PATH="$PATH" HOME="$home" USER="$u" LOGNAME="$u" TMPDIR="$tmp" \
    XDG_RUNTIME_DIR="$tmp/run" KILN_TEST_CACHE="$cache" make -C "$SHARED/$u" demo
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"demo: pushed 127.0.0.1:"*"/demo/hello@sha256:"* ]]
  [[ $output == *"hello from kiln"* ]]
  [ -z "$(find "$SHARED/$u" ! -user "$u")" ]
  if [ "$cache" = "$SHARED/syscache" ]; then
    # The busybox fixture was built as the user, in the user's cache.
    [[ $output == *"demo: fixture cache in $home/.cache/kiln-test (the system's cannot be written)"* ]]
    [ -f "$(echo "$home/.cache/kiln-test/oci/"busybox-*/index.json)" ]
    [ -z "$(ls -A "$SHARED/syscache")" ]
    [ -z "$(find "$home/.cache/kiln-test" ! -user "$u")" ]
  else
    [[ $output != *"demo: fixture cache in"* ]]
    [ ! -e "$home/.cache/kiln-test" ]
  fi
}

@test "docs: make demo as a plain user, with and without subuid ranges, with and without a fixture cache" {
  shared_dir
  mkdir "$SHARED/syscache"
  test_user_create kiln-demo-sub --subuid
  demo_as kiln-demo-sub "$SHARED/syscache"
  [[ $output == *"running as app in /home/app"* ]]
  # Without ranges (single ID mode) USER app runs as uid 0, with a warning,
  # and sees its USER's ids through getuid() & co. (docs/compatibility.md).
  test_user_create kiln-demo-single
  demo_as kiln-demo-single "$SHARED/syscache"
  [[ $output == *"warn: single ID mode maps only root: the step runs as uid 0 and sees 1000:1000 only through getuid()"* ]]
  [[ $output == *"running as app in /home/app"* ]]
  # The system's cache, filled by root (make test): read by the user.
  "$KILN_SRC/scripts/make-base-images.sh" busybox > /dev/null
  demo_as kiln-demo-sub "$KILN_TEST_CACHE"
  [[ $output == *"running as app in /home/app"* ]]
  # Where /dev/fuse is 0600, RUN steps run under ptrace isolation.
  DEMO_FUSE_0600=1 demo_as kiln-demo-sub "$KILN_TEST_CACHE"
  [[ $output == *"no usable /dev/fuse"*"using --isolation=ptrace"* ]]
  [[ $output == *"running as app in /home/app"* ]]
}
