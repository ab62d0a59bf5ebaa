/* push.c - image push (see push.h). */
#include "registry/push.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry/blobprogress.h"
#include "registry/manifest.h"
#include "registry/transfer.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/log.h"

/* A source that can name where a blob is: HEAD, then the mount, before
 * anything is opened. 1 done ("exists" or "mounted"), 0 upload it. */
static int
mount_first (registry_client *c, const char *repo, const manifest_descriptor *d, const registry_push_source *src,
             void *ctx, kiln_error **err)
{
  int r = registry_blob_exists (c, repo, d->digest, err);
  const char *how = "exists";
  const char *from = r == 0 ? src->mount_from (ctx, d->digest) : NULL;
  if (from && strcmp (from, repo) != 0)
    {
      r = registry_mount_blob (c, repo, d->digest, from, err);
      how = "mounted";
      if (r == 0)
        log_debug ("blob %s: registry did not mount it from '%s'; uploading", d->digest, from);
    }
  if (r <= 0)
    return r;
  blobprogress *bp = registry_client_progress (c);
  int id = blobprogress_begin (bp, d->digest, "push", d->size);
  blobprogress_set (bp, id, (uint64_t) d->size);
  blobprogress_end (bp, id, true, how);
  if (!bp)
    log_info ("blob %s (%lld bytes): %s", d->digest, (long long) d->size, how);
  return 1;
}

static int
push_one (registry_client *c, const char *repo, const manifest_descriptor *d, const registry_push_source *src,
          void *ctx, const char *mount_from, kiln_error **err)
{
  if (src->mount_from)
    {
      int r = mount_first (c, repo, d, src, ctx, err);
      if (r != 0)
        return r < 0 ? -1 : 0;
    }
  autoclose int fd = -1;
  int64_t size = -1;
  if (src->open_blob (ctx, d->digest, &fd, &size, err) < 0)
    return -1;
  if (size != d->size)
    return kiln_error_make (err, 0, "blob %s is %lld bytes, the manifest says %lld", d->digest, (long long) size,
                            (long long) d->size);
  const char *how = NULL;
  blobprogress *bp = registry_client_progress (c);
  int id = blobprogress_begin (bp, d->digest, "push", size);
  registry_client_set_upload_progress (c, id);
  int r = registry_push_blob (c, repo, d->digest, size, fd, mount_from, &how, err);
  registry_client_set_upload_progress (c, -1);
  if (r >= 0)
    blobprogress_set (bp, id, (uint64_t) size);
  blobprogress_end (bp, id, r >= 0, r < 0 ? "failed" : strcmp (how, "uploaded") == 0 ? NULL : how);
  if (r < 0)
    return -1;
  if (!bp)
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

/* Push one image manifest: config, layers, then the manifest under every
 * tag (or under its digest). */
static int
push_manifest (registry_client *c, const char *repo, char *const *tags, const manifest *m, const char *data,
               size_t len, const char *digest, const registry_push_source *src, void *ctx, const char *mount_from,
               kiln_error **err)
{
  if (push_one (c, repo, &m->config, src, ctx, mount_from, err) < 0)
    return -1;
  if (push_layers (c, repo, m, src, ctx, mount_from, err) < 0)
    return -1;
  if (!tags || !tags[0])
    return registry_put_manifest (c, repo, digest, data, len, m->media_type, err);
  for (char *const *t = tags; *t; t++)
    if (registry_put_manifest (c, repo, *t, data, len, m->media_type, err) < 0)
      return -1;
  return 0;
}

/* Read a child manifest of an index from the source; its bytes must match
 * the descriptor (size and digest). */
static int
read_child (const manifest_descriptor *d, const registry_push_source *src, void *ctx, char **data, size_t *len,
            kiln_error **err)
{
  if (d->size > (int64_t) REGISTRY_MANIFEST_MAX_SIZE)
    return kiln_error_make (err, 0, "manifest %s: %lld bytes, more than the %u allowed", d->digest,
                            (long long) d->size, REGISTRY_MANIFEST_MAX_SIZE);
  autoclose int fd = -1;
  int64_t size = -1;
  if (src->open_blob (ctx, d->digest, &fd, &size, err) < 0)
    return -1;
  autofree char *buf = NULL;
  size_t n = 0;
  if (fs_read_fd (fd, REGISTRY_MANIFEST_MAX_SIZE, &buf, &n, err) < 0)
    return kiln_error_wrap (err, "manifest %s", d->digest);
  char got[DIGEST_STRING_SIZE];
  digest_buffer (buf, n, got);
  if ((int64_t) n != d->size || strcmp (got, d->digest) != 0)
    return kiln_error_make (err, 0, "manifest %s: content has digest %s and %zu bytes, the index says %lld", d->digest,
                            got, n, (long long) d->size);
  *data = steal_pointer (&buf);
  *len = n;
  return 0;
}

static const char *
platform_name (const manifest_descriptor *d, char *buf, size_t size)
{
  const manifest_platform *p = d->platform;
  if (!p)
    return "unknown platform";
  snprintf (buf, size, "%s/%s%s%s", p->os, p->architecture, p->variant ? "/" : "", p->variant ? p->variant : "");
  return buf;
}

int
registry_push_image (registry_client *c, const char *repo, char *const *tags, const char *manifest_data,
                     size_t manifest_len, const char *media_type, const registry_push_source *src, void *ctx,
                     const char *mount_from, char digest_out[DIGEST_STRING_SIZE], kiln_error **err)
{
  automanifest manifest *m = NULL;
  if (manifest_parse (manifest_data, manifest_len, media_type, &m, err) < 0)
    return -1;
  digest_buffer (manifest_data, manifest_len, digest_out);
  if (!manifest_kind_is_index (m->kind))
    return push_manifest (c, repo, tags, m, manifest_data, manifest_len, digest_out, src, ctx, mount_from, err);
  /* An index: every child image first (each under its digest: a registry
   * refuses an index whose manifests it does not have), then the index.
   * Children go one after the other so blobs they share are uploaded once;
   * each child's layers are parallel. */
  for (size_t i = 0; i < m->n_manifests; i++)
    {
      const manifest_descriptor *d = &m->manifests[i];
      char pbuf[128];
      const char *pname = platform_name (d, pbuf, sizeof pbuf);
      autofree char *data = NULL;
      size_t len = 0;
      automanifest manifest *child = NULL;
      if (read_child (d, src, ctx, &data, &len, err) < 0 || manifest_parse (data, len, d->media_type, &child, err) < 0)
        return kiln_error_wrap (err, "index entry %zu (%s)", i + 1, pname);
      if (manifest_kind_is_index (child->kind))
        return kiln_error_make (err, 0, "index entry %zu (%s): nested index not supported", i + 1, pname);
      log_info ("pushing manifest %zu/%zu %s (%s)", i + 1, m->n_manifests, d->digest, pname);
      if (push_manifest (c, repo, NULL, child, data, len, d->digest, src, ctx, mount_from, err) < 0)
        return kiln_error_wrap (err, "index entry %zu (%s)", i + 1, pname);
    }
  if (!tags || !tags[0])
    return registry_put_manifest (c, repo, digest_out, manifest_data, manifest_len, m->media_type, err);
  for (char *const *t = tags; *t; t++)
    if (registry_put_manifest (c, repo, *t, manifest_data, manifest_len, m->media_type, err) < 0)
      return -1;
  return 0;
}
