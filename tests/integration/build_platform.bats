#!/usr/bin/env bats
# Multi-platform builds (issue 22): --platform linux/amd64,linux/arm64 builds
# each platform and outputs one OCI image index (registry, --oci-layout,
# --digest-file); the automatic platform ARGs; FROM --platform=$BUILDPLATFORM;
# foreign RUN steps through binfmt_misc emulation, and the clear error when a
# target architecture has no handler. Base: the busybox-multi fixture, an index
# of busybox (amd64) and Debian's busybox-static:arm64, made without kiln
# (scripts/make-base-images.sh). Results are read with skopeo, umoci and jq.

load helpers

CHECK="$BATS_TEST_DIRNAME/../attest/check_attest.py"

# An arm64 RUN step needs a binfmt_misc handler for aarch64 with the F flag
# (qemu-user-static registers it); as root we can mount binfmt_misc and
# register it, else every test that runs arm64 code is skipped.
arm64_emulation() {
  local h=/proc/sys/fs/binfmt_misc
  if [ ! -e "$h/status" ] && [ "$(id -u)" -eq 0 ]; then
    mount -t binfmt_misc binfmt_misc "$h" 2>/dev/null || true
  fi
  if [ ! -e "$h/qemu-aarch64" ] && [ "$(id -u)" -eq 0 ] && command -v update-binfmts >/dev/null; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  fi
  [ -e "$h/qemu-aarch64" ] && head -n1 "$h/qemu-aarch64" | grep -qx enabled \
    && grep -q '^flags: .*F' "$h/qemu-aarch64"
}

setup_file() {
  build_file_setup
  fixtures_push busybox-multi
  export BUSYBOX_MULTI_IMAGE
  if arm64_emulation; then export ARM64_OK=1; else export ARM64_OK=0; fi
}
teardown_file() { registry_stop_all; }
setup() { kiln_setup; }
teardown() {
  # the s390x handler a test switched off
  if [ -n "${S390X_OFF:-}" ]; then echo 1 > /proc/sys/fs/binfmt_misc/qemu-s390x; fi
  kiln_teardown
}

need_arm64() {
  [ "$ARM64_OK" = 1 ] || skip "no binfmt_misc handler for aarch64 with the F flag can be registered here (install qemu-user-static and binfmt-support as root)"
}

kb() {
  "$KILN" build --root "$TEST_TMP/store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_MULTI_IMAGE" "$@"
}

# The two-platform Dockerfile: a RUN in each platform records uname -m and the
# automatic ARGs.
arch_ctx() {
  mkdir -p "$1"
  cat > "$1/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE
ARG TARGETPLATFORM
ARG TARGETARCH
ARG BUILDPLATFORM
RUN uname -m > /arch && echo "$TARGETPLATFORM $TARGETARCH $BUILDPLATFORM" > /args
EOF
}

# file_in LAYOUT:TAG PATH [ARCH]: print PATH of that image, unpacked by umoci.
file_in() {
  local ref=$1 path=$2 arch=${3:-} dir
  dir=$(mktemp -d "$TEST_TMP/unpack.XXXXXX")
  if [ -n "$arch" ]; then
    skopeo copy -q --override-arch "$arch" "oci:$ref" "oci:$dir/l:t" >&2
    ref="$dir/l:t"
  fi
  umoci raw unpack --rootless --image "$ref" "$dir/root" >&2
  cat "$dir/root/$path"
}

@test "two platforms pushed: an index of amd64 and arm64; the arm64 image's RUN ran on aarch64; --digest-file is the index's" {
  need_arm64
  arch_ctx "$TEST_TMP/ctx"
  run kb --platform linux/amd64,linux/arm64 -t "$REGISTRY/kiln/multi:v1" --digest-file "$TEST_TMP/digest" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/kiln/multi:v1" > "$TEST_TMP/index.json"
  jq . "$TEST_TMP/index.json"
  [ "$(jq -r .mediaType "$TEST_TMP/index.json")" = application/vnd.oci.image.index.v1+json ]
  [ "$(jq -r '[.manifests[].platform | .os + "/" + .architecture] | join(",")' "$TEST_TMP/index.json")" = linux/amd64,linux/arm64 ]
  # --digest-file holds the index's digest
  [ "$(cat "$TEST_TMP/digest")" = "sha256:$(sha256sum < "$TEST_TMP/index.json" | cut -d' ' -f1)" ]
  # skopeo picks the arm64 image; its config says arm64 and its RUN saw aarch64
  skopeo copy -q --src-tls-verify=false --override-arch arm64 "docker://$REGISTRY/kiln/multi:v1" "oci:$TEST_TMP/arm:t"
  run skopeo inspect "oci:$TEST_TMP/arm:t"
  [ "$(jq -r .Architecture <<<"$output")" = arm64 ]
  [ "$(file_in "$TEST_TMP/arm:t" arch)" = aarch64 ]
  [ "$(file_in "$TEST_TMP/arm:t" args)" = "linux/arm64 arm64 linux/amd64" ]
  skopeo copy -q --src-tls-verify=false --override-arch amd64 "docker://$REGISTRY/kiln/multi:v1" "oci:$TEST_TMP/amd:t"
  [ "$(file_in "$TEST_TMP/amd:t" arch)" = x86_64 ]
  [ "$(file_in "$TEST_TMP/amd:t" args)" = "linux/amd64 amd64 linux/amd64" ]
}

@test "two platforms to an OCI layout: index.json names the index, each platform's image is complete (umoci)" {
  need_arm64
  arch_ctx "$TEST_TMP/ctx"
  run kb --platform linux/arm64,linux/amd64 --oci-layout "$TEST_TMP/out:multi" --digest-file "$TEST_TMP/digest" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  local d
  d=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "multi") | .digest' "$TEST_TMP/out/index.json")
  [ "$d" = "$(cat "$TEST_TMP/digest")" ]
  jq -e '.mediaType == "application/vnd.oci.image.index.v1+json"' "$TEST_TMP/out/blobs/sha256/${d#sha256:}"
  [ "$(jq -r '[.manifests[].platform.architecture] | join(",")' "$TEST_TMP/out/blobs/sha256/${d#sha256:}")" = arm64,amd64 ]
  [ "$(file_in "$TEST_TMP/out:multi" arch arm64)" = aarch64 ]
  [ "$(file_in "$TEST_TMP/out:multi" arch amd64)" = x86_64 ]
}

@test "FROM --platform=\$BUILDPLATFORM: the stage is the same for every target (a cache hit for the second); cache keys differ per target platform" {
  need_arm64
  mkdir -p "$TEST_TMP/ctx"
  cat > "$TEST_TMP/ctx/Dockerfile" <<'EOF'
ARG BASE
FROM --platform=$BUILDPLATFORM $BASE AS build
RUN uname -m > /built-on && head -c 8 /dev/urandom | od -An -tx1 > /token
FROM $BASE
ARG TARGETARCH
COPY --from=build /built-on /token /
RUN echo "$TARGETARCH" > /target && uname -m > /arch
EOF
  run kb --platform linux/amd64,linux/arm64 --oci-layout "$TEST_TMP/out:m" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  # the build stage ran once (the second platform's is CACHED), on the build platform;
  # progress names each stage's platform as BuildKit does
  grep -m1 -A1 '\[linux/amd64 build 2/2\] RUN' <<<"$output" | grep -q 'cache miss'
  grep -A1 '\[linux/amd64 build 2/2\] RUN' <<<"$output" | tail -n1 | grep -q CACHED
  [ "$(grep -c '\[linux/amd64 build 2/2\] RUN' <<<"$output")" -eq 2 ]
  [ "$(grep -A1 '\[linux/amd64 build 2/2\] RUN' <<<"$output" | grep -c CACHED)" -eq 1 ]
  [[ $output == *"[linux/arm64 stage-1 4/4] RUN"* ]]
  [ "$(file_in "$TEST_TMP/out:m" built-on arm64)" = x86_64 ]
  [ "$(file_in "$TEST_TMP/out:m" token arm64)" = "$(file_in "$TEST_TMP/out:m" token amd64)" ]
  [ "$(file_in "$TEST_TMP/out:m" target arm64)" = arm64 ]
  [ "$(file_in "$TEST_TMP/out:m" arch arm64)" = aarch64 ]
  # A single-platform rebuild for arm64 reuses arm64's entries only: all CACHED,
  # and an amd64 key never answers an arm64 step.
  run kb --platform linux/arm64 --oci-layout "$TEST_TMP/arm:t" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(file_in "$TEST_TMP/arm:t" arch)" = aarch64 ]
  [ "$(file_in "$TEST_TMP/arm:t" token)" = "$(file_in "$TEST_TMP/out:m" token arm64)" ]
}

@test "the same Dockerfile per platform in one store: the arm64 RUN is not a cache hit of the amd64 one" {
  need_arm64
  mkdir -p "$TEST_TMP/ctx"
  printf 'ARG BASE\nFROM $BASE\nRUN uname -m > /arch\n' > "$TEST_TMP/ctx/Dockerfile"
  run kb --platform linux/amd64 --oci-layout "$TEST_TMP/a:t" "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  run kb --platform linux/arm64 --oci-layout "$TEST_TMP/b:t" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output != *CACHED* ]]
  [ "$(file_in "$TEST_TMP/b:t" arch)" = aarch64 ]
}

@test "no binfmt_misc handler for a target architecture: a clear error before anything runs, naming the packages" {
  [ -d /proc/sys/fs/binfmt_misc ] || skip "no /proc/sys/fs/binfmt_misc"
  local h=/proc/sys/fs/binfmt_misc/qemu-s390x
  if [ -e "$h" ] && head -n1 "$h" | grep -qx enabled; then
    [ "$(id -u)" -eq 0 ] || skip "the s390x handler is registered and only root can switch it off"
    echo 0 > "$h"
    S390X_OFF=1
  fi
  mkdir -p "$TEST_TMP/ctx"
  # scratch: no base image to pull for s390x; the check reads the plan
  printf 'FROM scratch\nCOPY Dockerfile /\nRUN echo hi\n' > "$TEST_TMP/ctx/Dockerfile"
  run kb --platform linux/amd64,linux/s390x --oci-layout "$TEST_TMP/o:t" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"linux/s390x"*"binfmt_misc"* ]]
  [[ $output == *qemu-user-static*binfmt-support* ]]
  [[ $output == *"update-binfmts --enable qemu-s390x"* ]]
  # nothing was built for amd64 either: the check comes first
  [[ $output != *"RUN echo hi"* ]]
  [ ! -e "$TEST_TMP/o" ]
}

@test "--tar-path or --sbom-file with several platforms is a clear error; a duplicate platform too; scratch images need no emulation" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM scratch\nCOPY Dockerfile /\n' > "$TEST_TMP/ctx/Dockerfile"
  run kb --platform linux/amd64,linux/arm64 --tar-path "$TEST_TMP/x.tar" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -ne 0 ]
  [[ $output == *"--tar-path"*"docker archive holds one image"*"--oci-layout"* ]]
  run kb --platform linux/amd64,linux/arm64 --sbom --sbom-file "$TEST_TMP/sbom.json" --oci-layout "$TEST_TMP/s:t" "$TEST_TMP/ctx"
  [ "$status" -ne 0 ]
  [[ $output == *"--sbom-file/--provenance-file name one file"*"--oci-layout"* ]]
  [ ! -e "$TEST_TMP/s" ]
  [ ! -e "$TEST_TMP/sbom.json" ]
  run kb --platform linux/amd64,linux/x86_64 --no-push "$TEST_TMP/ctx"
  [ "$status" -ne 0 ]
  [[ $output == *"'linux/amd64' is listed twice"* ]]
  # scratch needs no emulation: an index of two scratch images
  run kb --platform linux/amd64,linux/arm64 --oci-layout "$TEST_TMP/o:t" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  run skopeo inspect --raw "oci:$TEST_TMP/o:t"
  [ "$(jq -r '[.manifests[].platform.architecture] | join(",")' <<<"$output")" = amd64,arm64 ]
}

@test "attestations of two platforms: an SBOM and a provenance per platform image (subject = its manifest, a referrers tag each), files per platform beside the layout; the index digest unchanged" {
  need_arm64
  mkdir -p "$TEST_TMP/ctx"
  # dpkg's status names the architecture the RUN step saw: the arm64 image's
  # SBOM lists an arm64 package only if its RUN ran under aarch64
  cat > "$TEST_TMP/ctx/Dockerfile" <<'DF'
ARG BASE
FROM $BASE
RUN a=$(uname -m) && case $a in aarch64) a=arm64;; x86_64) a=amd64;; esac \
 && mkdir -p /var/lib/dpkg /opt && echo "$a" > /opt/arch \
 && printf 'Package: kiln-arch\nStatus: install ok installed\nArchitecture: %s\nVersion: 1.0\nDescription: x\n\n' "$a" \
    > /var/lib/dpkg/status
DF
  local img=$REGISTRY/kiln/multi-attest:v1 out=$TEST_TMP/out
  run kb --reproducible --platform linux/amd64,linux/arm64 --sbom --provenance -t "$img" --oci-layout "$out:v1" \
    --digest-file "$TEST_TMP/digest" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"pushed 4 attestation(s)"* ]]
  # the same build without attestations (another store): the same index
  run "$KILN" build --root "$TEST_TMP/store2" --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_MULTI_IMAGE" \
    --reproducible --platform linux/amd64,linux/arm64 --no-push --digest-file "$TEST_TMP/digest2" "$TEST_TMP/ctx"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  cmp "$TEST_TMP/digest" "$TEST_TMP/digest2"
  skopeo inspect --raw --tls-verify=false "docker://$img" > "$TEST_TMP/index.json"
  [ "sha256:$(sha256sum < "$TEST_TMP/index.json" | cut -d' ' -f1)" = "$(cat "$TEST_TMP/digest")" ]
  local arch m refs a t f sbom prov
  for arch in amd64 arm64; do
    m=$(jq -r --arg a "$arch" '.manifests[] | select(.platform.architecture == $a) | .digest' "$TEST_TMP/index.json")
    [[ $m == sha256:* ]]
    # the referrers tag of this platform's manifest lists its two artifacts
    refs=$(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/kiln/multi-attest:sha256-${m#sha256:}")
    echo "$arch: $refs"
    [ "$(jq -r '[.manifests[].artifactType] | sort | join(",")' <<<"$refs")" = \
      "application/spdx+json,application/vnd.in-toto+json" ]
    sbom=$out/sbom-linux-$arch.spdx.json prov=$out/provenance-linux-$arch.json
    for a in $(jq -r '.manifests[].digest' <<<"$refs"); do
      skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/kiln/multi-attest@$a" > "$TEST_TMP/art.json"
      [ "$(jq -r .subject.digest "$TEST_TMP/art.json")" = "$m" ]
      # the artifact's document is the file beside the layout
      t=$(jq -r .artifactType "$TEST_TMP/art.json")
      if [ "$t" = application/spdx+json ]; then f=$sbom; else f=$prov; fi
      [ "$(jq -r '.layers[0].digest' "$TEST_TMP/art.json")" = "sha256:$(sha256sum < "$f" | cut -d' ' -f1)" ]
    done
    # the SBOM of each platform lists its own package, the provenance its
    # own image, platform and base image, and its layers' exact file lists
    jq -c '.packages[] | select(.name == "kiln-arch")' "$sbom"
    jq -e --arg a "$arch" '.packages[] | select(.name == "kiln-arch") | .externalRefs[0].referenceLocator
      | endswith("kiln-arch@1.0?arch=" + $a)' "$sbom"
    python3 "$CHECK" provenance "$prov"
    [ "$(jq -r '.subject[0].digest.sha256' "$prov")" = "${m#sha256:}" ]
    [ "$(jq -r .predicate.buildDefinition.externalParameters.platform "$prov")" = "linux/$arch" ]
    [ "$(jq -r '[.predicate.buildDefinition.resolvedDependencies[] | select(.uri | startswith("docker-image://"))
      | .annotations.platform] | join(",")' "$prov")" = "linux/$arch" ]
    python3 "$CHECK" layers "$prov" "$out" "@$m"
    python3 "$CHECK" changes "$prov" 1 /opt/arch=added /var/lib/dpkg/status=added
  done
  # the layout: four artifacts, each with a platform image as its subject
  [ "$(jq '[.manifests[] | select(.artifactType)] | length' "$out/index.json")" -eq 4 ]
}

@test "platforms built at the same time with --jobs 2 (their RUN steps overlap), one after another with --jobs 1 or a FROM --platform=\$BUILDPLATFORM stage" {
  need_arm64
  mkdir -p "$TEST_TMP/ctx"
  # each platform's RUN records when it started and ended (seconds)
  cat > "$TEST_TMP/ctx/Dockerfile" <<'DF'
ARG BASE
FROM $BASE
ARG NONCE
RUN echo $NONCE > /nonce && date +%s > /start && sleep 4 && date +%s > /end
DF
  local jobs a0 a1 r0 r1
  for jobs in 2 1; do
    run kb --jobs "$jobs" --build-arg "NONCE=$jobs" --platform linux/amd64,linux/arm64 --oci-layout "$TEST_TMP/o$jobs:t" \
      "$TEST_TMP/ctx"
    echo "$output"
    [ "$status" -eq 0 ]
    a0=$(file_in "$TEST_TMP/o$jobs:t" start amd64) a1=$(file_in "$TEST_TMP/o$jobs:t" end amd64)
    r0=$(file_in "$TEST_TMP/o$jobs:t" start arm64) r1=$(file_in "$TEST_TMP/o$jobs:t" end arm64)
    echo "jobs $jobs: amd64 $a0-$a1 arm64 $r0-$r1"
    if [ "$jobs" = 2 ]; then
      [[ $output == *"building 2 platforms at once (--jobs 2: 1 per platform)"* ]]
      [ "$a0" -lt "$r1" ]
      [ "$r0" -lt "$a1" ]
    else
      [[ $output == *"building for linux/arm64 (platform 2 of 2)"* ]]
      [ "$a1" -le "$r0" ]
    fi
  done
  # a stage for the build platform: one platform after the other, so the
  # second's is a cache hit
  cat > "$TEST_TMP/ctx/Dockerfile" <<'DF'
ARG BASE
FROM --platform=$BUILDPLATFORM $BASE AS tool
RUN echo tool > /tool
FROM $BASE
COPY --from=tool /tool /
DF
  run kb --jobs 2 --platform linux/amd64,linux/arm64 --no-push "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"building for linux/arm64 (platform 2 of 2)"* ]]
  [[ $output != *"platforms at once"* ]]
  # one platform fails: the other's running step is cancelled, the error names the failed platform
  cat > "$TEST_TMP/ctx/Dockerfile" <<'DF'
ARG BASE
FROM $BASE
RUN if [ "$(uname -m)" = aarch64 ]; then sleep 1; exit 3; fi; sleep 60
DF
  local t0=$SECONDS
  run kb --jobs 2 --platform linux/amd64,linux/arm64 --no-push "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -ne 0 ]
  [ $((SECONDS - t0)) -lt 45 ]
  [[ $output == *"platform linux/arm64"*"3"* ]]
  [[ $output != *"platform linux/amd64:"* ]]
}

@test "COPY --from=IMAGE reads the image of each platform (no emulation needed: no RUN)" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'ARG BASE\nFROM scratch\nARG BASE\nCOPY --from=$BASE /bin/busybox /bb\n' > "$TEST_TMP/ctx/Dockerfile"
  run kb --platform linux/amd64,linux/arm64 --oci-layout "$TEST_TMP/o:t" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 0 ]
  file_in "$TEST_TMP/o:t" bb arm64 > "$TEST_TMP/bb-arm64"
  file_in "$TEST_TMP/o:t" bb amd64 > "$TEST_TMP/bb-amd64"
  file "$TEST_TMP/bb-arm64" | grep -q 'ARM aarch64'
  file "$TEST_TMP/bb-amd64" | grep -q 'x86-64'
}

@test "arm64 RUN steps in every ID mode: root, a plain user with subuid ranges, a plain user in single ID mode" {
  need_arm64
  plain_users kiln-plat
  local u
  for u in root "${PLAIN_USERS[@]}"; do
    mkdir -p "$SHARED/ctx-$u"
    printf 'ARG BASE\nFROM $BASE\nRUN uname -m > /arch && id -u > /uid && touch /f && chown 1:1 /f && stat -c %%u /f > /owner\n' \
      > "$SHARED/ctx-$u/Dockerfile"
    local pre=()
    [ "$u" = root ] || { pre=(run_as "$u"); chmod -R a+rX "$SHARED/ctx-$u"; }
    run "${pre[@]}" "$KILN" build --root "$SHARED/store-$u" --insecure-registry "$REGISTRY" \
      --build-arg "BASE=$BUSYBOX_MULTI_IMAGE" --platform linux/arm64,linux/amd64 --oci-layout "$SHARED/store-$u/out:t" \
      "$SHARED/ctx-$u"
    echo "$u: $output"
    [ "$status" -eq 0 ]
    [ "$(file_in "$SHARED/store-$u/out:t" arch arm64)" = aarch64 ]
    [ "$(file_in "$SHARED/store-$u/out:t" uid arm64)" = 0 ]
    # owners as the native step records them in this ID mode (single: one ID)
    [ "$(file_in "$SHARED/store-$u/out:t" owner arm64)" = "$(file_in "$SHARED/store-$u/out:t" owner amd64)" ]
  done
}

@test "--isolation=ptrace with a foreign platform: a clear error before anything runs" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM scratch\nCOPY Dockerfile /\nRUN echo hi\n' > "$TEST_TMP/ctx/Dockerfile"
  run kb --platform linux/arm64 --isolation ptrace --network host --oci-layout "$TEST_TMP/o:t" "$TEST_TMP/ctx"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ $output == *"RUN steps for linux/arm64 cannot run under --isolation=ptrace"*"--isolation=userns"* ]]
  [[ $output != *"COPY Dockerfile"* ]]
}
