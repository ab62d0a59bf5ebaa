#!/usr/bin/env bash
# Print the normalised dry-run plan of one corpus entry:
#   tests/corpus/run-one.sh KILN DIR
# Extra flags come from DIR/args (one per line). The default platform is
# linux/amd64; the build platform and the Dockerfile path are dropped because
# they depend on the machine and checkout.
set -euo pipefail
kiln=$1 dir=$2
args=()
if [ -f "$dir/args" ]; then mapfile -t args < "$dir/args"; fi
plat=(--platform linux/amd64)
for a in "${args[@]}"; do [ "$a" = --platform ] && plat=(); done
"$kiln" build --dry-run "${plat[@]}" -f "$dir/Dockerfile" "${args[@]}" 2>/dev/null \
  | jq -S 'del(.build_platform, .dockerfile) | .warnings |= map(sub("^.*Dockerfile:"; "Dockerfile:"))'
