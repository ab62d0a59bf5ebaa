/* fsutil.c - safe filesystem helpers on directory file descriptors:
 * mkdir -p, temp names, atomic files, reads, rm -rf, copies, locks, path
 * cleaning. fs_open_in_root and its fallback walk are in fsutil_resolve.c. */
#include "util/fsutil.h"
#include "util/alloc.h"
#include "util/fsutil_internal.h"
#include "util/strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int
fs_xopenat (int dirfd, const char *path, int flags, mode_t mode)
{
  int fd;
  do
    fd = openat (dirfd, path, flags | O_CLOEXEC, mode);
  while (fd < 0 && errno == EINTR);
  return fd;
}

/* ---- mkdir -p ---- */

int
fs_mkdir_p_open_at (int dirfd, const char *path, mode_t mode, kiln_error **err)
{
  autoclose int cur = fs_xopenat (dirfd, ".", O_PATH | O_DIRECTORY, 0);
  if (cur < 0)
    return kiln_error_make (err, errno, "mkdir '%s': open starting directory", path);
  const char *p = path;
  for (;;)
    {
      while (*p == '/')
        p++;
      if (*p == '\0')
        break;
      const char *end = strchrnul (p, '/');
      size_t clen = (size_t) (end - p);
      autofree char *name = xstrndup (p, clen);
      autofree char *sofar = xstrndup (path, (size_t) (end - path));
      p = end;
      if (strcmp (name, ".") == 0)
        continue;
      if (strcmp (name, "..") == 0)
        return kiln_error_make (err, EINVAL, "mkdir '%s': '..' components are not allowed", path);
      if (mkdirat (cur, name, mode) < 0 && errno != EEXIST)
        return kiln_error_make (err, errno, "mkdir '%s'", sofar);
      int fd = fs_xopenat (cur, name, O_PATH | O_NOFOLLOW, 0);
      if (fd < 0)
        return kiln_error_make (err, errno, "open '%s'", sofar);
      struct stat st;
      if (fstat (fd, &st) < 0)
        {
          int e = errno;
          close (fd);
          return kiln_error_make (err, e, "stat '%s'", sofar);
        }
      if (!S_ISDIR (st.st_mode))
        {
          close (fd);
          if (S_ISLNK (st.st_mode))
            return kiln_error_make (err, ELOOP, "mkdir '%s': '%s' is a symbolic link", path, sofar);
          return kiln_error_make (err, ENOTDIR, "mkdir '%s': '%s' is not a directory", path, sofar);
        }
      close (cur);
      cur = fd;
    }
  int fd = fs_xopenat (cur, ".", O_RDONLY | O_DIRECTORY, 0);
  if (fd < 0)
    return kiln_error_make (err, errno, "open '%s'", path);
  return fd;
}

int
fs_mkdir_p_at (int dirfd, const char *path, mode_t mode, kiln_error **err)
{
  int fd = fs_mkdir_p_open_at (dirfd, path, mode, err);
  if (fd < 0)
    return fd;
  close (fd);
  return 0;
}

/* ---- temp names ---- */

static void
random_suffix (char *out, size_t n)
{
  static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  unsigned char rnd[32];
  if (n > sizeof rnd)
    n = sizeof rnd;
  if (getrandom (rnd, n, GRND_NONBLOCK) != (ssize_t) n)
    {
      struct timespec ts;
      clock_gettime (CLOCK_MONOTONIC, &ts);
      uint64_t x = (uint64_t) ts.tv_nsec ^ ((uint64_t) getpid () << 32) ^ (uint64_t) (uintptr_t) out;
      for (size_t i = 0; i < n; i++)
        {
          x = x * 6364136223846793005ULL + 1442695040888963407ULL;
          rnd[i] = (unsigned char) (x >> 56);
        }
    }
  for (size_t i = 0; i < n; i++)
    out[i] = chars[rnd[i] % (sizeof chars - 1)];
  out[n] = '\0';
}

int
fs_mkdtemp_at (int dirfd, const char *prefix, char **name, int *fd_out, kiln_error **err)
{
  for (int tries = 0; tries < 1000; tries++)
    {
      char sfx[7];
      random_suffix (sfx, 6);
      autofree char *n = xasprintf ("%s%s", prefix, sfx);
      if (mkdirat (dirfd, n, 0700) < 0)
        {
          if (errno == EEXIST)
            continue;
          return kiln_error_make (err, errno, "mkdir '%s'", n);
        }
      if (fd_out)
        {
          int fd = fs_xopenat (dirfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
          if (fd < 0)
            {
              int e = errno;
              unlinkat (dirfd, n, AT_REMOVEDIR);
              return kiln_error_make (err, e, "open '%s'", n);
            }
          *fd_out = fd;
        }
      *name = steal_pointer (&n);
      return 0;
    }
  return kiln_error_make (err, EEXIST, "mkdir '%sXXXXXX': no unused name found", prefix);
}

/* ---- atomic write ---- */

void
fs_atomic_abort (fs_atomic_file *a)
{
  if (a->fd >= 0)
    close (a->fd);
  a->fd = -1;
  if (a->tmpname && a->dirfd >= 0)
    unlinkat (a->dirfd, a->tmpname, 0);
  if (a->dirfd >= 0)
    close (a->dirfd);
  a->dirfd = -1;
  free (a->tmpname);
  free (a->name);
  a->tmpname = a->name = NULL;
}

void
cleanup_fs_atomicp (fs_atomic_file *a)
{
  fs_atomic_abort (a);
}

int
fs_atomic_open (int dirfd, const char *name, mode_t mode, fs_atomic_file *a, kiln_error **err)
{
  *a = (fs_atomic_file) FS_ATOMIC_FILE_INIT;
  const char *slash = strrchr (name, '/');
  const char *base = slash ? slash + 1 : name;
  if (*base == '\0' || strcmp (base, ".") == 0 || strcmp (base, "..") == 0)
    return kiln_error_make (err, EINVAL, "write '%s': not a file name", name);
  int dfd;
  if (slash)
    {
      autofree char *dir = xstrndup (name, (size_t) (slash - name));
      dfd = fs_open_in_root (dirfd, dir, O_RDONLY | O_DIRECTORY, 0, FS_RESOLVE_BENEATH, err);
      if (dfd < 0)
        return kiln_error_wrap (err, "write '%s'", name);
    }
  else
    {
      dfd = fs_xopenat (dirfd, ".", O_RDONLY | O_DIRECTORY, 0);
      if (dfd < 0)
        return kiln_error_make (err, errno, "write '%s': open directory", name);
    }
  a->dirfd = dfd;
  a->name = xstrdup (base);
  a->mode = mode;
  for (int tries = 0; tries < 1000; tries++)
    {
      char sfx[7];
      random_suffix (sfx, 6);
      char *tmp = xasprintf (".%s.tmp-%s", base, sfx);
      int fd = fs_xopenat (dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
      if (fd >= 0)
        {
          a->fd = fd;
          a->tmpname = tmp;
          return 0;
        }
      int e = errno;
      free (tmp);
      if (e != EEXIST)
        {
          fs_atomic_abort (a);
          return kiln_error_make (err, e, "write '%s': create temporary file", name);
        }
    }
  fs_atomic_abort (a);
  return kiln_error_make (err, EEXIST, "write '%s': no unused temporary name", name);
}

/* sync: fsync the file before the rename and the directory after it. */
static int
atomic_commit (fs_atomic_file *a, bool sync, kiln_error **err)
{
  int ret;
  if (a->fd < 0 || a->tmpname == NULL)
    return kiln_error_make (err, EBADF, "commit: atomic file is not open");
  if (fchmod (a->fd, a->mode & 07777) < 0)
    ret = kiln_error_make (err, errno, "chmod '%s'", a->tmpname);
  else if (sync && fsync (a->fd) < 0)
    ret = kiln_error_make (err, errno, "fsync '%s'", a->tmpname);
  else
    {
      int fd = steal_fd (&a->fd);
      if (close (fd) < 0 && errno != EINTR)
        ret = kiln_error_make (err, errno, "close '%s'", a->tmpname);
      else if (renameat (a->dirfd, a->tmpname, a->dirfd, a->name) < 0)
        ret = kiln_error_make (err, errno, "rename '%s' to '%s'", a->tmpname, a->name);
      else
        {
          free (steal_pointer (&a->tmpname));
          /* Make the rename durable; some filesystems cannot fsync a
           * directory (EINVAL), which is not a failure of the write. */
          if (sync && fsync (a->dirfd) < 0 && errno != EINVAL && errno != EROFS)
            ret = kiln_error_make (err, errno, "fsync directory of '%s'", a->name);
          else
            ret = 0;
        }
    }
  fs_atomic_abort (a);
  return ret;
}

int
fs_atomic_commit (fs_atomic_file *a, kiln_error **err)
{
  return atomic_commit (a, true, err);
}

static int
write_file_at (int dirfd, const char *name, const void *data, size_t len, mode_t mode, bool sync,
               kiln_error **err)
{
  autoatomic fs_atomic_file a = FS_ATOMIC_FILE_INIT;
  int r = fs_atomic_open (dirfd, name, mode, &a, err);
  if (r < 0)
    return r;
  if (fs_write_all (a.fd, data, len, err) < 0)
    return kiln_error_wrap (err, "write '%s'", name);
  return atomic_commit (&a, sync, err);
}

int
fs_write_file_unsynced_at (int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                           kiln_error **err)
{
  return write_file_at (dirfd, name, data, len, mode, false, err);
}

int
fs_write_file_atomic_at (int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                         kiln_error **err)
{
  return write_file_at (dirfd, name, data, len, mode, true, err);
}

/* ---- reading and writing ---- */

int
fs_write_all (int fd, const void *buf, size_t len, kiln_error **err)
{
  const char *p = buf;
  while (len > 0)
    {
      ssize_t n = write (fd, p, len);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return kiln_error_make (err, errno, "write");
        }
      if (n == 0)
        return kiln_error_make (err, EIO, "write: no progress");
      p += n;
      len -= (size_t) n;
    }
  return 0;
}

ssize_t
fs_read_all (int fd, void *buf, size_t len, kiln_error **err)
{
  char *p = buf;
  size_t got = 0;
  while (got < len)
    {
      ssize_t n = read (fd, p + got, len - got);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return kiln_error_make (err, errno, "read");
        }
      if (n == 0)
        break;
      got += (size_t) n;
    }
  return (ssize_t) got;
}

int
fs_read_fd (int fd, size_t max_size, char **buf, size_t *len, kiln_error **err)
{
  struct stat st;
  if (fstat (fd, &st) < 0)
    return kiln_error_make (err, errno, "stat");
  if (S_ISREG (st.st_mode) && (uint64_t) st.st_size > max_size)
    return kiln_error_make (err, EFBIG, "file is %jd bytes, more than the limit of %zu",
                            (intmax_t) st.st_size, max_size);
  autostrbuf strbuf sb = STRBUF_INIT;
  size_t hint = S_ISREG (st.st_mode) ? (size_t) st.st_size + 1 : 4096;
  strbuf_grow (&sb, hint < 4096 ? 4096 : hint);
  for (;;)
    {
      if (sb.alloc - sb.len - 1 < 4096)
        strbuf_grow (&sb, sb.len < 65536 ? 4096 : sb.len / 2);
      size_t room = sb.alloc - sb.len - 1;
      /* Never read more than one byte past the limit. */
      size_t left = max_size - sb.len;
      if (left != SIZE_MAX)
        left++;
      if (room > left)
        room = left;
      ssize_t n = read (fd, sb.buf + sb.len, room);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return kiln_error_make (err, errno, "read");
        }
      if (n == 0)
        break;
      strbuf_setlen (&sb, sb.len + (size_t) n);
      if (sb.len > max_size)
        return kiln_error_make (err, EFBIG, "file is larger than the limit of %zu bytes", max_size);
    }
  *buf = strbuf_detach (&sb, len);
  return 0;
}

int
fs_read_file_at (int dirfd, const char *path, size_t max_size, char **buf, size_t *len, kiln_error **err)
{
  autoclose int fd = fs_xopenat (dirfd, path, O_RDONLY | O_NOCTTY, 0);
  if (fd < 0)
    return kiln_error_make (err, errno, "open '%s'", path);
  if (fs_read_fd (fd, max_size, buf, len, err) < 0)
    return kiln_error_wrap (err, "read '%s'", path);
  return 0;
}

/* ---- rm -rf ---- */

/* Frames deeper than this below the current one have their DIR closed and
 * are re-entered through "..", so fd use stays bounded on deep trees. */
#define RM_KEEP_OPEN 64

typedef struct rm_frame
{
  DIR *d;       /* NULL when closed to save descriptors */
  char *name;   /* name in the parent */
  dev_t dev;
  ino_t ino;
} rm_frame;

typedef struct rm_ctx
{
  int topfd;
  const char *topname;
  struct statx ref;  /* the mount everything must be on */
  rm_frame *fr;
  size_t n, alloc;
} rm_ctx;

static char *
rm_path (rm_ctx *c, const char *leaf)
{
  strbuf sb = STRBUF_INIT;
  for (size_t i = 0; i < c->n; i++)
    {
      if (i)
        strbuf_addch (&sb, '/');
      strbuf_adds (&sb, c->fr[i].name);
    }
  if (leaf)
    {
      if (c->n)
        strbuf_addch (&sb, '/');
      strbuf_adds (&sb, leaf);
    }
  return strbuf_detach (&sb, NULL);
}

static int
rm_fail (rm_ctx *c, int status, const char *what, const char *leaf, kiln_error **err)
{
  autofree char *p = rm_path (c, leaf);
  return kiln_error_make (err, status, "remove '%s': %s", p, what);
}

static int
xstatx (int dirfd, const char *name, int flags, struct statx *stx)
{
  return statx (dirfd, name, flags | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
                STATX_TYPE | STATX_MODE | STATX_INO | STATX_UID | STATX_MNT_ID, stx);
}

static bool
other_mount (const struct statx *ref, const struct statx *st)
{
  if ((st->stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (st->stx_attributes & STATX_ATTR_MOUNT_ROOT))
    return true;
  if ((ref->stx_mask & STATX_MNT_ID) && (st->stx_mask & STATX_MNT_ID))
    return ref->stx_mnt_id != st->stx_mnt_id;
  return ref->stx_dev_major != st->stx_dev_major || ref->stx_dev_minor != st->stx_dev_minor;
}

/* Open directory name in parentfd for listing and deleting, making it
 * u+rwx first if needed; the inode must be the one statx saw. */
static int
rm_open_dir (rm_ctx *c, int parentfd, const char *name, const struct statx *stx, kiln_error **err)
{
  autoclose int pfd = fs_xopenat (parentfd, name, O_PATH | O_NOFOLLOW | O_DIRECTORY, 0);
  if (pfd < 0)
    return rm_fail (c, errno, "open directory", name, err);
  struct stat st;
  if (fstat (pfd, &st) < 0)
    return rm_fail (c, errno, "stat directory", name, err);
  if (st.st_ino != stx->stx_ino)
    return rm_fail (c, EAGAIN, "directory changed during removal", name, err);
  if ((st.st_mode & 0700) != 0700)
    {
      /* chmod through the O_PATH fd's /proc link: it names exactly the
       * inode we checked, never whatever is at `name` now. */
      char proc[64];
      snprintf (proc, sizeof proc, "/proc/self/fd/%d", pfd);
      if (chmod (proc, (st.st_mode | 0700) & 07777) < 0 && errno != EPERM && errno != ENOENT)
        return rm_fail (c, errno, "chmod u+rwx", name, err);
    }
  int fd = fs_xopenat (parentfd, name, O_RDONLY | O_NOFOLLOW | O_DIRECTORY, 0);
  if (fd < 0)
    return rm_fail (c, errno, "open directory", name, err);
  struct stat st2;
  if (fstat (fd, &st2) < 0 || st2.st_ino != st.st_ino || st2.st_dev != st.st_dev)
    {
      close (fd);
      return rm_fail (c, EAGAIN, "directory changed during removal", name, err);
    }
  return fd;
}

static int
rm_push (rm_ctx *c, int fd, const char *name, kiln_error **err)
{
  struct stat st;
  if (fstat (fd, &st) < 0)
    {
      int e = errno;
      close (fd);
      return rm_fail (c, e, "stat directory", name, err);
    }
  DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      int e = errno;
      close (fd);
      return rm_fail (c, e, "opendir", name, err);
    }
  if (c->n == c->alloc)
    {
      c->alloc = c->alloc ? c->alloc * 2 : 16;
      c->fr = xreallocarray (c->fr, c->alloc, sizeof *c->fr);
    }
  c->fr[c->n++] = (rm_frame){ d, xstrdup (name), st.st_dev, st.st_ino };
  if (c->n > RM_KEEP_OPEN && c->fr[c->n - 1 - RM_KEEP_OPEN].d)
    {
      closedir (c->fr[c->n - 1 - RM_KEEP_OPEN].d);
      c->fr[c->n - 1 - RM_KEEP_OPEN].d = NULL;
    }
  return 0;
}

/* The top frame is fully listed: remove it and resume its parent. */
static int
rm_pop (rm_ctx *c, kiln_error **err)
{
  rm_frame child = c->fr[c->n - 1];
  int parentfd = c->topfd;
  int ret = 0;
  if (c->n > 1)
    {
      rm_frame *parent = &c->fr[c->n - 2];
      if (parent->d == NULL)
        {
          int pfd = fs_xopenat (dirfd (child.d), "..", O_RDONLY | O_NOFOLLOW | O_DIRECTORY, 0);
          struct stat st;
          if (pfd < 0 || fstat (pfd, &st) < 0 || st.st_dev != parent->dev || st.st_ino != parent->ino)
            {
              if (pfd >= 0)
                close (pfd);
              c->n--;
              ret = rm_fail (c, EAGAIN, "parent directory changed during removal", NULL, err);
              c->n++;
              return ret;
            }
          parent->d = fdopendir (pfd);
          if (parent->d == NULL)
            {
              close (pfd);
              c->n--;
              ret = rm_fail (c, errno, "opendir", NULL, err);
              c->n++;
              return ret;
            }
        }
      parentfd = dirfd (parent->d);
    }
  c->n--;
  closedir (child.d);
  if (unlinkat (parentfd, child.name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    ret = rm_fail (c, errno, "rmdir", child.name, err);
  free (child.name);
  return ret;
}

static int
rm_step (rm_ctx *c, kiln_error **err)
{
  rm_frame *f = &c->fr[c->n - 1];
  errno = 0;
  struct dirent *de = readdir (f->d);
  if (de == NULL)
    {
      if (errno)
        return rm_fail (c, errno, "readdir", NULL, err);
      return rm_pop (c, err);
    }
  if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
    return 0;
  int fd = dirfd (f->d);
  struct statx stx;
  if (xstatx (fd, de->d_name, 0, &stx) < 0)
    {
      if (errno == ENOENT)
        return 0;
      return rm_fail (c, errno, "stat", de->d_name, err);
    }
  if (other_mount (&c->ref, &stx))
    return rm_fail (c, EBUSY, "is a mount point, not crossing it", de->d_name, err);
  if (!S_ISDIR (stx.stx_mode))
    {
      if (unlinkat (fd, de->d_name, 0) < 0 && errno != ENOENT)
        return rm_fail (c, errno, "unlink", de->d_name, err);
      return 0;
    }
  int cfd = rm_open_dir (c, fd, de->d_name, &stx, err);
  if (cfd < 0)
    return cfd;
  return rm_push (c, cfd, de->d_name, err);
}

int
fs_rm_rf_at (int dirfd, const char *name, kiln_error **err)
{
  if (*name == '\0' || strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
    return kiln_error_make (err, EINVAL, "remove '%s': refusing to remove this name", name);
  rm_ctx c = { .topfd = dirfd, .topname = name };
  struct statx stx;
  if (xstatx (dirfd, "", AT_EMPTY_PATH, &c.ref) < 0)
    return kiln_error_make (err, errno, "remove '%s': stat parent directory", name);
  if (xstatx (dirfd, name, 0, &stx) < 0)
    {
      if (errno == ENOENT)
        return 0;
      return kiln_error_make (err, errno, "remove '%s': stat", name);
    }
  if (other_mount (&c.ref, &stx))
    return kiln_error_make (err, EBUSY, "remove '%s': is a mount point, not crossing it", name);
  if (!S_ISDIR (stx.stx_mode))
    {
      if (unlinkat (dirfd, name, 0) < 0 && errno != ENOENT)
        return kiln_error_make (err, errno, "remove '%s'", name);
      return 0;
    }
  int ret = 0;
  int fd = rm_open_dir (&c, dirfd, name, &stx, err);
  if (fd < 0)
    return fd;
  ret = rm_push (&c, fd, name, err);
  while (ret >= 0 && c.n > 0)
    ret = rm_step (&c, err);
  for (size_t i = c.n; i-- > 0;)
    {
      if (c.fr[i].d)
        closedir (c.fr[i].d);
      free (c.fr[i].name);
    }
  free (c.fr);
  return ret;
}

/* ---- copying and locking ---- */

static int
copy_rw (int in, int out, uint64_t max, uint64_t *done, kiln_error **err)
{
  char buf[128 * 1024];
  while (*done < max)
    {
      size_t want = sizeof buf;
      if (max - *done < want)
        want = (size_t) (max - *done);
      ssize_t n = read (in, buf, want);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return kiln_error_make (err, errno, "copy: read");
        }
      if (n == 0)
        break;
      if (fs_write_all (out, buf, (size_t) n, err) < 0)
        return kiln_error_wrap (err, "copy");
      *done += (uint64_t) n;
    }
  return 0;
}

int
fs_copy_fd (int in, int out, uint64_t max, uint64_t *copied, kiln_error **err)
{
  uint64_t done = 0;
  int ret = 0;
  bool use_cfr = true;
  while (use_cfr && done < max)
    {
      size_t want = 1 << 30;
      if (max - done < want)
        want = (size_t) (max - done);
      ssize_t n = copy_file_range (in, NULL, out, NULL, want, 0);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          /* Not supported for this pair of files: plain copy from here on
           * (nothing was consumed by the failed call). */
          if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP
              || errno == EBADF || errno == EPERM || errno == ETXTBSY)
            {
              use_cfr = false;
              break;
            }
          ret = kiln_error_make (err, errno, "copy: copy_file_range");
          goto out;
        }
      if (n == 0)
        goto out; /* end of input */
      done += (uint64_t) n;
    }
  if (!use_cfr)
    ret = copy_rw (in, out, max, &done, err);
out:
  if (copied)
    *copied = done;
  return ret;
}

int
fs_lock_at (int dirfd, const char *name, int how, kiln_error **err)
{
  autoclose int fd = fs_xopenat (dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
  if (fd < 0)
    return kiln_error_make (err, errno, "open lock file '%s'", name);
  struct flock fl = {
    .l_type = (how & FS_LOCK_EXCLUSIVE) ? F_WRLCK : F_RDLCK,
    .l_whence = SEEK_SET,
    .l_start = 0,
    .l_len = 0,
  };
  int cmd = (how & FS_LOCK_NONBLOCK) ? F_OFD_SETLK : F_OFD_SETLKW;
  int r;
  do
    r = fcntl (fd, cmd, &fl);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    {
      int e = errno == EACCES ? EAGAIN : errno;
      if (e == EAGAIN)
        return kiln_error_make (err, e, "lock '%s': held by another process or build", name);
      return kiln_error_make (err, e, "lock '%s'", name);
    }
  return steal_fd (&fd);
}

int
fs_path_clean (const char *in, bool clamp, char **out)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  strbuf_grow (&sb, strlen (in) + 1);
  sb.buf[0] = '\0';
  size_t depth = 0;
  const char *p = in;
  *out = NULL;
  while (*p)
    {
      while (*p == '/')
        p++;
      size_t len = strcspn (p, "/");
      if (len == 0)
        break;
      if (len == 2 && p[0] == '.' && p[1] == '.')
        {
          if (depth == 0 && !clamp)
            return -1;
          char *s = sb.len ? strrchr (sb.buf, '/') : NULL;
          strbuf_setlen (&sb, s ? (size_t) (s - sb.buf) : 0);
          if (depth)
            depth--;
        }
      else if (!(len == 1 && p[0] == '.'))
        {
          if (sb.len)
            strbuf_addch (&sb, '/');
          strbuf_add (&sb, p, len);
          depth++;
        }
      p += len;
    }
  *out = strbuf_detach (&sb, NULL);
  return 0;
}
