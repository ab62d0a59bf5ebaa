/* push.h - push an image (manifest + blobs) to a registry repository.
 *
 * The caller gives the manifest bytes (pushed verbatim, so the digest is
 * exactly the one the caller computed) and a source of blobs by digest (an
 * OCI layout, the layer store, ...). Blobs the registry already has are
 * skipped (HEAD); with mount_from, a missing blob is first mounted from that
 * repository of the same registry; otherwise it is uploaded (POST + one
 * streamed PUT). The manifest is then PUT under every tag (or under its
 * digest when there is none). Layers go up in parallel (TRANSFER_PARALLEL
 * jobs on the pool of transfer.h, one curl multi handle), so open_blob may
 * be called concurrently.
 *
 * An index (OCI image index or Docker manifest list) is pushed whole: each
 * child manifest is read from the source by its digest (open_blob; size and
 * digest checked), its blobs and then the child are pushed under its digest,
 * and finally the index under the tags. digest_out is then the index's.
 */
#ifndef KILN_REGISTRY_PUSH_H
#define KILN_REGISTRY_PUSH_H

#include <stddef.h>
#include <stdint.h>
#include "registry/client.h"
#include "util/digest.h"
#include "util/error.h"

typedef struct registry_push_source
{
  /* Open the blob for reading; *size is its length. The fd is closed by
   * the caller of open_blob. */
  int (*open_blob) (void *ctx, const char *digest, int *fd, int64_t *size, kiln_error **err);
  /* Optional: a repository of the destination registry that holds digest
   * (NULL: none known), tried as a cross-repository mount before the blob
   * is opened. A source that sets it is asked for a blob's bytes only when
   * the destination lacks the blob and the mount did not happen, so its
   * open_blob may fetch them then (build/build_lazy.h). */
  const char *(*mount_from) (void *ctx, const char *digest);
} registry_push_source;

int registry_push_image (registry_client *c, const char *repo, char *const *tags, const char *manifest_data,
                         size_t manifest_len, const char *media_type, const registry_push_source *src, void *ctx,
                         const char *mount_from, char digest_out[DIGEST_STRING_SIZE], kiln_error **err);

#endif
