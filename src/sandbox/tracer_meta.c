/* tracer_meta.c - metadata calls, emulated by the tracer: stat & co. show
 * what ops->present says (ops NULL: the real status, files owned by kiln's
 * uid shown as the fake root's, owners set by chown within the step
 * remembered in memory); chmod, chown, utimes and device nodes go through
 * the ops and never reach the kernel from the step. With ops NULL the
 * tracer itself changes mode and times, on the fd it resolved inside the
 * root, and only where the step could (kiln's uid owns the file) and
 * never setting setuid/setgid on a real file. */
#include "sandbox/tracer_internal.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

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

static tracer_action
done (tracer_call *c, long r)
{
  tracer_skip (&c->regs, r);
  return TR_CONTINUE;
}

static const char *
rel (const char *guest)
{
  return guest + strspn (guest, "/");
}

/* ---- the ops-NULL owner table ---- */

static struct owner_rec *
owner_find (tracer *t, dev_t dev, ino_t ino)
{
  for (size_t i = 0; i < t->n_owners; i++)
    if (t->owners[i].dev == dev && t->owners[i].ino == ino)
      return &t->owners[i];
  return NULL;
}

static void
owner_set (tracer *t, const struct stat *st, uid_t uid, gid_t gid)
{
  struct owner_rec *o = owner_find (t, st->st_dev, st->st_ino);
  if (!o)
    {
      t->owners = xreallocarray (t->owners, t->n_owners + 1, sizeof *t->owners);
      o = &t->owners[t->n_owners++];
      *o = (struct owner_rec){ st->st_dev, st->st_ino, st->st_uid == t->kiln_uid ? 0 : st->st_uid,
                               st->st_gid == t->kiln_gid ? 0 : st->st_gid };
    }
  if (uid != (uid_t) -1)
    o->uid = uid;
  if (gid != (gid_t) -1)
    o->gid = gid;
}

void
tracer_owner_seed (tracer *t, const char *host, uid_t uid, gid_t gid)
{
  struct stat st;
  if (stat (host, &st) == 0)
    owner_set (t, &st, uid, gid);
}

/* What the step sees of a file whose real status is *real. */
static void
show (tracer *t, const struct stat *real, bool in_root, struct stat *shown)
{
  const tracer_config *cfg = t->cfg;
  *shown = *real;
  if (in_root && cfg->ops && cfg->ops->present)
    {
      cfg->ops->present (cfg->ops_ctx, real, shown);
      return;
    }
  struct owner_rec *o = owner_find (t, real->st_dev, real->st_ino);
  if (o)
    {
      shown->st_uid = o->uid;
      shown->st_gid = o->gid;
      return;
    }
  if (real->st_uid == t->kiln_uid)
    shown->st_uid = 0;
  if (real->st_gid == t->kiln_gid)
    shown->st_gid = 0;
}

/* ---- the object of a call: a resolved path or one of the tracee's fds ---- */


void
tracer_target_clear (tracer_target *tg)
{
  tracer_path_clear (&tg->p);
  if (tg->owned_fd >= 0)
    close (tg->owned_fd);
  free (tg->guest);
}

/* The tracee's fd, as an O_PATH fd of ours. Through /proc/TID/fd/N, not
 * pidfd_getfd: Docker's default profile allows pidfd_getfd only with
 * CAP_SYS_PTRACE, and one open is cheaper than pidfd_open + getfd. */
static int
tracee_fd (tracer_call *c, int fd, tracer_target *tg)
{
  memset (tg, 0, sizeof *tg);
  tg->p.dirfd = tg->p.fd = tg->owned_fd = -1;
  char proc[64];
  snprintf (proc, sizeof proc, "/proc/%d/fd/%d", (int) c->te->tid, fd);
  int mine = open (proc, O_PATH | O_CLOEXEC);
  if (mine < 0)
    return errno == ENOENT ? -EBADF : -errno;
  tg->fd = tg->owned_fd = mine;
  char link[64], host[PATH_MAX];
  snprintf (link, sizeof link, "/proc/self/fd/%d", mine);
  ssize_t n = readlink (link, host, sizeof host - 1);
  struct stat st;
  if (n > 0 && host[0] == '/' && fstat (mine, &st) == 0)
    {
      host[n] = '\0';
      tg->guest = tracer_host_to_guest (&c->t->fs, host);
      /* in a bind? Then it is not the root's. */
      tg->in_root = tg->guest && tracer_fs_in_root (&c->t->fs, &st, link);
    }
  if (!tg->guest)
    tg->guest = xstrdup ("");
  return 0;
}

/* The status of the tracee's fd (AT_FDCWD: its cwd) through the magic
 * link, and whether the object is the root's: one stat, no open. */
static int
tracee_fd_stat (tracer_call *c, int fd, struct stat *st, bool *in_root)
{
  char proc[64];
  if (fd == AT_FDCWD)
    snprintf (proc, sizeof proc, "/proc/%d/cwd", (int) c->te->tid);
  else
    snprintf (proc, sizeof proc, "/proc/%d/fd/%d", (int) c->te->tid, fd);
  if (stat (proc, st) < 0)
    return -errno;
  *in_root = tracer_fs_in_root (&c->t->fs, st, proc);
  return 0;
}

/* Whether the call's path argument is "" (the fd form of AT_EMPTY_PATH). */
static bool
empty_path (tracer_call *c, unsigned long path_addr)
{
  char first = 1;
  return path_addr != 0 && tracer_mem_read (c->te->tid, path_addr, &first, 1) == 0 && first == '\0';
}

/* A bind whose status the kernel gives in the tracee's context: /proc
 * (/proc/self is the tracee) and read-only binds. A writable bind (a cache
 * mount, a tmpfs) is stat'ed here so that the owners its files were given
 * (remembered for the run) show, as fstat of its fds does. */
static bool
bind_kernel_stat (const tracer_bind *b)
{
  return !b->writable || strcmp (b->guest, "/proc") == 0 || strncmp (b->guest, "/proc/", 6) == 0;
}

/* A path form: dirfd/path with flags; AT_EMPTY_PATH (empty_ok) and a
 * dirfd-only form (path_addr 0) act on the fd. */
int
tracer_target_resolve (tracer_call *c, int dirfd, unsigned long path_addr, int flags, bool empty_ok,
                       tracer_target *tg)
{
  if (path_addr == 0 && empty_ok)
    return tracee_fd (c, dirfd, tg);
  if (empty_ok)
    {
      char first = 1;
      if (tracer_mem_read (c->te->tid, path_addr, &first, 1) == 0 && first == '\0')
        return tracee_fd (c, dirfd, tg);
    }
  memset (tg, 0, sizeof *tg);
  tg->owned_fd = -1;
  int r = tracer_resolve_at (c, dirfd, path_addr, flags | TR_EXISTING, false, &tg->p);
  if (r < 0)
    return r;
  tg->fd = tg->p.fd;
  tg->in_root = tg->p.bind == NULL;
  tg->guest = xstrdup (tg->p.guest);
  if (tg->p.bind && bind_kernel_stat (tg->p.bind))
    return 0;   /* fd -1: the kernel's, through the host path */
  if (tg->p.bind)
    {
      int fd = tracer_path_bind_open (&c->t->fs, &tg->p, (flags & TR_FOLLOW) != 0);
      if (fd < 0)
        return fd;
      tg->fd = tg->owned_fd = fd;
    }
  if (tg->fd < 0)
    return -ENOENT;
  return 0;
}

/* ---- stat ---- */

static tracer_action
put_stat (tracer_call *c, int fd, bool in_root, unsigned long buf)
{
  struct stat st, shown;
  if (fstat (fd, &st) < 0)
    return done (c, -errno);
  show (c->t, &st, in_root, &shown);
  if (tracer_mem_write (c->te->tid, buf, &shown, sizeof shown) < 0)
    return done (c, -EFAULT);
  return done (c, 0);
}

static tracer_action
stat_fd (tracer_call *c, int fd, unsigned long buf)
{
  struct stat st, shown;
  bool in_root = false;
  if (tracee_fd_stat (c, fd, &st, &in_root) < 0)
    return TR_CONTINUE;   /* the kernel says why (EBADF) */
  show (c->t, &st, in_root, &shown);
  if (tracer_mem_write (c->te->tid, buf, &shown, sizeof shown) < 0)
    return done (c, -EFAULT);
  return done (c, 0);
}

static tracer_action
sys_stat (tracer_call *c, int dirfd, int path_arg, int flags, bool empty_ok, int buf_arg)
{
  if (empty_ok && empty_path (c, arg (c, path_arg)))
    return stat_fd (c, dirfd, arg (c, buf_arg));
  tracer_target tg;
  int r = tracer_target_resolve (c, dirfd, arg (c, path_arg), flags, empty_ok, &tg);
  tracer_action a;
  if (r == 0 && tg.p.bind && bind_kernel_stat (tg.p.bind))
    {
      /* the kernel's, in the tracee's context (/proc/self) */
      r = tracer_set_path_arg (c, path_arg, tg.p.host);
      a = r < 0 ? done (c, r) : TR_CONTINUE;
    }
  else if (r < 0)
    a = done (c, r);
  else
    a = put_stat (c, tg.fd, tg.in_root, arg (c, buf_arg));
  tracer_target_clear (&tg);
  return a;
}

static tracer_action
sys_fstat (tracer_call *c)
{
  if (iarg (c, 0) < 0)
    return TR_CONTINUE;   /* EBADF, the kernel's */
  return stat_fd (c, iarg (c, 0), arg (c, 1));
}

static tracer_action
sys_statx (tracer_call *c)
{
  int dirfd = iarg (c, 0), flags = iarg (c, 2);
  tracer_target tg;
  int r = tracer_target_resolve (c, dirfd, arg (c, 1), (flags & AT_SYMLINK_NOFOLLOW) ? 0 : TR_FOLLOW,
                          (flags & AT_EMPTY_PATH) != 0, &tg);
  tracer_action a;
  if (r == 0 && tg.p.bind && bind_kernel_stat (tg.p.bind))
    {
      r = tracer_set_path_arg (c, 1, tg.p.host);
      a = r < 0 ? done (c, r) : TR_CONTINUE;
    }
  else if (r < 0)
    a = done (c, r);
  else
    {
      struct statx stx;
      struct stat st, shown;
      if (statx (tg.fd, "", AT_EMPTY_PATH | (flags & AT_STATX_SYNC_TYPE), (unsigned) iarg (c, 3), &stx) < 0
          || fstat (tg.fd, &st) < 0)
        a = done (c, -errno);
      else
        {
          show (c->t, &st, tg.in_root, &shown);
          stx.stx_uid = shown.st_uid;
          stx.stx_gid = shown.st_gid;
          stx.stx_mode = (uint16_t) shown.st_mode;
          stx.stx_rdev_major = major (shown.st_rdev);
          stx.stx_rdev_minor = minor (shown.st_rdev);
          stx.stx_mtime.tv_sec = shown.st_mtim.tv_sec;
          stx.stx_mtime.tv_nsec = (uint32_t) shown.st_mtim.tv_nsec;
          stx.stx_atime.tv_sec = shown.st_atim.tv_sec;
          stx.stx_atime.tv_nsec = (uint32_t) shown.st_atim.tv_nsec;
          a = tracer_mem_write (c->te->tid, arg (c, 4), &stx, sizeof stx) < 0 ? done (c, -EFAULT) : done (c, 0);
        }
    }
  tracer_target_clear (&tg);
  return a;
}

/* ---- chmod, chown, utimes ---- */

/* The step could do it itself: it owns the file (kiln's uid). */
static int
check_owner (tracer *t, int fd, struct stat *st)
{
  if (fstat (fd, st) < 0)
    return -errno;
  return st->st_uid == t->kiln_uid ? 0 : -EPERM;
}

static void
meta_changed (tracer_call *c, tracer_target *tg)
{
  const tracer_config *cfg = c->t->cfg;
  if (!cfg->ops || !cfg->ops->changed || !tg->in_root)
    return;
  tracer_change ch = { .kind = TRACER_CHANGE_META, .path = rel (tg->guest), .uid = c->te->creds->fsuid,
                       .gid = c->te->creds->fsgid };
  cfg->ops->changed (cfg->ops_ctx, &ch);
}

/* A target outside the root that a step may change for real: in a
 * writable bind (a cache mount, a tmpfs), 0; read-only, -EROFS; not a
 * bind's (a pipe, a socket), -EPERM. */
static int
bind_writable (tracer_call *c, const tracer_target *tg)
{
  const tracer_bind *b = tg->p.bind ? tg->p.bind : tracer_fs_bind_of (&c->t->fs, tg->guest);
  if (!b || tg->fd < 0)
    return -EPERM;
  return b->writable ? 0 : -EROFS;
}

/* chmod of a file in a writable bind: the kernel's, on the real file,
 * never with setuid/setgid (it outlives the step, owned by kiln's uid). */
static int
bind_chmod (tracer_call *c, tracer_target *tg, mode_t mode)
{
  int r = bind_writable (c, tg);
  if (r < 0)
    return r;
  struct stat st;
  if (fstat (tg->fd, &st) < 0)
    return -errno;
  if (S_ISLNK (st.st_mode))
    return -EOPNOTSUPP;
  char path[64];
  snprintf (path, sizeof path, "/proc/self/fd/%d", tg->fd);
  return chmod (path, mode & ~(mode_t) (S_ISUID | S_ISGID)) < 0 ? -errno : 0;
}

static int
do_chmod (tracer_call *c, tracer_target *tg, mode_t mode)
{
  const tracer_config *cfg = c->t->cfg;
  if (!tg->in_root)
    return bind_chmod (c, tg, mode & 07777);
  mode &= 07777;
  if (cfg->ops && cfg->ops->set_mode)
    return cfg->ops->set_mode (cfg->ops_ctx, tg->fd, rel (tg->guest), mode);
  struct stat st;
  int r = check_owner (c->t, tg->fd, &st);
  if (r < 0)
    return r;
  if (S_ISLNK (st.st_mode))
    return -EOPNOTSUPP;
  if (S_ISREG (st.st_mode))
    mode &= ~(mode_t) (S_ISUID | S_ISGID);   /* the real file is kiln's */
  char path[64];
  snprintf (path, sizeof path, "/proc/self/fd/%d", tg->fd);
  return chmod (path, mode) < 0 ? -errno : 0;
}

static int
do_chown (tracer_call *c, tracer_target *tg, uid_t uid, gid_t gid)
{
  const tracer_config *cfg = c->t->cfg;
  if (c->te->creds->euid != 0)
    return -EPERM;   /* only the fake root gives files away */
  if (tg->in_root && cfg->ops && cfg->ops->set_owner)
    return cfg->ops->set_owner (cfg->ops_ctx, tg->fd, rel (tg->guest), uid, gid);
  if (tg->fd < 0)
    return -EPERM;   /* /proc and read-only binds */
  /* ops NULL or outside the root: remembered for this run only */
  struct stat st;
  if (fstat (tg->fd, &st) < 0)
    return -errno;
  owner_set (c->t, &st, uid, gid);
  return 0;
}

static int
do_times (tracer_call *c, tracer_target *tg, struct timespec ts[2])
{
  const tracer_config *cfg = c->t->cfg;
  int r = tg->in_root ? 0 : bind_writable (c, tg);
  if (r < 0)
    return r;
  struct stat st;
  if (fstat (tg->fd, &st) < 0)
    return -errno;
  struct timespec now;
  clock_gettime (CLOCK_REALTIME, &now);
  for (int i = 0; i < 2; i++)
    if (ts[i].tv_nsec == UTIME_NOW)
      ts[i] = now;
    else if (ts[i].tv_nsec == UTIME_OMIT)
      ts[i] = i == 0 ? st.st_atim : st.st_mtim;
  if (tg->in_root && cfg->ops && cfg->ops->set_times)
    return cfg->ops->set_times (cfg->ops_ctx, tg->fd, rel (tg->guest), ts);
  r = tg->in_root ? check_owner (c->t, tg->fd, &st) : 0;
  if (r < 0)
    return r;
  char path[64];
  snprintf (path, sizeof path, "/proc/self/fd/%d", tg->fd);
  return utimensat (AT_FDCWD, path, ts, 0) < 0 ? -errno : 0;
}

/* The times argument of the utime family as two timespecs. */
static int
read_times (tracer_call *c, int buf_arg, struct timespec ts[2])
{
  unsigned long addr = arg (c, buf_arg);
  if (addr == 0)
    {
      ts[0].tv_nsec = ts[1].tv_nsec = UTIME_NOW;
      return 0;
    }
  pid_t tid = c->te->tid;
  if (c->sc == TSC_UTIMENSAT)
    return tracer_mem_read (tid, addr, ts, 2 * sizeof *ts) < 0 ? -EFAULT : 0;
  if (c->sc == TSC_UTIME)
    {
      struct utimbuf u;
      if (tracer_mem_read (tid, addr, &u, sizeof u) < 0)
        return -EFAULT;
      ts[0] = (struct timespec){ u.actime, 0 };
      ts[1] = (struct timespec){ u.modtime, 0 };
      return 0;
    }
  struct timeval tv[2];
  if (tracer_mem_read (tid, addr, tv, sizeof tv) < 0)
    return -EFAULT;
  for (int i = 0; i < 2; i++)
    {
      if (tv[i].tv_usec < 0 || tv[i].tv_usec >= 1000000)
        return -EINVAL;
      ts[i] = (struct timespec){ tv[i].tv_sec, tv[i].tv_usec * 1000 };
    }
  return 0;
}

typedef enum { M_CHMOD, M_CHOWN, M_TIMES } meta_op;

static tracer_action
sys_meta (tracer_call *c, meta_op op, int dirfd, unsigned long path_addr, int flags, bool empty_ok, int a0)
{
  /* fchown(2) and fchmod(2) refuse an O_PATH fd (EBADF); the *at forms
   * with AT_EMPTY_PATH take one */
  if ((c->sc == TSC_FCHOWN || c->sc == TSC_FCHMOD) && sandbox_fd_is_opath (c->te->tid, dirfd))
    return done (c, -EBADF);
  tracer_target tg;
  int r = tracer_target_resolve (c, dirfd, path_addr, flags, empty_ok, &tg);
  if (r == 0 && op == M_CHMOD)
    r = do_chmod (c, &tg, (mode_t) arg (c, a0));
  else if (r == 0 && op == M_CHOWN)
    r = do_chown (c, &tg, (uid_t) arg (c, a0), (gid_t) arg (c, a0 + 1));
  else if (r == 0)
    {
      struct timespec ts[2];
      r = read_times (c, a0, ts);
      if (r == 0)
        r = do_times (c, &tg, ts);
    }
  if (r == 0)
    meta_changed (c, &tg);
  tracer_target_clear (&tg);
  return done (c, r);
}

/* The tracee's umask (kernel >= 4.7 reports it in status), which the
 * kernel would apply to a node it made: the ops make it instead. */
static mode_t
tracee_umask (pid_t tid)
{
  char p[64], line[128];
  snprintf (p, sizeof p, "/proc/%d/status", (int) tid);
  autofclose FILE *f = fopen (p, "re");
  unsigned m;
  while (f && fgets (line, sizeof line, f))
    if (sscanf (line, "Umask: %o", &m) == 1)
      return (mode_t) (m & 0777);
  return 022;
}

tracer_action
tracer_mknod (tracer_call *c, int dirfd, int path_arg)
{
  const tracer_config *cfg = c->t->cfg;
  mode_t mode = (mode_t) arg (c, path_arg + 1);
  dev_t dev = (dev_t) arg (c, path_arg + 2);
  mode_t type = mode & S_IFMT;
  bool special = type == S_IFCHR || type == S_IFBLK || ((type == S_IFIFO || type == S_IFSOCK) && cfg->ops
                                                                                   && cfg->ops->mknod);
  if (!special && (type == S_IFCHR || type == S_IFBLK))
    return done (c, -EPERM);
  if (!special)
    {
      /* a fifo, socket or regular file: the kernel makes it */
      tracer_path p;
      int r = tracer_resolve_at (c, dirfd, arg (c, path_arg), 0, false, &p);
      if (r == 0 && (p.fd >= 0 || tracer_path_bind_root (&p)))
        r = -EEXIST;
      if (r == 0)
        r = tracer_set_path_arg (c, path_arg, p.host);
      tracer_action a = r < 0 ? done (c, r) : tracer_want_change (c, TRACER_CHANGE_CREATE, &p, NULL, 0);
      tracer_path_clear (&p);
      return a;
    }
  if (!cfg->ops || !cfg->ops->mknod)
    return done (c, -EPERM);   /* devices are never real nodes here */
  tracer_path p;
  int r = tracer_resolve_at (c, dirfd, arg (c, path_arg), 0, false, &p);
  if (r == 0 && (p.fd >= 0 || tracer_path_bind_root (&p)))
    r = -EEXIST;
  else if (r == 0 && p.bind)
    r = -EPERM;   /* a device in a bind would be a real node */
  mode = (mode & S_IFMT) | (mode & 07777 & ~tracee_umask (c->te->tid));
  if (r == 0)
    r = cfg->ops->mknod (cfg->ops_ctx, tracer_path_dirfd (&c->t->fs, &p), p.name, rel (p.guest), mode, dev,
                         c->te->creds->fsuid, c->te->creds->fsgid);
  if (r == 0 && cfg->ops->changed)
    {
      tracer_change ch = { .kind = TRACER_CHANGE_CREATE, .path = rel (p.guest), .uid = c->te->creds->fsuid,
                           .gid = c->te->creds->fsgid };
      cfg->ops->changed (cfg->ops_ctx, &ch);
    }
  tracer_path_clear (&p);
  return done (c, r);
}

tracer_action
tracer_meta (tracer_call *c)
{
  int d0 = iarg (c, 0);
  switch (c->sc)
    {
    case TSC_STAT: return sys_stat (c, AT_FDCWD, 0, TR_FOLLOW, false, 1);
    case TSC_LSTAT: return sys_stat (c, AT_FDCWD, 0, 0, false, 1);
    case TSC_NEWFSTATAT:
      return sys_stat (c, d0, 1, (iarg (c, 3) & AT_SYMLINK_NOFOLLOW) ? 0 : TR_FOLLOW,
                       (iarg (c, 3) & AT_EMPTY_PATH) != 0, 2);
    case TSC_STATX: return sys_statx (c);
    case TSC_FSTAT: return sys_fstat (c);
    case TSC_CHMOD: return sys_meta (c, M_CHMOD, AT_FDCWD, arg (c, 0), TR_FOLLOW, false, 1);
    case TSC_FCHMOD: return sys_meta (c, M_CHMOD, d0, 0, 0, true, 1);
    case TSC_FCHMODAT: return sys_meta (c, M_CHMOD, d0, arg (c, 1), TR_FOLLOW, false, 2);
    case TSC_FCHMODAT2:
      return sys_meta (c, M_CHMOD, d0, arg (c, 1), (iarg (c, 3) & AT_SYMLINK_NOFOLLOW) ? 0 : TR_FOLLOW,
                       (iarg (c, 3) & AT_EMPTY_PATH) != 0, 2);
    case TSC_CHOWN: return sys_meta (c, M_CHOWN, AT_FDCWD, arg (c, 0), TR_FOLLOW, false, 1);
    case TSC_LCHOWN: return sys_meta (c, M_CHOWN, AT_FDCWD, arg (c, 0), 0, false, 1);
    case TSC_FCHOWN: return sys_meta (c, M_CHOWN, d0, 0, 0, true, 1);
    case TSC_FCHOWNAT:
      return sys_meta (c, M_CHOWN, d0, arg (c, 1), (iarg (c, 4) & AT_SYMLINK_NOFOLLOW) ? 0 : TR_FOLLOW,
                       (iarg (c, 4) & AT_EMPTY_PATH) != 0, 2);
    case TSC_UTIME: return sys_meta (c, M_TIMES, AT_FDCWD, arg (c, 0), TR_FOLLOW, false, 1);
    case TSC_UTIMES: return sys_meta (c, M_TIMES, AT_FDCWD, arg (c, 0), TR_FOLLOW, false, 1);
    case TSC_FUTIMESAT: return sys_meta (c, M_TIMES, d0, arg (c, 1), TR_FOLLOW, arg (c, 1) == 0, 2);
    case TSC_UTIMENSAT:
      return sys_meta (c, M_TIMES, d0, arg (c, 1), (iarg (c, 3) & AT_SYMLINK_NOFOLLOW) ? 0 : TR_FOLLOW,
                       arg (c, 1) == 0 || (iarg (c, 3) & AT_EMPTY_PATH), 2);
    default: return done (c, -ENOSYS);
    }
}
