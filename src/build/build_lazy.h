/* build_lazy.h - lazy layers: a layer a build knows by its digests but has
 * not fetched (a base image's layer, a --cache-repo entry's layer; see
 * build_layer.source and docs/design/build.md "Lazy layers").
 *
 * A cache hit needs only the layer's digests; whoever needs its files (a
 * step that misses, COPY --from, squash, attestations) or its blob (the
 * OCI layout, the docker archive, an upload to a registry that lacks it)
 * asks for it here, and it is fetched then from the image that lists it
 * (store_fetch_image by manifest digest: verified, extracted, published by
 * the store's protocol). A push names, for each blob, the repository of
 * the destination registry that holds it, so the registry mounts it
 * instead of kiln downloading and uploading it.
 */
#ifndef KILN_BUILD_BUILD_LAZY_H
#define KILN_BUILD_BUILD_LAZY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include "build/build_exec.h"
#include "registry/client.h"
#include "registry/push.h"
#include "store/store.h"
#include "util/error.h"

/* Where lazy layers are fetched from. */
typedef struct build_lazy_opts
{
  store *store;
  const registry_options *reg;
  char *const *mirrors;
} build_lazy_opts;

/* Fetch what layers[0..n) lack in the store: their files (extracted
 * layers), and with blobs their blobs too. Layers without a source (made
 * by this build) must be there already. Each source image is fetched
 * once; a layer still missing after its image was fetched, or a blob the
 * registry no longer has, is an error naming registry, repository and
 * digest. Thread-safe (the store's locks). */
int build_lazy_fetch (const build_lazy_opts *o, const build_layer *layers, size_t n, bool blobs, kiln_error **err);

/* Whether a layer of layers[0..n) is not in the store (files, or blobs). */
bool build_lazy_missing (store *s, const build_layer *layers, size_t n, bool blobs);

/* A blob source for registry_push_image to a registry at domain: the
 * store's blobs; a lazy layer's blob is mounted from its source repository
 * when that is on the same registry, else fetched when the registry asks
 * for its bytes. */
typedef struct build_lazy_push
{
  build_lazy_opts o;
  const char *domain;           /* the destination registry */
  build_layer *layers;          /* res's layers (an index: its images'), borrowed */
  size_t n;
  char **from;                  /* per layer: its source repository on domain, or NULL */
  pthread_mutex_t lock;         /* push jobs run in parallel */
} build_lazy_push;

/* res: an image, or an index with its images. */
void build_lazy_push_init (build_lazy_push *p, const build_lazy_opts *o, const char *domain,
                           const build_result *res);
void build_lazy_push_clear (build_lazy_push *p);
const registry_push_source *build_lazy_push_source (void);

#endif
