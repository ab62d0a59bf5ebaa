#!/usr/bin/env python3
"""mkbomb.py N OUT [--dirs D] [--xattr-bytes B]: write a gzip'd ustar tar bomb
of N empty regular files spread over D directories (default 1000; names
"bomb/dNNNN/fNNNNNNN", each directory listed once before its files) to OUT
("-" = stdout). With --xattr-bytes B every file carries a PAX
SCHILY.xattr.user.pad of B bytes (a metadata bomb rather than an entry bomb).
Unless OUT is "-", OUT.diffid receives "sha256:HEX" of the uncompressed tar
(mkimage.py uses it instead of decompressing the blob again).

Headers are built from a template with only the name and checksum changing,
so a million members take a few seconds (Python's tarfile needs ~30 s); the
result is an ordinary tar that GNU tar and Python's tarfile read.
"""
import hashlib, sys, zlib

def octal(n, width):
    return (b"%0*o" % (width - 1, n)) + b"\0"

def header(name, typeflag, mode, size=0):
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = octal(mode, 8)
    h[108:116] = octal(0, 8)
    h[116:124] = octal(0, 8)
    h[124:136] = octal(size, 12)
    h[136:148] = octal(1700000000, 12)
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[257:265] = b"ustar\x0000"
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)

def pax_record(key, value):
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(b"%d" % n) + len(body) != n:
        n += 1
    return b"%d" % n + body

def main():
    args = sys.argv[1:]
    dirs, xattr_bytes = 1000, 0
    while len(args) > 2:
        if args[-2] == "--dirs":
            dirs = int(args[-1])
        elif args[-2] == "--xattr-bytes":
            xattr_bytes = int(args[-1])
        else:
            sys.exit("mkbomb.py: unknown argument %r" % args[-2])
        args = args[:-2]
    if len(args) != 2:
        sys.exit(__doc__)
    n, out = int(args[0]), args[1]
    f = sys.stdout.buffer if out == "-" else open(out, "wb")
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    diff = hashlib.sha256()
    pax = b""
    if xattr_bytes:
        rec = pax_record(b"SCHILY.xattr.user.pad", b"x" * xattr_bytes)
        pax = header(b"././@PaxHeader", b"x", 0o644, len(rec)) + rec + b"\0" * (-len(rec) % 512)
    # Template for a file header: name field zero, checksum of everything else precomputed.
    tmpl = bytearray(header(b"", b"0", 0o644))
    tmpl[148:156] = b" " * 8
    base = sum(tmpl)
    head, tail = bytes(tmpl[100:148]), bytes(tmpl[156:512])
    per_dir = (n + dirs - 1) // dirs
    buf = []
    written = 0
    for i in range(n):
        if i % per_dir == 0:
            buf.append(header(b"bomb/d%04d/" % (i // per_dir), b"5", 0o755))
        name = b"bomb/d%04d/f%07d" % (i // per_dir, i)
        csum = b"%06o\0 " % (base + sum(name))
        buf.append(pax + name + bytes(100 - len(name)) + head + csum + tail)
        if len(buf) >= 4096:
            chunk = b"".join(buf)
            diff.update(chunk)
            f.write(z.compress(chunk))
            buf.clear()
    buf.append(bytes(1024))
    chunk = b"".join(buf)
    diff.update(chunk)
    f.write(z.compress(chunk))
    f.write(z.flush())
    f.flush()
    if out != "-":
        with open(out + ".diffid", "w") as d:
            d.write("sha256:%s\n" % diff.hexdigest())

main()
