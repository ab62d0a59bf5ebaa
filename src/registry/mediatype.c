/* mediatype.c - media types and layer compression (see mediatype.h). */
#include "registry/mediatype.h"

#include <string.h>

#include "util/alloc.h"

/* The layer types kiln writes, by compression: { OCI, Docker }. */
static const char *const written_layer_types[][2] = {
  [LAYER_COMPRESS_GZIP] = { MEDIA_OCI_LAYER_GZIP, MEDIA_DOCKER_LAYER_GZIP },
  [LAYER_COMPRESS_ZSTD] = { MEDIA_OCI_LAYER_ZSTD, MEDIA_DOCKER_LAYER_ZSTD },
  [LAYER_COMPRESS_NONE] = { MEDIA_OCI_LAYER, MEDIA_DOCKER_LAYER },
};

const char *
mediatype_layer (layer_compression c, bool docker)
{
  if ((unsigned) c >= ARRAY_SIZE (written_layer_types))
    return "";
  return written_layer_types[c][docker ? 1 : 0];
}

const char *
mediatype_layer_for_format (const char *media_type, bool docker)
{
  for (size_t i = 0; i < ARRAY_SIZE (written_layer_types); i++)
    for (int k = 0; k < 2; k++)
      if (strcmp (media_type, written_layer_types[i][k]) == 0)
        return written_layer_types[i][docker ? 1 : 0];
  return media_type;
}

int
mediatype_layer_compression (const char *media_type, layer_compression *out, kiln_error **err)
{
  static const struct
  {
    const char *type;
    layer_compression c;
  } types[] = {
    { MEDIA_OCI_LAYER, LAYER_COMPRESS_NONE },
    { MEDIA_OCI_LAYER_GZIP, LAYER_COMPRESS_GZIP },
    { MEDIA_OCI_LAYER_ZSTD, LAYER_COMPRESS_ZSTD },
    { MEDIA_OCI_LAYER_ND, LAYER_COMPRESS_NONE },
    { MEDIA_OCI_LAYER_ND_GZIP, LAYER_COMPRESS_GZIP },
    { MEDIA_OCI_LAYER_ND_ZSTD, LAYER_COMPRESS_ZSTD },
    { MEDIA_DOCKER_LAYER_GZIP, LAYER_COMPRESS_GZIP },
    { MEDIA_DOCKER_LAYER_FOREIGN_GZIP, LAYER_COMPRESS_GZIP },
  };
  for (size_t i = 0; i < ARRAY_SIZE (types); i++)
    if (strcmp (media_type, types[i].type) == 0)
      {
        *out = types[i].c;
        return 0;
      }
  return kiln_error_make (err, 0, "unsupported layer media type '%.200s'", media_type);
}

int
mediatype_parse_compression (const char *s, layer_compression *out, kiln_error **err)
{
  if (strcmp (s, "gzip") == 0)
    *out = LAYER_COMPRESS_GZIP;
  else if (strcmp (s, "zstd") == 0)
    *out = LAYER_COMPRESS_ZSTD;
  else if (strcmp (s, "uncompressed") == 0 || strcmp (s, "none") == 0)
    *out = LAYER_COMPRESS_NONE;
  else
    return kiln_error_make (err, 0, "unknown compression '%s' (gzip, zstd, uncompressed)", s);
  return 0;
}
