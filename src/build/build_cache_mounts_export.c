/* build_cache_mounts_export.c - cache mounts through a registry: tree
 * scan and stamp, export (see build_cache_mounts.h). */
#include "build/build_cache_mounts.h"
#include "build/build_cache_mounts_internal.h"
#include "registry/platform.h"
#include "registry/push.h"
#include "store/fetch.h"
#include "store/image.h"
#include "store/layer_writer.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define SCAN_MAX_DEPTH 256
#define SCAN_MAX_ENTRIES 1000000

int
build_cm_sink_strbuf (void *ctx, const void *data, size_t len, kiln_error **err)
{
  strbuf *sb = ctx;
  if (sb->len + len > (1 << 20))
    return kiln_error_make (err, EFBIG, "cache mount entry config larger than 1 MiB");
  strbuf_add (sb, data, len);
  return 0;
}

void
build_cm_tree_free (build_cm_tree *t)
{
  for (size_t i = 0; i < t->n; i++)
    {
      free (t->v[i].path);
      free (t->v[i].link);
    }
  free (t->v);
  memset (t, 0, sizeof *t);
}

static void
push_item (build_cm_tree *t, char *path, const struct stat *st, char *link)
{
  t->v = xreallocarray (t->v, t->n + 1, sizeof *t->v);
  t->v[t->n++] = (build_cm_item) { .path = path, .st = *st, .link = link };
  if (S_ISREG (st->st_mode))
    t->bytes += (uint64_t) st->st_size;
}

/* Every entry below dirfd (rel: its path), never following symlinks. */
static int
scan_dir (int dirfd, const char *rel, unsigned depth, build_cm_tree *t, kiln_error **err)
{
  if (depth > SCAN_MAX_DEPTH)
    return kiln_error_make (err, ELOOP, "'%s': deeper than %d directories", rel, SCAN_MAX_DEPTH);
  int lfd = fcntl (dirfd, F_DUPFD_CLOEXEC, 0);
  DIR *d = lfd >= 0 ? fdopendir (lfd) : NULL;
  if (!d)
    {
      int e = errno;
      if (lfd >= 0)
        close (lfd);
      return kiln_error_make (err, e, "list '%s'", *rel ? rel : ".");
    }
  rewinddir (d);
  int r = 0;
  struct dirent *de;
  while (r == 0 && (errno = 0, de = readdir (d)))
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (t->n >= SCAN_MAX_ENTRIES)
        {
          r = kiln_error_make (err, EFBIG, "more than %d entries", SCAN_MAX_ENTRIES);
          break;
        }
      autofree char *path = *rel ? xasprintf ("%s/%s", rel, de->d_name) : xstrdup (de->d_name);
      struct stat st;
      if (fstatat (dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        {
          r = kiln_error_make (err, errno, "stat '%s'", path);
          break;
        }
      char *link = NULL;
      if (S_ISLNK (st.st_mode))
        {
          char buf[PATH_MAX];
          ssize_t n = readlinkat (dirfd, de->d_name, buf, sizeof buf - 1);
          if (n < 0)
            {
              r = kiln_error_make (err, errno, "readlink '%s'", path);
              break;
            }
          link = xstrndup (buf, (size_t) n);
        }
      else if (!S_ISDIR (st.st_mode) && !S_ISREG (st.st_mode))
        continue; /* devices, fifos, sockets: not shared */
      push_item (t, xstrdup (path), &st, link);
      if (S_ISDIR (st.st_mode))
        {
          autoclose int cfd = openat (dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (cfd < 0)
            r = kiln_error_make (err, errno, "open '%s'", path);
          else
            r = scan_dir (cfd, path, depth + 1, t, err);
        }
    }
  if (r == 0 && errno)
    r = kiln_error_make (err, errno, "list '%s'", *rel ? rel : ".");
  closedir (d);
  return r;
}

static int
cmp_item (const void *a, const void *b)
{
  return layer_writer_path_cmp (((const build_cm_item *) a)->path, ((const build_cm_item *) b)->path);
}

int
build_cm_tree_scan (int dirfd, build_cm_tree *t, kiln_error **err)
{
  memset (t, 0, sizeof *t);
  struct stat st;
  if (fstat (dirfd, &st) < 0)
    return kiln_error_make (err, errno, "stat '.'");
  push_item (t, xstrdup (""), &st, NULL);
  if (scan_dir (dirfd, "", 0, t, err) < 0)
    {
      build_cm_tree_free (t);
      return -1;
    }
  qsort (t->v, t->n, sizeof *t->v, cmp_item);
  /* The stamp: what any write, chmod, chown, rename or replacement moves
   * (the root's times excepted: they follow its entries, and the swap of
   * an import moves its ctime). */
  autodigest digest_ctx *d = digest_new ();
  autostrbuf strbuf sb = STRBUF_INIT;
  for (size_t i = 0; i < t->n; i++)
    {
      const struct stat *s = &t->v[i].st;
      bool root = i == 0;
      strbuf_reset (&sb);
      strbuf_addf (&sb, "%s%c%o %u %u %jd %jd.%ld %jd.%ld %ju %s", t->v[i].path, 0, (unsigned) s->st_mode,
                   (unsigned) s->st_uid, (unsigned) s->st_gid, (intmax_t) s->st_size,
                   root ? (intmax_t) 0 : (intmax_t) s->st_mtim.tv_sec, root ? 0L : s->st_mtim.tv_nsec,
                   root ? (intmax_t) 0 : (intmax_t) s->st_ctim.tv_sec, root ? 0L : s->st_ctim.tv_nsec,
                   root ? (uintmax_t) 0 : (uintmax_t) s->st_ino, t->v[i].link ? t->v[i].link : "");
      digest_update (d, sb.buf, sb.len + 1);
    }
  digest_final (d, t->stamp);
  return 0;
}

/* Container id of a host owner (the inverse of the steps' mapping; ids
 * outside it become 0). */
static uint32_t
container_owner (const build_cache_mounts *cm, uint32_t host, bool gid)
{
  const sandbox_idmap *m = &cm->map;
  if (!cm->have_map || cm->owners_presented || host == (gid ? m->host_gid : m->host_uid))
    return 0;
  uint32_t base = gid ? m->sub_gid : m->sub_uid;
  unsigned long n = gid ? m->n_sub_gid : m->n_sub_uid;
  if (n && host >= base && host - base < n)
    return host - base + 1;
  return 0;
}

/* Pack the scanned tree into a store blob: *res, the blob in blobs/. */
static int
pack (build_cache_mounts *cm, const build_cm_tree *t, int dirfd, layer_writer_result *res, kiln_error **err)
{
  autofree layer_change *ch = xcalloc (t->n, sizeof *ch);
  for (size_t i = 0; i < t->n; i++)
    {
      const struct stat *s = &t->v[i].st;
      layer_change *c = &ch[i];
      c->path = t->v[i].path;
      c->kind = LAYER_CHANGE_ADD;
      c->meta.type = S_ISDIR (s->st_mode) ? LAYER_INDEX_DIR : S_ISLNK (s->st_mode) ? LAYER_INDEX_SYMLINK
                                                                                  : LAYER_INDEX_REG;
      c->meta.mode = s->st_mode & 07777;
      c->meta.uid = container_owner (cm, s->st_uid, false);
      c->meta.gid = container_owner (cm, s->st_gid, true);
      c->meta.mtime_sec = s->st_mtim.tv_sec;
      c->meta.mtime_nsec = (uint32_t) s->st_mtim.tv_nsec;
      c->meta.link_target = t->v[i].link;
      if (S_ISREG (s->st_mode))
        {
          c->meta.size = (uint64_t) s->st_size;
          c->data_dirfd = dirfd;
          c->data_path = t->v[i].path;
          c->data_private = true;
        }
      else
        c->data_dirfd = -1;
    }
  layer_writer_opts wo = { .compression = cm->o.compression, .level = cm->o.level, .add_root = true };
  autofree char *tmpname = NULL;
  autoclose int fd = -1;
  if (store_blob_tmpfile (cm->o.store, &fd, &tmpname, err) < 0)
    return -1;
  if (layer_writer_write (ch, t->n, &wo, fd, res, err) < 0)
    {
      store_blob_discard (cm->o.store, tmpname);
      return -1;
    }
  return store_blob_adopt (cm->o.store, tmpname, res->blob_digest, err);
}

/* Config and manifest of the entry: the manifest's bytes. */
static int
entry_manifest (build_cache_mounts *cm, const build_cm_id *c, const build_cm_tree *t, const layer_writer_result *res,
                char **man, size_t *man_len, kiln_error **err)
{
  image_spec spec;
  image_spec_init (&spec);
  const char *os, *arch, *variant;
  platform_host (&os, &arch, &variant);
  spec.os = xstrdup (os);
  spec.architecture = xstrdup (arch);
  spec.created = (int64_t) time (NULL);
  autofree char *l_id = xasprintf ("%s=%s", CM_LABEL_ID, c->id);
  autofree char *l_size = xasprintf ("%s=%" PRIu64, CM_LABEL_SIZE, t->bytes);
  strv_push (&spec.labels, l_id);
  strv_push (&spec.labels, l_size);
  strv_push (&spec.diff_ids, res->diff_id);
  autofree char *by = xasprintf ("kiln RUN --mount=type=cache,id=%s", c->id);
  image_spec_add_history (&spec, spec.created, by, NULL, false);
  autofree char *cfg = NULL;
  size_t cfg_len = 0;
  int r = image_config_json (&spec, &cfg, &cfg_len, err);
  image_spec_free (&spec);
  if (r < 0)
    return -1;
  char cfg_digest[DIGEST_STRING_SIZE];
  digest_buffer (cfg, cfg_len, cfg_digest);
  if (store_put_blob (cm->o.store, cfg_digest, cfg, cfg_len, err) < 0)
    return -1;
  image_descriptor layer = { mediatype_layer (cm->o.compression, false), res->blob_digest, (int64_t) res->blob_size };
  return image_manifest_json (IMAGE_FORMAT_OCI, cfg_digest, (int64_t) cfg_len, &layer, 1, man, man_len, err);
}

/* 1: pushed, 0: nothing to do, -1: failed. */
static int
export_one (build_cache_mounts *cm, const build_cm_id *c, kiln_error **err)
{
  store *s = cm->o.store;
  double t0 = build_cm_now ();
  autoclose int lfd = build_cm_lock (s, c->hash, LOCK_SH, c->id, err);
  if (lfd < 0)
    return -1;
  autofree char *rel = xasprintf ("cache/%s", c->hash);
  autoclose int dfd = openat (s->rootfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    return errno == ENOENT ? 0 : kiln_error_make (err, errno, "open '%s'", rel);
  build_cm_tree t = { 0 };
  if (build_cm_tree_scan (dfd, &t, err) < 0)
    return -1;
  char have[DIGEST_STRING_SIZE], stamp[DIGEST_STRING_SIZE];
  bool recorded = build_cm_record_read (s, c->hash, have, stamp);
  int r = 0;
  if (recorded && strcmp (stamp, t.stamp) == 0)
    progress_note (cm->o.progress, "cache mount '%s': unchanged, not exported", c->id);
  else if (!recorded && t.n <= 1)
    ; /* empty and never shared: nothing to say */
  else if (t.bytes > cm->o.max_size)
    log_warn ("cache mount '%s': %" PRIu64 " bytes, more than --cache-mounts-max-size (%" PRIu64 "); not exported",
              c->id, t.bytes, cm->o.max_size);
  else
    r = 1;
  layer_writer_result res;
  if (r == 1 && pack (cm, &t, dfd, &res, err) < 0)
    r = -1;
  close (lfd);
  lfd = -1;
  if (r == 1 && recorded && strcmp (res.blob_digest, have) == 0)
    {
      /* Touched, not changed (same bytes, same times): the entry stands. */
      progress_note (cm->o.progress, "cache mount '%s': unchanged, not exported", c->id);
      r = build_cm_record_write (s, c->hash, have, t.stamp, err) < 0 ? -1 : 0;
    }
  autofree char *man = NULL;
  size_t man_len = 0;
  if (r == 1 && entry_manifest (cm, c, &t, &res, &man, &man_len, err) < 0)
    r = -1;
  autofree char *tag = xasprintf ("mount-%s", c->hash);
  char *tags[] = { tag, NULL };
  char md[DIGEST_STRING_SIZE];
  if (r == 1 && registry_push_image (cm->client, cm->repo->path, tags, man, man_len, MEDIA_OCI_MANIFEST,
                                     store_push_source (), s, NULL, md, err) < 0)
    r = -1;
  if (r == 1 && build_cm_record_write (s, c->hash, res.blob_digest, t.stamp, err) < 0)
    r = -1;
  if (r == 1)
    progress_note (cm->o.progress, "cache mount '%s': exported to %s:%s (%s, %zu entries, %" PRIu64 " bytes) in %.2f s",
                   c->id, cm->o.repo, tag, res.blob_digest, t.n, t.bytes, build_cm_now () - t0);
  build_cm_tree_free (&t);
  return r;
}

static void *
export_all (void *arg)
{
  build_cache_mounts *cm = arg;
  for (size_t i = 0; i < cm->n_ids; i++)
    {
      if (!cm->ids[i].writable)
        continue;
      if (build_cm_client (cm) < 0)
        break;
      autoerror kiln_error *e = NULL;
      int r = export_one (cm, &cm->ids[i], &e);
      if (r > 0)
        cm->exported++;
      else if (r < 0)
        {
          autofree char *msg = kiln_error_string (e);
          log_warn ("cache mount '%s': export to %s failed: %s", cm->ids[i].id, cm->o.repo, msg);
        }
    }
  return NULL;
}

void
build_cache_mounts_start (build_cache_mounts *cm)
{
  if (!cm || cm->started || cm->done || cm->n_ids == 0)
    return;
  cm->started = pthread_create (&cm->thread, NULL, export_all, cm) == 0;
}

int
build_cache_mounts_finish (build_cache_mounts *cm)
{
  if (!cm)
    return 0;
  if (cm->started)
    {
      pthread_join (cm->thread, NULL);
      cm->started = false;
      cm->done = true;
    }
  else if (!cm->done)
    {
      export_all (cm);
      cm->done = true;
    }
  return cm->exported;
}
