/* build_cache.c - the build cache (see build_cache.h). */
#include "build/build_cache.h"
#include "registry/manifest.h"
#include "registry/push.h"
#include "registry/reference.h"
#include "store/fetch.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CACHE_BLOB_MAX (4 << 20)

#define STEP_RING 4           /* recent entries kept per step position */

typedef struct pending
{
  char hex[DIGEST_SHA256_HEX_LEN + 1];
  char step_tag[DIGEST_SHA256_HEX_LEN + 8]; /* "step-<position>" or "" */
  char *manifest;
  size_t manifest_len;
  bool if_missing;             /* a local hit: pushed only if the repository lacks the tag */
} pending;

struct build_cache
{
  build_cache_opts o;
  registry_ref *repo;          /* parsed --cache-repo (no tag) */
  registry_client *client;     /* made on first use */
  bool client_failed;          /* warned once; the registry cache is off */
  pending *pending;
  size_t n_pending;
};

int
build_cache_new (const build_cache_opts *o, build_cache **out, kiln_error **err)
{
  autofree build_cache *c = xzalloc (sizeof *c);
  c->o = *o;
  if (o->enabled && o->repo)
    {
      if (registry_ref_parse (o->repo, &c->repo, err) < 0)
        return kiln_error_wrap (err, "--cache-repo '%s'", o->repo);
      const char *last = strrchr (o->repo, '/');
      if (c->repo->digest || (last && strchr (last, ':')))
        {
          registry_ref_free (c->repo);
          return kiln_error_make (err, EINVAL, "--cache-repo '%s': give a repository without tag or digest (kiln "
                                  "tags each entry with its cache key)", o->repo);
        }
    }
  *out = steal_pointer (&c);
  return 0;
}

void
build_cache_free (build_cache *c)
{
  if (!c)
    return;
  for (size_t i = 0; i < c->n_pending; i++)
    free (c->pending[i].manifest);
  free (c->pending);
  registry_client_free (c->client);
  registry_ref_free (c->repo);
  free (c);
}

bool
build_cache_enabled (const build_cache *c)
{
  return c && c->o.enabled;
}

bool
build_cache_lazy (const build_cache *c)
{
  return c && c->o.enabled && c->repo;
}

bool
build_cache_wants (const build_cache *c, bool run)
{
  return c && c->o.enabled && (run ? c->o.cache_run : c->o.cache_copy);
}

/* ---- keys ---- */

void
build_cache_key_begin (build_cache_key *k, const char *prev)
{
  k->d = digest_new ();
  k->rec = NULL;
  k->name_dirfd = -1;
  build_cache_key_add (k, "prev", prev);
}

void
build_cache_key_add (build_cache_key *k, const char *field, const char *value)
{
  char len[32];
  size_t n = value ? strlen (value) : 0;
  int l = snprintf (len, sizeof len, "%zu%c", n, value ? ':' : '-');
  digest_update (k->d, field, strlen (field) + 1);
  digest_update (k->d, len, (size_t) l);
  if (n)
    digest_update (k->d, value, n);
  if (k->rec)
    cache_components_add (k->rec, field, value);
}

static void
key_addf (build_cache_key *k, const char *field, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static void
key_addf (build_cache_key *k, const char *field, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  autofree char *v = xvasprintf (fmt, ap);
  va_end (ap);
  build_cache_key_add (k, field, v);
}

static int
cmp_change (const void *a, const void *b)
{
  const layer_change *x = *(const layer_change *const *) a, *y = *(const layer_change *const *) b;
  int c = strcmp (x->path, y->path);
  return c ? c : (int) x->kind - (int) y->kind;
}

static int
add_file_data (build_cache_key *k, const layer_change *c, kiln_error **err)
{
  if (!c->data_path)
    return kiln_error_make (err, EINVAL, "'%s': regular file without data source", c->path);
  autoclose int fd = fs_open_in_root (c->data_dirfd, c->data_path, O_RDONLY | O_NOFOLLOW, 0,
                                      FS_RESOLVE_BENEATH | FS_RESOLVE_NO_SYMLINKS, err);
  if (fd < 0)
    return kiln_error_wrap (err, "data of '%s'", c->path);
  char d[DIGEST_STRING_SIZE];
  uint64_t size;
  if (digest_fd (fd, d, &size, err) < 0)
    return kiln_error_wrap (err, "hashing '%s'", c->path);
  build_cache_key_add (k, "data", d);
  return 0;
}

/* A change as users know it: its context path, else its layer path. */
static void
record_file_name (build_cache_key *k, const layer_change *c)
{
  if (k->name_dirfd >= 0 && c->data_dirfd == k->name_dirfd && c->data_path && c->kind == LAYER_CHANGE_ADD)
    {
      cache_components_file_begin (k->rec, c->data_path);
      return;
    }
  autofree char *name = xasprintf ("/%s", c->path);
  cache_components_file_begin (k->rec, name);
}

int
build_cache_key_add_changes (build_cache_key *k, const layer_change *ch, size_t n, kiln_error **err)
{
  autofree const layer_change **v = xcalloc (n + 1, sizeof *v);
  for (size_t i = 0; i < n; i++)
    v[i] = &ch[i];
  qsort (v, n, sizeof *v, cmp_change);
  key_addf (k, "changes", "%zu", n);
  for (size_t i = 0; i < n; i++)
    {
      const layer_change *c = v[i];
      const layer_index_meta *m = &c->meta;
      if (k->rec)
        record_file_name (k, c);
      build_cache_key_add (k, "path", c->path);
      switch (c->kind)
        {
        case LAYER_CHANGE_WHITEOUT:
          build_cache_key_add (k, "kind", "whiteout");
          continue;
        case LAYER_CHANGE_OPAQUE:
          build_cache_key_add (k, "kind", "opaque");
          continue;
        case LAYER_CHANGE_ADD:
          break;
        }
      key_addf (k, "meta", "%d %o %" PRIu32 ":%" PRIu32 " %" PRIu32 ",%" PRIu32 " %" PRIu32, (int) m->type,
                m->mode & 07777, m->uid, m->gid, m->rdev_major, m->rdev_minor, m->flags);
      if (m->link_target)
        build_cache_key_add (k, "link", m->link_target);
      if (c->hardlink_target)
        build_cache_key_add (k, "hardlink", c->hardlink_target);
      for (size_t x = 0; x < m->n_xattrs; x++)
        {
          char d[DIGEST_STRING_SIZE];
          digest_buffer (m->xattrs[x].value, m->xattrs[x].value_len, d);
          key_addf (k, "xattr", "%s=%s", m->xattrs[x].name, d);
        }
      if (m->type == LAYER_INDEX_REG && !c->hardlink_target && add_file_data (k, c, err) < 0)
        return -1;
    }
  if (k->rec)
    cache_components_file_end (k->rec);
  return 0;
}

void
build_cache_key_end (build_cache_key *k, char out[DIGEST_STRING_SIZE])
{
  digest_final (k->d, out);
  digest_free (k->d);
  k->d = NULL;
}

void
build_cache_key_abort (build_cache_key *k)
{
  digest_free (k->d);
  k->d = NULL;
}

/* ---- entries ---- */

static char *
ref_name (const char *key)
{
  return xasprintf ("cache/%s", digest_hex (key));
}

/* An entry image -> *out, if complete in the store (lazy: its layer may
 * be missing) and not expired. */
static int
load_entry (build_cache *c, const char *manifest_data, size_t manifest_len, bool lazy, build_cache_entry *out,
            kiln_error **err)
{
  automanifest manifest *m = NULL;
  if (manifest_parse (manifest_data, manifest_len, NULL, &m, err) < 0)
    return -1;
  if (m->kind != MANIFEST_KIND_OCI_MANIFEST && m->kind != MANIFEST_KIND_DOCKER_MANIFEST)
    return kiln_error_make (err, EINVAL, "cache entry is not an image manifest");
  autofree char *cfg = NULL;
  size_t cfg_len;
  if (store_get_blob (c->o.store, m->config.digest, CACHE_BLOB_MAX, &cfg, &cfg_len, err) < 0)
    return -1;
  image_spec spec;
  image_spec_init (&spec);
  int r = image_spec_from_config (&spec, cfg, cfg_len, err);
  size_t n_ids = 0;
  for (char **d = spec.diff_ids; d && *d; d++)
    n_ids++;
  if (r == 0 && (m->n_layers > 1 || n_ids != m->n_layers))
    r = kiln_error_make (err, EINVAL, "cache entry has %zu layers and %zu diff_ids (expected at most one)",
                         m->n_layers, n_ids);
  bool expired = r == 0 && c->o.ttl > 0 && spec.created >= 0 && (int64_t) time (NULL) - spec.created > c->o.ttl;
  memset (out, 0, sizeof *out);
  if (r == 0 && m->n_layers == 0)
    out->empty = true;
  else if (r == 0)
    {
      snprintf (out->diff_id, sizeof out->diff_id, "%s", spec.diff_ids[0]);
      snprintf (out->digest, sizeof out->digest, "%s", m->layers[0].digest);
      snprintf (out->media_type, sizeof out->media_type, "%s", m->layers[0].media_type);
      out->size = m->layers[0].size;
    }
  image_spec_free (&spec);
  if (r < 0)
    return -1;
  if (expired)
    return 0;
  if (!lazy && !out->empty
      && (!store_has_layer (c->o.store, out->diff_id) || !store_has_blob (c->o.store, out->digest)))
    return 0;
  return 1;
}

static int
lookup_local (build_cache *c, const char *key, build_cache_entry *out, kiln_error **err)
{
  autofree char *name = ref_name (key);
  char md[DIGEST_STRING_SIZE];
  int r = store_get_ref (c->o.store, name, md, err);
  if (r <= 0)
    return r;
  autofree char *data = NULL;
  size_t len;
  autoerror kiln_error *e = NULL;
  if (store_get_blob (c->o.store, md, CACHE_BLOB_MAX, &data, &len, &e) < 0
      || (r = load_entry (c, data, len, false, out, &e)) < 0)
    {
      /* A damaged or half-pruned entry is a miss, not a failed build. */
      autofree char *msg = kiln_error_string (e);
      log_warn ("build cache entry %s is unusable (%s); rebuilding the step", digest_hex (key), msg);
      return 0;
    }
  return r;
}

static int
ensure_client (build_cache *c)
{
  if (c->client)
    return 0;
  if (c->client_failed)
    return -1;
  autoerror kiln_error *e = NULL;
  if (registry_client_new (c->o.reg, c->repo->domain, &c->client, &e) < 0)
    {
      autofree char *msg = kiln_error_string (e);
      log_warn ("--cache-repo '%s': %s; the registry cache is not used", c->o.repo, msg);
      c->client_failed = true;
      return -1;
    }
  return 0;
}

/* A hit whose layer the store lacks must still be fetchable: one HEAD, not
 * a download. A blob gone from the registry (deleted, garbage-collected)
 * makes the entry a miss, with a warning. */
static bool
entry_blob_there (build_cache *c, const char *hex, const build_cache_entry *e)
{
  if (e->empty || (store_has_layer (c->o.store, e->diff_id) && store_has_blob (c->o.store, e->digest)))
    return true;
  autoerror kiln_error *he = NULL;
  int r = registry_blob_readable (c->client, c->repo->path, e->digest, &he);
  if (r > 0)
    return true;
  autofree char *msg = r < 0 ? kiln_error_string (he) : xstrdup ("HTTP 404");
  log_warn ("build cache entry %s:%s: its layer blob %s is not in registry '%s', repository '%s' (%s); "
            "rebuilding the step", c->o.repo, hex, e->digest, c->repo->domain, c->repo->path, msg);
  return false;
}

static int
lookup_remote (build_cache *c, const char *key, const char *os, const char *arch, build_cache_entry *out,
               kiln_error **err)
{
  if (!c->repo || ensure_client (c) < 0)
    return 0;
  registry_ref ref = *c->repo;
  char hex[DIGEST_SHA256_HEX_LEN + 1];
  snprintf (hex, sizeof hex, "%s", digest_hex (key));
  ref.tag = hex;
  ref.digest = NULL;
  store_fetch_result fr = { 0 };
  autoerror kiln_error *e = NULL;
  /* The entry's manifest and config; its layer is fetched only if a later
   * step or an output needs it (build_lazy.h). */
  if (store_fetch_image_lazy (c->o.store, c->client, &ref, os, arch, NULL, &fr, &e) < 0)
    {
      if (e->kind != KILN_ERROR_NOT_FOUND)
        {
          /* Once is enough: retrying every step against a registry that
           * is down would only add its timeouts to the build. */
          autofree char *msg = kiln_error_string (e);
          log_warn ("build cache lookup in '%s' failed (%s); the registry cache is off for this build", c->o.repo,
                    msg);
          c->client_failed = true;
          registry_client_free (c->client);
          c->client = NULL;
        }
      return 0;
    }
  int r = load_entry (c, fr.manifest, fr.manifest_len, true, out, &e);
  if (r > 0 && !entry_blob_there (c, hex, out))
    r = 0;
  if (r > 0)
    {
      autofree char *repo_name = registry_ref_name (c->repo);
      snprintf (out->source, sizeof out->source, "%s@%s", repo_name, fr.manifest_digest);
      autofree char *name = ref_name (key);
      r = store_set_ref (c->o.store, name, fr.manifest_digest, err);
      r = r < 0 ? -1 : 1;
    }
  else if (r < 0)
    {
      autofree char *msg = kiln_error_string (e);
      log_warn ("build cache entry %s:%s is unusable (%s); rebuilding the step", c->o.repo, hex, msg);
      r = 0;
    }
  store_fetch_result_clear (&fr);
  return r;
}

static bool
remote_wanted (const build_cache *c, bool run)
{
  return c->repo && (run || c->o.cache_copy_remote);
}

static void
queue (build_cache *c, const char *key, char **man, size_t len, bool if_missing)
{
  c->pending = xreallocarray (c->pending, c->n_pending + 1, sizeof *c->pending);
  pending *p = &c->pending[c->n_pending++];
  snprintf (p->hex, sizeof p->hex, "%s", digest_hex (key));
  p->step_tag[0] = '\0';
  p->manifest = steal_pointer (man);
  p->manifest_len = len;
  p->if_missing = if_missing;
}

/* A local hit goes to the registry cache too, when it lacks it. */
static void
queue_local_hit (build_cache *c, const char *key)
{
  autofree char *name = ref_name (key);
  char md[DIGEST_STRING_SIZE];
  autoerror kiln_error *e = NULL;
  autofree char *data = NULL;
  size_t len;
  if (store_get_ref (c->o.store, name, md, &e) > 0 && store_get_blob (c->o.store, md, CACHE_BLOB_MAX, &data, &len, &e) == 0)
    queue (c, key, &data, len, true);
}

int
build_cache_lookup (build_cache *c, const char *key, bool run, const char *os, const char *arch,
                    build_cache_entry *out, const char **where, kiln_error **err)
{
  if (!c || !c->o.enabled)
    return 0;
  int r = lookup_local (c, key, out, err);
  if (r != 0)
    {
      *where = "local";
      if (r > 0 && remote_wanted (c, run) && !c->o.no_push)
        queue_local_hit (c, key);
      return r;
    }
  if (!remote_wanted (c, run))
    return 0;
  r = lookup_remote (c, key, os, arch, out, err);
  if (r > 0)
    *where = "registry";
  return r;
}

/* The entry becomes the newest of its position: slots 0..STEP_RING-1 of
 * refs/cache-steps/<position>/, newest first (a race between builds loses
 * an explanation, never an entry). */
static void
remember_step (build_cache *c, const char *position, const char *man_digest)
{
  autoerror kiln_error *e = NULL;
  char cur[DIGEST_STRING_SIZE];
  autofree char *first = xasprintf ("cache-steps/%s/0", position);
  if (store_get_ref (c->o.store, first, cur, &e) > 0 && strcmp (cur, man_digest) == 0)
    return;
  for (int i = STEP_RING - 1; i > 0; i--)
    {
      autofree char *from = xasprintf ("cache-steps/%s/%d", position, i - 1);
      autofree char *to = xasprintf ("cache-steps/%s/%d", position, i);
      if (store_get_ref (c->o.store, from, cur, &e) > 0)
        store_set_ref (c->o.store, to, cur, &e);
      kiln_error_free (e);
      e = NULL;
    }
  if (store_set_ref (c->o.store, first, man_digest, &e) < 0)
    log_debug ("recording the build cache step %s failed", position);
}

/* The components label of an entry's config (NULL if none or unusable). */
static cache_components *
components_of_config (const char *cfg, size_t len)
{
  image_spec spec;
  image_spec_init (&spec);
  autoerror kiln_error *e = NULL;
  cache_components *comp = NULL;
  size_t ll = strlen (CACHE_COMPONENTS_LABEL);
  if (image_spec_from_config (&spec, cfg, len, &e) == 0)
    for (char **l = spec.labels; l && *l; l++)
      if (strncmp (*l, CACHE_COMPONENTS_LABEL, ll) == 0 && (*l)[ll] == '=')
        {
          if (cache_components_parse (*l + ll + 1, strlen (*l + ll + 1), &comp, &e) < 0)
            {
              autofree char *msg = kiln_error_string (e);
              log_debug ("build cache entry: %s", msg);
            }
          break;
        }
  image_spec_free (&spec);
  return comp;
}

static cache_components *
components_of_manifest (build_cache *c, const char *data, size_t len)
{
  automanifest manifest *m = NULL;
  autoerror kiln_error *e = NULL;
  autofree char *cfg = NULL;
  size_t cfg_len;
  if (manifest_parse (data, len, NULL, &m, &e) < 0
      || (m->kind != MANIFEST_KIND_OCI_MANIFEST && m->kind != MANIFEST_KIND_DOCKER_MANIFEST)
      || store_get_blob (c->o.store, m->config.digest, CACHE_BLOB_MAX, &cfg, &cfg_len, &e) < 0)
    return NULL;
  return components_of_config (cfg, cfg_len);
}

int
build_cache_record (build_cache *c, const char *key, bool run, const char *os, const char *arch,
                    const build_cache_entry *e, const char *created_by, const build_cache_step *step,
                    kiln_error **err)
{
  if (!c || !c->o.enabled)
    return 0;
  image_spec spec;
  image_spec_init (&spec);
  spec.os = xstrdup (os ? os : "linux");
  spec.architecture = xstrdup (arch ? arch : "amd64");
  spec.created = (int64_t) time (NULL);
  if (!e->empty)
    strv_push (&spec.diff_ids, e->diff_id);
  autofree char *comp_json = NULL;
  size_t comp_len;
  autoerror kiln_error *ce = NULL;
  if (step && step->comp && cache_components_to_json (step->comp, &comp_json, &comp_len, &ce) == 0)
    {
      autofree char *label = xasprintf ("%s=%s", CACHE_COMPONENTS_LABEL, comp_json);
      strv_push (&spec.labels, label);
    }
  image_spec_add_history (&spec, spec.created, created_by, "kiln build cache", e->empty);
  autofree char *cfg = NULL, *man = NULL;
  size_t cfg_len, man_len;
  char cfg_digest[DIGEST_STRING_SIZE], man_digest[DIGEST_STRING_SIZE];
  int r = image_config_json (&spec, &cfg, &cfg_len, err);
  image_spec_free (&spec);
  if (r < 0)
    return kiln_error_wrap (err, "build cache entry");
  digest_buffer (cfg, cfg_len, cfg_digest);
  image_descriptor d = { e->media_type, e->digest, e->size };
  if (store_put_blob (c->o.store, cfg_digest, cfg, cfg_len, err) < 0
      || image_manifest_json (c->o.format, cfg_digest, (int64_t) cfg_len, &d, e->empty ? 0 : 1, &man, &man_len, err) < 0)
    return kiln_error_wrap (err, "build cache entry");
  digest_buffer (man, man_len, man_digest);
  autofree char *name = ref_name (key);
  if (store_put_blob (c->o.store, man_digest, man, man_len, err) < 0
      || store_set_ref (c->o.store, name, man_digest, err) < 0)
    return kiln_error_wrap (err, "build cache entry");
  if (step && step->position)
    remember_step (c, step->position, man_digest);
  if (remote_wanted (c, run))
    {
      queue (c, key, &man, man_len, false);
      if (step && step->position)
        snprintf (c->pending[c->n_pending - 1].step_tag, sizeof c->pending->step_tag, "step-%s", step->position);
    }
  return 0;
}

static int
sink_strbuf (void *ctx, const void *data, size_t len, kiln_error **err)
{
  strbuf *sb = ctx;
  if (sb->len + len > CACHE_BLOB_MAX)
    return kiln_error_make (err, EFBIG, "build cache entry config larger than %d bytes", CACHE_BLOB_MAX);
  strbuf_add (sb, data, len);
  return 0;
}

/* The newest entry of the position in --cache-repo: its manifest and
 * config only (no layer). */
static cache_components *
remote_components (build_cache *c, const char *position)
{
  if (!c->repo || ensure_client (c) < 0)
    return NULL;
  autofree char *tag = xasprintf ("step-%s", position);
  autofree char *data = NULL, *type = NULL, *digest = NULL;
  size_t len = 0;
  autoerror kiln_error *e = NULL;
  automanifest manifest *m = NULL;
  autostrbuf strbuf cfg = STRBUF_INIT;
  if (registry_get_manifest (c->client, c->repo->path, tag, &data, &len, &type, &digest, &e) < 0
      || manifest_parse (data, len, type, &m, &e) < 0
      || (m->kind != MANIFEST_KIND_OCI_MANIFEST && m->kind != MANIFEST_KIND_DOCKER_MANIFEST)
      || m->config.size > CACHE_BLOB_MAX
      || registry_get_blob (c->client, c->repo->path, m->config.digest, m->config.size, sink_strbuf, &cfg, &e) < 0)
    {
      if (e && e->kind != KILN_ERROR_NOT_FOUND)
        {
          autofree char *msg = kiln_error_string (e);
          log_debug ("build cache: the last entry of step %s in '%s': %s", position, c->o.repo, msg);
        }
      return NULL;
    }
  return components_of_config (cfg.buf, cfg.len);
}

void
build_cache_explain (build_cache *c, const build_cache_step *step, bool run, char **text, char **json)
{
  autocomponents cache_components *best = NULL;
  unsigned best_d = 0;
  for (int i = 0; c && step->position && i < STEP_RING; i++)
    {
      autofree char *name = xasprintf ("cache-steps/%s/%d", step->position, i);
      autofree char *data = NULL;
      char md[DIGEST_STRING_SIZE];
      size_t len;
      autoerror kiln_error *e = NULL;
      if (store_get_ref (c->o.store, name, md, &e) <= 0
          || store_get_blob (c->o.store, md, CACHE_BLOB_MAX, &data, &len, &e) < 0)
        continue;
      cache_components *comp = components_of_manifest (c, data, len);
      if (!comp)
        continue;
      unsigned d = cache_components_distance (comp, step->comp);
      if (!best || d < best_d)
        {
          cache_components_free (best);
          best = comp;
          best_d = d;
        }
      else
        cache_components_free (comp);
    }
  if (!best && c && step->position && remote_wanted (c, run))
    best = remote_components (c, step->position);
  cache_explain (best, step->comp, text, json);
}

/* Whether the repository has tag (anything but a clean "unknown" counts
 * as yes: a local hit is pushed only when the registry said it lacks it). */
static bool
repo_has (build_cache *c, const char *tag)
{
  autofree char *data = NULL, *type = NULL, *digest = NULL;
  size_t len = 0;
  autoerror kiln_error *e = NULL;
  if (registry_get_manifest (c->client, c->repo->path, tag, &data, &len, &type, &digest, &e) == 0)
    return true;
  return !e || e->kind != KILN_ERROR_NOT_FOUND;
}

int
build_cache_flush (build_cache *c)
{
  if (!c || !c->repo || c->n_pending == 0 || c->o.no_push || ensure_client (c) < 0)
    return 0;
  int pushed = 0;
  for (size_t i = 0; i < c->n_pending; i++)
    {
      pending *p = &c->pending[i];
      char *tags[] = { p->hex, p->step_tag[0] ? p->step_tag : NULL, NULL };
      char digest[DIGEST_STRING_SIZE];
      autoerror kiln_error *e = NULL;
      if (p->if_missing && repo_has (c, p->hex))
        continue;
      if (registry_push_image (c->client, c->repo->path, tags, p->manifest, p->manifest_len,
                               image_manifest_media_type (c->o.format), store_push_source (), c->o.store, NULL, digest,
                               &e) < 0)
        {
          autofree char *msg = kiln_error_string (e);
          log_warn ("pushing build cache entry %s:%s failed: %s", c->o.repo, p->hex, msg);
          continue;
        }
      pushed++;
    }
  if (pushed)
    progress_note (c->o.progress, "pushed %d build cache entr%s to %s", pushed, pushed == 1 ? "y" : "ies", c->o.repo);
  return pushed;
}
