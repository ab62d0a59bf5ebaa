#!/usr/bin/env bash
# make demo: the README's main job. Builds kiln, starts a throwaway local
# registry on a random loopback port, pushes the busybox fixture base image
# into it (built from Debian's busybox-static, without kiln), then builds
# examples/hello with kiln and pushes the result, printing its digest.
# Everything it starts is stopped when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

make -j"$(nproc)" kiln >/dev/null
export KILN="$PWD/kiln"
# The fixture cache: the system's (filled by make test as root) when it has
# the busybox image or can be written, else the user's own.
: "${KILN_TEST_CACHE:=/var/cache/kiln-test}"
layout=$(scripts/make-base-images.sh --cache "$KILN_TEST_CACHE" --print-layout busybox 2>/dev/null) || layout=""
if ! { [ -n "$layout" ] && [ -r "$layout/index.json" ]; } &&
  ! { mkdir -p "$KILN_TEST_CACHE" 2>/dev/null && [ -w "$KILN_TEST_CACHE" ]; }; then
  KILN_TEST_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/kiln-test
  echo "demo: fixture cache in $KILN_TEST_CACHE (the system's cannot be written)"
fi
export KILN_TEST_CACHE
# shellcheck source=../tests/integration/helpers.bash
source tests/integration/helpers.bash
trap 'registry_stop_all' EXIT

# RUN steps open /dev/fuse (the overlay) and /dev/net/tun (pasta, the
# private network) as root of the step's user namespace, not as host root:
# distributions ship both 0666; where they are 0600 (some cloud images),
# a root demo makes them so, as the tests do.
if [ "$(id -u)" -eq 0 ]; then
  for dev in /dev/fuse /dev/net/tun; do
    if [ -c "$dev" ] && [ "$(stat -c %a "$dev")" != 666 ]; then
      echo "demo: chmod 0666 $dev (as distributions ship it)"
      chmod 0666 "$dev"
    fi
  done
fi

echo "demo: starting a throwaway registry"
registry_start
echo "demo: registry at $REGISTRY"
echo "demo: pushing the busybox base image (scripts/make-base-images.sh)"
fixtures_push busybox

echo "demo: the build plan of examples/hello (kiln build --dry-run):"
"$KILN" build --dry-run --build-arg "REGISTRY=$REGISTRY" -f examples/hello/Dockerfile examples/hello

echo "demo: building examples/hello and pushing $REGISTRY/demo/hello:latest"
"$KILN" build --build-arg "REGISTRY=$REGISTRY" --insecure-registry "$REGISTRY" \
  --root "$REGISTRY_DIR/store" -f examples/hello/Dockerfile -t "$REGISTRY/demo/hello:latest" \
  --digest-file "$REGISTRY_DIR/digest" examples/hello
digest=$(cat "$REGISTRY_DIR/digest")
echo "demo: pushed $REGISTRY/demo/hello@$digest"

# Check the result with independent tools: skopeo fetches it back from the
# registry, umoci unpacks it, and the image's CMD runs in kiln's sandbox.
work=$(mktemp -d)
trap 'registry_stop_all; rm -rf "$work"' EXIT
skopeo copy --quiet --src-tls-verify=false "docker://$REGISTRY/demo/hello@$digest" "oci:$work/oci:hello"
rootless=()
[ "$(id -u)" -eq 0 ] || rootless=(--rootless)
umoci unpack "${rootless[@]}" --image "$work/oci:hello" "$work/bundle" >/dev/null
echo "demo: running the image's CMD (as its USER app, in its WORKDIR):"
"$KILN" run --verbosity warn --rootfs "$work/bundle/rootfs" --user 1000:1000 --workdir /home/app /usr/local/bin/greeting
