/* push.c - image push (see push.h). */
#include "registry/push.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry/manifest.h"
#include "registry/transfer.h"
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

typedef struct layer_jobs
{
  registry_client *proto;
  const char *repo;
  const manifest *m;
  const registry_push_source *src;
  void *ctx;
  const char *mount_from;
} layer_jobs;

static int
layer_job (void *arg, size_t i, kiln_error **err)
{
  layer_jobs *j = arg;
  autoclient registry_client *c = registry_client_clone (j->proto);
  return push_one (c, j->repo, &j->m->layers[i], j->src, j->ctx, j->mount_from, err);
}

/* Layers go up in parallel on the shared transfer pool. */
static int
push_layers (registry_client *c, const char *repo, const manifest *m, const registry_push_source *src, void *ctx,
             const char *mount_from, kiln_error **err)
{
  layer_jobs j = { c, repo, m, src, ctx, mount_from };
  return transfer_jobs (m->n_layers, TRANSFER_PARALLEL, layer_job, &j, err);
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
