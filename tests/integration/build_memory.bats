#!/usr/bin/env bats
# A RUN step cannot make kiln's own memory grow out of proportion (issue 16,
# item 7). Each test runs one amplification in a busybox step with a static
# helper (tests/integration/memory/amplify.c) and bounds kiln's peak RSS:
# the largest of kiln and every process it waited for (the step's init,
# helper and processes), from getrusage(RUSAGE_CHILDREN) of a Python parent.
# Before the bounds (kiln of a9ed401): 1,500 nested 255-byte directories
# peaked at 568 MB, 3,000 x 64 KiB xattrs on one file at 972 MB, 1,000
# opendirs of an 8,000-entry directory at 572 MB (and 608 MB changing it in
# between). A trivial build peaks at
# about 18 MB (30 MB with the default private network: pasta is then the
# largest process); the bound is 150 MB. The bounds: docs/design/overlay.md,
# "Memory bounds".

load helpers

setup_file() {
  build_file_setup
  export AMPLIFY=$BATS_FILE_TMPDIR/amplify
  gcc -static -O1 -o "$AMPLIFY" "$KILN_SRC/tests/integration/memory/amplify.c"
}
teardown_file() { registry_stop_all; }
setup() { kiln_setup; }
teardown() { kiln_teardown; }

PEAK_LIMIT_KB=$((150 * 1024))

# amplify_ctx DIR STEP: a busybox context with the helper as /bin/amplify
# and one RUN STEP.
amplify_ctx() {
  mkdir -p "$1"
  cp "$AMPLIFY" "$1/amplify"
  printf 'ARG BASE\nFROM $BASE\nCOPY amplify /bin/amplify\nRUN %s\n' "$2" > "$1/Dockerfile"
}

# kb_peak CTX [FLAGS...]: `run` a build of CTX; PEAK_KB = kiln's peak RSS.
kb_peak() {
  local ctx=$1
  shift
  run python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[2:], stderr=subprocess.STDOUT)
with open(sys.argv[1], "w") as f:
    f.write("%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(r.returncode)
' "$TEST_TMP/peak" "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --no-push --no-cache "$@" "$ctx"
  PEAK_KB=$(cat "$TEST_TMP/peak")
  echo "$output"
  echo "kiln peak RSS: $((PEAK_KB / 1024)) MB (bound $((PEAK_LIMIT_KB / 1024)) MB)"
}

@test "memory: a trivial build stays far below the bound the other tests use" {
  amplify_ctx "$TEST_TMP/ctx" true
  kb_peak "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  [ "$PEAK_KB" -lt $((PEAK_LIMIT_KB / 3)) ]
}

@test "memory: 1,500 nested 255-byte directories: the commit refuses paths over 4096 bytes without building one per level" {
  amplify_ctx "$TEST_TMP/ctx" 'cd /tmp && amplify deep 1500 255'
  kb_peak "$TEST_TMP/ctx"
  [ "$status" -eq 1 ]
  [[ $output == *"deep=1500"* ]]
  [[ $output == *"the step made a path longer than 4096 bytes, more than a layer can hold"* ]]
  [[ $output == *"'tmp/ddddd"* ]]
  [ "$PEAK_KB" -lt "$PEAK_LIMIT_KB" ]
}

@test "memory: 3,000 x 64 KiB xattrs on one file: ENOSPC past 16 MiB, the log says why, a full budget commits" {
  amplify_ctx "$TEST_TMP/ctx" 'touch /f && amplify xattrs /f 3000 65536'
  kb_peak "$TEST_TMP/ctx"
  # the step fails (amplify exits 3), and kiln with its status
  [ "$status" -eq 3 ]
  [[ $output == *"set=255 errno=ENOSPC"* ]]
  [[ $output == *"extended attributes would take more than 16 MiB of kiln's memory"* ]]
  [ "$PEAK_KB" -lt "$PEAK_LIMIT_KB" ]

  # a step that fills the budget and goes on: the layer carries all 255
  amplify_ctx "$TEST_TMP/ctx2" 'touch /f && (amplify xattrs /f 3000 65536 || true)'
  kb_peak "$TEST_TMP/ctx2" --oci-layout "$TEST_TMP/out:t"
  [ "$status" -eq 0 ]
  [ "$PEAK_KB" -lt "$PEAK_LIMIT_KB" ]
  local m layer
  m=$(jq -r '.manifests[0].digest' "$TEST_TMP/out/index.json")
  layer=$(jq -r '.layers[-1].digest' "$TEST_TMP/out/blobs/sha256/${m#sha256:}")
  run python3 -c '
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    for m in t:
        if m.name.lstrip("./") == "f":
            print(len([k for k in m.pax_headers if k.startswith("SCHILY.xattr.user.amplify.")]))
' "$TEST_TMP/out/blobs/sha256/${layer#sha256:}"
  echo "$output"
  [ "$output" = 255 ]
}

@test "memory: 1,000 opendirs of an 8,000-entry directory share one listing" {
  amplify_ctx "$TEST_TMP/ctx" 'mkdir /d && amplify files /d 8000 && amplify opendirs /d 1000'
  kb_peak "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  [[ $output == *"open=1000 entries=8002000"* ]]
  [ "$PEAK_KB" -lt "$PEAK_LIMIT_KB" ]
}

@test "memory: opendirs of a directory changed in between (a snapshot each): ENOMEM past 64 MiB, the log says why" {
  amplify_ctx "$TEST_TMP/ctx" 'mkdir /d && amplify files /d 8000 && amplify opendirs-churn /d 1000'
  kb_peak "$TEST_TMP/ctx"
  [ "$status" -eq 3 ]
  [[ $output =~ open=1[0-9][0-9]\ errno=ENOMEM ]]
  [[ $output == *"listings would take more than 64 MiB of kiln's memory"* ]]
  [ "$PEAK_KB" -lt "$PEAK_LIMIT_KB" ]
}
