/* overlay_changes.c - change list ownership, the plain-tree form and the
 * layer writer's form. */
#include "overlay/overlay.h"
#include "util/log.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

void
overlay_changes_free (overlay_changes *c)
{
  if (!c)
    return;
  for (size_t i = 0; i < c->n; i++)
    {
      overlay_change *ch = &c->v[i];
      free (ch->path);
      free (ch->symlink);
      free (ch->link_target);
      free (ch->data_path);
      for (size_t k = 0; k < ch->n_xattrs; k++)
        {
          free (ch->xattrs[k].name);
          free (ch->xattrs[k].value);
        }
      free (ch->xattrs);
    }
  free (c->v);
  free (c);
}

static int
parent_fd (int dirfd, const char *path, char **base, kiln_error **err)
{
  const char *slash = strrchr (path, '/');
  if (!slash)
    {
      *base = xstrdup (path);
      return fcntl (dirfd, F_DUPFD_CLOEXEC, 3);
    }
  autofree char *dir = xstrndup (path, slash - path);
  *base = xstrdup (slash + 1);
  return fs_mkdir_p_open_at (dirfd, dir, 0755, err);
}

static int
copy_data (const overlay_change *ch, int pfd, const char *name, kiln_error **err)
{
  autoclose int src = fs_open_in_root (ch->data_dirfd, ch->data_path, O_RDONLY | O_NOFOLLOW, 0,
                                       FS_RESOLVE_BENEATH | FS_RESOLVE_NO_SYMLINKS, err);
  if (src < 0)
    return -1;
  autoclose int dst = openat (pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (dst < 0)
    return kiln_error_make (err, errno, "create '%s'", ch->path);
  if (ioctl (dst, FICLONE, src) == 0)
    return 0;
  return fs_copy_fd (src, dst, UINT64_MAX, NULL, err);
}

static int
apply_one (const overlay_change *ch, int dirfd, bool apply_owner, kiln_error **err)
{
  autofree char *name = NULL;
  autoclose int pfd = -1;
  if (!*ch->path)
    {
      if (ch->kind == OVERLAY_CHANGE_ADD)
        fchmod (dirfd, ch->mode & 07777);
      return 0;
    }
  if ((pfd = parent_fd (dirfd, ch->path, &name, err)) < 0)
    return -1;
  switch (ch->kind)
    {
    case OVERLAY_CHANGE_WHITEOUT:
      {
        autofree char *wh = xasprintf (".wh.%s", name);
        int fd = openat (pfd, wh, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
          return kiln_error_make (err, errno, "create whiteout for '%s'", ch->path);
        close (fd);
        return 0;
      }
    case OVERLAY_CHANGE_OPAQUE:
      {
        if (mkdirat (pfd, name, 0755) < 0 && errno != EEXIST)
          return kiln_error_make (err, errno, "mkdir '%s'", ch->path);
        autoclose int d = openat (pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int fd = d < 0 ? -1 : openat (d, ".wh..wh..opq", O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
          return kiln_error_make (err, errno, "create opaque marker in '%s'", ch->path);
        close (fd);
        return 0;
      }
    case OVERLAY_CHANGE_HARDLINK:
      if (linkat (dirfd, ch->link_target, pfd, name, 0) < 0)
        return kiln_error_make (err, errno, "link '%s' to '%s'", ch->path, ch->link_target);
      return 0;
    case OVERLAY_CHANGE_ADD:
      break;
    }
  int r = 0;
  switch (ch->mode & S_IFMT)
    {
    case S_IFDIR:
      if (mkdirat (pfd, name, 0700) < 0 && errno != EEXIST)
        r = kiln_error_make (err, errno, "mkdir '%s'", ch->path);
      break;
    case S_IFREG:
      if (ch->data_dirfd < 0)
        r = kiln_error_make (err, EINVAL, "no data for '%s'", ch->path);
      else
        r = copy_data (ch, pfd, name, err);
      break;
    case S_IFLNK:
      if (symlinkat (ch->symlink, pfd, name) < 0)
        r = kiln_error_make (err, errno, "symlink '%s'", ch->path);
      break;
    default:
      if (mknodat (pfd, name, ch->mode & (S_IFMT | 0777), ch->rdev) < 0)
        r = kiln_error_make (err, errno, "mknod '%s'", ch->path);
      break;
    }
  if (r < 0)
    return r;
  if (!S_ISLNK (ch->mode))
    for (size_t k = 0; k < ch->n_xattrs; k++)
      {
        autoclose int fd = openat (pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        char proc[64];
        snprintf (proc, sizeof proc, "/proc/self/fd/%d", fd);
        if (fd < 0 || setxattr (proc, ch->xattrs[k].name, ch->xattrs[k].value, ch->xattrs[k].len, 0) < 0)
          return kiln_error_make (err, errno, "set xattr '%s' on '%s'", ch->xattrs[k].name, ch->path);
      }
  if (apply_owner && fchownat (pfd, name, ch->uid, ch->gid, AT_SYMLINK_NOFOLLOW) < 0)
    return kiln_error_make (err, errno, "chown '%s'", ch->path);
  if (!S_ISLNK (ch->mode) && fchmodat (pfd, name, ch->mode & 07777, 0) < 0)
    return kiln_error_make (err, errno, "chmod '%s'", ch->path);
  struct timespec ts[2] = { ch->mtime, ch->mtime };
  utimensat (pfd, name, ts, AT_SYMLINK_NOFOLLOW);
  return 0;
}

int
overlay_changes_materialize (const overlay_changes *c, int dirfd, bool apply_owner, kiln_error **err)
{
  for (size_t i = 0; i < c->n; i++)
    if (apply_one (&c->v[i], dirfd, apply_owner, err) < 0)
      return kiln_error_wrap (err, "materializing change list");
  return 0;
}

/* The commit's order (parents first, '/' before any other byte). */
static int
change_path_cmp (const char *a, const char *b)
{
  for (; *a && *a == *b; a++, b++)
    ;
  unsigned char x = *a == '/' ? 1 : (unsigned char) *a, y = *b == '/' ? 1 : (unsigned char) *b;
  return x < y ? -1 : x > y;
}

/* The ADD entry of path: binary search in the sorted list, then a linear
 * scan in case a caller built the list in another order. */
static const overlay_change *
find_add (const overlay_changes *c, const char *path)
{
  size_t lo = 0, hi = c->n;
  while (lo < hi)
    {
      size_t mid = lo + (hi - lo) / 2;
      int r = change_path_cmp (c->v[mid].path, path);
      if (r < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  for (size_t i = lo; i < c->n && !strcmp (c->v[i].path, path); i++)
    if (c->v[i].kind == OVERLAY_CHANGE_ADD)
      return &c->v[i];
  for (size_t i = 0; i < c->n; i++)
    if (c->v[i].kind == OVERLAY_CHANGE_ADD && !strcmp (c->v[i].path, path))
      return &c->v[i];
  return NULL;
}

static int
index_type (mode_t mode, layer_index_type *t)
{
  switch (mode & S_IFMT)
    {
    case S_IFREG:
      *t = LAYER_INDEX_REG;
      return 0;
    case S_IFDIR:
      *t = LAYER_INDEX_DIR;
      return 0;
    case S_IFLNK:
      *t = LAYER_INDEX_SYMLINK;
      return 0;
    case S_IFCHR:
      *t = LAYER_INDEX_CHR;
      return 0;
    case S_IFBLK:
      *t = LAYER_INDEX_BLK;
      return 0;
    case S_IFIFO:
      *t = LAYER_INDEX_FIFO;
      return 0;
    case S_IFSOCK:
      *t = LAYER_INDEX_SOCK;
      return 0;
    default:
      return -1;
    }
}

static void
fill_meta (const overlay_change *ch, layer_index_type type, layer_index_xattr *xv, layer_change *lc)
{
  layer_index_meta *m = &lc->meta;
  m->type = type;
  m->mode = ch->mode & 07777;
  m->uid = ch->uid;
  m->gid = ch->gid;
  m->size = ch->size;
  m->mtime_sec = ch->mtime.tv_sec;
  m->mtime_nsec = ch->mtime.tv_nsec;
  m->rdev_major = major (ch->rdev);
  m->rdev_minor = minor (ch->rdev);
  m->link_target = type == LAYER_INDEX_SYMLINK ? ch->symlink : NULL;
  for (size_t k = 0; k < ch->n_xattrs; k++)
    xv[k] = (layer_index_xattr) { .name = ch->xattrs[k].name, .value = ch->xattrs[k].value,
                                  .value_len = ch->xattrs[k].len };
  m->xattrs = ch->n_xattrs ? xv : NULL;
  m->n_xattrs = ch->n_xattrs;
  lc->data_dirfd = -1;
  if (type == LAYER_INDEX_REG)
    {
      lc->data_dirfd = ch->data_dirfd;
      lc->data_path = ch->data_path;
      lc->data_private = ch->data_private;
    }
}

int
overlay_changes_to_layer (const overlay_changes *c, layer_change **out, size_t *n, kiln_error **err)
{
  /* A hardlink ships its target's metadata, xattrs included. */
  size_t total_x = 0;
  for (size_t i = 0; i < c->n; i++)
    {
      const overlay_change *ch = &c->v[i];
      const overlay_change *t = ch->kind == OVERLAY_CHANGE_HARDLINK && ch->link_target
                                    ? find_add (c, ch->link_target) : NULL;
      total_x += t ? t->n_xattrs : ch->n_xattrs;
    }
  /* one block: the changes, then every xattr array they point into */
  size_t head = (c->n ? c->n : 1) * sizeof (layer_change);
  autofree void *block = xzalloc (head + (total_x ? total_x : 1) * sizeof (layer_index_xattr));
  layer_change *v = block;
  layer_index_xattr *xv = (layer_index_xattr *) ((char *) block + head);
  size_t nv = 0;
  for (size_t i = 0; i < c->n; i++)
    {
      const overlay_change *ch = &c->v[i];
      layer_change *lc = &v[nv];
      *lc = (layer_change) { .path = ch->path, .data_dirfd = -1 };
      layer_index_type type;
      switch (ch->kind)
        {
        case OVERLAY_CHANGE_WHITEOUT:
          lc->kind = LAYER_CHANGE_WHITEOUT;
          nv++;
          continue;
        case OVERLAY_CHANGE_OPAQUE:
          lc->kind = LAYER_CHANGE_OPAQUE;
          nv++;
          continue;
        case OVERLAY_CHANGE_HARDLINK:
          {
            const overlay_change *t = ch->link_target ? find_add (c, ch->link_target) : NULL;
            if (!t)
              return kiln_error_make (err, EINVAL, "change list: hardlink '%s' to '%s' which it does not add",
                                      ch->path, ch->link_target ? ch->link_target : "(none)");
            if (index_type (t->mode, &type) < 0)
              return kiln_error_make (err, EINVAL, "change list: '%s' has unknown file type 0%o",
                                      t->path, (unsigned) (t->mode & S_IFMT));
            if (type == LAYER_INDEX_SOCK)
              continue;
            lc->kind = LAYER_CHANGE_ADD;
            fill_meta (t, type, xv, lc);
            /* tar hardlinks name regular files only; other multiply-linked
             * inodes (symlinks, devices, fifos) ship as copies */
            if (type == LAYER_INDEX_REG)
              lc->hardlink_target = t->path;
            xv += t->n_xattrs;
            nv++;
            continue;
          }
        case OVERLAY_CHANGE_ADD:
          break;
        }
      if (index_type (ch->mode, &type) < 0)
        return kiln_error_make (err, EINVAL, "change list: '%s' has unknown file type 0%o", ch->path,
                                (unsigned) (ch->mode & S_IFMT));
      if (type == LAYER_INDEX_SOCK)
        {
          /* a socket cannot be stored in a tar; Docker skips them too */
          log_debug ("layer: skipping socket '%s'", ch->path);
          continue;
        }
      if (type == LAYER_INDEX_REG && ch->data_dirfd < 0)
        return kiln_error_make (err, EINVAL, "change list: regular file '%s' has no data", ch->path);
      lc->kind = LAYER_CHANGE_ADD;
      fill_meta (ch, type, xv, lc);
      xv += ch->n_xattrs;
      nv++;
    }
  *out = steal_pointer (&block);
  *n = nv;
  return 0;
}
