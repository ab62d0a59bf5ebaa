/* manifest.c - parsing of manifests and indexes (see manifest.h). */
#include "registry/manifest.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/digest.h"
#include "util/json.h"
#include "util/strbuf.h"

bool
manifest_kind_is_index (manifest_kind kind)
{
  switch (kind)
    {
    case MANIFEST_KIND_OCI_INDEX:
    case MANIFEST_KIND_DOCKER_LIST:
      return true;
    case MANIFEST_KIND_OCI_MANIFEST:
    case MANIFEST_KIND_DOCKER_MANIFEST:
      return false;
    }
  return false;
}

const char *
manifest_kind_media_type (manifest_kind kind)
{
  switch (kind)
    {
    case MANIFEST_KIND_OCI_INDEX:
      return MEDIA_OCI_INDEX;
    case MANIFEST_KIND_OCI_MANIFEST:
      return MEDIA_OCI_MANIFEST;
    case MANIFEST_KIND_DOCKER_LIST:
      return MEDIA_DOCKER_LIST;
    case MANIFEST_KIND_DOCKER_MANIFEST:
      return MEDIA_DOCKER_MANIFEST;
    }
  return "unknown";
}

static void
platform_free (manifest_platform *p)
{
  if (!p)
    return;
  free (p->os);
  free (p->architecture);
  free (p->variant);
  free (p->os_version);
  free (p);
}

static void
descriptor_clear (manifest_descriptor *d)
{
  free (d->media_type);
  free (d->digest);
  strv_free (d->urls);
  platform_free (d->platform);
  memset (d, 0, sizeof *d);
}

void
manifest_free (manifest *m)
{
  if (!m)
    return;
  for (size_t i = 0; i < m->n_manifests; i++)
    descriptor_clear (&m->manifests[i]);
  free (m->manifests);
  for (size_t i = 0; i < m->n_layers; i++)
    descriptor_clear (&m->layers[i]);
  free (m->layers);
  descriptor_clear (&m->config);
  free (m);
}

void
cleanup_manifestp (manifest **m)
{
  manifest_free (*m);
  *m = NULL;
}

/* Required string member; what names the object for the error. */
static int
req_string (const json_value *obj, const char *key, const char *what, char **out, kiln_error **err)
{
  json_value *v = json_get (obj, key);
  if (!v)
    return kiln_error_make (err, 0, "%s: missing \"%s\"", what, key);
  if (!json_is_string (v))
    return kiln_error_make (err, 0, "%s: \"%s\" is a %s, expected a string", what, key, json_type_name (v));
  *out = xstrdup (json_string (v));
  return 0;
}

static int
opt_string (const json_value *obj, const char *key, const char *what, char **out, kiln_error **err)
{
  json_value *v = json_get (obj, key);
  if (!v || json_is_null (v))
    return 0;
  return req_string (obj, key, what, out, err);
}

static int
parse_platform (const json_value *v, const char *what, manifest_platform **out, kiln_error **err)
{
  manifest_platform *p = xzalloc (sizeof *p);
  int r;
  if (!json_is_object (v))
    r = kiln_error_make (err, 0, "%s: \"platform\" is a %s, expected an object", what, json_type_name (v));
  else if ((r = req_string (v, "os", what, &p->os, err)) >= 0
           && (r = req_string (v, "architecture", what, &p->architecture, err)) >= 0
           && (r = opt_string (v, "variant", what, &p->variant, err)) >= 0)
    r = opt_string (v, "os.version", what, &p->os_version, err);
  if (r < 0)
    {
      platform_free (p);
      return r;
    }
  *out = p;
  return 0;
}

static int
parse_descriptor (const json_value *v, const char *what, bool with_platform, manifest_descriptor *d,
                  kiln_error **err)
{
  int r;
  autoerror kiln_error *derr = NULL;
  if (!json_is_object (v))
    return kiln_error_make (err, 0, "%s is a %s, expected an object", what, json_type_name (v));
  if ((r = req_string (v, "mediaType", what, &d->media_type, err)) < 0)
    return r;
  if ((r = req_string (v, "digest", what, &d->digest, err)) < 0)
    return r;
  if (digest_validate (d->digest, &derr) < 0)
    return kiln_error_make (err, 0, "%s: %s", what, derr->msg);
  json_value *size = json_get (v, "size");
  if (!size)
    return kiln_error_make (err, 0, "%s: missing \"size\"", what);
  if (!json_is_integer (size))
    return kiln_error_make (err, 0, "%s: \"size\" is not an integer", what);
  if ((r = json_get_int64 (v, "size", &d->size, err)) < 0)
    return kiln_error_wrap (err, "%s", what);
  if (d->size < 0)
    return kiln_error_make (err, 0, "%s: negative \"size\"", what);
  json_value *urls = json_get (v, "urls");
  if (urls && !json_is_null (urls))
    {
      if ((r = json_to_strv (urls, "urls", &d->urls, err)) < 0)
        return kiln_error_wrap (err, "%s", what);
    }
  json_value *platform = json_get (v, "platform");
  if (with_platform && platform && !json_is_null (platform))
    if ((r = parse_platform (platform, what, &d->platform, err)) < 0)
      return r;
  return 0;
}

/* Lower-cased media type from a Content-Type header without parameters, or
 * NULL if the header says nothing useful. */
static char *
content_type_media (const char *ct)
{
  if (!ct)
    return NULL;
  while (*ct == ' ' || *ct == '\t')
    ct++;
  size_t n = strcspn (ct, "; \t");
  if (n == 0)
    return NULL;
  char *s = xstrndup (ct, n);
  for (char *c = s; *c; c++)
    if (*c >= 'A' && *c <= 'Z')
      *c = (char) (*c - 'A' + 'a');
  /* Generic types some registries and file servers use. */
  if (strcmp (s, "application/json") == 0 || strcmp (s, "text/plain") == 0
      || strcmp (s, "application/octet-stream") == 0)
    {
      free (s);
      return NULL;
    }
  return s;
}

static bool
is_schema1 (const char *t)
{
  return t && (strcmp (t, MEDIA_DOCKER_SCHEMA1) == 0 || strcmp (t, MEDIA_DOCKER_SCHEMA1_SIGNED) == 0);
}

static int
kind_of (const char *t, manifest_kind *out)
{
  static const manifest_kind kinds[] = { MANIFEST_KIND_OCI_INDEX, MANIFEST_KIND_OCI_MANIFEST,
                                         MANIFEST_KIND_DOCKER_LIST, MANIFEST_KIND_DOCKER_MANIFEST };
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (strcmp (t, manifest_kind_media_type (kinds[i])) == 0)
      {
        *out = kinds[i];
        return 0;
      }
  return -1;
}

#define SCHEMA1_MSG                                                                                   \
  "Docker image manifest schema 1 is not supported (deprecated since 2017); push the image again "  \
  "with a current tool to get a schema 2 or OCI manifest"

static int
determine_kind (const json_value *root, const char *content_type, manifest_kind *out, kiln_error **err)
{
  autofree char *ct = content_type_media (content_type);
  const char *mt = NULL;
  json_value *mtv = json_get (root, "mediaType");
  if (mtv && !json_is_null (mtv))
    {
      if (!json_is_string (mtv))
        return kiln_error_make (err, 0, "\"mediaType\" is a %s, expected a string", json_type_name (mtv));
      mt = json_string (mtv);
    }
  json_value *sv = json_get (root, "schemaVersion");
  if (is_schema1 (ct) || is_schema1 (mt) || (json_is_integer (sv) && strcmp (json_number_text (sv), "1") == 0))
    return kiln_error_make (err, 0, SCHEMA1_MSG);
  if (!sv)
    return kiln_error_make (err, 0, "missing \"schemaVersion\"");
  if (!json_is_integer (sv) || strcmp (json_number_text (sv), "2") != 0)
    return kiln_error_make (err, 0, "unsupported \"schemaVersion\" (expected 2)");

  manifest_kind k_mt = 0, k_ct = 0;
  if (mt && kind_of (mt, &k_mt) < 0)
    return kiln_error_make (err, 0, "unsupported manifest media type '%.200s'", mt);
  if (ct && kind_of (ct, &k_ct) < 0)
    return kiln_error_make (err, 0, "unsupported manifest media type '%.200s' (Content-Type)", ct);
  if (mt && ct && k_mt != k_ct)
    return kiln_error_make (err, 0, "\"mediaType\" '%s' does not match the Content-Type '%s'", mt, ct);
  if (mt)
    *out = k_mt;
  else if (ct)
    *out = k_ct;
  else if (json_get (root, "manifests"))
    *out = MANIFEST_KIND_OCI_INDEX;
  else if (json_get (root, "config") && json_get (root, "layers"))
    *out = MANIFEST_KIND_OCI_MANIFEST;
  else
    return kiln_error_make (err, 0, "no \"mediaType\" and not recognisable as an index or a manifest");
  /* A document with both shapes is ambiguous (OCI forbids it). */
  if (json_get (root, "manifests") && json_get (root, "layers"))
    return kiln_error_make (err, 0, "has both \"manifests\" and \"layers\"");
  return 0;
}

static int
parse_descriptor_array (const json_value *root, const char *key, bool with_platform, manifest_descriptor **out,
                        size_t *n_out, kiln_error **err)
{
  json_value *arr = json_get (root, key);
  if (!arr)
    return kiln_error_make (err, 0, "missing \"%s\"", key);
  if (!json_is_array (arr))
    return kiln_error_make (err, 0, "\"%s\" is a %s, expected an array", key, json_type_name (arr));
  size_t n = json_array_size (arr);
  *out = xcalloc (n ? n : 1, sizeof **out);
  for (size_t i = 0; i < n; i++)
    {
      char what[64];
      snprintf (what, sizeof what, "%s[%zu]", key, i);
      int r = parse_descriptor (json_array_get (arr, i), what, with_platform, &(*out)[i], err);
      *n_out = i + 1; /* so manifest_free releases what was filled */
      if (r < 0)
        return r;
    }
  return 0;
}

static int
parse_body (const json_value *root, manifest *m, kiln_error **err)
{
  int r;
  if (manifest_kind_is_index (m->kind))
    return parse_descriptor_array (root, "manifests", true, &m->manifests, &m->n_manifests, err);

  json_value *config = json_get (root, "config");
  if (!config)
    return kiln_error_make (err, 0, "missing \"config\"");
  if ((r = parse_descriptor (config, "config", false, &m->config, err)) < 0)
    return r;
  if (strcmp (m->config.media_type, MEDIA_OCI_CONFIG) != 0 && strcmp (m->config.media_type, MEDIA_DOCKER_CONFIG) != 0)
    return kiln_error_make (err, 0, "config media type '%.200s' is not an image config (not a container image?)",
                            m->config.media_type);
  if ((r = parse_descriptor_array (root, "layers", false, &m->layers, &m->n_layers, err)) < 0)
    return r;
  for (size_t i = 0; i < m->n_layers; i++)
    {
      layer_compression c;
      if (mediatype_layer_compression (m->layers[i].media_type, &c, err) < 0)
        return kiln_error_wrap (err, "layers[%zu]", i);
    }
  return 0;
}

int
manifest_parse (const char *data, size_t len, const char *content_type, manifest **out, kiln_error **err)
{
  autojson json_value *root = NULL;
  automanifest manifest *m = NULL;
  int r;
  if (len > REGISTRY_MANIFEST_MAX_SIZE)
    return kiln_error_make (err, 0, "parsing manifest: larger than %u bytes", REGISTRY_MANIFEST_MAX_SIZE);
  if ((r = json_parse (data, len, REGISTRY_MANIFEST_MAX_SIZE, &root, err)) < 0)
    return kiln_error_wrap (err, "parsing manifest");
  if (!json_is_object (root))
    return kiln_error_make (err, 0, "parsing manifest: top level is a %s, expected an object",
                            json_type_name (root));
  m = xzalloc (sizeof *m);
  if ((r = determine_kind (root, content_type, &m->kind, err)) < 0)
    return kiln_error_wrap (err, "parsing manifest");
  m->media_type = manifest_kind_media_type (m->kind);
  if ((r = parse_body (root, m, err)) < 0)
    return kiln_error_wrap (err, "parsing %s", m->media_type);
  *out = steal_pointer (&m);
  return 0;
}

int
manifest_select_platform (const manifest *m, const char *os, const char *arch, const char *variant, size_t *out,
                          kiln_error **err)
{
  ssize_t any = -1;
  for (size_t i = 0; i < m->n_manifests; i++)
    {
      const manifest_platform *p = m->manifests[i].platform;
      if (!p || strcmp (p->os, os) != 0 || strcmp (p->architecture, arch) != 0)
        continue;
      if (platform_variant_equal (arch, p->variant, variant))
        {
          *out = i;
          return 0;
        }
      if (!variant && any < 0)
        any = (ssize_t) i;
    }
  if (any >= 0)
    {
      *out = (size_t) any;
      return 0;
    }
  autostrbuf strbuf sb = STRBUF_INIT;
  for (size_t i = 0; i < m->n_manifests && i < 32; i++)
    {
      const manifest_platform *p = m->manifests[i].platform;
      if (!p)
        continue;
      strbuf_addf (&sb, "%s%.40s/%.40s%s%.40s", sb.len ? ", " : "", p->os, p->architecture, p->variant ? "/" : "",
                   p->variant ? p->variant : "");
    }
  return kiln_error_make (err, 0, "no image for platform %s/%s%s%s in the index (it has: %s)", os, arch,
                          variant ? "/" : "", variant ? variant : "", sb.len ? sb.buf : "no platforms");
}
