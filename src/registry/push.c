/* push.c - image push (see push.h). */
#include "registry/push.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry/manifest.h"
#include "util/alloc.h"
#include "util/log.h"

static int
push_one (registry_client *c, const char *repo, const manifest_descriptor *d, const registry_push_source *src,
          void *ctx, const char *mount_from, kiln_error **err)
{
  autoclose int fd = -1;
  int64_t size = -1;
  if (src->open_blob (ctx, d->digest, &fd, &size, err) < 0)
    return -1;
  if (size != d->size)
    return kiln_error_make (err, 0, "blob %s is %lld bytes, the manifest says %lld", d->digest, (long long) size,
                            (long long) d->size);
  const char *how = NULL;
  if (registry_push_blob (c, repo, d->digest, size, fd, mount_from, &how, err) < 0)
    return -1;
  log_info ("blob %s (%lld bytes): %s", d->digest, (long long) size, how);
  return 0;
}

#define PUSH_PARALLEL 3

typedef struct push_pool
{
  pthread_mutex_t lock;
  registry_client *proto;
  const char *repo;
  const manifest *m;
  const registry_push_source *src;
  void *ctx;
  const char *mount_from;
  size_t next;
  bool failed;
  kiln_error *err;
} push_pool;

static void *
push_worker (void *arg)
{
  push_pool *p = arg;
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
      kiln_error *err = NULL;
      if (push_one (c, p->repo, &p->m->layers[i], p->src, p->ctx, p->mount_from, &err) < 0)
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

/* Layers go up on up to PUSH_PARALLEL connections at once. */
static int
push_layers (registry_client *c, const char *repo, const manifest *m, const registry_push_source *src, void *ctx,
             const char *mount_from, kiln_error **err)
{
  push_pool p = { PTHREAD_MUTEX_INITIALIZER, c, repo, m, src, ctx, mount_from, 0, false, NULL };
  size_t n = m->n_layers < PUSH_PARALLEL ? m->n_layers : PUSH_PARALLEL;
  pthread_t th[PUSH_PARALLEL];
  size_t started = 0;
  for (; started < n; started++)
    if (pthread_create (&th[started], NULL, push_worker, &p) != 0)
      break;
  if (started == 0 && n > 0)
    push_worker (&p);
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
registry_push_image (registry_client *c, const char *repo, char *const *tags, const char *manifest_data,
                     size_t manifest_len, const char *media_type, const registry_push_source *src, void *ctx,
                     const char *mount_from, char digest_out[DIGEST_STRING_SIZE], kiln_error **err)
{
  automanifest manifest *m = NULL;
  if (manifest_parse (manifest_data, manifest_len, media_type, &m, err) < 0)
    return -1;
  if (manifest_kind_is_index (m->kind))
    return kiln_error_make (err, 0, "pushing an image index is not supported yet (push one platform's manifest)");
  if (push_one (c, repo, &m->config, src, ctx, mount_from, err) < 0)
    return -1;
  if (push_layers (c, repo, m, src, ctx, mount_from, err) < 0)
    return -1;
  digest_buffer (manifest_data, manifest_len, digest_out);
  if (!tags || !tags[0])
    return registry_put_manifest (c, repo, digest_out, manifest_data, manifest_len, m->media_type, err);
  for (char *const *t = tags; *t; t++)
    if (registry_put_manifest (c, repo, *t, manifest_data, manifest_len, m->media_type, err) < 0)
      return -1;
  return 0;
}
