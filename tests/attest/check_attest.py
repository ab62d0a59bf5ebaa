#!/usr/bin/env python3
"""check_attest.py - checks of kiln's SBOM and provenance documents
(tests/integration/build_attest.bats).

  spdx SBOM                       validate against the SPDX 2.3 JSON schema
                                  shipped beside this file (python3-jsonschema)
  debs SBOM DPKG_QUERY_OUT        the SBOM's deb packages (name, version) equal
                                  `dpkg-query -W` output (NAME<TAB>VERSION lines)
  purls SBOM PURL...              every PURL is in the SBOM
  provenance PROV                 the in-toto v1 / SLSA v1 structure
  layers PROV LAYOUT TAG          every layer's file list in PROV equals the
                                  members of that layer's tar in the OCI layout
                                  (TAG "@sha256:..." names an image manifest by
                                  digest: a platform image of an index)
  context PROV DIR [EXCLUDED...]  the provenance's context digest equals the
                                  sha256 of DIR's listing as docs/design/build.md
                                  defines it (EXCLUDED: context paths that
                                  .dockerignore leaves out, with what is below)
  changes PROV N PATH=KIND...     layer N lists PATH with change KIND
  gover BINARY                    the Go version a Go binary records
"""
import gzip
import json
import os
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def fail(msg):
    print("check_attest: " + msg, file=sys.stderr)
    sys.exit(1)


def cmd_spdx(sbom):
    import jsonschema

    schema = load(os.path.join(HERE, "spdx-schema-2.3.json"))
    jsonschema.Draft7Validator(schema).validate(load(sbom))
    doc = load(sbom)
    if doc["spdxVersion"] != "SPDX-2.3":
        fail("spdxVersion is %r" % doc["spdxVersion"])
    ids = {p["SPDXID"] for p in doc["packages"]}
    if len(ids) != len(doc["packages"]):
        fail("SPDXIDs repeat")
    for r in doc["relationships"]:
        for k in ("spdxElementId", "relatedSpdxElement"):
            if r[k] != "SPDXRef-DOCUMENT" and r[k] not in ids:
                fail("relationship names unknown element %r" % r[k])


def purls(doc):
    out = set()
    for p in doc["packages"]:
        for r in p.get("externalRefs", []):
            if r["referenceType"] == "purl":
                out.add(r["referenceLocator"])
    return out


def cmd_debs(sbom, query_out):
    doc = load(sbom)
    got = set()
    for p in doc["packages"]:
        if any(u.startswith("pkg:deb/") for u in purls({"packages": [p]})):
            got.add((p["name"], p["versionInfo"]))
    want = set()
    with open(query_out, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                name, _, ver = line.partition("\t")
                want.add((name.split(":")[0], ver))
    if got != want:
        fail("deb packages differ: only in the SBOM %s; only in dpkg-query %s"
             % (sorted(got - want)[:10], sorted(want - got)[:10]))
    print("%d deb packages match" % len(got))


def cmd_purls(sbom, *want):
    have = purls(load(sbom))
    missing = [w for w in want if w not in have]
    if missing:
        fail("purls missing: %s (have %s)" % (missing, sorted(h for h in have if not h.startswith("pkg:deb"))))


def cmd_gover(binary):
    """Print the Go version a Go >= 1.18 binary records (debug/buildinfo's
    layout: "\xff Go buildinf:", flags & 2, uvarint-length strings)."""
    data = open(binary, "rb").read()
    i = data.find(b"\xff Go buildinf:")
    if i < 0 or not data[i + 15] & 2:
        fail("%s: no inline Go build info" % binary)
    p = i + 32
    n = shift = 0
    while True:
        c = data[p]
        p += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            break
    print(data[p:p + n].decode().split(" ")[0][2:])


def cmd_provenance(prov):
    st = load(prov)
    if st.get("_type") != "https://in-toto.io/Statement/v1":
        fail("_type is %r" % st.get("_type"))
    if st.get("predicateType") != "https://slsa.dev/provenance/v1":
        fail("predicateType is %r" % st.get("predicateType"))
    subj = st["subject"]
    if not subj or not all(isinstance(s.get("digest"), dict) and s["digest"] for s in subj):
        fail("subject without digest")
    pred = st["predicate"]
    bd, rd = pred["buildDefinition"], pred["runDetails"]
    for k in ("buildType", "externalParameters"):
        if k not in bd:
            fail("buildDefinition has no " + k)
    if not isinstance(bd["externalParameters"], dict):
        fail("externalParameters is not an object")
    if not isinstance(rd.get("builder", {}).get("id"), str):
        fail("runDetails.builder.id missing")
    # ResourceDescriptor: at least one of uri, digest, content
    for r in bd.get("resolvedDependencies", []) + rd.get("byproducts", []):
        if not any(k in r for k in ("uri", "digest", "content")):
            fail("resource descriptor without uri, digest or content: %r" % r)
        for alg, v in r.get("digest", {}).items():
            if alg == "sha256" and (len(v) != 64 or any(c not in "0123456789abcdef" for c in v)):
                fail("bad sha256 %r" % v)


def tar_listing(blob):
    """{path: 'deleted'|'present'} and the opaque directories of a layer tar."""
    with open(blob, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        fo = gzip.open(blob)
    elif magic == b"\x28\xb5\x2f\xfd":
        import subprocess
        fo = __import__("io").BytesIO(subprocess.run(["zstd", "-dc", blob], check=True,
                                                    stdout=subprocess.PIPE).stdout)
    else:
        fo = open(blob, "rb")
    paths, opaque = {}, set()
    with tarfile.open(fileobj=fo, mode="r|") as t:
        for m in t:
            name = m.name
            while name.startswith("./"):
                name = name[2:]
            name = name.strip("/")
            if not name or name == ".":
                continue
            d, _, base = name.rpartition("/")
            if base == ".wh..wh..opq":
                opaque.add(d)
            elif base.startswith(".wh."):
                paths[(d + "/" if d else "") + base[4:]] = "deleted"
            else:
                paths[name] = "present"
    return paths, opaque


def image_layers(layout, tag):
    if tag.startswith("@"):
        man = load(os.path.join(layout, "blobs", "sha256", tag[1:].split(":")[1]))
        return [l["digest"] for l in man["layers"]]
    idx = load(os.path.join(layout, "index.json"))
    for m in idx["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            man = load(os.path.join(layout, "blobs", "sha256", m["digest"].split(":")[1]))
            return [l["digest"] for l in man["layers"]]
    fail("no %r in %s" % (tag, layout))


def cmd_layers(prov, layout, tag):
    st = load(prov)
    bps = st["predicate"]["runDetails"]["byproducts"]
    layers = image_layers(layout, tag)
    if len(bps) != len(layers):
        fail("%d byproducts for %d layers" % (len(bps), len(layers)))
    for i, (bp, dg) in enumerate(zip(bps, layers)):
        if "sha256:" + bp["digest"]["sha256"] != dg:
            fail("layer %d: digest %s, manifest has %s" % (i, bp["digest"]["sha256"], dg))
        files = bp["annotations"]["files"]
        got = {}
        got_opaque = set()
        for f in files:
            p = f["path"].lstrip("/")
            if p in got:
                fail("layer %d lists %s twice" % (i, p))
            got[p] = "deleted" if f["change"] == "deleted" else "present"
            if f.get("opaque"):
                got_opaque.add(p)
            if f["change"] not in ("added", "modified", "deleted", "metadata"):
                fail("layer %d: %s has change %r" % (i, p, f["change"]))
        want, opaque = tar_listing(os.path.join(layout, "blobs", "sha256", dg.split(":")[1]))
        if got != want or got_opaque != opaque:
            only_p = sorted(set(got.items()) - set(want.items()))[:10]
            only_t = sorted(set(want.items()) - set(got.items()))[:10]
            fail("layer %d (%s): file list differs from the tar: only in provenance %s, only in the tar %s, "
                 "opaque %s vs %s" % (i, bp["annotations"]["step"], only_p, only_t, sorted(got_opaque),
                                      sorted(opaque)))
        print("layer %d: %d paths match its tar" % (i, len(got)))


def cmd_changes(prov, n, *pairs):
    bp = load(prov)["predicate"]["runDetails"]["byproducts"][int(n)]
    kinds = {f["path"]: f["change"] for f in bp["annotations"]["files"]}
    for pair in pairs:
        path, _, kind = pair.partition("=")
        if kinds.get(path) != kind:
            fail("layer %s: %s is %r, expected %r (step %s)" % (n, path, kinds.get(path), kind,
                                                              bp["annotations"]["step"]))


def context_listing(top, excluded):
    """The context digest, computed independently of kiln: every entry
    below top but the excluded ones, sorted by path (bytes), each as
    TYPE NUL MODE NUL PATH NUL VALUE NUL (no hard links within top: the
    tests make none; a link count above 1 may be the store's link)."""
    import hashlib
    entries = []
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, top)
            if any(rel == e or rel.startswith(e + "/") for e in excluded):
                continue
            entries.append((rel.encode(), full))
    h = hashlib.sha256()
    for rel, full in sorted(entries):
        st = os.lstat(full)
        mode = ("%04o" % (st.st_mode & 0o7777)).encode()
        if os.path.islink(full):
            t, v = b"l", os.readlink(full).encode()
        elif os.path.isdir(full):
            t, v = b"d", b""
        elif os.path.isfile(full):
            with open(full, "rb") as f:
                t, v = b"f", ("sha256:" + hashlib.sha256(f.read()).hexdigest()).encode()
        else:
            fail("unexpected file type: %s" % full)
        h.update(t + b"\0" + mode + b"\0" + rel + b"\0" + v + b"\0")
    return h.hexdigest()


def cmd_context(prov, top, *excluded):
    deps = load(prov)["predicate"]["buildDefinition"]["resolvedDependencies"]
    got = [d["digest"]["sha256"] for d in deps if d.get("name") == "context"]
    if len(got) != 1:
        fail("%d context entries in resolvedDependencies" % len(got))
    want = context_listing(top, excluded)
    if got[0] != want:
        fail("context digest %s, the listing of %s gives %s" % (got[0], top, want))
    print(want)


def main():
    cmds = {"gover": cmd_gover, "spdx": cmd_spdx, "debs": cmd_debs, "purls": cmd_purls, "provenance": cmd_provenance,
            "layers": cmd_layers, "changes": cmd_changes, "context": cmd_context}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        fail(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
