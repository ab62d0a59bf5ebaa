#!/usr/bin/env bats
# File owners across stages and tools in the three ID modes (root, a plain
# user with /etc/subuid ranges, one without: single mode): what a RUN step
# sees with stat() and what the layers carry, read with Python's tarfile
# (tests/integration/layer_listing.py). The e2e cases 70-copy-from-owners
# and 71-tool-owners compare the same things with buildah's images.

load helpers

setup_file() {
  require_root
  kiln_setup
  registry_start
  fixtures_push all
  export REGISTRY BUSYBOX_IMAGE DEBIAN_IMAGE
}
teardown_file() { registry_stop_all; }
setup() {
  kiln_setup
  fuse_dev_open_for_all
  shared_dir
  mkdir -p "$SHARED/ctx"
}
teardown() {
  shared_dir_cleanup
  kiln_teardown
}

# obuild MODE OUT: build $SHARED/ctx as root (MODE root), as a plain user
# with subuid ranges (sub) or without (single) into the OCI layout
# $SHARED/out/OUT; checks the ID mode kiln logged.
obuild() {
  mode_build "$1" own "$SHARED/store-$1" "$SHARED/out" --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --build-arg "DEBIAN=$DEBIAN_IMAGE" --no-push --oci-layout "$SHARED/out/$2:t" \
    "$SHARED/ctx"
}

# layer_owners OUT SKIP: PATH TYPE MODE UID:GID of every layer member after
# the first SKIP layers.
layer_owners() {
  python3 "$KILN_SRC/tests/integration/layer_listing.py" "$SHARED/out/$1" "$2" | awk '{ print $2, $3, $4, $5 }'
}

# image_file OUT PATH: a file of the image, from umoci's unpacked rootfs.
image_file() {
  [ -d "$SHARED/unpacked/$1" ] || umoci unpack --image "$SHARED/out/$1:t" "$SHARED/unpacked/$1" > /dev/null
  cat "$SHARED/unpacked/$1/rootfs/$2"
}

@test "owners: COPY --from keeps the owners chown gave in the source stage; the next RUN sees them (root, subuid, single)" {
  cat > "$SHARED/ctx/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE AS a
RUN mkdir -p /d/sub && touch /a /b /d/sub/f && ln -s /a /d/l && \
    chown 123:123 /a && chown 321:321 /b && chown -R 7:8 /d && chown -h 9:10 /d/l
FROM $BASE
COPY --from=a /a /b /dst/
COPY --from=a /d /dstd/
COPY --from=a --chown=5:6 /a /chowned
RUN stat -c '%n %u:%g' /dst/a /dst/b /dstd /dstd/sub /dstd/sub/f /chowned > /seen && \
    stat -c '%n %u:%g' /dstd/l >> /seen
EOF
  local m
  for m in root sub single; do
    obuild $m $m
    image_file $m seen > "$SHARED/$m.seen"
    cat "$SHARED/$m.seen"
    grep -qx '/dst/a 123:123' "$SHARED/$m.seen"
    grep -qx '/dst/b 321:321' "$SHARED/$m.seen"
    # the destination directory is made as BuildKit makes it: root's
    grep -qx '/dstd 0:0' "$SHARED/$m.seen"
    grep -qx '/dstd/sub 7:8' "$SHARED/$m.seen"
    grep -qx '/dstd/sub/f 7:8' "$SHARED/$m.seen"
    grep -qx '/dstd/l 9:10' "$SHARED/$m.seen"
    grep -qx '/chowned 5:6' "$SHARED/$m.seen"
    # the COPY layers (after the base's and before the RUN's)
    layer_owners $m 1 | grep -v '^seen ' > "$SHARED/$m.layers"
    grep -qx 'dst/a file 0644 123:123' "$SHARED/$m.layers"
    grep -qx 'dst/b file 0644 321:321' "$SHARED/$m.layers"
    grep -qx 'dstd/sub dir 0755 7:8' "$SHARED/$m.layers"
    grep -qx 'dstd/l symlink 0777 9:10' "$SHARED/$m.layers"
    grep -qx 'chowned file 0644 5:6' "$SHARED/$m.layers"
  done
  diff "$SHARED/root.layers" "$SHARED/sub.layers"
  diff "$SHARED/root.layers" "$SHARED/single.layers"
}

@test "owners: tools that set owners (useradd, fchown+rename, AT_EMPTY_PATH, O_PATH, install, chgrp, lchown, cp -a, tar) give the same layers and stat() in every ID mode" {
  command -v cc > /dev/null || skip "no C compiler for the test program"
  cc -static -O2 -o "$SHARED/ctx/owners" "$KILN_SRC/tests/e2e/cases/71-tool-owners/context/owners.c"
  cp "$KILN_SRC/tests/e2e/cases/71-tool-owners/Dockerfile" "$SHARED/ctx/Dockerfile"
  cat >> "$SHARED/ctx/Dockerfile" <<'EOF'
RUN owners fsids 61 62 /tmp/fsids && stat -c '%u:%g' /tmp/fsids > /fsids.seen
EOF
  # 32-bit stat calls, where this machine runs i386 system calls at all
  local i386=false seen32=
  if host_runs_i386; then
    i386=true seen32=t/seen32
    echo 'RUN owners stat32 /t/ref /t/copied /t/sl /etc/shadow > /t/seen32' >> "$SHARED/ctx/Dockerfile"
  fi
  local m
  for m in root sub single; do
    obuild $m $m
    for f in t/out t/seen1 t/seen2 $seen32 ls-t tar-t fsids.seen; do
      image_file $m $f | sed "s|^|$f: |"
    done > "$SHARED/$m.seen"
    layer_owners $m 1 | grep -v '^var/log/\|^var/cache/' > "$SHARED/$m.layers"
  done
  cat "$SHARED/single.seen"
  grep -qx 't/seen2: /etc/shadow: stat 0:42 lstat 0:42 fstat 0:42 fstatat 0:42 statx 0:42' "$SHARED/root.seen"
  grep -qx 't/seen1: /t/copied: stat 42:43 lstat 42:43 fstat 42:43 fstatat 42:43 statx 42:43' "$SHARED/root.seen"
  grep -qx 't/out: fchown (O_PATH) op: Bad file descriptor' "$SHARED/root.seen"
  grep -qx 'fsids.seen: 61:62' "$SHARED/root.seen"
  grep -qx 'tmp/fsids file 0644 61:62' "$SHARED/root.layers"
  grep -qx 'etc/shadow file 0640 0:42' "$SHARED/root.layers"
  ! $i386 || grep -qx 't/seen32: /t/ref: stat64 42:43 lstat64 42:43 fstat64 42:43 fstatat64 42:43 statx 42:43' "$SHARED/root.seen"
  diff "$SHARED/root.seen" "$SHARED/sub.seen"
  diff "$SHARED/root.layers" "$SHARED/sub.layers"
  # single mode: a file created after setfsuid/setfsgid is the fs ids'
  # (sandbox_creds.c), 32-bit stat calls show the recorded owners
  diff "$SHARED/root.seen" "$SHARED/single.seen"
  diff "$SHARED/root.layers" "$SHARED/single.layers"
}

@test "owners: identity switches (setpriv, runuser, su, setfsuid) and USER give the same ids and owners in every ID mode" {
  command -v cc > /dev/null || skip "no C compiler for the test program"
  cc -static -O2 -o "$SHARED/ctx/owners" "$KILN_SRC/tests/e2e/cases/71-tool-owners/context/owners.c"
  cat > "$SHARED/ctx/Dockerfile" <<'EOF'
ARG DEBIAN
FROM $DEBIAN
COPY owners /usr/local/bin/owners
RUN useradd -u 1234 -U -m u1 && mkdir /w && chmod 1777 /w && \
    setpriv --reuid 61 --regid 62 --clear-groups touch /w/setpriv && \
    runuser -u u1 -- sh -c 'touch /w/runuser; mkdir /w/runuser.d; ln -s x /w/runuser.l; id > /w/runuser.id' && \
    su -s /bin/sh u1 -c 'touch /w/su; id > /w/su.id' && \
    owners fsids 65 66 /w/fsids && \
    sh -c '(sleep 1; touch /w/forked-before) & exec setpriv --reuid 63 --regid 64 --clear-groups sh -c "touch /w/after; sleep 2"' && \
    { setpriv --reuid 1234 --regid 1234 --init-groups chown 0 /w/runuser 2> /w/chown.err || true; } && \
    { setpriv --reuid 1234 --regid 1234 --init-groups setpriv --reuid 0 true 2> /w/regain.err || true; } && \
    stat -c '%n %u:%g' /w/* > /seen-switch && rm -rf /var/log/* /var/cache/ldconfig/aux-cache
USER u1
RUN id > /tmp/user.id && touch /tmp/user.file && mkdir /tmp/user.dir && \
    { chown 0 /tmp/user.file 2> /tmp/user.chown || true; } && chgrp u1 /tmp/user.file && \
    stat -c '%n %u:%g' /tmp/user.* > /tmp/seen-user
EOF
  local m f
  for m in root single; do
    obuild $m $m
    for f in seen-switch tmp/seen-user w/runuser.id w/su.id w/chown.err w/regain.err tmp/user.id tmp/user.chown; do
      image_file $m $f | sed "s|^|$f: |"
    done > "$SHARED/$m.seen"
    layer_owners $m 2 | grep -v '^var/log/\|^var/cache/' > "$SHARED/$m.layers"
  done
  cat "$SHARED/single.seen"
  grep -qx 'seen-switch: /w/setpriv 61:62' "$SHARED/root.seen"
  grep -qx 'seen-switch: /w/fsids 65:66' "$SHARED/root.seen"
  grep -qx 'seen-switch: /w/after 63:64' "$SHARED/root.seen"
  grep -qx 'seen-switch: /w/forked-before 0:0' "$SHARED/root.seen"
  grep -qx 'seen-switch: /w/runuser.d 1234:1234' "$SHARED/root.seen"
  grep -qx 'tmp/user.id: uid=1234(u1) gid=1234(u1) groups=1234(u1)' "$SHARED/root.seen"
  grep -q 'w/chown.err: .*Operation not permitted' "$SHARED/root.seen"
  grep -q 'w/regain.err: .*Operation not permitted' "$SHARED/root.seen"
  grep -q 'tmp/user.chown: .*Operation not permitted' "$SHARED/root.seen"
  grep -qx 'w/runuser.l symlink 0777 1234:1234' "$SHARED/root.layers"
  diff "$SHARED/root.seen" "$SHARED/single.seen"
  diff "$SHARED/root.layers" "$SHARED/single.layers"
}

@test "owners: a 32-bit (i386) program sees the recorded owners and ids in single mode as in a root build" {
  [ "$(uname -m)" = x86_64 ] || skip "i386 programs need an x86-64 host"
  host_runs_i386 || skip "this machine faults i386 system calls (int 0x80): no 32-bit program runs"
  local deb
  deb=$(ls "$KILN_TEST_CACHE"/debs/busybox-static_*_i386.deb 2> /dev/null | tail -n1)
  [ -n "$deb" ] || skip "no busybox-static i386 .deb in $KILN_TEST_CACHE/debs (scripts/install-deps.sh downloads it)"
  command -v cc > /dev/null || skip "no C compiler for the test program"
  dpkg-deb -x "$deb" "$SHARED/bb32"
  cp "$SHARED/bb32/bin/busybox" "$SHARED/ctx/busybox32"
  file "$SHARED/ctx/busybox32" | grep -q 'ELF 32-bit.*80386'
  cc -static -O2 -o "$SHARED/ctx/owners" "$KILN_SRC/tests/e2e/cases/71-tool-owners/context/owners.c"
  cat > "$SHARED/ctx/Dockerfile" <<'EOF'
ARG DEBIAN
FROM $DEBIAN
COPY busybox32 owners /usr/local/bin/
RUN touch /f && chown 42:43 /f && ln -s f /l && chown -h 44:45 /l && \
    busybox32 stat -c '%n %u:%g' /f /etc/shadow > /seen && \
    busybox32 ls -ln /l | busybox32 awk '{ print $3 ":" $4, $9 }' >> /seen && \
    owners stat32 /f /l /etc/gshadow >> /seen && \
    setpriv --reuid 61 --regid 62 --clear-groups busybox32 id >> /seen && \
    setpriv --reuid 61 --regid 62 --clear-groups busybox32 touch /tmp/by61 && \
    busybox32 stat -c '%n %u:%g' /tmp/by61 >> /seen
EOF
  local m
  for m in root single; do
    obuild $m $m
    image_file $m seen > "$SHARED/$m.seen"
  done
  cat "$SHARED/single.seen"
  grep -qx '/f 42:43' "$SHARED/root.seen"
  grep -qx '/etc/shadow 0:42' "$SHARED/root.seen"
  grep -qx '44:45 /l' "$SHARED/root.seen"
  grep -qx '/f: stat64 42:43 lstat64 42:43 fstat64 42:43 fstatat64 42:43 statx 42:43' "$SHARED/root.seen"
  grep -q '^uid=61 gid=62' "$SHARED/root.seen"
  grep -qx '/tmp/by61 61:62' "$SHARED/root.seen"
  diff "$SHARED/root.seen" "$SHARED/single.seen"
}

@test "owners: single mode leaves a chown outside the overlay (tmpfs, /dev/shm) to the kernel and records nothing" {
  cat > "$SHARED/ctx/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE
RUN --mount=type=tmpfs,target=/scratch touch /scratch/f /dev/shm/g && chown 0:0 /scratch/f /dev/shm/g && \
    { chown 77:77 /dev/shm/g 2> /shm.err || true; } && stat -c %u:%g /dev/shm/g > /shm.seen && \
    stat -c %u:%g /proc/self/status > /other.seen && touch /made
EOF
  obuild single single
  layer_owners single 1 > "$SHARED/single.layers"
  cat "$SHARED/single.layers"
  ! grep -q ' 77:77$' "$SHARED/single.layers"
  # The kernel's answers: the one mapped id works, an unmapped one does not.
  grep -q 'Invalid argument' <(image_file single shm.err)
  [ "$(image_file single shm.seen)" = 0:0 ]
  [ "$(image_file single other.seen)" = 0:0 ]
  grep -qx 'made file 0644 0:0' "$SHARED/single.layers"
}
