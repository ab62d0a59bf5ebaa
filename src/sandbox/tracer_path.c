/* tracer_path.c - guest paths to host paths, in guest semantics.
 *
 * The walk goes one component at a time from the root's O_PATH fd
 * (openat with O_NOFOLLOW on a single name, so the tracer itself never
 * follows a symlink the step planted): a symlink's target is read and
 * walked on, an absolute one from the root, ".." never above the root, 40
 * links at most (ELOOP). A component that reaches a bind's guest path
 * switches to its host path: a file bind is the object itself, below a
 * directory bind the rest is normalised lexically and left to the kernel
 * in the tracee's context (/proc/self must be the tracee, not the tracer).
 * The result names both the object (if it exists) and its parent plus last
 * name, for calls that create or do not follow. */
#include "sandbox/tracer_internal.h"
#include "util/alloc.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_LINKS 40

int
tracer_fs_init (tracer_fs *fs, const char *root, const tracer_bind *binds, size_t n_binds, kiln_error **err)
{
  memset (fs, 0, sizeof *fs);
  fs->root_fd = -1;
  char *real = realpath (root, NULL);
  if (!real)
    return kiln_error_make (err, errno, "resolve root directory '%s'", root);
  fs->root = real;
  if (strcmp (real, "/") == 0)
    return kiln_error_make (err, EINVAL, "root directory '%s': the host's root cannot be a step's root", root);
  fs->root_len = strlen (real);
  fs->root_fd = open (real, O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct stat st;
  if (fs->root_fd < 0 || fstat (fs->root_fd, &st) < 0)
    return kiln_error_make (err, errno, "open root directory '%s'", real);
  fs->root_dev = st.st_dev;
  fs->binds = binds;
  fs->n_binds = n_binds;
  fs->bind_dir = xcalloc (n_binds + 1, sizeof (bool));
  fs->bind_st = xcalloc (n_binds + 1, sizeof (struct stat));
  for (size_t i = 0; i < n_binds; i++)
    {
      if (binds[i].guest[0] != '/' || binds[i].host[0] != '/')
        return kiln_error_make (err, EINVAL, "bind '%s' -> '%s': both paths must be absolute", binds[i].guest,
                                binds[i].host);
      if (stat (binds[i].host, &fs->bind_st[i]) < 0)
        return kiln_error_make (err, errno, "bind '%s': stat '%s'", binds[i].guest, binds[i].host);
      fs->bind_dir[i] = S_ISDIR (fs->bind_st[i].st_mode);
      if (fs->bind_dir[i] && fs->bind_st[i].st_dev == fs->root_dev)
        fs->dir_bind_on_root_dev = true;
    }
  return 0;
}

void
tracer_fs_clear (tracer_fs *fs)
{
  free (fs->root);
  fs->root = NULL;
  if (fs->root_fd >= 0)
    close (fs->root_fd);
  fs->root_fd = -1;
  free (fs->bind_dir);
  fs->bind_dir = NULL;
  free (fs->bind_st);
  fs->bind_st = NULL;
}

bool
tracer_fs_in_root (const tracer_fs *fs, const struct stat *st, const char *link)
{
  if (st->st_dev != fs->root_dev)
    return false;
  for (size_t i = 0; i < fs->n_binds; i++)
    if (!fs->bind_dir[i] && fs->bind_st[i].st_dev == st->st_dev && fs->bind_st[i].st_ino == st->st_ino)
      return false;
  if (!fs->dir_bind_on_root_dev)
    return true;
  char host[PATH_MAX];
  ssize_t n = readlink (link, host, sizeof host - 1);
  if (n <= 0 || host[0] != '/')
    return false;
  host[n] = '\0';
  for (size_t i = 0; i < fs->n_binds; i++)
    {
      size_t bl = strlen (fs->binds[i].host);
      if (fs->bind_dir[i] && strncmp (host, fs->binds[i].host, bl) == 0 && (host[bl] == '\0' || host[bl] == '/'))
        return false;
    }
  return strncmp (host, fs->root, fs->root_len) == 0 && (host[fs->root_len] == '\0' || host[fs->root_len] == '/');
}

bool
tracer_path_bind_root (const tracer_path *p)
{
  return p->bind && p->guest && strcmp (p->guest, p->bind->guest) == 0;
}

const tracer_bind *
tracer_fs_bind_of (const tracer_fs *fs, const char *guest)
{
  for (size_t i = 0; guest && i < fs->n_binds; i++)
    {
      const tracer_bind *b = &fs->binds[i];
      size_t n = strlen (b->guest);
      if (strncmp (guest, b->guest, n) == 0 && (guest[n] == '\0' || (fs->bind_dir[i] && guest[n] == '/')))
        return b;
    }
  return NULL;
}

int
tracer_path_bind_open (const tracer_fs *fs, const tracer_path *p, bool follow)
{
  size_t i = (size_t) (p->bind - fs->binds);
  int flags = O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW);
  if (!fs->bind_dir[i] || tracer_path_bind_root (p))
    {
      int fd = open (p->bind->host, flags);
      return fd < 0 ? -errno : fd;
    }
  autoclose int top = open (p->bind->host, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (top < 0)
    return -errno;
  /* what the step put in the bind never leads kiln out of it */
  struct open_how how = { .flags = (uint64_t) flags, .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
  const char *rest = p->guest + strlen (p->bind->guest) + 1;
  long fd;
  do
    fd = syscall (SYS_openat2, top, rest, &how, sizeof how);
  while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  return fd < 0 ? -errno : (int) fd;
}

void
tracer_path_clear (tracer_path *p)
{
  free (p->guest);
  free (p->host);
  free (p->name);
  if (p->dirfd >= 0)
    close (p->dirfd);
  if (p->fd >= 0)
    close (p->fd);
  memset (p, 0, sizeof *p);
  p->dirfd = p->fd = -1;
}

char *
tracer_path_normalize (const char *path)
{
  strbuf out = STRBUF_INIT;
  const char *s = path;
  while (*s)
    {
      while (*s == '/')
        s++;
      const char *e = strchrnul (s, '/');
      size_t n = (size_t) (e - s);
      if (n == 0 || (n == 1 && s[0] == '.'))
        ;
      else if (n == 2 && s[0] == '.' && s[1] == '.')
        {
          char *slash = strrchr (out.buf, '/');
          strbuf_setlen (&out, slash ? (size_t) (slash - out.buf) : 0);
        }
      else
        {
          strbuf_addch (&out, '/');
          strbuf_add (&out, s, n);
        }
      s = e;
    }
  if (out.len == 0)
    strbuf_addch (&out, '/');
  return strbuf_detach (&out, NULL);
}

char *
tracer_host_to_guest (const tracer_fs *fs, const char *host)
{
  for (size_t i = 0; i < fs->n_binds; i++)
    {
      const tracer_bind *b = &fs->binds[i];
      size_t n = strlen (b->host);
      if (strncmp (host, b->host, n) == 0 && (host[n] == '\0' || (fs->bind_dir[i] && host[n] == '/')))
        return xasprintf ("%s%s", b->guest, host + n);
    }
  if (strncmp (host, fs->root, fs->root_len) == 0)
    {
      if (host[fs->root_len] == '\0')
        return xstrdup ("/");
      if (host[fs->root_len] == '/')
        return xstrdup (host + fs->root_len);
    }
  return NULL;
}

/* A canonical guest directory of the root, reopened without following any
 * symlink (one may have replaced a directory since it was walked). */
static int
reopen_dir (const tracer_fs *fs, const char *guest)
{
  if (guest[0] == '\0' || strcmp (guest, "/") == 0)
    return fcntl (fs->root_fd, F_DUPFD_CLOEXEC, 3);
  struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                          .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
  long fd;
  do
    fd = syscall (SYS_openat2, fs->root_fd, guest + 1, &how, sizeof how);
  while (fd < 0 && errno == EINTR);
  return (int) fd;
}

static const tracer_bind *
find_bind (const tracer_fs *fs, const char *guest, size_t *idx)
{
  for (size_t i = 0; i < fs->n_binds; i++)
    if (strcmp (fs->binds[i].guest, guest) == 0)
      {
        *idx = i;
        return &fs->binds[i];
      }
  return NULL;
}

static int fast_resolve (const tracer_fs *fs, const char *base, const char *path, int flags, tracer_path *out,
                         int *res);

typedef struct walk
{
  const tracer_fs *fs;
  int flags;
  strbuf guest;   /* canonical guest path of cur; "" is the root */
  int cur;        /* O_PATH fd of that directory, owned */
  char *rest;     /* what is left to walk */
  int links;
  bool retry_fast; /* a symlink was just followed: try one openat2 for the rest */
} walk;

static void
set_host (walk *w, tracer_path *out, const char *guest)
{
  out->guest = xstrdup (guest[0] ? guest : "/");
  out->host = xasprintf ("%s%s", w->fs->root, guest);
}

/* The path reached a bind at w->guest + "/" + comp; tail is the rest of
 * the path after it. Returns 1 when done, 0 when the walk restarts (a ".."
 * left the bind), -errno. */
static int
enter_bind (walk *w, size_t idx, const char *candidate, const char *tail, tracer_path *out)
{
  const tracer_bind *b = &w->fs->binds[idx];
  if (!w->fs->bind_dir[idx])
    {
      if (strspn (tail, "/") != strlen (tail))
        return -ENOTDIR;
      out->bind = b;
      out->guest = xstrdup (candidate);
      out->host = xstrdup (b->host);
      out->name = xstrdup (strrchr (candidate, '/') + 1);
      return 1;
    }
  autofree char *joined = xasprintf ("%s/%s", candidate, tail);
  autofree char *norm = tracer_path_normalize (joined);
  size_t n = strlen (b->guest);
  if (strncmp (norm, b->guest, n) == 0 && (norm[n] == '\0' || norm[n] == '/'))
    {
      out->bind = b;
      out->guest = xstrdup (norm);
      out->host = xasprintf ("%s%s", b->host, norm + n);
      out->name = xstrdup (strrchr (norm, '/') + 1);
      return 1;
    }
  /* "/proc/.." and the like: back in the root, from the start. */
  free (w->rest);
  w->rest = steal_pointer (&norm);
  strbuf_reset (&w->guest);
  close (w->cur);
  w->cur = fcntl (w->fs->root_fd, F_DUPFD_CLOEXEC, 3);
  return w->cur < 0 ? -errno : 0;
}

/* A symlink at comp: walk its target, then the rest. */
static int
follow_link (walk *w, int fd, const char *tail, bool slash)
{
  if ((w->flags & TR_NOSYMLINKS) || ++w->links > MAX_LINKS)
    return -ELOOP;
  char target[PATH_MAX];
  ssize_t n = readlinkat (fd, "", target, sizeof target - 1);
  if (n < 0)
    return -errno;
  target[n] = '\0';
  if (n == 0)
    return -ENOENT;
  char *next = xasprintf ("%s%s%s", target, *tail || slash ? "/" : "", tail);
  free (w->rest);
  w->rest = next;
  w->retry_fast = true;
  if (target[0] == '/')
    {
      strbuf_reset (&w->guest);
      close (w->cur);
      w->cur = fcntl (w->fs->root_fd, F_DUPFD_CLOEXEC, 3);
      if (w->cur < 0)
        return -errno;
    }
  return 0;
}

/* The path ended at the directory w->cur itself ("/", "a/.", "a/.."). */
static int
finish_dir (walk *w, tracer_path *out)
{
  set_host (w, out, w->guest.buf);
  char *slash = strrchr (w->guest.buf, '/');
  out->name = xstrdup (slash ? slash + 1 : "");
  out->fd = steal_fd (&w->cur);
  if (slash)
    {
      autofree char *parent = xstrndup (w->guest.buf, (size_t) (slash - w->guest.buf));
      out->dirfd = reopen_dir (w->fs, parent);
    }
  return 0;
}

/* One step: 1 done, 0 go on, -errno. */
static int
walk_step (walk *w, tracer_path *out)
{
  char *s = w->rest + strspn (w->rest, "/");
  if (*s == '\0')
    return finish_dir (w, out) < 0 ? -errno : 1;
  int fr;
  if (w->retry_fast && !(w->flags & TR_NOSYMLINKS)
      && fast_resolve (w->fs, w->guest.len ? w->guest.buf : "/", w->rest, w->flags, out, &fr))
    return fr < 0 ? fr : 1;   /* e.g. "/lib/x86_64-linux-gnu/libc.so.6" after "/lib" -> "usr/lib" */
  w->retry_fast = false;
  char *e = strchrnul (s, '/');
  autofree char *comp = xstrndup (s, (size_t) (e - s));
  bool slash = *e == '/';
  autofree char *tail = xstrdup (e + strspn (e, "/"));
  bool last = *tail == '\0';
  if (strcmp (comp, ".") == 0 || strcmp (comp, "..") == 0)
    {
      if (comp[1] == '.')
        {
          char *p = strrchr (w->guest.buf, '/');
          strbuf_setlen (&w->guest, p ? (size_t) (p - w->guest.buf) : 0);
          close (w->cur);
          w->cur = reopen_dir (w->fs, w->guest.buf);
          if (w->cur < 0)
            return -errno;
        }
      free (w->rest);
      w->rest = steal_pointer (&tail);
      return 0;
    }
  autofree char *candidate = xasprintf ("%s/%s", w->guest.buf, comp);
  size_t idx;
  if (find_bind (w->fs, candidate, &idx))
    return enter_bind (w, idx, candidate, tail, out);
  int fd = openat (w->cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    {
      int e2 = errno;
      if (e2 != ENOENT || !last)
        return -e2;
      set_host (w, out, candidate);
      out->name = steal_pointer (&comp);
      out->dirfd = steal_fd (&w->cur);
      return 1;
    }
  struct stat st;
  if (fstat (fd, &st) < 0)
    {
      int e2 = errno;
      close (fd);
      return -e2;
    }
  if (S_ISLNK (st.st_mode) && (!last || slash || (w->flags & TR_FOLLOW)))
    {
      int r = follow_link (w, fd, tail, slash);
      close (fd);
      return r;
    }
  if (!S_ISDIR (st.st_mode) && (!last || slash || (w->flags & TR_DIR)))
    {
      close (fd);
      return -ENOTDIR;
    }
  if (last)
    {
      set_host (w, out, candidate);
      out->name = steal_pointer (&comp);
      out->dirfd = steal_fd (&w->cur);
      out->fd = fd;
      return 1;
    }
  close (w->cur);
  w->cur = fd;
  strbuf_reset (&w->guest);
  strbuf_adds (&w->guest, candidate);
  free (w->rest);
  w->rest = steal_pointer (&tail);
  return 0;
}

/* ---- the fast path: one openat2 ---- */

/* Whether the guest path g (absolute, normalised) is a bind or below one. */
static bool
in_bind (const tracer_fs *fs, const char *g, size_t len)
{
  for (size_t i = 0; i < fs->n_binds; i++)
    {
      const char *b = fs->binds[i].guest;
      size_t n = strlen (b);
      if (len >= n && memcmp (g, b, n) == 0 && (g[n] == '\0' || g[n] == '/'))
        return true;
    }
  return false;
}

static int
openat2_in_root (const tracer_fs *fs, const char *rel_path, int oflags)
{
  struct open_how how = { .flags = (uint64_t) (oflags | O_PATH | O_CLOEXEC),
                          .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
  long fd;
  do
    fd = syscall (SYS_openat2, fs->root_fd, rel_path, &how, sizeof how);
  while (fd < 0 && errno == EINTR);
  return (int) fd;
}

/* A path that names no symlink, no "." or "..", no bind and no trailing
 * slash resolves in the guest exactly as the kernel resolves it below the
 * root with RESOLVE_NO_SYMLINKS: one openat2 instead of a walk of an openat
 * and an fstat per component. 1 done (out set, or -errno in *res), 0: take
 * the walk (a symlink on the way, "..", a bind ...). */
static int
fast_resolve (const tracer_fs *fs, const char *base, const char *path, int flags, tracer_path *out, int *res)
{
  strbuf g = STRBUF_INIT;
  if (path[0] != '/' && strcmp (base, "/") != 0)
    strbuf_adds (&g, base);
  /* normalise away repeated slashes; bail out on "." and ".." */
  for (const char *s = path; *s;)
    {
      while (*s == '/')
        s++;
      if (!*s)
        break;
      const char *e = strchrnul (s, '/');
      size_t n = (size_t) (e - s);
      if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        goto slow;
      strbuf_addch (&g, '/');
      strbuf_add (&g, s, n);
      s = e;
    }
  size_t plen = strlen (path);
  if (g.len == 0 || path[plen - 1] == '/' || g.len >= PATH_MAX || in_bind (fs, g.buf, g.len))
    goto slow;
  if (fs->n_binds && path[0] != '/')
    {
      /* a relative path from inside a bind is the kernel's (the walk) */
      if (in_bind (fs, base, strlen (base)))
        goto slow;
    }
  int oflags = (flags & TR_FOLLOW) ? 0 : O_NOFOLLOW;
  if (flags & TR_DIR)
    oflags |= O_DIRECTORY;
  int fd = openat2_in_root (fs, g.buf + 1, oflags);
  char *slash = strrchr (g.buf, '/');
  if (fd < 0)
    {
      int e = errno;
      if (e == ENOTDIR)
        {
          *res = -ENOTDIR;   /* a component (or the last, with TR_DIR) is no directory */
          strbuf_release (&g);
          return 1;
        }
      if (e != ENOENT)
        goto slow;           /* ELOOP: a symlink on the way; anything odd */
      if (flags & TR_EXISTING)
        {
          *res = -ENOENT;    /* missing, whichever component: the caller's answer too */
          strbuf_release (&g);
          return 1;
        }
      /* missing: the last component (then the parent is there) or one above */
      char *parent = xstrndup (g.buf, (size_t) (slash - g.buf));
      int dfd = parent[0] ? openat2_in_root (fs, parent + 1, O_DIRECTORY) : fcntl (fs->root_fd, F_DUPFD_CLOEXEC, 3);
      int pe = errno;
      free (parent);
      if (dfd < 0 && (pe == ENOENT || pe == ENOTDIR))
        {
          *res = -pe;
          strbuf_release (&g);
          return 1;
        }
      if (dfd < 0)
        goto slow;
      out->dirfd = dfd;
    }
  out->fd = fd;
  out->name = xstrdup (slash + 1);
  out->host = xasprintf ("%s%s", fs->root, g.buf);
  out->guest = strbuf_detach (&g, NULL);
  *res = 0;
  return 1;
slow:
  strbuf_release (&g);
  return 0;
}

int
tracer_path_dirfd (const tracer_fs *fs, tracer_path *p)
{
  if (p->dirfd >= 0 || p->bind)
    return p->dirfd;
  const char *slash = strrchr (p->guest, '/');
  if (!slash || !p->name[0])
    return -1;
  autofree char *parent = xstrndup (p->guest, (size_t) (slash - p->guest));
  p->dirfd = reopen_dir (fs, parent);
  return p->dirfd;
}

int
tracer_resolve (const tracer_fs *fs, const char *base, const char *path, int flags, tracer_path *out)
{
  memset (out, 0, sizeof *out);
  out->dirfd = out->fd = -1;
  if (path[0] == '\0')
    return -ENOENT;
  int fr;
  if (!(flags & TR_NOSYMLINKS) && fast_resolve (fs, base, path, flags, out, &fr))
    {
      if (fr < 0)
        tracer_path_clear (out);
      return fr;
    }
  walk w = { .fs = fs, .flags = flags, .cur = -1 };
  strbuf_init (&w.guest, 64);
  if (path[0] == '/')
    w.rest = xstrdup (path);
  else
    {
      /* base is canonical: walk from it (re-checked, no symlinks) */
      w.rest = xstrdup (path);
      if (strcmp (base, "/") != 0)
        strbuf_adds (&w.guest, base);
    }
  int r;
  /* A relative path from a directory inside a bind: the kernel's. */
  size_t idx;
  for (idx = 0; path[0] != '/' && idx < fs->n_binds; idx++)
    {
      size_t n = strlen (fs->binds[idx].guest);
      if (strncmp (base, fs->binds[idx].guest, n) == 0 && (base[n] == '\0' || base[n] == '/'))
        break;
    }
  if (path[0] != '/' && idx < fs->n_binds)
    {
      autofree char *joined = xasprintf ("%s/%s", base, path);
      free (w.rest);
      w.rest = tracer_path_normalize (joined);
      strbuf_reset (&w.guest);
    }
  w.cur = reopen_dir (fs, w.guest.buf);
  if (w.cur < 0)
    r = -errno;
  else
    do
      r = walk_step (&w, out);
    while (r == 0);
  if (w.cur >= 0)
    close (w.cur);
  free (w.rest);
  strbuf_release (&w.guest);
  if (r < 0)
    {
      tracer_path_clear (out);
      return r;
    }
  return 0;
}
