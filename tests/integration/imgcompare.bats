#!/usr/bin/env bats
# Self-test of tests/tools/imgcompare: images built by buildah from small
# Dockerfiles that differ in exactly one respect must compare as different,
# with the right message; identical builds must compare equal.

load helpers

IMGCOMPARE="$KILN_SRC/tests/tools/imgcompare"

# _build NAME: build $D/NAME.Dockerfile (context $D/ctx) into $D/img/NAME:img.
_build() {
  local name=$1
  buildah --root "$D/storage" --runroot "$D/runroot" --storage-driver=vfs \
    bud --isolation=chroot --identity-label=false --layers --no-cache --build-arg BASE="oci:$IC_BASE:latest" \
    -f "$D/$name.Dockerfile" -t "ic-$name" "$D/ctx" > "$D/$name.log" 2>&1 ||
    { cat "$D/$name.log" >&2; return 1; }
  buildah --root "$D/storage" --runroot "$D/runroot" --storage-driver=vfs \
    push --quiet "ic-$name" "oci:$D/img/$name:img" >> "$D/$name.log" 2>&1 ||
    { cat "$D/$name.log" >&2; return 1; }
}

# _variant NAME SED-EXPR: the reference Dockerfile with one edit.
_variant() {
  sed "$2" "$D/ref.Dockerfile" > "$D/$1.Dockerfile"
  grep -q . "$D/$1.Dockerfile"
  ! cmp -s "$D/ref.Dockerfile" "$D/$1.Dockerfile" || { echo "variant $1: edit changed nothing" >&2; return 1; }
}

setup_file() {
  require_root "buildah builds need root here"
  command -v buildah >/dev/null || skip "buildah is not installed"
  export D="$BATS_FILE_TMPDIR/ic"
  mkdir -p "$D/ctx" "$D/img"
  # A copy of the fixture at a path buildah accepts in an oci: reference
  # (lowercase, no '+'; bats temp dirs have capitals).
  export IC_BASE="/tmp/kiln-imgcompare-base.$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  cp -a "$(fixtures_layout busybox)" "$IC_BASE"
  echo "context file" > "$D/ctx/plain"
  cp /bin/true "$D/ctx/capbin"
  cp /bin/true "$D/ctx/nocapbin"
  setcap cap_net_bind_service+ep "$D/ctx/capbin"
  cat > "$D/ref.Dockerfile" <<'EOF'
ARG BASE
FROM $BASE
RUN mkdir /t && echo content > /t/f && chmod 0644 /t/f && touch /t/x && \
    echo linked > /t/a && ln /t/a /t/b && ln -s f /t/sym && mkdir -p /o/keep && touch /o/keep/k
COPY capbin /t/cap
ENV E=1
CMD ["/bin/sh"]
EOF
  _variant mode 's|chmod 0644 /t/f|chmod 0600 /t/f|'
  _variant owner 's|chmod 0644 /t/f|chmod 0644 /t/f \&\& chown 1:1 /t/f|'
  _variant missing 's| && touch /t/x||'
  _variant content 's|echo content > /t/f|echo changed > /t/f|'
  _variant copy 's|ln /t/a /t/b|cp /t/a /t/b|'
  _variant xattr 's|COPY capbin|COPY nocapbin|'
  _variant env 's|ENV E=1|ENV E=2|'
  _variant cmd 's|CMD \["/bin/sh"\]|CMD ["/bin/sh", "-c", "true"]|'
  _variant symlink 's|ln -s f /t/sym|ln -s x /t/sym|'
  # Same tree reached through whiteouts and an opaque directory in later layers.
  cp "$D/ref.Dockerfile" "$D/whiteout.Dockerfile"
  cat >> "$D/whiteout.Dockerfile" <<'EOF'
RUN echo temp > /t/gone && mkdir -p /o/old/deep && touch /o/old/deep/f
RUN rm /t/gone && rm -rf /o && mkdir -p /o/keep && touch /o/keep/k
EOF
  local n
  for n in ref mode owner missing content copy xattr env cmd symlink whiteout; do
    _build "$n"
  done
  # A second, independent build of the reference.
  cp "$D/ref.Dockerfile" "$D/ref2.Dockerfile"
  _build ref2
}

teardown_file() {
  case "${IC_BASE:-}" in /tmp/kiln-imgcompare-base.*) rm -rf "$IC_BASE" ;; esac
}

setup() { kiln_setup; }
teardown() { kiln_teardown; }

# _differs NAME REGEX: comparing ref with NAME exits 1 and prints REGEX.
_differs() {
  run "$IMGCOMPARE" "$D/img/ref:img" "$D/img/$1:img"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output =~ $2 ]]
}

@test "imgcompare: two builds of one Dockerfile are equal" {
  run "$IMGCOMPARE" "$D/img/ref:img" "$D/img/ref2:img"
  echo "$output"
  [ "$status" -eq 0 ]
  run "$IMGCOMPARE" "$D/img/ref:img" "$D/img/ref:img"
  [ "$status" -eq 0 ]
}

@test "imgcompare: mode difference" {
  _differs mode '/t/f: mode 0644 != 0600'
}

@test "imgcompare: owner difference" {
  _differs owner '/t/f: owner 0:0 != 1:1'
}

@test "imgcompare: missing file" {
  _differs missing '/t/x: only in A \(file\)'
  run "$IMGCOMPARE" "$D/img/missing:img" "$D/img/ref:img"
  [ "$status" -eq 1 ]
  [[ $output =~ '/t/x: only in B (file)' ]]
}

@test "imgcompare: content difference" {
  _differs content '/t/f: content sha256:[0-9a-f]{16} \(8 bytes\) != sha256:[0-9a-f]{16} \(8 bytes\)'
}

@test "imgcompare: hardlink vs copy" {
  _differs copy '/t/a: links \[/t/b\] != \(none\)'
  [[ $output =~ '/t/b: links [/t/a] != (none)' ]]
}

@test "imgcompare: xattr (file capability) difference" {
  _differs xattr '/t/cap: xattrs security.capability=01000002[0-9a-f]+ != \(none\)'
}

@test "imgcompare: Env and Cmd differences" {
  _differs env 'config.Env E: 1 != 2'
  _differs cmd 'config.Cmd: \["/bin/sh"\] != \["/bin/sh", "-c", "true"\]'
}

@test "imgcompare: symlink target difference" {
  _differs symlink '/t/sym: target f != x'
}

@test "imgcompare: whiteouts and opaque dirs are applied (equal tree, layer count only noted)" {
  run "$IMGCOMPARE" "$D/img/ref:img" "$D/img/whiteout:img"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output =~ 'note: layers: 3 != 5' ]]
  [[ $output =~ 'note: history (L=layer, E=empty_layer): LLLEE != LLLEELL' ]]
  run "$IMGCOMPARE" --strict-layers "$D/img/ref:img" "$D/img/whiteout:img"
  [ "$status" -eq 1 ]
  [[ $output =~ 'layers: 3 != 5' ]]
}

@test "imgcompare: --ignore, --ignore-field and --json" {
  run "$IMGCOMPARE" --ignore '/t/f' "$D/img/ref:img" "$D/img/mode:img"
  [ "$status" -eq 0 ]
  run "$IMGCOMPARE" --ignore '/t' "$D/img/ref:img" "$D/img/copy:img"
  [ "$status" -eq 0 ]
  run "$IMGCOMPARE" --ignore-field mode "$D/img/ref:img" "$D/img/mode:img"
  [ "$status" -eq 0 ]
  run "$IMGCOMPARE" --ignore-field Env "$D/img/ref:img" "$D/img/env:img"
  [ "$status" -eq 0 ]
  run "$IMGCOMPARE" --json "$D/img/ref:img" "$D/img/owner:img"
  [ "$status" -eq 1 ]
  echo "$output" | jq -e '.equal == false and (.differences | length) == 1 and .differences[0].field == "owner" and .differences[0].a == "0:0"'
}

@test "imgcompare: --mtimes compares mtimes" {
  run "$IMGCOMPARE" --mtimes "$D/img/ref:img" "$D/img/ref2:img"
  echo "$output"
  [ "$status" -eq 1 ]
  local re=': mtime [0-9]+ != [0-9]+'
  [[ $output =~ $re ]]
}

@test "imgcompare: --dump prints the model" {
  run "$IMGCOMPARE" --dump "$D/img/ref:img"
  [ "$status" -eq 0 ]
  [[ $output =~ 'file    0644 0:0 8 sha256:' ]]
  [[ $output =~ '/t/a links=/t/b' ]]
  [[ $output =~ 'symlink 0777 0:0 mtime='[0-9]+' /t/sym -> f' ]]
  [[ $output =~ 'xattr:security.capability=' ]]
}

@test "imgcompare: bad input exits 2 with a message" {
  run "$IMGCOMPARE" "$D/img/ref:img"
  [ "$status" -eq 2 ]
  run "$IMGCOMPARE" "$D/img/ref:nosuchtag" "$D/img/ref:img"
  [ "$status" -eq 2 ]
  [[ $output =~ "no image tagged 'nosuchtag'" ]]
  run "$IMGCOMPARE" "$TEST_TMP/none" "$D/img/ref:img"
  [ "$status" -eq 2 ]
  [[ $output =~ 'is not an OCI layout' ]]
  run "$IMGCOMPARE" --ignore-field Bogus "$D/img/ref:img" "$D/img/ref:img"
  [ "$status" -eq 2 ]
  # A corrupted blob is an input error, not a difference.
  cp -a "$D/img/ref" "$TEST_TMP/bad"
  local cfg
  cfg=$(jq -r '.manifests[0].digest' "$TEST_TMP/bad/index.json")
  cfg=$(jq -r '.layers[-1].digest' "$TEST_TMP/bad/blobs/sha256/${cfg#sha256:}")
  chmod u+w "$TEST_TMP/bad/blobs/sha256/${cfg#sha256:}"
  printf 'x' >> "$TEST_TMP/bad/blobs/sha256/${cfg#sha256:}"
  run "$IMGCOMPARE" "$TEST_TMP/bad:img" "$D/img/ref:img"
  [ "$status" -eq 2 ]
  [[ $output =~ 'does not match its digest' ]]
}
