#!/usr/bin/env bash
# Install every build and test dependency of kiln from Debian 12 packages.
# Idempotent: when everything is present it only checks and says nothing.
set -euo pipefail

PKGS=(
  # build
  build-essential make pkg-config git clang llvm libclang-rt-14-dev
  libseccomp-dev libcap-dev libarchive-dev libcurl4-openssl-dev libyajl-dev
  libfuse3-dev fuse3 liburing-dev libssl-dev zlib1g-dev libzstd-dev libisal-dev
  # run time: pasta, the user-mode network stack of a RUN step's private network
  passt
  # unit and integration tests
  libcmocka-dev bats jq openssl apache2-utils curl python3 procps psmisc
  # build_attest.bats validates SBOMs against the SPDX 2.3 JSON schema
  python3-jsonschema
  docker-registry skopeo umoci busybox-static debootstrap
  uidmap buildah fuse-overlayfs crun bubblewrap
  attr libcap2-bin tar gzip pigz zstd xz-utils bzip2 file gdb
  # apparmor_parser checks policies/kiln-apparmor (parsed only: no kernel load)
  apparmor
  # lint.bats compiles the tracer's architecture code for aarch64 (syntax only)
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  # multi-platform builds: RUN steps of foreign architectures through
  # binfmt_misc (handlers registered with the F flag)
  qemu-user-static binfmt-support
)

# The arm64 busybox fixture (scripts/make-base-images.sh busybox-arm64) is made
# from Debian's busybox-static:arm64 .deb, and single ID mode's 32-bit stat test
# (tests/integration/build_owners.bats) runs busybox-static:i386; both .debs are
# downloaded into the test cache with a private apt state (the host's dpkg
# architectures are left alone).
busybox_deb() {
  local arch=$1 cache=${KILN_TEST_CACHE:-/var/cache/kiln-test} d o
  ls "$cache"/debs/busybox-static_*_"$arch".deb >/dev/null 2>&1 && return 0
  [ "$(id -u)" -eq 0 ] || { echo "install-deps: the busybox-static $arch .deb needs root to download" >&2; return 1; }
  mkdir -p "$cache/debs"
  d=$(mktemp -d)
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
  o=(-o APT::Architecture="$arch" -o APT::Architectures::="$arch" -o "Dir::State::Lists=$d/lists"
     -o "Dir::Cache=$d/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  echo "install-deps: downloading busybox-static:$arch into $cache/debs"
  if (cd "$d" && apt-get "${o[@]}" -qq update && apt-get "${o[@]}" -qq download busybox-static) >/dev/null; then
    mv "$d"/busybox-static_*_"$arch".deb "$cache/debs/"
  fi
  rm -rf "$d"
  ls "$cache"/debs/busybox-static_*_"$arch".deb >/dev/null 2>&1
}
arm64_busybox_deb() { busybox_deb arm64; }
i386_busybox_deb() { busybox_deb i386 || true; }

# binfmt_misc must be mounted for the handlers to be seen and registered.
binfmt_ready() {
  [ "$(id -u)" -eq 0 ] || return 0
  [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
}

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  binfmt_ready
  i386_busybox_deb
  arm64_busybox_deb
  exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
binfmt_ready
i386_busybox_deb
arm64_busybox_deb
