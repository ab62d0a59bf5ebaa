/* build_exec.c - the build engine (see build_exec.h): the API, the stage
 * loop, the waves of independent stages built in parallel, a stage's layers
 * and the final image. The steps themselves are in build_from.c (FROM),
 * build_run.c (RUN), build_copy.c (COPY/ADD) and build_meta.c (the rest);
 * build_key.c makes every cache key (build_internal.h has the map). */
#include "build/build_internal.h"
#include "build/squash.h"
#include "store/extract.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

void
build_result_clear (build_result *r)
{
  free (r->manifest);
  /* an index's n_layers counts its images' layers; it has no array */
  for (size_t i = 0; r->layers && i < r->n_layers; i++)
    {
      free (r->layers[i].media_type);
      free (r->layers[i].origin);
      free (r->layers[i].source);
    }
  free (r->layers);
  strv_free (r->fetched);
  strv_free (r->add_urls);
  free (r->os);
  free (r->architecture);
  free (r->variant);
  for (size_t i = 0; i < r->n_images; i++)
    build_result_clear (&r->images[i]);
  free (r->images);
  memset (r, 0, sizeof *r);
}

/* A store inside the context (KILN_ROOT=$CI_PROJECT_DIR/.kiln-store) would
 * be copied by COPY . and change every build's key: leave it out, and say
 * so. */
static int
exclude_store (const build_exec_opts *opts, dockerignore *ign, kiln_error **err)
{
  autofree char *ctx = realpath (opts->context_dir, NULL);
  autofree char *root = opts->store ? realpath (opts->store->root, NULL) : NULL;
  if (!ctx || !root)
    return 0;
  size_t n = strlen (ctx);
  if (strncmp (root, ctx, n) != 0 || (root[n] != '/' && root[n] != '\0'))
    return 0;
  if (root[n] == '\0')
    return kiln_error_make (err, EINVAL, "the store '%s' is the build context itself: put --root (KILN_ROOT) "
                            "elsewhere", root);
  log_warn ("the store '%s' lies inside the build context '%s': it is left out of the context (put --root, "
            "KILN_ROOT, outside it)", root, ctx);
  if (dockerignore_exclude_dir (ign, root + n + 1, err) < 0)
    return kiln_error_wrap (err, "leaving the store out of the context");
  return 0;
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
      if (exclude_store (opts, b->ign, err) < 0)
        {
          build_exec_free (b);
          return -1;
        }
    }
  *out = b;
  return 0;
}

static void
stage_state_clear (stage_state *s)
{
  image_spec_free (&s->spec);
  build_key_stage_free (s);
  for (size_t i = 0; i < s->n_layers; i++)
    {
      free (s->layers[i].media_type);
      free (s->layers[i].origin);
      free (s->layers[i].source);
    }
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
  strv_free (b->add_urls);
  pthread_mutex_destroy (&b->lock);
  if (b->ctxfd >= 0)
    close (b->ctxfd);
  dockerignore_free (b->ign);
  seccomp_filter_free (b->filter);
  seccomp_filter_free (b->filter_lazy_net);
  seccomp_profile_free (b->profile);
  free (b->profile_name);
  sandbox_limiter_free (b->limiter);
  free (b);
}

/* ---- a stage's layers ---- */

void
build_exec_add_layer (stage_state *st, const char *diff_id, const char *digest, const char *media_type,
                      int64_t size)
{
  st->layers = xreallocarray (st->layers, st->n_layers + 1, sizeof *st->layers);
  build_layer *l = &st->layers[st->n_layers++];
  memset (l, 0, sizeof *l);
  snprintf (l->diff_id, sizeof l->diff_id, "%s", diff_id);
  snprintf (l->digest, sizeof l->digest, "%s", digest);
  l->media_type = xstrdup (media_type);
  l->size = size;
}

void
build_exec_apply_entry (build_exec *b, stage_state *st, const build_cache_entry *e, const char *created_by)
{
  if (e->empty)
    {
      image_spec_add_history (&st->spec, created_time (b), created_by, NULL, true);
      return;
    }
  build_exec_add_layer (st, e->diff_id, e->digest, mediatype_layer_for_format (e->media_type, b->o.format == IMAGE_FORMAT_DOCKER), e->size);
  size_t si = (size_t) (st - b->stages);
  const char *sname = b->p && si < b->p->n_stages ? b->p->stages[si].name : NULL;
  st->layers[st->n_layers - 1].origin = xasprintf ("stage %zu%s%s%s step %s: %s", si, sname ? " (" : "",
                                                   sname ? sname : "", sname ? ")" : "", st->step_label, created_by);
  if (e->source[0])
    st->layers[st->n_layers - 1].source = xstrdup (e->source);
  strv_push (&st->spec.diff_ids, e->diff_id);
  image_spec_add_history (&st->spec, created_time (b), created_by, NULL, false);
}

/* ---- data a user can write ----
 *
 * A build context file that COPY or ADD puts in a layer is its user's: it
 * may be edited while the layer is made or at any time after. The layer
 * writer packs it from the context, and extract_from_changes hard-links
 * it into the store layer only while it is still the inode (and ctime)
 * the step read, recording each such link; the store verifies them
 * whenever it opens the layer and extracts the layer again from its blob
 * when one changed (store/links.h). A file changed during the build is an
 * error. */

/* Write the layer of ch into a blob, then the store layer from the same
 * change list. */
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
      return kiln_error_wrap (err, "writing the layer to '%s/tmp/%s'", b->o.store->root, tmp);
    }
  if (store_blob_adopt (b->o.store, tmp, wr.blob_digest, err) < 0)
    return -1;
  double dt = now_s () - t0;
  add_time (b, &b->res->t_pack, dt);
  st->pack_secs += dt;
  /* The store layer comes from the same change list (data hardlinked from
   * the overlay's frozen upper, the source trees or the build context), not from
   * reading the blob back: no second decompression and write of the
   * layer's data. */
  if (extract_from_changes (b->o.store, ch, n, &b->o.layer, wr.diff_id, wr.blob_digest, err) < 0)
    return -1;
  snprintf (e->diff_id, sizeof e->diff_id, "%s", wr.diff_id);
  snprintf (e->digest, sizeof e->digest, "%s", wr.blob_digest);
  snprintf (e->media_type, sizeof e->media_type, "%s",
            mediatype_layer (b->o.layer.compression, b->o.format == IMAGE_FORMAT_DOCKER));
  e->size = (int64_t) wr.blob_size;
  log_debug ("layer %s (%" PRIu64 " entries, %" PRIu64 " bytes compressed)", wr.diff_id, wr.entries, wr.blob_size);
  return 0;
}

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

/* Write changes as a new layer of st: blob into the store, extracted so the
 * next step can stack on it, diffID and history recorded. The step's cache
 * key is final_key (RUN: known before the step ran) or the open key with
 * the change list folded in (COPY/ADD/WORKDIR: their sources' content). */
int
build_exec_commit_layer (build_exec *b, stage_state *st, const layer_change *ch, size_t n, const char *created_by,
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
      if (build_key_changes (st, ch, n, key, err) < 0)
        return -1;
      int r = build_key_lookup (b, st, key, run, created_by, err);
      if (r != 0)
        return r < 0 ? -1 : 0;
    }
  build_cache_entry e = { .empty = n == 0 };
  if (n && write_layer (b, st, ch, n, &e, err) < 0)
    return -1;
  build_exec_apply_entry (b, st, &e, created_by);
  return build_key_record (b, st, key, run, &e, created_by, err);
}

/* ---- the stage loop ---- */

static int run_step_kind (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err);

static int
run_step (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err)
{
  st->cached = NULL;
  build_key_step_begin (b, st, s);
  int r = run_step_kind (b, st, s, err);
  build_key_step_end (st, s, r == 0);
  return r;
}

/* Which file runs a step: every kind is named (no default), so a new
 * instruction kind does not compile until it has a place here. */
static int
run_step_kind (build_exec *b, stage_state *st, const plan_step *s, kiln_error **err)
{
  switch (s->kind)
    {
    case DF_RUN:
      return build_run_step (b, st, s, err);
    case DF_COPY:
    case DF_ADD:
      {
        /* "copy" is reading the sources; packing counts as "pack", fetching
         * lazy layers as "pull". */
        double t0 = now_s (), p0 = st->pack_secs, l0 = build_from_lazy_secs ();
        int r = build_copy_step (b, st, s, err);
        add_time (b, &b->res->t_copy,
                  now_s () - t0 - (st->pack_secs - p0) - (build_from_lazy_secs () - l0));
        return r;
      }
    case DF_WORKDIR:
      return build_meta_workdir (b, st, s, err);
    case DF_VOLUME:
      return build_meta_volume (b, st, s, err);
    case DF_ENV:
    case DF_LABEL:
    case DF_EXPOSE:
    case DF_CMD:
    case DF_ENTRYPOINT:
    case DF_USER:
    case DF_SHELL:
    case DF_STOPSIGNAL:
    case DF_HEALTHCHECK:
    case DF_ONBUILD:
    case DF_MAINTAINER:
    case DF_ARG:
      return build_meta_step (b, st, s, err);
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
      autofree char *text = build_meta_title (ts->steps[i].instr->original, df->escape);
      autofree char *shown = xasprintf ("ONBUILD %s", text);
      st->step_id = progress_step_begin (b->o.progress, label, i + 1, ts->n_steps, shown);
      snprintf (st->step_label, sizeof st->step_label, "onbuild %zu", i + 1);
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
  autofree char *name = ps->name ? xstrdup (ps->name) : xasprintf ("stage-%d", idx);
  autofree char *label = b->o.platform_labels ? xasprintf ("%s %s", ps->platform, name) : xstrdup (name);
  size_t total = ps->n_steps + 1;
  autofree char *from = xasprintf ("FROM %s%s%s", ps->base, ps->name ? " AS " : "", ps->name ? ps->name : "");
  st->step_id = progress_step_begin (b->o.progress, label, 1, total, from);
  if (build_from_stage (b, ps, st, err) < 0)
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
      autofree char *text = build_meta_title (s->instr->original, b->p->df->escape);
      if (b->o.signal_flag && *b->o.signal_flag)
        return kiln_error_make (err, EINTR, "interrupted by signal %d (%s) before %s", (int) *b->o.signal_flag,
                                strsignal ((int) *b->o.signal_flag), text);
      if (b->failed)
        return kiln_error_make (err, ECANCELED, "stopped before %s: another stage failed", text);
      st->step_id = progress_step_begin (b->o.progress, label, i + 2, total, text);
      snprintf (st->step_label, sizeof st->step_label, "%zu", i + 2);
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
  build_run_session_end (b, &b->stages[idx]);
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
  int r = build_from_fetch_lazy (b, st->layers + nb, na, err);
  if (r == 0)
    r = squash_new (b->o.store, ids, na, &q, err);
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
    {
      free (st->layers[i].media_type);
      free (st->layers[i].origin);
      free (st->layers[i].source);
    }
  st->n_layers = nb;
  build_exec_add_layer (st, e.diff_id, e.digest, e.media_type, e.size);
  st->layers[st->n_layers - 1].origin = xstrdup ("--single-snapshot of the target stage's steps");
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

/* Whether the fetched image "REF@PLATFORM" belongs to the image being
 * finished: with several platforms the executor has fetched the images of
 * every platform (all are planned first), and an image's provenance lists
 * those of its own plan's stage platforms only (its target platform, and
 * the build platform of FROM --platform=$BUILDPLATFORM stages). */
static bool
fetched_for_plan (const build_exec *b, const char *key)
{
  if (!b->o.platform_labels)
    return true;
  const char *at = strrchr (key, '@');
  const char *platform = at ? at + 1 : "";
  for (size_t i = 0; i < b->p->n_stages; i++)
    if (strcmp (b->p->stages[i].platform ? b->p->stages[i].platform : "", platform) == 0)
      return true;
  return false;
}

/* Whether the URL, digest pair is in v (pairs) already: the executor
 * lists an ADD URL once per download, and every platform may download it. */
static bool
url_listed (char **v, const char *url, const char *digest)
{
  for (char **u = v; u && u[0] && u[1]; u += 2)
    if (strcmp (u[0], url) == 0 && strcmp (u[1], digest) == 0)
      return true;
  return false;
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
      build_meta_env_set (&st->spec.labels, k, v ? v + 1 : "");
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
      ds[i] = (image_descriptor) { mediatype_layer_for_format (st->layers[i].media_type, b->o.format == IMAGE_FORMAT_DOCKER),
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
      res->layers[i].origin = st->layers[i].origin ? xstrdup (st->layers[i].origin) : NULL;
      res->layers[i].source = st->layers[i].source ? xstrdup (st->layers[i].source) : NULL;
    }
  res->n_layers = st->n_layers;
  res->os = xstrdup (st->spec.os ? st->spec.os : "linux");
  res->architecture = xstrdup (st->spec.architecture ? st->spec.architecture : "unknown");
  res->variant = st->spec.variant ? xstrdup (st->spec.variant) : NULL;
  pthread_mutex_lock (&b->lock);
  for (size_t i = 0; i < b->n_fetched; i++)
    if (fetched_for_plan (b, b->fetched[i]->key))
      {
        strv_push (&res->fetched, b->fetched[i]->key);
        strv_push (&res->fetched, b->fetched[i]->res.manifest_digest);
      }
  for (char **u = b->add_urls; u && u[0] && u[1]; u += 2)
    if (!url_listed (res->add_urls, u[0], u[1]))
      {
        strv_push (&res->add_urls, u[0]);
        strv_push (&res->add_urls, u[1]);
      }
  pthread_mutex_unlock (&b->lock);
  return 0;
}

/* ---- waves: independent stages on up to --jobs threads ---- */

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
  if (build_exec_check_emulation (b, p, err) < 0)
    return -1;
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
