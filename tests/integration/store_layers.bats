#!/usr/bin/env bats
# The layer store against hostile and foreign input, through the real pull
# path (`kiln pull --store` from docker-registry on loopback):
# - a tar bomb of a million empty files is refused at the per-layer entry
#   limit (KILN_MAX_LAYER_ENTRIES, lowered here so the test stays fast), with
#   the layer named, nothing published, no temp dir, nothing outside the store
#   and memory that depends on the limit, not on the bomb;
# - images made by other tools (buildah, umoci) with whiteouts, opaque
#   directories, hardlinks, setuid files and file capabilities are extracted
#   by kiln's store, written back as layers by kiln's layer writer and
#   compared member by member with independent tar readers.
load helpers

setup() {
  kiln_setup
  STORE=$TEST_TMP/store
}
teardown() { kiln_teardown; }

pull_store() { # REF [ARGS...]
  local ref=$1
  shift
  "$KILN" pull --insecure-registry "$REGISTRY" --store --root "$STORE" "$ref" "$@" 2>&1
}

# push_layers NAME LAYER...: an image made of these blobs, pushed by skopeo.
push_layers() {
  local name=$1
  shift
  python3 "$KILN_SRC/tests/store/mkimage.py" "$TEST_TMP/layout" "$name" "$@" >/dev/null
  skopeo copy -q --dest-tls-verify=false "oci:$TEST_TMP/layout:$name" "docker://$REGISTRY/test/$name:1"
}

# max_rss_kb CMD...: run CMD (output to $TEST_TMP/cmd.out), print its peak RSS
# in KB, return its exit status.
max_rss_kb() {
  python3 -c '
import resource, subprocess, sys
with open(sys.argv[1], "wb") as out:
    rc = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)' "$TEST_TMP/cmd.out" "$@"
}

store_untouched() {
  [ -z "$(ls -A "$STORE/layers/sha256")" ] || { ls -la "$STORE/layers/sha256"; return 1; }
  [ -z "$(ls -A "$STORE/diffids/sha256")" ] || { ls -la "$STORE/diffids/sha256"; return 1; }
  [ -z "$(ls -A "$STORE/tmp")" ] || { ls -la "$STORE/tmp"; return 1; }
}

@test "tar bomb: a million empty files is refused at the entry limit, nothing left behind" {
  registry_start
  t0=$SECONDS
  python3 "$KILN_SRC/tests/store/mkbomb.py" 1000000 "$TEST_TMP/bomb.tar.gz"
  # 1,000,000 files + 1,000 directories, as GNU tar sees the stream.
  [ "$(zcat "$TEST_TMP/bomb.tar.gz" | wc -c)" -eq $((1001000 * 512 + 1024)) ]
  [ "$(zcat "$TEST_TMP/bomb.tar.gz" | tar -tvf - 2>/dev/null | head -3 | awk '{print $1, $6}' | tr '\n' ' ')" = \
    "drwxr-xr-x bomb/d0000/ -rw-r--r-- bomb/d0000/f0000000 -rw-r--r-- bomb/d0000/f0000001 " ]
  push_layers bomb "$TEST_TMP/bomb.tar.gz"
  layer=sha256:$(sha256sum < "$TEST_TMP/bomb.tar.gz" | cut -d' ' -f1)
  echo "# bomb made and pushed in $((SECONDS - t0)) s" >&3

  mkdir "$TEST_TMP/cwd"
  cd "$TEST_TMP/cwd"
  t0=$SECONDS
  KILN_MAX_LAYER_ENTRIES=10000 run max_rss_kb "$KILN" pull --insecure-registry "$REGISTRY" --store \
    --root "$STORE" "$REGISTRY/test/bomb:1"
  echo "# refused after $((SECONDS - t0)) s, peak RSS ${lines[-1]} KB" >&3
  cat "$TEST_TMP/cmd.out"
  [ "$status" -eq 1 ]
  grep -q "layer $layer" "$TEST_TMP/cmd.out"
  grep -q "layer has more than 10000 members (a tar bomb?); set KILN_MAX_LAYER_ENTRIES" "$TEST_TMP/cmd.out"
  # Memory follows the limit, not the million members behind it.
  [ "${lines[-1]}" -lt 100000 ]
  store_untouched
  [ ! -e "$STORE/blobs/sha256/${layer#sha256:}" ]
  [ -z "$(ls -A "$TEST_TMP/cwd")" ]
  # Not one member of the bomb exists anywhere under the test's directory.
  [ -z "$(find "$TEST_TMP" -name 'f00*' -print -quit)" ]
}

@test "tar bomb: the entry limit is exact and KILN_MAX_LAYER_ENTRIES is validated" {
  registry_start
  # 5,000 files in 5 directories: 5,005 members.
  python3 "$KILN_SRC/tests/store/mkbomb.py" 5000 "$TEST_TMP/small.tar.gz" --dirs 5
  push_layers small "$TEST_TMP/small.tar.gz"
  KILN_MAX_LAYER_ENTRIES=5004 run pull_store "$REGISTRY/test/small:1"
  [ "$status" -eq 1 ]
  [[ $output == *"layer has more than 5004 members"* ]]
  store_untouched
  for bad in abc 0 -1 12x 99999999999999999999 4294967295; do
    KILN_MAX_LAYER_ENTRIES=$bad run pull_store "$REGISTRY/test/small:1"
    [ "$status" -eq 1 ]
    [[ $output == *"invalid KILN_MAX_LAYER_ENTRIES '$bad'"* ]]
  done
  KILN_MAX_LAYER_ENTRIES=5005 run pull_store "$REGISTRY/test/small:1"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  diff=$(cat "$STORE"/diffids/sha256/*)
  [ "$(find "$STORE/layers/sha256/${diff#sha256:}/tree" -type f | wc -l)" -eq 5000 ]
  [ -z "$(ls -A "$STORE/tmp")" ]
}
