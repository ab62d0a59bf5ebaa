#!/usr/bin/env bats
# kiln build --progress: the tty display under a real pseudo-terminal
# (util-linux's script), auto's choice, and plain output without a terminal.
# The scratch builds need no registry; the RUN test uses the busybox fixture.

load helpers

setup() {
  kiln_setup
  mkdir -p "$TEST_TMP/ctx"
  printf 'FROM scratch\nCOPY hello.txt /hello.txt\nCOPY hello.txt /again.txt\n' > "$TEST_TMP/ctx/Dockerfile"
  echo hello > "$TEST_TMP/ctx/hello.txt"
}
teardown() { kiln_teardown; }

# in_pty COLS ROWS ENV... -- CMD...: run CMD on a pseudo-terminal of that size
# (stdout and stderr both on it); the terminal's bytes in $output.
in_pty() {
  local cols=$1 rows=$2
  shift 2
  local envs=()
  while [ "$1" != "--" ]; do
    envs+=("$1")
    shift
  done
  shift
  local cmd
  cmd=$(printf '%q ' "$@")
  run env "${envs[@]}" script -qec "stty cols $cols rows $rows; $cmd" /dev/null < /dev/null
}

kbuild_args() {
  echo "$KILN" build --root "$TEST_TMP/store" --no-push --oci-layout "$TEST_TMP/out:t"
}

# Longest line of $1 in display columns, escape sequences and CR left out.
widest() {
  printf '%s' "$1" | sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\r//g' | awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }'
}

@test "progress: tty redraws in place on a terminal, lines cut to its width" {
  # shellcheck disable=SC2046
  in_pty 50 20 TERM=xterm NO_COLOR= -- $(kbuild_args) --progress=tty "$TEST_TMP/ctx"
  printf '%s\n' "$output" | cat -v
  [ "$status" -eq 0 ]
  # Cursor hidden while drawing, shown again at the end.
  [[ $output == *$'\e[?25l'* ]]
  [[ $output == *$'\e[?25h'* ]]
  # Redrawn in place: back to column 0, up over the previous frame, lines erased.
  [[ $output =~ $'\r\e['[0-9]+A ]]
  [[ $output == *$'\e[K'* ]]
  # three steps and the output (writing the OCI layout) as a fourth
  [[ $output == *"[+] Building "*"(4/4) FINISHED"* ]]
  [[ $output == *" => [output 1/1] exporting the image"* ]]
  [[ $output == *" => [stage-0 1/3] FROM scratch"*s* ]]
  [[ $output == *" => [stage-0 2/3] COPY hello.txt /hello.txt"* ]]
  [[ $output == *" => [stage-0 3/3] COPY hello.txt /again.txt"* ]]
  # Colour by default; no plain-mode "#N" step lines.
  [[ $output == *$'\e[34m'* ]]
  [[ $output != *"#1 [stage-0"* ]]
  # The summary is printed below the final frame, after the cursor is back.
  [[ $output =~ $'\e[?25h'built\ sha256:[0-9a-f]{64} ]]
  # The 50-column terminal: no frame line reaches the last column (no
  # wrapping); the summary after the frame is ordinary text.
  [ "$(widest "${output%$'\e[?25h'*}")" -le 49 ]
}

@test "progress: tty honours NO_COLOR" {
  # shellcheck disable=SC2046
  in_pty 80 24 TERM=xterm NO_COLOR=1 -- $(kbuild_args) --progress=tty "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  [[ $output == *"FINISHED"* ]]
  [[ $output != *$'\e[34m'* ]]
  [[ $output != *$'\e[0m'* ]]
  [[ $output =~ $'\r\e['[0-9]+A ]]
}

@test "progress: tty keeps a failed step on screen and the error below it" {
  printf 'FROM scratch\nCOPY hello.txt /hello.txt\nCOPY missing.txt /m\n' > "$TEST_TMP/ctx/Dockerfile"
  # shellcheck disable=SC2046
  in_pty 100 24 TERM=xterm NO_COLOR=1 -- $(kbuild_args) --progress=tty "$TEST_TMP/ctx"
  printf '%s\n' "$output" | cat -v
  [ "$status" -eq 1 ]
  [[ $output == *"FAILED"* ]]
  [[ $output == *" => ERROR [stage-0 3/3] COPY missing.txt /m"* ]]
  # The final frame ends with the cursor shown; kiln's error message comes after it.
  local after=${output##*$'\e[?25h'}
  [[ $after == *"missing.txt"* ]]
  [[ $after != *$'\e['* ]]
}

@test "progress: auto is plain without a terminal" {
  run bash -c "$(kbuild_args) --progress=auto '$TEST_TMP/ctx' 2>&1 </dev/null | cat"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"#1 [stage-0 1/3] FROM scratch"* ]]
  [[ $output == *"#2 [stage-0 2/3] COPY hello.txt /hello.txt"* ]]
  [[ $output == *"#2 DONE "*s* ]]
  [[ $output == *"built sha256:"* ]]
  [[ $output != *$'\e'* ]]
  [[ $output != *"[+] Building"* ]]
}

@test "progress: auto is tty on a terminal, plain when TERM is dumb" {
  # shellcheck disable=SC2046
  in_pty 80 24 TERM=xterm-256color -- $(kbuild_args) --progress=auto "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  [[ $output == *"[+] Building"*"FINISHED"* ]]
  [[ $output =~ $'\r\e['[0-9]+A ]]
  # shellcheck disable=SC2046
  in_pty 80 24 TERM=dumb -- $(kbuild_args) --progress=auto "$TEST_TMP/ctx"
  [ "$status" -eq 0 ]
  [[ $output == *"#1 [stage-0 1/3] FROM scratch"* ]]
  [[ $output != *$'\e['* ]]
}

@test "progress: an unknown mode is a usage error naming the choices" {
  run "$KILN" build --root "$TEST_TMP/store" --no-push --progress=fancy "$TEST_TMP/ctx"
  [ "$status" -ne 0 ]
  [[ $output == *"'fancy'"*"auto, plain, tty or json"* ]]
}

@test "progress: json is one event per line" {
  run bash -c "$(kbuild_args) --progress=json '$TEST_TMP/ctx' 2>&1 >/dev/null"
  [ "$status" -eq 0 ]
  printf '%s\n' "$output" | jq -e -s 'map(.event) | index("step") != null and index("done") != null and .[-1] == "summary"'
}

@test "progress: json stays valid JSON whatever bytes a step prints, log lines included; plain keeps the bytes" {
  registry_start
  fixtures_push busybox
  # invalid UTF-8 (0xff 0xfe, a lone continuation byte, a truncated euro sign), then valid UTF-8
  printf 'ARG BASE\nFROM $BASE\nRUN printf "bad \\377\\376 \\200 \\342\\202 end\\n"; printf "ok \\303\\251\\n"\n' \
    > "$TEST_TMP/ctx/Dockerfile"
  run bash -c "$(kbuild_args) --insecure-registry '$REGISTRY' --build-arg 'BASE=$BUSYBOX_IMAGE' --progress=json \
    '$TEST_TMP/ctx' 2>&1 >/dev/null"
  echo "$output"
  [ "$status" -eq 0 ]
  # every line parses, one by one: events, and kiln's log lines (e.g. "pulling layer"), which
  # --progress=json makes JSON objects too
  local events=$output
  # strictly: UTF-8 first (jq would quietly replace invalid bytes), then JSON
  python3 -c 'import sys, json
for l in sys.stdin.buffer.read().decode("utf-8").splitlines():
    json.loads(l)' <<< "$events"
  [ "$(jq -r 'select(.event == "output" and (.line | startswith("bad"))) | .line' <<< "$events")" = \
    "bad $(printf '\357\277\275\357\277\275 \357\277\275 \357\277\275\357\277\275') end" ]
  [[ $output == *"ok é"* ]]
  [ "$(jq -r 'select(.level == "info" and (.msg | startswith("user namespace: "))) | .level' <<< "$events")" = info ]
  # --log-format text asked for explicitly keeps text log lines
  run bash -c "$(kbuild_args) --insecure-registry '$REGISTRY' --build-arg 'BASE=$BUSYBOX_IMAGE' --progress=json \
    --log-format text '$TEST_TMP/ctx' 2>&1 >/dev/null"
  [ "$status" -eq 0 ]
  # (the base is in the store now: its layer is "cached", not pulled)
  grep -qE '^layer [0-9a-f]{12} [0-9.]+ MB cached$' <<< "$output"
  # plain mode: the exact bytes
  rm -rf "$TEST_TMP/out"
  "$KILN" build --root "$TEST_TMP/store" --no-push --no-cache --oci-layout "$TEST_TMP/out:t" --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --progress=plain "$TEST_TMP/ctx" > "$TEST_TMP/plain" 2>&1
  grep -q "$(printf 'bad \377\376 \200 \342\202 end')" "$TEST_TMP/plain"
}

@test "progress: tty shows a running step's output live and collapses it when done" {
  registry_start
  fixtures_push busybox
  printf 'ARG BASE\nFROM $BASE\nRUN for i in 1 2 3 4 5 6 7 8; do echo line-$i; done; sleep 1\nRUN echo second; echo oops >&2; exit 4\n' \
    > "$TEST_TMP/ctx/Dockerfile"
  # shellcheck disable=SC2046
  in_pty 120 40 TERM=xterm NO_COLOR=1 -- $(kbuild_args) --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --progress=tty "$TEST_TMP/ctx"
  printf '%s\n' "$output" | cat -v
  [ "$status" -eq 4 ]
  # While the first RUN sleeps, the frame shows its last 6 lines.
  [[ $output == *" => => # line-3"*" => => # line-8"* ]]
  local final=${output##*FAILED}
  # In the final frame: the first RUN collapsed, the failing one with its output.
  [[ $final != *"line-8"* ]]
  [[ $final == *" => ERROR [stage-0 3/3] RUN echo second"* ]]
  [[ $final == *" => => # oops"* ]]
  [[ $final == *"exited with status 4"* ]]
}

@test "progress: SIGINT during a tty build leaves the final frame and the cursor shown, exit 130" {
  registry_start
  fixtures_push busybox
  printf 'ARG BASE\nFROM $BASE\nRUN echo started; sleep 30\n' > "$TEST_TMP/ctx/Dockerfile"
  # shellcheck disable=SC2046
  in_pty 100 30 TERM=xterm NO_COLOR=1 -- timeout --preserve-status -s INT 3 $(kbuild_args) \
    --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" --progress=tty "$TEST_TMP/ctx"
  printf '%s\n' "$output" | cat -v
  [ "$status" -eq 130 ]
  local final=${output##*FAILED}
  [[ $final == *" => ERROR [stage-0 2/2] RUN echo started; sleep 30"* || $final == *" => [stage-0 2/2] RUN echo started"* ]]
  [[ $final == *" => => # started"* ]]
  [[ $final == *$'\e[?25h'* ]]
  [[ ${final##*$'\e[?25h'} == *"signal 2"* ]]
  [ "$(echo "$output" | grep -c $'\e\[?25l')" -eq 1 ]
}
