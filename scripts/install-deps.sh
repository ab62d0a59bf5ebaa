#!/usr/bin/env bash
# Install every build and test dependency of kiln from Debian 12 packages.
# Idempotent: when everything is present it only checks and says nothing.
set -euo pipefail

PKGS=(
  # build
  build-essential make pkg-config git clang llvm libclang-rt-14-dev
  libseccomp-dev libcap-dev libarchive-dev libcurl4-openssl-dev libyajl-dev
  libfuse3-dev fuse3 libssl-dev zlib1g-dev libzstd-dev libisal-dev
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
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
