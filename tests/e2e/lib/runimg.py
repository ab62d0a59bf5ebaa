#!/usr/bin/python3
"""runimg.py RUN-CHECK DIR:TAG - check that an image runs as its run-check says.

The image is unpacked with `umoci unpack` (as root) into a temp dir; each check
runs the image's Entrypoint + Cmd (or Entrypoint + the check's `cmd:`) chrooted
into the rootfs, with the config's Env, WorkingDir and User (resolved by umoci
through the image's /etc/passwd and /etc/group), and compares its stdout with
the `expect:` lines.

run-check format (checks separated by a line `---`; `#` starts a comment line):
    cmd: ARGS...        optional; shell-like words (shlex) replacing Cmd, as in
                        `docker run IMAGE ARGS...`
    expect: TEXT        one line of expected stdout (repeat for more lines)
    status: N           expected exit status (default 0)
Exit 0 when every check passes, 1 on a mismatch (printed), 2 on errors.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile


def parse(path):
    checks, cur = [], {"cmd": None, "expect": [], "status": 0}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line.strip() == "---":
                checks.append(cur)
                cur = {"cmd": None, "expect": [], "status": 0}
                continue
            key, sep, val = line.partition(":")
            if not sep or key not in ("cmd", "expect", "status"):
                raise ValueError("%s:%d: expected 'cmd:', 'expect:', 'status:' or '---'" % (path, lineno))
            val = val[1:] if val.startswith(" ") else val
            if key == "cmd":
                cur["cmd"] = shlex.split(val)
            elif key == "expect":
                cur["expect"].append(val)
            else:
                cur["status"] = int(val)
    checks.append(cur)
    return checks


def image_config(layout, tag):
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    for d in idx.get("manifests", []):
        if (d.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag:
            break
    else:
        raise ValueError("%s: no image tagged %s" % (layout, tag))

    def blob(dg):
        with open(os.path.join(layout, "blobs", *dg.split(":", 1))) as f:
            return json.load(f)
    return blob(blob(d["digest"])["config"]["digest"]).get("config") or {}


def run_one(rootfs, spec, argv, timeout=30):
    proc = spec["process"]
    env = proc.get("env") or []
    envd = dict(e.split("=", 1) for e in env if "=" in e)
    envd.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    user = proc.get("user") or {}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    groups = user.get("additionalGids") or []
    cwd = proc.get("cwd") or "/"

    def child():
        os.chroot(rootfs)
        os.chdir(cwd)
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)
    return subprocess.run(argv, env=envd, preexec_fn=child, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout), envd


def resolve(rootfs, argv0, path):
    """argv[0] looked up through the image's PATH (the chroot happens later)."""
    if "/" in argv0:
        return argv0
    for d in path.split(":"):
        p = os.path.join(d, argv0)
        full = rootfs + p
        if os.path.lexists(full):
            return p
    return argv0


def main():
    if len(sys.argv) != 3:
        print("usage: runimg.py RUN-CHECK DIR:TAG", file=sys.stderr)
        return 2
    check_file, ref = sys.argv[1], sys.argv[2]
    layout, _, tag = ref.rpartition(":")
    try:
        checks = parse(check_file)
        cfg = image_config(layout, tag)
    except (OSError, ValueError, KeyError) as e:
        print("runimg: %s" % e, file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="kiln-runimg.")
    try:
        bundle = os.path.join(tmp, "bundle")
        r = subprocess.run(["umoci", "--log", "error", "unpack", "--image", ref, bundle],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print("runimg: umoci unpack %s failed: %s" % (ref, r.stderr.strip()), file=sys.stderr)
            return 2
        with open(os.path.join(bundle, "config.json")) as f:
            spec = json.load(f)
        rootfs = os.path.join(bundle, "rootfs")
        entry = cfg.get("Entrypoint") or []
        bad = 0
        for i, c in enumerate(checks, 1):
            argv = entry + (c["cmd"] if c["cmd"] is not None else (cfg.get("Cmd") or []))
            if not argv:
                print("check %d: the image has no Entrypoint or Cmd to run" % i)
                bad += 1
                continue
            envd = dict(e.split("=", 1) for e in (spec["process"].get("env") or []) if "=" in e)
            argv = [resolve(rootfs, argv[0], envd.get("PATH", "/usr/bin:/bin"))] + argv[1:]
            try:
                res, _ = run_one(rootfs, spec, argv)
            except subprocess.TimeoutExpired:
                print("check %d: %s timed out" % (i, shlex.join(argv)))
                bad += 1
                continue
            except OSError as e:
                print("check %d: cannot run %s: %s" % (i, shlex.join(argv), e))
                bad += 1
                continue
            out = res.stdout.decode("utf-8", "replace").splitlines()
            if out != c["expect"] or res.returncode != c["status"]:
                bad += 1
                print("check %d: %s" % (i, shlex.join(argv)))
                print("  expected (status %d): %r" % (c["status"], c["expect"]))
                print("  got      (status %d): %r" % (res.returncode, out))
                err = res.stderr.decode("utf-8", "replace").strip()
                if err:
                    print("  stderr: %s" % err[-500:])
        return 1 if bad else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
