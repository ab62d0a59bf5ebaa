#!/usr/bin/env bash
# Frontend benchmark: parse + plan a generated 10,000-line Dockerfile, and
# match a generated 100,000-path context listing against a 200-pattern
# .dockerignore. Run from the repository root after `make`:
#   bench/frontend.sh
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/libkiln.a
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -std=gnu11 -O2 -D_GNU_SOURCE -Isrc $(pkg-config --cflags yajl) -o "$work/bench" bench/frontend_bench.c \
  build/libkiln.a $(pkg-config --libs yajl libseccomp libcap libarchive libcurl fuse3 liburing libcrypto zlib libzstd libisal) -lm -pthread

# 10,000 lines: 50 stages of 200 lines (ARG/ENV/RUN with continuations/COPY --from/LABEL/heredoc).
awk 'BEGIN {
  print "# syntax=docker/dockerfile:1"; print "ARG BASE=debian:bookworm"; lines = 2
  for (s = 0; s < 50; s++) {
    printf "FROM ${BASE} AS s%d\n", s; lines++
    for (k = 0; lines < (s + 1) * 200; k++) {
      m = k % 8
      if (m == 0) { printf "ARG V%d=%d\n", k, k; lines++ }
      else if (m == 1) { printf "ENV E%d=${V%d:-x}/bin PATH=/opt/%d:$PATH\n", k, k - 1, k; lines++ }
      else if (m == 2) { printf "RUN echo %d && \\\n    make -j2 target%d\n", k, k; lines += 2 }
      else if (m == 3 && s > 0) { printf "COPY --from=s%d --chown=1:1 /out/%d /in/%d\n", s - 1, k, k; lines++ }
      else if (m == 4) { printf "LABEL k%d=\"v %d\" other=${E%d}\n", k, k, k - 3; lines++ }
      else if (m == 5) { printf "COPY <<EOF /etc/f%d\nline $V%d\nEOF\n", k, k - 5; lines += 3 }
      else if (m == 6) { printf "WORKDIR /w/${V%d}\n", k - 6; lines++ }
      else { printf "# comment %d\n", k; lines++ }
    }
  }
}' > "$work/Dockerfile"

# 200 patterns and 100,000 paths.
awk 'BEGIN {
  for (i = 0; i < 200; i++) {
    m = i % 5
    if (m == 0) printf "dir%d/**/*.log\n", i
    else if (m == 1) printf "**/tmp%d\n", i
    else if (m == 2) printf "build%d/*\n", i
    else if (m == 3) printf "!build%d/keep*\n", i - 1
    else printf "*.o%d\n", i
  }
}' > "$work/ignore"
awk 'BEGIN { srand(1); for (i = 0; i < 100000; i++) {
  printf "dir%d/sub%d/build%d/file%d.%s\n", int(rand()*300), int(rand()*20), int(rand()*300), i, (i % 3 ? "c" : "log") } }' > "$work/paths"

echo "== $(wc -l < "$work/Dockerfile") line Dockerfile"
for i in 1 2 3; do "$work/bench" dockerfile "$work/Dockerfile"; done
echo "== $(wc -l < "$work/ignore") patterns x $(wc -l < "$work/paths") paths"
for i in 1 2 3; do "$work/bench" ignore "$work/ignore" "$work/paths"; done
