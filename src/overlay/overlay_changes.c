/* overlay_changes.c - change list ownership and the plain-tree form. */
#include "overlay/overlay.h"
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
