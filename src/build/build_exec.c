/* build_exec.c - the build engine (see build_exec.h). */
#include "build/build_exec.h"
#include "build/build_cache.h"
#include "build/copy.h"
#include "build/dockerignore.h"
#include "build/rootfs.h"
#include "build/run_mounts.h"
#include "build/squash.h"
#include "build/url_fetch.h"
#include "overlay/overlay.h"
#include "overlay/overlay_lower.h"
#include "registry/manifest.h"
#include "registry/reference.h"
#include "sandbox/seccomp_profile.h"
#include "store/extract.h"
#include "store/fetch.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/units.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct fetched
{
  char *key;                 /* "REF@PLATFORM" */
  store_fetch_result res;    /* address stable: stages keep pointers */
} fetched;

typedef struct stage_state
{
  bool built;
  image_spec spec;
  build_layer *layers;
  size_t n_layers;
  bool cmd_set;               /* CMD given in this stage (ENTRYPOINT then keeps it) */
  char key[DIGEST_STRING_SIZE]; /* build cache key of the state so far */
  size_t n_base_layers;       /* layers that came with FROM */
  int step_id;                /* progress id of the step being run */
  double pack_secs;           /* time this stage spent packing layers */
  /* The step being run (stages may run in parallel, each on its own
   * thread): its cache key under construction, and where its result came
   * from ("local"/"registry"; NULL: built). */
  build_cache_key ckey;
  bool ckey_open;
  const char *cached;
  struct run_session *rs;     /* the mount consecutive RUN steps share */
} stage_state;

struct build_exec
{
  build_exec_opts o;
  fetched **fetched;
  size_t n_fetched;
  int ctxfd;
  dockerignore *ign;
  sandbox_idmap idmap;
  bool idmap_ready;
  seccomp_filter *filter;
  bool filter_ready;
  plan *p;
  stage_state *stages;
  build_result *res;
  double t_pull;             /* fetches, also those made while planning */
  /* Parallel stages: lock for fetched, the lazily made sandbox pieces and
   * the phase times; failed stops the other stages between steps. */
  pthread_mutex_t lock;
  volatile bool failed;
};

static void
add_time (build_exec *b, double *field, double secs)
{
  pthread_mutex_lock (&b->lock);
  *field += secs;
  pthread_mutex_unlock (&b->lock);
}

static double
now_s (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

void
build_result_clear (build_result *r)
{
  free (r->manifest);
  for (size_t i = 0; i < r->n_layers; i++)
    free (r->layers[i].media_type);
  free (r->layers);
  memset (r, 0, sizeof *r);
}

int
build_exec_new (const build_exec_opts *opts, build_exec **out, kiln_error **err)
{
  build_exec *b = xzalloc (sizeof *b);
  b->o = *opts;
  pthread_mutex_init (&b->lock, NULL);
  b->ctxfd = -1;
  if (opts->context_dir)
    {
      b->ctxfd = open (opts->context_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (b->ctxfd < 0)
        {
          int e = errno;
          free (b);
          return kiln_error_make (err, e, "open build context '%s'", opts->context_dir);
        }
      if (dockerignore_load (opts->context_dir, opts->dockerfile_path, &b->ign, err) < 0)
        {
          build_exec_free (b);
          return kiln_error_wrap (err, "loading .dockerignore");
        }
    }
  *out = b;
  return 0;
}

static void
stage_state_clear (stage_state *s)
{
  image_spec_free (&s->spec);
  for (size_t i = 0; i < s->n_layers; i++)
    free (s->layers[i].media_type);
  free (s->layers);
  memset (s, 0, sizeof *s);
}

void
build_exec_free (build_exec *b)
{
  if (!b)
    return;
  for (size_t i = 0; i < b->n_fetched; i++)
    {
      free (b->fetched[i]->key);
      store_fetch_result_clear (&b->fetched[i]->res);
      free (b->fetched[i]);
    }
  free (b->fetched);
  pthread_mutex_destroy (&b->lock);
  if (b->ctxfd >= 0)
    close (b->ctxfd);
  dockerignore_free (b->ign);
  seccomp_filter_free (b->filter);
  free (b);
}

/* ---- registries and base images ---- */

static int fetch_image_locked (build_exec *b, const char *image, const char *platform,
                               const store_fetch_result **out, kiln_error **err);

/* Memoised per (image, platform). Under the lock for the whole fetch, so
 * two stages needing the same base pull it once. */
static int
fetch_image (build_exec *b, const char *image, const char *platform, const store_fetch_result **out,
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
  if (platform && manifest_parse_platform (platform, &os, &arch, &variant, err) < 0)
    return -1;
  double t0 = now_s ();
  store_fetch_result r;
  memset (&r, 0, sizeof r);
  if (store_fetch_image_mirrored (b->o.store, b->o.reg, b->o.mirrors, ref, os, arch, variant, &r, err) < 0)
    return kiln_error_wrap (err, "pulling '%s'", image);
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
  if (fetch_image (b, image, platform, &r, err) < 0)
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

/* Layer media types follow the output format; the blob bytes are the same. */
static const char *
media_type_for_format (const char *mt, image_format f)
{
  static const char *const pairs[][2] = {
    { "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip" },
    { "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.docker.image.rootfs.diff.tar.zstd" },
    { "application/vnd.oci.image.layer.v1.tar", "application/vnd.docker.image.rootfs.diff.tar" },
  };
  for (size_t i = 0; i < ARRAY_SIZE (pairs); i++)
    for (int k = 0; k < 2; k++)
      if (strcmp (mt, pairs[i][k]) == 0)
        return pairs[i][f == IMAGE_FORMAT_DOCKER ? 1 : 0];
  return mt;
}

static void
stage_add_layer (stage_state *st, const char *diff_id, const char *digest, const char *media_type, int64_t size)
{
  st->layers = xreallocarray (st->layers, st->n_layers + 1, sizeof *st->layers);
  build_layer *l = &st->layers[st->n_layers++];
  memset (l, 0, sizeof *l);
  snprintf (l->diff_id, sizeof l->diff_id, "%s", diff_id);
  snprintf (l->digest, sizeof l->digest, "%s", digest);
  l->media_type = xstrdup (media_type);
  l->size = size;
}

/* ---- layers ---- */

static int64_t
created_time (build_exec *b)
{
  return b->o.reproducible ? b->o.epoch : (int64_t) time (NULL);
}

static int
open_lower (build_exec *b, const stage_state *st, overlay_lower **out, kiln_error **err)
{
  autofree char **ids = xcalloc (st->n_layers + 1, sizeof *ids);
  for (size_t i = 0; i < st->n_layers; i++)
    ids[i] = (char *) st->layers[i].diff_id;
  return overlay_lower_open_store (b->o.store, ids, st->n_layers, out, err);
}

/* The merged layers of an image (fetched into the store if needed): COPY
 * --from=IMAGE and RUN --mount=type=bind,from=IMAGE. */
static int
open_image_lower (build_exec *b, const char *image, overlay_lower **out, kiln_error **err)
{
  const store_fetch_result *fr;
  if (fetch_image (b, image, NULL, &fr, err) < 0)
    return -1;
  autofree char **ids = xcalloc (fr->n_layers + 1, sizeof *ids);
  for (size_t i = 0; i < fr->n_layers; i++)
    ids[i] = (char *) fr->layers[i].diff_id;
  return overlay_lower_open_store (b->o.store, ids, fr->n_layers, out, err);
}

static ssize_t
read_fd_cb (void *ctx, void *buf, size_t len, kiln_error **err)
{
  return extract_read_fd (ctx, buf, len, err);
}

/* A step result taken from the build cache (or just recorded in it). */
static void
apply_entry (build_exec *b, stage_state *st, const build_cache_entry *e, const char *created_by)
{
  if (e->empty)
    {
      image_spec_add_history (&st->spec, created_time (b), created_by, NULL, true);
      return;
    }
  stage_add_layer (st, e->diff_id, e->digest, media_type_for_format (e->media_type, b->o.format), e->size);
  strv_push (&st->spec.diff_ids, e->diff_id);
  image_spec_add_history (&st->spec, created_time (b), created_by, NULL, false);
}

static int
write_layer (build_exec *b, stage_state *st, const layer_change *ch, size_t n, build_cache_entry *e,
             kiln_error **err);

/* Finish the current step's key into out (nothing when the cache is off). */
static void
key_finish (stage_state *st, char out[DIGEST_STRING_SIZE])
{
  if (!st->ckey_open)
    return;
  build_cache_key_end (&st->ckey, out);
  st->ckey_open = false;
}

static bool
cache_wanted (build_exec *b, bool run)
{
  return build_cache_wants (b->o.cache, run);
}

/* The stage's key after a step: the step's key and what it produced, so
 * a step that had to run again and made a different layer (an expired or
 * pruned entry, a non-deterministic command) invalidates what follows
 * instead of stacking old layers on a new parent. */
static void
chain_result (stage_state *st, const char *key, const build_cache_entry *e)
{
  build_cache_key k;
  build_cache_key_begin (&k, key);
  build_cache_key_add (&k, "result", e->empty ? "empty" : e->diff_id);
  build_cache_key_end (&k, st->key);
}

/* Look the finished key up; on a hit apply the entry. 1 hit, 0 miss. */
static int
cache_try (build_exec *b, stage_state *st, const char *key, bool run, const char *created_by, kiln_error **err)
{
  if (!*key || !cache_wanted (b, run))
    return 0;
  build_cache_entry e;
  const char *where = NULL;
  int r = build_cache_lookup (b->o.cache, key, st->spec.os, st->spec.architecture, &e, &where, err);
  if (r <= 0)
    return r;
  apply_entry (b, st, &e, created_by);
  chain_result (st, key, &e);
  st->cached = where;
  return 1;
}

/* After a step that was built: record it under key (if its kind is
 * cached) and chain its result into the stage key. */
static int
cache_done (build_exec *b, stage_state *st, const char *key, bool run, const build_cache_entry *e,
            const char *created_by, kiln_error **err)
{
  if (!*key)
    return 0;
  chain_result (st, key, e);
  if (!cache_wanted (b, run))
    return 0;
  return build_cache_record (b->o.cache, key, st->spec.os, st->spec.architecture, e, created_by, err);
}

/* Write changes as a new layer of st: blob into the store, extracted so the
 * next step can stack on it, diffID and history recorded. The step's cache
 * key is final_key (RUN: known before the step ran) or the open key with
 * the change list folded in (COPY/ADD/WORKDIR: their sources' content). */
/* kaniko's --ignore-path: is path (layer form, "a/b") at or below one? */
static bool
ignored_path (build_exec *b, const char *path)
{
  for (char **p = b->o.ignore_paths; p && *p; p++)
    {
      const char *ip = *p;
      while (*ip == '/')
        ip++;
      size_t l = strlen (ip);
      while (l && ip[l - 1] == '/')
        l--;
      if (l && strncmp (path, ip, l) == 0 && (path[l] == '\0' || path[l] == '/'))
        return true;
    }
  return false;
}

static int commit_layer_filtered (build_exec *b, stage_state *st, const layer_change *ch, size_t n,
                                  const char *created_by, const char *final_key, bool run, kiln_error **err);

static int
commit_layer (build_exec *b, stage_state *st, const layer_change *ch, size_t n, const char *created_by,
              const char *final_key, bool run, kiln_error **err)
{
  if (!b->o.ignore_paths)
    return commit_layer_filtered (b, st, ch, n, created_by, final_key, run, err);
  autofree layer_change *kept = xcalloc (n + 1, sizeof *kept);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (!ignored_path (b, ch[i].path) && !(ch[i].hardlink_target && ignored_path (b, ch[i].hardlink_target)))
      kept[k++] = ch[i];
  if (k < n)
    log_debug ("--ignore-path: %zu of %zu changes left out of the layer", n - k, n);
  return commit_layer_filtered (b, st, kept, k, created_by, final_key, run, err);
}

static int
commit_layer_filtered (build_exec *b, stage_state *st, const layer_change *ch, size_t n, const char *created_by,
                       const char *final_key, bool run, kiln_error **err)
{
  char key[DIGEST_STRING_SIZE] = "";
  if (final_key)
    snprintf (key, sizeof key, "%s", final_key);
  else if (st->ckey_open)
    {
      if (build_cache_key_add_changes (&st->ckey, ch, n, err) < 0)
        return kiln_error_wrap (err, "computing the build cache key");
      key_finish (st, key);
      int r = cache_try (b, st, key, run, created_by, err);
      if (r != 0)
        return r < 0 ? -1 : 0;
    }
  build_cache_entry e = { .empty = n == 0 };
  if (n && write_layer (b, st, ch, n, &e, err) < 0)
    return -1;
  apply_entry (b, st, &e, created_by);
  return cache_done (b, st, key, run, &e, created_by, err);
}

static int
write_layer (build_exec *b, stage_state *st, const layer_change *ch, size_t n, build_cache_entry *e,
             kiln_error **err)
{
  double t0 = now_s ();
  int fd = -1;
  autofree char *tmp = NULL;
  if (store_blob_tmpfile (b->o.store, &fd, &tmp, err) < 0)
    return -1;
  layer_writer_result wr;
  int r = layer_writer_write (ch, n, &b->o.layer, fd, &wr, err);
  close (fd);
  if (r < 0)
    {
      store_blob_discard (b->o.store, tmp);
      return kiln_error_wrap (err, "writing the layer");
    }
  if (store_blob_adopt (b->o.store, tmp, wr.blob_digest, err) < 0)
    return -1;
  double dt = now_s () - t0;
  add_time (b, &b->res->t_pack, dt);
  st->pack_secs += dt;
  /* The store layer comes from the same change list (data hardlinked from
   * the overlay's upper or the source trees), not from reading the blob
   * back: no second decompression and write of the layer's data. */
  if (extract_from_changes (b->o.store, ch, n, &b->o.layer, wr.diff_id, wr.blob_digest, err) < 0)
    return -1;
  snprintf (e->diff_id, sizeof e->diff_id, "%s", wr.diff_id);
  snprintf (e->digest, sizeof e->digest, "%s", wr.blob_digest);
  snprintf (e->media_type, sizeof e->media_type, "%s",
            layer_writer_media_type (b->o.layer.compression, b->o.format == IMAGE_FORMAT_DOCKER));
  e->size = (int64_t) wr.blob_size;
  log_debug ("layer %s (%" PRIu64 " entries, %" PRIu64 " bytes compressed)", wr.diff_id, wr.entries, wr.blob_size);
  return 0;
}

/* ---- FROM ---- */


static int
stage_from_base (build_exec *b, const plan_stage *ps, stage_state *st, kiln_error **err);

/* The first key of a stage: what its layers start from, salted with every
 * option that changes layer bytes. */
static void
stage_key (build_exec *b, stage_state *st, const char *what, const char *base)
{
  if (!build_cache_enabled (b->o.cache))
    return;
  build_cache_key k;
  /* v2: gzip's default became ISA-L level 3 (v1 entries hold zlib-6 blobs
   * under level -1). The level in the salt is the one the writer uses, and
   * the encoder is named: the same level from another encoder gives other
   * blob bytes. */
  build_cache_key_begin (&k, "kiln build cache v2");
  int level;
  const char *encoder = layer_writer_encoder (&b->o.layer, &level);
  autofree char *salt = xasprintf ("compression=%d encoder=%s level=%d format=%d reproducible=%d epoch=%lld",
                                   (int) b->o.layer.compression, encoder, level, (int) b->o.format,
                                   (int) b->o.reproducible, (long long) b->o.epoch);
  build_cache_key_add (&k, "salt", salt);
  for (char **p = b->o.ignore_paths; p && *p; p++)
    build_cache_key_add (&k, "ignore-path", *p);
  build_cache_key_add (&k, what, base);
  build_cache_key_end (&k, st->key);
}

static int
stage_from (build_exec *b, const plan_stage *ps, stage_state *st, kiln_error **err)
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
        stage_add_layer (st, base->layers[i].diff_id, base->layers[i].digest, base->layers[i].media_type,
                         base->layers[i].size);
      stage_key (b, st, "from-stage", base->key);
      return 0;
    }
  autofree char *os = NULL, *arch = NULL, *variant = NULL;
  if (manifest_parse_platform (ps->platform, &os, &arch, &variant, err) < 0)
    return -1;
  if (ps->scratch)
    {
      st->spec.os = xstrdup (os);
      st->spec.architecture = xstrdup (arch);
      st->spec.variant = variant ? xstrdup (variant) : NULL;
      stage_key (b, st, "scratch", ps->platform);
      return 0;
    }
  const store_fetch_result *r;
  if (fetch_image (b, ps->base, ps->platform, &r, err) < 0)
    return -1;
  if (image_spec_from_config (&st->spec, r->config, r->config_len, err) < 0)
    return kiln_error_wrap (err, "config of '%s'", ps->base);
  for (size_t i = 0; i < r->n_layers; i++)
    stage_add_layer (st, r->layers[i].diff_id, r->layers[i].digest,
                     media_type_for_format (r->layers[i].media_type, b->o.format), r->layers[i].size);
  if (st->spec.architecture && strcmp (st->spec.architecture, arch) != 0)
    log_warn ("base image '%s' is %s/%s, not the requested %s", ps->base, st->spec.os ? st->spec.os : "?",
              st->spec.architecture, ps->platform);
  stage_key (b, st, "from-image", r->manifest_digest);
  return 0;
}

/* ---- metadata helpers ---- */

static void
env_set (char ***env, const char *key, const char *value)
{
  size_t kl = strlen (key);
  autofree char *kv = xasprintf ("%s=%s", key, value ? value : "");
  for (char **e = *env; e && *e; e++)
    if (strncmp (*e, key, kl) == 0 && (*e)[kl] == '=')
      {
        free (*e);
        *e = steal_pointer (&kv);
        return;
      }
  strv_push (env, kv);
}

static void
strv_add_unique (char ***v, const char *s)
{
  for (char **e = *v; e && *e; e++)
    if (strcmp (*e, s) == 0)
      return;
  strv_push (v, s);
}

static char *
one_line (const char *s)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  bool space = false;
  for (; *s; s++)
    {
      if (*s == '\n' || *s == '\r' || *s == '\t' || *s == ' ')
        {
          space = sb.len > 0;
          continue;
        }
      if (space)
        strbuf_addch (&sb, ' ');
      space = false;
      strbuf_addch (&sb, *s);
    }
  return strbuf_detach (&sb, NULL);
}

static char *
join_argv (char **v)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  for (char **a = v; a && *a; a++)
    {
      if (a != v)
        strbuf_addch (&sb, ' ');
      strbuf_adds (&sb, *a);
    }
  return strbuf_detach (&sb, NULL);
}

static char *
healthcheck_json (const plan_step *s, kiln_error **err)
{
  autojsonwriter json_writer *w = json_writer_new ();
  json_writer_begin_object (w);
  json_writer_key (w, "Test");
  json_writer_begin_array (w);
  if (!s->args || !s->args[0])
    json_writer_string (w, "NONE");
  else if (s->json)
    {
      json_writer_string (w, "CMD");
      for (char **a = s->args; *a; a++)
        json_writer_string (w, *a);
    }
  else
    {
      json_writer_string (w, "CMD-SHELL");
      json_writer_string (w, s->args[0]);
    }
  json_writer_end_array (w);
  static const char *const durs[][2] = { { "interval", "Interval" }, { "timeout", "Timeout" },
                                         { "start-period", "StartPeriod" }, { "start-interval", "StartInterval" } };
  for (size_t i = 0; i < ARRAY_SIZE (durs); i++)
    {
      const char *v = plan_step_flag (s, durs[i][0]);
      int64_t ns;
      if (!v)
        continue;
      if (units_parse_duration (v, &ns, err) < 0)
        return NULL;
      json_writer_kv_int (w, durs[i][1], ns);
    }
  const char *retries = plan_step_flag (s, "retries");
  if (retries)
    json_writer_kv_int (w, "Retries", strtoll (retries, NULL, 10));
  json_writer_end_object (w);
  char *out = NULL;
  size_t len;
  if (json_writer_finish (w, &out, &len, err) < 0)
    return NULL;
  return out;
}

static char *
resolve_dir (const char *workdir, const char *path)
{
  if (path[0] == '/')
    return xstrdup (path);
  const char *wd = workdir && *workdir ? workdir : "/";
  size_t l = strlen (wd);
  return xasprintf ("%s%s%s", wd, l && wd[l - 1] == '/' ? "" : "/", path);
}

/* Clean an absolute path: collapse "//", ".", ".." (never above "/"). */
static char *
clean_abs (const char *p)
{
  autofree char *rel = NULL;
  fs_path_clean (p, true, &rel);
  return xasprintf ("/%s", rel);
}

/* ---- RUN ---- */

typedef struct run_ctx
{
  build_exec *b;
  overlay *ovl;
  int step_id;               /* progress step the output belongs to */
} run_ctx;

static void
run_output (void *ctx, sandbox_stream stream, const char *line, size_t len)
{
  run_ctx *rc = ctx;
  progress_step_output_id (rc->b->o.progress, rc->step_id, stream == SANDBOX_STDERR ? 2 : 1, line, len);
}

static int
run_record_chown (void *ctx, int target_fd, const char *path, uid_t uid, gid_t gid)
{
  run_ctx *rc = ctx;
  struct stat sb;
  if (fstat (target_fd, &sb) < 0)
    return -errno;
  autoerror kiln_error *e = NULL;
  if (overlay_record_chown (rc->ovl, sb.st_ino, uid, gid, &e) < 0)
    {
      log_debug ("recording chown of '%s': %s", path, e ? e->msg : "failed");
      return e && e->status ? -e->status : -EIO;
    }
  return 0;
}

static int
run_serve_fuse (void *ctx, int fuse_fd, kiln_error **err)
{
  run_ctx *rc = ctx;
  return overlay_serve_fd (rc->ovl, fuse_fd, err);
}

/* Consecutive RUN steps of a stage share one overlay mount (a
 * sandbox_session): the overlay's commit starts a fresh upper on the same
 * mount, and the kernel keeps its dentry, attribute and page caches from
 * step to step. The view is the stage's layers as long as every layer added
 * since the mount was made came from its own commits; a COPY, a cached
 * step or a failure ends it, and the next RUN mounts the stage's layers
 * afresh. */
typedef struct run_session
{
  sandbox_session *sess;
  char *tmpname;       /* store temp dir: the uppers and the mount point */
  size_t n_layers;     /* the stage's layer count the view shows */
  unsigned steps;      /* RUN steps run on it */
  run_ctx rc;          /* its overlay is rc.ovl */
} run_session;

static void
run_session_end (build_exec *b, stage_state *st)
{
  run_session *rs = st->rs;
  if (!rs)
    return;
  st->rs = NULL;
  /* The namespaces first (the mount and the FUSE connection go with them,
   * while the session loop still answers), then the loop. */
  sandbox_session_free (rs->sess);
  overlay_free (rs->rc.ovl);
  if (rs->tmpname)
    store_rmtemp (b->o.store, rs->tmpname);
  free (rs->tmpname);
  free (rs);
}

/* The stage's mount for the next RUN step, with that step's owner for new
 * files and mask paths. Takes lower (the stage's layers), also on failure. */
static run_session *
run_session_get (build_exec *b, stage_state *st, overlay_lower *lower, uid_t uid, gid_t gid,
                 const char *const *masks, kiln_error **err)
{
  if (st->rs && st->rs->n_layers != st->n_layers)
    run_session_end (b, st);
  if (st->rs)
    {
      overlay_lower_free (lower);
      overlay_begin_step (st->rs->rc.ovl, uid, gid, masks);
      log_debug ("RUN on the stage's mount of %zu layers, step %u on it", st->rs->n_layers, ++st->rs->steps);
      return st->rs;
    }
  run_session *rs = xzalloc (sizeof *rs);
  rs->rc.b = b;
  autoclose int tmpfd = -1;
  if (store_mktemp (b->o.store, "run-", &rs->tmpname, &tmpfd, err) < 0)
    {
      overlay_lower_free (lower);
      free (rs);
      return NULL;
    }
  st->rs = rs;
  overlay_config oc = {
    .lower = lower,
    .scratch_dirfd = tmpfd,
    .id_mode = b->idmap.mode == SANDBOX_USERNS_SINGLE ? OVERLAY_IDS_SINGLE : OVERLAY_IDS_FULL,
    .present_uid = 0,
    .present_gid = 0,
    .create_uid = uid,
    .create_gid = gid,
    .mask_paths = masks,
  };
  if (overlay_new (&oc, &rs->rc.ovl, err) < 0)
    goto fail;
  sandbox_session_config sc = { .idmap = &b->idmap, .rootfs_fuse = run_serve_fuse, .rootfs_fuse_ctx = &rs->rc,
                                .dirfd = tmpfd, .cancel_fd = b->o.cancel ? b->o.cancel->rfd : -1 };
  if (sandbox_session_new (&sc, &rs->sess, err) < 0)
    goto fail;
  rs->n_layers = st->n_layers;
  rs->steps = 1;
  log_debug ("RUN on a new mount of the stage's %zu layers", rs->n_layers);
  return rs;
fail:
  run_session_end (b, st);
  return NULL;
}

static int ensure_sandbox_locked (build_exec *b, kiln_error **err);

/* The ID mapping and the compiled seccomp filter, made once per build. */
static int
ensure_sandbox (build_exec *b, kiln_error **err)
{
  pthread_mutex_lock (&b->lock);
  int r = ensure_sandbox_locked (b, err);
  pthread_mutex_unlock (&b->lock);
  return r;
}

static int
ensure_sandbox_locked (build_exec *b, kiln_error **err)
{
  if (!b->idmap_ready)
    {
      if (sandbox_idmap_resolve (b->o.userns, 0, &b->idmap, err) < 0)
        return -1;
      b->idmap_ready = true;
      autofree char *d = sandbox_idmap_describe (&b->idmap);
      log_info ("user namespace: %s", d);
    }
  if (!b->filter_ready)
    {
      b->filter_ready = true;
      if (b->o.seccomp_policy && strcmp (b->o.seccomp_policy, "unconfined") == 0)
        {
          log_warn ("seccomp disabled (--seccomp-policy=unconfined): RUN steps may use every system call");
          return 0;
        }
      autofree char *path = NULL;
      if (b->o.seccomp_policy)
        path = xstrdup (b->o.seccomp_policy);
      else if (seccomp_profile_default_path (&path, err) < 0)
        return -1;
      seccomp_profile *prof = NULL;
      if (seccomp_profile_load_file (path, &prof, err) < 0)
        return -1;
      seccomp_profile_env env = { seccomp_profile_docker_default_caps, 0, 0,
                                  b->idmap.mode == SANDBOX_USERNS_SINGLE ? SECCOMP_PROFILE_FAKE_IDS
                                                                          : SECCOMP_PROFILE_PLAIN };
      int r = seccomp_profile_compile (prof, &env, &b->filter, err);
      seccomp_profile_free (prof);
      if (r < 0)
        return kiln_error_wrap (err, "compiling seccomp profile '%s'", path);
    }
  return 0;
}

/* RUN --mount=type=bind,from=X: a built stage (by name or index), else an
 * image reference. */
/* The stage "from=" names (by name or index), or -1 (then it is an image). */
static int
find_stage (build_exec *b, const char *from)
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

static int
open_from (void *ctx, const char *from, overlay_lower **out, kiln_error **err)
{
  build_exec *b = ctx;
  int i = find_stage (b, from);
  if (i < 0)
    return open_image_lower (b, from, out, err);
  if (!b->stages[i].built)
    return kiln_error_make (err, EINVAL, "stage '%s' is not built before this step", from);
  return open_lower (b, &b->stages[i], out, err);
}

/* What RUN's bind mounts show is part of its key: the key of a stage, the
 * manifest of an image, or the content of the context below the source
 * (as COPY would see it, .dockerignore applied). */
static int
key_add_mounts (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err)
{
  for (size_t i = 0; i < s->n_mounts; i++)
    {
      const plan_mount *m = &s->mounts[i];
      if (m->type && strcmp (m->type, "bind") != 0)
        continue;
      /* The planner folds src= into source=; run_mounts reads the same keys. */
      const char *from = plan_mount_opt (m, "from");
      const char *src = plan_mount_opt (m, "source");
      if (from)
        {
          int idx = find_stage (b, from);
          if (idx >= 0)
            {
              build_cache_key_add (&st->ckey, "mount-stage", b->stages[idx].key);
              continue;
            }
          const store_fetch_result *fr;
          if (fetch_image (b, from, NULL, &fr, err) < 0)
            return -1;
          build_cache_key_add (&st->ckey, "mount-image", fr->manifest_digest);
          continue;
        }
      if (b->ctxfd < 0)
        continue; /* run_mounts refuses it */
      overlay_lower *view = NULL;
      if (open_lower (b, st, &view, err) < 0)
        return -1;
      char *srcs[] = { (char *) (src && *src ? src : "."), NULL };
      copy_request req = { .srcs = srcs, .dest = "/.kiln-cache-key", .dest_is_dir = true, .what = "RUN --mount" };
      copy_changes ch = { 0 };
      int r = copy_from_context (b->ctxfd, b->ign, view, &req, &ch, err);
      build_cache_key_add (&st->ckey, "mount-context", srcs[0]);
      if (r >= 0)
        r = build_cache_key_add_changes (&st->ckey, ch.v, ch.n, err);
      copy_changes_free (&ch);
      overlay_lower_free (view);
      if (r < 0)
        return kiln_error_wrap (err, "RUN --mount source '%s'", srcs[0]);
    }
  return 0;
}

/* A RUN for another architecture needs binfmt_misc emulation (e.g. Debian's
 * qemu-user-static registers /proc/sys/fs/binfmt_misc/qemu-aarch64). */
static int
check_emulation (const stage_state *st, kiln_error **err)
{
  const char *os, *arch, *variant;
  manifest_host_platform (&os, &arch, &variant);
  const char *want = st->spec.architecture;
  if (!want || strcmp (want, arch) == 0)
    return 0;
  static const char *const names[][2] = { { "amd64", "x86_64" }, { "arm64", "aarch64" }, { "arm", "arm" },
                                          { "386", "i386" }, { "ppc64le", "ppc64le" }, { "s390x", "s390x" },
                                          { "riscv64", "riscv64" }, { "mips64le", "mips64el" } };
  const char *q = want;
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    if (strcmp (names[i][0], want) == 0)
      q = names[i][1];
  autofree char *path = xasprintf ("/proc/sys/fs/binfmt_misc/qemu-%s", q);
  if (access (path, F_OK) == 0)
    return 0;
  return kiln_error_make (err, ENOEXEC, "RUN for linux/%s on a linux/%s host needs binfmt_misc emulation (no '%s'; "
                          "install qemu-user-static) — or build for --platform linux/%s", want, arch, path, arch);
}

static int
step_run (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err)
{
  const char *sec = plan_step_flag (s, "security");
  bool insecure = sec && strcmp (sec, "insecure") == 0;
  if (insecure && !b->o.allow_insecure)
    return kiln_error_make (err, EPERM, "RUN --security=insecure needs the entitlement: pass --allow "
                            "security.insecure (as BuildKit does)");
  char key[DIGEST_STRING_SIZE] = "";
  if (st->ckey_open)
    {
      if (key_add_mounts (b, st, s, err) < 0)
        return -1;
      key_finish (st, key);
    }
  {
    autofree char *j = join_argv (s->argv);
    autofree char *cb = xasprintf ("RUN %s # kiln", j);
    int r = cache_try (b, st, key, true, cb, err);
    if (r != 0)
      return r < 0 ? -1 : 0;
  }
  sandbox_net_mode net = b->o.network;
  const char *nf = plan_step_flag (s, "network");
  if (nf && strcmp (nf, "none") == 0)
    net = SANDBOX_NET_NONE;
  else if (nf && strcmp (nf, "host") == 0)
    net = SANDBOX_NET_HOST;
  if (ensure_sandbox (b, err) < 0)
    return -1;
  if (check_emulation (st, err) < 0)
    return -1;

  overlay_lower *lower = NULL;
  if (open_lower (b, st, &lower, err) < 0)
    return -1;
  uid_t uid = 0;
  gid_t gid = 0;
  autofree gid_t *groups = NULL;
  size_t n_groups = 0;
  autofree char *home = NULL;
  if (rootfs_resolve_user (lower, st->spec.user && *st->spec.user ? st->spec.user : "0", &uid, &gid, &groups,
                           &n_groups, &home, err) < 0)
    {
      overlay_lower_free (lower);
      return kiln_error_wrap (err, "USER");
    }
  autostrv char **env = strv_dup (st->spec.env);
  /* Docker sets HOME from the user's passwd entry unless ENV sets it. */
  bool has_home = false;
  for (char **e = env; e && *e; e++)
    has_home |= strncmp (*e, "HOME=", 5) == 0;
  if (!has_home)
    {
      autofree char *h = xasprintf ("HOME=%s", home && *home ? home : "/");
      strv_push (&env, h);
    }
  for (char **e = s->build_env; e && *e; e++)
    {
      size_t kl = strcspn (*e, "=");
      bool have = false;
      for (char **x = env; x && *x && !have; x++)
        have = strncmp (*x, *e, kl) == 0 && (*x)[kl] == '=';
      if (!have)
        strv_push (&env, *e);
    }
  sandbox_env_ensure_path (&env);

  run_mounts_env menv = { b->o.store, b->ctxfd, &b->idmap, b->o.secrets, st->spec.working_dir, open_from, b };
  run_mounts mounts;
  if (run_mounts_prepare (&menv, s, &mounts, err) < 0)
    {
      overlay_lower_free (lower);
      return -1;
    }
  /* Single ID mode has one id: apt's switch to its _apt user cannot
   * happen, and apt fails ("Could not switch group"). Tell apt to stay root
   * for this step through a config file on the step's own /dev. */
  bool apt_conf = b->idmap.mode == SANDBOX_USERNS_SINGLE;
  for (char **e = env; apt_conf && e && *e; e++)
    apt_conf = strncmp (*e, "APT_CONFIG=", 11) != 0;
  if (apt_conf)
    {
      if (run_mounts_add_file (&menv, "/dev/.kiln/apt.conf", "APT::Sandbox::User \"root\";\n", 0644, &mounts,
                               err) < 0)
        {
          overlay_lower_free (lower);
          run_mounts_release (&mounts);
          return -1;
        }
      strv_push (&env, "APT_CONFIG=/dev/.kiln/apt.conf");
    }
  if (s->argv && s->argv[0] && strncmp (s->argv[0], "/dev/pipes/", 11) == 0 && s->n_heredocs
      && run_mounts_add_script (&menv, s->argv[0] + 11, s->heredocs[0].body, &mounts, err) < 0)
    {
      overlay_lower_free (lower);
      run_mounts_release (&mounts);
      return -1;
    }
  const sandbox_mountpoint *mps;
  size_t n_mps = sandbox_mountpoints (&mps);
  autostrv char **mask_store = NULL;
  for (size_t i = 0; i < n_mps; i++)
    {
      autofree char *m = xasprintf ("%s%s", mps[i].path, mps[i].is_dir ? "/" : "");
      strv_push (&mask_store, m);
    }
  for (char **m = mounts.masks; m && *m; m++)
    strv_push (&mask_store, *m);
  autofree const char **masks = xcalloc (strv_len (mask_store) + 1, sizeof *masks);
  for (size_t i = 0; mask_store[i]; i++)
    masks[i] = mask_store[i];

  run_session *rs = run_session_get (b, st, lower, uid, gid, masks, err);
  if (!rs)
    {
      run_mounts_release (&mounts);
      return -1;
    }
  rs->rc.step_id = st->step_id;
  int ret = -1;
  autofree char *cwd = NULL, *joined = NULL, *created_by = NULL;
  cwd = clean_abs (st->spec.working_dir && *st->spec.working_dir ? st->spec.working_dir : "/");
  sandbox_config sc = {
    .argv = s->argv, .env = env, .cwd = cwd, .uid = uid, .gid = gid, .groups = groups, .n_groups = n_groups,
    .hostname = NULL, .network = net, .idmap = &b->idmap, .seccomp = b->filter,
    .output = run_output, .output_ctx = &rs->rc, .record_chown = run_record_chown, .record_chown_ctx = &rs->rc,
    .session = rs->sess, .mounts = mounts.v, .n_mounts = mounts.n,
    .cancel_fd = b->o.cancel ? b->o.cancel->rfd : -1, .cancel_signal = b->o.signal_flag,
  };
  if (insecure)
    {
      /* Every capability in the step's user namespace, no seccomp filter;
       * single mode keeps the filter, whose supervisor fakes chown. */
      sc.all_caps = true;
      if (!(b->filter && b->filter->needs_listener))
        sc.seccomp = NULL;
      log_warn ("RUN --security=insecure: all capabilities in the step's user namespace%s",
                sc.seccomp ? "" : ", no seccomp filter");
    }
  sandbox_result res;
  double t0 = now_s ();
  if (sandbox_run (&sc, &res, err) < 0)
    goto out;
  add_time (b, &b->res->t_run, now_s () - t0);
  if (!res.exited || res.status != 0)
    {
      autofree char *what = sandbox_result_describe (&res);
      autofree char *tail = progress_tail_id (b->o.progress, st->step_id);
      autofree char *cmd = join_argv (s->argv);
      kiln_error_make (err, 0, "command '%s' %s%s%s", cmd, what, *tail ? "; last output:\n" : "", tail);
      goto out;
    }
  t0 = now_s ();
  if (sandbox_session_sync (rs->sess, err) < 0)
    goto out;
  overlay_changes *changes = NULL;
  if (overlay_commit (rs->rc.ovl, &changes, err) < 0)
    goto out;
  layer_change *lch = NULL;
  size_t n_lch = 0;
  if (overlay_changes_to_layer (changes, &lch, &n_lch, err) < 0)
    {
      overlay_changes_free (changes);
      goto out;
    }
  add_time (b, &b->res->t_snapshot, now_s () - t0);
  joined = join_argv (s->argv);
  created_by = xasprintf ("RUN %s # kiln", joined);
  ret = commit_layer (b, st, lch, n_lch, created_by, key, true, err);
  free (lch);
  overlay_changes_free (changes);
  /* --ignore-path leaves changes out of the layer, which the view still
   * shows: the next step gets a fresh mount of the stage's layers. */
  if (ret == 0 && !b->o.ignore_paths)
    rs->n_layers = st->n_layers;
out:
  if (ret < 0 || b->o.ignore_paths)
    run_session_end (b, st);
  run_mounts_release (&mounts);
  return ret;
}

/* ---- COPY / ADD ---- */

static bool
is_url (const char *s)
{
  return strncmp (s, "http://", 7) == 0 || strncmp (s, "https://", 8) == 0;
}

/* BuildKit treats these as git repositories. */
static bool
is_git (const char *s)
{
  if (strncmp (s, "git@", 4) == 0 || strncmp (s, "git://", 6) == 0 || strncmp (s, "ssh://", 6) == 0)
    return true;
  size_t len = strcspn (s, "#?");
  return is_url (s) && len > 4 && strncmp (s + len - 4, ".git", 4) == 0;
}

/* ADD <URL>: download into tmpfd (a private temp dir) and add it as a
 * file: mode 0600 as Docker, mtime from Last-Modified. */
static int
add_url (build_exec *b, const char *url, int idx, int tmpfd, overlay_lower *dest_view, const copy_request *req,
         bool into_dir, const char *checksum, copy_changes *ch, kiln_error **err)
{
  char name[32];
  snprintf (name, sizeof name, "url-%d", idx);
  autoclose int fd = openat (tmpfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return kiln_error_make (err, errno, "ADD '%s': temporary file", url);
  progress_note (b->o.progress, "downloading %s", url);
  url_fetch_result ur;
  if (url_fetch_to_fd (url, fd, (uint64_t) 16 << 30, &ur, err) < 0)
    return -1;
  if (checksum && strcmp (checksum, ur.digest) != 0)
    return kiln_error_make (err, EINVAL, "ADD '%s': checksum mismatch: expected %s, got %s", url, checksum, ur.digest);
  copy_request ureq = *req;
  autofree char *base = url_fetch_basename (url);
  if (into_dir && !base)
    return kiln_error_make (err, EINVAL, "ADD '%s': cannot name the file (the URL has no path); give a file "
                            "destination", url);
  autofree char *dest = into_dir ? xasprintf ("%s/%s", req->dest, base) : xstrdup (req->dest);
  ureq.dest = dest;
  return copy_add_file (dest_view, &ureq, tmpfd, name, 0600, ur.mtime >= 0 ? ur.mtime : created_time (b), ch, err);
}

typedef enum
{
  ARCHIVE_NONE = 0,
  ARCHIVE_EXTRACTABLE,   /* tar, gzip or zstd: what the store extractor reads */
  ARCHIVE_RAW,           /* bzip2, xz: decompressed by libarchive first */
} archive_kind;

/* Is fd a tar archive (possibly compressed)? Like Docker, a compressed file
 * that does not hold a tar is not an archive and is copied as it is. */
static archive_kind
archive_kind_fd (int fd)
{
  if (lseek (fd, 0, SEEK_SET) < 0)
    return ARCHIVE_NONE;
  struct archive *a = archive_read_new ();
  struct archive_entry *e;
  archive_kind k = ARCHIVE_NONE;
  archive_read_support_filter_all (a);
  archive_read_support_format_tar (a);
  archive_read_support_format_gnutar (a);
  if (archive_read_open_fd (a, fd, 1 << 16) == ARCHIVE_OK && archive_read_next_header (a, &e) == ARCHIVE_OK)
    switch (archive_filter_code (a, 0))
      {
      case ARCHIVE_FILTER_NONE:
      case ARCHIVE_FILTER_GZIP:
      case ARCHIVE_FILTER_ZSTD:
        k = ARCHIVE_EXTRACTABLE;
        break;
      case ARCHIVE_FILTER_BZIP2:
      case ARCHIVE_FILTER_XZ:
        k = ARCHIVE_RAW;
        break;
      default:
        k = ARCHIVE_NONE; /* e.g. compress(1), lz4: copied as files, as Docker does */
      }
  archive_read_free (a);
  lseek (fd, 0, SEEK_SET);
  return k;
}

/* Open a context file named by ADD (not through symlinks); -1 if it is not
 * a regular file there. */
static int
open_context_file (build_exec *b, const char *src)
{
  autoerror kiln_error *e = NULL;
  while (*src == '/')
    src++;
  int fd = fs_open_in_root (b->ctxfd, src, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0,
                            FS_RESOLVE_BENEATH | FS_RESOLVE_NO_SYMLINKS, &e);
  struct stat sb;
  if (fd >= 0 && (fstat (fd, &sb) < 0 || !S_ISREG (sb.st_mode)))
    {
      close (fd);
      return -1;
    }
  return fd;
}

/* bzip2 and xz: libarchive's raw format decompresses the stream, which the
 * store extractor then reads as a plain tar. */
typedef struct raw_stream
{
  struct archive *a;
  const char *src;
} raw_stream;

static int
raw_open (int fd, const char *src, raw_stream *rs, kiln_error **err)
{
  if (lseek (fd, 0, SEEK_SET) < 0)
    return kiln_error_make (err, errno, "ADD '%s': seek", src);
  rs->src = src;
  rs->a = archive_read_new ();
  struct archive_entry *e;
  if (archive_read_support_filter_bzip2 (rs->a) != ARCHIVE_OK || archive_read_support_filter_xz (rs->a) != ARCHIVE_OK
      || archive_read_support_format_raw (rs->a) != ARCHIVE_OK || archive_read_open_fd (rs->a, fd, 1 << 16) != ARCHIVE_OK
      || archive_read_next_header (rs->a, &e) != ARCHIVE_OK)
    {
      kiln_error_make (err, EINVAL, "ADD '%s': decompressing: %s", src, archive_error_string (rs->a));
      archive_read_free (rs->a);
      rs->a = NULL;
      return -1;
    }
  return 0;
}

static ssize_t
raw_read (void *ctx, void *buf, size_t len, kiln_error **err)
{
  raw_stream *rs = ctx;
  la_ssize_t n = archive_read_data (rs->a, buf, len);
  if (n < 0)
    return kiln_error_make (err, EINVAL, "ADD '%s': decompressing: %s", rs->src, archive_error_string (rs->a));
  return n;
}

/* Extract archive fd into the store; the layer's diffID out. */
static int
extract_archive (build_exec *b, int fd, const char *src, bool raw, char diff_id[DIGEST_STRING_SIZE],
                 kiln_error **err)
{
  char blob[DIGEST_STRING_SIZE];
  extract_result xr;
  if (!raw)
    {
      if (digest_fd (fd, blob, NULL, err) < 0)
        return kiln_error_wrap (err, "ADD '%s'", src);
      if (lseek (fd, 0, SEEK_SET) < 0)
        return kiln_error_make (err, errno, "ADD '%s': seek", src);
      int rfd = fd;
      if (extract_to_store (b->o.store, blob, NULL, read_fd_cb, &rfd, NULL, &xr, err) < 0)
        return -1;
    }
  else
    {
      /* Two passes: the digest of the decompressed stream keys the layer. */
      raw_stream rs;
      if (raw_open (fd, src, &rs, err) < 0)
        return -1;
      autodigest digest_ctx *d = digest_new ();
      char buf[1 << 16];
      ssize_t n;
      while ((n = raw_read (&rs, buf, sizeof buf, err)) > 0)
        digest_update (d, buf, n);
      archive_read_free (rs.a);
      if (n < 0)
        return -1;
      digest_final (d, blob);
      if (raw_open (fd, src, &rs, err) < 0)
        return -1;
      int r = extract_to_store (b->o.store, blob, NULL, raw_read, &rs, NULL, &xr, err);
      archive_read_free (rs.a);
      if (r < 0)
        return -1;
    }
  memcpy (diff_id, xr.diff_id, DIGEST_STRING_SIZE);
  return 0;
}

/* ADD of a local archive: extract it (safely, with the store's extractor)
 * as a store layer, then copy that layer's contents into dest, keeping the
 * archive's owners and modes unless --chown/--chmod say otherwise. */
static int
add_archive (build_exec *b, int fd, const char *src, bool raw, overlay_lower *dest_view, const copy_request *req,
             copy_changes *ch, overlay_lower **lower_out, kiln_error **err)
{
  char diff_id[DIGEST_STRING_SIZE];
  if (extract_archive (b, fd, src, raw, diff_id, err) < 0)
    return kiln_error_wrap (err, "ADD '%s': extracting the archive", src);
  overlay_lower *lower = NULL;
  char *ids[] = { diff_id, NULL };
  int r = overlay_lower_open_store (b->o.store, ids, 1, &lower, err);
  if (r < 0)
    return -1;
  char *root[] = { (char *) "", NULL };
  copy_request areq = *req;
  areq.srcs = root;
  areq.dest_is_dir = true;
  areq.keep_owner = true;
  areq.excludes = NULL;
  r = copy_from_layers (lower, dest_view, &areq, ch, err);
  /* The change list reads file data through the layer's tree fd: the
   * caller frees the lower after writing the layer. */
  *lower_out = lower;
  return r < 0 ? kiln_error_wrap (err, "ADD '%s'", src) : 0;
}

/* ADD only extracts archives named directly; one matched by a wildcard
 * would be copied as it is, which kiln refuses rather than guess. */
static int
add_check_wildcard_archives (build_exec *b, const copy_changes *ch, const char *dest, kiln_error **err)
{
  const char *d = dest;
  while (*d == '/')
    d++;
  size_t dl = strlen (d);
  for (size_t i = 0; i < ch->n; i++)
    {
      const layer_change *c = &ch->v[i];
      const char *slash = strrchr (c->path, '/');
      size_t pl = slash ? (size_t) (slash - c->path) : 0;
      if (c->meta.type != LAYER_INDEX_REG || c->data_dirfd != b->ctxfd || pl != dl || strncmp (c->path, d, dl) != 0)
        continue;
      autoclose int fd = open_context_file (b, c->data_path);
      if (fd >= 0 && archive_kind_fd (fd) != ARCHIVE_NONE)
        return kiln_error_make (err, ENOTSUP, "ADD: '%s' was matched by a wildcard and is an archive; kiln extracts "
                                "only archives named directly (name it, or use COPY to copy it as it is)",
                                c->data_path);
    }
  return 0;
}

static int
step_copy (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err)
{
  bool add = s->kind == DF_ADD;
  const char *what = add ? "ADD" : "COPY";
  size_t n_args = strv_len (s->args);
  if (n_args < 2)
    return kiln_error_make (err, EINVAL, "%s needs a source and a destination", what);
  const char *checksum = plan_step_flag (s, "checksum");
  bool present = false;
  dockerfile_instr_flag (s->instr, "keep-git-dir", &present);
  if (present)
    return kiln_error_make (err, ENOTSUP, "ADD --keep-git-dir: git sources are not supported yet");
  size_t n_urls = 0;
  for (size_t i = 0; i + 1 < n_args; i++)
    {
      if (is_git (s->args[i]))
        return kiln_error_make (err, ENOTSUP, "ADD '%s': git sources are not supported yet", s->args[i]);
      if (is_url (s->args[i]))
        {
          if (!add)
            return kiln_error_make (err, EINVAL, "COPY '%s': COPY takes no URLs (use ADD)", s->args[i]);
          if (s->from_stage >= 0 || s->from_image)
            return kiln_error_make (err, EINVAL, "ADD '%s': a URL with --from makes no sense", s->args[i]);
          n_urls++;
        }
    }
  if (checksum && (n_urls != 1 || n_args != 2))
    return kiln_error_make (err, EINVAL, "ADD --checksum needs exactly one source, a URL");
  if (checksum && strncmp (checksum, "sha256:", 7) != 0)
    return kiln_error_make (err, ENOTSUP, "ADD --checksum '%s': only sha256: digests are supported", checksum);
  overlay_lower *dest_view = NULL;
  if (open_lower (b, st, &dest_view, err) < 0)
    return -1;
  int ret = -1;
  autofree char *text = NULL, *created_by = NULL;
  autostrv char **excludes = NULL, **srcs = NULL;
  autofree overlay_lower **archives = NULL;
  size_t n_archives = 0;
  copy_changes ch = { 0 };
  overlay_lower *src_lower = NULL;
  autofree char *tmpname = NULL;
  autoclose int tmpfd = -1;
  const char *dest_arg = s->args[n_args - 1];
  autofree char *dest = resolve_dir (st->spec.working_dir, dest_arg);
  size_t dl = strlen (dest_arg);
  bool dest_dir = (dl && dest_arg[dl - 1] == '/') || strcmp (dest_arg, ".") == 0
                  || (dl >= 2 && strcmp (dest_arg + dl - 2, "/.") == 0);
  autofree char *cdest = clean_abs (dest);
  /* Symlinks in the destination resolve inside the image (Docker's
   * FollowSymlinkInScope): COPY x /var/run/y writes below /run. */
  {
    autofree char *resolved = NULL;
    int r = rootfs_resolve_in_root (dest_view, cdest, &resolved);
    if (r < 0)
      {
        kiln_error_make (err, -r, "%s: resolving destination '%s' in the image", what, cdest);
        goto out;
      }
    free (cdest);
    cdest = xasprintf ("/%s", resolved);
  }
  copy_request req = { .dest = cdest, .dest_is_dir = dest_dir, .what = what, .now = created_time (b) };
  const char *chown = plan_step_flag (s, "chown");
  if (chown)
    {
      if (rootfs_resolve_user (dest_view, chown, &req.uid, &req.gid, NULL, NULL, NULL, err) < 0)
        {
          kiln_error_wrap (err, "%s --chown", what);
          goto out;
        }
      req.chown = true;
    }
  const char *chmod = plan_step_flag (s, "chmod");
  if (chmod)
    {
      if (copy_parse_chmod (chmod, &req.mode, err) < 0)
        goto out;
      req.chmod = true;
    }
  dockerfile_instr_flag (s->instr, "link", &req.link);
  const char *lv = plan_step_flag (s, "link");
  if (lv && strcmp (lv, "false") == 0)
    req.link = false;
  dockerfile_instr_flag (s->instr, "parents", &req.parents);
  const char *pv = plan_step_flag (s, "parents");
  if (pv && strcmp (pv, "false") == 0)
    req.parents = false;
  for (size_t i = 0; i < s->n_flags; i++)
    if (strcmp (s->flags[i].key, "exclude") == 0)
      strv_push (&excludes, s->flags[i].value);
  req.excludes = excludes;

  /* Heredoc sources become files in a temp dir; the rest go together. */
  size_t hd = 0;
  for (size_t i = 0; i + 1 < n_args; i++)
    {
      if (add && is_url (s->args[i]))
        {
          if (tmpfd < 0 && store_mktemp (b->o.store, "add-", &tmpname, &tmpfd, err) < 0)
            goto out;
          if (add_url (b, s->args[i], (int) i, tmpfd, dest_view, &req, dest_dir || n_args > 2, checksum, &ch, err) < 0)
            goto out;
          continue;
        }
      if (add && s->from_stage < 0 && !s->from_image && b->ctxfd >= 0 && strncmp (s->args[i], "<<", 2) != 0
          && !strpbrk (s->args[i], "*?["))
        {
          autoclose int afd = open_context_file (b, s->args[i]);
          archive_kind k = afd >= 0 ? archive_kind_fd (afd) : ARCHIVE_NONE;
          if (k != ARCHIVE_NONE)
            {
              archives = xreallocarray (archives, n_archives + 1, sizeof *archives);
              archives[n_archives] = NULL;
              int ar = add_archive (b, afd, s->args[i], k == ARCHIVE_RAW, dest_view, &req, &ch, &archives[n_archives],
                                   err);
              n_archives++;
              if (ar < 0)
                goto out;
              continue;
            }
        }
      if (strncmp (s->args[i], "<<", 2) != 0 || hd >= s->n_heredocs)
        {
          strv_push (&srcs, s->args[i]);
          continue;
        }
      const plan_heredoc *h = &s->heredocs[hd++];
      if (tmpfd < 0 && store_mktemp (b->o.store, "heredoc-", &tmpname, &tmpfd, err) < 0)
        goto out;
      if (fs_write_file_atomic_at (tmpfd, h->name, h->body, strlen (h->body), 0644, err) < 0)
        goto out;
      copy_request hreq = req;
      hreq.dest = (dest_dir || n_args > 2) ? xasprintf ("%s/%s", cdest, h->name) : xstrdup (cdest);
      int r = copy_add_file (dest_view, &hreq, tmpfd, h->name, 0644, created_time (b), &ch, err);
      free ((char *) hreq.dest);
      if (r < 0)
        goto out;
    }
  if (srcs)
    {
      req.srcs = srcs;
      if (s->from_stage >= 0 || s->from_image)
        {
          if (s->from_stage >= 0)
            {
              if (open_lower (b, &b->stages[s->from_stage], &src_lower, err) < 0)
                goto out;
            }
          else if (open_image_lower (b, s->from_image, &src_lower, err) < 0)
            goto out;
          if (copy_from_layers (src_lower, dest_view, &req, &ch, err) < 0)
            goto out;
        }
      else
        {
          if (b->ctxfd < 0)
            {
              kiln_error_make (err, EINVAL, "%s from the build context, but the build has no context", what);
              goto out;
            }
          if (copy_from_context (b->ctxfd, b->ign, dest_view, &req, &ch, err) < 0)
            goto out;
          if (add && add_check_wildcard_archives (b, &ch, cdest, err) < 0)
            goto out;
        }
    }
  text = one_line (s->instr->original);
  created_by = xasprintf ("%s # kiln", text);
  ret = commit_layer (b, st, ch.v, ch.n, created_by, NULL, false, err);
out:
  copy_changes_free (&ch);
  for (size_t i = 0; i < n_archives; i++)
    overlay_lower_free (archives[i]);
  overlay_lower_free (src_lower);
  overlay_lower_free (dest_view);
  if (tmpname)
    store_rmtemp (b->o.store, tmpname);
  return ret;
}

/* ---- WORKDIR ---- */

static int
step_workdir (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err)
{
  autofree char *dir = resolve_dir (st->spec.working_dir, s->args[0]);
  autofree char *clean = clean_abs (dir);
  free (st->spec.working_dir);
  st->spec.working_dir = xstrdup (clean);
  overlay_lower *view = NULL;
  if (open_lower (b, st, &view, err) < 0)
    return -1;
  copy_changes ch = { 0 };
  /* BuildKit creates a missing WORKDIR owned by the current USER. */
  uid_t uid = 0;
  gid_t gid = 0;
  if (st->spec.user && *st->spec.user
      && rootfs_resolve_user (view, st->spec.user, &uid, &gid, NULL, NULL, NULL, err) < 0)
    {
      overlay_lower_free (view);
      return kiln_error_wrap (err, "USER");
    }
  int r = copy_mkdir (view, clean, uid, gid, created_time (b), &ch, err);
  overlay_lower_free (view);
  autofree char *created_by = xasprintf ("WORKDIR %s", clean);
  if (r >= 0)
    r = commit_layer (b, st, ch.v, ch.n, created_by, NULL, false, err);
  copy_changes_free (&ch);
  return r;
}

/* ---- steps ---- */

static char *
json_argv_text (char **v)
{
  autojsonwriter json_writer *w = json_writer_new ();
  json_writer_begin_array (w);
  for (char **a = v; a && *a; a++)
    json_writer_string (w, *a);
  json_writer_end_array (w);
  char *out = NULL;
  size_t len;
  autoerror kiln_error *e = NULL;
  if (json_writer_finish (w, &out, &len, &e) < 0)
    return xstrdup ("[]");
  return out;
}

static int
step_meta (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err)
{
  image_spec *sp = &st->spec;
  autofree char *text = one_line (s->instr->original);
  switch (s->kind)
    {
    case DF_ENV:
      for (size_t i = 0; i < s->n_kvs; i++)
        env_set (&sp->env, s->kvs[i].key, s->kvs[i].value);
      break;
    case DF_LABEL:
      for (size_t i = 0; i < s->n_kvs; i++)
        env_set (&sp->labels, s->kvs[i].key, s->kvs[i].value);
      break;
    case DF_EXPOSE:
      for (char **a = s->args; a && *a; a++)
        strv_add_unique (&sp->exposed_ports, *a);
      break;
    case DF_VOLUME:
      for (char **a = s->args; a && *a; a++)
        strv_add_unique (&sp->volumes, *a);
      break;
    case DF_CMD:
      strv_free (sp->cmd);
      sp->cmd = strv_dup (s->argv);
      st->cmd_set = true;
      break;
    case DF_ENTRYPOINT:
      strv_free (sp->entrypoint);
      sp->entrypoint = strv_dup (s->argv);
      if (!st->cmd_set)
        {
          strv_free (sp->cmd);
          sp->cmd = NULL;
        }
      break;
    case DF_USER:
      free (sp->user);
      sp->user = xstrdup (s->args[0]);
      break;
    case DF_SHELL:
      strv_free (sp->shell);
      sp->shell = strv_dup (s->args);
      break;
    case DF_STOPSIGNAL:
      free (sp->stop_signal);
      sp->stop_signal = xstrdup (s->args[0]);
      break;
    case DF_HEALTHCHECK:
      {
        char *j = healthcheck_json (s, err);
        if (!j)
          return -1;
        free (sp->healthcheck_json);
        sp->healthcheck_json = j;
        break;
      }
    case DF_ONBUILD:
      strv_push (&sp->onbuild, s->args[0]);
      break;
    case DF_MAINTAINER:
      free (sp->author);
      sp->author = xstrdup (s->args[0]);
      break;
    case DF_ARG:
      return 0; /* no history entry (BuildKit) */
    case DF_ADD:
    case DF_COPY:
    case DF_RUN:
    case DF_WORKDIR:
    case DF_FROM:
    case DF_KIND_COUNT:
      return kiln_error_make (err, EINVAL, "internal: %s is not a metadata instruction", dockerfile_kind_name (s->kind));
    }
  if (s->kind == DF_CMD || s->kind == DF_ENTRYPOINT)
    {
      autofree char *j = json_argv_text (s->argv);
      autofree char *cb = xasprintf ("%s %s", s->kind == DF_CMD ? "CMD" : "ENTRYPOINT", j);
      image_spec_add_history (sp, created_time (b), cb, NULL, true);
    }
  else
    image_spec_add_history (sp, created_time (b), text, NULL, true);
  return 0;
}

/* Docker leaves the proxy build-args out of the cache key. */
static bool
is_proxy_arg (const char *kv)
{
  static const char *const names[] = { "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY" };
  size_t kl = strcspn (kv, "=");
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    if (strlen (names[i]) == kl && strncasecmp (kv, names[i], kl) == 0)
      return true;
  return false;
}

/* Begin the step's key: the stage's key and the expanded step. */
static void
step_key_begin (build_exec *b, stage_state *st, const plan_step *s)
{
  st->ckey_open = false;
  if (!build_cache_enabled (b->o.cache))
    return;
  build_cache_key *k = &st->ckey;
  build_cache_key_begin (k, st->key);
  build_cache_key_add (k, "kind", dockerfile_kind_name (s->kind));
  build_cache_key_add (k, "json", s->json ? "1" : "0");
  for (char **a = s->args; a && *a; a++)
    build_cache_key_add (k, "arg", *a);
  for (char **a = s->argv; a && *a; a++)
    build_cache_key_add (k, "argv", *a);
  for (size_t i = 0; i < s->n_kvs; i++)
    {
      build_cache_key_add (k, "key", s->kvs[i].key);
      build_cache_key_add (k, "value", s->kvs[i].value);
    }
  for (size_t i = 0; i < s->n_flags; i++)
    {
      build_cache_key_add (k, "flag", s->flags[i].key);
      build_cache_key_add (k, "value", s->flags[i].value);
    }
  for (size_t i = 0; i < s->n_heredocs; i++)
    {
      build_cache_key_add (k, "heredoc", s->heredocs[i].name);
      build_cache_key_add (k, "body", s->heredocs[i].body);
    }
  for (char **e = s->build_env; e && *e; e++)
    if (!is_proxy_arg (*e))
      build_cache_key_add (k, "build-env", *e);
  if (s->from_stage >= 0)
    build_cache_key_add (k, "from-stage", b->stages[s->from_stage].key);
  if (s->from_image)
    build_cache_key_add (k, "from-image", s->from_image);
  st->ckey_open = true;
}

static int run_step_kind (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err);

static int
run_step (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err)
{
  st->cached = NULL;
  step_key_begin (b, st, s);
  int r = run_step_kind (b, st, s, err);
  if (st->ckey_open && r == 0)
    key_finish (st, st->key); /* metadata steps: the step text is the key */
  else if (st->ckey_open)
    build_cache_key_abort (&st->ckey);
  st->ckey_open = false;
  return r;
}

static int
run_step_kind (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err)
{
  switch (s->kind)
    {
    case DF_RUN:
      return step_run (b, st, s, err);
    case DF_COPY:
    case DF_ADD:
      {
        /* "copy" is reading the sources; packing counts as "pack". */
        double t0 = now_s (), p0 = st->pack_secs;
        int r = step_copy (b, st, s, err);
        add_time (b, &b->res->t_copy, now_s () - t0 - (st->pack_secs - p0));
        return r;
      }
    case DF_WORKDIR:
      return step_workdir (b, st, s, err);
    case DF_ENV:
    case DF_LABEL:
    case DF_EXPOSE:
    case DF_VOLUME:
    case DF_CMD:
    case DF_ENTRYPOINT:
    case DF_USER:
    case DF_SHELL:
    case DF_STOPSIGNAL:
    case DF_HEALTHCHECK:
    case DF_ONBUILD:
    case DF_MAINTAINER:
    case DF_ARG:
      return step_meta (b, st, s, err);
    case DF_FROM:
    case DF_KIND_COUNT:
      break;
    }
  return kiln_error_make (err, EINVAL, "internal: unexpected %s step", dockerfile_kind_name (s->kind));
}

/* The base's ONBUILD triggers run right after FROM, as Docker does; they
 * are consumed (the new image does not inherit them). Each trigger is
 * planned like a Dockerfile line following FROM of the same base, so its
 * variables expand against the base image's ENV and the build-args. */
static int
run_onbuild (build_exec *b, const plan_stage *ps, stage_state *st, const char *label, kiln_error **err)
{
  autostrv char **triggers = steal_pointer (&st->spec.onbuild);
  if (!triggers || !triggers[0])
    return 0;
  autostrbuf strbuf sb = STRBUF_INIT;
  strbuf_addf (&sb, "FROM %s\n", ps->base_stage >= 0 || ps->scratch ? "scratch" : ps->base);
  for (char **t = triggers; *t; t++)
    strbuf_addf (&sb, "%s\n", *t);
  autofree char *name = xasprintf ("ONBUILD triggers of '%s'", ps->base);
  dockerfile *df = NULL;
  if (dockerfile_parse (name, sb.buf, sb.len, &df, err) < 0)
    return -1;
  plan_options po = { .build_args = b->o.build_args, .platform = ps->platform, .skip_unused_stages = true,
                      .image_env = build_exec_image_env, .image_env_ctx = b };
  plan *tp = NULL;
  if (plan_build (df, &po, &tp, err) < 0)
    return -1;
  int r = 0;
  const plan_stage *ts = &tp->stages[0];
  for (size_t i = 0; i < ts->n_steps && r == 0; i++)
    {
      autofree char *text = one_line (ts->steps[i].instr->original);
      autofree char *shown = xasprintf ("ONBUILD %s", text);
      st->step_id = progress_step_begin (b->o.progress, label, i + 1, ts->n_steps, shown);
      r = run_step (b, st, &ts->steps[i], err);
      progress_step_end_id (b->o.progress, st->step_id, r < 0 ? "ERROR" : st->cached ? "CACHED" : "DONE");
      if (r < 0)
        kiln_error_wrap (err, "%s: trigger %zu/%zu: %s", name, i + 1, ts->n_steps, text);
    }
  plan_free (tp);
  return r;
}

static int
build_stage_steps (build_exec *b, int idx, kiln_error **err)
{
  const plan_stage *ps = &b->p->stages[idx];
  stage_state *st = &b->stages[idx];
  autofree char *label = ps->name ? xstrdup (ps->name) : xasprintf ("stage-%d", idx);
  size_t total = ps->n_steps + 1;
  autofree char *from = xasprintf ("FROM %s%s%s", ps->base, ps->name ? " AS " : "", ps->name ? ps->name : "");
  st->step_id = progress_step_begin (b->o.progress, label, 1, total, from);
  if (stage_from (b, ps, st, err) < 0)
    {
      progress_step_end_id (b->o.progress, st->step_id, "ERROR");
      return kiln_error_wrap (err, "%s:%d: FROM %s", b->p->df->path, ps->steps ? ps->steps[0].instr->line - 1 : 0,
                              ps->base);
    }
  progress_step_end_id (b->o.progress, st->step_id, "DONE");
  if (run_onbuild (b, ps, st, label, err) < 0)
    return -1;
  for (size_t i = 0; i < ps->n_steps; i++)
    {
      const plan_step *s = &ps->steps[i];
      autofree char *text = one_line (s->instr->original);
      if (b->o.signal_flag && *b->o.signal_flag)
        return kiln_error_make (err, EINTR, "interrupted by signal %d (%s) before %s", (int) *b->o.signal_flag,
                                strsignal ((int) *b->o.signal_flag), text);
      if (b->failed)
        return kiln_error_make (err, ECANCELED, "stopped before %s: another stage failed", text);
      st->step_id = progress_step_begin (b->o.progress, label, i + 2, total, text);
      if (run_step (b, st, s, err) < 0)
        {
          progress_step_end_id (b->o.progress, st->step_id, "ERROR");
          return kiln_error_wrap (err, "%s:%d: [%s %zu/%zu] %s", b->p->df->path, s->instr->line, label, i + 2, total,
                                  text);
        }
      progress_step_end_id (b->o.progress, st->step_id, st->cached ? "CACHED" : "DONE");
    }
  st->built = true;
  return 0;
}

static int
build_stage (build_exec *b, int idx, kiln_error **err)
{
  int r = build_stage_steps (b, idx, err);
  run_session_end (b, &b->stages[idx]);
  return r;
}

/* ---- the image ---- */

/* kaniko's --single-snapshot: the layers the target stage added become one
 * layer on its base; history keeps every step, only the last one that
 * made a layer is marked as having it. */
static int
single_snapshot (build_exec *b, stage_state *st, kiln_error **err)
{
  size_t nb = st->n_base_layers, na = st->n_layers - nb;
  if (na <= 1)
    return 0;
  st->step_id = progress_step_begin (b->o.progress, NULL, 1, 1, "single snapshot of the stage's layers");
  double t0 = now_s (), p0 = st->pack_secs;
  autofree char **ids = xcalloc (na + 1, sizeof *ids);
  for (size_t i = 0; i < na; i++)
    ids[i] = st->layers[nb + i].diff_id;
  squash *q = NULL;
  build_cache_entry e = { 0 };
  size_t n;
  int r = squash_new (b->o.store, ids, na, &q, err);
  if (r == 0)
    {
      const layer_change *ch = squash_changes (q, &n);
      r = write_layer (b, st, ch, n, &e, err);
    }
  squash_free (q);
  if (r < 0)
    {
      progress_step_end_id (b->o.progress, st->step_id, "ERROR");
      return kiln_error_wrap (err, "--single-snapshot");
    }
  add_time (b, &b->res->t_snapshot, now_s () - t0 - (st->pack_secs - p0));
  for (size_t i = nb; i < st->n_layers; i++)
    free (st->layers[i].media_type);
  st->n_layers = nb;
  stage_add_layer (st, e.diff_id, e.digest, e.media_type, e.size);
  /* diff_ids: the base's, then the one layer. */
  size_t nd = strv_len (st->spec.diff_ids);
  for (size_t i = nd - na; i < nd; i++)
    free (st->spec.diff_ids[i]);
  st->spec.diff_ids[nd - na] = NULL;
  strv_push (&st->spec.diff_ids, e.diff_id);
  size_t left = na;
  for (size_t i = st->spec.n_history; i-- > 0 && left > 0;)
    if (!st->spec.history[i].empty_layer)
      {
        st->spec.history[i].empty_layer = left != na;
        left--;
      }
  progress_step_end_id (b->o.progress, st->step_id, "DONE");
  return 0;
}

static int
finish_image (build_exec *b, stage_state *st, build_result *res, kiln_error **err)
{
  if (b->o.single_snapshot && single_snapshot (b, st, err) < 0)
    return -1;
  for (char **l = b->o.labels; l && *l; l++)
    {
      autofree char *k = xstrndup (*l, strcspn (*l, "="));
      const char *v = strchr (*l, '=');
      env_set (&st->spec.labels, k, v ? v + 1 : "");
    }
  sandbox_env_ensure_path (&st->spec.env);
  st->spec.created = created_time (b);
  autofree char *cfg = NULL;
  size_t cfg_len;
  if (image_config_json (&st->spec, &cfg, &cfg_len, err) < 0)
    return kiln_error_wrap (err, "image config");
  digest_buffer (cfg, cfg_len, res->config_digest);
  if (store_put_blob (b->o.store, res->config_digest, cfg, cfg_len, err) < 0)
    return -1;
  autofree image_descriptor *ds = xcalloc (st->n_layers + 1, sizeof *ds);
  res->size = cfg_len;
  for (size_t i = 0; i < st->n_layers; i++)
    {
      ds[i] = (image_descriptor) { media_type_for_format (st->layers[i].media_type, b->o.format),
                                   st->layers[i].digest, st->layers[i].size };
      res->size += st->layers[i].size;
    }
  if (image_manifest_json (b->o.format, res->config_digest, cfg_len, ds, st->n_layers, &res->manifest,
                           &res->manifest_len, err) < 0)
    return kiln_error_wrap (err, "image manifest");
  digest_buffer (res->manifest, res->manifest_len, res->manifest_digest);
  if (store_put_blob (b->o.store, res->manifest_digest, res->manifest, res->manifest_len, err) < 0)
    return -1;
  res->manifest_media_type = image_manifest_media_type (b->o.format);
  res->layers = xcalloc (st->n_layers + 1, sizeof *res->layers);
  for (size_t i = 0; i < st->n_layers; i++)
    {
      res->layers[i] = st->layers[i];
      res->layers[i].media_type = xstrdup (ds[i].media_type);
    }
  res->n_layers = st->n_layers;
  return 0;
}

typedef struct wave
{
  build_exec *b;
  int *idx;                  /* stages of the wave */
  size_t n, next;
  kiln_error *err;           /* the first failure */
} wave;

static void *
wave_worker (void *arg)
{
  wave *w = arg;
  build_exec *b = w->b;
  for (;;)
    {
      pthread_mutex_lock (&b->lock);
      int i = w->next < w->n && !b->failed ? w->idx[w->next++] : -1;
      pthread_mutex_unlock (&b->lock);
      if (i < 0)
        return NULL;
      kiln_error *e = NULL;
      if (build_stage (b, i, &e) < 0)
        {
          pthread_mutex_lock (&b->lock);
          if (!w->err && e && e->status != ECANCELED)
            w->err = steal_pointer (&e);
          /* Stop the other stages' running steps too (their RUN
           * sandboxes poll the cancel pipe). */
          if (!b->failed && b->o.cancel)
            sigcancel_trigger (b->o.cancel);
          b->failed = true;
          pthread_mutex_unlock (&b->lock);
          kiln_error_free (e);
        }
    }
}

static int
build_wave (build_exec *b, int wn, kiln_error **err)
{
  autofree int *idx = xcalloc (b->p->n_stages + 1, sizeof *idx);
  size_t n = 0;
  for (size_t i = 0; i < b->p->n_stages; i++)
    if (b->p->stages[i].needed && b->p->stages[i].wave == wn)
      idx[n++] = (int) i;
  int jobs = b->o.jobs > 0 ? b->o.jobs : 1;
  if (n <= 1 || jobs <= 1)
    {
      for (size_t i = 0; i < n; i++)
        if (build_stage (b, idx[i], err) < 0)
          return -1;
      return 0;
    }
  wave w = { b, idx, n, 0, NULL };
  size_t nt = (size_t) jobs < n ? (size_t) jobs : n;
  autofree pthread_t *t = xcalloc (nt, sizeof *t);
  size_t started = 0;
  for (; started < nt; started++)
    if (pthread_create (&t[started], NULL, wave_worker, &w) != 0)
      break;
  if (started == 0)
    wave_worker (&w); /* no thread could be made: build them here */
  for (size_t i = 0; i < started; i++)
    pthread_join (t[i], NULL);
  if (w.err)
    {
      *err = w.err;
      return -1;
    }
  if (b->failed)
    return kiln_error_make (err, ECANCELED, "a stage failed");
  return 0;
}

int
build_exec_run (build_exec *b, plan *p, build_result *res, kiln_error **err)
{
  b->p = p;
  b->res = res;
  b->stages = xcalloc (p->n_stages, sizeof *b->stages);
  int ret = -1;
  /* Waves in order; the stages of one wave are independent and run on up
   * to --jobs threads. */
  int max_wave = -1;
  for (size_t i = 0; i < p->n_stages; i++)
    if (p->stages[i].wave > max_wave)
      max_wave = p->stages[i].wave;
  for (int w = 0; w <= max_wave; w++)
    if (build_wave (b, w, err) < 0)
      goto out;
  if (finish_image (b, &b->stages[p->target], res, err) < 0)
    goto out;
  res->t_pull = b->t_pull;
  ret = 0;
out:
  for (size_t i = 0; i < p->n_stages; i++)
    stage_state_clear (&b->stages[i]);
  free (b->stages);
  b->stages = NULL;
  return ret;
}
