/* overlay_dir_ops.c - copy-up and the tracer's ops: the write log (dirty
 * names, removed base names, changed inodes) and the true metadata of what
 * the step makes; see overlay_dir_internal.h.
 */
#include "overlay/overlay_dir_internal.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef RENAME_WHITEOUT
#define RENAME_WHITEOUT (1 << 2)
#endif

/* ---- write log ---- */
/* path and every directory above it (not the root: its own change is its
 * entry's changed mark), as the FUSE model marks names up to the root. */
static void
mark_dirty (overlay_dir *od, const char *path)
{
  if (!*path)
    return;
  autofree char *p = xstrdup (path);
  while (od_set_add (&od->dirty, p))
    {
      char *s = strrchr (p, '/');
      if (!s)
        break;
      *s = '\0';
    }
}

/* A base name goes away (removed, or replaced by a rename): the layer needs
 * a whiteout or an opaque directory for it. */
static void
log_removed (overlay_dir *od, const char *path)
{
  if (od_set_has (&od->base, path))
    od_set_add (&od->deleted, path);
  mark_dirty (od, path);
}

/* An entry for an inode the step just made (any stale one of a freed inode
 * with the same number is replaced): owner uid:gid, or the group of a
 * setgid parent (directories inherit the bit), as the FUSE model does. */
static od_meta *
meta_new (overlay_dir *od, const char *path, const struct stat *st, int64_t bt, uid_t uid, gid_t gid)
{
  od_meta *p = NULL;
  struct stat pst;
  int64_t pbt;
  gid_t pgid = 0;
  bool sgid = false;
  const char *slash = strrchr (path, '/');
  autofree char *parent = slash ? xstrndup (path, (size_t) (slash - path)) : xstrdup ("");
  if (*path && od_lstat (od, parent, &pst, &pbt) == 0 && (p = od_meta_get (od, &pst, pbt)))
    {
      sgid = (p->mode & S_ISGID) != 0;
      pgid = p->gid;
    }
  od_meta *e = od_meta_put (od, st, bt);
  od_meta_free_xattrs (od, e);
  *e = (od_meta) { .dev = st->st_dev, .ino = st->st_ino, .btime = bt, .mode = st->st_mode, .uid = uid,
                   .gid = sgid ? pgid : gid, .atime = st->st_atim, .mtime = st->st_mtim,
                   .changed = od->gen };
  if (S_ISLNK (st->st_mode))
    e->mode = S_IFLNK | 0777;
  if (sgid && S_ISDIR (st->st_mode))
    e->mode |= S_ISGID;
  return e;
}

/* The inode at path changed; one the table does not know is new. */
static od_meta *
touch (overlay_dir *od, const char *path, uid_t uid, gid_t gid)
{
  struct stat st;
  int64_t bt;
  if (od_lstat (od, path, &st, &bt) < 0)
    return NULL;
  od_meta *e = od_meta_get (od, &st, bt);
  if (!e)
    return meta_new (od, path, &st, bt, uid, gid);
  e->changed = od->gen;
  return e;
}

/* kiln's uid must always be able to work in (and clean up) what the step
 * makes: directories keep u+rwx, files u+rw on disk; the table has the
 * true mode. */
static void
fix_real_mode (int dirfd, const char *name, const struct stat *st)
{
  mode_t need = S_ISDIR (st->st_mode) ? 0700 : S_ISREG (st->st_mode) ? 0600 : 0;
  if (!need || (st->st_mode & need) == need)
    return;
  autoclose int fd = openat (dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  struct stat now;
  if (fd >= 0 && fstat (fd, &now) == 0 && now.st_ino == st->st_ino && now.st_dev == st->st_dev)
    od_chmod_fd (fd, (st->st_mode & 07777 & ~(mode_t) 07000) | need);
}

static void
on_created (overlay_dir *od, const char *path, uid_t uid, gid_t gid, bool fresh)
{
  const char *name;
  autoclose int dfd = od_open_parent (od, path, &name);
  struct stat st;
  int64_t bt = 0;
  if (dfd < 0 || fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return;
  bt = od_btime (dfd, name);
  od_meta *e = od_meta_get (od, &st, bt);
  if (e && (e->flags & OD_JUST_MADE))
    e->flags &= ~(uint32_t) OD_JUST_MADE;
  else if (!e || fresh)
    meta_new (od, path, &st, bt, uid, gid);
  else
    e->changed = od->gen;
  fix_real_mode (dfd, name, &st);
}

static bool
same_inode (overlay_dir *od, const char *a, const char *b)
{
  struct stat x, y;
  return od_lstat (od, a, &x, NULL) == 0 && od_lstat (od, b, &y, NULL) == 0 && x.st_dev == y.st_dev
         && x.st_ino == y.st_ino;
}

static int copy_up (overlay_dir *od, int dirfd, const char *name);

/* A new name of a lower inode: the two names must share metadata changes
 * from now on (the FUSE model gives them one inode), while the lower's own
 * other names (store hard links) must not. Copy the old name up and point
 * the new name at the copy. */
static void
link_lower (overlay_dir *od, const char *path, const char *path2)
{
  struct stat st;
  int64_t bt;
  if (od_lstat (od, path2, &st, &bt) < 0 || !S_ISREG (st.st_mode))
    return;
  od_meta *e = od_meta_get (od, &st, bt);
  if (!e || !(e->flags & OD_LOWER))
    return;
  const char *n1, *n2;
  autoclose int d1 = od_open_parent (od, path, &n1);
  autoclose int d2 = od_open_parent (od, path2, &n2);
  if (d1 < 0 || d2 < 0 || copy_up (od, d2, n2) < 0)
    return;
  char tmp[64];
  snprintf (tmp, sizeof tmp, ".kiln-link.%d", (int) getpid ());
  if (linkat (d2, n2, d1, tmp, 0) == 0 && renameat (d1, tmp, d1, n1) < 0)
    unlinkat (d1, tmp, 0);
}

/* The kernel's killpriv (security_inode_killpriv): a write, truncate or
 * chown of a file removes its security.capability, on the FUSE overlay as
 * on any filesystem. Here at the report of an open for writing (the tracer
 * does not see write(2) itself). */
static void
drop_caps (overlay_dir *od, od_meta *e)
{
  for (uint32_t k = 0; e && k < e->nx; k++)
    if (!strcmp (e->x[k].name, "security.capability"))
      {
        od_xattr_account (od, OD_XATTR_COST (e->x[k].name, e->x[k].len), 0);
        free (e->x[k].name);
        free (e->x[k].value);
        e->x[k] = e->x[--e->nx];
        return;
      }
}

static void
drop_caps_at (overlay_dir *od, const char *path)
{
  struct stat st;
  int64_t bt;
  if (od_lstat (od, path, &st, &bt) == 0 && S_ISREG (st.st_mode))
    drop_caps (od, od_meta_get (od, &st, bt));
}

void
overlay_dir_changed (overlay_dir *od, const overlay_dir_change *c)
{
  bool created_by_open = false;
  switch (c->kind)
    {
    case OVERLAY_DIR_WRITE:
      created_by_open = od->bw_path && od->bw_absent && !strcmp (od->bw_path, c->path);
      free (od->bw_path);
      od->bw_path = NULL;
      on_created (od, c->path, c->uid, c->gid, created_by_open);
      drop_caps_at (od, c->path);
      mark_dirty (od, c->path);
      break;
    case OVERLAY_DIR_CREATE:
      on_created (od, c->path, c->uid, c->gid, true);
      mark_dirty (od, c->path);
      break;
    case OVERLAY_DIR_LINK:
      /* a hardlink exists only within a layer: ship every name (FUSE: the
       * inode is marked changed) */
      link_lower (od, c->path, c->path2);
      touch (od, c->path, c->uid, c->gid);
      mark_dirty (od, c->path);
      mark_dirty (od, c->path2);
      break;
    case OVERLAY_DIR_REMOVE:
      log_removed (od, c->path);
      break;
    case OVERLAY_DIR_RENAME:
      if (!strcmp (c->path, c->path2))
        break;
      if (!(c->flags & RENAME_EXCHANGE) && same_inode (od, c->path, c->path2))
        break; /* two names of one inode: rename(2) did nothing */
      log_removed (od, c->path);
      log_removed (od, c->path2);
      touch (od, c->path2, c->uid, c->gid);
      if (c->flags & RENAME_EXCHANGE)
        touch (od, c->path, c->uid, c->gid);
      else if (c->flags & RENAME_WHITEOUT)
        on_created (od, c->path, c->uid, c->gid, true);
      break;
    case OVERLAY_DIR_META:
      touch (od, c->path, c->uid, c->gid);
      mark_dirty (od, c->path);
      break;
    }
}

/* ---- copy-up ---- */
static void
copy_meta (overlay_dir *od, od_meta *dst, const od_meta *src)
{
  uint64_t dev = dst->dev, ino = dst->ino;
  int64_t bt = dst->btime;
  *dst = *src;
  dst->dev = dev;
  dst->ino = ino;
  dst->btime = bt;
  dst->flags &= ~(uint32_t) OD_LOWER;
  dst->x = src->nx ? xcalloc (src->nx, sizeof *dst->x) : NULL;
  for (uint32_t k = 0; k < src->nx; k++)
    dst->x[k] = (overlay_xattr) { .name = xstrdup (src->x[k].name),
                                  .value = xmemdup (src->x[k].value, src->x[k].len ? src->x[k].len : 1),
                                  .len = src->x[k].len };
  for (uint32_t k = 0; k < src->nx; k++)
    od_xattr_account (od, 0, OD_XATTR_COST (src->x[k].name, src->x[k].len));
}

/* The other names of a copied-up frozen inode follow it to the copy at
 * dirfd/name (each checked to still be the old inode). */
static void
relink_names (overlay_dir *od, int dirfd, const char *name, const struct stat *old, char **names)
{
  for (char **n = names; *n; n++)
    {
      const char *nm;
      struct stat x;
      autoclose int pd = od_open_parent (od, *n, &nm);
      if (pd < 0 || fstatat (pd, nm, &x, AT_SYMLINK_NOFOLLOW) < 0 || x.st_ino != old->st_ino
          || x.st_dev != old->st_dev)
        continue;
      char tmp[64];
      snprintf (tmp, sizeof tmp, ".kiln-relink.%d", (int) getpid ());
      if (linkat (dirfd, name, pd, tmp, 0) < 0)
        continue;
      if (renameat (pd, tmp, pd, nm) < 0)
        unlinkat (pd, tmp, 0);
      else
        mark_dirty (od, *n);
    }
}

/* One attempt: copy the data of the lower inode *st at dirfd/name into a
 * new file of the same directory and swap it in. The lower inode is only
 * ever opened read-only. Returns 1 when the name no longer held *st (the
 * step raced us: the caller retries), 0 or -errno. */
static int
copy_up_once (overlay_dir *od, int dirfd, const char *name, const struct stat *st, int64_t bt)
{
  static unsigned seq;
  autoclose int src = openat (dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat sst;
  if (src < 0)
    return -errno;
  if (fstat (src, &sst) < 0)
    return -errno;
  if (sst.st_ino != st->st_ino || sst.st_dev != st->st_dev)
    return 1;
  od_meta *e = od_meta_get (od, st, bt);
  if (!e)
    return 1;
  od_meta saved = *e;
  char tmp[64];
  snprintf (tmp, sizeof tmp, ".kiln-copy-up.%d.%u", (int) getpid (), ++seq);
  autoclose int dst = openat (dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (dst < 0)
    return -errno;
  autoerror kiln_error *err = NULL;
  struct stat nst;
  int r = 0;
  struct timespec ts[2] = { saved.atime, saved.mtime };
  if (fs_copy_fd (src, dst, UINT64_MAX, NULL, &err) < 0)
    r = err && err->status ? -err->status : -EIO;
  else if (fchmod (dst, (saved.mode & 0111) ? 0755 : 0644) < 0 || futimens (dst, ts) < 0
           || fstat (dst, &nst) < 0)
    r = -errno;
  else if (renameat2 (dirfd, tmp, dirfd, name, RENAME_EXCHANGE) < 0)
    r = -errno;
  if (r < 0)
    {
      unlinkat (dirfd, tmp, 0);
      return r;
    }
  /* what went out must be the inode we copied, else the step put another
   * file there meanwhile: give its name back */
  struct stat out;
  if (fstatat (dirfd, tmp, &out, AT_SYMLINK_NOFOLLOW) < 0 || out.st_ino != st->st_ino
      || out.st_dev != st->st_dev)
    {
      renameat2 (dirfd, tmp, dirfd, name, RENAME_EXCHANGE);
      unlinkat (dirfd, tmp, 0);
      return 1;
    }
  unlinkat (dirfd, tmp, 0);
  od_meta *ne = od_meta_put (od, &nst, od_btime (dst, ""));
  od_meta_free_xattrs (od, ne);
  e = od_meta_get (od, st, bt); /* the put may have moved the table */
  copy_meta (od, ne, e ? e : &saved);
  ne->names = NULL;
  if (e && e->names)
    {
      ne->names = e->names;
      e->names = NULL;
      relink_names (od, dirfd, name, st, ne->names);
    }
  return 0;
}

static int
copy_up (overlay_dir *od, int dirfd, const char *name)
{
  for (int attempt = 0; attempt < 4; attempt++)
    {
      struct stat st;
      int64_t bt = od_btime (dirfd, name);
      if (fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
      od_meta *e = od_meta_get (od, &st, bt);
      if (!S_ISREG (st.st_mode) || !e || !(e->flags & OD_LOWER))
        return 0;
      int r = copy_up_once (od, dirfd, name, &st, bt);
      if (r <= 0)
        return r;
    }
  return -EBUSY;
}

int
overlay_dir_before_write (overlay_dir *od, int dirfd, const char *name, const char *path)
{
  struct stat st;
  free (od->bw_path);
  od->bw_path = xstrdup (path);
  od->bw_absent = false;
  if (fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    {
      od->bw_absent = errno == ENOENT;
      return errno == ENOENT ? 0 : -errno;
    }
  if (!S_ISREG (st.st_mode))
    return 0;
  od_meta *e = od_meta_get (od, &st, od_btime (dirfd, name));
  if (e && (e->flags & OD_LOWER))
    return copy_up (od, dirfd, name);
  fix_real_mode (dirfd, name, &st);
  return 0;
}

/* The file open at fd as a name: the parent of path when path names it,
 * else where /proc says the inode is (chmod through a symlink: path names
 * the link). Returns the parent fd and sets *name (owned by *buf). */
static int
locate (overlay_dir *od, int fd, const char *path, const struct stat *st, char **buf, const char **name)
{
  struct stat x;
  int dfd = od_open_parent (od, path, name);
  if (dfd >= 0 && fstatat (dfd, *name, &x, AT_SYMLINK_NOFOLLOW) == 0 && x.st_ino == st->st_ino
      && x.st_dev == st->st_dev)
    return dfd;
  if (dfd >= 0)
    close (dfd);
  char link[64], host[PATH_MAX];
  snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink (link, host, sizeof host - 1);
  size_t rl = strlen (od->root_path);
  if (n < 0 || (size_t) n <= rl + 1 || strncmp (host, od->root_path, rl) || host[rl] != '/')
    return -EPERM;
  host[n] = '\0';
  *buf = xstrdup (host + rl + 1);
  dfd = od_open_parent (od, *buf, name);
  if (dfd >= 0 && fstatat (dfd, *name, &x, AT_SYMLINK_NOFOLLOW) == 0 && x.st_ino == st->st_ino
      && x.st_dev == st->st_dev)
    return dfd;
  if (dfd >= 0)
    close (dfd);
  return -EPERM;
}

/* The entry of the inode open at fd, copied up first when it is lower (the
 * metadata of one name must not change its store twin's). *target gets an
 * O_PATH fd of the inode to change on disk (the new one after a copy-up). */
static int
writable_meta (overlay_dir *od, int fd, const char *path, od_meta **out, int *target)
{
  struct stat st;
  int64_t bt = od_btime (fd, "");
  *target = -1;
  if (fstatat (fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
    return -errno;
  od_meta *e = od_meta_get (od, &st, bt);
  if (e && (e->flags & OD_LOWER) && S_ISREG (st.st_mode))
    {
      autofree char *buf = NULL;
      const char *name;
      autoclose int dfd = locate (od, fd, path, &st, &buf, &name);
      if (dfd < 0)
        return dfd;
      int r = copy_up (od, dfd, name);
      if (r < 0)
        return r;
      if ((*target = openat (dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return -errno;
      bt = od_btime (*target, "");
      if (fstat (*target, &st) < 0)
        return -errno;
      e = od_meta_get (od, &st, bt);
    }
  else if ((*target = fcntl (fd, F_DUPFD_CLOEXEC, 3)) < 0)
    return -errno;
  if (!e)
    e = meta_new (od, path, &st, bt, od->create_uid, od->create_gid);
  e->changed = od->gen;
  *out = e;
  return 0;
}

int
overlay_dir_set_owner (overlay_dir *od, int fd, const char *path, uid_t uid, gid_t gid)
{
  od_meta *e;
  autoclose int target = -1;
  int r = writable_meta (od, fd, path, &e, &target);
  if (r < 0)
    return r;
  if (uid != (uid_t) -1)
    e->uid = uid;
  if (gid != (gid_t) -1)
    e->gid = gid;
  if (S_ISREG (e->mode))
    {
      e->mode &= ~(mode_t) S_ISUID;
      if (e->mode & S_IXGRP)
        e->mode &= ~(mode_t) S_ISGID;
    }
  if (!S_ISDIR (e->mode))
    drop_caps (od, e);
  mark_dirty (od, path);
  return 0;
}

int
overlay_dir_set_mode (overlay_dir *od, int fd, const char *path, mode_t mode)
{
  od_meta *e;
  autoclose int target = -1;
  int r = writable_meta (od, fd, path, &e, &target);
  if (r < 0)
    return r;
  e->mode = (e->mode & S_IFMT) | (mode & 07777);
  mode_t t = e->mode & S_IFMT;
  bool placeholder = (e->flags & OD_PLACEHOLDER) != 0;
  mark_dirty (od, path);
  if (t == S_IFLNK || placeholder)
    return 0;
  /* never setuid/setgid/sticky on disk; kiln's uid keeps its access */
  mode_t real = (mode & 0777) | (t == S_IFDIR ? 0700 : 0600);
  return od_chmod_fd (target, real);
}

int
overlay_dir_set_times (overlay_dir *od, int fd, const char *path, const struct timespec ts[2])
{
  od_meta *e;
  autoclose int target = -1;
  int r = writable_meta (od, fd, path, &e, &target);
  if (r < 0)
    return r;
  e->atime = ts[0];
  e->mtime = ts[1];
  mark_dirty (od, path);
  if (utimensat (target, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
    return -errno;
  return 0;
}

int
overlay_dir_mknod (overlay_dir *od, int dirfd, const char *name, const char *path, mode_t mode, dev_t rdev,
                   uid_t uid, gid_t gid)
{
  mode_t t = mode & S_IFMT;
  int r;
  if (t == S_IFIFO)
    r = mknodat (dirfd, name, S_IFIFO | (mode & 0777) | 0600, 0);
  else if (t == S_IFCHR || t == S_IFBLK || t == S_IFSOCK || t == S_IFREG || t == 0)
    {
      /* a device or socket is an empty placeholder file: never a real node */
      int fd = openat (dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       (t == S_IFREG || t == 0) ? (mode & 0777) | 0600 : 0600);
      r = fd < 0 ? -1 : close (fd);
    }
  else
    return -EINVAL;
  if (r < 0)
    return -errno;
  struct stat st;
  if (fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return -errno;
  od_meta *e = meta_new (od, path, &st, od_btime (dirfd, name), uid, gid);
  e->mode = (t ? t : S_IFREG) | (mode & 07777);
  e->rdev = (t == S_IFCHR || t == S_IFBLK) ? rdev : 0;
  e->flags = OD_JUST_MADE | ((t == S_IFCHR || t == S_IFBLK || t == S_IFSOCK) ? OD_PLACEHOLDER : 0);
  mark_dirty (od, path);
  return 0;
}

/* ---- xattrs: the table's, never the real files' ---- */

/* The FUSE model's names (overlay_model_ops.c): user.* and
 * security.capability are kept, others are not supported. */
static int
xattr_name_ok (const char *name)
{
  if (strlen (name) > OD_XATTR_NAME_MAX)
    return -ERANGE;
  if (!strncmp (name, "user.", 5) && name[5])
    return 0;
  if (!strcmp (name, "security.capability"))
    return 0;
  return -EOPNOTSUPP;
}

static overlay_xattr *
xattr_find (od_meta *e, const char *name)
{
  for (uint32_t k = 0; e && k < e->nx; k++)
    if (!strcmp (e->x[k].name, name))
      return &e->x[k];
  return NULL;
}

/* The entry of the inode open at fd (O_PATH, maybe a symlink) in *e, NULL
 * when the table does not know it (no xattrs); *st gets its real status. */
static int
meta_of_fd (overlay_dir *od, int fd, struct stat *st, od_meta **e)
{
  *e = NULL;
  if (fstatat (fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
    return -errno;
  *e = od_meta_get (od, st, od_btime (fd, ""));
  return 0;
}

int
overlay_dir_get_xattr (overlay_dir *od, int fd, const char *path, const char *name, void *buf, size_t size)
{
  (void) path;
  struct stat st;
  od_meta *e;
  int r = meta_of_fd (od, fd, &st, &e);
  if (r < 0)
    return r;
  overlay_xattr *x = xattr_name_ok (name) < 0 ? NULL : xattr_find (e, name);
  if (!x)
    return -ENODATA;
  if (size && size < x->len)
    return -ERANGE;
  if (size)
    memcpy (buf, x->value, x->len);
  return (int) x->len;
}

int
overlay_dir_list_xattr (overlay_dir *od, int fd, const char *path, char *buf, size_t size)
{
  (void) path;
  struct stat st;
  od_meta *e;
  int r = meta_of_fd (od, fd, &st, &e);
  if (r < 0)
    return r;
  size_t need = 0;
  for (uint32_t k = 0; e && k < e->nx; k++)
    need += strlen (e->x[k].name) + 1;
  if (size && size < need)
    return -ERANGE;
  char *p = buf;
  for (uint32_t k = 0; size && e && k < e->nx; k++)
    p = stpcpy (p, e->x[k].name) + 1;
  return need > INT_MAX ? -E2BIG : (int) need;
}

int
overlay_dir_set_xattr (overlay_dir *od, int fd, const char *path, const char *name, const void *value,
                       size_t size, int flags)
{
  int r = xattr_name_ok (name);
  if (r < 0)
    return r;
  if (size > OD_XATTR_SIZE_MAX)
    return -E2BIG;
  struct stat st;
  od_meta *e;
  if ((r = meta_of_fd (od, fd, &st, &e)) < 0)
    return r;
  mode_t mode = e ? e->mode : st.st_mode;
  if (!strncmp (name, "user.", 5) && !S_ISREG (mode) && !S_ISDIR (mode))
    return -EPERM;
  overlay_xattr *x = xattr_find (e, name);
  if (x && (flags & XATTR_CREATE))
    return -EEXIST;
  if (!x && (flags & XATTR_REPLACE))
    return -ENODATA;
  /* a step gets ENOSPC, as from a full disk, before it can make kiln hold
   * an unbounded amount; shrinking is always allowed */
  size_t old = x ? OD_XATTR_COST (name, x->len) : 0, new = OD_XATTR_COST (name, size);
  size_t after = (od->xattr_bytes > old ? od->xattr_bytes - old : 0) + new;
  if ((!x && e && e->nx >= OD_XATTRS_PER_INODE) || (new > old && after > OD_XATTR_BUDGET))
    return -ENOSPC;
  /* a lower inode is copied up first: its store twin keeps its xattrs */
  autoclose int target = -1;
  if ((r = writable_meta (od, fd, path, &e, &target)) < 0)
    return r;
  x = xattr_find (e, name);
  if (!x)
    {
      e->x = xreallocarray (e->x, e->nx + 1, sizeof *e->x);
      x = &e->x[e->nx++];
      *x = (overlay_xattr) { .name = xstrdup (name) };
    }
  else
    {
      od_xattr_account (od, OD_XATTR_COST (name, x->len), 0);
      free (x->value);
    }
  x->value = xmemdup (value, size ? size : 1);
  x->len = size;
  od_xattr_account (od, 0, new);
  mark_dirty (od, path);
  return 0;
}

int
overlay_dir_remove_xattr (overlay_dir *od, int fd, const char *path, const char *name)
{
  struct stat st;
  od_meta *e;
  int r = meta_of_fd (od, fd, &st, &e);
  if (r < 0)
    return r;
  if (!strncmp (name, "user.", 5) && !S_ISREG (e ? e->mode : st.st_mode) && !S_ISDIR (e ? e->mode : st.st_mode))
    return -EPERM;   /* the kernel's xattr_permission */
  if (xattr_name_ok (name) < 0 || !xattr_find (e, name))
    return -ENODATA;
  autoclose int target = -1;
  if ((r = writable_meta (od, fd, path, &e, &target)) < 0)
    return r;
  overlay_xattr *x = xattr_find (e, name);
  if (!x)
    return -ENODATA;
  od_xattr_account (od, OD_XATTR_COST (x->name, x->len), 0);
  free (x->name);
  free (x->value);
  *x = e->x[--e->nx];   /* the FUSE model's order: the last one moves here */
  mark_dirty (od, path);
  return 0;
}
