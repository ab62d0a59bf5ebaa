#!/usr/bin/env bats
# --sbom / --provenance (issue 22 items 3-5): the SPDX SBOM against
# dpkg-query inside the image and the SPDX 2.3 schema, npm/apk/Python
# packages with purls, the provenance's per-layer file lists against the
# layers' tars, the attachments (referrers tag, OCI layout), and the image
# digest unchanged by them. Checks: tests/attest/check_attest.py.
load helpers

CHECK="$BATS_TEST_DIRNAME/../attest/check_attest.py"

setup_file() {
  kiln_setup
  [ "$(id -u)" -ne 0 ] || chmod 0666 /dev/fuse
  registry_start
  fixtures_push all
  export REGISTRY DEBIAN_IMAGE BUSYBOX_IMAGE
  export STORE="$BATS_FILE_TMPDIR/store"
}

teardown_file() { registry_stop_all; }

setup() { kiln_setup; }
teardown() { kiln_teardown; }

kb() {
  "$KILN" build --root "$STORE" --insecure-registry "$REGISTRY" --progress plain "$@"
}

# a Debian image whose RUN step adds, modifies, deletes, changes only the
# mode of, and replaces a directory (opaque) of files, and registers a
# package in dpkg's status; then an npm project
debian_ctx() {
  mkdir -p "$1/app"
  cat >"$1/Dockerfile" <<DF
FROM $DEBIAN_IMAGE
RUN mkdir -p /opt/x && echo hi > /opt/x/a && rm -f /etc/issue.net && echo changed >> /etc/issue \
 && chmod 600 /etc/debian_version && rm -rf /usr/share/doc/adduser && mkdir /usr/share/doc/adduser \
 && touch /usr/share/doc/adduser/new \
 && printf '\nPackage: kiln-fake\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0-1\nDescription: x\n' \
    >> /var/lib/dpkg/status \
 && printf '\nPackage: kiln-removed\nStatus: deinstall ok config-files\nArchitecture: all\nVersion: 2.0\nDescription: x\n' \
    >> /var/lib/dpkg/status
COPY app /app
DF
  cat >"$1/app/package-lock.json" <<'JS'
{"name":"demo","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{
 "":{"name":"demo","version":"1.0.0","dependencies":{"left-pad":"^1.3.0","@types/node":"20.1.0"}},
 "node_modules/left-pad":{"version":"1.3.0","license":"WTFPL"},
 "node_modules/@types/node":{"version":"20.1.0","license":"MIT"}}}
JS
}

@test "attest: Debian SBOM equals dpkg-query, npm purls, valid SPDX 2.3; provenance file lists equal the layer tars; pushed with the referrers tag" {
  debian_ctx "$TEST_TMP/ctx"
  local img=$REGISTRY/attest/deb:1 out=$TEST_TMP/out
  run kb --reproducible --sbom --provenance --sbom-file "$TEST_TMP/sbom.json" --provenance-file "$TEST_TMP/prov.json" \
    -t "$img" --oci-layout "$out:v1" --digest-file "$TEST_TMP/digest" "$TEST_TMP/ctx"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ $output == *"pushed 2 attestation(s)"* ]]
  local digest; digest=$(cat "$TEST_TMP/digest")

  # SBOM
  python3 "$CHECK" spdx "$TEST_TMP/sbom.json"
  # dpkg-query -W also lists removed packages whose config files remain
  # (config-files): their software is gone, the SBOM leaves them out
  "$KILN" run --root "$STORE" --oci-layout "$out:v1" dpkg-query -W -f '${db:Status-Status} ${Package}\t${Version}\n' \
    >"$TEST_TMP/dpkg-all" 2>"$TEST_TMP/run.err" || { cat "$TEST_TMP/run.err"; false; }
  grep -q '^config-files kiln-removed	2.0$' "$TEST_TMP/dpkg-all"
  awk '$1 != "config-files" && $1 != "not-installed"' "$TEST_TMP/dpkg-all" | cut -d' ' -f2- >"$TEST_TMP/dpkg"
  grep -q '^kiln-fake	1.0-1$' "$TEST_TMP/dpkg"
  ! jq -e '.packages[] | select(.name == "kiln-removed")' "$TEST_TMP/sbom.json"
  python3 "$CHECK" debs "$TEST_TMP/sbom.json" "$TEST_TMP/dpkg"
  python3 "$CHECK" purls "$TEST_TMP/sbom.json" pkg:npm/left-pad@1.3.0 pkg:npm/%40types/node@20.1.0 \
    "pkg:deb/debian/kiln-fake@1.0-1?arch=all"
  # the layer that introduced each package
  [[ $(jq -r '.packages[] | select(.name == "kiln-fake") | .sourceInfo' "$TEST_TMP/sbom.json") == "layer 1 "* ]]
  [[ $(jq -r '.packages[] | select(.name == "adduser") | .sourceInfo' "$TEST_TMP/sbom.json") == "layer 0 "* ]]
  [[ $(jq -r '.packages[] | select(.name == "left-pad") | .sourceInfo' "$TEST_TMP/sbom.json") == "layer 2 "*"/app/package-lock.json" ]]
  [ "$(jq -r '.packages[] | select(.name == "left-pad") | .licenseDeclared' "$TEST_TMP/sbom.json")" = WTFPL ]

  # provenance
  python3 "$CHECK" provenance "$TEST_TMP/prov.json"
  python3 "$CHECK" layers "$TEST_TMP/prov.json" "$out" v1
  python3 "$CHECK" changes "$TEST_TMP/prov.json" 1 /etc/issue=modified /etc/issue.net=deleted /opt/x=added \
    /opt/x/a=added /etc/debian_version=metadata /etc=metadata /var/lib/dpkg/status=modified
  python3 "$CHECK" changes "$TEST_TMP/prov.json" 2 /app=added /app/package-lock.json=added
  [ "$(jq -r '.subject[0].digest.sha256' "$TEST_TMP/prov.json")" = "${digest#sha256:}" ]
  # no --platform: the image's own
  [ "$(jq -r .predicate.buildDefinition.externalParameters.platform "$TEST_TMP/prov.json")" = \
    "linux/$(dpkg --print-architecture)" ]
  [[ $(jq -r '.predicate.runDetails.byproducts[1].annotations.step' "$TEST_TMP/prov.json") == "stage 0 step 2: RUN "* ]]
  [ "$(jq -r '.predicate.buildDefinition.externalParameters.dockerfileDigest' "$TEST_TMP/prov.json")" = \
    "sha256:$(sha256sum "$TEST_TMP/ctx/Dockerfile" | cut -d' ' -f1)" ]
  jq -e --arg u "docker-image://$DEBIAN_IMAGE" '.predicate.buildDefinition.resolvedDependencies[] | select(.uri == $u) | .digest.sha256' "$TEST_TMP/prov.json"

  # OCI layout: the documents beside it, artifacts in index.json whose subject is the image
  cmp "$out/sbom.spdx.json" "$TEST_TMP/sbom.json"
  cmp "$out/provenance.json" "$TEST_TMP/prov.json"
  local n=0 m
  for m in $(jq -r '.manifests[] | select(.annotations == null) | .digest' "$out/index.json"); do
    [ "$(jq -r .subject.digest "$out/blobs/sha256/${m#sha256:}")" = "$digest" ]
    n=$((n + 1))
  done
  [ "$n" -eq 2 ]

  # registry: the referrers tag lists both artifacts; each names the image as its subject
  run skopeo inspect --tls-verify=false --raw "docker://$REGISTRY/attest/deb:sha256-${digest#sha256:}"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  local idx=$output
  [ "$(jq -r '[.manifests[].artifactType] | sort | join(",")' <<<"$idx")" = \
    "application/spdx+json,application/vnd.in-toto+json" ]
  for m in $(jq -r '.manifests[].digest' <<<"$idx"); do
    run skopeo inspect --tls-verify=false --raw "docker://$REGISTRY/attest/deb@$m"
    [ "$status" -eq 0 ]
    [ "$(jq -r .subject.digest <<<"$output")" = "$digest" ]
  done
  # the image itself is untouched
  run skopeo inspect --tls-verify=false --raw "docker://$img"
  [ "$(printf '%s' "$output" | sha256sum | cut -d' ' -f1)" = "${digest#sha256:}" ]

  # pushed again with the SBOM only: the tag keeps listing the provenance,
  # and the (reproducible, identical) SBOM once
  run kb --reproducible --attest type=sbom -t "$img" "$TEST_TMP/ctx"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  run skopeo inspect --tls-verify=false --raw "docker://$REGISTRY/attest/deb:sha256-${digest#sha256:}"
  [ "$(jq -r '[.manifests[].digest] | sort | join(",")' <<<"$output")" = \
    "$(jq -r '[.manifests[].digest] | sort | join(",")' <<<"$idx")" ]
}

@test "attest: --reproducible image digest is the same with and without attestations; the documents are reproducible" {
  debian_ctx "$TEST_TMP/ctx"
  run "$KILN" build --root "$TEST_TMP/s1" --insecure-registry "$REGISTRY" --reproducible --no-push \
    --digest-file "$TEST_TMP/d1" "$TEST_TMP/ctx"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  run "$KILN" build --root "$TEST_TMP/s2" --insecure-registry "$REGISTRY" --reproducible --no-push --sbom \
    --provenance --sbom-file "$TEST_TMP/sbom2" --provenance-file "$TEST_TMP/prov2" --digest-file "$TEST_TMP/d2" \
    "$TEST_TMP/ctx"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  cmp "$TEST_TMP/d1" "$TEST_TMP/d2"
  # again in the same store (every step a cache hit): the same documents
  run "$KILN" build --root "$TEST_TMP/s2" --insecure-registry "$REGISTRY" --reproducible --no-push --sbom \
    --provenance --sbom-file "$TEST_TMP/sbom3" --provenance-file "$TEST_TMP/prov3" --digest-file "$TEST_TMP/d3" \
    "$TEST_TMP/ctx"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  cmp "$TEST_TMP/d1" "$TEST_TMP/d3"
  cmp "$TEST_TMP/sbom2" "$TEST_TMP/sbom3"
  cmp "$TEST_TMP/prov2" "$TEST_TMP/prov3"
  [ "$(jq -r .creationInfo.created "$TEST_TMP/sbom2")" = 1970-01-01T00:00:00Z ]
}

@test "attest: apk, Python dist-info, node_modules and Go binary packages with purls; a deleted one is left out" {
  mkdir -p "$TEST_TMP/ctx/root/lib/apk/db" "$TEST_TMP/ctx/root/etc" \
    "$TEST_TMP/ctx/root/usr/lib/python3/dist-packages/Typing_Extensions-4.7.1.dist-info" \
    "$TEST_TMP/ctx/root/usr/lib/python3/dist-packages/gone-1.0.dist-info" \
    "$TEST_TMP/ctx/root/srv/node_modules/left-pad" "$TEST_TMP/ctx/root/srv/node_modules/@scope/pkg"
  printf 'ID=alpine\nVERSION_ID=3.19.0\n' >"$TEST_TMP/ctx/root/etc/os-release"
  # a Go binary (Debian's umoci: GOPATH build, so only the standard library)
  mkdir -p "$TEST_TMP/ctx/root/usr/local/bin"
  cp /usr/bin/umoci "$TEST_TMP/ctx/root/usr/local/bin/"
  local gover; gover=$(python3 "$CHECK" gover /usr/bin/umoci)
  printf 'C:Q1x=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\n' \
    >"$TEST_TMP/ctx/root/lib/apk/db/installed"
  printf 'Metadata-Version: 2.1\nName: Typing_Extensions\nVersion: 4.7.1\nLicense: PSF\n\nbody\n' \
    >"$TEST_TMP/ctx/root/usr/lib/python3/dist-packages/Typing_Extensions-4.7.1.dist-info/METADATA"
  printf 'Name: gone\nVersion: 1.0\n' >"$TEST_TMP/ctx/root/usr/lib/python3/dist-packages/gone-1.0.dist-info/METADATA"
  echo '{"name":"left-pad","version":"1.3.0","license":"WTFPL"}' >"$TEST_TMP/ctx/root/srv/node_modules/left-pad/package.json"
  echo '{"name":"@scope/pkg","version":"0.2.0"}' >"$TEST_TMP/ctx/root/srv/node_modules/@scope/pkg/package.json"
  # the lockfile lists left-pad too: one package in the SBOM
  echo '{"lockfileVersion":3,"packages":{"":{"name":"srv"},"node_modules/left-pad":{"version":"1.3.0"},"node_modules/@scope/pkg":{"version":"0.2.0"}}}' \
    >"$TEST_TMP/ctx/root/srv/package-lock.json"
  cat >"$TEST_TMP/ctx/Dockerfile" <<DF
FROM $BUSYBOX_IMAGE
COPY root/ /
RUN rm -rf /usr/lib/python3/dist-packages/gone-1.0.dist-info
DF
  run kb --no-push --sbom --oci-layout "$TEST_TMP/out:v1" "$TEST_TMP/ctx"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  python3 "$CHECK" spdx "$TEST_TMP/out/sbom.spdx.json"
  python3 "$CHECK" purls "$TEST_TMP/out/sbom.spdx.json" "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64" \
    "pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64" pkg:pypi/typing-extensions@4.7.1 pkg:npm/left-pad@1.3.0 \
    pkg:npm/%40scope/pkg@0.2.0 "pkg:golang/stdlib@$gover"
  [[ $(jq -r '.packages[] | select(.name == "stdlib") | .sourceInfo' "$TEST_TMP/out/sbom.spdx.json") == "layer 1 "*": /usr/local/bin/umoci" ]]
  ! jq -e '.packages[] | select(.name == "gone")' "$TEST_TMP/out/sbom.spdx.json"
  [ "$(jq '[.packages[] | select(.name == "left-pad")] | length' "$TEST_TMP/out/sbom.spdx.json")" -eq 1 ]
  [ "$(jq '[.packages[] | select(.name == "@scope/pkg")] | length' "$TEST_TMP/out/sbom.spdx.json")" -eq 1 ]
  [ "$(jq -r '.packages[] | select(.name == "musl") | .licenseDeclared' "$TEST_TMP/out/sbom.spdx.json")" = MIT ]
  # no provenance asked: none written
  [ ! -e "$TEST_TMP/out/provenance.json" ]
}

@test "attest: --attest takes BuildKit's type=sbom|provenance and refuses what it does not know; ADD URLs are materials" {
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM %s\nADD http://%s/v2/ /v2.json\n' "$BUSYBOX_IMAGE" "$REGISTRY" >"$TEST_TMP/ctx/Dockerfile"
  run kb --no-push --attest type=spdx --oci-layout "$TEST_TMP/o:v1" "$TEST_TMP/ctx"
  [ "$status" -eq 2 ]
  [[ $output == *"--attest 'type=spdx': 'type=spdx' is not supported (type=sbom, type=provenance"* ]]
  run kb --no-push --attest mode=max --oci-layout "$TEST_TMP/o:v1" "$TEST_TMP/ctx"
  [ "$status" -eq 2 ]
  [[ $output == *"--attest 'mode=max': expected type=sbom or type=provenance"* ]]
  run kb --no-push --attest type=sbom,generator=x --oci-layout "$TEST_TMP/o:v1" "$TEST_TMP/ctx"
  [ "$status" -eq 2 ]
  [[ $output == *"'generator=x' is not supported"* ]]
  run kb --no-push --attest type=provenance,mode=max --oci-layout "$TEST_TMP/o:v1" "$TEST_TMP/ctx"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [ -s "$TEST_TMP/o/provenance.json" ]
  [ ! -e "$TEST_TMP/o/sbom.spdx.json" ]
  python3 "$CHECK" layers "$TEST_TMP/o/provenance.json" "$TEST_TMP/o" v1
  python3 "$CHECK" changes "$TEST_TMP/o/provenance.json" 1 /v2.json=added
  # an untagged layout: the artifacts' index.json entries carry artifactType,
  # and the image is still the layout's only image
  run kb --no-push --provenance --sbom --oci-layout "$TEST_TMP/untagged" "$TEST_TMP/ctx"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [ "$(jq -r '[.manifests[] | .artifactType // "image"] | sort | join(",")' "$TEST_TMP/untagged/index.json")" = \
    "application/spdx+json,application/vnd.in-toto+json,image" ]
  run "$KILN" run --root "$STORE" --oci-layout "$TEST_TMP/untagged" cat /v2.json
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [[ $output == *"{}"* ]]
  # documents with nowhere to go are made, and the log says so
  run kb --no-push --sbom "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  [[ $output == *"--sbom/--provenance: the documents go nowhere"* ]]
  [ "$(jq -r --arg u "http://$REGISTRY/v2/" '.predicate.buildDefinition.resolvedDependencies[] | select(.uri == $u) | .digest.sha256' "$TEST_TMP/o/provenance.json")" = \
    "$(curl -sf "http://$REGISTRY/v2/" | sha256sum | cut -d' ' -f1)" ]
}

@test "attest: provenance of a stage built FROM a stage (steps named by stage), of symlinks, hardlinks and an opaque directory, and of --single-snapshot" {
  mkdir -p "$TEST_TMP/ctx"
  cat >"$TEST_TMP/ctx/Dockerfile" <<DF
FROM $BUSYBOX_IMAGE AS base
RUN mkdir /a && echo 1 > /a/f && echo x > /a/keep
FROM base
RUN rm -rf /a && mkdir /a && echo 2 > /a/g && ln -s g /a/l && ln /a/g /a/h && echo 1 > /etc/motd-kiln
RUN echo 3 > /a/g && chmod 600 /a/l
DF
  run kb --no-push --provenance --oci-layout "$TEST_TMP/o:v1" "$TEST_TMP/ctx"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  local p=$TEST_TMP/o/provenance.json n
  python3 "$CHECK" provenance "$p"
  python3 "$CHECK" layers "$p" "$TEST_TMP/o" v1
  n=$(jq '.predicate.runDetails.byproducts | length' "$p")
  [[ $(jq -r ".predicate.runDetails.byproducts[$((n - 3))].annotations.step" "$p") == "stage 0 (base) step 2: RUN "* ]]
  [[ $(jq -r ".predicate.runDetails.byproducts[$((n - 2))].annotations.step" "$p") == "stage 1 step 2: RUN "* ]]
  [[ $(jq -r ".predicate.runDetails.byproducts[$((n - 1))].annotations.step" "$p") == "stage 1 step 3: RUN "* ]]
  python3 "$CHECK" changes "$p" $((n - 2)) /a=modified /a/g=added /a/l=added /a/h=added /etc/motd-kiln=added
  [ "$(jq -r ".predicate.runDetails.byproducts[$((n - 2))].annotations.files[] | select(.path == \"/a\") | .opaque" "$p")" = true ]
  python3 "$CHECK" changes "$p" $((n - 1)) /a=metadata /a/g=modified /a/h=modified

  run kb --no-push --provenance --single-snapshot --oci-layout "$TEST_TMP/s:v1" "$TEST_TMP/ctx"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  python3 "$CHECK" layers "$TEST_TMP/s/provenance.json" "$TEST_TMP/s" v1
  [ "$(jq -r '.predicate.runDetails.byproducts[-1].annotations.step' "$TEST_TMP/s/provenance.json")" = \
    "--single-snapshot of the target stage's steps" ]
}

@test "attest: the provenance's context digest is the filtered context's listing (docs/design/build.md): stable, changed by an included file, not by an excluded one or a touch" {
  local ctx=$TEST_TMP/ctx
  mkdir -p "$ctx/sub"
  printf 'FROM scratch\nCOPY used /used\n' > "$ctx/Dockerfile"
  echo used > "$ctx/used"
  echo unused > "$ctx/sub/unused"
  chmod 0600 "$ctx/sub/unused"
  ln -s ../used "$ctx/sub/link"
  echo secret > "$ctx/secret"
  printf 'secret\n' > "$ctx/.dockerignore"
  prov() { # prov N: build with a provenance into $TEST_TMP/pN, print its context digest
    run kb --reproducible --provenance --provenance-file "$TEST_TMP/p$1" --no-push "$ctx"
    [ "$status" -eq 0 ] || { echo "$output"; return 1; }
    jq -r '.predicate.buildDefinition.resolvedDependencies[] | select(.name == "context") | .digest.sha256' \
      "$TEST_TMP/p$1"
  }
  local d1 d2 d3 d4 d5
  d1=$(prov 1)
  d2=$(prov 2)
  [ -n "$d1" ]
  [ "$d1" = "$d2" ]
  # the definition, computed without kiln (secret is excluded)
  python3 "$CHECK" context "$TEST_TMP/p1" "$ctx" secret
  ! python3 "$CHECK" context "$TEST_TMP/p1" "$ctx"
  # an included file COPY does not read: the context changed
  echo changed > "$ctx/sub/unused"
  d3=$(prov 3)
  [ "$d3" != "$d1" ]
  python3 "$CHECK" context "$TEST_TMP/p3" "$ctx" secret
  # an excluded file, or a new mtime: the same context
  echo changed > "$ctx/secret"
  touch -d '2001-01-01' "$ctx/used"
  d4=$(prov 4)
  [ "$d4" = "$d3" ]
  # a mode is part of it
  chmod 0644 "$ctx/sub/unused"
  d5=$(prov 5)
  [ "$d5" != "$d4" ]
  python3 "$CHECK" context "$TEST_TMP/p5" "$ctx" secret
}
