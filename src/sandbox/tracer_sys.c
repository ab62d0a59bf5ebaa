/* tracer_sys.c - the trapped file-system calls: paths translated (the
 * call then runs in the kernel on the host path, written below the
 * tracee's stack pointer), or the call emulated (metadata: tracer_meta.c).
 * A resolution error is the call's result without running it. A call that
 * mutates the root asks for its exit stop when ops->changed wants to know. */
#include "sandbox/tracer_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- the tracee's cwd and fds as guest paths ---- */

static char *
read_link_path (const char *link)
{
  char buf[PATH_MAX];
  ssize_t n = readlink (link, buf, sizeof buf - 1);
  if (n < 0)
    return NULL;
  buf[n] = '\0';
  return xstrdup (buf);
}

char *
tracer_guest_cwd (tracer *t, pid_t tid)
{
  char link[64];
  snprintf (link, sizeof link, "/proc/%d/cwd", (int) tid);
  autofree char *host = read_link_path (link);
  if (!host)
    return NULL;
  char *g = tracer_host_to_guest (&t->fs, host);
  if (!g)
    errno = ENOENT;   /* deleted, or outside: nothing to resolve against */
  return g;
}

char *
tracer_guest_fd (tracer *t, pid_t tid, int fd)
{
  char link[64];
  snprintf (link, sizeof link, "/proc/%d/fd/%d", (int) tid, fd);
  autofree char *host = read_link_path (link);
  if (!host)
    {
      errno = EBADF;
      return NULL;
    }
  if (host[0] != '/')
    {
      errno = ENOTDIR;   /* a pipe, a socket ... */
      return NULL;
    }
  char *g = tracer_host_to_guest (&t->fs, host);
  if (!g)
    errno = EACCES;
  return g;
}

int
tracer_resolve_at (tracer_call *c, int dirfd, unsigned long path_addr, int flags, bool empty_ok, tracer_path *out)
{
  memset (out, 0, sizeof *out);
  out->dirfd = out->fd = -1;
  autofree char *path = NULL;
  int r = tracer_mem_string (c->te->tid, path_addr, PATH_MAX, &path);
  if (r < 0)
    return r;
  autofree char *base = NULL;
  if (path[0] == '\0')
    {
      if (!empty_ok)
        return -ENOENT;
      /* the fd itself (AT_EMPTY_PATH): its canonical path, not followed */
      base = dirfd == AT_FDCWD ? tracer_guest_cwd (c->t, c->te->tid) : tracer_guest_fd (c->t, c->te->tid, dirfd);
      if (!base)
        return -errno;
      return tracer_resolve (&c->t->fs, "/", base, flags & ~TR_FOLLOW, out);
    }
  if (path[0] != '/')
    {
      base = dirfd == AT_FDCWD ? tracer_guest_cwd (c->t, c->te->tid) : tracer_guest_fd (c->t, c->te->tid, dirfd);
      if (!base)
        return -errno;
    }
  return tracer_resolve (&c->t->fs, base ? base : "/", path, flags, out);
}

/* ---- helpers ---- */

int
tracer_set_path_arg (tracer_call *c, int argi, const char *host)
{
  int e = 0;
  unsigned long at = tracer_scratch_put (&c->scratch, host, strlen (host) + 1, &e);
  if (!at)
    return -e;
  tracer_set_arg (&c->regs, argi, at);
  return 0;
}

static unsigned long
arg (tracer_call *c, int i)
{
  return tracer_arg (&c->regs, i);
}

static int
iarg (tracer_call *c, int i)
{
  return (int) tracer_arg (&c->regs, i);
}

/* "etc/passwd" of "/etc/passwd" */
static const char *
rel (const char *guest)
{
  return guest + strspn (guest, "/");
}

/* Report the change at the call's exit when it succeeded. */
tracer_action
tracer_want_change (tracer_call *c, tracer_change_kind kind, const tracer_path *p, const tracer_path *p2, unsigned flags)
{
  const tracer_config *cfg = c->t->cfg;
  if (!cfg->ops || !cfg->ops->changed || p->bind || (p2 && p2->bind))
    return TR_CONTINUE;
  tracee *te = c->te;
  free (te->change_path);
  free (te->change_path2);
  te->change_path = xstrdup (rel (p->guest));
  te->change_path2 = p2 ? xstrdup (rel (p2->guest)) : NULL;
  te->change = (tracer_change){ .kind = kind, .path = te->change_path, .path2 = te->change_path2,
                                .flags = flags, .uid = te->creds->fsuid, .gid = te->creds->fsgid };
  te->exit_kind = 1;
  return TR_EXIT_STOP;
}

void
tracer_sys_exit (tracer_call *c)
{
  tracee *te = c->te;
  const tracer_config *cfg = c->t->cfg;
  if (te->exit_kind == 1 && tracer_retval (&c->regs) >= 0 && cfg->ops && cfg->ops->changed)
    cfg->ops->changed (cfg->ops_ctx, &te->change);
}

static tracer_action
fail (tracer_call *c, int r)
{
  tracer_skip (&c->regs, r);
  return TR_CONTINUE;
}

/* ---- opens ---- */

static tracer_action
sys_open (tracer_call *c, int dirfd, int path_arg, int flags)
{
  /* O_TMPFILE: EOPNOTSUPP, as on kiln's FUSE overlay (libfuse 3.14), so
   * that a step behaves, and its layer comes out, the same in both
   * isolations; callers fall back to a named temporary file (apt does). */
  if ((flags & O_TMPFILE) == O_TMPFILE)
    return fail (c, -EOPNOTSUPP);
  bool creat = (flags & O_CREAT) != 0;
  bool follow = !(flags & O_NOFOLLOW) && !(creat && (flags & O_EXCL));
  tracer_path p;
  int r = tracer_resolve_at (c, dirfd, arg (c, path_arg), (follow ? TR_FOLLOW : 0) | (creat ? 0 : TR_EXISTING), false,
                             &p);
  if (r < 0)
    return fail (c, r);
  tracer_action a = TR_CONTINUE;
  bool write = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
  if (!p.bind && p.fd < 0 && !creat)
    r = -ENOENT;
  else if (!p.bind && p.fd >= 0 && write && c->t->cfg->ops && c->t->cfg->ops->before_write)
    {
      struct stat st;
      if (fstat (p.fd, &st) == 0 && S_ISREG (st.st_mode))
        r = c->t->cfg->ops->before_write (c->t->cfg->ops_ctx, tracer_path_dirfd (&c->t->fs, &p), p.name, rel (p.guest));
    }
  if (r == 0)
    r = tracer_set_path_arg (c, path_arg, p.host);
  if (r < 0)
    tracer_skip (&c->regs, r);
  else if (write || (creat && p.fd < 0))
    a = tracer_want_change (c, TRACER_CHANGE_WRITE, &p, NULL, 0);
  tracer_path_clear (&p);
  return a;
}

static tracer_action
sys_openat2 (tracer_call *c)
{
  struct open_how how;
  size_t size = arg (c, 3);
  if (size < sizeof how)
    return fail (c, -EINVAL);
  if (tracer_mem_read (c->te->tid, arg (c, 2), &how, sizeof how) < 0)
    return fail (c, -EFAULT);
  /* Scoped resolution relative to a dirfd is not emulated: tools fall back
   * to openat on ENOSYS. */
  if (how.resolve & ~(uint64_t) (RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV))
    return fail (c, -ENOSYS);
  return sys_open (c, iarg (c, 0), 1, (int) how.flags);
}

/* ---- plain path calls: translate and let the kernel run them ---- */

static tracer_action
sys_pass (tracer_call *c, int dirfd, int path_arg, int flags, bool must_exist)
{
  tracer_path p;
  int r = tracer_resolve_at (c, dirfd, arg (c, path_arg), flags | (must_exist ? TR_EXISTING : 0), false, &p);
  if (r == 0 && must_exist && !p.bind && p.fd < 0)
    r = -ENOENT;
  if (r == 0)
    r = tracer_set_path_arg (c, path_arg, p.host);
  if (r < 0)
    tracer_skip (&c->regs, r);
  tracer_path_clear (&p);
  return TR_CONTINUE;
}

static tracer_action
sys_truncate (tracer_call *c)
{
  tracer_path p;
  int r = tracer_resolve_at (c, AT_FDCWD, arg (c, 0), TR_FOLLOW, false, &p);
  if (r == 0 && !p.bind && p.fd < 0)
    r = -ENOENT;
  if (r == 0 && !p.bind && c->t->cfg->ops && c->t->cfg->ops->before_write)
    r = c->t->cfg->ops->before_write (c->t->cfg->ops_ctx, tracer_path_dirfd (&c->t->fs, &p), p.name, rel (p.guest));
  if (r == 0)
    r = tracer_set_path_arg (c, 0, p.host);
  tracer_action a = r < 0 ? fail (c, r) : tracer_want_change (c, TRACER_CHANGE_WRITE, &p, NULL, 0);
  tracer_path_clear (&p);
  return a;
}

/* mkdir, symlink, mknod of a fifo/socket/file, bind: create the last name */
static tracer_action
sys_create (tracer_call *c, int dirfd, int path_arg)
{
  tracer_path p;
  int r = tracer_resolve_at (c, dirfd, arg (c, path_arg), 0, false, &p);
  /* below a directory bind (a cache mount) the kernel decides */
  if (r == 0 && (p.fd >= 0 || (tracer_path_bind_root (&p) && c->sc != TSC_BIND)))
    r = -EEXIST;
  if (r == 0)
    r = tracer_set_path_arg (c, path_arg, p.host);
  tracer_action a = r < 0 ? fail (c, r) : tracer_want_change (c, TRACER_CHANGE_CREATE, &p, NULL, 0);
  tracer_path_clear (&p);
  return a;
}

static tracer_action
sys_remove (tracer_call *c, int dirfd, int path_arg)
{
  tracer_path p;
  int r = tracer_resolve_at (c, dirfd, arg (c, path_arg), 0, false, &p);
  if (r == 0 && tracer_path_bind_root (&p))
    r = -EBUSY;
  else if (r == 0 && !p.bind && p.fd < 0)
    r = -ENOENT;
  if (r == 0)
    r = tracer_set_path_arg (c, path_arg, p.host);
  tracer_action a = r < 0 ? fail (c, r) : tracer_want_change (c, TRACER_CHANGE_REMOVE, &p, NULL, 0);
  tracer_path_clear (&p);
  return a;
}

/* rename and link: two paths */
static tracer_action
sys_two (tracer_call *c, int d1, int a1, int f1, int d2, int a2, unsigned flags, bool link)
{
  tracer_path p, q;
  int r = tracer_resolve_at (c, d1, arg (c, a1), f1, link && (flags & AT_EMPTY_PATH), &p);
  if (r < 0)
    return fail (c, r);
  r = tracer_resolve_at (c, d2, arg (c, a2), 0, false, &q);
  /* within one directory bind the kernel decides; across a mount point
   * it would say EXDEV; a mount point itself cannot move */
  if (r == 0 && (tracer_path_bind_root (&p) || tracer_path_bind_root (&q)))
    r = link ? -EXDEV : -EBUSY;
  else if (r == 0 && p.bind != q.bind)
    r = -EXDEV;
  else if (r == 0 && !p.bind && p.fd < 0)
    r = -ENOENT;
  else if (r == 0 && link && !q.bind && q.fd >= 0)
    r = -EEXIST;
  if (r == 0)
    r = tracer_set_path_arg (c, a1, p.host);
  if (r == 0)
    r = tracer_set_path_arg (c, a2, q.host);
  tracer_action a;
  if (r < 0)
    a = fail (c, r);
  else if (link)
    {
      if (c->sc == TSC_LINKAT)
        tracer_set_arg (&c->regs, 4, flags & ~(unsigned) AT_EMPTY_PATH);
      a = tracer_want_change (c, TRACER_CHANGE_LINK, &q, &p, 0);
    }
  else
    a = tracer_want_change (c, TRACER_CHANGE_RENAME, &p, &q, flags);
  tracer_path_clear (&p);
  tracer_path_clear (&q);
  return a;
}

/* bind/connect of a pathname AF_UNIX socket */
static tracer_action
sys_sockaddr (tracer_call *c)
{
  struct sockaddr_un sun;
  size_t len = arg (c, 2);
  size_t off = offsetof (struct sockaddr_un, sun_path);
  if (len <= off || len > sizeof sun)
    return TR_CONTINUE;
  memset (&sun, 0, sizeof sun);
  if (tracer_mem_read (c->te->tid, arg (c, 1), &sun, len) < 0)
    return fail (c, -EFAULT);
  if (sun.sun_family != AF_UNIX || sun.sun_path[0] == '\0')
    return TR_CONTINUE;   /* not a path: abstract, or another family */
  char path[sizeof sun.sun_path + 1];
  memcpy (path, sun.sun_path, len - off);
  path[len - off] = '\0';
  autofree char *base = path[0] == '/' ? NULL : tracer_guest_cwd (c->t, c->te->tid);
  if (path[0] != '/' && !base)
    return fail (c, -errno);
  tracer_path p;
  int r = tracer_resolve (&c->t->fs, base ? base : "/", path, c->sc == TSC_CONNECT ? TR_FOLLOW : 0, &p);
  if (r == 0 && strlen (p.host) >= sizeof sun.sun_path)
    r = -ENAMETOOLONG;   /* the host path does not fit: a known limit */
  tracer_action a = TR_CONTINUE;
  if (r == 0)
    {
      memset (sun.sun_path, 0, sizeof sun.sun_path);
      memcpy (sun.sun_path, p.host, strlen (p.host));
      int e = 0;
      unsigned long at = tracer_scratch_put (&c->scratch, &sun, sizeof sun, &e);
      if (!at)
        r = -e;
      else
        {
          tracer_set_arg (&c->regs, 1, at);
          tracer_set_arg (&c->regs, 2, off + strlen (p.host) + 1);
          if (c->sc == TSC_BIND)
            a = tracer_want_change (c, TRACER_CHANGE_CREATE, &p, NULL, 0);
        }
    }
  if (r < 0)
    a = fail (c, r);
  tracer_path_clear (&p);
  return a;
}

/* ---- cwd and links ---- */

static tracer_action
sys_getcwd (tracer_call *c)
{
  autofree char *g = tracer_guest_cwd (c->t, c->te->tid);
  if (!g)
    return fail (c, -errno);
  size_t n = strlen (g) + 1;
  if (n > arg (c, 1))
    return fail (c, -ERANGE);
  if (tracer_mem_write (c->te->tid, arg (c, 0), g, n) < 0)
    return fail (c, -EFAULT);
  return fail (c, (long) n);
}

/* /proc/PID/... of one of the step's processes, where PID is the tracee's
 * "self": the host path the tracer may read for it, or NULL (then the
 * kernel answers in the tracee's context, Landlock deciding). */
static char *
proc_for_tracer (tracer_call *c, const char *host)
{
  const char *rest;
  pid_t pid;
  char *end;
  if (strncmp (host, "/proc/self/", 11) == 0)
    return xasprintf ("/proc/%d/%s", (int) c->te->tgid, host + 11);
  if (strncmp (host, "/proc/thread-self/", 18) == 0)
    return xasprintf ("/proc/%d/task/%d/%s", (int) c->te->tgid, (int) c->te->tid, host + 18);
  if (strncmp (host, "/proc/", 6) != 0)
    return NULL;
  pid = (pid_t) strtol (host + 6, &end, 10);
  rest = end;
  if (pid <= 0 || *rest != '/')
    return NULL;
  tracee *te = tracer_find (c->t, pid);
  if (!te)
    return NULL;
  return xstrdup (host);
}

/* readlink of a /proc magic link (cwd, root, exe, fd/N): the kernel's
 * answer is a host path; the tracee gets the guest path. */
static tracer_action
sys_readlink_proc (tracer_call *c, const tracer_path *p, int buf_arg, int size_arg)
{
  autofree char *mine = proc_for_tracer (c, p->host);
  if (!mine)
    return TR_CONTINUE;
  autofree char *target = read_link_path (mine);
  if (!target)
    return fail (c, -errno);
  autofree char *g = target[0] == '/' ? tracer_host_to_guest (&c->t->fs, target) : NULL;
  const char *shown = g ? g : target;
  size_t n = strlen (shown), size = arg (c, size_arg);
  if ((long) size <= 0)
    return fail (c, -EINVAL);
  if (n > size)
    n = size;
  if (tracer_mem_write (c->te->tid, arg (c, buf_arg), shown, n) < 0)
    return fail (c, -EFAULT);
  return fail (c, (long) n);
}

static tracer_action
sys_readlink (tracer_call *c, int dirfd, int path_arg)
{
  tracer_path p;
  int r = tracer_resolve_at (c, dirfd, arg (c, path_arg), TR_EXISTING, false, &p);
  if (r == 0 && !p.bind && p.fd < 0)
    r = -ENOENT;
  tracer_action a = TR_CONTINUE;
  if (r == 0 && p.bind && strcmp (p.bind->guest, "/proc") == 0 && proc_for_tracer (c, p.host))
    a = sys_readlink_proc (c, &p, path_arg + 1, path_arg + 2);
  else if (r == 0)
    r = tracer_set_path_arg (c, path_arg, p.host);
  if (r < 0)
    a = fail (c, r);
  tracer_path_clear (&p);
  return a;
}

/* ---- dispatch ---- */

static int
at_follow (int flags, int nofollow_flag)
{
  return (flags & nofollow_flag) ? 0 : TR_FOLLOW;
}

tracer_action
tracer_sys (tracer_call *c)
{
  switch (c->sc)
    {
    case TSC_OPEN: return sys_open (c, AT_FDCWD, 0, iarg (c, 1));
    case TSC_OPENAT: return sys_open (c, iarg (c, 0), 1, iarg (c, 2));
    case TSC_CREAT: return sys_open (c, AT_FDCWD, 0, O_CREAT | O_WRONLY | O_TRUNC);
    case TSC_OPENAT2: return sys_openat2 (c);
    case TSC_TRUNCATE: return sys_truncate (c);
    case TSC_ACCESS: return sys_pass (c, AT_FDCWD, 0, TR_FOLLOW, true);
    case TSC_FACCESSAT: return sys_pass (c, iarg (c, 0), 1, TR_FOLLOW, true);
    case TSC_FACCESSAT2: return sys_pass (c, iarg (c, 0), 1, at_follow (iarg (c, 3), AT_SYMLINK_NOFOLLOW), true);
    case TSC_READLINK: return sys_readlink (c, AT_FDCWD, 0);
    case TSC_READLINKAT: return sys_readlink (c, iarg (c, 0), 1);
    case TSC_CHDIR: return sys_pass (c, AT_FDCWD, 0, TR_FOLLOW | TR_DIR, true);
    case TSC_GETCWD: return sys_getcwd (c);
    case TSC_MKDIR: return sys_create (c, AT_FDCWD, 0);
    case TSC_MKDIRAT: return sys_create (c, iarg (c, 0), 1);
    case TSC_MKNOD: return tracer_mknod (c, AT_FDCWD, 0);
    case TSC_MKNODAT: return tracer_mknod (c, iarg (c, 0), 1);
    case TSC_RMDIR: return sys_remove (c, AT_FDCWD, 0);
    case TSC_UNLINK: return sys_remove (c, AT_FDCWD, 0);
    case TSC_UNLINKAT: return sys_remove (c, iarg (c, 0), 1);
    case TSC_RENAME: return sys_two (c, AT_FDCWD, 0, 0, AT_FDCWD, 1, 0, false);
    case TSC_RENAMEAT: return sys_two (c, iarg (c, 0), 1, 0, iarg (c, 2), 3, 0, false);
    case TSC_RENAMEAT2: return sys_two (c, iarg (c, 0), 1, 0, iarg (c, 2), 3, (unsigned) iarg (c, 4), false);
    case TSC_LINK: return sys_two (c, AT_FDCWD, 0, 0, AT_FDCWD, 1, 0, true);
    case TSC_LINKAT:
      return sys_two (c, iarg (c, 0), 1, (iarg (c, 4) & AT_SYMLINK_FOLLOW) ? TR_FOLLOW : 0, iarg (c, 2), 3,
                      (unsigned) iarg (c, 4), true);
    case TSC_SYMLINK: return sys_create (c, AT_FDCWD, 1);
    case TSC_SYMLINKAT: return sys_create (c, iarg (c, 1), 2);
    case TSC_STATFS: return sys_pass (c, AT_FDCWD, 0, TR_FOLLOW, true);
    case TSC_INOTIFY_ADD_WATCH:
      return sys_pass (c, AT_FDCWD, 1, (arg (c, 2) & IN_DONT_FOLLOW) ? 0 : TR_FOLLOW, true);
    case TSC_GETXATTR: case TSC_LGETXATTR: case TSC_FGETXATTR:
    case TSC_LISTXATTR: case TSC_LLISTXATTR: case TSC_FLISTXATTR:
    case TSC_SETXATTR: case TSC_LSETXATTR: case TSC_FSETXATTR:
    case TSC_REMOVEXATTR: case TSC_LREMOVEXATTR: case TSC_FREMOVEXATTR:
      return tracer_xattr (c);
    case TSC_BIND: case TSC_CONNECT: return sys_sockaddr (c);
    default: return tracer_meta (c);
    }
}
