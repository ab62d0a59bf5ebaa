/* build_cache_mounts.c - cache mounts through a registry: state, import
 * (see build_cache_mounts.h; export in build_cache_mounts_export.c). */
#include "build/build_cache_mounts.h"
#include "build/build_cache_mounts_internal.h"
#include "registry/manifest.h"
#include "registry/reference.h"
#include "store/extract.h"
#include "store/image.h"
#include "store/layer_index.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CONFIG_MAX (1 << 20)

int
build_cache_mounts_new (const build_cache_mounts_opts *o, build_cache_mounts **out, kiln_error **err)
{
  autofree build_cache_mounts *cm = xzalloc (sizeof *cm);
  cm->o = *o;
  if (!cm->o.max_size)
    cm->o.max_size = BUILD_CACHE_MOUNTS_MAX_SIZE_DEFAULT;
  if (registry_ref_parse (o->repo, &cm->repo, err) < 0)
    return kiln_error_wrap (err, "--cache-mounts-repo '%s'", o->repo);
  const char *last = strrchr (o->repo, '/');
  if (cm->repo->digest || (last && strchr (last, ':')))
    {
      registry_ref_free (cm->repo);
      return kiln_error_make (err, EINVAL, "--cache-mounts-repo '%s': give a repository without tag or digest "
                              "(kiln tags each cache id)", o->repo);
    }
  pthread_mutex_init (&cm->mu, NULL);
  *out = steal_pointer (&cm);
  return 0;
}

void
build_cache_mounts_free (build_cache_mounts *cm)
{
  if (!cm)
    return;
  if (cm->started)
    pthread_join (cm->thread, NULL);
  for (size_t i = 0; i < cm->n_ids; i++)
    free (cm->ids[i].id);
  free (cm->ids);
  registry_client_free (cm->client);
  registry_ref_free (cm->repo);
  pthread_mutex_destroy (&cm->mu);
  free (cm);
}

double
build_cm_now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int
build_cm_client (build_cache_mounts *cm)
{
  if (cm->client)
    return 0;
  if (cm->client_failed)
    return -1;
  autoerror kiln_error *e = NULL;
  if (registry_client_new (cm->o.reg, cm->repo->domain, &cm->client, &e) < 0)
    {
      autofree char *msg = kiln_error_string (e);
      log_warn ("--cache-mounts-repo '%s': %s; cache mounts are not shared", cm->o.repo, msg);
      cm->client_failed = true;
      return -1;
    }
  return 0;
}

/* ---- the record of the last import or export: cache/HASH.remote ---- */

int
build_cm_record_read (store *s, const char *hash, char digest[DIGEST_STRING_SIZE], char stamp[DIGEST_STRING_SIZE])
{
  autofree char *name = xasprintf ("cache/%s.remote", hash);
  autofree char *data = NULL;
  size_t len = 0;
  autoerror kiln_error *e = NULL;
  digest[0] = stamp[0] = '\0';
  if (fs_read_file_at (s->rootfd, name, 4096, &data, &len, &e) < 0)
    return 0;
  char d[DIGEST_STRING_SIZE], st[DIGEST_STRING_SIZE];
  if (sscanf (data, "%71s %71s", d, st) != 2 || digest_validate (d, NULL) < 0 || digest_validate (st, NULL) < 0)
    return 0;
  memcpy (digest, d, DIGEST_STRING_SIZE);
  memcpy (stamp, st, DIGEST_STRING_SIZE);
  return 1;
}

int
build_cm_record_write (store *s, const char *hash, const char *digest, const char *stamp, kiln_error **err)
{
  autofree char *name = xasprintf ("cache/%s.remote", hash);
  autofree char *data = xasprintf ("%s %s\n", digest, stamp);
  return fs_write_file_atomic_at (s->rootfd, name, data, strlen (data), 0600, err);
}

int
build_cm_lock (store *s, const char *hash, int how, const char *id, kiln_error **err)
{
  autofree char *name = xasprintf ("cache/%s.lock", hash);
  int fd = openat (s->rootfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return kiln_error_make (err, errno, "cache mount '%s': lock", id);
  int r;
  while ((r = flock (fd, how)) < 0 && errno == EINTR)
    ;
  if (r < 0)
    {
      int e = errno;
      close (fd);
      return kiln_error_make (err, e, "cache mount '%s': lock", id);
    }
  return fd;
}

/* ---- import ---- */

typedef struct remote_entry
{
  char layer_digest[DIGEST_STRING_SIZE];
  char diff_id[DIGEST_STRING_SIZE];
  int64_t layer_size;
  int64_t created;
} remote_entry;

/* The entry of id in the repository: 1 (*out filled), 0 (none, expired
 * or unusable: said why), -1 (the registry failed; cm->client_failed). */
static int
resolve_entry (build_cache_mounts *cm, const char *id, const char *tag, remote_entry *out)
{
  autofree char *data = NULL, *type = NULL, *digest = NULL;
  size_t len = 0;
  autoerror kiln_error *e = NULL;
  if (registry_get_manifest (cm->client, cm->repo->path, tag, &data, &len, &type, &digest, &e) < 0)
    {
      if (e->kind == KILN_ERROR_NOT_FOUND)
        {
          progress_note (cm->o.progress, "cache mount '%s': no entry in %s", id, cm->o.repo);
          return 0;
        }
      autofree char *msg = kiln_error_string (e);
      log_warn ("cache mount '%s': looking up %s:%s failed (%s); cache mounts are not shared in this build", id,
                cm->o.repo, tag, msg);
      cm->client_failed = true;
      return -1;
    }
  automanifest manifest *m = NULL;
  autostrbuf strbuf cfg = STRBUF_INIT;
  const char *bad = NULL;
  image_spec spec;
  image_spec_init (&spec);
  if (manifest_parse (data, len, type, &m, &e) < 0)
    bad = "not a manifest";
  else if (m->kind != MANIFEST_KIND_OCI_MANIFEST || m->n_layers != 1)
    bad = "not an OCI image manifest with one layer";
  else if (m->config.size > CONFIG_MAX)
    bad = "config too large";
  else if ((uint64_t) m->layers[0].size > cm->o.max_size)
    bad = "larger than --cache-mounts-max-size";
  else if (registry_get_blob (cm->client, cm->repo->path, m->config.digest, m->config.size, build_cm_sink_strbuf, &cfg, &e)
           < 0)
    bad = "config unreadable";
  else if (image_spec_from_config (&spec, cfg.buf, cfg.len, &e) < 0)
    bad = "config unreadable";
  else if (!spec.diff_ids || !spec.diff_ids[0] || spec.diff_ids[1])
    bad = "config without exactly one diff_id";
  const char *label_id = NULL;
  for (char **l = spec.labels; !bad && l && *l; l++)
    if (strncmp (*l, CM_LABEL_ID "=", strlen (CM_LABEL_ID) + 1) == 0)
      label_id = *l + strlen (CM_LABEL_ID) + 1;
  if (!bad && (!label_id || strcmp (label_id, id) != 0))
    bad = "its config names another cache id";
  int r = 0;
  if (bad)
    {
      autofree char *msg = e ? kiln_error_string (e) : NULL;
      log_warn ("cache mount '%s': entry %s:%s ignored: %s%s%s", id, cm->o.repo, tag, bad, msg ? ": " : "",
                msg ? msg : "");
    }
  else if (cm->o.ttl > 0 && spec.created >= 0 && (int64_t) time (NULL) - spec.created > cm->o.ttl)
    progress_note (cm->o.progress, "cache mount '%s': entry %s:%s is older than --cache-ttl; ignored", id,
                   cm->o.repo, tag);
  else
    {
      snprintf (out->layer_digest, sizeof out->layer_digest, "%s", m->layers[0].digest);
      snprintf (out->diff_id, sizeof out->diff_id, "%s", spec.diff_ids[0]);
      out->layer_size = m->layers[0].size;
      out->created = spec.created;
      r = 1;
    }
  image_spec_free (&spec);
  return r;
}

static int
sink_fd (void *ctx, const void *data, size_t len, kiln_error **err)
{
  return fs_write_all (*(int *) ctx, data, len, err);
}

/* Host id of container id u for files kiln makes (as root: the step's
 * mapped range; -1: leave it to the running user). */
static int64_t
host_owner (const build_cache_mounts *cm, uint32_t u, bool gid)
{
  const sandbox_idmap *m = &cm->map;
  if (cm->owners_presented || !m->as_root)
    return -1;
  if (u == 0)
    return gid ? m->host_gid : m->host_uid;
  unsigned long n = gid ? m->n_sub_gid : m->n_sub_uid;
  if (u - 1 >= n)
    return -1;
  return (int64_t) (gid ? m->sub_gid : m->sub_uid) + u - 1;
}

static int
set_meta (const build_cache_mounts *cm, int fd, const layer_index_disk_entry *e, const char *path, kiln_error **err)
{
  int64_t uid = host_owner (cm, e->uid, false), gid = host_owner (cm, e->gid, true);
  if (uid >= 0 && gid >= 0 && fchown (fd, (uid_t) uid, (gid_t) gid) < 0)
    return kiln_error_make (err, errno, "chown '%s'", path);
  if (fchmod (fd, e->mode & 07777) < 0)
    return kiln_error_make (err, errno, "chmod '%s'", path);
  return 0;
}

/* The extracted layer (tree_fd + idx) as a real tree below dst: entries in
 * index order (parents first), each created below its parent opened
 * without following symlinks; regular files are hard links of the
 * extracted data (the temp layer is removed afterwards), symlinks are
 * only created. Directory modes are set last (a 0555 directory must not
 * stop its children). */
static int
materialize (const build_cache_mounts *cm, const layer_index *idx, int tree_fd, int dst, kiln_error **err)
{
  uint32_t n = layer_index_count (idx);
  autostrbuf strbuf path = STRBUF_INIT;
  for (uint32_t i = 1; i < n; i++)
    {
      const layer_index_disk_entry *e = layer_index_entry (idx, i);
      if (e->type != LAYER_INDEX_DIR && e->type != LAYER_INDEX_REG && e->type != LAYER_INDEX_SYMLINK)
        continue;
      strbuf_reset (&path);
      layer_index_path (idx, i, &path);
      autofree char *parent = xstrdup (path.buf);
      char *slash = strrchr (parent, '/');
      const char *name = slash ? slash + 1 : parent;
      if (slash)
        *slash = '\0';
      autoclose int pfd = slash ? fs_open_in_root (dst, parent, O_RDONLY | O_DIRECTORY, 0,
                                                   FS_RESOLVE_BENEATH | FS_RESOLVE_NO_SYMLINKS, err)
                                : fcntl (dst, F_DUPFD_CLOEXEC, 0);
      if (pfd < 0)
        return slash ? kiln_error_wrap (err, "'%s'", path.buf) : kiln_error_make (err, errno, "dup");
      if (e->type == LAYER_INDEX_DIR)
        {
          if (mkdirat (pfd, name, 0700) < 0)
            return kiln_error_make (err, errno, "mkdir '%s'", path.buf);
        }
      else if (e->type == LAYER_INDEX_SYMLINK)
        {
          size_t ll = 0;
          const char *l = layer_index_link (idx, i, &ll);
          autofree char *target = xstrndup (l ? l : "", ll);
          if (symlinkat (target, pfd, name) < 0)
            return kiln_error_make (err, errno, "symlink '%s'", path.buf);
        }
      else
        {
          if (linkat (tree_fd, path.buf, pfd, name, 0) < 0)
            return kiln_error_make (err, errno, "link '%s'", path.buf);
          autoclose int fd = openat (pfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
          if (fd < 0 || set_meta (cm, fd, e, path.buf, err) < 0)
            return fd < 0 ? kiln_error_make (err, errno, "open '%s'", path.buf) : -1;
        }
    }
  for (uint32_t i = n; i-- > 0;)
    {
      const layer_index_disk_entry *e = layer_index_entry (idx, i);
      if (e->type != LAYER_INDEX_DIR)
        continue;
      strbuf_reset (&path);
      layer_index_path (idx, i, &path);
      autoclose int fd = i == 0 ? fcntl (dst, F_DUPFD_CLOEXEC, 0)
                                : fs_open_in_root (dst, path.buf, O_RDONLY | O_DIRECTORY, 0,
                                                   FS_RESOLVE_BENEATH | FS_RESOLVE_NO_SYMLINKS, err);
      if (fd < 0)
        return i == 0 ? kiln_error_make (err, errno, "dup") : kiln_error_wrap (err, "'%s'", path.buf);
      if (set_meta (cm, fd, e, i == 0 ? "." : path.buf, err) < 0)
        return -1;
    }
  return 0;
}

/* Download and extract the entry into tmp/TMPNAME/dir. */
static int
fetch_entry (build_cache_mounts *cm, const remote_entry *re, const char *tmpname, int tfd, kiln_error **err)
{
  autoclose int bfd = openat (tfd, "blob", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (bfd < 0)
    return kiln_error_make (err, errno, "create 'tmp/%s/blob'", tmpname);
  if (registry_get_blob (cm->client, cm->repo->path, re->layer_digest, re->layer_size, sink_fd, &bfd, err) < 0)
    return -1;
  if (lseek (bfd, 0, SEEK_SET) < 0 || mkdirat (tfd, "layer", 0700) < 0)
    return kiln_error_make (err, errno, "'tmp/%s'", tmpname);
  autoclose int lfd = openat (tfd, "layer", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (lfd < 0)
    return kiln_error_make (err, errno, "open 'tmp/%s/layer'", tmpname);
  extract_opts xo = { .max_entries = cm->o.store->max_layer_entries, .max_data_bytes = cm->o.max_size };
  extract_result res;
  if (extract_layer (lfd, extract_read_fd, &bfd, &xo, &res, err) < 0)
    return kiln_error_wrap (err, "extracting %s", re->layer_digest);
  if (strcmp (res.blob_digest, re->layer_digest) != 0 || strcmp (res.diff_id, re->diff_id) != 0)
    return kiln_error_make (err, EINVAL, "layer %s does not match its digests (diff_id %s, config says %s)",
                            re->layer_digest, res.diff_id, re->diff_id);
  autoindex layer_index *idx = NULL;
  if (layer_index_open_at (lfd, "index", &idx, err) < 0)
    return -1;
  autoclose int treefd = openat (lfd, "tree", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (treefd < 0)
    return kiln_error_make (err, errno, "open 'tmp/%s/layer/tree'", tmpname);
  if (mkdirat (tfd, "dir", 0700) < 0)
    return kiln_error_make (err, errno, "mkdir 'tmp/%s/dir'", tmpname);
  autoclose int dfd = openat (tfd, "dir", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    return kiln_error_make (err, errno, "open 'tmp/%s/dir'", tmpname);
  if (materialize (cm, idx, treefd, dfd, err) < 0)
    return -1;
  /* Drop the extracted copy now: the files' link counts (and ctimes) must
   * be final before the tree stamp is taken. */
  close (treefd);
  treefd = -1;
  return fs_rm_rf_at (tfd, "layer", err);
}

/* Swap tmp/TMPNAME/dir in as cache/HASH under the exclusive lock, unless
 * another build of this store imported the same entry meanwhile. */
static int
swap_in (build_cache_mounts *cm, const char *id, const char *hash, const remote_entry *re, const char *tmpname,
         double t0, kiln_error **err)
{
  autoclose int lfd = build_cm_lock (cm->o.store, hash, LOCK_EX, id, err);
  if (lfd < 0)
    return -1;
  char have[DIGEST_STRING_SIZE], stamp[DIGEST_STRING_SIZE];
  autofree char *cur = xasprintf ("cache/%s", hash);
  struct stat sb;
  bool exists = fstatat (cm->o.store->rootfd, cur, &sb, AT_SYMLINK_NOFOLLOW) == 0;
  if (exists && build_cm_record_read (cm->o.store, hash, have, stamp) && strcmp (have, re->layer_digest) == 0)
    return 0;
  autofree char *fresh = xasprintf ("tmp/%s/dir", tmpname);
  int r = exists ? renameat2 (cm->o.store->rootfd, fresh, cm->o.store->rootfd, cur, RENAME_EXCHANGE)
                 : renameat2 (cm->o.store->rootfd, fresh, cm->o.store->rootfd, cur, RENAME_NOREPLACE);
  if (r < 0)
    return kiln_error_make (err, errno, "rename 'tmp/%s/dir' to '%s'", tmpname, cur);
  autoclose int dfd = openat (cm->o.store->rootfd, cur, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    return kiln_error_make (err, errno, "open '%s'", cur);
  build_cm_tree t = { 0 };
  r = build_cm_tree_scan (dfd, &t, err);
  if (r == 0)
    r = build_cm_record_write (cm->o.store, hash, re->layer_digest, t.stamp, err);
  if (r == 0)
    progress_note (cm->o.progress, "cache mount '%s': imported %s:mount-%.12s (%s, %zu entries, %" PRIu64 " bytes) "
                   "in %.2f s", id, cm->o.repo, hash, re->layer_digest, t.n, t.bytes, build_cm_now () - t0);
  build_cm_tree_free (&t);
  return r;
}

static void
import_id (build_cache_mounts *cm, const char *id, const char *hash)
{
  if (build_cm_client (cm) < 0)
    return;
  double t0 = build_cm_now ();
  autofree char *tag = xasprintf ("mount-%s", hash);
  remote_entry re = { 0 };
  if (resolve_entry (cm, id, tag, &re) <= 0)
    return;
  char have[DIGEST_STRING_SIZE], stamp[DIGEST_STRING_SIZE];
  autofree char *cur = xasprintf ("cache/%s", hash);
  struct stat sb;
  if (build_cm_record_read (cm->o.store, hash, have, stamp) && strcmp (have, re.layer_digest) == 0
      && fstatat (cm->o.store->rootfd, cur, &sb, AT_SYMLINK_NOFOLLOW) == 0)
    {
      progress_note (cm->o.progress, "cache mount '%s': up to date with %s:%s", id, cm->o.repo, tag);
      return;
    }
  autoerror kiln_error *e = NULL;
  if (fs_mkdir_p_at (cm->o.store->rootfd, "cache", 0700, &e) < 0)
    {
      autofree char *msg = kiln_error_string (e);
      log_warn ("cache mount '%s': %s", id, msg);
      return;
    }
  autofree char *tmpname = NULL;
  autoclose int tfd = -1;
  if (store_mktemp (cm->o.store, "cmimp-", &tmpname, &tfd, &e) < 0
      || fetch_entry (cm, &re, tmpname, tfd, &e) < 0 || swap_in (cm, id, hash, &re, tmpname, t0, &e) < 0)
    {
      autofree char *msg = kiln_error_string (e);
      log_warn ("cache mount '%s': importing %s:%s failed (%s); the local directory is used", id, cm->o.repo, tag,
                msg);
    }
  if (tmpname)
    store_rmtemp (cm->o.store, tmpname);
}

void
build_cache_mounts_use (build_cache_mounts *cm, const char *id, const char *hash, bool writable,
                        const sandbox_idmap *map, bool owners_presented)
{
  if (!cm)
    return;
  pthread_mutex_lock (&cm->mu);
  if (!cm->have_map)
    {
      cm->map = *map;
      cm->owners_presented = owners_presented;
      cm->have_map = true;
    }
  build_cm_id *c = NULL;
  for (size_t i = 0; i < cm->n_ids && !c; i++)
    if (strcmp (cm->ids[i].hash, hash) == 0)
      c = &cm->ids[i];
  if (!c)
    {
      cm->ids = xreallocarray (cm->ids, cm->n_ids + 1, sizeof *cm->ids);
      c = &cm->ids[cm->n_ids++];
      memset (c, 0, sizeof *c);
      c->id = xstrdup (id);
      snprintf (c->hash, sizeof c->hash, "%s", hash);
      import_id (cm, id, hash);
    }
  c->writable |= writable;
  pthread_mutex_unlock (&cm->mu);
}
