#!/usr/bin/env bats
# kiln's command line: version, help, flag syntax and usage errors (exit 2).

load helpers

setup() { kiln_setup; }
teardown() { kiln_teardown; }

@test "kiln version: version, commit and every linked library" {
  run "$KILN" version
  [ "$status" -eq 0 ]
  [[ ${lines[0]} =~ ^kiln\ [0-9]+\.[0-9]+\.[0-9]+ ]]
  [[ ${lines[1]} =~ ^commit:\ ([0-9a-f]{12}|unknown)$ ]]
  local lib
  for lib in libseccomp libcap libarchive libcurl yajl libfuse openssl zlib zstd; do
    grep -qE "^$lib: .*[0-9]+\.[0-9]+" <<< "$output" || { echo "no version for $lib"; false; }
  done
  # The versions are the linked ones, not made up: compare with pkg-config.
  grep -q "^libseccomp: $(pkg-config --modversion libseccomp)\$" <<< "$output"
  grep -q "^libfuse: $(pkg-config --modversion fuse3)\$" <<< "$output"
  grep -q "^zstd: $(pkg-config --modversion libzstd)\$" <<< "$output"
  # A binary built from this tree names this tree's commit.
  if [ "$KILN" = "$KILN_SRC/kiln" ] && git -C "$KILN_SRC" rev-parse HEAD >/dev/null 2>&1; then
    [ "${lines[1]}" = "commit: $(git -C "$KILN_SRC" rev-parse --short=12 HEAD)" ] ||
      { echo "kiln reports ${lines[1]}, tree is at $(git -C "$KILN_SRC" rev-parse --short=12 HEAD) (stale binary? run make)"; false; }
  fi
  run "$KILN" --version
  [ "$status" -eq 0 ]
  [[ ${lines[0]} == "kiln "* ]]
}

@test "kiln version: names the default seccomp profile RUN steps get: KILN_POLICY_DIR, policies/ next to the binary, or the built-in copy" {
  KILN_POLICY_DIR=/some/dir run "$KILN" version
  [ "$status" -eq 0 ]
  [[ $output == *$'\nseccomp profile: /some/dir/default.json'* ]]
  mkdir -p "$TEST_TMP/a/policies" "$TEST_TMP/b"
  cp "$KILN" "$TEST_TMP/a/kiln"
  cp "$KILN" "$TEST_TMP/b/kiln"
  cp "$KILN_SRC/policies/default.json" "$TEST_TMP/a/policies/"
  env -u KILN_POLICY_DIR "$TEST_TMP/a/kiln" version | grep -qx "seccomp profile: $TEST_TMP/a/policies/default.json"
  if [ ! -e /usr/local/share/kiln/policies/default.json ] && [ ! -e /usr/share/kiln/policies/default.json ]; then
    env -u KILN_POLICY_DIR "$TEST_TMP/b/kiln" version |
      grep -qx "seccomp profile: built-in (policies/default.json of this build; none found on disk)"
  fi
}

@test "kiln version: extra argument is a usage error" {
  run "$KILN" version extra
  [ "$status" -eq 2 ]
  [[ $output == *"unexpected argument 'extra'"* ]]
}

@test "kiln help lists the commands; help for a command shows its flags" {
  run "$KILN" help
  [ "$status" -eq 0 ]
  [[ $output == *"Usage: kiln COMMAND"* ]]
  local c
  for c in build version help; do grep -qE "^  $c " <<< "$output"; done
  run "$KILN" --help
  [ "$status" -eq 0 ]
  [[ $output == *"Usage: kiln COMMAND"* ]]
  run "$KILN" help build
  [ "$status" -eq 0 ]
  [[ $output == *"Usage: kiln build"* ]]
  run "$KILN" help frobnicate
  [ "$status" -eq 2 ]
  [[ $output == *"unknown command 'frobnicate'"* ]]
}

@test "every command of the README's command table is one kiln has, with a working --help" {
  local cmds c
  cmds=$(grep -oE '^\| `kiln [a-z]+' "$KILN_SRC/README.md" | awk '{ print $3 }' | sort -u)
  [ -n "$cmds" ]
  grep -q '^warm$' <<< "$cmds"
  run "$KILN" help
  for c in $cmds; do
    grep -qE "^  $c " <<< "$output" || { echo "README command '$c' is not in kiln help"; false; }
    case $c in version | help) continue ;; esac
    "$KILN" "$c" --help > /dev/null || { echo "kiln $c --help failed"; false; }
  done
}

@test "kiln build --help and -h print the flag table" {
  run "$KILN" build --help
  [ "$status" -eq 0 ]
  [[ ${lines[0]} == "Usage: kiln build"* ]]
  [[ $output == *"--verbosity LEVEL"* ]]
  [[ $output == *"--log-format FORMAT"* ]]
  [[ $output == *"-h, --help"* ]]
  # the environment variables kiln reads
  [[ $output == *"KILN_ROOT "* && $output == *"KILN_POLICY_DIR "* && $output == *"KILN_MAX_LAYER_ENTRIES "* ]]
  [[ $output == *"KILN_FUSE_URING "*"enable_uring=Y"* ]]
  local full=$output
  run "$KILN" build -h
  [ "$status" -eq 0 ]
  [ "$output" = "$full" ]
}

@test "no command: usage on stderr, exit 2" {
  run "$KILN"
  [ "$status" -eq 2 ]
  [[ $output == *"Usage: kiln COMMAND"* ]]
}

@test "unknown command exits 2 and names it" {
  run "$KILN" frobnicate --x
  [ "$status" -eq 2 ]
  [[ ${lines[0]} == "kiln: unknown command 'frobnicate'" ]]
}

@test "unknown flags exit 2 with a clear message, long and short" {
  run "$KILN" build --no-such-flag .
  [ "$status" -eq 2 ]
  [[ $output == *"unknown flag '--no-such-flag'"* ]]
  run "$KILN" build --no-such-flag=1 .
  [ "$status" -eq 2 ]
  [[ $output == *"unknown flag '--no-such-flag"* ]]
  run "$KILN" build -Z .
  [ "$status" -eq 2 ]
  [[ $output == *"unknown flag '-Z'"* ]]
  # A flag that takes no value given one.
  run "$KILN" build --help=false
  [ "$status" -eq 2 ]
  [[ $output == *"'--help=false' does not take a value"* ]]
  # Never a crash signal or a success.
  [[ $output != *"unknown flag '-'"* ]]
}

@test "--flag=value and --flag value both reach the flag" {
  # An invalid value is rejected naming the value: proof it was parsed as the
  # flag's value in both spellings.
  run "$KILN" build --log-format=xml .
  [ "$status" -eq 2 ]
  [[ $output == *"invalid log format 'xml'"* ]]
  run "$KILN" build --log-format xml .
  [ "$status" -eq 2 ]
  [[ $output == *"invalid log format 'xml'"* ]]
  run "$KILN" build --verbosity=loud .
  [ "$status" -eq 2 ]
  [[ $output == *"invalid verbosity 'loud'"* ]]
  run "$KILN" build -v loud .
  [ "$status" -eq 2 ]
  [[ $output == *"invalid verbosity 'loud'"* ]]
  # Valid values in both forms pass flag parsing (exit is not the usage code).
  run "$KILN" build --log-format=json --verbosity debug "$TEST_TMP"
  [ "$status" -ne 2 ]
  [[ $output != *"unknown flag"* ]]
  [[ $output != *"invalid"* ]]
}

@test "a value flag at the end without its value is a usage error" {
  run "$KILN" build --log-format
  [ "$status" -eq 2 ]
  [[ $output == *"'--log-format' needs a value"* ]]
}

@test "kaniko-style booleans: --flag, --flag=true, --flag=false; others rejected" {
  local v
  for v in "" "=true" "=false"; do
    run "$KILN" build "--log-timestamp$v" "$TEST_TMP"
    [ "$status" -ne 2 ] || { echo "--log-timestamp$v: $output"; false; }
  done
  run "$KILN" build --log-timestamp=maybe "$TEST_TMP"
  [ "$status" -eq 2 ]
  [[ $output == *"invalid value 'maybe' for --log-timestamp (expected true or false)"* ]]
}
