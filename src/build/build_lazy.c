/* build_lazy.c - lazy layers (see build_lazy.h). */
#include "build/build_lazy.h"
#include "registry/reference.h"
#include "store/fetch.h"
#include "util/alloc.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool
layer_missing (store *s, const build_layer *l, bool blobs)
{
  return !store_has_layer (s, l->diff_id) || (blobs && !store_has_blob (s, l->digest));
}

bool
build_lazy_missing (store *s, const build_layer *layers, size_t n, bool blobs)
{
  for (size_t i = 0; i < n; i++)
    if (layer_missing (s, &layers[i], blobs))
      return true;
  return false;
}

/* The image source, fetched whole: what it lacks is downloaded, verified
 * and extracted (store_fetch_image); what the store has costs nothing. */
static int
fetch_source (const build_lazy_opts *o, const char *source, size_t n_layers, kiln_error **err)
{
  autoref registry_ref *ref = NULL;
  if (registry_ref_parse (source, &ref, err) < 0)
    return kiln_error_wrap (err, "lazy layer source '%s'", source);
  log_info ("fetching %zu layer%s of %s (not fetched while steps hit the cache)", n_layers, n_layers == 1 ? "" : "s",
            source);
  store_fetch_result r = { 0 };
  if (store_fetch_image_mirrored (o->store, o->reg, o->mirrors, ref, NULL, NULL, NULL, false, &r, err) < 0)
    return kiln_error_wrap (err, "registry '%s', repository '%s'", ref->domain, ref->path);
  store_fetch_result_clear (&r);
  return 0;
}

int
build_lazy_fetch (const build_lazy_opts *o, const build_layer *layers, size_t n, bool blobs, kiln_error **err)
{
  autofree bool *done = xcalloc (n + 1, sizeof *done);
  for (size_t i = 0; i < n; i++)
    {
      const build_layer *l = &layers[i];
      if (done[i] || !layer_missing (o->store, l, blobs))
        continue;
      if (!l->source)
        return kiln_error_make (err, ENOENT, "layer %s (%s) is not in the store '%s' and has no source to fetch it "
                                "from", l->digest, l->diff_id, o->store->root);
      size_t k = 0;
      for (size_t j = i; j < n; j++)
        if (!done[j] && layers[j].source && strcmp (layers[j].source, l->source) == 0)
          {
            done[j] = true;
            k++;
          }
      if (fetch_source (o, l->source, k, err) < 0)
        return kiln_error_wrap (err, "fetching layer %s", l->digest);
    }
  for (size_t i = 0; i < n; i++)
    if (layer_missing (o->store, &layers[i], blobs))
      return kiln_error_make (err, ENOENT, "layer %s (%s) is still not in the store after fetching '%s'",
                              layers[i].digest, layers[i].diff_id, layers[i].source ? layers[i].source : "");
  return 0;
}

/* ---- push ---- */

static char *source_repo_on (const char *source, const char *domain);

void
build_lazy_push_init (build_lazy_push *p, const build_lazy_opts *o, const char *domain, const build_result *res)
{
  memset (p, 0, sizeof *p);
  p->o = *o;
  p->domain = domain;
  pthread_mutex_init (&p->lock, NULL);
  size_t n = res->layers ? res->n_layers : 0;
  for (size_t i = 0; i < res->n_images; i++)
    n += res->images[i].n_layers;
  p->layers = xcalloc (n + 1, sizeof *p->layers);
  for (size_t i = 0; res->layers && i < res->n_layers; i++)
    p->layers[p->n++] = res->layers[i];
  for (size_t i = 0; i < res->n_images; i++)
    for (size_t j = 0; j < res->images[i].n_layers; j++)
      p->layers[p->n++] = res->images[i].layers[j];
  p->from = xcalloc (p->n + 1, sizeof *p->from);
  for (size_t i = 0; i < p->n; i++)
    p->from[i] = source_repo_on (p->layers[i].source, domain);
}

void
build_lazy_push_clear (build_lazy_push *p)
{
  for (size_t i = 0; i < p->n; i++)
    free (p->from[i]);
  free (p->from);
  free (p->layers);
  pthread_mutex_destroy (&p->lock);
  memset (p, 0, sizeof *p);
}

static const build_layer *
find_layer (const build_lazy_push *p, const char *digest)
{
  for (size_t i = 0; i < p->n; i++)
    if (strcmp (p->layers[i].digest, digest) == 0)
      return &p->layers[i];
  return NULL;
}

/* The source repository of a lazy layer when it is on the destination
 * registry ("DOMAIN/PATH@sha256:..." -> PATH). A blob the store has is
 * mounted from there too: cheaper than an upload. */
static char *
source_repo_on (const char *source, const char *domain)
{
  size_t dl = strlen (domain);
  if (!source || strncmp (source, domain, dl) != 0 || source[dl] != '/')
    return NULL;
  const char *path = source + dl + 1;
  const char *at = strchr (path, '@');
  return at ? xstrndup (path, (size_t) (at - path)) : NULL;
}

static const char *
push_mount_from (void *ctx, const char *digest)
{
  build_lazy_push *p = ctx;
  for (size_t i = 0; i < p->n; i++)
    if (strcmp (p->layers[i].digest, digest) == 0)
      return p->from[i];
  return NULL;
}

static int
push_open_blob (void *ctx, const char *digest, int *fd, int64_t *size, kiln_error **err)
{
  build_lazy_push *p = ctx;
  const build_layer *l = find_layer (p, digest);
  if (l && l->source && !store_has_blob (p->o.store, digest))
    {
      /* The destination lacks it and could not mount it: its bytes, from
       * where the build found it (digest-verified into the store). */
      pthread_mutex_lock (&p->lock);
      int r = build_lazy_fetch (&p->o, l, 1, true, err);
      pthread_mutex_unlock (&p->lock);
      if (r < 0)
        return -1;
    }
  return store_push_source ()->open_blob (p->o.store, digest, fd, size, err);
}

static const registry_push_source lazy_source = { .open_blob = push_open_blob, .mount_from = push_mount_from };

const registry_push_source *
build_lazy_push_source (void)
{
  return &lazy_source;
}
