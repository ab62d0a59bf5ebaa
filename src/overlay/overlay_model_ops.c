/* overlay_model_ops.c - copy-up and the requests that change the view:
 * setattr, chown, mknod, link, unlink, rmdir, rename, open/release and the
 * xattrs. Each takes the model lock once; see overlay_model_internal.h.
 */
#include "overlay/overlay_model_internal.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#define RENAME_EXCHANGE (1 << 1)
#endif

/* ---- copy-up ---- */
static int
copy_data (int src, int dst)
{
  if (ioctl (dst, FICLONE, src) == 0)
    return 0;
  autoerror kiln_error *err = NULL;
  if (fs_copy_fd (src, dst, UINT64_MAX, NULL, &err) < 0)
    return err && err->status ? -err->status : -EIO;
  return 0;
}

/* Give n its data file nm in the current upper: src's data copied (src -1:
 * an empty file), with n's times. Data of OVERLAY_COPY_UP_UNLOCKED bytes or
 * more is copied with the model lock released (a copy of a 1 GiB file held
 * every other request of the step for the whole copy), into "INO.copy" and
 * then renamed to its data name: n->copying makes other copy-ups of n wait,
 * n->open_count keeps it allocated, and the times are applied after the
 * copy, so a utimes that came meanwhile counts. -EAGAIN: a commit came
 * meanwhile, start again. Closes src. */
static int
copy_up_from (overlay_model *m, inode *n, int src, const char *nm)
{
  struct stat ss;
  bool unlocked = src >= 0 && fstat (src, &ss) == 0 && (uint64_t) ss.st_size >= OVERLAY_COPY_UP_UNLOCKED;
  char tmp[48];
  snprintf (tmp, sizeof tmp, "%s.copy", nm);
  const char *target = unlocked ? tmp : nm;
  unsigned gen = m->gen;
  int udir = m->upper_fds[gen];
  int dst = openat (udir, target, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (dst < 0)
    {
      int e = errno;
      if (src >= 0)
        close (src);
      return -e;
    }
  if (unlocked)
    {
      n->copying = true;
      n->open_count++;
      pthread_mutex_unlock (&m->lock);
    }
  int ret = src >= 0 ? copy_data (src, dst) : 0;
  if (src >= 0)
    close (src);
  if (unlocked)
    {
      pthread_mutex_lock (&m->lock);
      n->open_count--;
      n->copying = false;
      pthread_cond_broadcast (&m->copied);
      /* a commit cannot come while a step's request runs; if one did, the
       * copy went into a generation that is frozen now */
      if (ret == 0 && m->gen != gen)
        ret = -EAGAIN;
      if (ret == 0 && renameat (udir, tmp, udir, nm) < 0)
        ret = -errno;
    }
  if (ret == 0 && src >= 0)
    {
      struct timespec ts[2] = { n->atime, n->mtime };
      futimens (dst, ts);
    }
  close (dst);
  if (ret < 0)
    {
      unlinkat (udir, target, 0);
      return ret;
    }
  n->has_upper = true;
  n->upper_gen = gen;
  return 0;
}

int
overlay_model_copy_up (overlay_model *m, inode *n)
{
  for (;;)
    {
      while (n->copying)
        pthread_cond_wait (&m->copied, &m->lock);
      if (n->has_upper && n->upper_gen == m->gen)
        return 0;
      char nm[32];
      overlay_model_data_name (n, nm, sizeof nm);
      int src = -1;
      if (n->has_upper)
        {
          src = openat (overlay_model_upper_fd_of (m, n), nm, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
          if (src < 0)
            return -errno;
        }
      else if (n->lpath && n->nll)
        {
          src = overlay_lower_open (m->lower, n->llayers[0], n->lpath);
          if (src < 0)
            return src;
        }
      int r = copy_up_from (m, n, src, nm);
      if (r != -EAGAIN)
        return r;
    }
}

/* ---- mutating operations ---- */
/* A name the step creates must be representable in a layer: an OCI layer
 * reads ".wh.NAME" as the deletion of NAME (and ".wh..wh..opq" as an opaque
 * marker), so a file of that name would silently turn into a whiteout when
 * the layer is applied. Refuse it rather than ship a different tree. */
static int
valid_new_name (const char *name)
{
  int ret = overlay_model_valid_name (name);
  if (ret == 0 && strncmp (name, ".wh.", 4) == 0)
    ret = -EPERM;
  return ret;
}

static bool times_writeback_only (const inode *i, const struct stat *in, int mask);
static int xattr_remove_locked (overlay_model *m, inode *i, const char *name);

/* What write, truncate and chown clear (setattr_should_drop_suidgid, for a
 * caller without CAP_FSETID: every process in a step's user namespace):
 * setuid, and setgid when group execute is set. setgid without group
 * execute marks mandatory locking, not privilege; the kernel keeps it for a
 * caller in the file's group or capable over it, as root in the step is. */
static void
kill_suidgid (inode *i)
{
  if (!S_ISREG (i->mode))
    return;
  i->mode &= ~(mode_t) S_ISUID;
  if (i->mode & S_IXGRP)
    i->mode &= ~(mode_t) S_ISGID;
}

static int
setattr_locked (overlay_model *m, inode *i, const struct stat *in, int mask)
{
  int ret = 0;
  if (times_writeback_only (i, in, mask))
    {
      if (mask & OVL_SET_CTIME)
        i->ctime = in->st_ctim;
      return 0;
    }
  char nm[32];
  overlay_model_data_name (i, nm, sizeof nm);
  if (mask & OVL_SET_SIZE)
    {
      if (!S_ISREG (i->mode))
        return S_ISDIR (i->mode) ? -EISDIR : -EINVAL;
      if (in->st_size < 0)
        return -EINVAL;
      if ((ret = overlay_model_copy_up (m, i)) < 0)
        return ret;
      int fd = openat (overlay_model_upper_fd_of (m, i), nm, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0)
        return -errno;
      ret = ftruncate (fd, in->st_size) < 0 ? -errno : 0;
      close (fd);
      if (ret < 0)
        return ret;
    }
  if ((mask & OVL_SET_MTIME) && S_ISREG (i->mode) && i->has_upper && i->upper_gen != m->gen
      && (ret = overlay_model_copy_up (m, i)) < 0)
    return ret; /* frozen data carries the time: copy up to change it */
  if (mask & OVL_SET_MODE)
    i->mode = (i->mode & S_IFMT) | (in->st_mode & 07777);
  if (mask & OVL_SET_UID)
    i->uid = in->st_uid;
  if (mask & OVL_SET_GID)
    i->gid = in->st_gid;
  if (mask & OVL_SET_KILL_SUIDGID)
    kill_suidgid (i);
  if (mask & (OVL_SET_ATIME | OVL_SET_MTIME))
    {
      struct timespec t = overlay_model_now ();
      if (mask & OVL_SET_ATIME)
        i->atime = (mask & OVL_SET_ATIME_NOW) ? t : in->st_atim;
      if (mask & OVL_SET_MTIME)
        i->mtime = (mask & OVL_SET_MTIME_NOW) ? t : in->st_mtim;
      if (i->has_upper && i->upper_gen == m->gen)
        {
          struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
          if (mask & OVL_SET_ATIME)
            ts[0] = i->atime;
          if (mask & OVL_SET_MTIME)
            ts[1] = i->mtime;
          utimensat (overlay_model_upper_fd_of (m, i), nm, ts, AT_SYMLINK_NOFOLLOW);
        }
    }
  overlay_model_mark_changed (m, i);
  return 0;
}

/* With the writeback cache the kernel writes back the times it caches
 * (mtime and ctime together) whenever the inode is dirty, e.g. after
 * another name of a hardlinked file was unlinked. An unchanged mtime with
 * a new ctime is no change a layer records (layers carry no ctime), so it
 * must not ship the file. */
static bool
times_writeback_only (const inode *i, const struct stat *in, int mask)
{
  if (mask & ~(OVL_SET_MTIME | OVL_SET_CTIME))
    return false;
  return !(mask & OVL_SET_MTIME)
         || (in->st_mtim.tv_sec == i->mtime.tv_sec && in->st_mtim.tv_nsec == i->mtime.tv_nsec);
}

int
overlay_model_setattr (overlay_model *m, uint64_t ino, const struct stat *in, int mask, struct stat *st)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = overlay_model_get_ino (m, ino, &i)) < 0 || (ret = setattr_locked (m, i, in, mask)) < 0)
      break;
    overlay_model_fill_stat (m, i, st);
  }
  return ret;
}

void
overlay_model_set_kill_priv (overlay_model *m, bool on)
{
  LOCKED (m)
  m->kill_priv = on;
}

int
overlay_model_chown (overlay_model *m, uint64_t ino, uid_t uid, gid_t gid)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = overlay_model_get_ino (m, ino, &i)) < 0)
      break;
    if (uid != (uid_t) -1)
      i->uid = uid;
    if (gid != (gid_t) -1)
      i->gid = gid;
    kill_suidgid (i);
    /* chown(2) drops file capabilities too (the kernel's ATTR_KILL_PRIV,
     * cap_inode_killpriv), whoever calls it */
    if (!S_ISDIR (i->mode))
      xattr_remove_locked (m, i, "security.capability");
    overlay_model_mark_changed (m, i);
  }
  return ret;
}

int
overlay_model_owner (overlay_model *m, uint64_t ino, uid_t *uid, gid_t *gid)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = overlay_model_get_ino (m, ino, &i)) < 0)
      break;
    *uid = i->uid;
    *gid = i->gid;
  }
  return ret;
}

/* A new inode for mknod/mkdir/symlink/create/tmpfile in dir, with its
 * upper data file when it is a regular file. */
static int
node_create (overlay_model *m, inode *dir, mode_t mode, dev_t rdev, const char *symlink, uid_t uid, gid_t gid,
             inode **out)
{
  switch (mode & S_IFMT)
    {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR: case S_IFBLK: case S_IFIFO: case S_IFSOCK:
      break;
    default:
      return -EINVAL;
    }
  if (S_ISLNK (mode) && (!symlink || !*symlink || strlen (symlink) >= 4096))
    return symlink && *symlink ? -ENAMETOOLONG : -ENOENT;
  inode *n = overlay_model_inode_new (m, mode);
  /* single mode: the step's owner unless the creator's fs ids are known */
  n->uid = m->id_mode == OVERLAY_IDS_SINGLE && uid == (uid_t) -1 ? m->create_uid : uid;
  n->gid = m->id_mode == OVERLAY_IDS_SINGLE && gid == (gid_t) -1 ? m->create_gid : gid;
  if (dir->mode & S_ISGID)
    {
      n->gid = dir->gid;
      if (S_ISDIR (mode))
        n->mode |= S_ISGID;
    }
  n->rdev = (S_ISCHR (mode) || S_ISBLK (mode)) ? rdev : 0;
  n->xloaded = true;
  n->loaded = S_ISDIR (mode);
  if (S_ISLNK (mode))
    {
      n->symlink = xstrdup (symlink);
      n->size = strlen (symlink);
      n->mode = S_IFLNK | 0777;
    }
  int ret;
  if (S_ISREG (mode) && (ret = overlay_model_copy_up (m, n)) < 0)
    {
      overlay_model_inode_destroy (m, n);
      return ret;
    }
  *out = n;
  return 0;
}

int
overlay_model_mknod (overlay_model *m, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
                     const char *symlink, uid_t uid, gid_t gid, struct stat *st)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *dir, *n;
    if ((ret = overlay_model_get_dir (m, parent, &dir)) < 0 || (ret = valid_new_name (name)) < 0)
      break;
    if (overlay_model_dir_find (dir, name))
      {
        ret = -EEXIST;
        break;
      }
    if ((ret = node_create (m, dir, mode, rdev, symlink, uid, gid, &n)) < 0)
      break;
    overlay_model_dir_add (dir, name, n, false);
    dir->mtime = dir->ctime = overlay_model_now ();
    overlay_model_mark_changed (m, n);
    n->nlookup++;
    overlay_model_fill_stat (m, n, st);
  }
  return ret;
}

int
overlay_model_tmpfile (overlay_model *m, uint64_t parent, mode_t mode, uid_t uid, gid_t gid, struct stat *st)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *dir, *n;
    if ((ret = overlay_model_get_dir (m, parent, &dir)) < 0)
      break;
    if ((ret = node_create (m, dir, S_IFREG | (mode & 07777), 0, NULL, uid, gid, &n)) < 0)
      break;
    /* no name, so nothing for the write log until a link gives it one;
     * the directory does not change (as on ext4) */
    n->linkable = true;
    n->nlookup++;
    overlay_model_fill_stat (m, n, st);
  }
  return ret;
}

static bool
is_ancestor (overlay_model *m, inode *a, inode *d)
{
  for (inode *x = d; x; x = x->aliases ? x->aliases->parent : NULL)
    {
      if (x == a)
        return true;
      if (x == m->root)
        break;
    }
  return false;
}

int
overlay_model_link (overlay_model *m, uint64_t ino, uint64_t newparent, const char *name, struct stat *st)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *dir, *i;
    if ((ret = overlay_model_get_dir (m, newparent, &dir)) < 0 || (ret = valid_new_name (name)) < 0
        || (ret = overlay_model_get_ino (m, ino, &i)) < 0)
      break;
    if (S_ISDIR (i->mode))
      ret = -EPERM;
    else if (!i->aliases && !i->linkable)
      ret = -ENOENT;
    else if (overlay_model_dir_find (dir, name))
      ret = -EEXIST;
    if (ret < 0)
      break;
    overlay_model_dir_add (dir, name, i, false);
    dir->mtime = dir->ctime = overlay_model_now ();
    /* an O_TMPFILE file takes its first name (linkat(2) clears the kernel's
     * I_LINKABLE the same way) */
    i->linkable = false;
    /* a hardlink only exists within one layer: ship every name */
    overlay_model_mark_changed (m, i);
    i->nlookup++;
    overlay_model_fill_stat (m, i, st);
  }
  return ret;
}

static int
remove_entry (overlay_model *m, uint64_t parent, const char *name, bool want_dir)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *dir;
    dentry *d;
    if ((ret = overlay_model_get_dir (m, parent, &dir)) < 0 || (ret = overlay_model_valid_name (name)) < 0)
      break;
    if (!(d = overlay_model_dir_find (dir, name)))
      {
        ret = -ENOENT;
        break;
      }
    inode *c = d->inode;
    if (want_dir)
      {
        if (!S_ISDIR (c->mode))
          ret = -ENOTDIR;
        else
          {
            overlay_model_load_dir (m, c);
            if (c->nentries)
              ret = -ENOTEMPTY;
          }
      }
    else if (S_ISDIR (c->mode))
      ret = -EISDIR;
    if (ret == 0 && d->mask == MASK_SKIP)
      ret = -EBUSY;
    if (ret < 0)
      break;
    overlay_model_log_removed (m, dir, d);
    overlay_model_dir_del (dir, d);
    dir->mtime = dir->ctime = overlay_model_now ();
    /* The other names of a hardlinked file lose only a link count and gain
     * a ctime, which no layer records: they are not shipped for it (as on
     * overlayfs, where the other names stay untouched in the lower). */
    c->ctime = overlay_model_now ();
    overlay_model_maybe_free (m, c);
  }
  return ret;
}

int
overlay_model_unlink (overlay_model *m, uint64_t parent, const char *name)
{
  return remove_entry (m, parent, name, false);
}

int
overlay_model_rmdir (overlay_model *m, uint64_t parent, const char *name)
{
  return remove_entry (m, parent, name, true);
}

static int
rename_check_target (overlay_model *m, inode *si, inode *ti)
{
  if (S_ISDIR (si->mode) && !S_ISDIR (ti->mode))
    return -ENOTDIR;
  if (!S_ISDIR (si->mode) && S_ISDIR (ti->mode))
    return -EISDIR;
  if (S_ISDIR (ti->mode))
    {
      overlay_model_load_dir (m, ti);
      if (ti->nentries)
        return -ENOTEMPTY;
    }
  return 0;
}

int
overlay_model_rename (overlay_model *m, uint64_t parent, const char *name, uint64_t newparent,
                      const char *newname, unsigned flags)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *sd, *dd;
    dentry *s, *t;
    if ((ret = overlay_model_get_dir (m, parent, &sd)) < 0
        || (ret = overlay_model_get_dir (m, newparent, &dd)) < 0
        || (ret = overlay_model_valid_name (name)) < 0 || (ret = valid_new_name (newname)) < 0)
      break;
    if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
        || ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)))
      {
        ret = -EINVAL;
        break;
      }
    if (!(s = overlay_model_dir_find (sd, name)))
      {
        ret = -ENOENT;
        break;
      }
    t = overlay_model_dir_find (dd, newname);
    inode *si = s->inode, *ti = t ? t->inode : NULL;
    if (s->mask == MASK_SKIP || (t && t->mask == MASK_SKIP))
      {
        ret = -EBUSY;
        break;
      }
    if (s == t)
      break;
    if (flags & RENAME_EXCHANGE)
      {
        if (!t)
          ret = -ENOENT;
        else if ((S_ISDIR (si->mode) && is_ancestor (m, si, dd))
                 || (S_ISDIR (ti->mode) && is_ancestor (m, ti, sd)))
          ret = -EINVAL;
        if (ret < 0)
          break;
        overlay_model_log_removed (m, sd, s);
        overlay_model_log_removed (m, dd, t);
        overlay_model_dir_del (sd, s);
        overlay_model_dir_del (dd, t);
        overlay_model_dir_add (sd, name, ti, false);
        overlay_model_dir_add (dd, newname, si, false);
        overlay_model_mark_changed (m, ti);
      }
    else
      {
        if (S_ISDIR (si->mode) && is_ancestor (m, si, dd))
          ret = -EINVAL;
        else if (t && (flags & RENAME_NOREPLACE))
          ret = -EEXIST;
        if (ret < 0)
          break;
        if (t && ti == si)
          break; /* two names of one inode: POSIX says do nothing */
        if (t)
          {
            if ((ret = rename_check_target (m, si, ti)) < 0)
              break;
            overlay_model_log_removed (m, dd, t);
            overlay_model_dir_del (dd, t);
            ti->ctime = overlay_model_now ();
            if (ti->aliases)
              overlay_model_mark_changed (m, ti);
            overlay_model_maybe_free (m, ti);
          }
        overlay_model_log_removed (m, sd, s);
        overlay_model_dir_del (sd, s);
        overlay_model_dir_add (dd, newname, si, false);
      }
    sd->mtime = sd->ctime = dd->mtime = dd->ctime = overlay_model_now ();
    overlay_model_mark_changed (m, si);
    /* a loaded directory moved to where a mask path lies below it */
    overlay_model_remask (m, si);
    if (flags & RENAME_EXCHANGE)
      overlay_model_remask (m, ti);
  }
  return ret;
}

int
overlay_model_open (overlay_model *m, uint64_t ino, int flags, bool *immutable)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = overlay_model_get_ino (m, ino, &i)) < 0)
      break;
    if (!S_ISREG (i->mode))
      {
        ret = S_ISDIR (i->mode) ? -EISDIR : -EINVAL;
        break;
      }
    bool wr = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
    /* placeholders (masked paths kiln mounts over) have no lower data */
    if (wr || (!i->has_upper && !i->lpath))
      {
        if ((ret = overlay_model_copy_up (m, i)) < 0)
          break;
        if (wr)
          overlay_model_mark_changed (m, i);
      }
    int fd;
    *immutable = true;
    if (i->has_upper)
      {
        char nm[32];
        overlay_model_data_name (i, nm, sizeof nm);
        /* under writeback caching the kernel may read pages back: RDWR, and
         * never O_APPEND (the kernel computes offsets itself) */
        fd = openat (overlay_model_upper_fd_of (m, i), nm,
                     (wr ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
          fd = -errno;
        *immutable = i->upper_gen != m->gen;
      }
    else
      fd = overlay_lower_open (m->lower, i->llayers[0], i->lpath);
    if (fd < 0)
      {
        ret = fd;
        break;
      }
    if ((flags & O_TRUNC) && ftruncate (fd, 0) < 0)
      {
        ret = -errno;
        close (fd);
        break;
      }
    if ((flags & O_TRUNC) && m->kill_priv)
      kill_suidgid (i);
    i->open_count++;
    ret = fd;
  }
  return ret;
}

void
overlay_model_release (overlay_model *m, uint64_t ino)
{
  LOCKED (m)
  {
    inode *i = overlay_model_ino_get (m, ino);
    if (!i || !i->open_count)
      break;
    i->open_count--;
    overlay_model_maybe_free (m, i);
  }
}

static int
xattr_name_ok (const char *name)
{
  if (strlen (name) > 255)
    return -ERANGE;
  if (!strncmp (name, "user.", 5) && name[5])
    return 0;
  if (!strcmp (name, "security.capability"))
    return 0;
  return -EOPNOTSUPP;
}

static xattr_ent *
xattr_find (inode *i, const char *name)
{
  for (size_t k = 0; k < i->nx; k++)
    if (!strcmp (i->x[k].name, name))
      return &i->x[k];
  return NULL;
}

int
overlay_model_getxattr (overlay_model *m, uint64_t ino, const char *name, void *buf, size_t size)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = overlay_model_get_ino (m, ino, &i)) < 0)
      break;
    overlay_model_load_xattrs (m, i);
    xattr_ent *x = xattr_name_ok (name) < 0 ? NULL : xattr_find (i, name);
    if (!x)
      ret = -ENODATA;
    else if (size && size < x->len)
      ret = -ERANGE;
    else
      {
        if (size)
          memcpy (buf, x->val, x->len);
        ret = x->len;
      }
  }
  return ret;
}

int
overlay_model_listxattr (overlay_model *m, uint64_t ino, char *buf, size_t size)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = overlay_model_get_ino (m, ino, &i)) < 0)
      break;
    overlay_model_load_xattrs (m, i);
    size_t need = 0;
    for (size_t k = 0; k < i->nx; k++)
      need += strlen (i->x[k].name) + 1;
    if (size && size < need)
      {
        ret = -ERANGE;
        break;
      }
    if (size)
      {
        char *p = buf;
        for (size_t k = 0; k < i->nx; k++)
          p = stpcpy (p, i->x[k].name) + 1;
      }
    ret = need;
  }
  return ret;
}

int
overlay_model_setxattr (overlay_model *m, uint64_t ino, const char *name, const void *value, size_t size,
                        int flags)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = overlay_model_get_ino (m, ino, &i)) < 0 || (ret = xattr_name_ok (name)) < 0)
      break;
    if (size > 65536)
      {
        ret = -E2BIG;
        break;
      }
    if (!strncmp (name, "user.", 5) && !S_ISREG (i->mode) && !S_ISDIR (i->mode))
      {
        ret = -EPERM;
        break;
      }
    overlay_model_load_xattrs (m, i);
    xattr_ent *x = xattr_find (i, name);
    if (x && (flags & XATTR_CREATE))
      ret = -EEXIST;
    else if (!x && (flags & XATTR_REPLACE))
      ret = -ENODATA;
    if (ret < 0)
      break;
    /* Every xattr lives in kiln's memory until the mount goes away, and a
     * commit copies it again: a step gets ENOSPC, as from a full disk,
     * before it can make that unbounded. Shrinking is always allowed. */
    size_t old = x ? OVERLAY_XATTR_COST (strlen (name), x->len) : 0;
    size_t new = OVERLAY_XATTR_COST (strlen (name), size);
    if ((!x && i->nx >= OVERLAY_XATTRS_PER_INODE)
        || (new > old && m->xattr_bytes - old + new > OVERLAY_XATTR_BUDGET))
      {
        overlay_model_notice (m, NOTICE_XATTR);
        ret = -ENOSPC;
        break;
      }
    if (!x)
      {
        i->x = xreallocarray (i->x, i->nx + 1, sizeof *i->x);
        x = &i->x[i->nx++];
        x->name = xstrdup (name);
      }
    else
      free (x->val);
    x->val = xmemdup (value, size ? size : 1);
    x->len = size;
    m->xattr_bytes = m->xattr_bytes - old + new;
    overlay_model_mark_changed (m, i);
  }
  return ret;
}

static int
xattr_remove_locked (overlay_model *m, inode *i, const char *name)
{
  overlay_model_load_xattrs (m, i);
  xattr_ent *x = xattr_find (i, name);
  if (!x)
    return -ENODATA;
  m->xattr_bytes -= OVERLAY_XATTR_COST (strlen (x->name), x->len);
  free (x->name);
  free (x->val);
  *x = i->x[--i->nx];
  overlay_model_mark_changed (m, i);
  return 0;
}

int
overlay_model_removexattr (overlay_model *m, uint64_t ino, const char *name)
{
  int ret = 0;
  LOCKED (m)
  {
    inode *i;
    if ((ret = overlay_model_get_ino (m, ino, &i)) < 0)
      break;
    ret = xattr_name_ok (name) < 0 ? -ENODATA : xattr_remove_locked (m, i, name);
  }
  return ret;
}
