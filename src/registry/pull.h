/* pull.h - pull an image from a registry into a consumer (OCI layout, the
 * layer store, ...).
 *
 * registry_pull fetches the manifest (following an index to the requested
 * platform), then the config blob, then each layer, and hands every blob to
 * the consumer as a stream: blob_begin, blob_data (chunks as they arrive from
 * the network, the running SHA-256 checked by the client), blob_end (ok=true
 * only when size and digest matched). On any failure blob_end(ok=false) is
 * called and the consumer must drop what it received, so nothing partial is
 * ever kept. A consumer that already has a blob says so in have_blob and the
 * download is skipped. This is the hook for the layer store: its blob_data
 * can feed a decompressor and tar extractor directly (pipelined), keyed by
 * the descriptor's digest and media type (mediatype_layer_compression).
 *
 * Layers download in parallel (TRANSFER_PARALLEL jobs on the shared pool of
 * transfer.h, all requests on one curl multi handle): the consumer's
 * callbacks may run concurrently for different blobs (never for the same
 * blob), so they must be thread-safe. Each blob's callbacks run on its job
 * thread, not on the network I/O thread. The config blob and manifests come
 * from the calling thread.
 */
#ifndef KILN_REGISTRY_PULL_H
#define KILN_REGISTRY_PULL_H

#include <stdbool.h>
#include <stddef.h>
#include "registry/client.h"
#include "registry/manifest.h"
#include "registry/reference.h"
#include "util/error.h"

typedef enum
{
  REGISTRY_BLOB_CONFIG,
  REGISTRY_BLOB_LAYER,
} registry_blob_kind;

typedef struct registry_pull_consumer
{
  /* 1 if the consumer already has this blob (skip the download), 0 if not. */
  int (*have_blob) (void *ctx, const manifest_descriptor *d, kiln_error **err);
  int (*blob_begin) (void *ctx, registry_blob_kind kind, const manifest_descriptor *d, void **blob,
                     kiln_error **err);
  int (*blob_data) (void *blob, const void *data, size_t len, kiln_error **err);
  /* ok=false: discard everything received for this blob. Always called once
   * after a successful blob_begin. */
  int (*blob_end) (void *blob, bool ok, kiln_error **err);
  /* The manifest bytes (and the index's, if one was followed), verified. */
  int (*manifest) (void *ctx, const char *data, size_t len, const char *media_type, const char *digest,
                   kiln_error **err);
} registry_pull_consumer;

typedef struct registry_pull_result
{
  char *manifest_digest; /* digest of the image manifest (not the index) */
  char *media_type;      /* its media type */
  int64_t manifest_size;
  char *index_digest;    /* the index followed, or NULL */
  manifest *manifest;    /* the parsed image manifest */
} registry_pull_result;

void registry_pull_result_clear (registry_pull_result *r);

/* Pull ref (tag or digest). os/arch/variant select from an index (NULL: the
 * host platform). */
int registry_pull (registry_client *c, const registry_ref *ref, const char *os, const char *arch,
                   const char *variant, const registry_pull_consumer *consumer, void *ctx,
                   registry_pull_result *out, kiln_error **err);

#endif
