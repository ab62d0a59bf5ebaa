/* attest.h - SBOM and provenance attestations of a built image, and how
 * they are attached to its outputs.
 *
 * attest_make reads the final image's layers from the store (never running
 * anything from the image) and makes up to two documents:
 *   --sbom        SPDX 2.3 JSON (application/spdx+json): the packages of
 *                 dpkg, apk, Python dist-info and npm, each with the layer
 *                 that introduced it (sbom.c, sbom_parse.c);
 *   --provenance  an in-toto v1 statement with a SLSA v1 provenance
 *                 predicate (application/vnd.in-toto+json): builder,
 *                 invocation, materials, and for every layer the step that
 *                 made it and its exact file list (provenance.c).
 * Each document becomes an OCI 1.1 artifact: an image manifest with
 * artifactType = the document's media type, the empty config, the document
 * as its one layer, and subject = the image manifest. The image manifest
 * itself is never changed, so its digest is the same with or without
 * attestations. The artifacts' blobs are put in the store; outputs:
 *   registry   attest_push: the artifact manifests by digest, then the
 *              referrers tag fallback of the OCI distribution spec 1.1
 *              ("sha256-HEX" holding an OCI index of the referrers,
 *              merged with what the tag already lists);
 *   layout     the artifact manifests as untagged index.json entries, and
 *              the documents as DIR/sbom.spdx.json, DIR/provenance.json
 *              (build_output.c);
 *   files      --sbom-file, --provenance-file.
 * A multi-platform result (an index, build_result.images) gets the
 * documents of every platform image, each artifact with that image's
 * manifest as its subject (so a referrers tag per image), the layout files
 * named after the platform (sbom-linux-arm64.spdx.json,
 * provenance-linux-arm64.json); the index itself gets none. --sbom-file and
 * --provenance-file name one file and are refused with several platforms
 * (build_opts checks it before building).
 */
#ifndef KILN_BUILD_ATTEST_H
#define KILN_BUILD_ATTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "build/build_exec.h"
#include "registry/client.h"
#include "store/store.h"
#include "util/digest.h"
#include "util/error.h"

#define ATTEST_SPDX_MEDIA_TYPE "application/spdx+json"
#define ATTEST_INTOTO_MEDIA_TYPE "application/vnd.in-toto+json"
#define ATTEST_EMPTY_MEDIA_TYPE "application/vnd.oci.empty.v1+json"

typedef struct attest_opts
{
  bool sbom, provenance;
  const char *sbom_file;        /* also write the SBOM here (NULL: no) */
  const char *provenance_file;
  const char *name;             /* the image's name (NULL: "image") */
  int64_t created;              /* documents' time (the epoch under --reproducible) */
  int64_t started, finished;    /* the build's (provenance metadata; 0: left out) */
  const char *kiln_version, *kiln_commit;
  /* invocation (provenance) */
  const char *dockerfile_path;
  const char *dockerfile_digest; /* "sha256:..." of the Dockerfile's bytes */
  const char *target;           /* NULL: the last stage */
  const char *platform;
  char **build_args;            /* --build-arg K=V (secrets are never build args) */
  const char *context;          /* as given on the command line */
  const char *context_digest;   /* build_exec_context_digest (NULL: left out) */
} attest_opts;

typedef struct attest_doc
{
  const char *media_type;       /* ATTEST_SPDX_MEDIA_TYPE or ATTEST_INTOTO_MEDIA_TYPE */
  char *file_name;              /* "sbom.spdx.json", "provenance.json"; several
                                 * platforms: "sbom-linux-arm64.spdx.json" */
  char *data;
  size_t len;
  char digest[DIGEST_STRING_SIZE];
  char *manifest;               /* the artifact manifest */
  size_t manifest_len;
  char manifest_digest[DIGEST_STRING_SIZE];
  /* the subject: the (platform) image manifest the document describes */
  char subject_digest[DIGEST_STRING_SIZE];
  const char *subject_media_type;
  size_t subject_len;
} attest_doc;

typedef struct attest_set
{
  attest_doc *docs;
  size_t n;
} attest_set;

/* Make the documents o asks for (for each platform image of an index),
 * their artifact manifests and blobs in the store, and the
 * --sbom-file/--provenance-file copies. */
int attest_make (store *s, const build_result *res, const attest_opts *o, attest_set *out, kiln_error **err);
void attest_set_clear (attest_set *a);
#define autoattestset __attribute__ ((cleanup (attest_set_clear)))

/* Push a's artifacts to repo (their subjects are there already) and update
 * the referrers tag "sha256-HEX" of each subject. */
int attest_push (registry_client *c, const char *repo, store *s, const attest_set *a, kiln_error **err);

/* The referrers tag of a manifest digest: "sha256-HEX". Caller frees. */
char *attest_referrers_tag (const char *digest);

/* The referrers tags of a's subjects, comma-separated (progress notes).
 * Caller frees. */
char *attest_referrers_tags (const attest_set *a);

#endif
