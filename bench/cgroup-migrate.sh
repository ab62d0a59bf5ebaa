#!/usr/bin/env bash
# bench/cgroup-migrate.sh - what moving a new process into a cgroup costs
# (the write of "0" to cgroup.procs each RUN step's helper makes when kiln
# enforces --memory/--pids-limit with cgroups: sandbox_limits.c), against
# the gap since the previous move. In cgroup v1 a move takes the kernel's
# cgroup_threadgroup_rwsem for writing, whose rcu_sync waits for an RCU
# grace period unless another writer came in the last few milliseconds: a
# build's steps, tens of milliseconds apart, paid that wait each. A write
# to v1's "tasks" moves one thread and skips that lock: kiln's helper (a
# single-threaded fork) moves itself that way since session 11, and the
# script measures both files.
#
#   bench/cgroup-migrate.sh [MOVES]     (as root; MOVES per gap, default 8)
set -euo pipefail
moves=${1:-8}
if [ -d /sys/fs/cgroup/memory ]; then base=/sys/fs/cgroup/memory; kind="cgroup v1 memory"
else base=/sys/fs/cgroup; kind="cgroup v2"; fi
cg=$base/kiln-bench-migrate.$$
mkdir "$cg"
trap 'rmdir "$cg" 2>/dev/null || true' EXIT
files=(cgroup.procs)
if [ -e "$cg/tasks" ]; then files+=(tasks); fi
python3 - "$cg" "$moves" "$kind" "${files[@]}" <<'PY'
import os, sys, time, statistics
cg, moves, kind, files = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
print(f"| file | gap between moves | move times ({kind}, ms) | median |")
print("| --- | --- | --- | --- |")
for name, gap in ((n, g) for n in files for g in (0.001, 0.005, 0.02, 0.05)):
    out = []
    for _ in range(moves):
        time.sleep(gap)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            t = time.perf_counter()
            with open(cg + "/" + name, "w") as f:
                f.write("0")
            os.write(w, str(time.perf_counter() - t).encode())
            os._exit(0)
        os.close(w)
        out.append(float(os.read(r, 64)) * 1000)
        os.close(r)
        os.waitpid(pid, 0)
    print(f"| {name} | {gap * 1000:.0f} ms | {' '.join(f'{x:.1f}' for x in out)} | {statistics.median(out):.1f} |")
PY
echo
echo "$(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(uname -r); $(date -u +%FT%RZ)"
