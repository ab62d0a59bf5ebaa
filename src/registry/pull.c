/* pull.c - image pull (see pull.h). */
#include "registry/pull.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
} blob_pipe;

static int
pipe_sink (void *ctx, const void *data, size_t len, kiln_error **err)
{
  blob_pipe *p = ctx;
  return p->consumer->blob_data (p->blob, data, len, err);
}

static int
fetch_blob (registry_client *c, const char *repo, registry_blob_kind kind, const manifest_descriptor *d,
            const registry_pull_consumer *consumer, void *ctx, kiln_error **err)
{
  int r = consumer->have_blob (ctx, d, err);
  if (r < 0)
    return r;
  if (r > 0)
    {
      log_debug ("blob %s already present", d->digest);
      return 0;
    }
  blob_pipe p = { consumer, NULL };
  struct timespec t0, t1;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  if ((r = consumer->blob_begin (ctx, kind, d, &p.blob, err)) < 0)
    return r;
  r = registry_get_blob (c, repo, d->digest, d->size, pipe_sink, &p, err);
  kiln_error *eerr = NULL;
  int e = consumer->blob_end (p.blob, r >= 0, r >= 0 ? err : &eerr);
  kiln_error_free (eerr);
  if (r < 0)
    return r;
  if (e >= 0 && kind == REGISTRY_BLOB_LAYER)
    {
      clock_gettime (CLOCK_MONOTONIC, &t1);
      double secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
      log_info ("layer %.19s done: %.1f MB in %.2f s (%.1f MB/s)", d->digest, (double) d->size / 1e6, secs,
                secs > 0 ? (double) d->size / 1e6 / secs : 0.0);
    }
  return e;
}

/* Layers download on up to PULL_PARALLEL connections at once. */
#define PULL_PARALLEL 3

typedef struct layer_pool
{
  pthread_mutex_t lock;
  registry_client *proto;
  const char *repo;
  const manifest *m;
  const registry_pull_consumer *consumer;
  void *ctx;
  size_t next;
  bool failed;
  kiln_error *err; /* the first failure */
} layer_pool;

static void *
layer_worker (void *arg)
{
  layer_pool *p = arg;
  pthread_mutex_lock (&p->lock);
  registry_client *c = registry_client_clone (p->proto);
  pthread_mutex_unlock (&p->lock);
  for (;;)
    {
      pthread_mutex_lock (&p->lock);
      size_t i = p->next++;
      bool stop = p->failed || i >= p->m->n_layers;
      pthread_mutex_unlock (&p->lock);
      if (stop)
        break;
      const manifest_descriptor *d = &p->m->layers[i];
      log_info ("pulling layer %zu/%zu %s (%lld bytes)", i + 1, p->m->n_layers, d->digest, (long long) d->size);
      kiln_error *err = NULL;
      if (fetch_blob (c, p->repo, REGISTRY_BLOB_LAYER, d, p->consumer, p->ctx, &err) < 0)
        {
          pthread_mutex_lock (&p->lock);
          if (!p->failed)
            {
              p->failed = true;
              p->err = err;
              err = NULL;
            }
          pthread_mutex_unlock (&p->lock);
          kiln_error_free (err);
          break;
        }
    }
  registry_client_free (c);
  return NULL;
}

static int
fetch_layers (registry_client *c, const char *repo, const manifest *m, const registry_pull_consumer *consumer,
              void *ctx, kiln_error **err)
{
  layer_pool p = { PTHREAD_MUTEX_INITIALIZER, c, repo, m, consumer, ctx, 0, false, NULL };
  size_t n = m->n_layers < PULL_PARALLEL ? m->n_layers : PULL_PARALLEL;
  pthread_t th[PULL_PARALLEL];
  size_t started = 0;
  for (; started < n; started++)
    if (pthread_create (&th[started], NULL, layer_worker, &p) != 0)
      break;
  if (started == 0)
    layer_worker (&p); /* no thread available: do it here */
  for (size_t i = 0; i < started; i++)
    pthread_join (th[i], NULL);
  pthread_mutex_destroy (&p.lock);
  if (p.failed)
    {
      kiln_error_free (*err);
      *err = p.err;
      return -1;
    }
  return 0;
}

int
registry_pull (registry_client *c, const registry_ref *ref, const char *os, const char *arch, const char *variant,
               const registry_pull_consumer *consumer, void *ctx, registry_pull_result *out, kiln_error **err)
{
  const char *hos, *harch, *hvar;
  manifest_host_platform (&hos, &harch, &hvar);
  if (!os)
    os = hos;
  if (!arch)
    {
      arch = harch;
      if (!variant)
        variant = hvar;
    }
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
  if (fetch_blob (c, ref->path, REGISTRY_BLOB_CONFIG, &m->config, consumer, ctx, err) < 0)
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
