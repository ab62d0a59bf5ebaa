/* fuzz_manifest.c - manifest_parse on arbitrary bytes with each kind of
 * Content-Type; accepted documents must be internally consistent and platform
 * selection / layer classification must not crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/manifest.h"
#include "util/digest.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const char *const content_types[] = {
  NULL, "", MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, "application/json",
  MEDIA_DOCKER_SCHEMA1_SIGNED,
};

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  /* The first byte picks the Content-Type. */
  const char *ct = content_types[data[0] % (sizeof content_types / sizeof content_types[0])];
  manifest *m = NULL;
  kiln_error *err = NULL;
  if (manifest_parse ((const char *) data + 1, size - 1, ct, &m, &err) < 0)
    {
      if (err == NULL || m != NULL)
        abort ();
      kiln_error_free (err);
      return 0;
    }
  if (manifest_kind_is_index (m->kind))
    {
      for (size_t i = 0; i < m->n_manifests; i++)
        if (digest_validate (m->manifests[i].digest, NULL) < 0 || m->manifests[i].size < 0)
          abort ();
      size_t idx;
      if (manifest_select_platform (m, "linux", "amd64", NULL, &idx, &err) < 0)
        kiln_error_clear (&err);
      else if (idx >= m->n_manifests)
        abort ();
      if (manifest_select_platform (m, "linux", "arm", "v7", &idx, &err) < 0)
        kiln_error_clear (&err);
    }
  else
    {
      if (digest_validate (m->config.digest, NULL) < 0)
        abort ();
      for (size_t i = 0; i < m->n_layers; i++)
        {
          layer_compression c;
          if (mediatype_layer_compression (m->layers[i].media_type, &c, NULL) < 0)
            abort ();
        }
    }
  manifest_free (m);
  return 0;
}
