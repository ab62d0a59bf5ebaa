#!/usr/bin/env bats
# The step sandbox from inside: escape attempts (each checked for its errno),
# ID modes, /proc /dev /sys layout, exit reporting, signals and leaks.
# Runs as root, as a plain user without subuid ranges and as one with them.

load helpers

setup_file() {
  export SBX_DIR
  SBX_DIR=$(mktemp -d /tmp/kiln-sbx.XXXXXX)
  chmod 0755 "$SBX_DIR"
  local r=$SBX_DIR/rootfs
  mkdir -p "$r/bin" "$r/proc" "$r/dev" "$r/sys" "$r/etc" "$r/tmp"
  : > "$r/etc/resolv.conf"; : > "$r/etc/hosts"; : > "$r/etc/hostname"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
  gcc -static -O1 -o "$r/bin/escape" "$KILN_SRC/tests/integration/sandbox/escape.c"
  echo "host secret" > "$SBX_DIR/marker"
  chmod 0644 "$SBX_DIR/marker"
}

teardown_file() {
  case "$SBX_DIR" in /tmp/kiln-sbx.*) rm -rf --one-file-system "$SBX_DIR" ;; esac
}

setup() { kiln_setup; ROOTFS=$SBX_DIR/rootfs; }
teardown() { kiln_teardown; }

# expect OUTPUT NAME ALLOWED...: NAME=<one of ALLOWED> must be in OUTPUT.
expect() {
  local out=$1 name=$2 got
  shift 2
  got=$(printf '%s\n' "$out" | sed -n "s/^$name=//p")
  for a in "$@"; do [ "$got" = "$a" ] && return 0; done
  echo "escape attempt '$name' gave '$got', expected one of: $*" >&2
  return 1
}

check_escape_output() {
  local out=$1
  for n in mount umount unshare_user unshare_mnt setns pivot_root keyctl add_key bpf \
    perf_event_open init_module finit_module kexec_load mknod_disk open_by_handle_at \
    io_uring_setup socket_vsock socket_alg sethostname clock_settime reboot swapon acct iopl \
    userfaultfd; do
    expect "$out" $n EPERM
  done
  expect "$out" ptrace_host ESRCH
  expect "$out" kill_host ESRCH
  expect "$out" read_kcore ENOENT empty EACCES
  expect "$out" read_host_file ENOENT
  expect "$out" write_proc_sys EROFS EACCES
  expect "$out" write_sysrq EROFS EACCES ENOENT
  expect "$out" symlink_host_file ENOENT
  expect "$out" proc_self_root ENOENT
  expect "$out" proc_1_root ENOENT EACCES
  # chroot is allowed to root with CAP_SYS_CHROOT (as in Docker) but must
  # stay inside the step's root; without the capability it is EPERM.
  expect "$out" chroot ok EPERM
  if printf '%s\n' "$out" | grep -q '^chroot=ok'; then
    expect "$out" chroot_escape contained
  fi
}

@test "escape attempts fail as root (full mapping onto a high host range)" {
  require_root
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly -- escape "$SBX_DIR/marker" $$
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"user namespace: full (container 0..65535 -> host "* ]]
  check_escape_output "$output"
  expect "$output" chroot ok
  [ "$(cat "$SBX_DIR/marker")" = "host secret" ]
}

@test "escape attempts fail as a non-root user inside the step" {
  require_root
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly --user 1000:1000 -- escape "$SBX_DIR/marker" $$
  echo "$output"
  [ "$status" -eq 0 ]
  check_escape_output "$output"
  expect "$output" chroot EPERM
}

@test "escape attempts fail as root in single mode" {
  require_root
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly --userns=single -- escape "$SBX_DIR/marker" $$
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"user namespace: single"* ]]
  check_escape_output "$output"
}

@test "escape attempts fail as a plain user without subuid ranges (single mode)" {
  test_user_create kiln-t-plain
  run run_as kiln-t-plain "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly -- escape "$SBX_DIR/marker" $$
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"user namespace: single (container 0 -> host $TEST_UID:$TEST_GID"* ]]
  check_escape_output "$output"
}

@test "escape attempts fail as a plain user with subuid ranges (full mode via newuidmap)" {
  test_user_create kiln-t-sub --subuid
  command -v newuidmap >/dev/null || skip "newuidmap not installed"
  run run_as kiln-t-sub "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly -- sh -c \
    "cat /proc/self/uid_map; escape $SBX_DIR/marker $$"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"user namespace: full (container 0 -> host $TEST_UID, 1..65536 -> subuid"* ]]
  check_escape_output "$output"
  run run_as kiln-t-sub "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly --user 1234:1234 -- id
  [ "$status" -eq 0 ]
  [[ $output == *"uid=1234 gid=1234"* ]]
}

@test "--userns=full as a plain user without ranges is a clear error" {
  test_user_create kiln-t-plain
  run run_as kiln-t-plain "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly --userns=full -- true
  [ "$status" -eq 1 ]
  [[ $output == *"--userns=full needs ranges in /etc/subuid and /etc/subgid for user 'kiln-t-plain'"* ]]
}

@test "root mapping never uses host uid 0 and the step's ids are set" {
  require_root
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly -- sh -c 'cat /proc/self/uid_map /proc/self/gid_map | tr -s " "'
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(printf '%s\n' "$output" | grep -cx ' 0 1879048192 65536')" -eq 2 ]
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly --user 1000:1001 -- sh -c 'id -u; id -g; umask'
  [ "$status" -eq 0 ]
  [[ $output == *$'1000\n1001\n0022'* ]]
}

@test "capabilities: Docker's default set for root, none for other users; no_new_privs set" {
  require_root
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly -- grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"CapEff:"*"00000000a80425fb"* ]]
  [[ $output == *"CapBnd:"*"00000000a80425fb"* ]]
  [[ $output == *"NoNewPrivs:"*"1"* ]]
  [[ $output == *"Seccomp:"*"2"* ]]
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly --user 1000 -- grep -E '^Cap(Eff|Bnd|Prm):' /proc/self/status
  echo "$output"
  [ "$(printf '%s\n' "$output" | grep -c '0000000000000000')" -eq 3 ]
}

@test "mount layout: masked and read-only /proc paths, /dev, /sys read-only, generated /etc files" {
  require_root
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly --hostname stepbox -- sh -c \
    'echo "keys=$(cat /proc/keys | wc -c)"; grep -E " /proc/sys | /sys | /dev/pts | /dev/shm " /proc/self/mounts; ls /dev; hostname; cat /etc/hostname; grep stepbox /etc/hosts; echo x > /sys/x 2>&1; echo x > /proc/sys/vm/x 2>&1; true'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *$'\n'"proc /proc/sys proc ro,"* || $output == *"proc /proc/sys proc ro,"* ]]
  [[ $output == *"/sys sysfs ro,"* || $output == *" /sys sysfs ro,"* ]]
  [[ $output == *"devpts /dev/pts devpts"* ]]
  for d in null zero full random urandom tty pts shm fd stdin stdout stderr ptmx; do
    printf '%s\n' "$output" | grep -qx "$d"
  done
  [ "$(printf '%s\n' "$output" | grep -cx stepbox)" -eq 2 ]
  [[ $output == *"127.0.1.1	stepbox"* ]]
  [[ $output == *"keys=0"* ]]
  # the mask files left nothing behind in /dev
  ! printf '%s\n' "$output" | grep -q '^\.kiln' || false
}

@test "--network=none gives a namespace with only loopback, up" {
  require_root
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly --network=none -- sh -c 'echo "ifaces=$(ls /sys/class/net | tr "\n" " ")"; echo "flags=$(cat /sys/class/net/lo/flags)"'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"ifaces=lo "* ]]
  [[ $output == *"flags=0x9"* ]]
}

@test "exit status and terminating signal are reported; stdout and stderr streamed" {
  require_root
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly -- sh -c 'echo out; echo err >&2; exit 2'
  [ "$status" -eq 2 ]
  [[ $output == *"out"* && $output == *"err"* ]]
  [[ $output == *"command 'sh' exited with status 2"* ]]
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly -- sh -c 'kill -9 $$'
  [ "$status" -eq 137 ]
  [[ $output == *"killed by signal 9"* ]]
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly -- /nonexistent
  [ "$status" -eq 1 ]
  [[ $output == *"exec '/nonexistent'"*"No such file or directory"* ]]
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly -w /nope -- true
  [ "$status" -eq 1 ]
  [[ $output == *"chdir to working directory '/nope'"* ]]
}

@test "background processes do not survive the step" {
  require_root
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly -- sh -c 'sleep 987654 & echo started'
  [ "$status" -eq 0 ]
  sleep 0.2
  ! (pgrep -x sleep -a | grep -q 987654) || false
}

@test "seccomp: unconfined is logged, a bad profile names file and location" {
  require_root
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly --seccomp-policy=unconfined -- grep Seccomp: /proc/self/status
  [ "$status" -eq 0 ]
  [[ $output == *"seccomp disabled"* ]]
  [[ $output == *"Seccomp:"*"0"* ]]
  echo '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid"],"action":"SCMP_ACT_BOGUS"}]}' > "$TEST_TMP/p.json"
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly --seccomp-policy "$TEST_TMP/p.json" -- true
  [ "$status" -eq 1 ]
  [[ $output == *"seccomp profile '$TEST_TMP/p.json': syscalls[0].action: unknown action 'SCMP_ACT_BOGUS'"* ]]
  # A custom profile is really applied.
  echo '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}' > "$TEST_TMP/p.json"
  run "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly --seccomp-policy "$TEST_TMP/p.json" -- mkdir /dev/shm/d
  [ "$status" -eq 1 ]
  [[ $output == *"Permission denied"* ]]
}

@test "mount points kiln creates in a writable rootfs are removed afterwards" {
  require_root
  local r=$TEST_TMP/rw
  mkdir -p "$r/bin"
  cp /bin/busybox "$r/bin/"
  ln -s busybox "$r/bin/sh"
  ln -s busybox "$r/bin/ls"
  run "$KILN" run --rootfs "$r" -- sh -c 'ls /proc/self/ns >/dev/null && ls /etc'
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(ls "$r")" = "bin" ]
}

@test "no leaks: 200 consecutive runs leave no process, mount or temp dir" {
  require_root
  # Mounts are compared by what they name, not by count: other work on this
  # machine (buildah, other tests) mounts and unmounts meanwhile.
  local mounts_before
  mounts_before=$(grep -c -e "$ROOTFS" -e "$TEST_TMP" -e fuse.kiln /proc/self/mountinfo || true)
  # kiln creates no temporary files; a private TMPDIR shows any that appear
  # (/tmp itself is shared with other concurrent work on this machine).
  mkdir "$TEST_TMP/tmpdir"
  for i in $(seq 200); do
    TMPDIR=$TEST_TMP/tmpdir "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly --verbosity=error -- true || { echo "run $i failed"; return 1; }
  done
  [ "$(grep -c -e "$ROOTFS" -e "$TEST_TMP" -e fuse.kiln /proc/self/mountinfo || true)" -eq "$mounts_before" ]
  [ -z "$(ls -A "$TEST_TMP/tmpdir")" ]
  ! pgrep -f "$ROOTFS" || false
}

@test "SIGKILL of kiln mid-step leaves no process; SIGTERM kills the step and reports it" {
  require_root
  "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly -- sleep 876543 3>&- &
  local pid=$!
  for i in $(seq 50); do pgrep -x sleep -a | grep -q 876543 && break; sleep 0.1; done
  pgrep -x sleep -a | grep -q 876543
  kill -KILL "$pid"
  wait "$pid" || true
  for i in $(seq 50); do pgrep -x sleep -a | grep -q 876543 || break; sleep 0.1; done
  ! (pgrep -x sleep -a | grep -q 876543) || false
  "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly -- sleep 876544 > "$TEST_TMP/term.log" 2>&1 3>&- &
  pid=$!
  for i in $(seq 50); do pgrep -x sleep -a | grep -q 876544 && break; sleep 0.1; done
  kill -TERM "$pid"
  local st=0
  wait "$pid" || st=$?
  [ "$st" -eq 143 ]
  grep -q "interrupted by signal 15" "$TEST_TMP/term.log"
  ! (pgrep -x sleep -a | grep -q 876544) || false
  # a rerun works
  "$KILN" run --rootfs "$ROOTFS" --rootfs-readonly -- true
}

@test "single mode: chown family answered by the supervisor, id from its credentials table" {
  test_user_create kiln-t-plain
  run run_as kiln-t-plain "$KILN" run -v debug --rootfs "$ROOTFS" --rootfs-readonly -- sh -c \
    'cd /bin && chown 1000:1001 busybox; echo "chown=$?"; chown -h 5:5 sh; echo "lchown=$?";
     cd /etc && chown 3:3 ../bin/ls; echo "rel=$?"; chown 7 /nonexist 2>/dev/null; echo "missing=$?";
     echo "id=$(id -u)"'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"chown=0"* && $output == *"lchown=0"* && $output == *"rel=0"* && $output == *"missing=1"* ]]
  [[ $output == *"chown 'busybox' to 1000:1001 recorded"* ]]
  [[ $output == *"chown 'sh' to 5:5 recorded"* ]]
  [[ $output == *"chown '../bin/ls' to 3:3 recorded"* ]]
  [[ $output == *"id=0"* ]]
  # nothing changed on the host
  [ "$(stat -c %u "$ROOTFS/bin/busybox")" -eq 0 ]
}
