#!/usr/bin/env bats
# Dockerfile frontend corpus: `kiln build --dry-run` against reviewed
# expected plans (tests/corpus/dockerfile/*/plan.json, compared after jq -S)
# and expected error messages (tests/corpus/dockerfile-errors/*/error).

setup() {
  command -v jq >/dev/null || skip "jq is not installed"
  corpus="$KILN_SRC/tests/corpus"
}

@test "corpus: every Dockerfile gives its expected dry-run plan" {
  # BUILDPLATFORM appears in some plans; they were written on linux/amd64.
  [ "$(uname -m)" = x86_64 ] || skip "expected plans assume an amd64 build machine"
  n=0 bad=()
  cd "$corpus"
  for d in dockerfile/*/; do
    d=${d%/}
    [ -f "$d/plan.json" ] || { bad+=("$d: no plan.json"); continue; }
    if ! got=$(./run-one.sh "$KILN" "$d"); then bad+=("$d: kiln failed"); continue; fi
    if ! diff -u <(jq -S . "$d/plan.json") <(echo "$got") > /tmp/kiln-corpus-diff.$$; then
      bad+=("$d: $(head -c 2000 /tmp/kiln-corpus-diff.$$)")
    fi
    n=$((n + 1))
  done
  rm -f /tmp/kiln-corpus-diff.$$
  printf '%s\n' "${bad[@]}" >&2
  [ "${#bad[@]}" -eq 0 ]
  [ "$n" -ge 30 ]
}

@test "corpus: every broken Dockerfile fails with its expected message" {
  n=0 bad=()
  cd "$corpus"
  for d in dockerfile-errors/*/; do
    d=${d%/}
    args=()
    [ -f "$d/args" ] && mapfile -t args < "$d/args"
    want=$(cat "$d/error")
    got=$("$KILN" build --dry-run -f "$d/Dockerfile" "${args[@]}" 2>&1 >/dev/null) && rc=0 || rc=$?
    if [ "$rc" -ne 1 ] || [[ "$got" != *"$want"* ]]; then
      bad+=("$d: rc=$rc got: $got")
    fi
    n=$((n + 1))
  done
  printf '%s\n' "${bad[@]}" >&2
  [ "${#bad[@]}" -eq 0 ]
  [ "$n" -ge 15 ]
}

@test "build without an output parses first, then names the output flags" {
  run "$KILN" build -f "$corpus/dockerfile/node-app/Dockerfile" "$corpus/dockerfile/node-app"
  [ "$status" -eq 1 ]
  [[ "$output" == *"no output: give -t/--destination IMAGE, --oci-layout DIR or --tar-path"* ]]
  run "$KILN" build -f "$corpus/dockerfile-errors/unknown-instruction/Dockerfile"
  [ "$status" -eq 1 ]
  [[ "$output" == *"unknown instruction 'RUNN'"* ]]
}

@test "dry-run reads the Dockerfile from CONTEXT by default and never needs the context" {
  tmp=$(mktemp -d)
  printf 'FROM scratch\nCOPY missing-file /x\n' > "$tmp/Dockerfile"
  run "$KILN" build --dry-run "$tmp"
  rm -rf "$tmp"
  [ "$status" -eq 0 ]
  echo "$output" | jq -e '.stages[0].instructions[0].args == ["missing-file", "/x"]'
}

@test "dry-run flags: --dockerfile alias, --context, bad --platform, unknown flag" {
  d="$corpus/dockerfile/go-multistage"
  run "$KILN" build --dry-run --dockerfile "$d/Dockerfile" --context "dir://$d"
  [ "$status" -eq 0 ]
  run "$KILN" build --dry-run -f "$d/Dockerfile" --platform linux
  [ "$status" -eq 1 ]
  [[ "$output" == *"invalid platform 'linux'"* ]]
  run "$KILN" build --dry-run --context "s3://bucket/ctx" -f "$d/Dockerfile"
  [ "$status" -eq 2 ]
  run "$KILN" build --dry-run --no-such-flag
  [ "$status" -eq 2 ]
}
