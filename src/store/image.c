/* image.c - image config and manifest JSON (see image.h). */
#include "store/image.h"
#include "registry/mediatype.h"
#include "util/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int
image_parse_format (const char *s, image_format *out, kiln_error **err)
{
  if (strcmp (s, "oci") == 0)
    *out = IMAGE_FORMAT_OCI;
  else if (strcmp (s, "docker") == 0)
    *out = IMAGE_FORMAT_DOCKER;
  else
    return kiln_error_make (err, 0, "unknown image format '%s' (oci, docker)", s);
  return 0;
}

const char *
image_manifest_media_type (image_format f)
{
  return f == IMAGE_FORMAT_DOCKER ? MEDIA_DOCKER_MANIFEST : MEDIA_OCI_MANIFEST;
}

const char *
image_config_media_type (image_format f)
{
  return f == IMAGE_FORMAT_DOCKER ? MEDIA_DOCKER_CONFIG : MEDIA_OCI_CONFIG;
}

void
image_spec_init (image_spec *s)
{
  memset (s, 0, sizeof *s);
  s->created = -1;
}

void
image_spec_free (image_spec *s)
{
  free (s->architecture);
  free (s->os);
  free (s->variant);
  free (s->author);
  free (s->user);
  strv_free (s->env);
  strv_free (s->entrypoint);
  strv_free (s->cmd);
  free (s->working_dir);
  strv_free (s->exposed_ports);
  strv_free (s->volumes);
  strv_free (s->labels);
  free (s->stop_signal);
  strv_free (s->shell);
  strv_free (s->onbuild);
  free (s->healthcheck_json);
  strv_free (s->diff_ids);
  for (size_t i = 0; i < s->n_history; i++)
    {
      free (s->history[i].created_by);
      free (s->history[i].comment);
    }
  free (s->history);
  image_spec_init (s);
}

void
image_spec_add_history (image_spec *s, int64_t created, const char *created_by, const char *comment,
                        bool empty_layer)
{
  s->history = xreallocarray (s->history, s->n_history + 1, sizeof *s->history);
  s->history[s->n_history++] = (image_history) {
    .created = created,
    .created_by = created_by ? xstrdup (created_by) : NULL,
    .comment = comment ? xstrdup (comment) : NULL,
    .empty_layer = empty_layer,
  };
}

static void
format_time (int64_t t, char buf[64])
{
  struct tm tm;
  time_t tt = (time_t) t;
  gmtime_r (&tt, &tm);
  strftime (buf, 64, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* RFC 3339 -> seconds (fractions and offsets other than Z/+00:00 handled
 * roughly: fractions dropped, offsets applied). */
static int64_t
parse_time (const char *s)
{
  struct tm tm = { 0 };
  const char *end = strptime (s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == NULL)
    return -1;
  int64_t t = timegm (&tm);
  if (*end == '.')
    while (*++end >= '0' && *end <= '9')
      ;
  if ((*end == '+' || *end == '-') && strlen (end) >= 6)
    {
      int h = atoi (end + 1), m = atoi (end + 4);
      int64_t off = (h * 60 + m) * 60;
      t += *end == '+' ? -off : off;
    }
  return t;
}

static void
w_strv (json_writer *w, const char *key, char **v)
{
  json_writer_key (w, key);
  json_writer_begin_array (w);
  for (size_t i = 0; v && v[i]; i++)
    json_writer_string (w, v[i]);
  json_writer_end_array (w);
}

static void
w_set (json_writer *w, const char *key, char **v)
{
  if (v == NULL || v[0] == NULL)
    return;
  json_writer_key (w, key);
  json_writer_begin_object (w);
  for (size_t i = 0; v[i]; i++)
    {
      json_writer_key (w, v[i]);
      json_writer_begin_object (w);
      json_writer_end_object (w);
    }
  json_writer_end_object (w);
}

static int
w_config (json_writer *w, const image_spec *s, kiln_error **err)
{
  json_writer_key (w, "config");
  json_writer_begin_object (w);
  if (s->user && *s->user)
    json_writer_kv_string (w, "User", s->user);
  w_set (w, "ExposedPorts", s->exposed_ports);
  if (s->env)
    w_strv (w, "Env", s->env);
  if (s->entrypoint)
    w_strv (w, "Entrypoint", s->entrypoint);
  if (s->cmd)
    w_strv (w, "Cmd", s->cmd);
  w_set (w, "Volumes", s->volumes);
  if (s->working_dir && *s->working_dir)
    json_writer_kv_string (w, "WorkingDir", s->working_dir);
  if (s->labels && s->labels[0])
    {
      json_writer_key (w, "Labels");
      json_writer_begin_object (w);
      for (size_t i = 0; s->labels[i]; i++)
        {
          const char *eq = strchr (s->labels[i], '=');
          if (eq == NULL)
            return kiln_error_make (err, EINVAL, "label '%s' has no '='", s->labels[i]);
          autofree char *k = xstrndup (s->labels[i], eq - s->labels[i]);
          json_writer_kv_string (w, k, eq + 1);
        }
      json_writer_end_object (w);
    }
  if (s->stop_signal && *s->stop_signal)
    json_writer_kv_string (w, "StopSignal", s->stop_signal);
  if (s->shell)
    w_strv (w, "Shell", s->shell);
  if (s->onbuild && s->onbuild[0])
    w_strv (w, "OnBuild", s->onbuild);
  if (s->healthcheck_json)
    {
      json_writer_key (w, "Healthcheck");
      json_writer_raw (w, s->healthcheck_json, strlen (s->healthcheck_json));
    }
  json_writer_end_object (w);
  return 0;
}

int
image_config_json (const image_spec *s, char **out, size_t *len, kiln_error **err)
{
  size_t layers = 0;
  for (size_t i = 0; i < s->n_history; i++)
    if (!s->history[i].empty_layer)
      layers++;
  size_t n_diff = strv_len (s->diff_ids);
  if (s->n_history && layers != n_diff)
    return kiln_error_make (err, EINVAL, "image config: %zu history entries with layers but %zu diff_ids",
                            layers, n_diff);
  if (s->healthcheck_json)
    {
      autojson json_value *hc = NULL;
      if (json_parse (s->healthcheck_json, strlen (s->healthcheck_json), JSON_DEFAULT_MAX_SIZE, &hc, err) < 0)
        return kiln_error_wrap (err, "healthcheck");
    }
  autojsonwriter json_writer *w = json_writer_new ();
  char tbuf[64];
  json_writer_begin_object (w);
  if (s->created >= 0)
    {
      format_time (s->created, tbuf);
      json_writer_kv_string (w, "created", tbuf);
    }
  if (s->author)
    json_writer_kv_string (w, "author", s->author);
  json_writer_kv_string (w, "architecture", s->architecture ? s->architecture : "amd64");
  json_writer_kv_string (w, "os", s->os ? s->os : "linux");
  if (s->variant && *s->variant)
    json_writer_kv_string (w, "variant", s->variant);
  if (w_config (w, s, err) < 0)
    return -1;
  json_writer_key (w, "rootfs");
  json_writer_begin_object (w);
  json_writer_kv_string (w, "type", "layers");
  w_strv (w, "diff_ids", s->diff_ids);
  json_writer_end_object (w);
  if (s->n_history)
    {
      json_writer_key (w, "history");
      json_writer_begin_array (w);
      for (size_t i = 0; i < s->n_history; i++)
        {
          const image_history *h = &s->history[i];
          json_writer_begin_object (w);
          if (h->created >= 0)
            {
              format_time (h->created, tbuf);
              json_writer_kv_string (w, "created", tbuf);
            }
          if (h->created_by)
            json_writer_kv_string (w, "created_by", h->created_by);
          if (h->comment)
            json_writer_kv_string (w, "comment", h->comment);
          if (h->empty_layer)
            json_writer_kv_bool (w, "empty_layer", true);
          json_writer_end_object (w);
        }
      json_writer_end_array (w);
    }
  json_writer_end_object (w);
  return json_writer_finish (w, out, len, err);
}

int
image_manifest_json (image_format f, const char *config_digest, int64_t config_size,
                     const image_descriptor *layers, size_t n_layers, char **out, size_t *len, kiln_error **err)
{
  autojsonwriter json_writer *w = json_writer_new ();
  json_writer_begin_object (w);
  json_writer_kv_int (w, "schemaVersion", 2);
  json_writer_kv_string (w, "mediaType", image_manifest_media_type (f));
  json_writer_key (w, "config");
  json_writer_begin_object (w);
  json_writer_kv_string (w, "mediaType", image_config_media_type (f));
  json_writer_kv_string (w, "digest", config_digest);
  json_writer_kv_int (w, "size", config_size);
  json_writer_end_object (w);
  json_writer_key (w, "layers");
  json_writer_begin_array (w);
  for (size_t i = 0; i < n_layers; i++)
    {
      json_writer_begin_object (w);
      json_writer_kv_string (w, "mediaType", layers[i].media_type);
      json_writer_kv_string (w, "digest", layers[i].digest);
      json_writer_kv_int (w, "size", layers[i].size);
      json_writer_end_object (w);
    }
  json_writer_end_array (w);
  json_writer_end_object (w);
  return json_writer_finish (w, out, len, err);
}

const char *
image_index_media_type (image_format f)
{
  return f == IMAGE_FORMAT_DOCKER ? MEDIA_DOCKER_LIST : MEDIA_OCI_INDEX;
}

int
image_index_json (image_format f, const image_index_entry *entries, size_t n, char **out, size_t *len,
                  kiln_error **err)
{
  autojsonwriter json_writer *w = json_writer_new ();
  json_writer_begin_object (w);
  json_writer_kv_int (w, "schemaVersion", 2);
  json_writer_kv_string (w, "mediaType", image_index_media_type (f));
  json_writer_key (w, "manifests");
  json_writer_begin_array (w);
  for (size_t i = 0; i < n; i++)
    {
      const image_index_entry *e = &entries[i];
      json_writer_begin_object (w);
      json_writer_kv_string (w, "mediaType", e->media_type);
      json_writer_kv_string (w, "digest", e->digest);
      json_writer_kv_int (w, "size", e->size);
      json_writer_key (w, "platform");
      json_writer_begin_object (w);
      json_writer_kv_string (w, "architecture", e->architecture);
      json_writer_kv_string (w, "os", e->os);
      if (e->variant && *e->variant)
        json_writer_kv_string (w, "variant", e->variant);
      json_writer_end_object (w);
      json_writer_end_object (w);
    }
  json_writer_end_array (w);
  json_writer_end_object (w);
  return json_writer_finish (w, out, len, err);
}

static int
get_strv (const json_value *obj, const char *key, char ***out, kiln_error **err)
{
  json_value *v = json_get (obj, key);
  if (v == NULL || json_is_null (v))
    return 0;
  return json_to_strv (v, key, out, err);
}

static void
get_keys (const json_value *obj, const char *key, char ***out)
{
  json_value *v = json_get_object (obj, key);
  for (size_t i = 0; v && i < json_object_size (v); i++)
    strv_push (out, json_object_key (v, i));
}

static char *
dup_opt (const char *s)
{
  return s ? xstrdup (s) : NULL;
}

int
image_spec_from_config (image_spec *s, const char *data, size_t len, kiln_error **err)
{
  autojson json_value *root = NULL;
  if (json_parse (data, len, JSON_DEFAULT_MAX_SIZE, &root, err) < 0)
    return kiln_error_wrap (err, "image config");
  if (!json_is_object (root))
    return kiln_error_make (err, EINVAL, "image config is not a JSON object");
  s->architecture = dup_opt (json_get_string (root, "architecture"));
  s->os = dup_opt (json_get_string (root, "os"));
  s->variant = dup_opt (json_get_string (root, "variant"));
  s->author = dup_opt (json_get_string (root, "author"));
  const char *created = json_get_string (root, "created");
  s->created = created ? parse_time (created) : -1;
  json_value *c = json_get_object (root, "config");
  if (c)
    {
      s->user = dup_opt (json_get_string (c, "User"));
      s->working_dir = dup_opt (json_get_string (c, "WorkingDir"));
      s->stop_signal = dup_opt (json_get_string (c, "StopSignal"));
      if (get_strv (c, "Env", &s->env, err) < 0 || get_strv (c, "Entrypoint", &s->entrypoint, err) < 0
          || get_strv (c, "Cmd", &s->cmd, err) < 0 || get_strv (c, "Shell", &s->shell, err) < 0
          || get_strv (c, "OnBuild", &s->onbuild, err) < 0)
        return kiln_error_wrap (err, "image config");
      get_keys (c, "ExposedPorts", &s->exposed_ports);
      get_keys (c, "Volumes", &s->volumes);
      json_value *labels = json_get_object (c, "Labels");
      for (size_t i = 0; labels && i < json_object_size (labels); i++)
        {
          const char *v = json_string (json_object_value (labels, i));
          autofree char *kv = xasprintf ("%s=%s", json_object_key (labels, i), v ? v : "");
          strv_push (&s->labels, kv);
        }
      json_value *hc = json_get_object (c, "Healthcheck");
      if (hc)
        {
          size_t hl;
          if (json_generate (hc, &s->healthcheck_json, &hl, err) < 0)
            return -1;
        }
    }
  json_value *rootfs = json_get_object (root, "rootfs");
  if (rootfs && get_strv (rootfs, "diff_ids", &s->diff_ids, err) < 0)
    return kiln_error_wrap (err, "image config");
  json_value *hist = json_get_array (root, "history");
  for (size_t i = 0; hist && i < json_array_size (hist); i++)
    {
      json_value *h = json_array_get (hist, i);
      if (!json_is_object (h))
        return kiln_error_make (err, EINVAL, "image config: history[%zu] is not an object", i);
      const char *hc = json_get_string (h, "created");
      image_spec_add_history (s, hc ? parse_time (hc) : -1, json_get_string (h, "created_by"),
                              json_get_string (h, "comment"), json_get_bool (h, "empty_layer", false));
    }
  return 0;
}
