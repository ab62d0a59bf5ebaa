/* build_from.c - where a step's layers come from: FROM (a base image, a
 * stage, scratch), the base images pulled once per build, and the merged
 * layers of a stage or an image that COPY --from and RUN --mount from=
 * read (see build_internal.h). */
#include "build/build_internal.h"
#include "build/build_lazy.h"
#include "registry/manifest.h"
#include "registry/reference.h"
#include "util/alloc.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- registries and base images ---- */

static int fetch_image_locked (build_exec *b, const char *image, const char *platform,
                               const store_fetch_result **out, kiln_error **err);

/* The store's copy of ref: 1 found (*r filled), 0 not, negative error. */
static int
from_store (build_exec *b, const char *image, const registry_ref *ref, const char *os, const char *arch,
            const char *variant, store_fetch_result *r, kiln_error **err)
{
  int k = store_image_lookup (b->o.store, ref, os, arch, variant, r, err);
  if (k < 0)
    return kiln_error_wrap (err, "base image '%s' in the store", image);
  return k;
}

/* Fetch ref as --pull says; an unreachable registry under ALWAYS falls back
 * to the store's last resolution of the tag, naming the digest used. */
static int
fetch_by_policy (build_exec *b, const char *image, const registry_ref *ref, const char *os, const char *arch,
                 const char *variant, store_fetch_result *r, kiln_error **err)
{
  int k;
  switch (b->o.pull)
    {
    case STORE_PULL_NEVER:
      k = from_store (b, image, ref, os, arch, variant, r, err);
      if (k != 0)
        return k < 0 ? -1 : 0;
      return kiln_error_make (err, ENOENT, "base image '%s' is not in the store and --pull=never forbids pulling "
                              "it (kiln pull --store puts it there)", image);
    case STORE_PULL_MISSING:
      if ((k = from_store (b, image, ref, os, arch, variant, r, err)) != 0)
        return k < 0 ? -1 : 0;
      break;
    case STORE_PULL_ALWAYS:
      break;
    }
  /* With --cache-repo the layers wait until a step needs their files or
   * an output their bytes (build_lazy.h): a cached build needs neither. */
  bool lazy = build_cache_lazy (b->o.cache);
  if (store_fetch_image_mirrored (b->o.store, b->o.reg, b->o.mirrors, ref, os, arch, variant, lazy, r, err) == 0)
    return 0;
  if (b->o.pull != STORE_PULL_ALWAYS || (*err)->kind != KILN_ERROR_UNREACHABLE)
    return kiln_error_wrap (err, "pulling '%s'", image);
  autofree char *why = kiln_error_string (*err);
  autoerror kiln_error *serr = NULL;
  if ((k = from_store (b, image, ref, os, arch, variant, r, &serr)) <= 0)
    return kiln_error_wrap (err, "pulling '%s' (and the store has no earlier copy of it)", image);
  kiln_error_clear (err);
  log_warn ("pulling '%s' failed (%s): using the store's last resolution of it, manifest %s", image, why,
            r->manifest_digest);
  return 0;
}

/* Memoised per (image, platform). Under the lock for the whole fetch, so
 * two stages needing the same base pull it once. */
int
build_from_fetch_image (build_exec *b, const char *image, const char *platform, const store_fetch_result **out,
                        kiln_error **err)
{
  pthread_mutex_lock (&b->lock);
  int r = fetch_image_locked (b, image, platform, out, err);
  pthread_mutex_unlock (&b->lock);
  return r;
}

static int
fetch_image_locked (build_exec *b, const char *image, const char *platform, const store_fetch_result **out,
                    kiln_error **err)
{
  autofree char *key = xasprintf ("%s@%s", image, platform ? platform : "");
  for (size_t i = 0; i < b->n_fetched; i++)
    if (strcmp (b->fetched[i]->key, key) == 0)
      {
        *out = &b->fetched[i]->res;
        return 0;
      }
  autoref registry_ref *ref = NULL;
  if (registry_ref_parse (image, &ref, err) < 0)
    return kiln_error_wrap (err, "base image '%s'", image);
  autofree char *os = NULL, *arch = NULL, *variant = NULL;
  if (platform && platform_parse (platform, &os, &arch, &variant, err) < 0)
    return -1;
  double t0 = now_s ();
  store_fetch_result r;
  memset (&r, 0, sizeof r);
  if (fetch_by_policy (b, image, ref, os, arch, variant, &r, err) < 0)
    return -1;
  b->t_pull += now_s () - t0;
  fetched *f = xzalloc (sizeof *f);
  f->key = steal_pointer (&key);
  f->res = r;
  b->fetched = xreallocarray (b->fetched, b->n_fetched + 1, sizeof *b->fetched);
  b->fetched[b->n_fetched++] = f;
  *out = &f->res;
  return 0;
}

int
build_exec_image_env (void *ctx, const char *image, const char *platform, char ***env, kiln_error **err)
{
  build_exec *b = ctx;
  const store_fetch_result *r;
  *env = NULL;
  if (build_from_fetch_image (b, image, platform, &r, err) < 0)
    return -1;
  image_spec spec;
  image_spec_init (&spec);
  if (image_spec_from_config (&spec, r->config, r->config_len, err) < 0)
    {
      image_spec_free (&spec);
      return kiln_error_wrap (err, "config of '%s'", image);
    }
  *env = steal_pointer (&spec.env);
  image_spec_free (&spec);
  return 0;
}

/* ---- lowers: the merged layers of a stage or an image ---- */

/* This thread's lazy fetch seconds (a stage runs on one thread). */
static __thread double lazy_secs;

double
build_from_lazy_secs (void)
{
  return lazy_secs;
}

int
build_from_fetch_lazy (build_exec *b, const build_layer *layers, size_t n, kiln_error **err)
{
  if (!build_lazy_missing (b->o.store, layers, n, false))
    return 0;
  double t0 = now_s ();
  build_lazy_opts lo = { b->o.store, b->o.reg, b->o.mirrors };
  int r = build_lazy_fetch (&lo, layers, n, false, err);
  double d = now_s () - t0;
  lazy_secs += d;
  add_time (b, &b->t_pull, d);
  return r;
}

/* The layers of a fetched image as a stage's layers (source: the image). */
static build_layer *
image_layers (const char *image, const store_fetch_result *r)
{
  build_layer *v = xcalloc (r->n_layers + 1, sizeof *v);
  autoref registry_ref *ref = NULL;
  autoerror kiln_error *e = NULL;
  autofree char *name = registry_ref_parse (image, &ref, &e) == 0 ? registry_ref_name (ref) : NULL;
  for (size_t i = 0; i < r->n_layers; i++)
    {
      snprintf (v[i].diff_id, sizeof v[i].diff_id, "%s", r->layers[i].diff_id);
      snprintf (v[i].digest, sizeof v[i].digest, "%s", r->layers[i].digest);
      v[i].media_type = xstrdup (r->layers[i].media_type);
      v[i].size = r->layers[i].size;
      v[i].source = name ? xasprintf ("%s@%s", name, r->manifest_digest) : NULL;
    }
  return v;
}

static void
image_layers_free (build_layer *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    {
      free (v[i].media_type);
      free (v[i].source);
    }
  free (v);
}

int
build_from_stage_lower (build_exec *b, const stage_state *st, overlay_lower **out, kiln_error **err)
{
  if (build_from_fetch_lazy (b, st->layers, st->n_layers, err) < 0)
    return -1;
  autofree char **ids = xcalloc (st->n_layers + 1, sizeof *ids);
  for (size_t i = 0; i < st->n_layers; i++)
    ids[i] = (char *) st->layers[i].diff_id;
  return overlay_lower_open_store (b->o.store, ids, st->n_layers, out, err);
}

const char *
build_from_stage_platform (const build_exec *b, const stage_state *st)
{
  ptrdiff_t i = st - b->stages;
  return i >= 0 && (size_t) i < b->p->n_stages ? b->p->stages[i].platform : NULL;
}

int
build_from_image_lower (build_exec *b, const stage_state *st, const char *image, overlay_lower **out,
                        kiln_error **err)
{
  const store_fetch_result *fr;
  if (build_from_fetch_image (b, image, build_from_stage_platform (b, st), &fr, err) < 0)
    return -1;
  build_layer *v = image_layers (image, fr);
  int r = build_from_fetch_lazy (b, v, fr->n_layers, err);
  image_layers_free (v, fr->n_layers);
  if (r < 0)
    return -1;
  autofree char **ids = xcalloc (fr->n_layers + 1, sizeof *ids);
  for (size_t i = 0; i < fr->n_layers; i++)
    ids[i] = (char *) fr->layers[i].diff_id;
  return overlay_lower_open_store (b->o.store, ids, fr->n_layers, out, err);
}

int
build_from_find_stage (build_exec *b, const char *from)
{
  char *end;
  long idx = strtol (from, &end, 10);
  for (size_t i = 0; i < b->p->n_stages; i++)
    {
      const plan_stage *ps = &b->p->stages[i];
      if ((*from && !*end && idx == (long) i) || (ps->name && strcasecmp (ps->name, from) == 0))
        return (int) i;
    }
  return -1;
}

/* ---- FROM ---- */

static int
stage_from_base (build_exec *b, const plan_stage *ps, stage_state *st, kiln_error **err);

int
build_from_stage (build_exec *b, const plan_stage *ps, stage_state *st, kiln_error **err)
{
  int r = stage_from_base (b, ps, st, err);
  st->n_base_layers = st->n_layers;
  return r;
}

static int
stage_from_base (build_exec *b, const plan_stage *ps, stage_state *st, kiln_error **err)
{
  image_spec_init (&st->spec);
  if (ps->base_stage >= 0)
    {
      stage_state *base = &b->stages[ps->base_stage];
      autofree char *cfg = NULL;
      size_t len;
      if (image_config_json (&base->spec, &cfg, &len, err) < 0 || image_spec_from_config (&st->spec, cfg, len, err) < 0)
        return kiln_error_wrap (err, "FROM stage '%s'", ps->base);
      for (size_t i = 0; i < base->n_layers; i++)
        {
          build_exec_add_layer (st, base->layers[i].diff_id, base->layers[i].digest, base->layers[i].media_type,
                                base->layers[i].size);
          if (base->layers[i].origin)
            st->layers[st->n_layers - 1].origin = xstrdup (base->layers[i].origin);
          if (base->layers[i].source)
            st->layers[st->n_layers - 1].source = xstrdup (base->layers[i].source);
        }
      build_key_stage (b, st, "from-stage", base->key);
      return 0;
    }
  autofree char *os = NULL, *arch = NULL, *variant = NULL;
  if (platform_parse (ps->platform, &os, &arch, &variant, err) < 0)
    return -1;
  if (ps->scratch)
    {
      st->spec.os = xstrdup (os);
      st->spec.architecture = xstrdup (arch);
      st->spec.variant = variant ? xstrdup (variant) : NULL;
      build_key_stage (b, st, "scratch", ps->platform);
      return 0;
    }
  const store_fetch_result *r;
  if (build_from_fetch_image (b, ps->base, ps->platform, &r, err) < 0)
    return -1;
  if (image_spec_from_config (&st->spec, r->config, r->config_len, err) < 0)
    return kiln_error_wrap (err, "config of '%s'", ps->base);
  build_layer *v = image_layers (ps->base, r);
  for (size_t i = 0; i < r->n_layers; i++)
    {
      build_exec_add_layer (st, v[i].diff_id, v[i].digest,
                            mediatype_layer_for_format (v[i].media_type, b->o.format == IMAGE_FORMAT_DOCKER), v[i].size);
      st->layers[st->n_layers - 1].source = steal_pointer (&v[i].source);
    }
  image_layers_free (v, r->n_layers);
  if (st->spec.architecture && strcmp (st->spec.architecture, arch) != 0)
    log_warn ("base image '%s' is %s/%s, not the requested %s", ps->base, st->spec.os ? st->spec.os : "?",
              st->spec.architecture, ps->platform);
  build_key_stage (b, st, "from-image", r->manifest_digest);
  return 0;
}
