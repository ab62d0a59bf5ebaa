#!/usr/bin/env bash
# bench/stress-parallel.sh - rebuild a three-stage Dockerfile (parallel stages
# over one busybox base, many RUN steps, 20 MiB moved through the mounts) N
# times with --no-cache --jobs 3 and count builds that hang (still running
# after DEADLINE seconds: hang report kept in the log, build killed) or that
# print a libfuse error line ("fuse: ..."). Run as root.
#   bench/stress-parallel.sh [N] [KILN] [DEADLINE] [P]   (defaults 100, ./kiln, 60, 1)
# P builds run at a time, each on its own store (N rounds: N*P builds).
# STRESS_DROP_CACHES=1 drops the page cache before each round.
# Logs stay in the printed directory. Needs docker-registry and the fixture
# tools (scripts/install-deps.sh).
set -uo pipefail
N=${1:-100}
src=$(cd "$(dirname "$0")/.." && pwd)
export KILN_SRC=$src KILN=${2:-$src/kiln}
DEADLINE=${3:-60} P=${4:-1}
# shellcheck source=../tests/integration/helpers.bash
source "$src/tests/integration/helpers.bash"
trap kiln_shell_cleanup EXIT
registry_start
fixtures_push busybox 2>/dev/null || { echo "stress-parallel: fixture push failed" >&2; exit 1; }
logs=$(mktemp -d /var/tmp/kiln-stress.XXXXXX)
mkdir -p "$logs/ctx"
cat > "$logs/ctx/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE AS a
RUN mkdir -p /w && cd /w && for i in $(seq 1 200); do echo $i > f$i; done
RUN cd /w && for i in $(seq 1 100); do ln f$i h$i; mv f$((i+100)) g$i; done
RUN --mount=type=cache,target=/cache cd /w && rm -f h1 h2 && chmod 600 f3 && rm -rf /cache/w && cp -r /w /cache/ && ls /cache >/dev/null
RUN cd /w && rm -rf * && mkdir -p d/e/f && echo x > d/e/f/x
RUN --mount=type=tmpfs,target=/tmp/t echo hi > /tmp/t/x && cat /w/d/e/f/x
RUN rm -rf /w && mkdir /w && echo y > /w/y
FROM $BASE AS b
RUN mkdir -p /v && dd if=/dev/zero of=/v/big bs=1M count=20 2>/dev/null
RUN truncate -s 5M /v/big && echo z >> /v/big
RUN --mount=type=cache,target=/cache,sharing=locked ls /cache >/dev/null; mv /v/big /v/big2
RUN for i in $(seq 1 50); do mkdir -p /v/d$i; echo $i > /v/d$i/f; done
RUN rm -rf /v/d1* && ln -s /v/d2 /v/link
FROM $BASE AS c
RUN echo c > /c1
RUN echo c > /c2
RUN rm /c1
RUN echo c > /c3
FROM $BASE
COPY --from=a /w /wa
COPY --from=b /v /vb
COPY --from=c / /cc
RUN ls -R /wa /vb > /dev/null
EOF
ok=0 hung=0 failed=0 fuse_err=0
for i in $(seq 1 "$N"); do
  # Cold page cache: lower files are then read from disk by the FUSE
  # server (the old reply-splicing failure was far more frequent so).
  [ "${STRESS_DROP_CACHES:-0}" = 1 ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }
  pids=()
  for j in $(seq 1 "$P"); do
    with_deadline "$DEADLINE" "$KILN" build --root "$logs/store$j" --no-cache --jobs 3 \
      --build-arg "BASE=$BUSYBOX_IMAGE" --insecure-registry "$REGISTRY" --no-push "$logs/ctx" \
      > "$logs/log.$i.$j" 2>&1 &
    pids+=($!)
  done
  for j in $(seq 1 "$P"); do
    wait "${pids[j - 1]}"
    case $? in
      0) ok=$((ok + 1)) ;;
      124) hung=$((hung + 1)); echo "build $i.$j hung: $logs/log.$i.$j" ;;
      *) failed=$((failed + 1)); echo "build $i.$j failed: $logs/log.$i.$j" ;;
    esac
    grep -q '^fuse: ' "$logs/log.$i.$j" && fuse_err=$((fuse_err + 1))
  done
done
echo "$((N * P)) builds ($P at a time): $ok ok, $hung hung, $failed failed; $fuse_err printed a libfuse error (logs: $logs)"
