#!/usr/bin/env bats
# kiln run --isolation ptrace (src/sandbox/tracer*.c) where user namespaces,
# mounts and /dev/fuse are denied: under tests/tools/container-env "docker"
# (root, Docker's default capabilities and seccomp allow-list) and
# "restricted" (uid 1000, no capabilities, no_new_privs, same allow-list),
# on a busybox root and a Debian minbase root (dynamically linked programs).
# For "restricted" the roots are copies owned by uid 1000.

load helpers

setup_file() {
  require_root
  export TR_DIR
  TR_DIR=$(mktemp -d /tmp/kiln-tracer.XXXXXX)
  chmod 0755 "$TR_DIR"
  local r=$TR_DIR/bb-docker
  mkdir -p "$r/bin" "$r/etc" "$r/tmp"
  chmod 1777 "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
  gcc -static -O1 -o "$r/bin/escape" "$KILN_SRC/tests/integration/sandbox/escape.c"
  echo 'NAME="kiln busybox root"' > "$r/etc/os-release"
  mkdir -p "$TR_DIR/deb-docker"
  tar -C "$TR_DIR/deb-docker" -xf "$KILN_TEST_CACHE/rootfs/debian-r2-bookworm-minbase.tar"
  for x in bb deb; do
    cp -a "$TR_DIR/$x-docker" "$TR_DIR/$x-restricted"
    chown -R 1000:1000 "$TR_DIR/$x-restricted"
  done
  echo "host secret" > "$TR_DIR/secret"
  chmod 0644 "$TR_DIR/secret"
}

teardown_file() {
  case "${TR_DIR:-}" in /tmp/kiln-tracer.*) rm -rf --one-file-system "$TR_DIR" ;; esac
}

setup() {
  kiln_setup
  require_root
  CENV=$(dirname "$KILN")/tools/container-env
  [ -x "$CENV" ] || CENV=$KILN_SRC/build/tools/container-env
  export KILN_POLICY_DIR=${KILN_POLICY_DIR:-$KILN_SRC/policies}
}
teardown() { kiln_teardown; }

# prun ENV ROOT [KILN RUN FLAGS...] -- CMD...: kiln run --isolation ptrace
# on $TR_DIR/ROOT-ENV inside container-env ENV, with a secret in kiln's
# environment.
prun() {
  echo "prun $*" >&2
  local env=$1 root=$TR_DIR/$2-$1
  shift 2
  run "$CENV" "$env" -- env KILN_TEST_SECRET=hunter2 "$KILN" run --isolation ptrace --network host --rootfs "$root" "$@"
  printf "%s\n" "$output" >&2
}

@test "tracer: id is the fake root, -u sets the fake ids" {
  for e in docker restricted; do
    prun $e bb -- sh -c 'id -u; id -g'
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = 0 ]
    [ "${lines[1]}" = 0 ]
    prun $e deb -u 1000:1000 -- id
    [ "$status" -eq 0 ]
    [[ $output == *"uid=1000 gid=1000"* ]]
    # setgid/setuid by the fake root, then no way back (the kernel's rules)
    prun $e deb -- perl -e '$( = $) = 45; $< = $> = 123; print "$< $> ", $( + 0, "\n"; $> = 0; print "back=$>\n"'
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "123 123 45" ]
    [ "${lines[1]}" = "back=123" ]
  done
}

@test "tracer: the root's files, not the host's" {
  for e in docker restricted; do
    prun $e deb -- cat /etc/os-release
    [ "$status" -eq 0 ]
    [[ $output == *'ID=debian'* ]]
    [[ $output == *'VERSION_CODENAME=bookworm'* ]]
    prun $e bb -- cat /etc/os-release
    [ "$status" -eq 0 ]
    [[ $output == *'kiln busybox root'* ]]
  done
}

@test "tracer: dynamic programs, #! scripts and #!/usr/bin/env" {
  for e in docker restricted; do
    prun $e deb -- sh -c '
      /bin/ls -d /usr/lib && /usr/bin/env X=1 sh -c "echo env \$X"
      printf "#!/bin/sh\necho script \"\$0\" \"\$@\"\n" > /tmp/s && chmod +x /tmp/s && /tmp/s a b
      printf "#!/usr/bin/env sh\necho envsh \"\$0\" \"\$@\"\n" > /tmp/t && chmod +x /tmp/t && cd /tmp && ./t c
      printf "#!/bin/sh -e\necho opt \$-\n" > /tmp/u && chmod +x /tmp/u && /tmp/u
      echo noexec > /tmp/n && chmod +x /tmp/n && /tmp/n; echo "n=$?"
      chmod -x /tmp/s; /tmp/s; echo "s=$?"
      /nonexistent; echo "x=$?"'
    [ "$status" -eq 0 ]
    [[ ${lines[0]} == /usr/lib ]]
    [[ $output == *"env 1"* ]]
    [[ $output == *"script /tmp/s a b"* ]]
    [[ $output == *"envsh ./t c"* ]]
    [[ $output == *"opt "*e* ]]
    [[ $output == *"s=126"* ]]
    [[ $output == *"x=127"* ]]
    # ld.so knows --argv0 (glibc 2.36): the program sees its own argv[0]
    prun $e deb -- bash -c 'echo "argv0=$0"'
    [[ $output == *"argv0=bash"* ]]
  done
}

@test "tracer: relative paths, cd, .. above / and absolute symlinks stay in the root" {
  for e in docker restricted; do
    prun $e bb -w /tmp -- sh -c '
      mkdir -p d/e && cd d/e && pwd && cd ../../.. && pwd
      cd /../../.. && pwd && cat ../../../etc/os-release
      echo data > /tmp/f && ln -s /tmp/f /tmp/abs && cat /tmp/abs
      ln -s / /tmp/rl && cat /tmp/rl/etc/os-release && cat /tmp/rl/../../etc/os-release
      readlink /proc/self/cwd; cd /tmp/d && readlink /proc/self/cwd && ls -l /proc/self/cwd | sed "s/.*-> //"'
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = /tmp/d/e ]
    [ "${lines[1]}" = / ]
    [ "${lines[2]}" = / ]
    [[ ${lines[3]} == *'kiln busybox root'* ]]
    [ "${lines[4]}" = data ]
    [[ ${lines[5]} == *'kiln busybox root'* ]]
    [[ ${lines[6]} == *'kiln busybox root'* ]]
    [ "${lines[7]}" = / ]
    [ "${lines[8]}" = /tmp/d ]
    [ "${lines[9]}" = /tmp/d ]
  done
}

@test "tracer: pipes, forks and threads" {
  for e in docker restricted; do
    prun $e deb -- sh -c 'seq 200000 | sort -n -r --parallel=4 -S 2M | head -1; (echo a; echo b) | wc -l; for i in 1 2 3; do (echo sub$i) & done; wait'
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = 200000 ]
    [ "${lines[1]}" = 2 ]
    [[ $output == *sub1* && $output == *sub3* ]]
  done
}

@test "tracer: mkdir, rm, mv, ln -s; chown is remembered within the run" {
  for e in docker restricted; do
    prun $e deb -- sh -c '
      cd /tmp && mkdir a && touch a/f && mv a/f a/g && ln -s g a/l && ls a && readlink a/l
      rm a/l a/g && rmdir a && ls -d a 2>&1
      touch f && stat -c %u:%g f && chown 123:45 f && stat -c %u:%g f && chown :7 f && stat -c %u:%g f
      chmod 0640 f && stat -c %a f && touch -d @1000000000 f && stat -c %Y f'
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = g ]
    [ "${lines[1]}" = l ]
    [ "${lines[2]}" = g ]
    [[ ${lines[3]} == *"No such file"* ]]
    [ "${lines[4]}" = 0:0 ]
    [ "${lines[5]}" = 123:45 ]
    [ "${lines[6]}" = 123:7 ]
    [ "${lines[7]}" = 640 ]
    [ "${lines[8]}" = 1000000000 ]
  done
}

@test "tracer: exit status and signals propagate; nothing outlives the step" {
  for e in docker restricted; do
    prun $e bb -- sh -c 'exit 7'
    [ "$status" -eq 7 ]
    prun $e bb -- sh -c 'kill -9 $$'
    [ "$status" -eq 137 ]
    prun $e bb -- sh -c 'sleep 1017 & sleep 1018 </dev/null >/dev/null 2>&1 & echo started'
    [ "$status" -eq 0 ]
    [ "$output" = started ]
    processes_gone -f 'sleep 101[78]'
  done
}

@test "tracer: SIGTERM to kiln kills the step and names the signal" {
  "$CENV" restricted -- "$KILN" run --isolation ptrace --rootfs "$TR_DIR/bb-restricted" -- sh -c 'sleep 1019 & sleep 1020' \
    > "$TEST_TMP/out" 2>&1 &
  local pid=$!
  for _ in $(seq 50); do pgrep -f '^sleep 1020$' >/dev/null && break; sleep 0.1; done
  pkill -TERM -f "^$KILN run --isolation ptrace --rootfs $TR_DIR/bb-restricted"
  local rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq 143 ]
  grep -q 'interrupted by signal 15' "$TEST_TMP/out"
  processes_gone -f 'sleep 10(19|20)'
}

@test "tracer: files outside the root cannot be read" {
  local s=$TR_DIR/secret
  for e in docker restricted; do
    prun $e bb -- sh -c "
      cat $s || echo abs-denied
      cat ../../../../../..$s || echo dotdot-denied
      ln -s / /tmp/up && cat /tmp/up$s || echo symlink-denied
      cat /proc/1/root$s || echo proc1-denied
      cat /proc/self/root$s || echo procself-denied
      cat /proc/\$PPID/cwd/secret /proc/\$PPID/root$s || echo kilncwd-denied
      readlink /proc/\$PPID/fd/0 || cat /proc/\$PPID/fd/0 || echo kilnfd-denied
      cat /proc/\$PPID/environ || echo environ-denied
      dd if=/proc/\$PPID/mem bs=1 count=1 skip=4194304 || echo mem-denied
      grep -c hunter2 /proc/self/environ || echo no-secret-here"
    [[ $output != *"host secret"* ]]
    [[ $output != *hunter2* ]]
    for w in abs dotdot symlink proc1 procself kilncwd kilnfd environ mem; do
      [[ $output == *"$w-denied"* ]] || { echo "missing: $w-denied"; false; }
    done
    [[ $output == *"no-secret-here"* ]]
  done
}

@test "tracer: kiln and other processes cannot be signalled" {
  for e in docker restricted; do
    prun $e bb -- sh -c 'kill -0 $PPID && echo reached; kill -9 $PPID; kill -9 1 2>/dev/null; echo alive'
    [ "$status" -eq 0 ]
    [[ $output != *reached* ]]
    [[ $output == *alive* ]]
  done
}

@test "tracer: a read-only file owned by another uid stays unchanged; chmod outside the root is refused" {
  for e in docker restricted; do
    local r=$TR_DIR/bb-$e
    echo original > "$r/ro"
    chown 4242:4242 "$r/ro"
    chmod 0444 "$r/ro"
    echo outside > "$TR_DIR/out-$e"
    chmod 0644 "$TR_DIR/out-$e"
    prun $e bb -- sh -c "echo pwned > /ro || echo write-denied; chmod 0666 /ro || echo chmod-denied
      echo pwned > /ro || echo write2-denied; ln -s $TR_DIR/out-$e /tmp/o; chmod 0777 /tmp/o; echo x >> /tmp/o
      ln -s /proc/self/root$TR_DIR/out-$e /tmp/p; chmod 0777 /tmp/p || echo chmod-proc-denied; echo y > /tmp/p || echo write-proc-denied"
    [[ $output == *write-denied* && $output == *chmod-denied* && $output == *write2-denied* ]]
    [[ $output == *chmod-proc-denied* && $output == *write-proc-denied* ]]
    [ "$(cat "$r/ro")" = original ]
    [ "$(stat -c %a "$r/ro")" = 444 ]
    [ "$(cat "$TR_DIR/out-$e")" = outside ]
    [ "$(stat -c %a "$TR_DIR/out-$e")" = 644 ]
    rm -f "$r/ro" "$TR_DIR/out-$e"
  done
}

@test "tracer: escape attempts fail (io_uring, ptrace, mount, unshare, chroot)" {
  for e in docker restricted; do
    prun $e bb -- sh -c 'escape /tmp/../../secret $PPID'
    [ "$status" -eq 0 ]
    for want in mount=EPERM unshare_user=EPERM unshare_mnt=EPERM pivot_root=EPERM ptrace_host=EPERM \
      kill_host=EPERM io_uring_setup=EPERM open_by_handle_at=EPERM chroot=EPERM swapon=EPERM acct=EPERM \
      userfaultfd=EPERM; do
      [[ $output == *"$want"* ]] || { echo "missing: $want"; false; }
    done
  done
}

@test "tracer: --network none refuses internet sockets" {
  prun restricted bb --network none -- sh -c 'nc -w 1 127.0.0.1 1 </dev/null 2>&1; echo done'
  [[ $output == *"Address family not supported"* ]]
}

@test "tracer: --isolation auto falls back to ptrace where user namespaces are denied, saying why" {
  run "$CENV" restricted -- "$KILN" run --rootfs "$TR_DIR/bb-restricted" -- id -u
  [ "$status" -eq 0 ]
  [[ $output == *"user namespace"*"using --isolation=ptrace"* ]]
  [[ $output == *0* ]]
  # an image that is not there: the error names it (images run under ptrace too)
  mkdir -p "$TR_DIR/store-missing"
  chown 1000:1000 "$TR_DIR/store-missing"
  run "$CENV" restricted -- "$KILN" run --root "$TR_DIR/store-missing" --isolation ptrace --oci-layout /nonexistent \
    -- true
  echo "$output"
  [ "$status" -ne 0 ]
  [[ $output == *"/nonexistent"* ]]
}

@test "tracer: kiln run of an image and of --rootfs --overlay under ptrace isolation: the image's files, its config, the step's changes" {
  registry_start
  fixtures_push busybox
  for e in docker restricted; do
    local store=$TR_DIR/store-$e home=$TR_DIR/home-$e
    mkdir -p "$store" "$home"
    [ "$e" = docker ] || chown 1000:1000 "$store" "$home"
    run "$CENV" "$e" -- env HOME="$home" "$KILN" run --root "$store" --insecure-registry "$REGISTRY" \
      "$BUSYBOX_IMAGE" sh -c 'id -u; cat /etc/passwd | head -1; echo made > /tmp/new; cat /tmp/new'
    echo "$output"
    [ "$status" -eq 0 ]
    [[ $output == *"using --isolation=ptrace"* ]]
    [[ $output == *"root:x:0:0"* ]]
    [[ $output == *"made"* ]]
    # --rootfs DIR --overlay: DIR is never written, the changes are listed
    run "$CENV" "$e" -- "$KILN" run --isolation ptrace --network host --rootfs "$TR_DIR/bb-$e" --overlay \
      --show-changes -- sh -c 'echo x > /etc/os-release; mkdir /newdir'
    echo "$output"
    [ "$status" -eq 0 ]
    [[ $output == *"etc/os-release"* ]]
    [[ $output == *"newdir"* ]]
    grep -q 'kiln busybox root' "$TR_DIR/bb-$e/etc/os-release"
    [ ! -e "$TR_DIR/bb-$e/newdir" ]
  done
}
