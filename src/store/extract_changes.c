/* extract_changes.c - a store layer from a change list (extract_from_changes):
 * the layer writer's list, published without reading the blob back; what
 * is hard-linked, what is recorded (store/links.h) and what is copied. */
#include "store/extract.h"
#include "store/extract_internal.h"
#include "store/layer_index.h"
#include "store/links.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a layer from a change list ---- */

typedef struct fc_item
{
  const layer_change *c;
  char *path;   /* normalised */
} fc_item;

/* Parents before children ('/' sorts first), a directory before its
 * opaque marker: the layer writer's order, so the index sees what an
 * extraction of its tar would. */
static int
fc_cmp (const void *pa, const void *pb)
{
  const fc_item *x = pa, *y = pb;
  int r = layer_writer_path_cmp (x->path, y->path);
  return r ? r : (int) x->c->kind - (int) y->c->kind;
}

/* The directory of path (normalised) in the tree, created as needed; name
 * points at path's last component. Owned by the cache (entries come sorted,
 * parents before children, so files of one directory reuse its fd). */
static int
fc_parent (dir_cache *parents, const char *path, const char **name, kiln_error **err)
{
  const char *slash = strrchr (path, '/');
  *name = slash ? slash + 1 : path;
  if (!slash)
    return parents->treefd;
  autofree char *dir = xstrndup (path, (size_t) (slash - path));
  return extract_dir_cache_get (parents, dir, err);
}

/* Is st still the user's file as the step saw it (c->src_*) and packed it
 * (size, mtime: the layer writer read it since)? */
static bool
fc_same_source (const layer_change *c, const struct stat *st)
{
  if ((uint64_t) st->st_ino != c->src_ino || (uint64_t) st->st_size != c->meta.size
      || st->st_mtim.tv_sec != c->meta.mtime_sec || (uint32_t) st->st_mtim.tv_nsec != c->meta.mtime_nsec)
    return false;
  if (st->st_ctim.tv_sec == c->src_ctime_sec && (uint32_t) st->st_ctim.tv_nsec == c->src_ctime_nsec)
    return true;
  /* only kiln's own links of it since (another layer of this build) */
  return store_links_own_moved (st, c->src_ctime_sec, c->src_ctime_nsec);
}

static int
fc_link (int in, int pfd, const char *name)
{
  char proc[64];
  snprintf (proc, sizeof proc, "/proc/self/fd/%d", in);
  return linkat (AT_FDCWD, proc, pfd, name, AT_SYMLINK_FOLLOW);
}

/* A user's file, still the inode the step read (fc_same_source):
 * hard-linked and recorded in links; 1 when it cannot be linked (the
 * caller copies). */
static int
fc_link_user (int in, const struct stat *pre, int pfd, const char *name, const layer_change *c, const char *path,
              store_links *links, kiln_error **err)
{
  if (fc_link (in, pfd, name) < 0)
    {
      if (errno == EEXIST)
        return kiln_error_make (err, errno, "create '%s'", path);
      return 1; /* EXDEV, EMLINK, EPERM (protected_hardlinks): copy */
    }
  /* written back first: a shared writable mapping of it then faults, and
   * moves ctime, on its next store (links.h) */
  int r;
  do
    r = sync_file_range (in, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
  while (r < 0 && errno == EINTR);
  struct stat post;
  if (fstat (in, &post) < 0)
    return kiln_error_make (err, errno, "stat data of '%s'", path);
  if (post.st_ino != pre->st_ino || post.st_size != pre->st_size
      || post.st_mtim.tv_sec != pre->st_mtim.tv_sec || post.st_mtim.tv_nsec != pre->st_mtim.tv_nsec)
    return kiln_error_make (err, 0, "'%s' changed during the build, after the step read it; build again",
                            c->data_path);
  store_links_note_own (pre, &post);
  store_links_add (links, path, &post);
  return 0;
}

/* Put the data of c at name below pfd. Data kiln owns and nothing can
 * write any more (c->data_private: a frozen overlay upper, whose handles
 * overlay_commit revoked; a store tree; a kiln temp file) is hard-linked
 * when the filesystem allows: no copy of a RUN step's output. A build
 * context file is hard-linked too when the step knew its identity
 * (c->src_ino), and recorded in links: the store verifies it whenever it
 * opens the layer (store/links.h). Anything else is copied: a reflink where
 * the filesystem shares blocks (FICLONE), else copy_file_range. */
static int
fc_data (int pfd, const char *name, const layer_change *c, const char *path, uint64_t *size, store_links *links,
         kiln_error **err)
{
  if (!c->data_path)
    return kiln_error_make (err, EINVAL, "'%s': regular file without data source", path);
  autoclose int in = fs_open_in_root (c->data_dirfd, c->data_path, O_RDONLY | O_NOFOLLOW, 0,
                                      FS_RESOLVE_BENEATH | FS_RESOLVE_NO_SYMLINKS, err);
  if (in < 0)
    return kiln_error_wrap (err, "data of '%s'", path);
  struct stat st;
  if (fstat (in, &st) < 0)
    return kiln_error_make (err, errno, "stat data of '%s'", path);
  if (!S_ISREG (st.st_mode))
    return kiln_error_make (err, EINVAL, "data of '%s' is not a regular file", path);
  *size = (uint64_t) st.st_size;
  if (c->data_private)
    {
      if (fc_link (in, pfd, name) == 0)
        return 0;
      if (errno == EEXIST)
        return kiln_error_make (err, errno, "create '%s'", path);
    }
  else if (c->src_ino && !fc_same_source (c, &st))
    return kiln_error_make (err, 0, "'%s' changed during the build, after the step read it; build again",
                            c->data_path);
  else if (c->src_ino && c->src_settled && links)
    {
      int r = fc_link_user (in, &st, pfd, name, c, path, links, err);
      if (r <= 0)
        return r;
    }
  autoclose int out = openat (pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out < 0)
    return kiln_error_make (err, errno, "create '%s'", path);
  if (ioctl (out, FICLONE, in) < 0 && fs_copy_fd (in, out, UINT64_MAX, NULL, err) < 0)
    return kiln_error_wrap (err, "copying '%s'", path);
  /* the index records the size of what was stored; a user's file must
   * still be what the step read and the layer writer packed */
  struct stat after, got;
  if (fstat (in, &after) < 0 || fstat (out, &got) < 0)
    return kiln_error_make (err, errno, "stat '%s'", path);
  if (!c->data_private
      && (after.st_ctim.tv_sec != st.st_ctim.tv_sec || after.st_ctim.tv_nsec != st.st_ctim.tv_nsec
          || got.st_size != st.st_size || (c->src_ino && !fc_same_source (c, &after))))
    return kiln_error_make (err, 0, "'%s' changed during the build, after the step read it; build again",
                            c->data_path);
  *size = (uint64_t) got.st_size;
  return 0;
}

/* An in-tree hard link to a recorded file moved its ctime: renew the
 * record (links are few; the record is found from the end). */
static void
fc_relink (store_links *links, const char *target, int pfd, const char *name)
{
  for (size_t i = links ? links->n : 0; i-- > 0;)
    if (strcmp (links->v[i].path, target) == 0)
      {
        struct stat st;
        if (fstatat (pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && (uint64_t) st.st_ino == links->v[i].ino)
          {
            links->v[i].ctime_sec = st.st_ctim.tv_sec;
            links->v[i].ctime_nsec = (uint32_t) st.st_ctim.tv_nsec;
          }
        return;
      }
}

static int
fc_add (layer_index_builder *b, dir_cache *parents, const fc_item *it, const layer_writer_opts *o, store_links *links,
        kiln_error **err)
{
  const layer_change *c = it->c;
  const char *name;
  switch (c->kind)
    {
    case LAYER_CHANGE_OPAQUE:
      return layer_index_builder_set_opaque (b, it->path, err);
    case LAYER_CHANGE_WHITEOUT:
      {
        layer_index_meta m = { .type = LAYER_INDEX_WHITEOUT };
        return layer_index_builder_add (b, it->path, &m, NULL, err);
      }
    case LAYER_CHANGE_ADD:
      break;
    }
  if (c->hardlink_target)
    {
      autofree char *target = NULL;
      if (layer_index_normalize_path (c->hardlink_target, &target, err) < 0
          || layer_index_builder_add_hardlink (b, it->path, target, NULL, err) < 0)
        return -1;
      /* The target's directory outside the cache, which keeps serving the
       * link's own directory (links cluster there, targets anywhere). */
      const char *tslash = strrchr (target, '/');
      const char *tname = tslash ? tslash + 1 : target;
      autofree char *tdir = tslash ? xstrndup (target, (size_t) (tslash - target)) : NULL;
      autoclose int tfd = tdir ? fs_mkdir_p_open_at (parents->treefd, tdir, 0700, err)
                               : fcntl (parents->treefd, F_DUPFD_CLOEXEC, 0);
      if (tfd < 0)
        return tdir ? -1 : kiln_error_make (err, errno, "dup");
      int pfd = fc_parent (parents, it->path, &name, err);
      if (pfd < 0)
        return -1;
      if (linkat (tfd, tname, pfd, name, 0) < 0)
        return kiln_error_make (err, errno, "link '%s' to '%s'", it->path, target);
      fc_relink (links, target, pfd, name);
      return 0;
    }
  layer_index_meta m = c->meta;
  m.mtime_nsec = 0; /* the tar carries whole seconds (layer_writer.c) */
  if (o && o->clamp_mtime && m.mtime_sec >= o->clamp_epoch)
    m.mtime_sec = o->clamp_epoch;
  if (m.type == LAYER_INDEX_SYMLINK)
    m.size = m.link_target ? strlen (m.link_target) : 0;
  if (m.type != LAYER_INDEX_REG && m.type != LAYER_INDEX_SYMLINK)
    m.size = 0;
  int pfd = -1;
  if (*it->path && m.type != LAYER_INDEX_DIR)
    {
      pfd = fc_parent (parents, it->path, &name, err);
      if (pfd < 0)
        return -1;
    }
  if (m.type == LAYER_INDEX_REG && fc_data (pfd, name, c, it->path, &m.size, links, err) < 0)
    return -1;
  if (m.type == LAYER_INDEX_DIR && *it->path && fs_mkdir_p_at (parents->treefd, it->path, 0700, err) < 0)
    return -1;
  return layer_index_builder_add (b, it->path, &m, NULL, err);
}

static int
fc_write_links (int layer_dirfd, const store_links *links, kiln_error **err)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  store_links_format (links, &sb);
  /* in the temp layer directory, which store_publish_layer syncs */
  return fs_write_file_unsynced_at (layer_dirfd, STORE_LINKS_FILE, sb.buf, sb.len, 0600, err);
}

static int
fc_build (int layer_dirfd, const layer_change *ch, size_t n, const layer_writer_opts *o, kiln_error **err)
{
  if (mkdirat (layer_dirfd, "tree", 0700) < 0)
    return kiln_error_make (err, errno, "mkdir 'tree'");
  autoclose int treefd = openat (layer_dirfd, "tree", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (treefd < 0)
    return kiln_error_make (err, errno, "open 'tree'");
  fc_item *items = xcalloc (n + 1, sizeof *items);
  size_t ni = 0;
  int ret = 0;
  for (size_t i = 0; i < n && ret == 0; i++)
    {
      char *np;
      if (layer_index_normalize_path (ch[i].path, &np, err) < 0)
        {
          ret = -1;
          break;
        }
      if (*np == '\0' && ch[i].kind == LAYER_CHANGE_ADD && !(o && o->add_root))
        {
          free (np);
          continue;
        }
      items[ni++] = (fc_item) { &ch[i], np };
    }
  if (ret == 0)
    qsort (items, ni, sizeof *items, fc_cmp);
  autoindexbuilder layer_index_builder *b = layer_index_builder_new ();
  dir_cache parents = { .treefd = treefd, .fd = -1 };
  store_links links = { 0 };
  for (size_t i = 0; i < ni && ret == 0; i++)
    if (fc_add (b, &parents, &items[i], o, &links, err) < 0)
      ret = kiln_error_wrap (err, "'%s'", items[i].path);
  extract_dir_cache_drop (&parents);
  for (size_t i = 0; i < ni; i++)
    free (items[i].path);
  free (items);
  if (ret == 0 && layer_index_builder_write_at (b, layer_dirfd, "index", err) < 0)
    ret = -1;
  /* build context files linked: their record is published with the layer */
  if (ret == 0 && links.n && fc_write_links (layer_dirfd, &links, err) < 0)
    ret = -1;
  store_links_free (&links);
  return ret;
}

/* The layer exists already, so nothing is linked or copied; but the
 * user's files the layer writer just packed must still be what the step
 * read (a file edited between the step's read and the pack would give a
 * cache entry whose key does not describe its blob): one fstatat each. */
static int
fc_check_sources (const layer_change *ch, size_t n, kiln_error **err)
{
  for (size_t i = 0; i < n; i++)
    {
      const layer_change *c = &ch[i];
      if (c->kind != LAYER_CHANGE_ADD || c->meta.type != LAYER_INDEX_REG || c->hardlink_target || !c->data_path
          || c->data_private || !c->src_ino)
        continue;
      struct stat st;
      if (fstatat (c->data_dirfd, c->data_path, &st, AT_SYMLINK_NOFOLLOW) < 0 || !fc_same_source (c, &st))
        return kiln_error_make (err, 0, "'%s' changed during the build, after the step read it; build again",
                                c->data_path);
    }
  return 0;
}

int
extract_from_changes (store *s, const layer_change *ch, size_t n, const layer_writer_opts *opts,
                      const char *diff_id, const char *blob_digest, kiln_error **err)
{
  autoclose int lock = store_lock_layer (s, blob_digest, err);
  if (lock < 0)
    return kiln_error_wrap (err, "locking layer %s", blob_digest);
  if (store_has_layer (s, diff_id))
    return fc_check_sources (ch, n, err) < 0 ? kiln_error_wrap (err, "storing layer %s", diff_id) : 0;
  autofree char *tmp = NULL;
  autoclose int dfd = -1;
  if (store_mktemp (s, "layer", &tmp, &dfd, err) < 0)
    return -1;
  if (fc_build (dfd, ch, n, opts, err) < 0 || store_publish_layer (s, tmp, diff_id, blob_digest, err) < 0)
    {
      store_rmtemp (s, tmp);
      return kiln_error_wrap (err, "storing layer %s in store '%s'", diff_id, s->root);
    }
  return 0;
}
