#!/usr/bin/env python3
"""Check an extracted store layer against its blob with independent readers.

    fetch_check.py LAYER_DIR BLOB

LAYER_DIR is <store>/layers/sha256/<diffID hex> (tree/ + index); BLOB the
compressed layer blob. The index is parsed here from its documented format
(src/store/layer_index.h), the blob is listed with GNU `tar -tvf` (type,
mode, numeric owner, size, mtime, link target) and read with Python's
tarfile for file contents; every member must match the index entry of the
same path, every explicit index entry must come from a member, and every
regular file in tree/ must have the member's size and SHA-256.
"""
import hashlib
import os
import stat
import struct
import subprocess
import sys
import tarfile

TYPES = {1: stat.S_IFREG, 2: stat.S_IFDIR, 3: stat.S_IFLNK, 4: stat.S_IFCHR,
         5: stat.S_IFBLK, 6: stat.S_IFIFO, 7: stat.S_IFSOCK, 8: 0}
F_IMPLICIT = 2


def read_index(path):
    data = open(path, "rb").read()
    (magic, version, hsize, fsize, count, esize, eoff, soff, ssize, xoff, xsize,
     groups, _res) = struct.unpack_from("<8sIIQIIQIIIIII", data, 0)
    assert magic == b"KILNIDX\0", "bad magic"
    assert version == 1 and esize == 88 and fsize == len(data), "bad header"
    ents = []
    for i in range(count):
        (parent, name_off, name_len, typ, flags, mode, uid, gid, size, mtime,
         mtime_ns, nlink, rmaj, rmin, first, nchild, link_off, link_len, hl,
         xo, xc, _r) = struct.unpack_from("<IIHBBIIIQqIIIIIIIIIIII", data, eoff + i * esize)
        name = data[soff + name_off: soff + name_off + name_len].decode("utf-8", "surrogateescape")
        link = data[soff + link_off: soff + link_off + link_len].decode("utf-8", "surrogateescape")
        path = name if i == 0 or ents[parent]["path"] == "" else ents[parent]["path"] + "/" + name
        if i == 0:
            path = ""
        ents.append(dict(path=path, type=typ, flags=flags, mode=mode, uid=uid, gid=gid,
                         size=size, mtime=mtime, link=link if typ == 3 else None,
                         hl=hl, rdev=(rmaj, rmin)))
    return {e["path"]: e for e in ents}


def norm(name):
    while name.startswith("./"):
        name = name[2:]
    name = name.lstrip("/").rstrip("/")
    return "" if name == "." else name


def tar_listing(blob):
    env = dict(os.environ, TZ="UTC", LC_ALL="C")
    out = subprocess.run(["tar", "--numeric-owner", "--full-time", "--quoting-style=literal", "-tvf", blob],
                         check=True, stdout=subprocess.PIPE, env=env).stdout.decode("utf-8", "surrogateescape")
    members = []
    for line in out.splitlines():
        parts = line.split(None, 5)
        perms, owner, size, day, tim, rest = parts
        uid, gid = (int(x) for x in owner.split("/"))
        link = hard = None
        kind = perms[0]
        if kind == "l" and " -> " in rest:
            rest, link = rest.split(" -> ", 1)
        elif kind == "h" and " link to " in rest:
            rest, hard = rest.split(" link to ", 1)
        members.append(dict(perms=perms, uid=uid, gid=gid, size=size, time=day + " " + tim,
                            path=norm(rest), link=link, hard=norm(hard) if hard else None))
    return members


def main():
    layer, blob = sys.argv[1], sys.argv[2]
    idx = read_index(os.path.join(layer, "index"))
    errors = []
    seen = set()
    import datetime
    for m in tar_listing(blob):
        p = m["path"]
        base = os.path.basename(p)
        if base.startswith(".wh."):
            target = os.path.join(os.path.dirname(p), base[4:]) if base != ".wh..wh..opq" else os.path.dirname(p)
            e = idx.get(target)
            if e is None or (base == ".wh..wh..opq" and not e["flags"] & 1) or \
               (base != ".wh..wh..opq" and e["type"] != 8):
                errors.append("whiteout %s not recorded" % p)
            seen.add(target)
            continue
        e = idx.get(p)
        if e is None:
            errors.append("member %s missing from the index" % p)
            continue
        seen.add(p)
        if m["hard"] is not None:
            t = idx.get(m["hard"])
            if e["type"] != 1 or t is None or e["hl"] == 0 or e["hl"] != t["hl"]:
                errors.append("hardlink %s -> %s not one group in the index" % (p, m["hard"]))
            continue
        fm = stat.filemode(TYPES[e["type"]] | e["mode"])
        if fm != m["perms"]:
            errors.append("%s: mode %s in tar, %s in index" % (p, m["perms"], fm))
        if (m["uid"], m["gid"]) != (e["uid"], e["gid"]):
            errors.append("%s: owner %d/%d in tar, %d/%d in index" % (p, m["uid"], m["gid"], e["uid"], e["gid"]))
        if e["type"] in (4, 5):
            if m["size"] != "%d,%d" % e["rdev"]:
                errors.append("%s: device %s in tar, %s in index" % (p, m["size"], e["rdev"]))
        elif e["type"] == 1 and int(m["size"]) != e["size"]:
            errors.append("%s: size %s in tar, %d in index" % (p, m["size"], e["size"]))
        if m["link"] is not None and m["link"] != e["link"]:
            errors.append("%s: link %r in tar, %r in index" % (p, m["link"], e["link"]))
        t = datetime.datetime.fromtimestamp(e["mtime"], datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        if t != m["time"]:
            errors.append("%s: mtime %s in tar, %s in index" % (p, m["time"], t))
    for p, e in idx.items():
        if p and p not in seen and not e["flags"] & F_IMPLICIT:
            errors.append("index entry %s comes from no tar member" % p)
    # Contents: every regular file in tree/ has the member's bytes.
    files = 0
    with tarfile.open(blob, "r:*") as tf:
        for ti in tf:
            p = norm(ti.name)
            if not ti.isreg() or os.path.basename(p).startswith(".wh."):
                continue
            tp = os.path.join(layer, "tree", p)
            st = os.lstat(tp)
            if not stat.S_ISREG(st.st_mode) or st.st_size != ti.size:
                errors.append("tree/%s: not a regular file of %d bytes" % (p, ti.size))
                continue
            h1 = hashlib.sha256(tf.extractfile(ti).read()).hexdigest()
            with open(tp, "rb") as f:
                h2 = hashlib.sha256(f.read()).hexdigest()
            if h1 != h2:
                errors.append("tree/%s: content differs from the tar member" % p)
            files += 1
    for e in errors[:50]:
        print("MISMATCH " + e)
    if errors:
        print("%d mismatches" % len(errors))
        return 1
    print("ok: %d index entries, %d files compared" % (len(idx), files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
