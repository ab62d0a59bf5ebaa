/* attest.c - attestation documents as OCI 1.1 artifacts (see attest.h). */
#include "build/attest.h"
#include "build/attest_internal.h"
#include "registry/mediatype.h"
#include "registry/digest_file.h"
#include "store/image.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/strbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The OCI empty descriptor's content: "{}". */
#define EMPTY_JSON "{}"

void
attest_set_clear (attest_set *a)
{
  for (size_t i = 0; i < a->n; i++)
    {
      free (a->docs[i].data);
      free (a->docs[i].manifest);
      free (a->docs[i].file_name);
    }
  free (a->docs);
  memset (a, 0, sizeof *a);
}

char *
attest_referrers_tag (const char *digest)
{
  const char *colon = strchr (digest, ':');
  autofree char *alg = xstrndup (digest, colon ? (size_t) (colon - digest) : 0);
  return xasprintf ("%s-%s", alg, colon ? colon + 1 : digest);
}

static void
descriptor (json_writer *w, const char *media_type, const char *digest, size_t size)
{
  json_writer_begin_object (w);
  json_writer_kv_string (w, "mediaType", media_type);
  json_writer_kv_string (w, "digest", digest);
  json_writer_kv_int (w, "size", (int64_t) size);
  json_writer_end_object (w);
}

/* The artifact manifest of d: OCI image manifest, artifactType, empty
 * config, the document as the one layer, subject = the image. */
static int
artifact_manifest (store *s, attest_doc *d, int64_t created, kiln_error **err)
{
  char empty[DIGEST_STRING_SIZE];
  digest_buffer (EMPTY_JSON, strlen (EMPTY_JSON), empty);
  digest_buffer (d->data, d->len, d->digest);
  if (store_put_blob (s, empty, EMPTY_JSON, strlen (EMPTY_JSON), err) < 0
      || store_put_blob (s, d->digest, d->data, d->len, err) < 0)
    return -1;
  autojsonwriter json_writer *w = json_writer_new ();
  json_writer_begin_object (w);
  json_writer_kv_int (w, "schemaVersion", 2);
  json_writer_kv_string (w, "mediaType", MEDIA_OCI_MANIFEST);
  json_writer_kv_string (w, "artifactType", d->media_type);
  json_writer_key (w, "config");
  descriptor (w, ATTEST_EMPTY_MEDIA_TYPE, empty, strlen (EMPTY_JSON));
  json_writer_key (w, "layers");
  json_writer_begin_array (w);
  descriptor (w, d->media_type, d->digest, d->len);
  json_writer_end_array (w);
  json_writer_key (w, "subject");
  descriptor (w, d->subject_media_type, d->subject_digest, d->subject_len);
  json_writer_key (w, "annotations");
  json_writer_begin_object (w);
  char t[32];
  attest_time (created, t);
  json_writer_kv_string (w, "org.opencontainers.image.created", t);
  json_writer_end_object (w);
  json_writer_end_object (w);
  if (json_writer_finish (w, &d->manifest, &d->manifest_len, err) < 0)
    return -1;
  digest_buffer (d->manifest, d->manifest_len, d->manifest_digest);
  return store_put_blob (s, d->manifest_digest, d->manifest, d->manifest_len, err);
}

/* "OS/ARCH[/VARIANT]" from the image's config (NULL if unreadable). */
static char *
image_platform (store *s, const build_result *res)
{
  autofree char *cfg = NULL;
  size_t len = 0;
  autoerror kiln_error *e = NULL;
  if (store_get_blob (s, res->config_digest, JSON_DEFAULT_MAX_SIZE, &cfg, &len, &e) < 0)
    return NULL;
  image_spec spec;
  image_spec_init (&spec);
  char *r = NULL;
  if (image_spec_from_config (&spec, cfg, len, &e) == 0 && spec.os && spec.architecture)
    r = spec.variant ? xasprintf ("%s/%s/%s", spec.os, spec.architecture, spec.variant)
                     : xasprintf ("%s/%s", spec.os, spec.architecture);
  image_spec_free (&spec);
  return r;
}

/* A new document of a for image res: "STEM[-PLATFORM]EXT". */
static attest_doc *
new_doc (attest_set *a, const build_result *res, const char *media_type, const char *stem, const char *ext,
         const char *suffix)
{
  a->docs = xrealloc (a->docs, (a->n + 1) * sizeof *a->docs);
  attest_doc *d = &a->docs[a->n++];
  memset (d, 0, sizeof *d);
  d->media_type = media_type;
  d->file_name = suffix ? xasprintf ("%s-%s%s", stem, suffix, ext) : xasprintf ("%s%s", stem, ext);
  snprintf (d->subject_digest, sizeof d->subject_digest, "%s", res->manifest_digest);
  d->subject_media_type = res->manifest_media_type;
  d->subject_len = res->manifest_len;
  return d;
}

/* The documents of one image res; suffix ("linux-arm64") names them when
 * the build made several. */
static int
attest_image (store *s, const build_result *res, const attest_opts *o, const char *suffix, attest_set *out,
              kiln_error **err)
{
  attest_layers l;
  if (attest_layers_open (s, res, &l, err) < 0)
    return -1;
  attest_meta m = { o->name ? o->name : "image", o->created, o->kiln_version, o->kiln_commit };
  /* the provenance names the image's own platform unless --platform gave
   * the one platform */
  attest_opts po = *o;
  autofree char *platform = NULL;
  if (!po.platform || suffix)
    {
      platform = image_platform (s, res);
      po.platform = platform;
    }
  int r = 0;
  if (o->sbom)
    {
      attest_doc *d = new_doc (out, res, ATTEST_SPDX_MEDIA_TYPE, "sbom", ".spdx.json", suffix);
      r = sbom_spdx_json (&l, res, &m, &d->data, &d->len, err);
      if (r == 0 && o->sbom_file)
        r = registry_write_user_file (o->sbom_file, d->data, d->len, err) < 0
              ? kiln_error_wrap (err, "--sbom-file '%s'", o->sbom_file) : 0;
    }
  if (r == 0 && o->provenance)
    {
      attest_doc *d = new_doc (out, res, ATTEST_INTOTO_MEDIA_TYPE, "provenance", ".json", suffix);
      r = provenance_json (&l, res, &m, &po, &d->data, &d->len, err);
      if (r == 0 && o->provenance_file)
        r = registry_write_user_file (o->provenance_file, d->data, d->len, err) < 0
              ? kiln_error_wrap (err, "--provenance-file '%s'", o->provenance_file) : 0;
    }
  attest_layers_close (&l);
  return r;
}

int
attest_make (store *s, const build_result *res, const attest_opts *o, attest_set *out, kiln_error **err)
{
  memset (out, 0, sizeof *out);
  if (!o->sbom && !o->provenance)
    return 0;
  if (res->n_images > 0 && (o->sbom_file || o->provenance_file))
    return kiln_error_make (err, EINVAL, "attestations: --sbom-file/--provenance-file name one file, and the build "
                            "made %zu platform images: use --oci-layout DIR (a file per platform beside it)",
                            res->n_images);
  int r = 0;
  if (res->n_images == 0)
    r = attest_image (s, res, o, NULL, out, err);
  for (size_t i = 0; r == 0 && i < res->n_images; i++)
    {
      const build_result *img = &res->images[i];
      autofree char *suffix = img->variant ? xasprintf ("%s-%s-%s", img->os, img->architecture, img->variant)
                                           : xasprintf ("%s-%s", img->os, img->architecture);
      r = attest_image (s, img, o, suffix, out, err);
      if (r < 0)
        kiln_error_wrap (err, "image for %s", suffix);
    }
  for (size_t i = 0; r == 0 && i < out->n; i++)
    r = artifact_manifest (s, &out->docs[i], o->created, err);
  if (r < 0)
    {
      attest_set_clear (out);
      return kiln_error_wrap (err, "attestations");
    }
  return 0;
}

/* The referrers index of subject: what the tag lists already (other
 * digests), then a's artifacts of that subject. */
static int
referrers_index (registry_client *c, const char *repo, const char *tag, const attest_set *a, const char *subject,
                 char **out, size_t *len, kiln_error **err)
{
  autofree char *old = NULL, *ctype = NULL, *odigest = NULL;
  size_t old_len = 0;
  autojson json_value *idx = NULL;
  if (registry_get_manifest (c, repo, tag, &old, &old_len, &ctype, &odigest, err) < 0)
    {
      if ((*err)->kind != KILN_ERROR_NOT_FOUND)
        return -1;
      kiln_error_clear (err);
    }
  else if (json_parse (old, old_len, JSON_DEFAULT_MAX_SIZE, &idx, err) < 0)
    return kiln_error_wrap (err, "referrers tag '%s'", tag);
  autojsonwriter json_writer *w = json_writer_new ();
  json_writer_begin_object (w);
  json_writer_kv_int (w, "schemaVersion", 2);
  json_writer_kv_string (w, "mediaType", MEDIA_OCI_INDEX);
  json_writer_key (w, "manifests");
  json_writer_begin_array (w);
  json_value *ms = json_get_array (idx, "manifests");
  for (size_t i = 0; i < json_array_size (ms); i++)
    {
      json_value *e = json_array_get (ms, i);
      const char *dg = json_get_string (e, "digest");
      bool ours = false;
      for (size_t k = 0; dg && k < a->n; k++)
        ours = ours || (strcmp (a->docs[k].subject_digest, subject) == 0
                        && strcmp (dg, a->docs[k].manifest_digest) == 0);
      if (!ours && json_is_object (e))
        json_writer_value (w, e);
    }
  for (size_t k = 0; k < a->n; k++)
    {
      const attest_doc *d = &a->docs[k];
      if (strcmp (d->subject_digest, subject) != 0)
        continue;
      json_writer_begin_object (w);
      json_writer_kv_string (w, "mediaType", MEDIA_OCI_MANIFEST);
      json_writer_kv_string (w, "digest", d->manifest_digest);
      json_writer_kv_int (w, "size", (int64_t) d->manifest_len);
      json_writer_kv_string (w, "artifactType", d->media_type);
      json_writer_end_object (w);
    }
  json_writer_end_array (w);
  json_writer_end_object (w);
  return json_writer_finish (w, out, len, err);
}

/* Whether docs[i]'s subject is that of an earlier document. */
static bool
subject_seen (const attest_set *a, size_t i)
{
  for (size_t k = 0; k < i; k++)
    if (strcmp (a->docs[k].subject_digest, a->docs[i].subject_digest) == 0)
      return true;
  return false;
}

char *
attest_referrers_tags (const attest_set *a)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  for (size_t i = 0; i < a->n; i++)
    if (!subject_seen (a, i))
      {
        autofree char *tag = attest_referrers_tag (a->docs[i].subject_digest);
        strbuf_addf (&sb, "%s%s", sb.len ? ", " : "", tag);
      }
  return strbuf_detach (&sb, NULL);
}

int
attest_push (registry_client *c, const char *repo, store *s, const attest_set *a, kiln_error **err)
{
  if (a->n == 0)
    return 0;
  /* registry_push_image wants an image config: the artifact's two blobs
   * and its manifest (by digest) go up one by one */
  char empty[DIGEST_STRING_SIZE];
  digest_buffer (EMPTY_JSON, strlen (EMPTY_JSON), empty);
  for (size_t i = 0; i < a->n; i++)
    {
      const attest_doc *d = &a->docs[i];
      const char *blobs[] = { empty, d->digest };
      int64_t sizes[] = { (int64_t) strlen (EMPTY_JSON), (int64_t) d->len };
      for (size_t k = 0; k < ARRAY_SIZE (blobs); k++)
        {
          autoclose int fd = store_open_blob (s, blobs[k], err);
          if (fd < 0 || registry_push_blob (c, repo, blobs[k], sizes[k], fd, NULL, NULL, err) < 0)
            return kiln_error_wrap (err, "pushing the %s attestation", d->media_type);
        }
      if (registry_put_manifest (c, repo, d->manifest_digest, d->manifest, d->manifest_len, MEDIA_OCI_MANIFEST, err)
          < 0)
        return kiln_error_wrap (err, "pushing the %s attestation", d->media_type);
    }
  /* one referrers tag per subject (each platform image) */
  for (size_t i = 0; i < a->n; i++)
    {
      if (subject_seen (a, i))
        continue;
      autofree char *tag = attest_referrers_tag (a->docs[i].subject_digest);
      autofree char *idx = NULL;
      size_t len = 0;
      if (referrers_index (c, repo, tag, a, a->docs[i].subject_digest, &idx, &len, err) < 0
          || registry_put_manifest (c, repo, tag, idx, len, MEDIA_OCI_INDEX, err) < 0)
        return kiln_error_wrap (err, "referrers tag '%s'", tag);
    }
  return 0;
}
