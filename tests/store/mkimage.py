#!/usr/bin/env python3
"""mkimage.py LAYOUT TAG LAYER... : write an OCI image layout at LAYOUT
(created if missing) whose image TAG has the given layer blobs, in order, as
they are (gzip or uncompressed tar; not recompressed). The config's
rootfs.diff_ids are the SHA-256 of each decompressed blob (computed here with
Python's zlib, independently of kiln; or read from LAYER.diffid if that
exists, as mkbomb.py writes it). For tests that need an image around a
hand-made layer (e.g. a tar bomb) in a registry: push it with
`skopeo copy oci:LAYOUT:TAG docker://...`."""
import hashlib, json, os, shutil, sys, zlib

def digest_file(path):
    h, d = hashlib.sha256(), hashlib.sha256()
    gz = None
    known = None
    if os.path.exists(path + ".diffid"):
        with open(path + ".diffid") as f:
            known = f.read().strip().split(":", 1)[1]
    with open(path, "rb") as f:
        first = f.read(2)
        f.seek(0)
        if first == b"\x1f\x8b" and known is None:
            gz = zlib.decompressobj(31)
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            if gz is None:
                d.update(chunk)
                continue
            while chunk:
                d.update(gz.decompress(chunk))
                if gz.eof:  # multi-member gzip
                    chunk = gz.unused_data
                    gz = zlib.decompressobj(31)
                else:
                    chunk = b""
    return h.hexdigest(), known or d.hexdigest(), first == b"\x1f\x8b"

def put(layout, data):
    hx = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", hx), "wb") as f:
        f.write(data)
    return "sha256:" + hx, len(data)

def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    layout, tag, layers = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    descs, diff_ids = [], []
    for p in layers:
        blob, diff, gz = digest_file(p)
        shutil.copyfile(p, os.path.join(layout, "blobs", "sha256", blob))
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else ""),
                      "digest": "sha256:" + blob, "size": os.path.getsize(p)})
        diff_ids.append("sha256:" + diff)
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created_by": "mkimage.py layer %d" % i} for i in range(len(layers))]}
    cdig, csize = put(layout, json.dumps(config, sort_keys=True).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": csize},
                "layers": descs}
    mdig, msize = put(layout, json.dumps(manifest, sort_keys=True).encode())
    index_path = os.path.join(layout, "index.json")
    index = {"schemaVersion": 2, "manifests": []}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
    index["manifests"] = [m for m in index["manifests"]
                          if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
    index["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdig,
                               "size": msize, "annotations": {"org.opencontainers.image.ref.name": tag}})
    with open(index_path, "w") as f:
        json.dump(index, f)
    print(mdig)

main()
