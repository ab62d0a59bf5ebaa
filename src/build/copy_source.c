/* copy_source.c - where COPY/ADD sources come from: the build context (a
 * directory fd, .dockerignore applied, never following a symlink out of
 * it) or a stage's or image's layers (copy_internal.h).
 */
#include "build/copy_internal.h"
#include "build/rootfs.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static int
names_cmp (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static int
ctx_parent (source *s, const char *path, const char **base)
{
  autofree char *dir = NULL;
  const char *slash = strrchr (path, '/');
  if (slash)
    {
      dir = xstrndup (path, slash - path);
      *base = slash + 1;
    }
  else
    {
      dir = xstrdup ("");
      *base = path;
    }
  autoerror kiln_error *e = NULL;
  int fd = fs_open_in_root (s->ctxfd, dir, O_PATH | O_DIRECTORY, 0, FS_RESOLVE_BENEATH | FS_RESOLVE_NO_SYMLINKS, &e);
  if (fd < 0)
    return e && e->status ? -e->status : -ENOENT;
  return fd;
}

static int
ctx_stat (source *s, const char *path, src_stat *st)
{
  memset (st, 0, sizeof *st);
  struct stat sb;
  struct timespec before;
  clock_gettime (CLOCK_REALTIME_COARSE, &before);
  if (*path == '\0')
    {
      if (fstat (s->ctxfd, &sb) < 0)
        return -errno;
    }
  else
    {
      const char *base;
      autoclose int pfd = ctx_parent (s, path, &base);
      if (pfd < 0)
        return pfd;
      if (fstatat (pfd, base, &sb, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
      if (S_ISLNK (sb.st_mode))
        {
          char buf[PATH_MAX];
          ssize_t n = readlinkat (pfd, base, buf, sizeof buf - 1);
          if (n < 0)
            return -errno;
          buf[n] = '\0';
          st->symlink = xstrdup (buf);
        }
    }
  st->mode = sb.st_mode;
  st->size = sb.st_size;
  st->mtime_sec = sb.st_mtim.tv_sec;
  st->mtime_nsec = sb.st_mtim.tv_nsec;
  st->rdev = sb.st_rdev;
  st->dev = sb.st_dev;
  st->ino = sb.st_ino;
  st->nlink = sb.st_nlink;
  st->ctime_sec = sb.st_ctim.tv_sec;
  st->ctime_nsec = (uint32_t) sb.st_ctim.tv_nsec;
  st->ctime_settled = sb.st_ctim.tv_sec < before.tv_sec
                      || (sb.st_ctim.tv_sec == before.tv_sec && sb.st_ctim.tv_nsec < before.tv_nsec);
  return 0;
}

static int
ctx_list (source *s, const char *path, char ***names)
{
  *names = NULL;
  autoerror kiln_error *e = NULL;
  int fd = fs_open_in_root (s->ctxfd, path, O_RDONLY | O_DIRECTORY, 0, FS_RESOLVE_BENEATH | FS_RESOLVE_NO_SYMLINKS, &e);
  if (fd < 0)
    return e && e->status ? -e->status : -ENOENT;
  DIR *d = fdopendir (fd);
  if (!d)
    {
      int r = -errno;
      close (fd);
      return r;
    }
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir (d)))
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      strv_push (names, de->d_name);
      n++;
    }
  closedir (d);
  if (n > 1)
    qsort (*names, n, sizeof **names, names_cmp);
  return 0;
}

/* The user's own file, which they may edit after the build. */
static int
ctx_data (source *s, const char *path, const src_stat *st, int *dirfd, char **relpath, bool *owned)
{
  (void) st;
  *dirfd = s->ctxfd;
  *relpath = xstrdup (path);
  *owned = false;
  return 0;
}

void
copy_owned_add_xattr (struct copy_owned *o, const char *name, const void *val, size_t len)
{
  o->xattr_names = xreallocarray (o->xattr_names, o->n_xattrs + 1, sizeof *o->xattr_names);
  o->xattr_values = xreallocarray (o->xattr_values, o->n_xattrs + 1, sizeof *o->xattr_values);
  o->xattr_names[o->n_xattrs] = xstrdup (name);
  o->xattr_values[o->n_xattrs] = xmemdup (val, len ? len : 1);
  o->xattrs = xreallocarray (o->xattrs, o->n_xattrs + 1, sizeof *o->xattrs);
  o->xattrs[o->n_xattrs] = (layer_index_xattr) { o->xattr_names[o->n_xattrs], o->xattr_values[o->n_xattrs], len };
  o->n_xattrs++;
}

static void
ctx_xattrs (source *s, const char *path, const src_stat *st, struct copy_owned *o)
{
  if (!S_ISREG (st->mode) && !S_ISDIR (st->mode))
    return;
  autoerror kiln_error *e = NULL;
  autoclose int fd = fs_open_in_root (s->ctxfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0,
                                      FS_RESOLVE_BENEATH | FS_RESOLVE_NO_SYMLINKS, &e);
  if (fd < 0)
    return;
  char names[4096];
  ssize_t n = flistxattr (fd, names, sizeof names);
  for (ssize_t i = 0; i < n; i += strlen (names + i) + 1)
    {
      const char *name = names + i;
      if (strncmp (name, "user.", 5) != 0 && strcmp (name, "security.capability") != 0)
        continue;
      char val[4096];
      ssize_t vl = fgetxattr (fd, name, val, sizeof val);
      if (vl >= 0)
        copy_owned_add_xattr (o, name, val, vl);
    }
}

static int
lay_stat (source *s, const char *path, src_stat *st)
{
  memset (st, 0, sizeof *st);
  rootfs_entry e;
  int r = rootfs_stat (s->lower, path, &e);
  if (r < 0)
    return r;
  st->mode = e.attr.mode;
  st->uid = e.attr.uid;
  st->gid = e.attr.gid;
  st->size = e.attr.size;
  st->mtime_sec = e.attr.mtime.tv_sec;
  st->mtime_nsec = e.attr.mtime.tv_nsec;
  st->rdev = e.attr.rdev;
  st->symlink = steal_pointer (&e.attr.symlink);
  st->layer = e.layer;
  st->nlink = 1;
  if (S_ISREG (e.attr.mode) && e.attr.nlink > 1)
    {
      /* Names of one hardlink group share one inode in the store tree. */
      int fd = overlay_lower_open (s->lower, e.layer, path);
      struct stat sb;
      if (fd >= 0 && fstat (fd, &sb) == 0)
        {
          st->dev = sb.st_dev;
          st->ino = sb.st_ino;
          st->nlink = e.attr.nlink;
        }
      if (fd >= 0)
        close (fd);
    }
  rootfs_entry_clear (&e);
  return 0;
}

static int
lay_list (source *s, const char *path, char ***names)
{
  *names = NULL;
  rootfs_entry *v = NULL;
  size_t n = 0;
  int r = rootfs_list (s->lower, path, &v, &n);
  if (r < 0)
    return r;
  for (size_t i = 0; i < n; i++)
    strv_push (names, v[i].name);
  rootfs_entries_free (v, n);
  return 0;
}

static int
lay_data (source *s, const char *path, const src_stat *st, int *dirfd, char **relpath, bool *owned)
{
  *dirfd = overlay_lower_dirfd (s->lower, st->layer);
  if (*dirfd < 0)
    return -EIO;
  *relpath = xstrdup (path);
  *owned = overlay_lower_is_store (s->lower, st->layer);
  return 0;
}

typedef struct lay_xattr_ctx
{
  struct copy_owned *o;
} lay_xattr_ctx;

static void
lay_xattr_cb (void *ud, const char *name, const void *value, size_t len)
{
  lay_xattr_ctx *c = ud;
  copy_owned_add_xattr (c->o, name, value, len);
}

static void
lay_xattrs (source *s, const char *path, const src_stat *st, struct copy_owned *o)
{
  lay_xattr_ctx c = { o };
  overlay_lower_xattrs (s->lower, st->layer, path, lay_xattr_cb, &c);
}

void
copy_source_context (source *s, int ctxfd, const dockerignore *ign)
{
  *s = (source) { ctx_stat, ctx_list, ctx_data, ctx_xattrs, ctxfd, ign, NULL };
}

void
copy_source_layers (source *s, overlay_lower *lower)
{
  *s = (source) { lay_stat, lay_list, lay_data, lay_xattrs, -1, NULL, lower };
}
