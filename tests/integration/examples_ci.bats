#!/usr/bin/env bats
# The CI examples (examples/ci/) run as written: ci_example.py turns each
# into the commands its platform runs in kiln's container (a Job's args and
# env, a Tekton step, a GitLab job's script, a GitHub job's run steps), and
# they run here in the environment the example describes
# (tests/tools/container-env: "restricted" for a default Restricted pod or a
# non-root job, "docker" for a root container job, the Localhost profile and
# device-plugin devices for the hardened Job), against a registry with TLS
# and a password. Only the registry host and the volume paths are
# substituted. Each pushed image is checked with skopeo.

load helpers

setup_file() {
  kiln_setup
  registry_start --tls --htpasswd ciuser:cipass
  fixtures_push busybox
  export REGISTRY REGISTRY_CA REGISTRY_CERT_DIR REGISTRY_USER REGISTRY_PASS BUSYBOX_IMAGE
}
teardown_file() { registry_stop_all; }
setup() {
  kiln_setup
  require_root
  CENV=$(dirname "$KILN")/tools/container-env
  [ -x "$CENV" ] || CENV=$KILN_SRC/build/tools/container-env
  export KILN_POLICY_DIR=${KILN_POLICY_DIR:-$KILN_SRC/policies}
  shared_dir
  W=$SHARED
  mkdir -p "$W/bin" "$W/home" "$W/workspace/src" "$W/cache/kiln" "$W/kiln/docker"
  ln -s "$KILN" "$W/bin/kiln"
  printf 'FROM %s\nCOPY app.txt /app/\nRUN echo built-by-$((6*7)) > /app/built && cat /app/app.txt\n' \
    "$REGISTRY/library/busybox:latest" > "$W/workspace/src/Dockerfile"
  echo "app-$RANDOM" > "$W/workspace/src/app.txt"
  # The registry Secret a Job or Task mounts at /kiln/docker.
  printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REGISTRY" "$(printf '%s:%s' "$REGISTRY_USER" "$REGISTRY_PASS" | base64 -w0)" \
    > "$W/kiln/docker/config.json"
}
teardown() { shared_dir_cleanup; kiln_teardown; }

# example NAME: examples/ci/NAME with the registry host and the volume paths
# substituted, turned into $W/run.sh.
example() {
  sed -e "s#registry\.example\.com#$REGISTRY#g; s#ghcr\.io#$REGISTRY#g" \
      -e "s#/workspace#$W/workspace#g; s#/cache/kiln#$W/cache/kiln#g; s#/kiln/docker#$W/kiln/docker#g" \
      -e "s#/tmp/kiln-store#$W/kiln-store#g" \
      "$KILN_SRC/examples/ci/$1" > "$W/$1"
  TEKTON_WS=$W/workspace python3 "$KILN_SRC/tests/integration/ci_example.py" "$W/$1" > "$W/run.sh"
  cat "$W/run.sh"
  chown -R 1000:1000 "$W"
}

# in_env ENV [CENV FLAGS...] -- VAR=VALUE...: run $W/run.sh in ENV with a clean
# environment plus the given variables.
in_env() {
  local env=$1
  shift
  local cflags=()
  while [ "$1" != -- ]; do cflags+=("$1"); shift; done
  shift
  run "$CENV" "$env" --ca "$REGISTRY_CA" "${cflags[@]}" -- env -i PATH="$W/bin:/usr/bin:/bin" HOME="$W/home" \
    KILN_POLICY_DIR="$KILN_POLICY_DIR" "$@" sh "$W/run.sh"
  echo "$output"
}

# pushed REF: the image is in the registry, with the step's file.
pushed() {
  skopeo inspect --cert-dir "$REGISTRY_CERT_DIR" --creds "$REGISTRY_USER:$REGISTRY_PASS" "docker://$1" > "$W/inspect.json"
  jq -e '.Layers | length == 3' "$W/inspect.json" > /dev/null
}

@test "examples/ci: the Kubernetes Job in a default Restricted pod builds and pushes under ptrace isolation" {
  example kubernetes-job.yaml
  in_env restricted --
  [ "$status" -eq 0 ]
  [[ $output == *"using --isolation=ptrace"* ]]
  [[ $output == *"app-"* ]]
  pushed "$REGISTRY/team/app:1.0.0"
  [ -s "$W/workspace/digest" ]
  # kaniko's --cache-repo: the RUN step's layer is in the cache repository
  skopeo list-tags --cert-dir "$REGISTRY_CERT_DIR" --creds "$REGISTRY_USER:$REGISTRY_PASS" \
    "docker://$REGISTRY/team/app/cache" | jq -e '.Tags | length >= 1' > /dev/null
}

@test "examples/ci: the hardened Kubernetes Job runs the userns isolation under kiln's Localhost profile with /dev/fuse and /dev/net/tun" {
  example kubernetes-hardened.yaml
  in_env restricted --profile "$KILN_SRC/policies/kiln-localhost.json" --dev-fuse --dev-tun --
  [ "$status" -eq 0 ]
  [[ $output != *"ptrace"* ]]
  [[ $output == *"user namespace: single"* ]]
  pushed "$REGISTRY/team/app:1.0.0"
  # without the profile, --isolation=userns fails at the first RUN (a new
  # context file: not a cache hit), naming what is missing
  echo changed > "$W/workspace/src/app.txt"
  in_env restricted --
  [ "$status" -ne 0 ]
  [[ $output == *"RUN steps need a user namespace and this environment denies it"* ]]
}

@test "examples/ci: the GitLab CI job (Docker executor as installed, non-root image user) builds and pushes" {
  example gitlab-ci.yml
  in_env restricted -- CI_REGISTRY="$REGISTRY" CI_REGISTRY_USER="$REGISTRY_USER" CI_REGISTRY_PASSWORD="$REGISTRY_PASS" \
    CI_REGISTRY_IMAGE="$REGISTRY/group/app" CI_PROJECT_DIR="$W/workspace/src" CI_COMMIT_SHORT_SHA=0a1b2c3d \
    CI_COMMIT_REF_SLUG=main
  [ "$status" -eq 0 ]
  [[ $output == *"using --isolation=ptrace"* ]]
  pushed "$REGISTRY/group/app:0a1b2c3d"
  pushed "$REGISTRY/group/app:main"
  grep -q "^$REGISTRY/group/app@sha256:" "$W/workspace/src/image-digest.txt"
}

@test "examples/ci: the GitHub Actions container job builds and pushes" {
  example github-actions.yml
  mkdir -p "$W/runner-temp"
  chown 1000:1000 "$W/runner-temp"
  in_env docker -- GITHUB_WORKSPACE="$W/workspace/src" GITHUB_REPOSITORY=team/app GITHUB_REPOSITORY_OWNER=team \
    GITHUB_SHA=4f5e6d7c GITHUB_ACTOR=ciuser GITHUB_TOKEN="$REGISTRY_PASS" GITHUB_SERVER_URL=https://github.com \
    RUNNER_TEMP="$W/runner-temp" GITHUB_STEP_SUMMARY="$W/runner-temp/summary"
  [ "$status" -eq 0 ]
  [[ $output == *"using --isolation=ptrace"* ]]
  pushed "$REGISTRY/team/app:4f5e6d7c"
  pushed "$REGISTRY/team/app:latest"
  grep -q "pushed $REGISTRY/team/app@sha256:" "$W/runner-temp/summary"
}

@test "examples/ci: the Tekton Task's step in a default Restricted pod builds and pushes" {
  example tekton-task.yaml
  mkdir -p "$W/workspace/source"
  cp -a "$W/workspace/src/." "$W/workspace/source/"
  chown -R 1000:1000 "$W/workspace"
  in_env restricted --
  [ "$status" -eq 0 ]
  [[ $output == *"using --isolation=ptrace"* ]]
  pushed "$REGISTRY/team/app:1.0"
  grep -q '^sha256:' "$W/workspace/results/IMAGE_DIGEST"
}
