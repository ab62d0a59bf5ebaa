#!/usr/bin/env bats
# kiln push of a multi-platform image (OCI image index) from an OCI layout;
# the result is read back with skopeo.
load helpers

setup() { kiln_setup; }
teardown() { kiln_teardown; }

# make_multiarch DIR MODE: an OCI layout with the busybox fixture as amd64
# and a copy whose config says arm64 (a new config blob and manifest).
# MODE=index: one index.json entry tagged "multi" naming an index blob.
# MODE=entries: two index.json entries tagged "multi", each with a platform.
make_multiarch() {
  cp -a "$(fixtures_layout busybox)" "$1"
  python3 - "$1" "$2" <<'PY'
import hashlib, json, os, sys
d, mode = sys.argv[1], sys.argv[2]
blobs = os.path.join(d, "blobs", "sha256")
def put(data):
    h = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, h), "wb") as f:
        f.write(data)
    return "sha256:" + h
def get(dg):
    return open(os.path.join(blobs, dg.split(":")[1]), "rb").read()
idx = json.load(open(os.path.join(d, "index.json")))
src = idx["manifests"][0]
man = json.loads(get(src["digest"]))
cfg = json.loads(get(man["config"]["digest"]))
descs = []
for arch in ("amd64", "arm64"):
    c = dict(cfg, architecture=arch, os="linux")
    cb = json.dumps(c, separators=(",", ":")).encode()
    m = dict(man, config=dict(man["config"], digest=put(cb), size=len(cb)))
    mb = json.dumps(m, separators=(",", ":")).encode()
    descs.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(mb),
                  "size": len(mb), "platform": {"architecture": arch, "os": "linux"}})
ref = {"org.opencontainers.image.ref.name": "multi"}
if mode == "index":
    ib = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                     "manifests": descs}, separators=(",", ":")).encode()
    entries = [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": put(ib), "size": len(ib),
                "annotations": ref}]
    print(entries[0]["digest"])
else:
    entries = [dict(x, annotations=ref) for x in descs]
idx["manifests"] = entries
json.dump(idx, open(os.path.join(d, "index.json"), "w"))
PY
}

raw_digest() { skopeo inspect --raw "$@" | sha256sum | sed 's/^/sha256:/; s/ .*//'; }

@test "push of an OCI image index: every platform's manifest and blobs, then the index (skopeo)" {
  registry_start
  want=$(make_multiarch "$TEST_TMP/multi" index)
  run "$KILN" push --insecure-registry "$REGISTRY" --digest-file "$TEST_TMP/d" --oci-layout "$TEST_TMP/multi:multi" \
    "$REGISTRY/kiln/multi:v1"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [ "$(echo "$output" | tail -1)" = "$want" ]
  [ "$(cat "$TEST_TMP/d")" = "$want" ]
  # The registry serves the index byte for byte.
  [ "$(raw_digest --tls-verify=false "docker://$REGISTRY/kiln/multi:v1")" = "$want" ]
  # Each platform resolves to its own image with the right config.
  for arch in amd64 arm64; do
    got=$(skopeo inspect --tls-verify=false --override-os linux --override-arch "$arch" \
      --format '{{.Architecture}}' "docker://$REGISTRY/kiln/multi:v1")
    [ "$got" = "$arch" ]
  done
  # skopeo copies the whole index back (verifying every blob) to the same digests.
  skopeo copy -q --all --src-tls-verify=false "docker://$REGISTRY/kiln/multi:v1" "oci:$TEST_TMP/back:x"
  [ "$(raw_digest "oci:$TEST_TMP/back:x")" = "$want" ]
  # Pulling it back with kiln selects one platform.
  run "$KILN" pull --insecure-registry "$REGISTRY" --platform linux/arm64 "$REGISTRY/kiln/multi:v1" \
    --oci-layout "$TEST_TMP/pulled:p"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  [ "$(skopeo inspect --config --raw "oci:$TEST_TMP/pulled:p" | python3 -c 'import json,sys; print(json.load(sys.stdin)["architecture"])')" = arm64 ]
}

@test "push of a layout with several entries for one tag makes an OCI index of them" {
  registry_start
  make_multiarch "$TEST_TMP/multi" entries
  run "$KILN" push --insecure-registry "$REGISTRY" --oci-layout "$TEST_TMP/multi:multi" "$REGISTRY/kiln/multi2:v1"
  [ "$status" -eq 0 ] || { echo "$output"; false; }
  digest=$(echo "$output" | tail -1)
  [ "$(raw_digest --tls-verify=false "docker://$REGISTRY/kiln/multi2:v1")" = "$digest" ]
  skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/kiln/multi2:v1" | python3 -c '
import json, sys
i = json.load(sys.stdin)
assert i["mediaType"] == "application/vnd.oci.image.index.v1+json", i
assert sorted(m["platform"]["architecture"] for m in i["manifests"]) == ["amd64", "arm64"], i'
  skopeo copy -q --all --src-tls-verify=false "docker://$REGISTRY/kiln/multi2:v1" "oci:$TEST_TMP/back:x"
  # Without a platform the entries cannot be told apart: clear error.
  python3 - "$TEST_TMP/multi/index.json" <<'PY'
import json, sys
p = sys.argv[1]
i = json.load(open(p))
del i["manifests"][1]["platform"]
json.dump(i, open(p, "w"))
PY
  run "$KILN" push --insecure-registry "$REGISTRY" --oci-layout "$TEST_TMP/multi:multi" "$REGISTRY/kiln/multi3:v1"
  [ "$status" -eq 1 ]
  [[ "$output" == *"several images tagged 'multi'"*"no platform"* ]]
}

@test "push of an index whose child manifest is corrupt in the layout fails and pushes no index" {
  registry_start
  make_multiarch "$TEST_TMP/multi" index > /dev/null
  child=$(python3 -c '
import json, sys
d = sys.argv[1]
i = json.load(open(d + "/index.json"))["manifests"][0]["digest"].split(":")[1]
print(json.load(open(d + "/blobs/sha256/" + i))["manifests"][1]["digest"].split(":")[1])' "$TEST_TMP/multi")
  f=$TEST_TMP/multi/blobs/sha256/$child
  chmod u+w "$f"
  printf ' ' >> "$f"
  run "$KILN" push --insecure-registry "$REGISTRY" --oci-layout "$TEST_TMP/multi:multi" "$REGISTRY/kiln/multi4:v1"
  [ "$status" -eq 1 ]
  [[ "$output" == *"index entry 2 (linux/arm64)"*"sha256:$child"* ]]
  run skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/kiln/multi4:v1"
  [ "$status" -ne 0 ]
}
