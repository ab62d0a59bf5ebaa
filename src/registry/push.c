/* push.c - image push (see push.h). */
#include "registry/push.h"

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
  for (size_t i = 0; i < m->n_layers; i++)
    if (push_one (c, repo, &m->layers[i], src, ctx, mount_from, err) < 0)
      return -1;
  digest_buffer (manifest_data, manifest_len, digest_out);
  if (!tags || !tags[0])
    return registry_put_manifest (c, repo, digest_out, manifest_data, manifest_len, m->media_type, err);
  for (char *const *t = tags; *t; t++)
    if (registry_put_manifest (c, repo, *t, manifest_data, manifest_len, m->media_type, err) < 0)
      return -1;
  return 0;
}
