#!/usr/bin/env bats
# kiln run --overlay: the step's root filesystem is kiln's FUSE overlay,
# mounted by the step's init inside the step's user namespace and served by
# kiln. Runs as root (full mapping onto a high host range), as a plain user
# with subuid ranges (full via newuidmap) and without them (single mode).
# Each mode: writes, chown to 1000:1000 reported with the true owner, id,
# lower files readable, host paths invisible, lower unchanged, nothing left.

load helpers

setup_file() {
  export OVL_DIR
  OVL_DIR=$(mktemp -d /tmp/kiln-sbfuse.XXXXXX)
  chmod 0755 "$OVL_DIR"
  local r=$OVL_DIR/rootfs
  mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/data"
  chmod 1777 "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
  echo "hello from the lower" > "$r/etc/greeting"
  echo "delete me" > "$r/etc/todelete"
  echo "lower data" > "$r/data/file"
  echo "host secret" > "$OVL_DIR/marker"
  chmod 0644 "$OVL_DIR/marker" "$r/etc/greeting" "$r/etc/todelete" "$r/data/file"
  lower_snapshot > "$OVL_DIR/lower.before"
}

teardown_file() {
  case "$OVL_DIR" in /tmp/kiln-sbfuse.*) rm -rf --one-file-system "$OVL_DIR" ;; esac
}

setup() {
  kiln_setup
  ROOTFS=$OVL_DIR/rootfs
  fuse_dev_open_for_all
  mkdir -p "$TEST_TMP/scratch"
}

teardown() { kiln_teardown; }

# Everything about the lower tree except access times.
lower_snapshot() {
  (cd "$OVL_DIR/rootfs" && find . -printf '%p %y %m %U:%G %s %T@ %C@ %l\n' | sort &&
    find . -type f -exec md5sum {} + | sort)
}

# refute CMD...: fail if CMD succeeds (a bare `! cmd` does not fail a bats
# test unless it is the last command).
refute() {
  if "$@"; then
    echo "unexpectedly succeeded: $*" >&2
    return 1
  fi
}

# Is any process still in mount namespace $1 ("mnt:[N]")?
mntns_alive() {
  local p
  for p in /proc/[0-9]*/ns/mnt; do
    [ "$(readlink "$p" 2>/dev/null)" = "$1" ] && return 0
  done
  return 1
}

STEP='echo "NS=$(readlink /proc/self/ns/mnt)"; id
cat /etc/greeting /data/file
echo new > /tmp/new
mkdir -p /data/sub && echo f > /data/sub/f && chown 1000:1000 /data/sub/f
echo more >> /etc/greeting
rm /etc/todelete
ls -ln /data/sub
test -e '"'"'MARKER'"'"' && echo SEES-HOST-FILE || echo host-file-invisible
ls /'

# check_step PRESENTED: the output of STEP run with --show-changes.
# PRESENTED is the owner ls -ln shows for the chowned file inside the step
# (the recorded one in every mode: single mode's supervisor answers stat).
check_step() {
  local presented=$1
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"uid=0 gid=0"* ]]
  [[ $output == *"hello from the lower"* ]]
  [[ $output == *"lower data"* ]]
  [[ $output == *"host-file-invisible"* ]]
  [[ $output != *"SEES-HOST-FILE"* ]]
  # inside the step: what the kernel shows for the chowned file
  echo "$output" | grep -E "^-rw-r--r-- +1 +$presented +$presented +2 .* f$"
  # the change list: true owners, mount points never listed
  echo "$output" | grep -Fx "add 100644 1000:1000 /data/sub/f"
  echo "$output" | grep -Fx "add 100644 0:0 /tmp/new"
  echo "$output" | grep -Fx "add 100644 0:0 /etc/greeting"
  echo "$output" | grep -Fx "add 040755 0:0 /data/sub"
  echo "$output" | grep -Fx "whiteout /etc/todelete"
  refute grep -E "^(add|whiteout|opaque) .*/(proc|dev|sys|etc/hosts|etc/hostname|etc/resolv.conf)$" <<< "$output"
  # a layer carries the parent directories of what changed (as Docker's do)
  echo "$output" | grep -Fx "add 040755 0:0 /data"
  echo "$output" | grep -Fx "add 040755 0:0 /etc"
  echo "$output" | grep -Ex "add 041777 0:0 /tmp"
  # nothing else changed
  [ "$(echo "$output" | grep -cE '^(add|link|whiteout|opaque) ')" -eq 8 ]
  # lower untouched, step's mount namespace (and the FUSE mount) gone
  lower_snapshot | diff "$OVL_DIR/lower.before" -
  local ns
  ns=$(echo "$output" | sed -n 's/^NS=//p')
  [[ $ns == mnt:* ]]
  refute mntns_alive "$ns"
}

step_script() { printf '%s' "${STEP//MARKER/$OVL_DIR/marker}"; }

@test "overlay rootfs as root (full mapping): writes, chown, true owners, lower unchanged" {
  require_root
  run env TMPDIR="$TEST_TMP/scratch" "$KILN" run --rootfs "$ROOTFS" --overlay --show-changes -- sh -c "$(step_script)"
  [[ $output == *"user namespace: full (container 0..65535 -> host "* ]]
  check_step 1000
  [ -z "$(ls -A "$TEST_TMP/scratch")" ]
}

@test "overlay rootfs as a plain user with subuid ranges (full mode via newuidmap)" {
  test_user_create kiln-t-sub --subuid
  command -v newuidmap >/dev/null || skip "newuidmap not installed"
  run run_as kiln-t-sub "$KILN" run --rootfs "$ROOTFS" --overlay --show-changes -- sh -c "$(step_script)"
  [[ $output == *"user namespace: full (container 0 -> host $TEST_UID, 1..65536 -> subuid"* ]]
  check_step 1000
  [ -z "$(ls -A "$TEST_USER_TMP" | grep kiln-run-)" ]
}

@test "overlay rootfs as a plain user without subuid ranges (single mode: true owner recorded, and shown by stat through the supervisor)" {
  test_user_create kiln-t-plain
  run run_as kiln-t-plain "$KILN" run --rootfs "$ROOTFS" --overlay --show-changes -- sh -c "$(step_script)"
  [[ $output == *"user namespace: single (container 0 -> host $TEST_UID:$TEST_GID"* ]]
  check_step 1000
  [ -z "$(ls -A "$TEST_USER_TMP" | grep kiln-run-)" ]
}

@test "single mode: chown outside the overlay is left to the kernel" {
  test_user_create kiln-t-plain
  run run_as kiln-t-plain "$KILN" run --rootfs "$ROOTFS" --overlay --show-changes -- sh -c \
    'touch /dev/shm/x; chown 0:0 /dev/shm/x && echo own-ok; chown 1000 /dev/shm/x || echo unmapped-refused'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"own-ok"* ]]
  [[ $output == *"Invalid argument"* ]]
  [[ $output == *"unmapped-refused"* ]]
  refute grep -E '^add ' <<< "$output"
}

@test "overlay rootfs as root with a non-root step user: created files owned by that user" {
  require_root
  run env TMPDIR="$TEST_TMP/scratch" "$KILN" run --rootfs "$ROOTFS" --overlay --show-changes --user 1000:1000 -- \
    sh -c 'id; touch /tmp/mine; echo x > /etc/nope || echo etc-refused'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"uid=1000 gid=1000"* ]]
  [[ $output == *"Permission denied"* ]]
  [[ $output == *"etc-refused"* ]]
  echo "$output" | grep -Fx "add 100644 1000:1000 /tmp/mine"
  lower_snapshot | diff "$OVL_DIR/lower.before" -
}

@test "overlay: a failing command gives its exit status; nothing is left" {
  require_root
  run env TMPDIR="$TEST_TMP/scratch" "$KILN" run --rootfs "$ROOTFS" --overlay -- sh -c 'echo x > /tmp/y; exit 7'
  echo "$output"
  [ "$status" -eq 7 ]
  [[ $output == *"command 'sh' exited with status 7"* ]]
  [ -z "$(ls -A "$TEST_TMP/scratch")" ]
  run "$KILN" run --rootfs "$ROOTFS" --overlay -- no-such-command
  [ "$status" -eq 1 ]
  [[ $output == *"exec 'no-such-command'"* ]]
  lower_snapshot | diff "$OVL_DIR/lower.before" -
}

@test "overlay: a failing command as a plain user (single mode)" {
  test_user_create kiln-t-plain
  run run_as kiln-t-plain "$KILN" run --rootfs "$ROOTFS" --overlay -- sh -c 'kill -9 $$'
  echo "$output"
  [ "$status" -eq 137 ]
  [[ $output == *"killed by signal 9"* ]]
}

# sigterm_mid_step PREFIX...: start a step that blocks, SIGTERM kiln, check
# that kiln reports it and that no process, mount namespace or scratch dir
# remains. PREFIX runs kiln (e.g. run_as USER).
sigterm_mid_step() {
  local scratch=$1 out=$TEST_TMP/out tag=$RANDOM$RANDOM
  shift
  "$@" "$KILN" run --rootfs "$ROOTFS" --overlay -- \
    sh -c "echo NS=\$(readlink /proc/self/ns/mnt); echo x > /tmp/f; sleep 88$tag & echo started; exec sleep 99$tag" \
    > "$out" 2>&1 &
  local pid=$! i
  for i in $(seq 1 100); do grep -q started "$out" && break; sleep 0.1; done
  grep -q started "$out"
  pgrep -f "sleep 99$tag"
  # kiln itself (the oldest; its sandbox helper and init share its cmdline)
  local kpid
  kpid=$(pgrep -o -f "^$KILN run .*99$tag")
  [ -n "$kpid" ]
  kill -TERM "$kpid"
  local rc=0
  wait "$pid" || rc=$?
  cat "$out"
  [ "$rc" -ne 0 ]
  grep -q "interrupted by signal 15 (Terminated); the step was killed" "$out"
  refute pgrep -f "sleep 99$tag"
  refute pgrep -f "sleep 88$tag"
  local ns
  ns=$(sed -n 's/^NS=//p' "$out")
  [[ $ns == mnt:* ]]
  refute mntns_alive "$ns"
  [ -z "$(ls -A "$scratch" | grep kiln-run-)" ]
  lower_snapshot | diff "$OVL_DIR/lower.before" -
}

@test "overlay: SIGTERM to kiln mid-step leaves nothing behind (root)" {
  require_root
  sigterm_mid_step "$TEST_TMP/scratch" env TMPDIR="$TEST_TMP/scratch"
}

@test "overlay: SIGTERM to kiln mid-step leaves nothing behind (plain user, single mode)" {
  test_user_create kiln-t-plain
  sigterm_mid_step "$TEST_USER_TMP" run_as kiln-t-plain
}

@test "overlay: /dev/fuse unusable by the step's root is a clear error under --isolation userns (auto uses ptrace then)" {
  require_root
  # the FUSE device, as this machine ships it (0600 root): kiln's probe
  # says so before any step starts
  mknod "$TEST_TMP/fakefuse" c 10 229
  chmod 0600 "$TEST_TMP/fakefuse"
  run unshare -m sh -c "mount --bind '$TEST_TMP/fakefuse' /dev/fuse && exec '$KILN' run --isolation userns --rootfs '$ROOTFS' --overlay -- true"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"RUN steps need '/dev/fuse' usable by the step's namespace root (not host root) (mode 0600 here; distributions ship it 0666: chmod 0666 /dev/fuse)"* ]]
  # a plain file there is not the device
  : > "$TEST_TMP/notfuse"
  run unshare -m sh -c "mount --bind '$TEST_TMP/notfuse' /dev/fuse && exec '$KILN' run --isolation userns --rootfs '$ROOTFS' --overlay -- true"
  [ "$status" -eq 1 ]
  [[ $output == *"RUN steps need '/dev/fuse', which is not a character device here"* ]]
  # auto: the same machine runs the step under ptrace isolation, saying why
  run unshare -m sh -c "mount --bind '$TEST_TMP/fakefuse' /dev/fuse && exec '$KILN' run --rootfs '$ROOTFS' --overlay -- true"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"no usable /dev/fuse"*"using --isolation=ptrace"* ]]
}

@test "overlay: single mode as root is refused with a reason; --show-changes needs --overlay" {
  require_root
  run "$KILN" run --rootfs "$ROOTFS" --overlay --userns=single -- true
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"a FUSE root filesystem in single ID mode needs kiln to run as the host user of the step's root"* ]]
  run "$KILN" run --rootfs "$ROOTFS" --show-changes -- true
  [ "$status" -eq 2 ]
  [[ $output == *"--show-changes needs --overlay"* ]]
  run "$KILN" run --help
  [[ $output == *"--overlay"* ]]
  [[ $output == *"--show-changes"* ]]
}

@test "overlay as root on the Debian fixture: useradd, chown -R, setuid bit; true owners in the change list" {
  require_root
  command -v umoci >/dev/null || skip "umoci not installed"
  local layout
  layout=$(fixtures_layout debian) || skip "Debian fixture not available (scripts/make-base-images.sh debian)"
  umoci raw unpack --image "$layout:bookworm" "$TEST_TMP/debian"
  chmod 0755 "$TEST_TMP/debian"
  local before
  before=$(cd "$TEST_TMP/debian" && find . -printf '%p %m %U:%G %s %T@\n' | sort | md5sum)
  run env TMPDIR="$TEST_TMP/scratch" "$KILN" run --rootfs "$TEST_TMP/debian" --overlay --show-changes -- sh -c \
    'useradd -m app && chown -R app:app /home/app && touch /usr/local/bin/x && chmod 4755 /usr/local/bin/x && id app'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"uid=1000(app) gid=1000(app) groups=1000(app)"* ]]
  echo "$output" | grep -Fx "add 040755 1000:1000 /home/app"
  echo "$output" | grep -Fx "add 100644 1000:1000 /home/app/.bashrc"
  echo "$output" | grep -Fx "add 104755 0:0 /usr/local/bin/x"
  echo "$output" | grep -Fx "add 100640 0:42 /etc/shadow"
  [ "$before" = "$(cd "$TEST_TMP/debian" && find . -printf '%p %m %U:%G %s %T@\n' | sort | md5sum)" ]
  rm -rf --one-file-system "$TEST_TMP/debian"
}

@test "overlay: the POSIX behaviour suite (tests/unit/test_overlay.c, test_overlay_layers.c) passes as a plain user too" {
  # make test runs them as root with the unit tests; here the same binaries
  # run unprivileged (they enter a user namespace mapping the uid to 0).
  local t bin
  fuse_dev_open_for_all
  test_user_create kplain
  for t in test_overlay test_overlay_layers; do
    bin="$KILN_SRC/build/tests/$t"
    [ -x "$bin" ] || { echo "missing $bin: run make unit-bins"; false; }
    run run_as kplain "$bin"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ $output == *"[  PASSED  ]"* ]]
    [[ $output != *"[  FAILED  ]"* ]]
  done
  [[ $output == *"[       OK ] test_property_random_sequences"* ]]
  [[ $output == *"[       OK ] test_add_layers_random"* ]]
}
