/* pull.c - image pull (see pull.h). */
#include "registry/pull.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry/blobprogress.h"
#include "registry/platform.h"
#include "registry/transfer.h"
#include "util/alloc.h"
#include "util/log.h"

void
registry_pull_result_clear (registry_pull_result *r)
{
  free (r->manifest_digest);
  free (r->media_type);
  free (r->index_digest);
  manifest_free (r->manifest);
  memset (r, 0, sizeof *r);
}

typedef struct blob_pipe
{
  const registry_pull_consumer *consumer;
  void *blob;
  blobprogress *progress;
  int progress_id;
  uint64_t received; /* verified bytes handed on (resumes continue it) */
} blob_pipe;

static int
pipe_sink (void *ctx, const void *data, size_t len, kiln_error **err)
{
  blob_pipe *p = ctx;
  p->received += len;
  blobprogress_set (p->progress, p->progress_id, p->received);
  return p->consumer->blob_data (p->blob, data, len, err);
}

/* what: "layer i/n" for a layer (logged once it is really pulled), else NULL */
static int
fetch_blob (registry_client *c, const char *repo, registry_blob_kind kind, const manifest_descriptor *d,
            const registry_pull_consumer *consumer, void *ctx, const char *what, kiln_error **err)
{
  int r = consumer->have_blob (ctx, d, err);
  if (r < 0)
    return r;
  if (r > 0)
    {
      log_debug ("blob %s already present", d->digest);
      return 0;
    }
  if (what && !registry_client_progress (c))
    log_info ("pulling %s %s (%lld bytes)", what, d->digest, (long long) d->size);
  blob_pipe p = { consumer, NULL, registry_client_progress (c), -1, 0 };
  struct timespec t0, t1;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  if ((r = consumer->blob_begin (ctx, kind, d, &p.blob, err)) < 0)
    return r;
  p.progress_id = blobprogress_begin (p.progress, d->digest, "pull", d->size);
  r = registry_get_blob (c, repo, d->digest, d->size, pipe_sink, &p, err);
  kiln_error *eerr = NULL;
  int e = consumer->blob_end (p.blob, r >= 0, r >= 0 ? err : &eerr);
  kiln_error_free (eerr);
  blobprogress_end (p.progress, p.progress_id, r >= 0 && e >= 0, NULL);
  if (r < 0)
    return r;
  if (e >= 0 && kind == REGISTRY_BLOB_LAYER && !p.progress)
    {
      clock_gettime (CLOCK_MONOTONIC, &t1);
      double secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
      log_info ("layer %.19s done: %.1f MB in %.2f s (%.1f MB/s)", d->digest, (double) d->size / 1e6, secs,
                secs > 0 ? (double) d->size / 1e6 / secs : 0.0);
    }
  return e;
}

typedef struct layer_jobs
{
  registry_client *proto;
  const char *repo;
  const manifest *m;
  const registry_pull_consumer *consumer;
  void *ctx;
} layer_jobs;

/* One layer on a pool thread, with its own clone of the client (its own
 * easy handle; the connection cache is the shared engine's). */
static int
layer_job (void *arg, size_t i, kiln_error **err)
{
  layer_jobs *j = arg;
  autoclient registry_client *c = registry_client_clone (j->proto);
  const manifest_descriptor *d = &j->m->layers[i];
  char what[64];
  snprintf (what, sizeof what, "layer %zu/%zu", i + 1, j->m->n_layers);
  return fetch_blob (c, j->repo, REGISTRY_BLOB_LAYER, d, j->consumer, j->ctx, what, err);
}

static int
fetch_layers (registry_client *c, const char *repo, const manifest *m, const registry_pull_consumer *consumer,
              void *ctx, kiln_error **err)
{
  layer_jobs j = { c, repo, m, consumer, ctx };
  return transfer_jobs (m->n_layers, TRANSFER_PARALLEL, layer_job, &j, err);
}

int
registry_pull (registry_client *c, const registry_ref *ref, const char *os, const char *arch, const char *variant,
               const registry_pull_consumer *consumer, void *ctx, registry_pull_result *out, kiln_error **err)
{
  platform_default (&os, &arch, &variant);
  autofree char *data = NULL;
  autofree char *ct = NULL;
  autofree char *digest = NULL;
  size_t len = 0;
  const char *id = registry_ref_manifest_id (ref);
  memset (out, 0, sizeof *out);
  if (registry_get_manifest (c, ref->path, id, &data, &len, &ct, &digest, err) < 0)
    return -1;
  automanifest manifest *m = NULL;
  if (manifest_parse (data, len, ct, &m, err) < 0)
    return kiln_error_wrap (err, "registry '%s', repository '%s': manifest '%s'", ref->domain, ref->path, id);
  if (manifest_kind_is_index (m->kind))
    {
      size_t i;
      if (manifest_select_platform (m, os, arch, variant, &i, err) < 0)
        return kiln_error_wrap (err, "registry '%s', repository '%s': index '%s'", ref->domain, ref->path, id);
      if (consumer->manifest && consumer->manifest (ctx, data, len, m->media_type, digest, err) < 0)
        return -1;
      out->index_digest = steal_pointer (&digest);
      autofree char *child = xstrdup (m->manifests[i].digest);
      free (steal_pointer (&data));
      free (steal_pointer (&ct));
      manifest_free (steal_pointer (&m));
      if (registry_get_manifest (c, ref->path, child, &data, &len, &ct, &digest, err) < 0)
        return -1;
      if (manifest_parse (data, len, ct, &m, err) < 0)
        return kiln_error_wrap (err, "registry '%s', repository '%s': manifest '%s'", ref->domain, ref->path, child);
      if (manifest_kind_is_index (m->kind))
        return kiln_error_make (err, 0, "registry '%s', repository '%s': manifest '%s': nested index not supported",
                                ref->domain, ref->path, child);
    }
  if ((!m->layers || m->n_layers == 0) && m->config.digest == NULL)
    return kiln_error_make (err, 0, "registry '%s', repository '%s': empty manifest", ref->domain, ref->path);
  if (fetch_blob (c, ref->path, REGISTRY_BLOB_CONFIG, &m->config, consumer, ctx, NULL, err) < 0)
    return -1;
  if (fetch_layers (c, ref->path, m, consumer, ctx, err) < 0)
    return -1;
  if (consumer->manifest && consumer->manifest (ctx, data, len, m->media_type, digest, err) < 0)
    return -1;
  out->manifest_digest = steal_pointer (&digest);
  out->media_type = xstrdup (m->media_type);
  out->manifest_size = (int64_t) len;
  out->manifest = steal_pointer (&m);
  return 0;
}
