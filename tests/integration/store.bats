#!/usr/bin/env bats
# kiln prune and the store location, through the CLI. Extraction, packing,
# publication, concurrency, kill -9 and root-vs-user equality are covered by
# the unit tests test_extract / test_layer_writer / test_layer_index.

load helpers

setup() { kiln_setup; }
teardown() { kiln_teardown; }

@test "prune: empty store, --root, --dry-run reports space" {
  run "$KILN" prune --root "$TEST_TMP/store" --dry-run
  [ "$status" -eq 0 ]
  [[ $output == *"would remove 0 blobs, 0 layers"* ]]
  [[ $output == *"would free"* ]]
  [ -d "$TEST_TMP/store/layers/sha256" ]
  [ -d "$TEST_TMP/store/blobs/sha256" ]
  [ "$(stat -c %a "$TEST_TMP/store")" = 700 ]
}

@test "prune: removes stale temp dirs and unreferenced layers; --all" {
  root=$TEST_TMP/store
  "$KILN" prune --root "$root"
  mkdir -p "$root/tmp/layer-123-abc/tree/x" "$root/layers/sha256/$(printf 'a%.0s' {1..64})/tree"
  echo data > "$root/tmp/layer-123-abc/tree/x/f"
  run "$KILN" prune --root "$root" --dry-run
  [ "$status" -eq 0 ]
  [[ $output == *"would remove 0 blobs, 1 layers"* ]]
  [ -d "$root/layers/sha256/$(printf 'a%.0s' {1..64})" ]
  KILN_ROOT=$root run "$KILN" prune
  [ "$status" -eq 0 ]
  [[ $output == *"removed 0 blobs, 1 layers"* ]]
  [ -z "$(ls -A "$root/layers/sha256")" ]
  [ -z "$(ls -A "$root/tmp")" ]
  run "$KILN" prune --root "$root" --all
  [ "$status" -eq 0 ]
}

@test "prune: refuses to run while another kiln holds the store" {
  root=$TEST_TMP/store
  "$KILN" prune --root "$root"
  # Hold a shared OFD lock on the store lock as a running build does
  # (flock(1) cannot: flock(2) locks do not conflict with fcntl/OFD locks).
  python3 -c '
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
F_OFD_SETLK = 37
fcntl.fcntl(fd, F_OFD_SETLK, struct.pack("hhqqi", fcntl.F_RDLCK, 0, 0, 0, 0))
print("locked", flush=True)
time.sleep(30)' "$root/lock" > "$TEST_TMP/locker.out" &
  locker=$!
  for _ in $(seq 50); do grep -q locked "$TEST_TMP/locker.out" && break; sleep 0.1; done
  run "$KILN" prune --root "$root"
  kill "$locker"; wait "$locker" || true
  [ "$status" -eq 1 ]
  [[ $output == *"in use by another kiln process"* ]]
}

@test "prune: default store under XDG_DATA_HOME / HOME as a plain user" {
  require_root "creates a test user"
  test_user_create kilnstore
  run run_as "$TEST_USER" env -u KILN_ROOT -u XDG_DATA_HOME "$KILN" prune
  [ "$status" -eq 0 ]
  [ -d "$TEST_HOME/.local/share/kiln/layers/sha256" ]
  [ "$(stat -c %U "$TEST_HOME/.local/share/kiln")" = "$TEST_USER" ]
  run run_as "$TEST_USER" env -u KILN_ROOT XDG_DATA_HOME="$TEST_USER_TMP/xdg" "$KILN" prune --all
  [ "$status" -eq 0 ]
  [ -d "$TEST_USER_TMP/xdg/kiln/tmp" ]
}

@test "prune: bad usage exits 2" {
  run "$KILN" prune --root "$TEST_TMP/s" extra
  [ "$status" -eq 2 ]
  [[ $output == *"unexpected argument 'extra'"* ]]
}
