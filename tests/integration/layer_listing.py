#!/usr/bin/env python3
"""layer_listing.py LAYOUT [SKIP] - one line per member of every layer of the
single image in the OCI layout LAYOUT (manifest order; the first SKIP layers
left out), for comparing what two builders put in their layers:

    LAYER PATH TYPE MODE UID:GID SIZE LINK SHA256-OF-DATA [XATTRS]

XATTRS (only for members that have some): the SCHILY.xattr.* PAX records as
NAME=HEX-VALUE, sorted by name, comma-separated. Times are left out (they differ between any two builds). Reads the blobs with
Python's tarfile, independently of kiln.
"""
import gzip
import hashlib
import json
import os
import sys
import tarfile

TYPES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
         tarfile.LNKTYPE: "hardlink", tarfile.FIFOTYPE: "fifo", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block"}


def blob(layout, digest):
    algo, hexd = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexd)


def xattrs(member):
    found = []
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
            found.append("%s=%s" % (key[len("SCHILY.xattr."):], raw.hex()))
    return " " + ",".join(sorted(found)) if found else ""


def main():
    layout = sys.argv[1]
    skip = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    mdesc = index["manifests"][0]
    with open(blob(layout, mdesc["digest"])) as f:
        manifest = json.load(f)
    for n, layer in enumerate(manifest["layers"]):
        if n < skip:
            continue
        path = blob(layout, layer["digest"])
        with open(path, "rb") as raw:
            magic = raw.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as t:
            rows = []
            for m in t:
                data = ""
                if m.isreg():
                    data = hashlib.sha256(t.extractfile(m).read()).hexdigest()[:16]
                name = m.name[2:] if m.name.startswith("./") else m.name
                rows.append("%d %s %s %04o %d:%d %d %s %s%s" % (n - skip, name.rstrip("/"), TYPES.get(m.type, m.type),
                                                              m.mode, m.uid, m.gid, m.size if m.isreg() else 0,
                                                              m.linkname or "-", data or "-", xattrs(m)))
            for r in sorted(rows):
                print(r)


if __name__ == "__main__":
    main()
