/* overlay_lower.c - plain-directory layer backend (see overlay_lower.h). */
#include "overlay/overlay_lower.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

struct overlay_lower
{
  int *fds;
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

void
overlay_lower_push_dirfd (overlay_lower *l, int dirfd)
{
  l->fds = xreallocarray (l->fds, l->n + 1, sizeof *l->fds);
  l->fds[l->n++] = dirfd;
}

void
overlay_lower_free (overlay_lower *l)
{
  if (!l)
    return;
  for (unsigned i = 0; i < l->n; i++)
    close (l->fds[i]);
  free (l->fds);
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
  return layer < l->n ? l->fds[layer] : -1;
}

/* Open path beneath the layer root; no symlink is ever followed, so an entry
 * of the tree cannot redirect us elsewhere on the host. */
static int
open_beneath (overlay_lower *l, unsigned layer, const char *path, int flags)
{
  autoerror kiln_error *err = NULL;
  if (layer >= l->n)
    return -EINVAL;
  int fd = fs_open_in_root (l->fds[layer], *path ? path : ".", flags | O_NOFOLLOW, 0,
                            FS_RESOLVE_BENEATH | FS_RESOLVE_NO_SYMLINKS, &err);
  if (fd < 0)
    return err && err->status ? -err->status : -EIO;
  return fd;
}

int
overlay_lower_list (overlay_lower *l, unsigned layer, const char *path, int *opaque,
                    overlay_lower_list_cb cb, void *ud)
{
  *opaque = 0;
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

int
overlay_lower_open (overlay_lower *l, unsigned layer, const char *path)
{
  return open_beneath (l, layer, path, O_RDONLY);
}

static int
xattr_wanted (const char *name)
{
  return !strncmp (name, "user.", 5) || !strcmp (name, "security.capability");
}

int
overlay_lower_xattrs (overlay_lower *l, unsigned layer, const char *path, overlay_lower_xattr_cb cb,
                      void *ud)
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
