/* local_image.c - images from the store and from OCI layouts (see local_image.h). */
#include "store/local_image.h"
#include "registry/manifest.h"
#include "registry/mediatype.h"
#include "registry/ocilayout.h"
#include "registry/platform.h"
#include "store/extract.h"
#include "store/image.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Fill everything but the layers' how/extracted from a verified manifest
 * (parsed as m) and config; out->layers get digest, diffID, media type and
 * size. Takes ownership of manifest_data and config_data. */
static int
fill_result (store_fetch_result *out, const char *manifest_digest, char *manifest_data, size_t manifest_len,
             const manifest *m, char *config_data, size_t config_len, kiln_error **err)
{
  snprintf (out->manifest_digest, sizeof out->manifest_digest, "%s", manifest_digest);
  out->manifest_media_type = xstrdup (m->media_type);
  out->manifest = manifest_data;
  out->manifest_len = manifest_len;
  snprintf (out->config_digest, sizeof out->config_digest, "%s", m->config.digest);
  out->config_media_type = xstrdup (m->config.media_type);
  out->config = config_data;
  out->config_len = config_len;
  image_spec spec;
  image_spec_init (&spec);
  int r = image_spec_from_config (&spec, config_data, config_len, err);
  if (r < 0)
    {
      image_spec_free (&spec);
      return kiln_error_wrap (err, "image config %s", m->config.digest);
    }
  size_t n_ids = strv_len (spec.diff_ids);
  if (n_ids != m->n_layers)
    r = kiln_error_make (err, EINVAL, "manifest %s lists %zu layers but its config has %zu diffIDs", manifest_digest,
                         m->n_layers, n_ids);
  for (size_t i = 0; r == 0 && i < n_ids; i++)
    if (digest_validate (spec.diff_ids[i], err) < 0)
      r = kiln_error_wrap (err, "image config %s: diffID %zu", m->config.digest, i + 1);
  if (r == 0)
    {
      out->layers = xcalloc (m->n_layers ? m->n_layers : 1, sizeof *out->layers);
      out->n_layers = m->n_layers;
      for (size_t i = 0; i < m->n_layers; i++)
        {
          store_fetch_layer *l = &out->layers[i];
          snprintf (l->digest, sizeof l->digest, "%s", m->layers[i].digest);
          snprintf (l->diff_id, sizeof l->diff_id, "%s", spec.diff_ids[i]);
          l->media_type = xstrdup (m->layers[i].media_type);
          l->size = m->layers[i].size;
          l->how = STORE_FETCH_CACHED;
        }
      const char *hos, *harch, *hvar;
      platform_host (&hos, &harch, &hvar);
      out->os = xstrdup (spec.os ? spec.os : hos);
      out->arch = xstrdup (spec.architecture ? spec.architecture : harch);
      out->variant = spec.variant && *spec.variant ? xstrdup (spec.variant) : NULL;
    }
  image_spec_free (&spec);
  return r;
}

int
local_image_from_store (store *s, const char *manifest_digest, store_fetch_result *out, kiln_error **err)
{
  memset (out, 0, sizeof *out);
  if (digest_validate (manifest_digest, err) < 0)
    return -1;
  if (!store_has_blob (s, manifest_digest))
    return 0;
  autofree char *mdata = NULL, *cdata = NULL;
  size_t mlen = 0, clen = 0;
  automanifest manifest *m = NULL;
  if (store_get_blob (s, manifest_digest, REGISTRY_MANIFEST_MAX_SIZE, &mdata, &mlen, err) < 0
      || manifest_parse (mdata, mlen, NULL, &m, err) < 0)
    return kiln_error_wrap (err, "stored manifest %s", manifest_digest);
  if (manifest_kind_is_index (m->kind))
    return kiln_error_make (err, EINVAL, "stored manifest %s is an index, not an image", manifest_digest);
  if (!store_has_blob (s, m->config.digest))
    return 0;
  if (store_get_blob (s, m->config.digest, JSON_DEFAULT_MAX_SIZE, &cdata, &clen, err) < 0)
    return kiln_error_wrap (err, "config of stored manifest %s", manifest_digest);
  store_fetch_result r = { 0 };
  if (fill_result (&r, manifest_digest, steal_pointer (&mdata), mlen, m, steal_pointer (&cdata), clen, err) < 0)
    {
      store_fetch_result_clear (&r);
      return -1;
    }
  for (size_t i = 0; i < r.n_layers; i++)
    if (!store_has_layer (s, r.layers[i].diff_id))
      {
        log_debug ("stored image %s: layer %s is not in the store", manifest_digest, r.layers[i].diff_id);
        store_fetch_result_clear (&r);
        return 0;
      }
  *out = r;
  return 1;
}

/* Read the manifest descriptor (media type, digest) from the layout,
 * following an index to the platform's entry. */
static int
layout_manifest (ocilayout *l, const char *dir, const char *media_type, const char *digest, const char *os,
                 const char *arch, const char *variant, store_fetch_result *out, manifest **m_out, char **data_out,
                 size_t *len_out, kiln_error **err)
{
  autofree char *data = NULL;
  size_t len = 0;
  automanifest manifest *m = NULL;
  if (ocilayout_read_blob (l, digest, REGISTRY_MANIFEST_MAX_SIZE, &data, &len, err) < 0
      || manifest_parse (data, len, media_type, &m, err) < 0)
    return kiln_error_wrap (err, "OCI layout '%s': manifest %s", dir, digest);
  if (!manifest_kind_is_index (m->kind))
    {
      snprintf (out->manifest_digest, sizeof out->manifest_digest, "%s", digest);
      *m_out = steal_pointer (&m);
      *data_out = steal_pointer (&data);
      *len_out = len;
      return 0;
    }
  /* A variant without its arch means nothing: the host's arch and variant. */
  if (!arch)
    variant = NULL;
  platform_default (&os, &arch, &variant);
  size_t k;
  if (manifest_select_platform (m, os, arch, variant, &k, err) < 0)
    return kiln_error_wrap (err, "OCI layout '%s': index %s", dir, digest);
  snprintf (out->index_digest, sizeof out->index_digest, "%s", digest);
  const manifest_descriptor *d = &m->manifests[k];
  autofree char *sub = NULL;
  size_t sub_len = 0;
  automanifest manifest *sm = NULL;
  if (ocilayout_read_blob (l, d->digest, REGISTRY_MANIFEST_MAX_SIZE, &sub, &sub_len, err) < 0
      || manifest_parse (sub, sub_len, d->media_type, &sm, err) < 0)
    return kiln_error_wrap (err, "OCI layout '%s': manifest %s", dir, d->digest);
  if (manifest_kind_is_index (sm->kind))
    return kiln_error_make (err, EINVAL, "OCI layout '%s': index %s points to another index %s", dir, digest,
                            d->digest);
  snprintf (out->manifest_digest, sizeof out->manifest_digest, "%s", d->digest);
  *m_out = steal_pointer (&sm);
  *data_out = steal_pointer (&sub);
  *len_out = sub_len;
  return 0;
}

static int
import_layer (store *s, ocilayout *l, const char *dir, size_t i, store_fetch_layer *layer, kiln_error **err)
{
  layer_compression comp;
  if (mediatype_layer_compression (layer->media_type, &comp, err) < 0)
    return kiln_error_wrap (err, "OCI layout '%s': layer %zu (%s)", dir, i + 1, layer->digest);
  /* Known already (by diffID, or by this blob): no need to open the blob. */
  if (store_has_layer (s, layer->diff_id))
    return 0;
  autoclose int fd = -1;
  int64_t size;
  if (ocilayout_open_blob (l, layer->digest, &fd, &size, err) < 0)
    return kiln_error_wrap (err, "layer %zu", i + 1);
  if (size != layer->size)
    return kiln_error_make (err, EINVAL, "OCI layout '%s': layer %zu blob %s has %lld bytes, the manifest says %lld",
                            dir, i + 1, layer->digest, (long long) size, (long long) layer->size);
  extract_result xr;
  int rfd = fd;
  if (extract_to_store (s, layer->digest, layer->diff_id, extract_read_fd, &rfd, NULL, &xr, err) < 0)
    return kiln_error_wrap (err, "OCI layout '%s': layer %zu (%s)", dir, i + 1, layer->digest);
  layer->how = xr.existed ? STORE_FETCH_CACHED : STORE_FETCH_LOCAL_BLOB;
  layer->extracted = !xr.existed;
  return 0;
}

int
local_image_from_layout (store *s, const char *dir, const char *tag, const char *os, const char *arch,
                         const char *variant, store_fetch_result *out, kiln_error **err)
{
  memset (out, 0, sizeof *out);
  autoocilayout ocilayout *l = NULL;
  if (ocilayout_open_existing (dir, &l, err) < 0)
    return -1;
  autofree char *mt = NULL, *digest = NULL;
  int64_t size;
  if (ocilayout_resolve (l, tag, &mt, &digest, &size, err) < 0)
    return -1;
  store_fetch_result r = { 0 };
  automanifest manifest *m = NULL;
  char *mdata = NULL, *cdata = NULL;
  size_t mlen = 0, clen = 0;
  if (layout_manifest (l, dir, mt, digest, os, arch, variant, &r, &m, &mdata, &mlen, err) < 0)
    goto fail;
  if (ocilayout_read_blob (l, m->config.digest, JSON_DEFAULT_MAX_SIZE, &cdata, &clen, err) < 0)
    {
      free (mdata);
      kiln_error_wrap (err, "OCI layout '%s': config", dir);
      goto fail;
    }
  char mdigest[DIGEST_STRING_SIZE];
  snprintf (mdigest, sizeof mdigest, "%s", r.manifest_digest);
  if (fill_result (&r, mdigest, mdata, mlen, m, cdata, clen, err) < 0)
    {
      kiln_error_wrap (err, "OCI layout '%s'", dir);
      goto fail;
    }
  for (size_t i = 0; i < r.n_layers; i++)
    if (import_layer (s, l, dir, i, &r.layers[i], err) < 0)
      goto fail;
  *out = r;
  return 0;
fail:
  store_fetch_result_clear (&r);
  return -1;
}
