/* sandbox_child.c - the sandbox's child side: the helper (user namespace,
 * then the other namespaces), the step's init (root filesystem, /proc,
 * /dev, /sys, RUN --mount mounts, pivot_root, reaping) and the step's
 * process (ids, capabilities, seccomp, exec); the mount points a root
 * filesystem must provide. Nothing here returns on failure: errors go to
 * the error pipe (sandbox_child_die). */
#include "sandbox/sandbox_internal.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- mount points ---- */

static const sandbox_mountpoint mountpoints[] = {
  { "proc", true }, { "dev", true }, { "sys", true },
  { "etc/resolv.conf", false }, { "etc/hosts", false }, { "etc/hostname", false },
};

size_t
sandbox_mountpoints (const sandbox_mountpoint **out)
{
  *out = mountpoints;
  return ARRAY_SIZE (mountpoints);
}

static int
openat2_beneath (int dirfd, const char *path, int flags, mode_t mode)
{
  struct open_how how = { .flags = (uint64_t) flags | O_CLOEXEC, .mode = mode,
                          .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
  int fd;
  do
    fd = (int) syscall (SYS_openat2, dirfd, path, &how, sizeof how);
  while (fd < 0 && errno == EINTR);
  return fd;
}

int
sandbox_prepare_mountpoints (int rootfs_fd, char ***created, kiln_error **err)
{
  for (size_t i = 0; i < ARRAY_SIZE (mountpoints); i++)
    {
      const char *p = mountpoints[i].path;
      const char *slash = strchr (p, '/');
      if (slash)
        {
          autofree char *parent = xstrndup (p, (size_t) (slash - p));
          autoclose int pfd = openat2_beneath (rootfs_fd, parent, O_PATH | O_DIRECTORY, 0);
          if (pfd < 0 && errno == ENOENT)
            {
              if (mkdirat (rootfs_fd, parent, 0755) < 0)
                return kiln_error_make (err, errno, "create mount point parent '/%s'", parent);
              strv_push (created, parent);
            }
          else if (pfd < 0)
            return kiln_error_make (err, errno, "open '/%s' in the root filesystem (symlinks are refused)",
                                    parent);
        }
      autoclose int fd = openat2_beneath (rootfs_fd, p, O_PATH, 0);
      if (fd >= 0)
        {
          struct stat st;
          if (fstat (fd, &st) < 0)
            return kiln_error_make (err, errno, "stat '/%s'", p);
          if (mountpoints[i].is_dir ? !S_ISDIR (st.st_mode) : !S_ISREG (st.st_mode))
            return kiln_error_make (err, 0, "mount point '/%s' in the root filesystem is not a %s", p,
                                    mountpoints[i].is_dir ? "directory" : "regular file");
          continue;
        }
      if (errno != ENOENT)
        return kiln_error_make (err, errno, "open '/%s' in the root filesystem (symlinks are refused)", p);
      if (mountpoints[i].is_dir)
        {
          if (mkdirat (rootfs_fd, p, 0755) < 0)
            return kiln_error_make (err, errno, "create mount point '/%s'", p);
        }
      else
        {
          int nfd = openat2_beneath (rootfs_fd, p, O_CREAT | O_EXCL | O_WRONLY, 0644);
          if (nfd < 0)
            return kiln_error_make (err, errno, "create mount point '/%s'", p);
          close (nfd);
        }
      strv_push (created, p);
    }
  return 0;
}

void
sandbox_remove_mountpoints (int rootfs_fd, char **created)
{
  for (size_t n = strv_len (created); n > 0; n--)
    {
      const char *p = created[n - 1];
      struct stat st;
      if (fstatat (rootfs_fd, p, &st, AT_SYMLINK_NOFOLLOW) < 0)
        continue;
      if (S_ISDIR (st.st_mode))
        unlinkat (rootfs_fd, p, AT_REMOVEDIR); /* fails, as it should, unless empty */
      else if (S_ISREG (st.st_mode) && st.st_size == 0)
        unlinkat (rootfs_fd, p, 0);
    }
}

/* ---- child side (no return; errors go to the error pipe) ---- */

void __attribute__ ((noreturn, format (printf, 3, 4)))
sandbox_child_die (child_ctx *c, int errnum, const char *fmt, ...)
{
  char buf[1024];
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  if (n < 0)
    n = 0;
  if ((size_t) n >= sizeof buf)
    n = sizeof buf - 1;
  char msg[1100];
  int m = snprintf (msg, sizeof msg, "%d:%.*s", errnum, n, buf);
  if (write (c->err_fd, msg, (size_t) m) < 0)
    { /* nothing more to do */ }
  _exit (SETUP_FAILED);
}

static const char *
fdpath (char *buf, size_t n, int fd)
{
  snprintf (buf, n, "/proc/self/fd/%d", fd);
  return buf;
}

/* Attach a copy of the mount tree at src over dst, optionally read-only. */
static int
bind_at (int src, const char *src_path, int dst, bool recursive, bool ro)
{
  unsigned fl = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
  if (src_path == NULL || *src_path == '\0')
    fl |= AT_EMPTY_PATH;
  autoclose int tree = open_tree (src, src_path ? src_path : "", fl);
  if (tree < 0)
    return -1;
  if (ro)
    {
      struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY };
      if (mount_setattr (tree, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof a) < 0)
        return -1;
    }
  return move_mount (tree, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

static int
open_in_root (child_ctx *c, int root, const char *p, int flags)
{
  int fd = openat2_beneath (root, p, O_PATH | flags, 0);
  if (fd < 0)
    sandbox_child_die (c, errno, "open mount point '/%s' (it must exist; symlinks are refused)", p);
  return fd;
}

static void
setup_proc (child_ctx *c, int root)
{
  static const char *const masked[] = { "asound", "acpi", "kcore", "keys", "latency_stats", "timer_list",
                                        "timer_stats", "sched_debug", "scsi", NULL };
  static const char *const readonly[] = { "bus", "fs", "irq", "sys", "sysrq-trigger", NULL };
  char b[64];
  autoclose int t = open_in_root (c, root, "proc", O_DIRECTORY);
  if (mount ("proc", fdpath (b, sizeof b, t), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    sandbox_child_die (c, errno, "mount proc on '/proc'");
  autoclose int p = open_in_root (c, root, "proc", O_DIRECTORY);
  autoclose int null = open ("/dev/null", O_PATH | O_CLOEXEC);
  for (const char *const *m = masked; *m; m++)
    {
      autoclose int f = openat (p, *m, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (f < 0)
        continue;
      struct stat st;
      if (fstat (f, &st) < 0)
        sandbox_child_die (c, errno, "stat '/proc/%s'", *m);
      if (S_ISDIR (st.st_mode))
        {
          if (mount ("tmpfs", fdpath (b, sizeof b, f), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     "size=0")
              < 0)
            sandbox_child_die (c, errno, "mask '/proc/%s'", *m);
        }
      else if (bind_at (null, NULL, f, false, true) < 0)
        sandbox_child_die (c, errno, "mask '/proc/%s'", *m);
    }
  for (const char *const *m = readonly; *m; m++)
    {
      autoclose int f = openat (p, *m, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (f < 0)
        continue;
      if (bind_at (f, NULL, f, true, true) < 0)
        sandbox_child_die (c, errno, "make '/proc/%s' read-only", *m);
    }
}

static void
setup_sys (child_ctx *c, int root)
{
  char b[64];
  autoclose int t = open_in_root (c, root, "sys", O_DIRECTORY);
  if (c->cfg->network != SANDBOX_NET_HOST
      && mount ("sysfs", fdpath (b, sizeof b, t), "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)
           == 0)
    return;
  /* sysfs can only be mounted in a network namespace of our own; otherwise
   * bind the host's, read-only. */
  autoclose int src = open ("/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (src < 0 || bind_at (src, NULL, t, true, true) < 0)
    sandbox_child_die (c, errno, "mount '/sys' read-only");
}

static void
write_file_at (child_ctx *c, int dir, const char *name, const char *content, mode_t mode)
{
  autoclose int fd = openat (dir, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0)
    sandbox_child_die (c, errno, "create '/dev/%s'", name);
  size_t len = strlen (content), done = 0;
  while (done < len)
    {
      ssize_t n = write (fd, content + done, len - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        sandbox_child_die (c, errno, "write '/dev/%s'", name);
      done += (size_t) n;
    }
}

static void
setup_dev (child_ctx *c, int root)
{
  static const char *const devs[] = { "null", "zero", "full", "random", "urandom", "tty", NULL };
  static const char *const links[][2] = { { "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
                                          { "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" },
                                          { "ptmx", "pts/ptmx" }, { "core", "/proc/kcore" } };
  char b[64];
  autoclose int t = open_in_root (c, root, "dev", O_DIRECTORY);
  if (mount ("tmpfs", fdpath (b, sizeof b, t), "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k") < 0)
    sandbox_child_die (c, errno, "mount tmpfs on '/dev'");
  autoclose int d = open_in_root (c, root, "dev", O_DIRECTORY);
  autoclose int dw = openat (d, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dw < 0)
    sandbox_child_die (c, errno, "open '/dev'");
  for (const char *const *n = devs; *n; n++)
    {
      char hp[32];
      snprintf (hp, sizeof hp, "/dev/%s", *n);
      autoclose int src = open (hp, O_PATH | O_CLOEXEC);
      if (src < 0)
        continue;
      write_file_at (c, dw, *n, "", 0666);
      autoclose int dst = openat (dw, *n, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (dst < 0 || bind_at (src, NULL, dst, false, false) < 0)
        sandbox_child_die (c, errno, "bind '%s' into the step", hp);
    }
  for (size_t i = 0; i < ARRAY_SIZE (links); i++)
    if (symlinkat (links[i][1], dw, links[i][0]) < 0)
      sandbox_child_die (c, errno, "symlink '/dev/%s'", links[i][0]);
  if (mkdirat (dw, "pts", 0755) < 0 || mkdirat (dw, "shm", 01777) < 0)
    sandbox_child_die (c, errno, "mkdir in '/dev'");
  autoclose int pts = openat (dw, "pts", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (pts < 0
      || mount ("devpts", fdpath (b, sizeof b, pts), "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620")
           < 0)
    sandbox_child_die (c, errno, "mount devpts on '/dev/pts'");
  autoclose int shm = openat (dw, "shm", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (shm < 0
      || mount ("shm", fdpath (b, sizeof b, shm), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "mode=1777,size=65536k")
           < 0)
    sandbox_child_die (c, errno, "mount tmpfs on '/dev/shm'");

  /* Generated /etc files: written to the /dev tmpfs, bind-mounted over the
   * image's files, then unlinked so /dev shows nothing extra. */
  const char *files[][2] = { { "resolv.conf", c->resolv }, { "hosts", c->hosts },
                             { "hostname", c->hostname_file } };
  for (size_t i = 0; i < ARRAY_SIZE (files); i++)
    {
      char tmp[64], target[64];
      snprintf (tmp, sizeof tmp, ".kiln-%s", files[i][0]);
      snprintf (target, sizeof target, "etc/%s", files[i][0]);
      write_file_at (c, dw, tmp, files[i][1], 0644);
      autoclose int dst = open_in_root (c, root, target, 0);
      struct stat st;
      if (fstat (dst, &st) < 0 || !S_ISREG (st.st_mode))
        sandbox_child_die (c, 0, "'/%s' in the root filesystem is not a regular file", target);
      if (bind_at (dw, tmp, dst, false, false) < 0)
        sandbox_child_die (c, errno, "bind generated '/%s'", target);
      if (unlinkat (dw, tmp, 0) < 0)
        sandbox_child_die (c, errno, "unlink '/dev/%s'", tmp);
    }
}

static void
loopback_up (child_ctx *c)
{
  autoclose int s = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr;
  memset (&ifr, 0, sizeof ifr);
  strcpy (ifr.ifr_name, "lo");
  if (s < 0 || ioctl (s, SIOCGIFFLAGS, &ifr) < 0)
    sandbox_child_die (c, errno, "get flags of 'lo'");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl (s, SIOCSIFFLAGS, &ifr) < 0)
    sandbox_child_die (c, errno, "bring 'lo' up");
}

static void
exec_step (child_ctx *c)
{
  const sandbox_config *cfg = c->cfg;
  const char *path = NULL;
  for (char **e = cfg->env; e && *e; e++)
    if (strncmp (*e, "PATH=", 5) == 0)
      path = *e + 5;
  if (path == NULL)
    path = SANDBOX_DEFAULT_PATH;
  const char *file = cfg->argv[0];
  if (strchr (file, '/'))
    {
      execve (file, cfg->argv, cfg->env);
      sandbox_child_die (c, errno, "exec '%s'", file);
    }
  int saved = ENOENT;
  const char *p = path;
  while (*p)
    {
      const char *end = strchrnul (p, ':');
      char full[PATH_MAX];
      int n = snprintf (full, sizeof full, "%.*s/%s", (int) (end - p), p, file);
      if (n > 0 && (size_t) n < sizeof full && end > p)
        {
          execve (full, cfg->argv, cfg->env);
          if (errno != ENOENT && errno != ENOTDIR)
            saved = errno;
        }
      p = *end ? end + 1 : end;
    }
  sandbox_child_die (c, saved, "exec '%s' (searched PATH %s)", file, path);
}

static void __attribute__ ((noreturn))
worker_main (child_ctx *c)
{
  const sandbox_config *cfg = c->cfg;
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  setsid ();
  int devnull = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0 || dup2 (devnull, 0) < 0 || dup2 (c->out_w, 1) < 0 || dup2 (c->errs_w, 2) < 0)
    sandbox_child_die (c, errno, "set up standard streams");
  bool single = cfg->idmap->mode == SANDBOX_USERNS_SINGLE;
  for (cap_value_t v = 0; v <= CAP_LAST_CAP; v++)
    {
      bool keep = false;
      for (int i = 0; i < c->n_keep_bound; i++)
        keep |= c->keep_bound[i] == v;
      if (!keep && cap_drop_bound (v) < 0 && errno != EINVAL)
        sandbox_child_die (c, errno, "drop capability %d from the bounding set", (int) v);
    }
  uid_t uid = single ? 0 : cfg->uid;
  gid_t gid = single ? 0 : cfg->gid;
  if (!single && setgroups (cfg->n_groups, cfg->groups) < 0)
    sandbox_child_die (c, errno, "setgroups");
  if (setresgid (gid, gid, gid) < 0)
    sandbox_child_die (c, errno, "setresgid %u", (unsigned) gid);
  if (setresuid (uid, uid, uid) < 0)
    sandbox_child_die (c, errno, "setresuid %u", (unsigned) uid);
  prctl (PR_SET_PDEATHSIG, SIGKILL); /* cleared by the id change */
  if (cap_set_proc (c->caps) < 0)
    sandbox_child_die (c, errno, "set capabilities");
  cap_reset_ambient ();
  const char *cwd = cfg->cwd ? cfg->cwd : "/";
  if (chdir (cwd) < 0)
    sandbox_child_die (c, errno, "chdir to working directory '%s'", cwd);
  umask (022);
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    sandbox_child_die (c, errno, "PR_SET_NO_NEW_PRIVS");
  for (int s = 1; s < NSIG; s++)
    signal (s, SIG_DFL);
  /* The step starts with no signal blocked, whatever kiln's own mask (kiln
   * run holds SIGINT/SIGTERM while it has something to clean up): a mask
   * survives exec, and a step that cannot get SIGTERM breaks timeout(1),
   * shells and daemons' shutdown. */
  sigset_t none;
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
  close_range (3, ~0U, CLOSE_RANGE_CLOEXEC);
  sandbox_limits_child_rlimits (c);
  if (cfg->seccomp)
    {
      int r = seccomp_filter_load (cfg->seccomp);
      if (r < 0)
        sandbox_child_die (c, -r, "load the seccomp filter");
      if (cfg->seccomp->needs_listener)
        {
          /* Hand the listener to kiln's supervisor, then drop our copy. */
          if (sandbox_send_fd (c->sync_fd, 'L', r) < 0)
            sandbox_child_die (c, errno, "send the seccomp listener to kiln");
          close (r);
        }
    }
  exec_step (c);
  _exit (SETUP_FAILED);
}

void
sandbox_mount_fuse (child_ctx *c, const char *target, bool single, bool readonly)
{
  autoclose int fd = open ("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    sandbox_child_die (c, errno, "open '/dev/fuse' as the step's root (the device must be usable by "
                                 "unprivileged users: mode 0666, as distributions ship it)");
  /* Without allow_other only the host user of container 0 may use the
   * mount: the step in single mode (all its processes are container root)
   * and kiln's seccomp supervisor, which resolves chown targets on it. */
  char opts[160];
  snprintf (opts, sizeof opts, "fd=%d,rootmode=40000,user_id=0,group_id=0,default_permissions%s", fd,
            single ? "" : ",allow_other");
  unsigned long fl = MS_NOSUID | MS_NODEV | (readonly ? MS_RDONLY : 0);
  if (mount ("kiln", target, "fuse.kiln", fl, opts) < 0)
    sandbox_child_die (c, errno, "mount the FUSE root filesystem on '%s' in the step's namespaces", target);
  if (sandbox_send_fd (c->sync_fd, 'F', fd) < 0)
    sandbox_child_die (c, errno, "send the FUSE root filesystem's fd to kiln");
  if (sandbox_wait_ack (c->sync_fd) != 'A')
    _exit (SETUP_FAILED); /* kiln could not serve it and says why */
}

static void
mount_rootfs_fuse (child_ctx *c, const char *target)
{
  const sandbox_config *cfg = c->cfg;
  sandbox_mount_fuse (c, target, cfg->idmap->mode == SANDBOX_USERNS_SINGLE, cfg->rootfs_readonly);
}

/* mkdir -p the parents of rel inside root, then the target itself. */
static void
create_target (child_ctx *c, int root, const char *rel, bool is_dir)
{
  autofree char *p = xstrdup (rel);
  for (char *s = strchr (p, '/'); s; s = strchr (s + 1, '/'))
    {
      *s = '\0';
      autoclose int fd = openat2_beneath (root, p, O_PATH | O_DIRECTORY, 0);
      if (fd < 0 && (errno != ENOENT || mkdirat (root, p, 0755) < 0))
        sandbox_child_die (c, errno, "create mount target parent '/%s'", p);
      *s = '/';
    }
  if (is_dir)
    {
      if (mkdirat (root, p, 0755) < 0 && errno != EEXIST)
        sandbox_child_die (c, errno, "create mount target '/%s'", p);
      return;
    }
  int fd = openat2_beneath (root, p, O_CREAT | O_WRONLY, 0644);
  if (fd < 0)
    sandbox_child_die (c, errno, "create mount target '/%s'", p);
  close (fd);
}

/* A SANDBOX_MOUNT_FILE: write the data to a file on the step's own /dev
 * tmpfs (memory that dies with the step's mount namespace) and clone it as
 * a mount; file_unlink removes the name once the mount is attached (the
 * kernel attaches no mount of an unlinked file), so the step sees it only
 * at its target. */
static void
file_name (char *name, size_t size, size_t i)
{
  snprintf (name, size, ".kiln-file-%zu", i);
}

static int
file_tree (child_ctx *c, int root, const sandbox_mount *m, size_t i)
{
  autoclose int dev = openat2_beneath (root, "dev", O_PATH | O_DIRECTORY, 0);
  char name[48];
  file_name (name, sizeof name, i);
  autoclose int fd = dev < 0 ? -1 : openat (dev, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    sandbox_child_die (c, errno, "file for '%s'", m->target);
  kiln_error *e = NULL;
  if (fs_write_all (fd, m->data, m->data_len, &e) < 0)
    sandbox_child_die (c, e->status, "write the file for '%s'", m->target);
  if (fchmod (fd, m->file_mode) < 0 || fchown (fd, m->owner_uid, m->owner_gid) < 0)
    sandbox_child_die (c, errno, "give '%s' to %u:%u mode %o", m->target, (unsigned) m->owner_uid,
                       (unsigned) m->owner_gid, m->file_mode);
  int tree = open_tree (dev, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree < 0)
    sandbox_child_die (c, errno, "mount the file for '%s'", m->target);
  return tree;
}

static void
file_unlink (child_ctx *c, int root, const sandbox_mount *m, size_t i)
{
  autoclose int dev = openat2_beneath (root, "dev", O_PATH | O_DIRECTORY, 0);
  char name[48];
  file_name (name, sizeof name, i);
  if (dev < 0 || unlinkat (dev, name, 0) < 0)
    sandbox_child_die (c, errno, "remove the file for '%s' from /dev", m->target);
}

/* RUN --mount: attach each extra mount on its target inside the root. */
static void
setup_mounts (child_ctx *c, int root)
{
  const sandbox_config *cfg = c->cfg;
  for (size_t i = 0; i < cfg->n_mounts; i++)
    {
      const sandbox_mount *m = &cfg->mounts[i];
      const char *rel = m->target;
      while (*rel == '/')
        rel++;
      if (m->create)
        create_target (c, root, rel, m->target_is_dir);
      autoclose int target = openat2_beneath (root, rel, O_PATH | O_NOFOLLOW, 0);
      if (target < 0)
        sandbox_child_die (c, errno, "mount target '%s'", m->target);
      autoclose int tree = -1;
      switch (m->type)
        {
        case SANDBOX_MOUNT_BIND:
          tree = c->mount_trees[i];
          c->mount_trees[i] = -1;
          if (tree < 0)
            sandbox_child_die (c, errno, "bind-mount '%s' on '%s'", m->source, m->target);
          if (m->set_owner && fchownat (tree, "", m->owner_uid, m->owner_gid, AT_EMPTY_PATH) < 0)
            sandbox_child_die (c, errno, "give '%s' to %u:%u", m->target, (unsigned) m->owner_uid,
                               (unsigned) m->owner_gid);
          break;
        case SANDBOX_MOUNT_FILE:
          tree = file_tree (c, root, m, i);
          break;
        case SANDBOX_MOUNT_TMPFS:
          {
            autoclose int fs = fsopen ("tmpfs", FSOPEN_CLOEXEC);
            char opt[32];
            snprintf (opt, sizeof opt, "%o", m->tmpfs_mode ? m->tmpfs_mode : 01777);
            if (fs < 0 || fsconfig (fs, FSCONFIG_SET_STRING, "mode", opt, 0) < 0)
              sandbox_child_die (c, errno, "tmpfs for '%s'", m->target);
            if (m->tmpfs_size)
              {
                snprintf (opt, sizeof opt, "%lu", m->tmpfs_size);
                if (fsconfig (fs, FSCONFIG_SET_STRING, "size", opt, 0) < 0)
                  sandbox_child_die (c, errno, "tmpfs size for '%s'", m->target);
              }
            if (fsconfig (fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
              sandbox_child_die (c, errno, "tmpfs for '%s'", m->target);
            tree = fsmount (fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
            if (tree < 0)
              sandbox_child_die (c, errno, "tmpfs for '%s'", m->target);
            break;
          }
        }
      struct mount_attr a = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
                                          | (m->readonly ? MOUNT_ATTR_RDONLY : 0) };
      if (mount_setattr (tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
        sandbox_child_die (c, errno, "mount options for '%s'", m->target);
      if (move_mount (tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        sandbox_child_die (c, errno, "attach mount on '%s'", m->target);
      if (m->type == SANDBOX_MOUNT_FILE)
        file_unlink (c, root, m, i);
    }
}

/* Attach the step's root filesystem in init's (private) mount namespace
 * and open it: an O_PATH fd of its root. what names it in messages. */
static int
attach_root (child_ctx *c, const char *what)
{
  const sandbox_config *cfg = c->cfg;
  /* Clone bind sources now: the root is attached at /tmp just below, which
   * would hide sources that live under the host's /tmp. */
  for (size_t i = 0; i < cfg->n_mounts; i++)
    if (cfg->mounts[i].type == SANDBOX_MOUNT_BIND && c->mount_trees[i] < 0)
      {
        c->mount_trees[i] = open_tree (AT_FDCWD, cfg->mounts[i].source,
                                       OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_SYMLINK_NOFOLLOW);
        if (c->mount_trees[i] < 0)
          sandbox_child_die (c, errno, "bind-mount '%s'", cfg->mounts[i].source);
      }
  /* As host root the tree was cloned before the user namespace existed
   * (the step's root, a high host uid, may not traverse the path to it);
   * otherwise clone it here. Attach it at /tmp of this private namespace
   * only to give pivot_root a mount point; the old root goes away after
   * pivot_root (init_main). */
  int root = -1;
  if (cfg->session)
    {
      /* The helper entered the session mount's root before unsharing, so
       * the working directory is this namespace's copy of that mount. */
      root = open (".", O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (root < 0)
        sandbox_child_die (c, errno, "open the stage's root filesystem");
      /* kiln takes init's pid from this message (SO_PASSCRED) */
      if (sandbox_send_fds (c->sync_fd, 'R', NULL, 0) < 0 || sandbox_wait_ack (c->sync_fd) != 'A')
        _exit (SETUP_FAILED);
    }
  else if (cfg->rootfs_fuse)
    mount_rootfs_fuse (c, "/tmp");
  else
    {
      autoclose int tree = c->root_tree;
      c->root_tree = -1;
      if (tree < 0)
        tree = open_tree (AT_FDCWD, cfg->rootfs, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
      if (tree < 0)
        sandbox_child_die (c, errno, "bind-mount root filesystem '%s'", cfg->rootfs);
      if (cfg->rootfs_readonly)
        {
          struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY };
          if (mount_setattr (tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
            sandbox_child_die (c, errno, "make root filesystem read-only");
        }
      if (move_mount (tree, "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH) < 0)
        sandbox_child_die (c, errno, "attach root filesystem '%s'", cfg->rootfs);
    }
  if (root < 0)
    root = open ("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0)
    sandbox_child_die (c, errno, "open root filesystem '%s'", what);
  return root;
}

/* Init once the step's process w runs: reap every child until none is
 * left, then report w's wait status to kiln. */
static void __attribute__ ((noreturn))
reap_step (child_ctx *c, pid_t w)
{
  int main_status = 0;
  bool main_done = false;
  for (;;)
    {
      int st;
      pid_t r = waitpid (-1, &st, __WALL);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        break; /* ECHILD: nothing left */
      if (r == w && !main_done)
        {
          main_status = st;
          main_done = true;
          /* Background processes do not outlive the step. */
          kill (-1, SIGKILL);
        }
    }
  if (write (c->status_fd, &main_status, sizeof main_status) < 0)
    { /* kiln reports the missing status */ }
  _exit (0);
}

/* The step's pid 1 is this fork of kiln, never exec'd: its argv and
 * environment areas still hold kiln's command line (build-arg values the
 * Dockerfile never declared, the store path) and kiln's environment
 * (credentials in variables), which every process of the step could read
 * in /proc/1/cmdline and /proc/1/environ. Overwrite both areas of this copy
 * of kiln's memory (the addresses are fields 48-51 of /proc/self/stat) and
 * the thread name. Runs after every use of kiln's strings in init; the
 * step's process gets its argv and environment from the config (heap). */
static void
scrub_identity (child_ctx *c)
{
  char buf[4096];
  autoclose int fd = open ("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : read (fd, buf, sizeof buf - 1);
  if (n <= 0)
    sandbox_child_die (c, errno, "read /proc/self/stat");
  buf[n] = '\0';
  char *p = strrchr (buf, ')'); /* the name before it may hold anything */
  unsigned long long f[4] = { 0 };
  int field = 2, got = 0;
  char *save = NULL;
  for (char *t = p ? strtok_r (p + 1, " ", &save) : NULL; t && got < 4; t = strtok_r (NULL, " ", &save))
    if (++field >= 48)
      f[got++] = strtoull (t, NULL, 10);
  if (got < 4 || f[1] <= f[0] || f[3] < f[2])
    sandbox_child_die (c, 0, "unexpected /proc/self/stat");
  static const char name[] = "kiln-init";
  size_t arg_len = (size_t) (f[1] - f[0]);
  memset ((void *) (uintptr_t) f[0], 0, arg_len);
  memcpy ((void *) (uintptr_t) f[0], name, arg_len > sizeof name ? sizeof name - 1 : arg_len - 1);
  memset ((void *) (uintptr_t) f[2], 0, (size_t) (f[3] - f[2]));
  clearenv ();
  /* The raw system call: a sanitizer runtime intercepts prctl(PR_SET_NAME)
   * and takes its thread-registry lock, which another thread of kiln may
   * have held when this process was forked (make asan hung here). */
  syscall (SYS_prctl, PR_SET_NAME, (unsigned long) name, 0UL, 0UL, 0UL);
}

/* Init is the one kiln process in the step's pid namespace, so the step
 * can name it (pid 1). Nothing of it may be reachable from there, also by a
 * RUN --security=insecure step (every capability in its user namespace, no
 * seccomp):
 *  - Non-dumpable: init never exec'd, so its mm belongs to kiln's user
 *    namespace, and /proc/1/{environ,mem,maps,fd,...}, ptrace,
 *    process_vm_readv and pidfd_getfd then need CAP_SYS_PTRACE there, which
 *    no step has. Without it, in subuid and single ID mode (where init runs
 *    as kiln's own host uid and stays dumpable, unlike root mode's uid
 *    change) a step could read kiln's heap (its environment, credentials)
 *    and open init's fds. Set only now: newuidmap refuses a non-dumpable
 *    target and the helper's ID map is written before init exists.
 *  - No fd that leads out of the step's root (init_close_fds): the
 *    session's mount root, opened in another mount namespace, leads to the
 *    host's store with "..". */
static void
init_lock_down (void)
{
  prctl (PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* Before the step's process exists: keep only the channels init and the
 * step's process use (all O_CLOEXEC, so the step's program gets none). */
static void
init_close_fds (child_ctx *c)
{
  int keep[] = { c->sync_fd, c->err_fd, c->status_fd, c->out_w, c->errs_w };
  sandbox_close_other_fds (keep, (int) ARRAY_SIZE (keep));
  c->rootfs_fd = c->root_tree = -1;
}

static void __attribute__ ((noreturn))
init_main (child_ctx *c)
{
  const sandbox_config *cfg = c->cfg;
  init_lock_down ();
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    sandbox_child_die (c, errno, "make mounts private");
  const char *what = cfg->rootfs_fuse || cfg->session ? "(FUSE)" : cfg->rootfs;
  autoclose int root = attach_root (c, what);
  setup_proc (c, root);
  setup_sys (c, root);
  setup_dev (c, root);
  setup_mounts (c, root);
  if (cfg->network != SANDBOX_NET_HOST)
    loopback_up (c);
  const char *hn = cfg->hostname ? cfg->hostname : "kiln";
  if (sethostname (hn, strlen (hn)) < 0)
    sandbox_child_die (c, errno, "sethostname '%s'", hn);
  if (fchdir (root) < 0 || syscall (SYS_pivot_root, ".", ".") < 0)
    sandbox_child_die (c, errno, "pivot_root into '%s'", what);
  if (umount2 (".", MNT_DETACH) < 0 || chdir ("/") < 0)
    sandbox_child_die (c, errno, "detach the old root");
  init_close_fds (c);
  root = -1; /* closed with the rest */

  scrub_identity (c);
  pid_t w = fork ();
  if (w < 0)
    sandbox_child_die (c, errno, "fork the step's process");
  if (w == 0)
    worker_main (c);
  close (c->err_fd);
  close (c->out_w);
  close (c->errs_w);
  close (c->sync_fd);
  reap_step (c, w);
}

static int
cmp_int (const void *a, const void *b)
{
  return *(const int *) a - *(const int *) b;
}

void
sandbox_close_other_fds (int *keep, int n)
{
  qsort (keep, (size_t) n, sizeof *keep, cmp_int);
  unsigned from = 3;
  for (int i = 0; i < n; i++)
    {
      if (keep[i] < (int) from)
        continue;
      if ((unsigned) keep[i] > from)
        close_range (from, (unsigned) keep[i] - 1, 0);
      from = (unsigned) keep[i] + 1;
    }
  close_range (from, ~0U, 0);
}

void
sandbox_enter_userns (child_ctx *c, const sandbox_session *ss, pid_t kiln_pid)
{
  if (ss)
    {
      if (setns (ss->userns_fd, CLONE_NEWUSER) < 0)
        sandbox_child_die (c, errno, "join the stage's user namespace");
    }
  else
    {
      if (unshare (CLONE_NEWUSER) < 0)
        sandbox_child_die (c, errno, "create a user namespace");
      char go = 'u';
      if (write (c->sync_fd, &go, 1) != 1 || read (c->sync_fd, &go, 1) != 1 || go != 'g')
        _exit (SETUP_FAILED); /* kiln reports why */
    }
  if (setresgid (0, 0, 0) < 0 || setresuid (0, 0, 0) < 0)
    sandbox_child_die (c, errno, "become root in the user namespace");
  /* Changing credentials cleared the parent-death signal: set it again and
   * make sure kiln did not die in between. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (getppid () != kiln_pid)
    _exit (SETUP_FAILED);
}

void __attribute__ ((noreturn))
sandbox_helper_main (child_ctx *c, pid_t kiln_pid)
{
  const sandbox_config *cfg = c->cfg;
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (getppid () != kiln_pid)
    _exit (SETUP_FAILED);
  {
    const sandbox_session *ss = cfg->session;
    int keep[] = { c->sync_fd, c->err_fd, c->status_fd, c->out_w, c->errs_w, c->rootfs_fd,
                   ss ? ss->userns_fd : -1, ss ? ss->mntns_fd : -1, ss ? ss->root_fd : -1,
                   ss ? ss->netns_fd : -1, c->cgroup_procs[0], c->cgroup_procs[1] };
    sandbox_close_other_fds (keep, (int) ARRAY_SIZE (keep));
  }
  /* Before init exists, so that every process of the step starts in the
   * step's cgroups, and with kiln's credentials still. */
  sandbox_limits_child_enter (c);
  c->root_tree = -1;
  if (geteuid () == 0 && !cfg->rootfs_fuse && !cfg->session)
    {
      c->root_tree = open_tree (c->rootfs_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE
                                                      | AT_EMPTY_PATH);
      if (c->root_tree < 0)
        sandbox_child_die (c, errno, "bind-mount root filesystem '%s'", cfg->rootfs);
    }
  if (geteuid () == 0)
    for (size_t i = 0; i < cfg->n_mounts; i++)
      if (cfg->mounts[i].type == SANDBOX_MOUNT_BIND)
        {
          c->mount_trees[i] = open_tree (AT_FDCWD, cfg->mounts[i].source,
                                         OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_SYMLINK_NOFOLLOW);
          if (c->mount_trees[i] < 0)
            sandbox_child_die (c, errno, "bind-mount '%s'", cfg->mounts[i].source);
        }
  sandbox_enter_userns (c, cfg->session, kiln_pid);
  if (cfg->session)
    {
      const sandbox_session *ss = cfg->session;
      if (setns (ss->mntns_fd, CLONE_NEWNS) < 0)
        sandbox_child_die (c, errno, "join the stage's mount namespace");
      if (fchdir (ss->root_fd) < 0)
        sandbox_child_die (c, errno, "enter the stage's root filesystem");
    }
  int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
  bool join_net = sandbox_net_from_session (cfg);
  if (cfg->network != SANDBOX_NET_HOST && !join_net)
    flags |= CLONE_NEWNET;
  if (join_net && setns (cfg->session->netns_fd, CLONE_NEWNET) < 0)
    sandbox_child_die (c, errno, "join the stage's network namespace");
  if (unshare (flags) < 0 && (errno != EINVAL || unshare (flags & ~CLONE_NEWCGROUP) < 0))
    sandbox_child_die (c, errno, "create namespaces");
  if (cfg->network == SANDBOX_NET_PRIVATE && !join_net)
    sandbox_net_handoff (c);
  pid_t init = fork ();
  if (init < 0)
    sandbox_child_die (c, errno, "fork the step's init");
  if (init == 0)
    init_main (c);
  close (c->err_fd);
  close (c->out_w);
  close (c->errs_w);
  close (c->status_fd);
  int st;
  while (waitpid (init, &st, 0) < 0 && errno == EINTR)
    ;
  _exit (WIFEXITED (st) ? WEXITSTATUS (st) : SETUP_FAILED);
}
