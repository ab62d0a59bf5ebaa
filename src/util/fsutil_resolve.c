/* fsutil_resolve.c - fs_open_in_root: openat2 (RESOLVE_IN_ROOT or
 * RESOLVE_BENEATH) when the kernel has it, else the userspace walk below
 * (see fsutil.h and docs/design/util.md). */
#include "util/fsutil.h"
#include "util/alloc.h"
#include "util/fsutil_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/* -1 unknown, 0 missing (ENOSYS seen), 1 present. Process-wide because it
 * describes the kernel, not any one operation. */
static int openat2_state = -1;

static int
openat2_raw (int dirfd, const char *path, struct open_how *how)
{
  long r;
  int tries = 0;
  do
    r = syscall (SYS_openat2, dirfd, path, how, sizeof *how);
  /* EAGAIN: a concurrent rename made the kernel's ".." check unsure. */
  while (r < 0 && (errno == EINTR || (errno == EAGAIN && ++tries < 64)));
  return (int) r;
}

bool
fs_have_openat2 (void)
{
  int s = __atomic_load_n (&openat2_state, __ATOMIC_RELAXED);
  if (s < 0)
    {
      struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_BENEATH };
      int fd = openat2_raw (AT_FDCWD, ".", &how);
      /* EPERM for an O_PATH open of "." can only be a seccomp filter that
       * does not know openat2 (older container runtimes): fall back. */
      s = !(fd < 0 && (errno == ENOSYS || errno == EPERM));
      if (fd >= 0)
        close (fd);
      __atomic_store_n (&openat2_state, s, __ATOMIC_RELAXED);
    }
  return s == 1;
}

static bool
needs_mode (int flags)
{
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

/* ---- fallback resolver ---- */

typedef struct walk
{
  int *fds;  /* fds[0] is the root; each entry an O_PATH directory */
  size_t n, alloc;
} walk;

static void
walk_push (walk *w, int fd)
{
  if (w->n == w->alloc)
    {
      w->alloc = w->alloc ? w->alloc * 2 : 16;
      w->fds = xreallocarray (w->fds, w->alloc, sizeof *w->fds);
    }
  w->fds[w->n++] = fd;
}

static void
walk_pop_to (walk *w, size_t n)
{
  while (w->n > n)
    close (w->fds[--w->n]);
}

static void
walk_free (walk *w)
{
  walk_pop_to (w, 0);
  free (w->fds);
}

/* The fallback resolver's state: the directories opened so far and the
 * path still to resolve. */
typedef struct resolver
{
  walk w;
  char *rest;       /* the remaining path (owned; symlink targets are spliced in) */
  const char *p;    /* the next component, in rest */
  const char *path; /* the caller's path, for messages */
  int flags;
  mode_t mode;
  int resolve;
  int nlinks;
} resolver;

/* One component of rest: comp..end, then the slashes up to next. */
typedef struct component
{
  const char *comp, *end, *next;
  size_t clen;
  bool is_last, trailing_slash;
} component;

/* What a resolver step leaves to do. */
typedef enum
{
  STEP_NEXT, /* go on at r->p */
  STEP_DONE, /* *ret is the result: an fd, or -1 with *err set */
  STEP_LINK, /* the component is a symbolic link in the current directory */
} resolve_step;

static void
component_at (const char *p, component *c)
{
  while (*p == '/')
    p++;
  c->comp = p;
  c->end = strchrnul (p, '/');
  c->next = c->end;
  while (*c->next == '/')
    c->next++;
  c->is_last = *c->next == '\0';
  c->trailing_slash = c->is_last && c->end != c->next;
  c->clen = (size_t) (c->end - c->comp);
}

static bool
component_is_dots (const component *c)
{
  return c->clen == 0 || (c->clen == 1 && c->comp[0] == '.')
         || (c->clen == 2 && c->comp[0] == '.' && c->comp[1] == '.');
}

static int
resolver_cur (const resolver *r)
{
  return r->w.fds[r->w.n - 1];
}

/* "", "." or "..": stay or go up (never above the root), and at the end of
 * the path (possibly "", ".", ".." or a trailing slash) re-open the current
 * directory with the caller's flags. */
static resolve_step
resolve_dots (resolver *r, const component *c, int *ret, kiln_error **err)
{
  if (c->clen == 2)
    {
      if (r->w.n == 1 && (r->resolve & FS_RESOLVE_BENEATH))
        {
          *ret = kiln_error_make (err, EXDEV, "open '%s': '..' escapes the root", r->path);
          return STEP_DONE;
        }
      if (r->w.n > 1)
        walk_pop_to (&r->w, r->w.n - 1);
    }
  if (c->clen != 0 && !c->is_last)
    {
      r->p = c->next;
      return STEP_NEXT;
    }
  int fd = fs_xopenat (resolver_cur (r), ".", r->flags & ~O_NOFOLLOW, needs_mode (r->flags) ? r->mode : 0);
  if (fd < 0)
    *ret = kiln_error_make (err, errno, "open '%s'", r->path);
  else
    *ret = fd;
  return STEP_DONE;
}

/* A component before the last: a directory to enter or a symbolic link. */
static resolve_step
resolve_inner (resolver *r, const component *c, const char *name, int *ret, kiln_error **err)
{
  int fd = fs_xopenat (resolver_cur (r), name, O_PATH | O_NOFOLLOW, 0);
  if (fd < 0)
    {
      *ret = kiln_error_make (err, errno, "open '%s': component '%s'", r->path, name);
      return STEP_DONE;
    }
  struct stat st;
  if (fstat (fd, &st) < 0)
    {
      int e = errno;
      close (fd);
      *ret = kiln_error_make (err, e, "stat '%s': component '%s'", r->path, name);
      return STEP_DONE;
    }
  if (S_ISDIR (st.st_mode))
    {
      walk_push (&r->w, fd);
      r->p = c->next;
      return STEP_NEXT;
    }
  close (fd);
  if (!S_ISLNK (st.st_mode))
    {
      *ret = kiln_error_make (err, ENOTDIR, "open '%s': component '%s'", r->path, name);
      return STEP_DONE;
    }
  return STEP_LINK;
}

/* The last component: open it with the caller's flags, unless it is a
 * symbolic link to follow. */
static resolve_step
resolve_last (resolver *r, const component *c, const char *name, int *ret, kiln_error **err)
{
  int cur = resolver_cur (r);
  bool follow = c->trailing_slash || !(r->flags & O_NOFOLLOW);
  int ff = r->flags | O_NOFOLLOW | (c->trailing_slash ? O_DIRECTORY : 0);
  int fd = fs_xopenat (cur, name, ff, needs_mode (r->flags) ? r->mode : 0);
  if (fd < 0)
    {
      int e = errno;
      char lbuf[1];
      /* O_NOFOLLOW on a symlink gives ELOOP (or ENOTDIR with
       * O_DIRECTORY on some kernels): confirm it is a link. */
      if (!(follow && (e == ELOOP || e == ENOTDIR)) || readlinkat (cur, name, lbuf, sizeof lbuf) < 0)
        {
          *ret = kiln_error_make (err, e, "open '%s'", r->path);
          return STEP_DONE;
        }
    }
  else
    {
      struct stat st;
      if (follow && (r->flags & O_PATH) && fstat (fd, &st) == 0 && S_ISLNK (st.st_mode))
        close (fd);
      else
        {
          *ret = fd;
          return STEP_DONE;
        }
    }
  return STEP_LINK;
}

/* name is a symlink in the current directory: splice its target in front
 * of the rest of the path. */
static resolve_step
resolve_splice (resolver *r, const component *c, const char *name, int *ret, kiln_error **err)
{
  if (r->resolve & FS_RESOLVE_NO_SYMLINKS)
    {
      *ret = kiln_error_make (err, ELOOP, "open '%s': component '%s' is a symbolic link", r->path, name);
      return STEP_DONE;
    }
  if (++r->nlinks > FS_MAX_SYMLINKS)
    {
      *ret = kiln_error_make (err, ELOOP, "open '%s': too many symbolic links", r->path);
      return STEP_DONE;
    }
  char target[PATH_MAX];
  ssize_t tl = readlinkat (resolver_cur (r), name, target, sizeof target);
  if (tl < 0)
    {
      *ret = kiln_error_make (err, errno, "readlink '%s': component '%s'", r->path, name);
      return STEP_DONE;
    }
  if ((size_t) tl >= sizeof target)
    {
      *ret = kiln_error_make (err, ENAMETOOLONG, "readlink '%s': component '%s'", r->path, name);
      return STEP_DONE;
    }
  if (tl == 0)
    {
      *ret = kiln_error_make (err, ENOENT, "open '%s': empty symbolic link '%s'", r->path, name);
      return STEP_DONE;
    }
  if (target[0] == '/')
    {
      if (r->resolve & FS_RESOLVE_BENEATH)
        {
          *ret = kiln_error_make (err, EXDEV, "open '%s': absolute symbolic link '%s' escapes the root",
                                  r->path, name);
          return STEP_DONE;
        }
      walk_pop_to (&r->w, 1);
    }
  /* Keep the slashes after the link name: "link/" must stay a directory
   * lookup. */
  char *nrest = xasprintf ("%.*s%s", (int) tl, target, c->end);
  free (r->rest);
  r->rest = nrest;
  r->p = r->rest;
  return STEP_NEXT;
}

/* The userspace version of openat2 (RESOLVE_IN_ROOT or RESOLVE_BENEATH):
 * one component at a time from rootfd, each directory held open (O_PATH)
 * so ".." pops back to its parent and never above the root, and each
 * symbolic link's target spliced into the rest of the path. */
static int
open_fallback (int rootfd, const char *path, int flags, mode_t mode, int resolve, kiln_error **err)
{
  resolver r = { .w = { NULL, 0, 0 }, .rest = xstrdup (path), .path = path, .flags = flags, .mode = mode,
                 .resolve = resolve, .nlinks = 0 };
  r.p = r.rest;
  int ret = -1;

  int fd = fs_xopenat (rootfd, ".", O_PATH | O_DIRECTORY, 0);
  if (fd < 0)
    {
      ret = kiln_error_make (err, errno, "open root directory for '%s'", path);
      free (r.rest);
      return ret;
    }
  walk_push (&r.w, fd);

  if (*r.p == '/' && (resolve & FS_RESOLVE_BENEATH))
    {
      ret = kiln_error_make (err, EXDEV, "open '%s': absolute path escapes the root", path);
      goto out;
    }

  for (;;)
    {
      component c;
      component_at (r.p, &c);
      resolve_step step;
      autofree char *name = NULL;
      if (component_is_dots (&c))
        step = resolve_dots (&r, &c, &ret, err);
      else
        {
          name = xstrndup (c.comp, c.clen);
          if (c.is_last)
            step = resolve_last (&r, &c, name, &ret, err);
          else
            step = resolve_inner (&r, &c, name, &ret, err);
          if (step == STEP_LINK)
            step = resolve_splice (&r, &c, name, &ret, err);
        }
      if (step == STEP_DONE)
        break;
    }

out:
  walk_free (&r.w);
  free (r.rest);
  return ret;
}

int
fs_open_in_root (int rootfd, const char *path, int flags, mode_t mode, int resolve, kiln_error **err)
{
  bool in_root = resolve & FS_RESOLVE_IN_ROOT, beneath = resolve & FS_RESOLVE_BENEATH;
  if (in_root == beneath)
    return kiln_error_make (err, EINVAL, "open '%s': exactly one of in-root and beneath resolution is required",
                            path);
  if (*path == '\0')
    path = ".";
  if (!(resolve & FS_RESOLVE_FORCE_FALLBACK) && fs_have_openat2 ())
    {
      struct open_how how = {
        .flags = (uint64_t) (flags | O_CLOEXEC),
        .mode = needs_mode (flags) ? mode : 0,
        .resolve = RESOLVE_NO_MAGICLINKS | (in_root ? RESOLVE_IN_ROOT : RESOLVE_BENEATH)
                   | ((resolve & FS_RESOLVE_NO_SYMLINKS) ? RESOLVE_NO_SYMLINKS : 0),
      };
      int fd = openat2_raw (rootfd, path, &how);
      if (fd >= 0)
        return fd;
      if (errno != ENOSYS)
        return kiln_error_make (err, errno, "open '%s'", path);
      __atomic_store_n (&openat2_state, 0, __ATOMIC_RELAXED);
    }
  return open_fallback (rootfd, path, flags | O_CLOEXEC, mode, resolve, err);
}
