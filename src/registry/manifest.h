/* manifest.h - image manifests and indexes from registries (untrusted input).
 *
 * Accepted: OCI image index, OCI image manifest, Docker manifest list, Docker
 * image manifest schema 2. Docker schema 1 (signed or not) is rejected with a
 * message saying so; anything else is an "unsupported media type" error.
 *
 * The kind comes from the JSON "mediaType" field and the HTTP Content-Type; if
 * both are present and disagree the manifest is rejected (a confused or
 * malicious registry). If neither is present, an OCI document is recognised by
 * "manifests" (index) or "config"+"layers" (manifest), as the OCI spec allows.
 * Every descriptor needs a valid sha256 digest, a non-negative integer size and
 * a media type; a layer's media type must be a known layer type (tar, gzip,
 * zstd, OCI or Docker, distributable or not).
 *
 * The media type names (MEDIA_*) and layer compressions live in
 * registry/mediatype.h, platforms in registry/platform.h: both are included
 * here, so users of manifests get the vocabulary with them.
 */
#ifndef KILN_REGISTRY_MANIFEST_H
#define KILN_REGISTRY_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "registry/mediatype.h"
#include "registry/platform.h"
#include "util/error.h"

/* The Accept header for manifest requests (most preferred first). */
#define REGISTRY_MANIFEST_ACCEPT                                                                   \
  MEDIA_OCI_INDEX ", " MEDIA_OCI_MANIFEST ", " MEDIA_DOCKER_LIST ", " MEDIA_DOCKER_MANIFEST

/* Largest manifest kiln accepts (the distribution spec's suggested limit). */
#define REGISTRY_MANIFEST_MAX_SIZE (4u * 1024 * 1024)

typedef enum
{
  MANIFEST_KIND_OCI_INDEX,
  MANIFEST_KIND_OCI_MANIFEST,
  MANIFEST_KIND_DOCKER_LIST,
  MANIFEST_KIND_DOCKER_MANIFEST,
} manifest_kind;

typedef struct manifest_platform
{
  char *os;           /* required in an index entry's platform */
  char *architecture; /* required */
  char *variant;      /* NULL if absent */
  char *os_version;   /* NULL if absent */
} manifest_platform;

typedef struct manifest_descriptor
{
  char *media_type;
  char *digest;   /* validated "sha256:<hex>" */
  int64_t size;   /* >= 0 */
  char **urls;    /* NULL-terminated, NULL if absent (foreign layers) */
  manifest_platform *platform; /* index entries only; NULL if absent */
} manifest_descriptor;

typedef struct manifest
{
  manifest_kind kind;
  const char *media_type; /* static string for kind */
  /* Indexes: */
  manifest_descriptor *manifests;
  size_t n_manifests;
  /* Manifests: */
  manifest_descriptor config;
  manifest_descriptor *layers;
  size_t n_layers;
} manifest;

/* Parse a manifest or index. content_type may be NULL or empty (unknown); its
 * parameters (";charset=...") are ignored. */
int manifest_parse (const char *data, size_t len, const char *content_type, manifest **out, kiln_error **err);
void manifest_free (manifest *m);
void cleanup_manifestp (manifest **m);
#define automanifest __attribute__ ((cleanup (cleanup_manifestp)))

bool manifest_kind_is_index (manifest_kind kind);
const char *manifest_kind_media_type (manifest_kind kind);

/* Select the index entry for os/architecture/variant (variant NULL = any, but
 * an exact variant match wins; for arm64 "v8" and no variant are the same).
 * Returns the index into m->manifests, or a negative error listing the
 * platforms the index offers. */
int manifest_select_platform (const manifest *m, const char *os, const char *arch, const char *variant,
                              size_t *out, kiln_error **err);

#endif
