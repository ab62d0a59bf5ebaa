/* build_key.c - the build cache key of every step, in one place (see
 * build_internal.h; build_cache.c stores and looks the keys up).
 *
 * A stage's key starts from what its layers start from, salted with every
 * option that changes layer bytes (build_key_stage). A step's key is the
 * stage's key and the expanded step (build_key_step_begin), and then:
 *   RUN          what its bind mounts show (build_key_run); known before
 *                the step runs, so a hit skips the run
 *   COPY/ADD/    the change list the step would write (build_key_changes):
 *   WORKDIR      the content of its sources
 *   metadata     nothing more: the step text is the key
 * After the step the stage's key becomes the step's key and what it
 * produced (chain_result).
 *
 * The bytes fed here are the cache's format: changing them (or their
 * order) makes every existing entry a miss.
 */
#include "build/build_internal.h"
#include "build/copy.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>

#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the stage's ancestry (for explaining misses) ---- */

static void
ancestry_add (stage_state *st, const char *label, const char *kind, bool ran)
{
  st->anc = xreallocarray (st->anc, st->n_anc + 1, sizeof *st->anc);
  build_ancestor *a = &st->anc[st->n_anc++];
  snprintf (a->label, sizeof a->label, "%s", label);
  snprintf (a->kind, sizeof a->kind, "%s", kind);
  snprintf (a->key, sizeof a->key, "%s", st->key);
  a->ran = ran;
}

void
build_key_stage_free (stage_state *st)
{
  free (st->anc);
  st->anc = NULL;
  st->n_anc = 0;
  cache_components_free (st->comp);
  st->comp = NULL;
}

/* ---- the stage's key ---- */

void
build_key_stage (build_exec *b, stage_state *st, const char *what, const char *base)
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
  st->n_anc = 0;
  ancestry_add (st, "1", "FROM", false);
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

/* ---- the step's key ---- */

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

/* The same step across builds: the Dockerfile's and context's names, the
 * stage, the step's number and kind, the platform (not the text: an
 * edited instruction is still "this step"). */
static void
step_position (build_exec *b, stage_state *st, const plan_step *s)
{
  int idx = (int) (st - b->stages);
  const plan_stage *ps = idx >= 0 && (size_t) idx < b->p->n_stages ? &b->p->stages[idx] : NULL;
  char ctx[PATH_MAX] = "";
  if (b->o.context_dir && !realpath (b->o.context_dir, ctx))
    snprintf (ctx, sizeof ctx, "%s", b->o.context_dir);
  autofree char *dfp = xstrdup (b->p->df->path ? b->p->df->path : "Dockerfile");
  autofree char *pos = xasprintf ("kiln step position v1\n%s\n%s\n%s\n%d\n%s\n%s\n%s/%s", basename (ctx),
                                  basename (dfp), ps && ps->name ? ps->name : "", idx, st->step_label,
                                  dockerfile_kind_name (s->kind), st->spec.os ? st->spec.os : "",
                                  st->spec.architecture ? st->spec.architecture : "");
  char d[DIGEST_STRING_SIZE];
  digest_buffer (pos, strlen (pos), d);
  snprintf (st->position, sizeof st->position, "%s", digest_hex (d));
}

/* What a step's entry records besides its key's fields. */
static void
components_begin (build_exec *b, stage_state *st, const plan_step *s)
{
  cache_components_free (st->comp);
  st->comp = cache_components_new ();
  st->missed = false;
  cache_components_set_parent (st->comp, st->key);
  autofree char *text = build_meta_one_line (s->instr->original);
  cache_components_note (st->comp, "instruction", text);
  cache_components_note (st->comp, "user", st->spec.user ? st->spec.user : "");
  cache_components_note (st->comp, "workdir", st->spec.working_dir ? st->spec.working_dir : "");
  autostrbuf strbuf sh = STRBUF_INIT;
  for (char **a = st->spec.shell; a && *a; a++)
    strbuf_addf (&sh, "%s%s", a == st->spec.shell ? "" : " ", *a);
  cache_components_note (st->comp, "shell", sh.buf ? sh.buf : "");
  autofree char *plat = xasprintf ("%s/%s", st->spec.os ? st->spec.os : "",
                                   st->spec.architecture ? st->spec.architecture : "");
  cache_components_note (st->comp, "platform", plat);
  const char *from = plan_step_flag (s, "from");
  if (from)
    cache_components_note (st->comp, "from-name", from);
  for (size_t i = 0; i < st->n_anc; i++)
    cache_components_ancestor (st->comp, st->anc[i].label, st->anc[i].kind, st->anc[i].key, st->anc[i].ran);
  step_position (b, st, s);
  st->ckey.rec = st->comp;
  st->ckey.name_dirfd = b->ctxfd;
}

void
build_key_step_begin (build_exec *b, stage_state *st, const plan_step *s)
{
  st->ckey_open = false;
  if (!build_cache_enabled (b->o.cache))
    return;
  build_cache_key *k = &st->ckey;
  build_cache_key_begin (k, st->key);
  components_begin (b, st, s);
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

/* Finish the current step's key into out (nothing when the cache is off). */
static void
key_finish (stage_state *st, char out[DIGEST_STRING_SIZE])
{
  if (!st->ckey_open)
    return;
  build_cache_key_end (&st->ckey, out);
  st->ckey_open = false;
}

void
build_key_step_end (stage_state *st, const plan_step *s, bool ok)
{
  if (st->ckey_open && ok)
    key_finish (st, st->key); /* metadata steps: the step text is the key */
  else if (st->ckey_open)
    build_cache_key_abort (&st->ckey);
  st->ckey_open = false;
  st->ckey.rec = NULL;
  cache_components_free (st->comp);
  st->comp = NULL;
  if (ok && st->n_anc)
    ancestry_add (st, st->step_label, dockerfile_kind_name (s->kind), st->missed);
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
          int idx = build_from_find_stage (b, from);
          if (idx >= 0)
            {
              build_cache_key_add (&st->ckey, "mount-stage", b->stages[idx].key);
              continue;
            }
          const store_fetch_result *fr;
          if (build_from_fetch_image (b, from, build_from_stage_platform (b, st), &fr, err) < 0)
            return -1;
          build_cache_key_add (&st->ckey, "mount-image", fr->manifest_digest);
          continue;
        }
      if (b->ctxfd < 0)
        continue; /* run_mounts refuses it */
      /* onto an empty view: the stage's files (lazy layers) are not
       * fetched for a key (build_key_lazy) */
      overlay_lower *view = NULL;
      if (overlay_lower_open_store (b->o.store, NULL, 0, &view, err) < 0)
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

int
build_key_run (build_exec *b, stage_state *st, const plan_step *s, char key[DIGEST_STRING_SIZE], kiln_error **err)
{
  if (!st->ckey_open)
    return 0;
  if (key_add_mounts (b, st, s, err) < 0)
    return -1;
  key_finish (st, key);
  return 0;
}

int
build_key_changes (stage_state *st, const layer_change *ch, size_t n, char key[DIGEST_STRING_SIZE],
                   kiln_error **err)
{
  if (build_cache_key_add_changes (&st->ckey, ch, n, err) < 0)
    return kiln_error_wrap (err, "computing the build cache key");
  key_finish (st, key);
  return 0;
}

/* ---- steps keyed without the layers below (lazy layers) ---- */

bool
build_key_lazy (stage_state *st)
{
  return st->ckey_open;
}

int
build_key_lazy_finish (stage_state *st, const layer_change *ch, size_t n, char key[DIGEST_STRING_SIZE],
                       kiln_error **err)
{
  /* keyed, not recorded: no explanation names it */
  cache_components *rec = st->ckey.rec;
  st->ckey.rec = NULL;
  build_cache_key_add (&st->ckey, "keyed", "without-lower");
  st->ckey.rec = rec;
  return build_key_changes (st, ch, n, key, err);
}

/* ---- lookup and record under the step's key ---- */

static bool
cache_wanted (build_exec *b, bool run)
{
  return build_cache_wants (b->o.cache, run);
}

int
build_key_lookup (build_exec *b, stage_state *st, const char *key, bool run, const char *created_by,
                  kiln_error **err)
{
  if (!*key || !cache_wanted (b, run))
    return 0;
  build_cache_entry e;
  const char *where = NULL;
  int r = build_cache_lookup (b->o.cache, key, run, st->spec.os, st->spec.architecture, &e, &where, err);
  if (r == 0 && st->comp)
    {
      build_cache_step step = { st->position, st->comp };
      autofree char *text = NULL, *json = NULL;
      build_cache_explain (b->o.cache, &step, run, &text, &json);
      progress_step_cache_miss_id (b->o.progress, st->step_id, text, json);
      st->missed = true;
    }
  if (r <= 0)
    return r;
  build_exec_apply_entry (b, st, &e, created_by);
  chain_result (st, key, &e);
  st->cached = where;
  return 1;
}

int
build_key_record (build_exec *b, stage_state *st, const char *key, bool run, const build_cache_entry *e,
                  const char *created_by, kiln_error **err)
{
  if (!*key)
    return 0;
  chain_result (st, key, e);
  if (!cache_wanted (b, run))
    return 0;
  build_cache_step step = { st->position, st->comp };
  return build_cache_record (b->o.cache, key, run, st->spec.os, st->spec.architecture, e, created_by,
                             st->comp ? &step : NULL, err);
}

/* ---- the context as a whole (provenance; build_exec.h) ---- */

static char
change_type (const layer_change *c)
{
  if (c->hardlink_target)
    return 'h';
  switch (c->meta.type)
    {
    case LAYER_INDEX_REG: return 'f';
    case LAYER_INDEX_DIR: return 'd';
    case LAYER_INDEX_SYMLINK: return 'l';
    case LAYER_INDEX_CHR: return 'c';
    case LAYER_INDEX_BLK: return 'b';
    case LAYER_INDEX_FIFO: return 'p';
    case LAYER_INDEX_SOCK: return 's';
    default: return '?';
    }
}

static int
cmp_change_path (const void *a, const void *b)
{
  return strcmp ((*(const layer_change *const *) a)->path, (*(const layer_change *const *) b)->path);
}

/* One entry of the listing: TYPE NUL MODE NUL PATH NUL VALUE NUL. */
static int
context_entry (digest_ctx *d, const layer_change *c, kiln_error **err)
{
  autofree char *value = NULL;
  char t = change_type (c);
  if (t == 'f')
    {
      autoclose int fd = fs_open_in_root (c->data_dirfd, c->data_path, O_RDONLY | O_NOFOLLOW, 0,
                                          FS_RESOLVE_BENEATH | FS_RESOLVE_NO_SYMLINKS, err);
      char dg[DIGEST_STRING_SIZE];
      if (fd < 0 || digest_fd (fd, dg, NULL, err) < 0)
        return kiln_error_wrap (err, "hashing '%s'", c->data_path ? c->data_path : c->path);
      value = xstrdup (dg);
    }
  else if (t == 'h')
    value = xstrdup (c->hardlink_target);
  else if (t == 'l')
    value = xstrdup (c->meta.link_target ? c->meta.link_target : "");
  else if (t == 'c' || t == 'b')
    value = xasprintf ("%" PRIu32 ",%" PRIu32, c->meta.rdev_major, c->meta.rdev_minor);
  char head[16];
  int hl = snprintf (head, sizeof head, "%c%c%04o", t, '\0', (unsigned) (c->meta.mode & 07777));
  digest_update (d, head, (size_t) hl + 1);
  digest_update (d, c->path, strlen (c->path) + 1);
  digest_update (d, value ? value : "", (value ? strlen (value) : 0) + 1);
  return 0;
}

int
build_exec_context_digest (build_exec *b, char out[DIGEST_STRING_SIZE], kiln_error **err)
{
  if (b->ctxfd < 0)
    return kiln_error_make (err, EINVAL, "the build has no context directory");
  overlay_lower *view = NULL;
  if (overlay_lower_open_store (b->o.store, NULL, 0, &view, err) < 0)
    return kiln_error_wrap (err, "hashing the build context");
  char *srcs[] = { (char *) ".", NULL };
  copy_request req = { .srcs = srcs, .dest = "/", .dest_is_dir = true, .what = "context digest" };
  copy_changes ch = { 0 };
  int r = copy_from_context (b->ctxfd, b->ign, view, &req, &ch, err);
  overlay_lower_free (view);
  autofree const layer_change **v = xcalloc (ch.n + 1, sizeof *v);
  size_t n = 0;
  for (size_t i = 0; r == 0 && i < ch.n; i++)
    if (ch.v[i].kind == LAYER_CHANGE_ADD && ch.v[i].path[0])
      v[n++] = &ch.v[i];
  qsort (v, n, sizeof *v, cmp_change_path);
  autodigest digest_ctx *d = digest_new ();
  for (size_t i = 0; r == 0 && i < n; i++)
    r = context_entry (d, v[i], err);
  if (r == 0)
    digest_final (d, out);
  copy_changes_free (&ch);
  return r < 0 ? kiln_error_wrap (err, "hashing the build context") : 0;
}
