#!/usr/bin/env python3
"""Generate the tar corpus for test_extract / test_layer_writer.

mktars.py OUTDIR writes OUTDIR/NAME.tar for every case below (plus .tar.gz
for some). Cases named hostile-* must be rejected or neutralised.
"""
import gzip, io, os, sys, tarfile

out = sys.argv[1]

def mk(name, members, fmt=tarfile.PAX_FORMAT, gz=False):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for m in members:
            ti, data = m
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    with open(os.path.join(out, name + ".tar"), "wb") as f:
        f.write(raw)
    if gz:
        with open(os.path.join(out, name + ".tar.gz"), "wb") as f:
            f.write(gzip.compress(raw, mtime=0))
    return raw

def reg(name, data=b"", mode=0o644, uid=0, gid=0, pax=None, mtime=1700000000):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = mode
    ti.uid = uid; ti.gid = gid; ti.mtime = mtime
    if pax: ti.pax_headers = pax
    return (ti, data)

def d(name, mode=0o755, uid=0, gid=0):
    ti = tarfile.TarInfo(name); ti.type = tarfile.DIRTYPE; ti.mode = mode; ti.uid = uid; ti.gid = gid
    ti.mtime = 1700000000
    return (ti, None)

def sym(name, target):
    ti = tarfile.TarInfo(name); ti.type = tarfile.SYMTYPE; ti.linkname = target; ti.mode = 0o777
    return (ti, None)

def hard(name, target):
    ti = tarfile.TarInfo(name); ti.type = tarfile.LNKTYPE; ti.linkname = target
    return (ti, None)

def dev(name, typ, major=0, minor=0, mode=0o666):
    ti = tarfile.TarInfo(name); ti.type = typ; ti.devmajor = major; ti.devminor = minor; ti.mode = mode
    return (ti, None)

cap = bytes([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
longname = "deep/" + "/".join(["d%03d" % i + "x" * 40 for i in range(30)]) + "/file"

normal = [
    d("./"),
    d("etc/"),
    reg("etc/hostname", b"kiln\n"),
    d("usr/"), d("usr/bin/"),
    reg("usr/bin/ping", b"\x7fELF...", mode=0o4755,
        pax={"SCHILY.xattr.security.capability": cap.decode("latin-1"),
             "SCHILY.xattr.user.note": "hello"}),
    sym("usr/bin/ping6", "ping"),
    hard("usr/bin/ping4", "usr/bin/ping"),
    d("tmp/", mode=0o1777),
    d("home/u/", mode=0o2750, uid=1000, gid=1000),
    reg("home/u/.profile", b"x" * 100000, mode=0o600, uid=1000, gid=1000),
    dev("dev/null", tarfile.CHRTYPE, 1, 3),
    dev("dev/sda", tarfile.BLKTYPE, 8, 0, 0o660),
    dev("run/fifo", tarfile.FIFOTYPE, mode=0o600),
    reg("var/lib/.wh.gone", b""),
    reg("opt/app/.wh..wh..opq", b""),
    reg("opt/app/new", b"new"),
    reg(longname, b"long"),
    reg("big", os.urandom(1 << 20)),
]
mk("normal", normal, gz=True)
mk("normal-gnu", [m for m in normal if m[0].name not in ("usr/bin/ping", "usr/bin/ping4")], fmt=tarfile.GNU_FORMAT, gz=True)

# Hostile cases
mk("hostile-dotdot", [reg("../escaped", b"x")])
mk("hostile-dotdot-deep", [d("a/"), reg("a/../../escaped", b"x")])
mk("hostile-absolute", [reg("/abs-escaped", b"x")])
mk("hostile-symlink-escape", [sym("link", "/"), reg("link/tmp/escaped-through-link", b"x")])
mk("hostile-symlink-relative", [sym("link", "../../.."), reg("link/escaped-rel", b"x")])
mk("hostile-hardlink-passwd", [hard("passwd", "/etc/passwd")])
mk("hostile-hardlink-dotdot", [hard("passwd", "../../../../etc/passwd")])
mk("hostile-devices", [dev("dev/mem", tarfile.CHRTYPE, 1, 1), dev("dev/sda", tarfile.BLKTYPE, 8, 0),
                       dev("fifo", tarfile.FIFOTYPE)])
mk("hostile-huge-header", [reg("a" * 300, b"x")])
mk("hostile-huge-pax", [reg("f", b"x", pax={"comment": "y" * (8 << 20)})])
mk("hostile-longpath", [reg("/".join(["z" * 200] * 30), b"x")])
raw = mk("truncated-src", [reg("f", os.urandom(200000))])
with open(os.path.join(out, "hostile-truncated.tar"), "wb") as f:
    f.write(raw[:100000])
with open(os.path.join(out, "hostile-truncated.tar.gz"), "wb") as f:
    f.write(gzip.compress(raw, mtime=0)[:50000])
# A layer that ends right after its last member's data, without padding and
# end-of-archive blocks (umoci 0.4.7 `insert`, umoci#436): accepted. Cut
# inside the data instead: rejected.
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
    for ti, data in [d("opt/app/"), reg("opt/app/.wh..wh..opq"), reg("opt/app/first", b"1" * 600),
                     reg("opt/app/new", b"new\n")]:
        t.addfile(ti, io.BytesIO(data) if data is not None else None)
raw = buf.getvalue()
last = tarfile.open(fileobj=io.BytesIO(raw)).getmembers()[-1]
for name, cut in [("unpadded-end", last.offset_data + last.size),
                  ("unpadded-mid-pad", last.offset_data + last.size + 100),
                  ("hostile-truncated-data", last.offset_data + 2)]:
    with open(os.path.join(out, name + ".tar"), "wb") as f:
        f.write(raw[:cut])
    with open(os.path.join(out, name + ".tar.gz"), "wb") as f:
        f.write(gzip.compress(raw[:cut], mtime=0))
with open(os.path.join(out, "hostile-garbage.tar"), "wb") as f:
    f.write(os.urandom(4096))
# Metadata bomb: 10 files with 8 xattrs of 60,000 bytes each (4.8 MB of
# xattrs from a few KB of gzip); the extractor's metadata budget bounds it.
mk("xattr-bomb", [reg("x/%02d" % i, pax={"SCHILY.xattr.user.p%d" % k: chr(97 + k) * 60000 for k in range(8)})
                  for i in range(10)], gz=True)
# Many empty files (bounded version of the tar bomb)
n = int(os.environ.get("KILN_BOMB_FILES", "20000"))
mk("bomb", [reg("b/%03d/%07d" % (i % 100, i)) for i in range(n)], fmt=tarfile.USTAR_FORMAT, gz=True)
