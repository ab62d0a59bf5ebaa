#!/usr/bin/env python3
"""tarcmp.py A B: compare two layer tars (gzip/zstd/plain) as sets of members:
normalised name, type, mode, owner, size, link target, device numbers, mtime
(seconds), xattrs (SCHILY.xattr.*) and content hash; whiteout and opaque markers by presence
only (their own metadata carries no meaning). Hardlinks are compared
as groups of names sharing one file. Root entries are ignored. Exit 1 and
print the differences if they differ."""
import hashlib, io, subprocess, sys, tarfile

def opentar(path):
    data = open(path, "rb").read()
    if data[:4] == b"\x28\xb5\x2f\xfd":
        data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")

def norm(n):
    while n.startswith("./"):
        n = n[2:]
    return n.strip("/")

def load(path):
    t = opentar(path)
    members, parent = {}, {}
    def find(x):
        while parent.get(x, x) != x:
            x = parent[x]
        return x
    for m in t.getmembers():
        n = norm(m.name)
        if n in ("", "."):
            continue
        if n.rsplit("/", 1)[-1].startswith(".wh."):
            members[n] = ("whiteout marker",)  # its own metadata means nothing
            continue
        if m.islnk():
            tgt = norm(m.linkname)
            parent[find(n)] = find(tgt)
            members[n] = ("link", tgt)
            continue
        h = hashlib.sha256(t.extractfile(m).read()).hexdigest() if m.isreg() else ""
        x = {k: v for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
        # Go's archive/tar (umoci, buildah) keeps the file type bits in the
        # header's mode field; only the permission bits are the mode.
        members[n] = (m.type if not m.isreg() else b"0", m.mode & 0o7777, m.uid, m.gid,
                      m.size if m.isreg() else 0, m.linkname if m.issym() else "",
                      m.devmajor if m.ischr() or m.isblk() else 0,
                      m.devminor if m.ischr() or m.isblk() else 0, int(m.mtime), tuple(sorted(x.items())), h)
    groups = {}
    for n in members:
        groups.setdefault(find(n), set()).add(n)
    out = {}
    for n, v in members.items():
        root = find(n)
        attrs = members.get(root, ("link to a missing member",)) if v[0] == "link" else v
        out[n] = (attrs, frozenset(groups[root]) if len(groups[root]) > 1 else None)
    return out

a, b = load(sys.argv[1]), load(sys.argv[2])
diff = 0
for n in sorted(set(a) | set(b)):
    if a.get(n) != b.get(n):
        diff += 1
        print("differs: %r\n  A: %r\n  B: %r" % (n, a.get(n), b.get(n)))
print("%d members, %d differences" % (len(a), diff))
sys.exit(1 if diff else 0)
