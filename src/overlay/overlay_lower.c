/* overlay_lower.c - lower layer stacks (see overlay_lower.h).
 *
 * Each layer of a stack has its own backend, chosen when it is added: a
 * plain directory tree with OCI whiteout files (idx == NULL), or a store
 * layer (idx != NULL) whose tree holds only directories and regular-file
 * data while every name, type and attribute comes from the mmap'd index.
 * Store layers never touch the tree except to open file data, so opening a
 * stack costs one validated mmap per layer and no directory walk.
 */
#include "overlay/overlay_lower.h"
#include "store/layer_index.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <stdio.h>
#include <sys/sysmacros.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

typedef struct lower_layer
{
  int fd;            /* layer root (plain) or the store layer's tree/ */
  layer_index *idx;  /* store layer: all metadata; NULL: plain directory */
} lower_layer;

struct overlay_lower
{
  lower_layer *v;
  unsigned n;
};

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

int
overlay_lower_open_dirs (const char *const *paths, unsigned n, overlay_lower **out, kiln_error **err)
{
  overlay_lower *l = xzalloc (sizeof *l);
  for (unsigned i = 0; i < n; i++)
    {
      int fd = open (paths[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0)
        {
          int e = errno;
          overlay_lower_free (l);
          return kiln_error_make (err, e, "open layer '%s'", paths[i]);
        }
      overlay_lower_push_dirfd (l, fd);
    }
  *out = l;
  return 0;
}

static void
push_layer (overlay_lower *l, int fd, layer_index *idx)
{
  l->v = xreallocarray (l->v, l->n + 1, sizeof *l->v);
  l->v[l->n++] = (lower_layer) { .fd = fd, .idx = idx };
}

void
overlay_lower_push_dirfd (overlay_lower *l, int dirfd)
{
  push_layer (l, dirfd, NULL);
}

void
overlay_lower_take (overlay_lower *to, overlay_lower *from, unsigned first)
{
  for (unsigned i = first; i < from->n; i++)
    push_layer (to, from->v[i].fd, from->v[i].idx);
  if (first < from->n)
    from->n = first;
}

int
overlay_lower_open_store (store *s, char *const *diff_ids, unsigned n, overlay_lower **out,
                          kiln_error **err)
{
  overlay_lower *l = xzalloc (sizeof *l);
  for (unsigned i = 0; i < n; i++)
    {
      int fd = -1;
      layer_index *idx = NULL;
      if (store_open_layer (s, diff_ids[i], &fd, &idx, err) < 0)
        {
          overlay_lower_free (l);
          return kiln_error_wrap (err, "opening lower layer %u (%s)", i, diff_ids[i]);
        }
      push_layer (l, fd, idx);
    }
  *out = l;
  return 0;
}

void
overlay_lower_free (overlay_lower *l)
{
  if (!l)
    return;
  for (unsigned i = 0; i < l->n; i++)
    {
      close (l->v[i].fd);
      layer_index_close (l->v[i].idx);
    }
  free (l->v);
  free (l);
}

unsigned
overlay_lower_count (const overlay_lower *l)
{
  return l->n;
}

int
overlay_lower_dirfd (const overlay_lower *l, unsigned layer)
{
  return layer < l->n ? l->v[layer].fd : -1;
}

bool
overlay_lower_is_store (const overlay_lower *l, unsigned layer)
{
  return layer < l->n && l->v[layer].idx != NULL;
}

/* Open path beneath the layer root; no symlink is ever followed, so an entry
 * of the tree cannot redirect us elsewhere on the host. */
static int
open_beneath (overlay_lower *l, unsigned layer, const char *path, int flags)
{
  autoerror kiln_error *err = NULL;
  if (layer >= l->n)
    return -EINVAL;
  int fd = fs_open_in_root (l->v[layer].fd, *path ? path : ".", flags | O_NOFOLLOW, 0,
                            FS_RESOLVE_BENEATH | FS_RESOLVE_NO_SYMLINKS, &err);
  if (fd < 0)
    return err && err->status ? -err->status : -EIO;
  return fd;
}

/* ---- plain directory layers ---- */

static int
dir_list (overlay_lower *l, unsigned layer, const char *path, int *opaque, overlay_lower_list_cb cb,
          void *ud)
{
  int fd = open_beneath (l, layer, path, O_RDONLY | O_DIRECTORY);
  if (fd < 0)
    return fd == -ENOTDIR || fd == -ELOOP ? -ENOENT : fd;
  DIR *d = fdopendir (fd);
  if (!d)
    {
      int e = errno;
      close (fd);
      return -e;
    }
  int ret = 0;
  struct dirent *de;
  while ((de = readdir (d)))
    {
      const char *name = de->d_name;
      if (!strcmp (name, ".") || !strcmp (name, ".."))
        continue;
      if (!strcmp (name, WH_OPAQUE))
        {
          *opaque = 1;
          continue;
        }
      if (!strncmp (name, WH_PREFIX, strlen (WH_PREFIX)))
        {
          ret = cb (ud, name + strlen (WH_PREFIX), OVERLAY_LOWER_WHITEOUT, NULL);
          if (ret < 0)
            break;
          continue;
        }
      struct stat st;
      if (fstatat (dirfd (d), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        continue; /* vanished: layers are immutable, so only a broken store */
      overlay_lower_attr a = {
        .mode = st.st_mode, .uid = st.st_uid, .gid = st.st_gid, .size = st.st_size,
        .mtime = st.st_mtim, .rdev = st.st_rdev, .symlink = NULL,
        .nlink = S_ISDIR (st.st_mode) ? 0 : st.st_nlink,
      };
      char target[4096];
      if (S_ISLNK (st.st_mode))
        {
          ssize_t n = readlinkat (dirfd (d), name, target, sizeof target - 1);
          if (n < 0)
            continue;
          target[n] = '\0';
          a.symlink = target;
        }
      if (!S_ISREG (st.st_mode))
        a.size = S_ISLNK (st.st_mode) ? strlen (target) : 0;
      ret = cb (ud, name, OVERLAY_LOWER_ENTRY, &a);
      if (ret < 0)
        break;
    }
  closedir (d);
  return ret;
}


static int
xattr_wanted (const char *name)
{
  return !strncmp (name, "user.", 5) || !strcmp (name, "security.capability");
}

static int
dir_xattrs (overlay_lower *l, unsigned layer, const char *path, overlay_lower_xattr_cb cb, void *ud)
{
  int fd = open_beneath (l, layer, path, O_PATH);
  if (fd < 0)
    return fd;
  struct stat st;
  if (fstat (fd, &st) < 0 || S_ISLNK (st.st_mode))
    {
      close (fd);
      return 0; /* symlinks carry no user xattrs */
    }
  char proc[64];
  snprintf (proc, sizeof proc, "/proc/self/fd/%d", fd);
  char names[65536];
  ssize_t n = listxattr (proc, names, sizeof names);
  if (n < 0)
    {
      int e = errno;
      close (fd);
      return e == ENOTSUP ? 0 : -e;
    }
  for (ssize_t off = 0; off < n; off += strlen (names + off) + 1)
    {
      const char *name = names + off;
      if (!xattr_wanted (name))
        continue;
      char val[65536];
      ssize_t vn = getxattr (proc, name, val, sizeof val);
      if (vn >= 0)
        cb (ud, name, val, vn);
    }
  close (fd);
  return 0;
}

/* ---- store layers ---- */

/* The root of an implicit-root store layer takes its attributes from the
 * nearest layer below with an explicit root, as any implicit directory does
 * (an opaque marker hides a directory's contents, not its attributes). */
static uint32_t
root_meta_entry (overlay_lower *l, unsigned *layer)
{
  for (unsigned k = *layer + 1; k-- > 0;)
    {
      const layer_index *idx = l->v[k].idx;
      if (!idx)
        break; /* a plain layer below: keep the implicit defaults */
      const layer_index_disk_entry *e = layer_index_entry (idx, LAYER_INDEX_ROOT);
      if (!(e->flags & LAYER_INDEX_F_IMPLICIT))
        {
          *layer = k;
          return LAYER_INDEX_ROOT;
        }
    }
  return LAYER_INDEX_ROOT;
}

static void
idx_attr (const layer_index *idx, uint32_t id, overlay_lower_attr *a, char link[LAYER_INDEX_LINK_MAX + 1])
{
  const layer_index_disk_entry *e = layer_index_entry (idx, id);
  *a = (overlay_lower_attr) {
    .mode = layer_index_st_mode (e), .uid = e->uid, .gid = e->gid,
    .size = e->type == LAYER_INDEX_REG || e->type == LAYER_INDEX_SYMLINK ? e->size : 0,
    .mtime = { .tv_sec = e->mtime_sec, .tv_nsec = e->mtime_nsec },
    .rdev = makedev (e->rdev_major, e->rdev_minor), .symlink = NULL,
    .implicit = e->type == LAYER_INDEX_DIR && (e->flags & LAYER_INDEX_F_IMPLICIT),
    .nlink = e->type == LAYER_INDEX_DIR ? 0 : e->nlink,
  };
  if (e->type == LAYER_INDEX_SYMLINK)
    {
      size_t ll;
      const char *t = layer_index_link (idx, id, &ll);
      memcpy (link, t, ll);
      link[ll] = '\0';
      a->symlink = link;
    }
}

static int
idx_list (overlay_lower *l, unsigned layer, const char *path, int *opaque, overlay_lower_list_cb cb,
          void *ud)
{
  const layer_index *idx = l->v[layer].idx;
  uint32_t dir = layer_index_lookup (idx, path);
  if (dir == LAYER_INDEX_NONE)
    return -ENOENT;
  const layer_index_disk_entry *d = layer_index_entry (idx, dir);
  if (d->type != LAYER_INDEX_DIR)
    return -ENOENT;
  *opaque = (d->flags & LAYER_INDEX_F_OPAQUE) != 0;
  char name[LAYER_INDEX_NAME_MAX + 1];
  char link[LAYER_INDEX_LINK_MAX + 1];
  for (uint32_t i = 0; i < d->n_children; i++)
    {
      uint32_t id = d->first_child + i;
      const layer_index_disk_entry *e = layer_index_entry (idx, id);
      size_t nl;
      const char *nm = layer_index_name (idx, id, &nl);
      memcpy (name, nm, nl);
      name[nl] = '\0';
      int ret;
      if (e->type == LAYER_INDEX_WHITEOUT)
        ret = cb (ud, name, OVERLAY_LOWER_WHITEOUT, NULL);
      else
        {
          overlay_lower_attr a;
          idx_attr (idx, id, &a, link);
          ret = cb (ud, name, OVERLAY_LOWER_ENTRY, &a);
        }
      if (ret < 0)
        return ret;
    }
  return 0;
}

static int
idx_open (overlay_lower *l, unsigned layer, const char *path)
{
  uint32_t id = layer_index_lookup (l->v[layer].idx, path);
  if (id == LAYER_INDEX_NONE)
    return -ENOENT;
  const layer_index_disk_entry *e = layer_index_entry (l->v[layer].idx, id);
  if (e->type != LAYER_INDEX_REG)
    return e->type == LAYER_INDEX_DIR ? -EISDIR : -EINVAL;
  /* Members of a hardlink group are links of one tree inode, so every name
   * reads the same data. */
  return open_beneath (l, layer, path, O_RDONLY);
}

static int
idx_xattrs (overlay_lower *l, unsigned layer, const char *path, overlay_lower_xattr_cb cb, void *ud)
{
  const layer_index *idx = l->v[layer].idx;
  uint32_t id = layer_index_lookup (idx, path);
  if (id == LAYER_INDEX_NONE)
    return -ENOENT;
  const layer_index_disk_entry *e = layer_index_entry (idx, id);
  char name[LAYER_INDEX_XATTR_NAME_MAX + 1];
  for (uint32_t i = 0; i < e->xattr_count; i++)
    {
      const char *nm;
      size_t nl, vl;
      const void *v;
      layer_index_get_xattr (idx, id, i, &nm, &nl, &v, &vl);
      memcpy (name, nm, nl);
      name[nl] = '\0';
      if (xattr_wanted (name))
        cb (ud, name, v, vl);
    }
  return 0;
}

/* ---- dispatch ---- */

int
overlay_lower_list (overlay_lower *l, unsigned layer, const char *path, int *opaque,
                    overlay_lower_list_cb cb, void *ud)
{
  *opaque = 0;
  if (layer >= l->n)
    return -EINVAL;
  return l->v[layer].idx ? idx_list (l, layer, path, opaque, cb, ud)
                         : dir_list (l, layer, path, opaque, cb, ud);
}

int
overlay_lower_open (overlay_lower *l, unsigned layer, const char *path)
{
  if (layer >= l->n)
    return -EINVAL;
  return l->v[layer].idx ? idx_open (l, layer, path) : open_beneath (l, layer, path, O_RDONLY);
}

int
overlay_lower_xattrs (overlay_lower *l, unsigned layer, const char *path, overlay_lower_xattr_cb cb,
                      void *ud)
{
  if (layer >= l->n)
    return -EINVAL;
  return l->v[layer].idx ? idx_xattrs (l, layer, path, cb, ud) : dir_xattrs (l, layer, path, cb, ud);
}

int
overlay_lower_layer_root_attr (overlay_lower *l, unsigned layer, overlay_lower_attr *a)
{
  if (layer >= l->n)
    return -EINVAL;
  const layer_index *idx = l->v[layer].idx;
  if (!idx)
    {
      struct stat st;
      if (fstat (l->v[layer].fd, &st) < 0)
        return -errno;
      /* a plain tree's owner is whoever made it, not the image's */
      *a = (overlay_lower_attr) { .mode = S_IFDIR | (st.st_mode & 07777), .mtime = st.st_mtim };
      return 0;
    }
  const layer_index_disk_entry *e = layer_index_entry (idx, LAYER_INDEX_ROOT);
  if (e->flags & LAYER_INDEX_F_IMPLICIT)
    return -ENOENT;
  char link[LAYER_INDEX_LINK_MAX + 1];
  idx_attr (idx, LAYER_INDEX_ROOT, a, link);
  return 0;
}

int
overlay_lower_root_attr (overlay_lower *l, overlay_lower_attr *a)
{
  if (!l->n)
    return -ENOENT;
  unsigned top = l->n - 1;
  if (!l->v[top].idx)
    return overlay_lower_layer_root_attr (l, top, a);
  unsigned k = top;
  uint32_t id = root_meta_entry (l, &k);
  char link[LAYER_INDEX_LINK_MAX + 1];
  idx_attr (l->v[k].idx, id, a, link);
  a->implicit = false;
  return 0;
}
