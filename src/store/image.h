/* image.h - OCI image config and manifest (and Docker schema 2) generation.
 *
 * The build engine fills an image_spec (starting from the base image's
 * config, see image_spec_from_config) and appends one history entry per
 * Dockerfile instruction (empty_layer for those without a layer) and one
 * diffID per layer; image_config_json and image_manifest_json produce the
 * canonical JSON blobs (compact, keys in a fixed order, so identical input
 * gives identical digests).
 */
#ifndef KILN_STORE_IMAGE_H
#define KILN_STORE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/error.h"
#include "util/json.h"

typedef enum
{
  IMAGE_FORMAT_OCI = 0,
  IMAGE_FORMAT_DOCKER,
} image_format;

int image_parse_format (const char *s, image_format *out, kiln_error **err);

typedef struct image_history
{
  int64_t created;       /* seconds since the epoch; < 0: omitted */
  char *created_by;
  char *comment;
  bool empty_layer;
} image_history;

typedef struct image_spec
{
  char *architecture;    /* "amd64" */
  char *os;              /* "linux" */
  char *variant;         /* "v8" or NULL */
  int64_t created;       /* < 0: omitted */
  char *author;
  /* config */
  char *user;
  char **env;            /* "K=V" */
  char **entrypoint;     /* NULL = null */
  char **cmd;            /* NULL = null */
  char *working_dir;
  char **exposed_ports;  /* "80/tcp" */
  char **volumes;
  char **labels;         /* "K=V" (first '=' splits) */
  char *stop_signal;
  char **shell;
  char **onbuild;
  char *healthcheck_json; /* raw JSON object or NULL */
  /* rootfs and history */
  char **diff_ids;
  image_history *history;
  size_t n_history;
} image_spec;

void image_spec_init (image_spec *s);
void image_spec_free (image_spec *s);
void image_spec_add_history (image_spec *s, int64_t created, const char *created_by, const char *comment,
                             bool empty_layer);

/* Fill s from an existing image config blob (the base image): platform,
 * config fields, diff_ids and history. Unknown fields are dropped. */
int image_spec_from_config (image_spec *s, const char *json, size_t len, kiln_error **err);

/* Config blob. Errors: history count of non-empty layers != diff_ids. */
int image_config_json (const image_spec *s, char **out, size_t *len, kiln_error **err);

typedef struct image_descriptor
{
  const char *media_type;
  const char *digest;
  int64_t size;
} image_descriptor;

/* Manifest blob for format: config descriptor (media type chosen by format)
 * and layer descriptors (media types as given: use mediatype_layer with the
 * same format). */
int image_manifest_json (image_format format, const char *config_digest, int64_t config_size,
                         const image_descriptor *layers, size_t n_layers, char **out, size_t *len,
                         kiln_error **err);

const char *image_manifest_media_type (image_format format);
const char *image_config_media_type (image_format format);

/* One image of an index: its manifest and the platform it runs on. */
typedef struct image_index_entry
{
  const char *media_type;     /* the manifest's */
  const char *digest;
  int64_t size;
  const char *os, *architecture;
  const char *variant;        /* NULL: none */
} image_index_entry;

/* Index blob for format: an OCI image index or a Docker manifest list of
 * the entries, in their order. */
int image_index_json (image_format format, const image_index_entry *entries, size_t n, char **out, size_t *len,
                      kiln_error **err);
const char *image_index_media_type (image_format format);

#endif
