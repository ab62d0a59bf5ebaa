#!/usr/bin/env bats
# kiln inside the environments kaniko users run it in (issue 15), reproduced
# by tests/tools/container-env: "docker" (root with Docker's default
# capabilities and seccomp allow-list, no /dev/fuse, no /dev/net/tun) and
# "restricted" (a Restricted pod: uid 1000, no capabilities, no_new_privs,
# the same allow-list). With the runtime's default profile RUN steps cannot
# have a user namespace: kiln says so, and what to change; builds without
# RUN steps work. With kiln's Localhost profile (policies/kiln-localhost.json)
# and the devices from a device plugin, the normal mode works in both.

load helpers

setup_file() { build_file_setup; }
teardown_file() { registry_stop_all; }
setup() {
  kiln_setup
  require_root
  CENV=$(dirname "$KILN")/tools/container-env
  [ -x "$CENV" ] || CENV=$KILN_SRC/build/tools/container-env
  export KILN_POLICY_DIR=${KILN_POLICY_DIR:-$KILN_SRC/policies}
  # A context and store uid 1000 can use.
  shared_dir
  mkdir -p "$SHARED/ctx" "$SHARED/store-docker" "$SHARED/store-restricted"
  chown 1000:1000 "$SHARED/store-restricted"
  cat > "$SHARED/ctx/Dockerfile" <<EOF
FROM $BUSYBOX_IMAGE
RUN ip link > /dev/null && echo "step-ran uid=\$(id -u) net=\$(ls /sys/class/net | tr '\n' ' ')" && echo built > /built
EOF
}
teardown() { kiln_teardown; }

# cbuild ENV [CENV FLAGS...] -- [KILN FLAGS...]: kiln build of $SHARED/ctx in ENV.
cbuild() {
  local env=$1
  shift
  local cflags=()
  while [ "$1" != -- ]; do cflags+=("$1"); shift; done
  shift
  run "$CENV" "$env" "${cflags[@]}" -- env HOME="$SHARED" "$KILN" build --root "$SHARED/store-$env" \
    --insecure-registry "$REGISTRY" --no-push --no-cache --progress plain "$@" "$SHARED/ctx"
  echo "$output"
}

@test "container env: the launcher really takes away what a default container lacks" {
  run "$CENV" docker -- sh -c 'grep -E "^CapEff" /proc/self/status; ls /dev; unshare -U true && echo unshare-ok'
  echo "$output"
  [[ $output == *"CapEff:	00000000a80425fb"* ]]
  [[ $output != *fuse* ]]
  [[ $output != *unshare-ok* ]]
  run "$CENV" restricted -- sh -c 'id -u; grep -E "^(CapEff|CapBnd|NoNewPrivs)" /proc/self/status; unshare -U true && echo unshare-ok'
  echo "$output"
  [[ $output == *"1000"* ]]
  [[ $output == *"CapBnd:	0000000000000000"* ]]
  [[ $output == *"NoNewPrivs:	1"* ]]
  [[ $output != *unshare-ok* ]]
}

@test "container env: under the runtime's default profile --isolation userns is a clear error naming the Localhost profile (auto uses ptrace: build_ptrace.bats); a build without RUN works" {
  for env in docker restricted; do
    cbuild "$env" -- --isolation userns
    [ "$status" -ne 0 ]
    [[ $output == *"Dockerfile:2"* ]]
    [[ $output == *"RUN steps need a user namespace and this environment denies it (unshare(CLONE_NEWUSER): Operation not permitted)"* ]]
    [[ $output == *"policies/kiln-localhost.json"* ]]
  done
  printf 'FROM %s\nCOPY Dockerfile /copied\nENV A=1\n' "$BUSYBOX_IMAGE" > "$SHARED/ctx/Dockerfile"
  for env in docker restricted; do
    cbuild "$env" --
    [ "$status" -eq 0 ]
  done
}

@test "container env: with kiln's Localhost profile and /dev/fuse and /dev/net/tun, RUN steps work as root with Docker's capabilities and as a Restricted pod" {
  for env in docker restricted; do
    cbuild "$env" --profile "$KILN_SRC/policies/kiln-localhost.json" --dev-fuse --dev-tun --
    [ "$status" -eq 0 ]
    [[ $output == *"step-ran uid=0 net=eth0 lo "* ]]
  done
}

@test "container env: a missing /dev/fuse or /dev/net/tun is named with the way to add it; --network host does without tun" {
  cbuild restricted --profile "$KILN_SRC/policies/kiln-localhost.json" --dev-tun -- --isolation userns
  [ "$status" -ne 0 ]
  [[ $output == *"RUN steps need '/dev/fuse', which this environment does not have (a container without the FUSE device: add it"* ]]
  # auto: without /dev/fuse, ptrace isolation, saying why.
  cbuild restricted --profile "$KILN_SRC/policies/kiln-localhost.json" --dev-tun --
  [ "$status" -eq 0 ]
  [[ $output == *"no usable /dev/fuse"*"using --isolation=ptrace"* ]]
  [[ $output == *"step-ran uid=0"* ]]
  cbuild restricted --profile "$KILN_SRC/policies/kiln-localhost.json" --dev-fuse --
  [ "$status" -ne 0 ]
  [[ $output == *"need '/dev/net/tun', which this environment does not have (add it, e.g. --device /dev/net/tun, or pass --network host"* ]]
  cbuild restricted --profile "$KILN_SRC/policies/kiln-localhost.json" --dev-fuse -- --network host
  [ "$status" -eq 0 ]
  [[ $output == *"step-ran uid=0"* ]]
}

@test "container env: the AppArmor profile for hardened nodes parses (apparmor_parser, no kernel load); a broken copy does not" {
  command -v apparmor_parser >/dev/null || skip "apparmor_parser missing (scripts/install-deps.sh installs apparmor)"
  run apparmor_parser -Q -K "$KILN_SRC/policies/kiln-apparmor"
  echo "$output"
  [ "$status" -eq 0 ]
  sed 's/^  pivot_root,$/  pivot_root mount,/' "$KILN_SRC/policies/kiln-apparmor" > "$SHARED/broken"
  ! cmp -s "$SHARED/broken" "$KILN_SRC/policies/kiln-apparmor" || false
  run apparmor_parser -Q -K "$SHARED/broken"
  [ "$status" -ne 0 ]
  [[ $output == *"parser error"* ]]
}
