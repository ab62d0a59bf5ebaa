#!/usr/bin/env bash
# bench/w4-context.sh CACHE: print the directory of workload w4's generated
# context (200 dirs x 100 files of 1-20 KB random data, seed 4242, a
# package.json, a .dockerignore), generating it once into CACHE/w4-context-v1.
# Used by bench/workloads.sh and bench/ab-workloads.sh.
set -euo pipefail
d="$1/w4-context-v1"
[ -f "$d/.complete" ] && { echo "$d"; exit 0; }
echo "w4-context: generating w4 context (20,000 files, ~210 MB) in $d" >&2
rm -rf --one-file-system "$d" "$d.tmp"
python3 - "$d.tmp" <<'EOF'
import os, random, sys, json
root = sys.argv[1]
rng = random.Random(4242)
os.makedirs(root)
for i in range(200):
    d = os.path.join(root, "node_modules", "pkg%03d" % i)
    os.makedirs(d)
    for j in range(100):
        with open(os.path.join(d, "f%03d.js" % j), "wb") as f:
            f.write(rng.randbytes(rng.randint(1024, 20480)))
    # ignored by .dockerignore: must not reach the image
    with open(os.path.join(d, "debug.log"), "w") as f:
        f.write("log %d\n" % i)
with open(os.path.join(root, "package.json"), "w") as f:
    json.dump({"name": "w4", "version": "1.0.0",
               "dependencies": {"pkg%03d" % i: "1.0.0" for i in range(200)}}, f, indent=1)
with open(os.path.join(root, ".dockerignore"), "w") as f:
    f.write("**/*.log\nDockerfile\n")
EOF
find "$d.tmp" -exec touch -h -d @1700000000 {} +
chmod -R a+rX "$d.tmp"
touch "$d.tmp/.complete"
mv "$d.tmp" "$d"
echo "$d"
