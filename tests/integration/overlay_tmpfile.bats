#!/usr/bin/env bats
# open(2) with O_TMPFILE on a step's root (issue 21): installers and
# libraries (systemd's tmpfile helpers, some package managers, Python's
# tempfile) make an unnamed file and link it into place when it is
# complete. libfuse 3.14 has no FUSE_TMPFILE, so kiln's I/O layer hands it
# to the create handler (overlay_worker_request_fix). The unnamed file must
# behave as on ext4: nlink 0, linkable once unless O_EXCL, nothing of it in
# the layer unless it was linked, and then with its data and mode. Every ID
# mode, through /dev/fuse and through FUSE over io_uring.

load helpers

setup_file() {
  require_root
  kiln_setup
  registry_start
  fixtures_push all
  export REGISTRY BUSYBOX_IMAGE
}
teardown_file() { registry_stop_all; }
setup() {
  kiln_setup
  fuse_dev_open_for_all
  shared_dir
  mkdir -p "$SHARED/ctx"
  gcc -static -O1 -o "$SHARED/ctx/tmpfile" "$KILN_SRC/tests/integration/sandbox/tmpfile.c"
  cat > "$SHARED/ctx/Dockerfile" <<'DF'
ARG BASE
FROM $BASE
COPY tmpfile /usr/bin/tmpfile
RUN mkdir /d && tmpfile link /d named hello 0640 && tmpfile excl /d never && tmpfile anon /d secret \
 && tmpfile relink /d gone && tmpfile link / top-level x 0600 \
 && echo "same step: $(cat /d/named) $(stat -c '%a %h' /d/named) $(ls /d | tr '\n' ' ')"
RUN echo "next step: $(cat /d/named) $(stat -c '%a %h' /d/named) $(ls /d | tr '\n' ' ')"
DF
}
teardown() {
  fuse_uring_restore
  shared_dir_cleanup
  kiln_teardown
}

# tmpfile_build MODE [uring]: build as root, a plain user with subuid
# ranges (sub) or without (single); check the steps' view and the layer.
tmpfile_build() {
  local mode=$1 v=()
  [ "${2:-}" != uring ] || { fuse_uring_on; v=(-v debug); }
  mode_build "$mode" tmpf "$SHARED/store" "$SHARED/out" "${v[@]}" --progress plain --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --no-push --oci-layout "$SHARED/out/o:t" "$SHARED/ctx"
  echo "$output" | grep -E 'tmpfile|step:|user namespace|error|io_uring' || true
  for op in link excl anon relink; do grep -q "tmpfile: $op ok" <<< "$output"; done
  # only the linked file has a name, with what was written before and
  # after the link, its mode and one link
  grep -q 'same step: hello+ 640 1 named $' <<< "$output"
  grep -q 'next step: hello+ 640 1 named $' <<< "$output"
  if [ "${2:-}" = uring ]; then
    grep -qE 'fuse io_uring: [0-9]+ requests answered through the queues' <<< "$output"
  fi
  # the RUN step's layer, read by tar: the two linked files and their
  # directory, nothing of the unnamed ones
  local m l listing=""
  m=$(jq -r '.manifests[0].digest' "$SHARED/out/o/index.json" | cut -d: -f2)
  for l in $(jq -r '.layers[].digest' "$SHARED/out/o/blobs/sha256/$m" | cut -d: -f2); do
    tar -tzf "$SHARED/out/o/blobs/sha256/$l" | grep -q '^d/named$' || continue
    listing=$(tar -tvzf "$SHARED/out/o/blobs/sha256/$l")
  done
  echo "$listing"
  [ -n "$listing" ]
  [ "$(grep -vE ' (d/|d/named|top-level)$' <<< "$listing")" = "" ]
  grep -qE '^-rw-r----- .* 6 .* d/named$' <<< "$listing"
  grep -qE '^-rw------- .* 2 .* top-level$' <<< "$listing"
}

@test "O_TMPFILE: unnamed files, linked or not, behave as on ext4 (root)" {
  tmpfile_build root
}

@test "O_TMPFILE: the same as a plain user with subuid ranges" {
  tmpfile_build sub
}

@test "O_TMPFILE: the same as a plain user without subuid ranges (single)" {
  tmpfile_build single
}

@test "O_TMPFILE: the same through FUSE over io_uring" {
  tmpfile_build root uring
}
