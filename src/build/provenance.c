/* provenance.c - the SLSA v1 provenance of a built image, as an in-toto v1
 * statement (https://slsa.dev/spec/v1.0/provenance):
 *
 *   subject          the image manifest (name, sha256)
 *   buildDefinition  buildType urn:kiln:build:dockerfile:v1;
 *                    externalParameters: Dockerfile path and digest,
 *                    target, platform, build args, context;
 *                    resolvedDependencies: the Dockerfile, the context
 *                    (build_exec_context_digest), every fetched image
 *                    (docker-image://REF with its manifest digest), ADD URLs
 *                    with their sha256
 *   runDetails       builder (urn:kiln:builder, kiln's version and commit),
 *                    metadata (start and finish unless --reproducible),
 *                    byproducts: one per layer of the image: its blob
 *                    digest, diffID, the step that made it, and its file
 *                    list with the change of each path.
 *
 * The file list of a layer is its metadata index in the store (built from
 * the same change list as the layer's tar, or from the tar itself for a
 * pulled layer), so it lists exactly the tar's members: every entry but the
 * directories the tar never listed (LAYER_INDEX_F_IMPLICIT, unless opaque:
 * then the tar has its ".wh..wh..opq"). A whiteout is
 * "deleted"; a path the layers below do not have is "added"; a regular
 * file with the same bytes below, a directory over a directory and a
 * symlink with the same target are "metadata"; anything else "modified".
 * A directory that hides the lower layers' contents carries "opaque": true
 * (and is "modified" when the layers below had it: its listing was
 * replaced).
 */
#include "build/attest.h"
#include "build/attest_internal.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/strbuf.h"

#include <string.h>

static const char *
change_kind (const attest_layers *l, size_t li, uint32_t id, const char *path, kiln_error **err)
{
  const layer_index_disk_entry *e = layer_index_entry (l->idx[li], id);
  if (e->type == LAYER_INDEX_WHITEOUT)
    return "deleted";
  uint32_t lid;
  int below = li > 0 ? attest_layers_find (l, li - 1, path, &lid) : -1;
  if (below < 0)
    return "added";
  const layer_index_disk_entry *le = layer_index_entry (l->idx[below], lid);
  if (le->type != e->type)
    return "modified";
  switch (e->type)
    {
    case LAYER_INDEX_DIR:
      /* an opaque directory replaced the lower one's contents */
      return e->flags & LAYER_INDEX_F_OPAQUE ? "modified" : "metadata";
    case LAYER_INDEX_FIFO:
    case LAYER_INDEX_SOCK:
      return "metadata";
    case LAYER_INDEX_CHR:
    case LAYER_INDEX_BLK:
      return le->rdev_major == e->rdev_major && le->rdev_minor == e->rdev_minor ? "metadata" : "modified";
    case LAYER_INDEX_SYMLINK:
      {
        size_t a, b;
        const char *ta = layer_index_link (l->idx[li], id, &a);
        const char *tb = layer_index_link (l->idx[below], lid, &b);
        return a == b && memcmp (ta, tb, a) == 0 ? "metadata" : "modified";
      }
    case LAYER_INDEX_REG:
      {
        if (le->size != e->size)
          return "modified";
        int same = attest_layers_same_data (l, li, (size_t) below, path, err);
        return same < 0 ? NULL : same ? "metadata" : "modified";
      }
    default:
      return "modified";
    }
}

static int
write_files (json_writer *w, const attest_layers *l, size_t li, kiln_error **err)
{
  const layer_index *idx = l->idx[li];
  autostrbuf strbuf sb = STRBUF_INIT;
  json_writer_begin_array (w);
  for (uint32_t id = 1; id < layer_index_count (idx); id++)
    {
      const layer_index_disk_entry *e = layer_index_entry (idx, id);
      /* an implicit directory is no tar member, unless its opaque marker is */
      if (e->type == LAYER_INDEX_DIR && (e->flags & LAYER_INDEX_F_IMPLICIT) && !(e->flags & LAYER_INDEX_F_OPAQUE))
        continue;
      strbuf_reset (&sb);
      layer_index_path (idx, id, &sb);
      const char *kind = change_kind (l, li, id, sb.buf, err);
      if (!kind)
        return -1;
      json_writer_begin_object (w);
      autofree char *abs = xasprintf ("/%s", sb.buf);
      json_writer_kv_string (w, "path", abs);
      json_writer_kv_string (w, "change", kind);
      if (e->type == LAYER_INDEX_DIR && (e->flags & LAYER_INDEX_F_OPAQUE))
        json_writer_kv_bool (w, "opaque", true);
      json_writer_end_object (w);
    }
  json_writer_end_array (w);
  return 0;
}

static void
kv_digest (json_writer *w, const char *digest)
{
  json_writer_key (w, "digest");
  json_writer_begin_object (w);
  const char *colon = strchr (digest, ':');
  autofree char *alg = colon ? xstrndup (digest, (size_t) (colon - digest)) : xstrdup ("sha256");
  json_writer_kv_string (w, alg, colon ? colon + 1 : digest);
  json_writer_end_object (w);
}

static void
write_definition (json_writer *w, const build_result *res, const attest_opts *o)
{
  json_writer_key (w, "buildDefinition");
  json_writer_begin_object (w);
  json_writer_kv_string (w, "buildType", "urn:kiln:build:dockerfile:v1");
  json_writer_key (w, "externalParameters");
  json_writer_begin_object (w);
  json_writer_kv_string (w, "dockerfile", o->dockerfile_path);
  json_writer_kv_string (w, "dockerfileDigest", o->dockerfile_digest);
  json_writer_kv_string (w, "target", o->target);
  json_writer_kv_string (w, "platform", o->platform);
  json_writer_kv_string (w, "context", o->context);
  json_writer_key (w, "buildArgs");
  json_writer_begin_object (w);
  for (char **a = o->build_args; a && *a; a++)
    {
      autofree char *k = xstrndup (*a, strcspn (*a, "="));
      const char *v = strchr (*a, '=');
      json_writer_kv_string (w, k, v ? v + 1 : NULL);
    }
  json_writer_end_object (w);
  json_writer_end_object (w);
  json_writer_key (w, "resolvedDependencies");
  json_writer_begin_array (w);
  if (o->dockerfile_digest)
    {
      json_writer_begin_object (w);
      json_writer_kv_string (w, "name", "dockerfile");
      json_writer_kv_string (w, "uri", o->dockerfile_path);
      kv_digest (w, o->dockerfile_digest);
      json_writer_end_object (w);
    }
  for (char **f = res->fetched; f && f[0] && f[1]; f += 2)
    {
      /* "REF@PLATFORM" */
      const char *at = strrchr (f[0], '@');
      autofree char *ref = at ? xstrndup (f[0], (size_t) (at - f[0])) : xstrdup (f[0]);
      autofree char *uri = xasprintf ("docker-image://%s", ref);
      json_writer_begin_object (w);
      json_writer_kv_string (w, "uri", uri);
      kv_digest (w, f[1]);
      if (at)
        {
          json_writer_key (w, "annotations");
          json_writer_begin_object (w);
          json_writer_kv_string (w, "platform", at + 1);
          json_writer_end_object (w);
        }
      json_writer_end_object (w);
    }
  if (o->context_digest)
    {
      /* the build context as COPY . sees it (build_exec_context_digest;
       * docs/design/build.md, "Attestations") */
      json_writer_begin_object (w);
      json_writer_kv_string (w, "name", "context");
      json_writer_kv_string (w, "uri", o->context);
      kv_digest (w, o->context_digest);
      json_writer_end_object (w);
    }
  for (char **u = res->add_urls; u && u[0] && u[1]; u += 2)
    {
      json_writer_begin_object (w);
      json_writer_kv_string (w, "uri", u[0]);
      kv_digest (w, u[1]);
      json_writer_end_object (w);
    }
  json_writer_end_array (w);
  json_writer_end_object (w);
}

static int
write_run_details (json_writer *w, const attest_layers *l, const build_result *res, const attest_opts *o,
                   kiln_error **err)
{
  json_writer_key (w, "runDetails");
  json_writer_begin_object (w);
  json_writer_key (w, "builder");
  json_writer_begin_object (w);
  json_writer_kv_string (w, "id", "urn:kiln:builder");
  json_writer_key (w, "version");
  json_writer_begin_object (w);
  json_writer_kv_string (w, "kiln", o->kiln_version);
  json_writer_kv_string (w, "commit", o->kiln_commit);
  json_writer_end_object (w);
  json_writer_end_object (w);
  if (o->started > 0)
    {
      char a[32], b[32];
      attest_time (o->started, a);
      attest_time (o->finished, b);
      json_writer_key (w, "metadata");
      json_writer_begin_object (w);
      json_writer_kv_string (w, "startedOn", a);
      json_writer_kv_string (w, "finishedOn", b);
      json_writer_end_object (w);
    }
  json_writer_key (w, "byproducts");
  json_writer_begin_array (w);
  for (size_t i = 0; i < res->n_layers; i++)
    {
      json_writer_begin_object (w);
      autofree char *name = xasprintf ("layer %zu", i);
      json_writer_kv_string (w, "name", name);
      kv_digest (w, res->layers[i].digest);
      json_writer_kv_string (w, "mediaType", res->layers[i].media_type);
      json_writer_key (w, "annotations");
      json_writer_begin_object (w);
      json_writer_kv_string (w, "diffID", res->layers[i].diff_id);
      json_writer_kv_string (w, "step", res->layers[i].origin ? res->layers[i].origin : "base image");
      json_writer_key (w, "files");
      if (write_files (w, l, i, err) < 0)
        return kiln_error_wrap (err, "file list of layer %zu (%s)", i, res->layers[i].diff_id);
      json_writer_end_object (w);
      json_writer_end_object (w);
    }
  json_writer_end_array (w);
  json_writer_end_object (w);
  return 0;
}

int
provenance_json (const attest_layers *l, const build_result *res, const attest_meta *m, const attest_opts *o,
                 char **out, size_t *len, kiln_error **err)
{
  autojsonwriter json_writer *w = json_writer_new ();
  json_writer_begin_object (w);
  json_writer_kv_string (w, "_type", "https://in-toto.io/Statement/v1");
  json_writer_key (w, "subject");
  json_writer_begin_array (w);
  json_writer_begin_object (w);
  json_writer_kv_string (w, "name", m->name);
  kv_digest (w, res->manifest_digest);
  json_writer_end_object (w);
  json_writer_end_array (w);
  json_writer_kv_string (w, "predicateType", "https://slsa.dev/provenance/v1");
  json_writer_key (w, "predicate");
  json_writer_begin_object (w);
  write_definition (w, res, o);
  if (write_run_details (w, l, res, o, err) < 0)
    return kiln_error_wrap (err, "provenance");
  json_writer_end_object (w);
  json_writer_end_object (w);
  if (json_writer_finish (w, out, len, err) < 0)
    return kiln_error_wrap (err, "provenance");
  return 0;
}
