#!/usr/bin/env bats
# Layers added under a live mount (issue 21): consecutive RUN steps of a
# stage share one FUSE mount, and a COPY between them no longer ends it —
# its layer joins the top of the mount's view (overlay_add_layers), and the
# kernel's cached entries, attributes and pages of the names it touches are
# invalidated. The next step must read what the COPY wrote (a replaced file
# the kernel cached, files added to a cached directory, a new owner), and
# its own layer must be right on top of it. Every ID mode, and through FUSE
# over io_uring.

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
  mkdir -p "$SHARED/ctx/new"
  echo copied > "$SHARED/ctx/conf"
  echo copied2 > "$SHARED/ctx/conf2"
  echo n1 > "$SHARED/ctx/new/n1"
  echo n2 > "$SHARED/ctx/new/n2"
  echo own > "$SHARED/ctx/own"
  cat > "$SHARED/ctx/Dockerfile" <<'DF'
ARG BASE
FROM $BASE
RUN mkdir -p /app/sub /keep && echo old > /app/conf && echo k > /keep/k && echo s > /app/sub/s \
 && ls -la / /app /app/sub > /dev/null && echo "before: $(cat /app/conf) $(ls /app/sub | tr '\n' ' ')"
COPY conf /app/conf
COPY new/ /app/sub/
COPY --chown=7:8 own /own
RUN echo "after: $(cat /app/conf) $(ls /app/sub | tr '\n' ' ')$(cat /keep/k) $(stat -c '%u:%g' /own)" \
 && echo more >> /app/conf && rm /app/sub/s
COPY conf2 /app/conf
RUN echo "third: $(cat /app/conf) $(ls /app/sub | tr '\n' ' ')"
DF
}
teardown() {
  fuse_uring_restore
  shared_dir_cleanup
  kiln_teardown
}

# layers_build MODE [uring]: build as root, a plain user with subuid ranges
# (sub) or without (single); the steps read what the COPYs wrote, on one
# mount (with uring: its requests through its io_uring queues, the
# invalidations through /dev/fuse).
layers_build() {
  [ "${2:-}" != uring ] || fuse_uring_on
  mode_build "$1" lay "$SHARED/store" "$SHARED/out" -v debug --progress plain --insecure-registry "$REGISTRY" \
    --build-arg "BASE=$BUSYBOX_IMAGE" --no-push --oci-layout "$SHARED/out/o:t" "$SHARED/ctx"
  echo "$output" | grep -E 'before:|after:|third:|mount|error' || true
  grep -q 'before: old s $' <<< "$output"
  grep -q 'after: copied n1 n2 s k 7:8$' <<< "$output"
  grep -q 'third: copied2 n1 n2 $' <<< "$output"
  # one mount for the stage; each COPY's layers added to it before the next RUN
  [ "$(grep -c 'RUN on a new mount' <<< "$output")" -eq 1 ]
  [ "$(grep -c 'added 3 layers to the stage.s mount' <<< "$output")" -eq 1 ]
  [ "$(grep -c 'added 1 layer to the stage.s mount' <<< "$output")" -eq 1 ]
  if [ "${2:-}" = uring ]; then
    grep -qE 'fuse io_uring: [0-9]+ requests answered through the queues' <<< "$output"
  fi
  # the second RUN's layer, read by tar: the file it appended to (the
  # COPY's data and its own) and the whiteout of the file it removed
  local m l found=""
  m=$(jq -r '.manifests[0].digest' "$SHARED/out/o/index.json" | cut -d: -f2)
  for l in $(jq -r '.layers[].digest' "$SHARED/out/o/blobs/sha256/$m" | cut -d: -f2); do
    tar -tzf "$SHARED/out/o/blobs/sha256/$l" | grep -q '^app/sub/.wh.s$' || continue
    found=$l
  done
  [ -n "$found" ]
  [ "$(tar -xzOf "$SHARED/out/o/blobs/sha256/$found" app/conf)" = "$(printf 'copied\nmore')" ]
  [ "$(tar -tzf "$SHARED/out/o/blobs/sha256/$found" | grep -vE '^(app/|app/conf|app/sub/|app/sub/.wh.s)$')" = "" ]
}

@test "layers added to a live mount: a RUN after COPY reads what it wrote (root)" {
  layers_build root
}

@test "layers added to a live mount: the same as a plain user with subuid ranges" {
  layers_build sub
}

@test "layers added to a live mount: the same as a plain user without subuid ranges (single)" {
  layers_build single
}

@test "layers added to a live mount: the same through FUSE over io_uring" {
  layers_build root uring
}

# A COPY into a RUN step's mount target: the view holds the target as a
# placeholder, so it cannot take the layer in place; the next RUN gets a
# new mount of all the stage's layers, the COPY's among them.
@test "layers added to a live mount: a layer the view cannot take gives the next RUN a new mount with it" {
  cat > "$SHARED/ctx/Dockerfile" <<'DF'
ARG BASE
FROM $BASE
RUN --mount=type=tmpfs,target=/data ls / /data > /dev/null
COPY conf /data/conf
RUN echo "data: $(cat /data/conf)"
DF
  layers_out=$(mode_build root lay "$SHARED/store" "$SHARED/out" -v debug --progress plain \
    --insecure-registry "$REGISTRY" --build-arg "BASE=$BUSYBOX_IMAGE" --no-push "$SHARED/ctx" && echo "$output")
  echo "$layers_out" | grep -E 'data:|mount' || true
  grep -q 'data: copied$' <<< "$layers_out"
  grep -q "the stage's mount cannot show the 1 layer added since: a new mount" <<< "$layers_out"
  [ "$(grep -c 'RUN on a new mount' <<< "$layers_out")" -eq 2 ]
}
