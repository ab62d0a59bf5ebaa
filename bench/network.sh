#!/usr/bin/env bash
# bench/network.sh - what a RUN step's private network (pasta) costs against
# the host's network, in one run, modes alternating so that load drift hits
# both: the per-step set-up (20 empty RUN steps), apt-get update + install
# of curl from the Debian archive, and downloads of npm package tarballs
# from the npm registry over HTTPS. Prints a Markdown table of medians and
# private/host ratios.
#
#   bench/network.sh [KILN] [RUNS]      (as root; RUNS default 3)
#
# The debian:bookworm base comes from the bench registry
# ($KILN_TEST_CACHE/bench/registry, made by bench/make-workload-bases.sh).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
KILN_BIN=$(readlink -f "${1:-$SRC/kiln}") RUNS=${2:-3}
export KILN=$KILN_BIN KILN_POLICY_DIR=${KILN_POLICY_DIR:-$SRC/policies}
# shellcheck source=tests/integration/helpers.bash
source "$SRC/tests/integration/helpers.bash"
registry_start --root "$KILN_TEST_CACHE/bench/registry" >&2
fuse_dev_open_for_all
tun_dev_open_for_all
BASE=$REGISTRY/library/debian:bookworm
skopeo inspect --raw --tls-verify=false "docker://$BASE" > /dev/null \
  || { echo "network.sh: no debian:bookworm in the bench registry (run bench/make-workload-bases.sh)" >&2; exit 1; }
W=$(mktemp -d /var/tmp/kiln-net-bench.XXXXXX)
trap 'registry_stop_all; rm -rf "$W"' EXIT

kb() { # kb CONTEXT NETWORK [FLAGS...]
  local ctx=$1 net=$2
  shift 2
  "$KILN" build --root "$W/store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BASE" --no-push \
    --progress plain --network "$net" "$@" "$ctx" > "$W/log" 2>&1 || { cat "$W/log" >&2; return 1; }
}

# tools: the base plus curl and CA certificates, built once (host network).
mkdir -p "$W/tools" "$W/empty" "$W/apt" "$W/npm"
# The host's CA bundle: where HTTPS goes through an intercepting proxy, its
# CA is there.
cp /etc/ssl/certs/ca-certificates.crt "$W/tools/"
printf 'ARG BASE\nFROM $BASE\nRUN apt-get update -q && apt-get install -y -q --no-install-recommends curl ca-certificates && rm -rf /var/lib/apt/lists/*\nCOPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\n' \
  > "$W/tools/Dockerfile"
TOOLS=$REGISTRY/bench/net-tools:1
"$KILN" build --root "$W/store" --insecure-registry "$REGISTRY" --build-arg "BASE=$BASE" --progress plain \
  --network host -t "$TOOLS" "$W/tools" > "$W/log" 2>&1 || { cat "$W/log" >&2; exit 1; }
{ printf 'ARG BASE\nFROM $BASE\nARG NONCE\n'; for i in $(seq 20); do printf 'RUN echo $NONCE%d > /dev/null\n' "$i"; done; } \
  > "$W/empty/Dockerfile"
printf 'ARG BASE\nFROM $BASE\nARG NONCE\nRUN echo $NONCE > /dev/null && apt-get update -q && apt-get install -y -q --no-install-recommends curl\n' \
  > "$W/apt/Dockerfile"
printf 'FROM %s\nARG NONCE\nRUN echo $NONCE > /dev/null && cd /tmp && for p in typescript/-/typescript-5.4.5 lodash/-/lodash-4.17.21 react-dom/-/react-dom-18.3.1 webpack/-/webpack-5.91.0 eslint/-/eslint-9.3.0; do curl -sSfO https://registry.npmjs.org/$p.tgz; done && ls -l /tmp/*.tgz | wc -l\n' \
  "$TOOLS" > "$W/npm/Dockerfile"

now() { date +%s.%N; }
declare -A T
for r in $(seq "$RUNS"); do
  for net in private host; do
    for wl in empty apt npm; do
      t0=$(now)
      kb "$W/$wl" "$net" --build-arg "NONCE=$r-$net-$RANDOM"
      T[$wl,$net]+="$(echo "$(now) - $t0" | bc) "
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo "| workload | host (s) | private (s) | private/host |"
echo "|---|---|---|---|"
for wl in empty apt npm; do
  h=$(echo "${T[$wl,host]}" | median) p=$(echo "${T[$wl,private]}" | median)
  case $wl in
    empty) name="20 empty RUN steps (per step: host $(echo "scale=3; $h / 20" | bc) s, private $(echo "scale=3; $p / 20" | bc) s)" ;;
    apt) name="apt-get update + install curl (Debian archive)" ;;
    npm) name="5 npm tarballs over HTTPS (registry.npmjs.org)" ;;
  esac
  printf '| %s | %.2f | %.2f | %.2f |\n' "$name" "$h" "$p" "$(echo "scale=4; $p / $h" | bc)"
done
echo "($RUNS runs each, medians; kiln $("$KILN" version 2>/dev/null | head -n 1))"
