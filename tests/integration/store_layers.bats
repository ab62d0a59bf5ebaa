#!/usr/bin/env bats
# The layer store against hostile and foreign input, through the real pull
# path (`kiln pull --store` from docker-registry on loopback):
# - a tar bomb of a million empty files is refused at the per-layer entry
#   limit (KILN_MAX_LAYER_ENTRIES, lowered here so the test stays fast), with
#   the layer named, nothing published, no temp dir, nothing outside the store
#   and memory that depends on the limit, not on the bomb;
# - images made by other tools (buildah, umoci) with whiteouts, opaque
#   directories, hardlinks, setuid files and file capabilities are extracted
#   by kiln's store, written back as layers by kiln's layer writer and
#   compared member by member with independent tar readers.
load helpers

setup() {
  kiln_setup
  STORE=$TEST_TMP/store
}
teardown() {
  # A buildah test that failed half-way: its containers, images and mounts.
  if [ -d "$TEST_TMP/bst" ]; then
    buildah --root "$TEST_TMP/bst" --runroot "$TEST_TMP/brun" --storage-driver overlay rm -a >/dev/null 2>&1
    buildah --root "$TEST_TMP/bst" --runroot "$TEST_TMP/brun" --storage-driver overlay rmi -a -f >/dev/null 2>&1
    awk -v d="$TEST_TMP/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
      while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  fi
  kiln_teardown
}

pull_store() { # REF [ARGS...]
  local ref=$1
  shift
  "$KILN" pull --insecure-registry "$REGISTRY" --store --root "$STORE" "$ref" "$@" 2>&1
}

# push_layers NAME LAYER...: an image made of these blobs, pushed by skopeo.
push_layers() {
  local name=$1
  shift
  python3 "$KILN_SRC/tests/store/mkimage.py" "$TEST_TMP/layout" "$name" "$@" >/dev/null
  skopeo copy -q --dest-tls-verify=false "oci:$TEST_TMP/layout:$name" "docker://$REGISTRY/test/$name:1"
}

# max_rss_kb CMD...: run CMD (output to $TEST_TMP/cmd.out), print its peak RSS
# in KB, return its exit status.
max_rss_kb() {
  python3 -c '
import resource, subprocess, sys
with open(sys.argv[1], "wb") as out:
    rc = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)' "$TEST_TMP/cmd.out" "$@"
}

# relayer_build: tests/store/relayer.c against the library kiln was built
# from -> $RELAYER.
relayer_build() {
  local lib=$KILN_SRC/build/libkiln.a
  [ -f "$lib" ] || make -s -C "$KILN_SRC" build/libkiln.a >&2
  RELAYER=$TEST_TMP/relayer
  cc -std=gnu11 -O1 -D_GNU_SOURCE -I"$KILN_SRC/src" -o "$RELAYER" "$KILN_SRC/tests/store/relayer.c" "$lib" \
    $(pkg-config --libs libseccomp libcap libarchive libcurl yajl fuse3 liburing libcrypto zlib libzstd libisal) -lm -pthread
}

# tree_manifest DIR: one sorted line per fact of a tree GNU tar extracted:
# type, mode, owner, size, mtime (whole seconds) of files and fifos; type,
# mode, owner of directories; device numbers; symlink targets; sha256 of
# contents; every xattr (getfattr, hex); hardlink groups by name. Whiteout
# markers count by name only (their own metadata means nothing).
tree_manifest() {
  (
    cd "$1" || exit 1
    find . -mindepth 1 -name '.wh.*' -printf '%p marker\n'
    find . -mindepth 1 ! -name '.wh.*' \( -type f -o -type p \) -printf '%p %y %m %U:%G size=%s mtime=%T@\n' |
      sed -E 's/(mtime=-?[0-9]+)\.[0-9]+$/\1/'
    find . -mindepth 1 -type d -printf '%p %y %m %U:%G\n'
    find . -mindepth 1 -type l -printf '%p %y %U:%G -> %l\n'
    find . -mindepth 1 \( -type c -o -type b \) -exec stat -c '%n %F %a %u:%g dev=%t,%T' {} +
    find . -type f ! -name '.wh.*' -exec sha256sum {} + | awk '{print $2, "sha256=" $1}'
    getfattr -R -h -d -m - -e hex . 2>/dev/null | awk '/^# file: /{f=$3; next} NF{print f, "xattr", $0}'
    find . -type f -links +1 -printf '%i %p\n' | sort |
      awk '{g[$1] = g[$1] " " $2} END {for (i in g) print "hardlinks" g[i]}'
  ) | LC_ALL=C sort
}

# gnutar_compare A B: extract both layer blobs with GNU tar as root (owners,
# modes, xattrs incl. security.capability, devices) and compare the trees.
gnutar_compare() {
  local x
  for x in a b; do
    rm -rf "$TEST_TMP/gt-$x"
    mkdir "$TEST_TMP/gt-$x"
  done
  tar -C "$TEST_TMP/gt-a" --xattrs --xattrs-include='*' --numeric-owner --same-owner -xpf "$1"
  tar -C "$TEST_TMP/gt-b" --xattrs --xattrs-include='*' --numeric-owner --same-owner -xpf "$2"
  tree_manifest "$TEST_TMP/gt-a" > "$TEST_TMP/gt-a.txt"
  tree_manifest "$TEST_TMP/gt-b" > "$TEST_TMP/gt-b.txt"
  diff -u "$TEST_TMP/gt-a.txt" "$TEST_TMP/gt-b.txt"
  rm -rf "$TEST_TMP/gt-a" "$TEST_TMP/gt-b"
}

# roundtrip_image REF: pull REF into the store with kiln, write every layer
# back from its index and tree with kiln's layer writer, and compare each
# with its original blob twice: Python's tarfile (tests/store/tarcmp.py, from
# the headers) and GNU tar (extracted trees). The originals are listed with
# GNU tar into $TEST_TMP/orig.lst (for the caller's checks that the features
# under test are really there).
roundtrip_image() {
  local ref=$1 d hex diff n=0
  run pull_store "$ref"
  [ "$status" -eq 0 ] || { echo "$output"; return 1; }
  : > "$TEST_TMP/orig.lst"
  for d in $(skopeo inspect --raw --tls-verify=false "docker://$ref" |
             python3 -c 'import json, sys; print(*(l["digest"] for l in json.load(sys.stdin)["layers"]))'); do
    hex=${d#sha256:}
    diff=$(cat "$STORE/diffids/sha256/$hex")
    "$RELAYER" "$STORE" "$diff" "$TEST_TMP/rt.tar.zst" zstd
    # The original as the readers get it: decompressed by zcat, and padded
    # with zero blocks, because umoci 0.4.7's `insert` layers end without
    # them (umoci#436), which GNU tar and tarfile refuse to read.
    zcat -f "$STORE/blobs/sha256/$hex" > "$TEST_TMP/orig.tar"
    sz=$(stat -c %s "$TEST_TMP/orig.tar")
    truncate -s $(((sz + 511) / 512 * 512 + 1024)) "$TEST_TMP/orig.tar"
    tar --xattrs --xattrs-include='*' --numeric-owner -tvvf "$TEST_TMP/orig.tar" >> "$TEST_TMP/orig.lst"
    echo "# layer $((n + 1)) $d: $(python3 "$KILN_SRC/tests/store/tarcmp.py" "$TEST_TMP/orig.tar" \
      "$TEST_TMP/rt.tar.zst" | tail -1)" >&3
    python3 "$KILN_SRC/tests/store/tarcmp.py" "$TEST_TMP/orig.tar" "$TEST_TMP/rt.tar.zst"
    gnutar_compare "$TEST_TMP/orig.tar" "$TEST_TMP/rt.tar.zst"
    n=$((n + 1))
  done
  [ "$n" -gt 0 ]
}

# The features the round trips are about, as GNU tar lists the originals.
orig_has_features() {
  local f=$TEST_TMP/orig.lst
  grep -q '/\.wh\.[^.]' "$f" || { echo "no whiteout"; return 1; }
  grep -q '/\.wh\.\.wh\.\.opq' "$f" || { echo "no opaque marker"; return 1; }
  grep -q ' link to ' "$f" || { echo "no hardlink"; return 1; }
  grep -q '^-rws' "$f" || { echo "no setuid file"; return 1; }
  grep -q '^-rwxr-s' "$f" || { echo "no setgid file"; return 1; }
  grep -q 'x: 20 security.capability' "$f" || { echo "no file capability"; return 1; }
  grep -q 'x: 5 user.note' "$f" || { echo "no user xattr"; return 1; }
  grep -q '^p' "$f" || { echo "no fifo"; return 1; }
  grep -q ' -> ping$' "$f" || { echo "no symlink"; return 1; }
  grep -q ' 1000/1000 ' "$f" || { echo "no non-root owner"; return 1; }
}

# populate ROOTFS: the first layer's content, made with host tools as root.
populate() {
  local m=$1
  mkdir -p "$m/usr/bin" "$m/etc" "$m/opt/app/sub" "$m/var/lib/gone/x" "$m/tmp" "$m/home/u"
  chmod 1777 "$m/tmp"
  printf 'ELF\0data' > "$m/usr/bin/ping"
  chmod 4755 "$m/usr/bin/ping"
  setcap cap_net_raw+ep "$m/usr/bin/ping"
  cp /bin/true "$m/usr/bin/sgid"
  chown 0:42 "$m/usr/bin/sgid"
  chmod 2755 "$m/usr/bin/sgid"
  ln "$m/usr/bin/ping" "$m/usr/bin/ping4"
  ln -s ping "$m/usr/bin/ping6"
  echo old > "$m/opt/app/old"
  echo sub > "$m/opt/app/sub/f"
  echo gone > "$m/var/lib/gone/x/f"
  echo keep > "$m/etc/keep"
  echo del > "$m/etc/del"
  setfattr -n user.note -v hello "$m/etc/keep"
  mkfifo "$m/etc/fifo"
  echo secret > "$m/home/u/.profile"
  chown -R 1000:1000 "$m/home/u"
  chmod 0600 "$m/home/u/.profile"
  chmod 2750 "$m/home/u"
  head -c 300000 /dev/urandom > "$m/opt/big"
  touch -d '2001-02-03 04:05:06' "$m/opt/big"
}

store_untouched() {
  [ -z "$(ls -A "$STORE/layers/sha256")" ] || { ls -la "$STORE/layers/sha256"; return 1; }
  [ -z "$(ls -A "$STORE/diffids/sha256")" ] || { ls -la "$STORE/diffids/sha256"; return 1; }
  [ -z "$(ls -A "$STORE/tmp")" ] || { ls -la "$STORE/tmp"; return 1; }
}

@test "tar bomb: a million empty files is refused at the entry limit, nothing left behind" {
  registry_start
  t0=$SECONDS
  python3 "$KILN_SRC/tests/store/mkbomb.py" 1000000 "$TEST_TMP/bomb.tar.gz"
  # 1,000,000 files + 1,000 directories, as GNU tar sees the stream.
  [ "$(zcat "$TEST_TMP/bomb.tar.gz" | wc -c)" -eq $((1001000 * 512 + 1024)) ]
  [ "$(zcat "$TEST_TMP/bomb.tar.gz" | tar -tvf - 2>/dev/null | head -3 | awk '{print $1, $6}' | tr '\n' ' ')" = \
    "drwxr-xr-x bomb/d0000/ -rw-r--r-- bomb/d0000/f0000000 -rw-r--r-- bomb/d0000/f0000001 " ]
  push_layers bomb "$TEST_TMP/bomb.tar.gz"
  layer=sha256:$(sha256sum < "$TEST_TMP/bomb.tar.gz" | cut -d' ' -f1)
  echo "# bomb made and pushed in $((SECONDS - t0)) s" >&3

  mkdir "$TEST_TMP/cwd"
  cd "$TEST_TMP/cwd"
  t0=$SECONDS
  KILN_MAX_LAYER_ENTRIES=10000 run max_rss_kb "$KILN" pull --insecure-registry "$REGISTRY" --store \
    --root "$STORE" "$REGISTRY/test/bomb:1"
  echo "# refused after $((SECONDS - t0)) s, peak RSS ${lines[-1]} KB" >&3
  cat "$TEST_TMP/cmd.out"
  [ "$status" -eq 1 ]
  grep -q "layer $layer" "$TEST_TMP/cmd.out"
  grep -q "layer has more than 10000 members (a tar bomb?); set KILN_MAX_LAYER_ENTRIES" "$TEST_TMP/cmd.out"
  # Memory follows the limit, not the million members behind it.
  [ "${lines[-1]}" -lt 100000 ]
  store_untouched
  [ ! -e "$STORE/blobs/sha256/${layer#sha256:}" ]
  [ -z "$(ls -A "$TEST_TMP/cwd")" ]
  # Not one member of the bomb exists anywhere under the test's directory.
  [ -z "$(find "$TEST_TMP" -name 'f00*' -print -quit)" ]
}

@test "tar bomb: the entry limit is exact and KILN_MAX_LAYER_ENTRIES is validated" {
  registry_start
  # 5,000 files in 5 directories: 5,005 members.
  python3 "$KILN_SRC/tests/store/mkbomb.py" 5000 "$TEST_TMP/small.tar.gz" --dirs 5
  push_layers small "$TEST_TMP/small.tar.gz"
  KILN_MAX_LAYER_ENTRIES=5004 run pull_store "$REGISTRY/test/small:1"
  [ "$status" -eq 1 ]
  [[ $output == *"layer has more than 5004 members"* ]]
  store_untouched
  for bad in abc 0 -1 12x 99999999999999999999 4294967295; do
    KILN_MAX_LAYER_ENTRIES=$bad run pull_store "$REGISTRY/test/small:1"
    [ "$status" -eq 1 ]
    [[ $output == *"invalid KILN_MAX_LAYER_ENTRIES '$bad'"* ]]
  done
  KILN_MAX_LAYER_ENTRIES=5005 run pull_store "$REGISTRY/test/small:1"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  diff=$(cat "$STORE"/diffids/sha256/*)
  [ "$(find "$STORE/layers/sha256/${diff#sha256:}/tree" -type f | wc -l)" -eq 5000 ]
  [ -z "$(ls -A "$STORE/tmp")" ]
}

@test "round trip: buildah image (whiteouts, opaque dir, hardlinks, setuid, capabilities) through the store" {
  require_root "buildah's overlay storage and setcap need root"
  command -v buildah >/dev/null || skip "buildah is not installed"
  registry_start
  relayer_build
  B=(buildah --root "$TEST_TMP/bst" --runroot "$TEST_TMP/brun" --storage-driver overlay)
  c=$("${B[@]}" from scratch)
  m=$("${B[@]}" mount "$c")
  populate "$m"
  "${B[@]}" umount "$c"
  "${B[@]}" commit -q --format oci "$c" one >/dev/null
  "${B[@]}" rm "$c" >/dev/null
  c=$("${B[@]}" from one)
  m=$("${B[@]}" mount "$c")
  # Second layer: deletions (whiteouts), a directory replaced (overlayfs
  # marks it opaque), a new hardlink, a changed file.
  rm "$m/etc/del"
  rm -rf "$m/var/lib/gone" "$m/opt/app"
  mkdir "$m/opt/app"
  echo new > "$m/opt/app/new"
  ln "$m/etc/keep" "$m/etc/keep2"
  echo changed > "$m/opt/big"
  "${B[@]}" umount "$c"
  "${B[@]}" commit -q --format oci "$c" two >/dev/null
  "${B[@]}" rm "$c" >/dev/null
  "${B[@]}" push -q --tls-verify=false two "docker://$REGISTRY/test/buildah:1"
  "${B[@]}" rmi -a -f >/dev/null
  roundtrip_image "$REGISTRY/test/buildah:1"
  orig_has_features
}

@test "round trip: umoci image (repack whiteouts, insert --opaque, --whiteout, devices) through the store" {
  require_root "umoci unpack/repack with true owners, device nodes and setcap need root"
  registry_start
  relayer_build
  U=$TEST_TMP/umoci
  umoci init --layout "$U"
  umoci new --image "$U:t"
  umoci unpack --image "$U:t" "$TEST_TMP/b1" >/dev/null
  populate "$TEST_TMP/b1/rootfs"
  mkdir "$TEST_TMP/b1/rootfs/dev"
  mknod "$TEST_TMP/b1/rootfs/dev/null" c 1 3
  mknod "$TEST_TMP/b1/rootfs/dev/sda" b 8 0
  umoci repack --image "$U:t" "$TEST_TMP/b1"
  rm -rf "$TEST_TMP/b1"
  umoci unpack --image "$U:t" "$TEST_TMP/b2" >/dev/null
  rm "$TEST_TMP/b2/rootfs/etc/del"
  rm -rf "$TEST_TMP/b2/rootfs/var/lib/gone"
  ln "$TEST_TMP/b2/rootfs/etc/keep" "$TEST_TMP/b2/rootfs/etc/keep2"
  umoci repack --image "$U:t" "$TEST_TMP/b2"
  rm -rf "$TEST_TMP/b2"
  mkdir -p "$TEST_TMP/src/app"
  echo new > "$TEST_TMP/src/app/new"
  umoci insert --image "$U:t" --opaque "$TEST_TMP/src/app" /opt/app
  # umoci 0.4.7 writes a whiteout-only layer without the tar end blocks.
  umoci insert --image "$U:t" --whiteout /usr/bin/sgid
  skopeo copy -q --dest-tls-verify=false "oci:$U:t" "docker://$REGISTRY/test/umoci:1"
  roundtrip_image "$REGISTRY/test/umoci:1"
  orig_has_features
  grep -q '^crw-r--r-- *0/0 *1,3 ' "$TEST_TMP/orig.lst"
  grep -q '^brw-r--r-- *0/0 *8,0 ' "$TEST_TMP/orig.lst"
}
