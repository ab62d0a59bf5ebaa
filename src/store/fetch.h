/* fetch.h - pull a registry image into the layer store (FROM <image>).
 *
 * store_fetch_image is a registry_pull consumer over the store:
 *   - each layer blob streams from the network into two places at once: a
 *     temp file in tmp/ (the compressed blob, kept for re-pushing base
 *     layers without recompression) and a bounded in-memory queue read by
 *     an extraction thread (download -> decompress -> extract pipelined, no
 *     temporary tarball). The blob is published into blobs/ and the layer
 *     into layers/ only after the registry client verified size and digest
 *     (blob_end ok) and the extractor verified the blob digest and found the
 *     diffID in the config's rootfs.diff_ids. Anything else leaves only
 *     tmp/ entries, removed at once (or, after a kill -9, by the next
 *     store_open that finds the store idle);
 *   - a layer whose blob is known (store_layer_for_blob) and whose blob file
 *     is stored is not downloaded at all; a layer whose blob is stored but
 *     not extracted is extracted from the stored blob (no network);
 *   - extraction runs under the store's per-layer lock, so two processes
 *     fetching the same image both succeed and each layer is extracted once
 *     (the second finds it published and only keeps the blob). The
 *     streaming extractor only tries the lock: when it is held elsewhere the
 *     download goes on into the temp blob alone (never stalled behind the
 *     other extraction), and at blob_end the fetch waits for the lock and
 *     extracts from the complete temp blob if the layer did not appear;
 *   - the config and manifest (and the index, if one was followed) go to
 *     blobs/, and refs/ gets "image/<normalised ref>@<os>/<arch>[/<variant>]"
 *     -> manifest digest, so the image is kept by prune and can be found
 *     offline with store_image_lookup.
 * Complete, verified blobs and layers of a pull that fails later stay in
 * the store (a retry does not download them again; prune removes them if no
 * ref reaches them); partial ones never appear outside tmp/.
 *
 * Progress: one info line per layer with the short digest, the size and
 * "cached" / "extracted from stored blob" / "downloaded" with the rate.
 */
#ifndef KILN_STORE_FETCH_H
#define KILN_STORE_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "registry/client.h"
#include "registry/push.h"
#include "registry/reference.h"
#include "store/store.h"
#include "util/digest.h"
#include "util/error.h"

typedef enum
{
  STORE_FETCH_DOWNLOADED, /* blob downloaded (and extracted unless already there) */
  STORE_FETCH_CACHED,     /* blob and layer already in the store: no network */
  STORE_FETCH_LOCAL_BLOB, /* blob was stored, layer extracted from it: no network */
  STORE_FETCH_LAZY,       /* store_fetch_image_lazy: not in the store, not fetched; diff_id is the
                           * config's (verified when the layer is fetched) */
} store_fetch_how;

typedef struct store_fetch_layer
{
  char digest[DIGEST_STRING_SIZE];  /* compressed blob digest (manifest) */
  char diff_id[DIGEST_STRING_SIZE]; /* verified against the config */
  char *media_type;
  int64_t size;                     /* blob size (manifest) */
  store_fetch_how how;
  bool extracted;                   /* this call extracted and published it
                                     * (false: found already extracted) */
} store_fetch_layer;

typedef struct store_fetch_result
{
  char manifest_digest[DIGEST_STRING_SIZE];
  char *manifest_media_type;
  char *manifest;                   /* manifest bytes (NUL-terminated) */
  size_t manifest_len;
  char index_digest[DIGEST_STRING_SIZE]; /* "" when no index was followed */
  char config_digest[DIGEST_STRING_SIZE];
  char *config_media_type;
  char *config;                     /* config JSON bytes (NUL-terminated) */
  size_t config_len;
  store_fetch_layer *layers;        /* in manifest order */
  size_t n_layers;
  char *os, *arch, *variant;        /* from the config (variant may be NULL) */
  char *ref_name;                   /* the refs/ name recorded */
  uint64_t bytes_downloaded;        /* layer + config bytes fetched */
} store_fetch_result;

/* Frees everything the result owns and zeroes it (safe on a zeroed one). */
void store_fetch_result_clear (store_fetch_result *r);

/* Pull ref into s (see above). os/arch/variant choose from an index (NULL:
 * the host platform, like registry_pull). *out is filled on success and
 * owned by the caller (store_fetch_result_clear); on failure it is left
 * zeroed. Errors name the registry, repository and layer. Thread-safe for
 * different calls (each with its own client); s may be shared. The ref
 * recorded is store_fetch_ref_name (ref, os, arch, variant): when fetching
 * from a mirror, record the original name too (store_set_ref). */
int store_fetch_image (store *s, registry_client *c, const registry_ref *ref, const char *os, const char *arch,
                       const char *variant, store_fetch_result *out, kiln_error **err);

/* store_fetch_image for what needs only the image's config (a build's
 * FROM or cache entry whose files may never be read, see
 * docs/design/store.md "Lazy layers"): the manifest and config are fetched
 * and stored, the ref recorded, and a layer whose blob is not stored is
 * left where it is (how = STORE_FETCH_LAZY). A later store_fetch_image of
 * the same manifest by digest fetches exactly those layers. Layers already
 * stored are reported as store_fetch_image reports them. */
int store_fetch_image_lazy (store *s, registry_client *c, const registry_ref *ref, const char *os, const char *arch,
                            const char *variant, store_fetch_result *out, kiln_error **err);

/* store_fetch_image (lazy: store_fetch_image_lazy) with registry mirrors (kaniko's --registry-mirror): a
 * docker.io reference is tried on each mirror in turn (a failure is logged
 * as a warning), then on docker.io itself (not with reg->mirrors_only);
 * other registries are fetched directly, except those a "SRC=HOST" entry
 * of mirrors (kaniko's --registry-map) names, which go to HOST first. A mirror pull is also recorded under the docker.io name, so an
 * offline lookup of the original reference finds it. Clients are made from
 * reg for each host. */
int store_fetch_image_mirrored (store *s, const registry_options *reg, char *const *mirrors, const registry_ref *ref,
                                const char *os, const char *arch, const char *variant, bool lazy,
                                store_fetch_result *out, kiln_error **err);

/* The refs/ name store_fetch_image records for ref and the requested
 * platform (NULL parts: the host's). Caller frees. */
char *store_fetch_ref_name (const registry_ref *ref, const char *os, const char *arch, const char *variant);

/* Offline: fill *out from what an earlier store_fetch_image recorded for
 * ref and platform, without any network. Returns 1 if found and complete
 * (manifest and config blobs stored, every layer extracted), 0 if not
 * (nothing recorded, or something was pruned), negative on error (a stored
 * blob that fails to parse or to verify). */
int store_image_lookup (store *s, const registry_ref *ref, const char *os, const char *arch, const char *variant,
                        store_fetch_result *out, kiln_error **err);

/* When an image is fetched from its registry rather than taken from the
 * store (kiln build --pull, kiln run --pull). */
typedef enum store_pull_policy
{
  STORE_PULL_ALWAYS = 0,   /* resolve the tag again (unchanged layers are not downloaded) */
  STORE_PULL_MISSING,      /* the store's copy if there is one */
  STORE_PULL_NEVER,        /* the store only */
} store_pull_policy;

/* "always|missing|never". */
int store_parse_pull_policy (const char *s, store_pull_policy *out, kiln_error **err);

/* Layer blobs every fetch of this process downloaded so far, and their
 * bytes (a build's summary: a cached build with lazy layers downloads
 * none). */
void store_fetch_downloaded (uint64_t *layers, uint64_t *bytes);

/* Blob source for registry_push_image over the store (ctx is the store *):
 * open_blob opens blobs/sha256/HEX and reports its size. */
const registry_push_source *store_push_source (void);

#endif
