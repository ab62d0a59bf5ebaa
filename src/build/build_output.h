/* build_output.h - where a built image goes: registries (-t/--destination),
 * an OCI layout (--oci-layout DIR[:TAG]), a docker archive (--tar-path),
 * and the digest files CI pipelines read (--digest-file,
 * --image-name-with-digest-file). Every blob comes from the store.
 */
#ifndef KILN_BUILD_BUILD_OUTPUT_H
#define KILN_BUILD_BUILD_OUTPUT_H

#include "build/attest.h"
#include "build/build_exec.h"
#include "build/progress.h"
#include "registry/client.h"
#include "store/store.h"
#include "util/error.h"

typedef struct build_output_opts
{
  char **destinations;       /* image references with tags */
  bool no_push;
  const registry_options *reg;
  char *const *mirrors;      /* where lazy layers of docker.io images are fetched (--registry-mirror) */
  int push_retry;            /* extra attempts per destination */
  const char *oci_layout;    /* DIR[:TAG] or NULL */
  const char *tar_path;      /* docker archive path or NULL */
  const char *digest_file;
  const char *name_digest_file;
  const char *name_tag_digest_file; /* NAME:TAG@DIGEST lines (kaniko's --image-name-tag-with-digest-file) */
  bool ignore_immutable_tags; /* a push refused because the tag is immutable is not an error (kaniko) */
  progress *progress;
  /* --sbom/--provenance: attached to every registry destination and the
   * OCI layout (NULL or empty: none; build/attest.h) */
  const attest_set *attest;
} build_output_opts;

/* A multi-platform result in *out: the OCI image index (Docker manifest
 * list with format DOCKER) of images[0..n), written to the store; *out
 * takes images (build_result_clear frees them), also on failure. */
int build_output_index (store *s, image_format format, build_result *images, size_t n, build_result *out,
                        kiln_error **err);

/* Push and export res (an image, or an index with its images: pushed
 * whole, written whole to the OCI layout; a docker archive cannot hold an
 * index, so --tar-path is then an error, checked before anything else is
 * written). */
int build_output_write (store *s, const build_result *res, const build_output_opts *o, kiln_error **err);

#endif
