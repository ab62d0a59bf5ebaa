#!/usr/bin/env bash
# make-base-images.sh - build kiln's fixture base images WITHOUT kiln.
#
#   scripts/make-base-images.sh [--cache DIR] [--push REGISTRY] [--dest-cert-dir DIR]
#                               [--dest-creds USER:PASS] [--rebuild]
#                               [busybox|busybox-arm64|busybox-multi|debian|all]
#   scripts/make-base-images.sh [--cache DIR] --print-layout NAME
#
# busybox: busybox-static's /bin/busybox plus applet symlinks, /etc/passwd and
#          /etc/group with root only, /tmp, /root, /home; one layer; Cmd ["/bin/sh"].
# busybox-arm64: the same from Debian's busybox-static:arm64 .deb (downloaded
#          into DIR/debs by scripts/install-deps.sh; the applet list is the
#          host busybox's, the same Debian version), architecture arm64.
# busybox-multi: an OCI image index of busybox (linux/amd64) and busybox-arm64
#          (linux/arm64/v8), written with jq; pushed with skopeo copy --all.
# debian:  debootstrap --variant=minbase bookworm; one layer; Cmd ["bash"].
#
# Both are OCI layouts made with umoci (init/new/insert/config, fixed mtimes and
# created dates) and pushed with skopeo to REGISTRY/library/busybox:latest and
# REGISTRY/library/debian:bookworm. Everything is cached under DIR (default
# ${KILN_TEST_CACHE:-/var/cache/kiln-test}) keyed by a version stamp: the
# debootstrap .debs, the rootfs tarball and the finished layouts, so a rerun only
# pushes. A lock (flock) keeps concurrent runs from building twice. The debian
# image needs root to build (debootstrap); busybox does not (as a plain user
# umoci's rootless mode records the files as root's); reading a filled cache
# needs neither.
set -euo pipefail

# Bump when the recipe changes: old cache entries are then ignored.
RECIPE=2
SUITE=bookworm
MIRROR=${KILN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
CREATED=$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)
PATH_ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

cache=${KILN_TEST_CACHE:-/var/cache/kiln-test}
push="" certdir="" creds="" rebuild=0 print_layout="" what=all

die() { echo "make-base-images: $*" >&2; exit 1; }
log() { echo "make-base-images: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --cache) cache=$2; shift 2 ;;
    --push) push=$2; shift 2 ;;
    --dest-cert-dir) certdir=$2; shift 2 ;;
    --dest-creds) creds=$2; shift 2 ;;
    --rebuild) rebuild=1; shift ;;
    --print-layout) print_layout=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    busybox|busybox-arm64|busybox-multi|debian|all) what=$1; shift ;;
    *) echo "make-base-images: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

busybox_stamp() {
  local v
  v=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null) || v=$(busybox 2>&1 | head -n1 | awk '{print $2}')
  echo "r$RECIPE-${v//[^A-Za-z0-9.+-]/_}"
}
debian_stamp() { echo "r$RECIPE-$SUITE-minbase"; }

# The cached arm64 .deb (scripts/install-deps.sh downloads it).
busybox_arm64_deb() {
  local f
  f=$(ls "$cache"/debs/busybox-static_*_arm64.deb 2>/dev/null | sort | tail -n1)
  [ -n "$f" ] || die "no busybox-static arm64 .deb in '$cache/debs' (run scripts/install-deps.sh)"
  echo "$f"
}
busybox_arm64_stamp() {
  local f
  f=$(basename "$(busybox_arm64_deb)" .deb)
  echo "r$RECIPE-${f//[^A-Za-z0-9.+-]/_}"
}

layout_dir() {
  case "$1" in
    busybox) echo "$cache/oci/busybox-$(busybox_stamp)" ;;
    busybox-arm64) echo "$cache/oci/busybox-arm64-$(busybox_arm64_stamp)" ;;
    busybox-multi) echo "$cache/oci/busybox-multi-$(busybox_stamp)-$(busybox_arm64_stamp)" ;;
    debian) echo "$cache/oci/debian-$(debian_stamp)" ;;
    *) die "unknown image '$1'" ;;
  esac
}
image_tag() { case "$1" in busybox|busybox-arm64|busybox-multi) echo latest ;; debian) echo bookworm ;; esac; }

if [ -n "$print_layout" ]; then
  d=$(layout_dir "$print_layout")
  [ -f "$d/index.json" ] || die "no cached layout for $print_layout (run $0 $print_layout)"
  echo "$d"
  exit 0
fi

for t in umoci skopeo; do command -v $t >/dev/null || die "'$t' is not installed"; done
mkdir -p "$cache/oci" "$cache/rootfs" "$cache/debs" "$cache/tmp" || die "cannot create cache '$cache'"

# As a plain user umoci unpacks and repacks with the user's files mapped to 0:0.
ROOTLESS=""
[ "$(id -u)" -eq 0 ] || ROOTLESS=--rootless

work=""
cleanup() { [ -n "$work" ] && rm -rf --one-file-system "$work"; return 0; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Give every path a fixed mtime so identical inputs give identical layers.
fix_mtimes() {
  find "$1" -xdev -newermt "@$EPOCH" -exec touch -h -d "@$EPOCH" {} + 2>/dev/null || true
  touch -h -d "@$EPOCH" "$1"
}

# new_bundle NAME: empty OCI layout plus an unpacked (empty) bundle in $work;
# the caller fills $work/bundle/rootfs, then make_layout packs it.
new_bundle() {
  local tag
  tag=$(image_tag "$1")
  umoci init --layout "$work/layout"
  umoci new --image "$work/layout:$tag"
  umoci unpack $ROOTLESS --image "$work/layout:$tag" "$work/bundle" >/dev/null
}

# make_layout NAME CMD [ARCH]: one layer from $work/bundle/rootfs
# (umoci repack gives relative member names, unlike insert), config set, moved
# into place atomically.
make_layout() {
  local name=$1 cmd=$2 arch=${3:-amd64} tag final tmp="$work/layout"
  tag=$(image_tag "$name")
  final=$(layout_dir "$name")
  fix_mtimes "$work/bundle/rootfs"
  umoci repack --image "$tmp:$tag" --history.created "$CREATED" \
    --history.created_by "kiln make-base-images.sh $name" "$work/bundle"
  umoci config --image "$tmp:$tag" --created "$CREATED" \
    --no-history --os linux --architecture "$arch" --config.cmd "$cmd" --config.env "$PATH_ENV"
  umoci gc --layout "$tmp"
  # umoci writes 0600 files: a cache filled by root is read by plain users too.
  chmod -R a+rX "$tmp"
  rm -rf --one-file-system "$final"
  mv "$tmp" "$final"
}

host_busybox() {
  local bb
  bb=$(command -v busybox) || true
  [ -x /bin/busybox ] && bb=/bin/busybox
  file -L "$bb" 2>/dev/null | grep -q 'statically linked' || die "busybox-static is not installed ('$bb' is not static)"
  echo "$bb"
}

build_busybox() {
  local bb
  bb=$(host_busybox)
  new_bundle busybox
  busybox_rootfs "$bb" "$bb"
  make_layout busybox /bin/sh
}

build_busybox-arm64() {
  local deb x="$work/deb"
  deb=$(busybox_arm64_deb)
  dpkg-deb -x "$deb" "$x"
  file "$x/bin/busybox" | grep -q 'ARM aarch64' || die "'$deb' holds no aarch64 /bin/busybox"
  new_bundle busybox-arm64
  busybox_rootfs "$x/bin/busybox" "$(host_busybox)"
  make_layout busybox-arm64 /bin/sh arm64
}

# One layout holding both images' blobs and an index of their manifests.
build_busybox-multi() {
  local a m t="$work/multi" d idx digest size
  mkdir -p "$t/blobs/sha256"
  cp "$(layout_dir busybox)/oci-layout" "$t/"
  local entries=()
  for a in busybox busybox-arm64; do
    d=$(layout_dir "$a")
    cp -n "$d"/blobs/sha256/* "$t/blobs/sha256/"
    m=$(jq -c '.manifests[0] | del(.annotations)' "$d/index.json")
    case "$a" in
      busybox) entries+=("$(jq -c '. + {platform: {architecture: "amd64", os: "linux"}}' <<<"$m")") ;;
      *) entries+=("$(jq -c '. + {platform: {architecture: "arm64", os: "linux", variant: "v8"}}' <<<"$m")") ;;
    esac
  done
  idx=$(printf '%s\n' "${entries[@]}" | jq -cs '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: .}')
  printf '%s' "$idx" > "$t/idx.json"
  digest=$(sha256sum "$t/idx.json" | cut -d' ' -f1)
  size=$(stat -c %s "$t/idx.json")
  mv "$t/idx.json" "$t/blobs/sha256/$digest"
  jq -n --arg d "sha256:$digest" --argjson s "$size" \
    '{schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
      annotations: {"org.opencontainers.image.ref.name": "latest"}}]}' > "$t/index.json"
  chmod -R a+rX "$t"
  rm -rf --one-file-system "$(layout_dir busybox-multi)"
  mv "$t" "$(layout_dir busybox-multi)"
}

# busybox_rootfs BUSYBOX LISTER: $work/bundle/rootfs with BUSYBOX as
# /bin/busybox and the applet links LISTER --list-full names.
busybox_rootfs() {
  local r="$work/bundle/rootfs" bb=$1 lister=$2 app
  mkdir -p "$r/bin" "$r/sbin" "$r/usr/bin" "$r/usr/sbin" "$r/etc" "$r/tmp" "$r/root" "$r/home"
  install -m 0755 "$bb" "$r/bin/busybox"
  for app in $("$lister" --list-full); do
    [ "$app" = bin/busybox ] && continue
    mkdir -p "$r/$(dirname "$app")"
    ln -sfn /bin/busybox "$r/$app"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$r/etc/passwd"
  echo 'root:x:0:' > "$r/etc/group"
  chmod 0644 "$r/etc/passwd" "$r/etc/group"
  chmod 1777 "$r/tmp"
  chmod 0700 "$r/root"
  [ -n "$ROOTLESS" ] || chown -R 0:0 "$r"
  chmod 0755 "$r"
}

build_debian() {
  local tarball r="$work/bundle/rootfs" t0
  tarball="$cache/rootfs/debian-$(debian_stamp).tar"
  if [ "$rebuild" = 1 ] || [ ! -f "$tarball" ]; then
    command -v debootstrap >/dev/null || die "'debootstrap' is not installed"
    log "debootstrap --variant=minbase $SUITE from $MIRROR (first run takes about a minute)"
    t0=$(date +%s)
    debootstrap --variant=minbase --cache-dir="$cache/debs" "$SUITE" "$work/deboot" "$MIRROR" \
      > "$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
    log "debootstrap took $(( $(date +%s) - t0 ))s"
    # What a plain debootstrap leaves: no .debs (--cache-dir keeps them), no
    # host identity, no apt lists-state beyond what minbase ships.
    rm -f "$work/deboot"/var/cache/apt/archives/*.deb
    : > "$work/deboot/etc/resolv.conf"
    echo localhost > "$work/deboot/etc/hostname"
    rm -f "$work/deboot"/var/log/bootstrap.log
    fix_mtimes "$work/deboot"
    tar --numeric-owner --xattrs --acls -C "$work/deboot" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf --one-file-system "$work/deboot"
  fi
  new_bundle debian
  tar --numeric-owner --xattrs --acls -C "$r" -xpf "$tarball"
  make_layout debian bash
}

ensure() {
  local name=$1 d
  d=$(layout_dir "$name")
  if [ "$rebuild" = 0 ] && [ -f "$d/index.json" ]; then
    # Layouts made before make_layout's chmod.
    if [ "$(id -u)" -eq 0 ] && [ -n "$(find "$d" ! -perm -o+r -print -quit)" ]; then chmod -R a+rX "$d"; fi
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || [ "$name" = busybox ] ||
    die "building the $name fixture needs root (debootstrap, dpkg-deb; or a filled cache in '$cache')"
  # Its parts first, each under the lock on its own.
  if [ "$name" = busybox-multi ]; then
    ensure busybox
    ensure busybox-arm64
  fi
  (
    flock 9
    # Someone else may have built it while we waited for the lock.
    if [ "$rebuild" = 1 ] || [ ! -f "$d/index.json" ]; then
      # Leftovers of a run that was SIGKILLed; we hold the lock, so not in use.
      rm -rf --one-file-system "$cache/tmp/$name".* "$cache/rootfs"/*.tar.tmp
      work=$(mktemp -d "$cache/tmp/$name.XXXXXX")
      trap cleanup EXIT
      trap 'exit 130' INT
      trap 'exit 143' TERM
      local t0
      t0=$(date +%s)
      "build_$name"
      log "built $name in $(( $(date +%s) - t0 ))s"
    fi
  ) 9> "$cache/lock"
}

names=()
case "$what" in
  all) names=(busybox debian) ;;
  *) names=("$what") ;;
esac

for n in "${names[@]}"; do
  ensure "$n"
  echo "$n: oci:$(layout_dir "$n"):$(image_tag "$n")"
done

if [ -n "$push" ]; then
  tlsargs=(--dest-tls-verify=false)
  [ -n "$certdir" ] && tlsargs=(--dest-cert-dir "$certdir")
  credargs=()
  [ -n "$creds" ] && credargs=(--dest-creds "$creds")
  for n in "${names[@]}"; do
    ref="docker://$push/library/$n:$(image_tag "$n")"
    skopeo copy -q --all "${tlsargs[@]}" "${credargs[@]}" \
      "oci:$(layout_dir "$n"):$(image_tag "$n")" "$ref" >&2 || die "pushing $n to $ref failed"
    echo "$n: pushed ${ref#docker://}"
  done
fi
