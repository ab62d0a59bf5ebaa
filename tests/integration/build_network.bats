#!/usr/bin/env bats
# The network of RUN steps: private by default (a namespace of the step's
# own, outbound through pasta), host and none on request; the host's
# loopback services and abstract unix sockets are out of a private step's
# reach (issue 16 item 6).

load helpers

setup_file() { build_file_setup; }
teardown_file() { registry_stop_all; }
setup() { kiln_setup; }
teardown() {
  [ -z "${LISTENER:-}" ] || kill "$LISTENER" 2>/dev/null || true
  kiln_teardown
}

# kb CONTEXT [FLAGS...]: build CONTEXT with the busybox base, plain progress.
kb() {
  local ctx=$1
  shift
  "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" \
    --build-arg "REG=$REGISTRY" --no-push --no-cache --progress plain "$@" "$ctx"
}

# probe_ctx DIR: a step that reports what it can reach: the test registry
# on the host's loopback, a host abstract unix socket (by its name in
# /proc/net/unix, which lists the sockets of the step's network namespace),
# its interfaces and its resolver.
probe_ctx() {
  mkdir -p "$1"
  cat > "$1/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE
ARG REG
RUN echo "ifaces=$(ls /sys/class/net | tr '\n' ' ')"; \
    echo "resolv=$(grep nameserver /etc/resolv.conf | tr '\n' ' ')"; \
    if timeout 5 wget -q -O /dev/null "http://$REG/v2/"; then echo "registry=reached"; else echo "registry=unreachable"; fi; \
    echo "abstract=$(grep -c kiln-net-probe /proc/net/unix)"
EOF
}

# A host process listening on an abstract unix socket.
abstract_listener() {
  python3 -c 'import socket, time
s = socket.socket(socket.AF_UNIX)
s.bind("\0kiln-net-probe-%d" % __import__("os").getpid())
s.listen()
time.sleep(120)' &
  LISTENER=$!
  for _ in $(seq 50); do grep -q kiln-net-probe /proc/net/unix && return 0; sleep 0.1; done
  return 1
}

@test "network: by default a RUN step has a private namespace: its own interfaces, DNS through pasta, the host's loopback and abstract sockets out of reach" {
  probe_ctx "$TEST_TMP/ctx"
  abstract_listener
  run kb "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"ifaces="*"eth0"* || $output == *"ifaces="*"lo "* ]]
  [[ $output == *"resolv=nameserver 169.254.1.1 "* ]]
  [[ $output == *" registry=unreachable"* ]]
  [[ $output == *" abstract=0"* ]]
  # pasta is gone with the step.
  processes_gone -x pasta
}

@test "network: the RUN steps of a stage share one private namespace and one pasta (set up once); a stage after it gets another" {
  mkdir -p "$TEST_TMP/ctx"
  # Loopback's packet counter tells namespaces apart (a freed namespace's
  # inode number is given to the next one, so readlink cannot).
  cat > "$TEST_TMP/ctx/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE AS one
RUN ping -c 2 -W 1 127.0.0.1 > /dev/null; echo "netns-a=$(readlink /proc/self/ns/net) lo-a=$(cat /sys/class/net/lo/statistics/rx_packets)"
RUN echo "netns-b=$(readlink /proc/self/ns/net) lo-b=$(cat /sys/class/net/lo/statistics/rx_packets)"
FROM $BASE AS two
COPY --from=one /etc/passwd /h
RUN echo "lo-c=$(cat /sys/class/net/lo/statistics/rx_packets)"
EOF
  run kb "$TEST_TMP/ctx" --jobs 1
  echo "$output"
  [ "$status" -eq 0 ]
  a=$(grep -o 'netns-a=net:\[[0-9]*\]' <<< "$output" | cut -d= -f2)
  b=$(grep -o 'netns-b=net:\[[0-9]*\]' <<< "$output" | cut -d= -f2)
  la=$(grep -o 'lo-a=[0-9]\+' <<< "$output" | cut -d= -f2)
  lb=$(grep -o 'lo-b=[0-9]\+' <<< "$output" | cut -d= -f2)
  lc=$(grep -o 'lo-c=[0-9]\+' <<< "$output" | cut -d= -f2)
  [ -n "$a" ]
  [ "$a" = "$b" ]
  [ "$a" != "$(readlink /proc/self/ns/net)" ]
  [ "$la" -ge 4 ]
  [ "$lb" = "$la" ]
  [ "$lc" = 0 ]
  processes_gone -x pasta
}

@test "network: pasta starts with a stage's first network socket: steps that open none start no pasta, later steps share it" {
  mkdir -p "$TEST_TMP/ctx"
  cat > "$TEST_TMP/ctx/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE
RUN echo "before=$(ls /sys/class/net | tr '\n' ' ')"
RUN echo "first=$(ls /sys/class/net | tr '\n' ' ')"; ip addr | grep -c 'inet .*global' | sed 's/^/global=/'; \
    echo "after=$(ls /sys/class/net | tr '\n' ' ')"
RUN echo "later=$(ls /sys/class/net | tr '\n' ' ')"
EOF
  run kb "$TEST_TMP/ctx" -v debug
  echo "$output"
  [ "$status" -eq 0 ]
  # one start, in the second step (the first opened no network socket)
  [ "$(grep -c 'starting pasta for the stage' <<< "$output")" -eq 1 ]
  [[ $output == *"before=lo "* ]]
  [[ $output == *"first=lo "* ]]
  [[ $output == *"global=1"* ]]
  [[ $output =~ after=[a-z0-9]+\ lo ]]
  [[ $output =~ later=[a-z0-9]+\ lo ]]
  sed -n '/before=/,/starting pasta/p' <<< "$output" | grep -q 'first=lo'
  processes_gone -x pasta
  # a stage of steps without network sockets starts none
  printf 'ARG BASE\nFROM $BASE\nRUN echo a > /a\nRUN cat /a\n' > "$TEST_TMP/ctx/Dockerfile"
  run kb "$TEST_TMP/ctx" -v debug
  [ "$status" -eq 0 ]
  [[ $output != *"starting pasta"* ]]
}

@test "network: --network host shares the host's namespace (and says what that exposes); RUN --network=host overrides the default" {
  probe_ctx "$TEST_TMP/ctx"
  abstract_listener
  run kb "$TEST_TMP/ctx" --network host
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"--network host: RUN steps share the host's network namespace"* ]]
  [[ $output == *" registry=reached"* ]]
  [[ $output == *" abstract=1"* ]]
  sed -i 's/^RUN echo/RUN --network=host echo/' "$TEST_TMP/ctx/Dockerfile"
  run kb "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  [[ $output == *" registry=reached"* ]]
  # RUN --network=default is the build's default: private.
  sed -i 's/^RUN --network=host echo/RUN --network=default echo/' "$TEST_TMP/ctx/Dockerfile"
  run kb "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  [[ $output == *" registry=unreachable"* ]]
}

@test "network: --network none leaves only loopback and no resolver" {
  probe_ctx "$TEST_TMP/ctx"
  run kb "$TEST_TMP/ctx" --network none
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"ifaces=lo "* ]]
  [[ $output == *"resolv= "* || $output == *"resolv="$'\n'* || $output == *"resolv=
"* ]]
  [[ $output == *" registry=unreachable"* ]]
}

@test "network: a private step reaches the outside (the Debian archive by name)" {
  debian_reachable || skip "no network to deb.debian.org"
  mkdir -p "$TEST_TMP/ctx"
  cat > "$TEST_TMP/ctx/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE
RUN wget -q -O - http://deb.debian.org/debian/dists/bookworm/Release | head -n 1
EOF
  run kb "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"Origin: Debian"* ]]
}

@test "network: without pasta a private network is a clear error that names the package and the alternatives" {
  probe_ctx "$TEST_TMP/ctx"
  run env PATH=/nonexistent-kiln-path "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --no-push --progress plain "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -ne 0 ]
  [[ $output == *"Dockerfile:4"* ]]
  [[ $output == *"RUN steps with a private network (the default) need pasta, which is not on PATH: install Debian's passt package, or pass --network host or none"* ]]
  # and the same build with --network none works without it
  run env PATH=/nonexistent-kiln-path "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --no-push --progress plain --network none "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
}

@test "network: an invalid --network value is a usage error listing the modes" {
  probe_ctx "$TEST_TMP/ctx"
  run kb "$TEST_TMP/ctx" --network bridge
  [ "$status" -ne 0 ]
  [[ $output == *"invalid network mode 'bridge' (expected private, default, host or none)"* ]]
}

@test "network: private as a plain user too, with subuid ranges and in single ID mode (pasta runs as the step's namespace root)" {
  plain_users kiln-net
  abstract_listener
  local u
  for u in "${PLAIN_USERS[@]}"; do
    probe_ctx "$SHARED/ctx-$u"
    run run_as "$u" "$KILN" build --root "$SHARED/store-$u" --insecure-registry "$REGISTRY" \
      --build-arg "BASE=$BUSYBOX_IMAGE" --build-arg "REG=$REGISTRY" --no-push --no-cache --progress plain \
      "$SHARED/ctx-$u"
    echo "$u: $output"
    [ "$status" -eq 0 ]
    [[ $output == *"resolv=nameserver 169.254.1.1 "* ]]
    [[ $output == *" registry=unreachable"* ]]
    [[ $output == *" abstract=0"* ]]
  done
}

@test "network: a pasta that fails to start is started again (three starts in all), with a warning; three failures are an error" {
  shared_dir
  mkdir -p "$SHARED/bin" "$SHARED/state"
  chmod 1777 "$SHARED/state"
  # fails its first N starts, then is the real pasta (it runs as the step's
  # namespace root, so everything it touches is world-accessible)
  cat > "$SHARED/bin/pasta" <<EOF
#!/bin/sh
n=\$(ls "$SHARED/state" | wc -l)
if [ "\$n" -lt "\$(cat "$SHARED/fails")" ]; then
  touch "$SHARED/state/\$\$"
  echo "Couldn't install signal handlers" >&2
  exit 1
fi
exec $(command -v pasta) "\$@"
EOF
  chmod 0755 "$SHARED/bin/pasta"
  chmod -R a+rX "$SHARED"
  probe_ctx "$TEST_TMP/ctx"
  echo 1 > "$SHARED/fails"
  PATH="$SHARED/bin:$PATH" run kb "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"private network: pasta failed (exit status 1): Couldn't install signal handlers; starting pasta again"* ]]
  [[ $output == *" registry=unreachable"* ]]
  rm -f "$SHARED/state/"*
  echo 2 > "$SHARED/fails"
  PATH="$SHARED/bin:$PATH" run kb "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(grep -c 'starting pasta again' <<< "$output")" -eq 2 ]
  rm -f "$SHARED/state/"*
  echo 3 > "$SHARED/fails"
  PATH="$SHARED/bin:$PATH" run kb "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -ne 0 ]
  [[ $output == *"private network: pasta failed (exit status 1): Couldn't install signal handlers"* ]]
}
