/* sandbox.c - namespaces, mounts, ID mapping, privileges and the step's init. */
#include "sandbox/sandbox.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <poll.h>
#include <pwd.h>
#include <seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>

/* Serialises fd creation + fork + closing the child's ends across threads
 * (see sandbox_run). Process-wide by nature: fds and fork are. */
static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;

struct sandbox_session
{
  int userns_fd;   /* the holder's user namespace */
  int mntns_fd;    /* its mount namespace, holding the FUSE mount */
  int root_fd;     /* the mount's root (opened in that namespace) */
};

#define LINE_MAX_CHUNK 65536
/* How long kiln waits for a helper's set-up messages (namespaces, mounts). */
#define HANDSHAKE_TIMEOUT_S 60
/* Exit status of a sandbox helper that reported a setup error. */
#define SETUP_FAILED 125

int
sandbox_parse_userns (const char *s, sandbox_userns_mode *out, kiln_error **err)
{
  if (strcmp (s, "auto") == 0)
    *out = SANDBOX_USERNS_AUTO;
  else if (strcmp (s, "full") == 0)
    *out = SANDBOX_USERNS_FULL;
  else if (strcmp (s, "single") == 0)
    *out = SANDBOX_USERNS_SINGLE;
  else
    return kiln_error_make (err, 0, "invalid user namespace mode '%s' (expected auto, full or single)", s);
  return 0;
}

int
sandbox_parse_network (const char *s, sandbox_net_mode *out, kiln_error **err)
{
  if (strcmp (s, "host") == 0 || strcmp (s, "default") == 0)
    *out = SANDBOX_NET_HOST;
  else if (strcmp (s, "none") == 0)
    *out = SANDBOX_NET_NONE;
  else
    return kiln_error_make (err, 0, "invalid network mode '%s' (expected host, default or none)", s);
  return 0;
}

/* ---- ID mapping ---- */

/* First range of `name` or `id` in an /etc/subuid-style file; 0 if none. */
static int
find_subid (const char *file, const char *name, unsigned long id, unsigned long *start, unsigned long *count)
{
  autofclose FILE *f = fopen (file, "re");
  if (f == NULL)
    return 0;
  char line[512];
  char idstr[32];
  snprintf (idstr, sizeof idstr, "%lu", id);
  while (fgets (line, sizeof line, f))
    {
      char *save = NULL;
      char *who = strtok_r (line, ":\n", &save);
      char *s = strtok_r (NULL, ":\n", &save);
      char *c = strtok_r (NULL, ":\n", &save);
      if (!who || !s || !c)
        continue;
      if (!((name && strcmp (who, name) == 0) || strcmp (who, idstr) == 0))
        continue;
      char *e1, *e2;
      unsigned long st = strtoul (s, &e1, 10), n = strtoul (c, &e2, 10);
      if (*e1 || *e2 || n == 0 || st == 0 || st + n > UINT32_MAX)
        continue;
      *start = st;
      *count = n;
      return 1;
    }
  return 0;
}

static bool
overlaps_subid (const char *file, unsigned long base, unsigned long n)
{
  autofclose FILE *f = fopen (file, "re");
  if (f == NULL)
    return false;
  char line[512];
  while (fgets (line, sizeof line, f))
    {
      char *save = NULL;
      strtok_r (line, ":\n", &save);
      char *s = strtok_r (NULL, ":\n", &save), *c = strtok_r (NULL, ":\n", &save);
      if (!s || !c)
        continue;
      unsigned long st = strtoul (s, NULL, 10), cnt = strtoul (c, NULL, 10);
      if (st < base + n && base < st + cnt)
        return true;
    }
  return false;
}

static bool
have_helper (const char *name)
{
  char p[64];
  static const char *const dirs[] = { "/usr/bin", "/bin", "/usr/sbin", "/usr/local/bin" };
  for (size_t i = 0; i < ARRAY_SIZE (dirs); i++)
    {
      snprintf (p, sizeof p, "%s/%s", dirs[i], name);
      if (access (p, X_OK) == 0)
        return true;
    }
  return false;
}

int
sandbox_idmap_resolve (sandbox_userns_mode want, uid_t root_base, sandbox_idmap *m, kiln_error **err)
{
  memset (m, 0, sizeof *m);
  uid_t uid = geteuid ();
  gid_t gid = getegid ();
  if (uid == 0)
    {
      unsigned long base = root_base ? root_base : SANDBOX_ROOT_MAP_BASE;
      if (base == 0 || base + SANDBOX_ROOT_MAP_COUNT > UINT32_MAX)
        return kiln_error_make (err, 0, "invalid host id base %lu for the root mapping", base);
      if (overlaps_subid ("/etc/subuid", base, SANDBOX_ROOT_MAP_COUNT)
          || overlaps_subid ("/etc/subgid", base, SANDBOX_ROOT_MAP_COUNT))
        return kiln_error_make (err, 0, "host id range %lu+%u for the root mapping overlaps a range in "
                                        "/etc/subuid or /etc/subgid", base, SANDBOX_ROOT_MAP_COUNT);
      m->as_root = true;
      m->host_uid = (uid_t) base;
      m->host_gid = (gid_t) base;
      if (want == SANDBOX_USERNS_SINGLE)
        m->mode = SANDBOX_USERNS_SINGLE;
      else
        {
          m->mode = SANDBOX_USERNS_FULL;
          m->sub_uid = (uid_t) base + 1;
          m->sub_gid = (gid_t) base + 1;
          m->n_sub_uid = m->n_sub_gid = SANDBOX_ROOT_MAP_COUNT - 1;
        }
      return 0;
    }
  m->host_uid = uid;
  m->host_gid = gid;
  struct passwd *pw = getpwuid (uid);
  const char *name = pw ? pw->pw_name : NULL;
  unsigned long su = 0, nu = 0, sg = 0, ng = 0;
  bool have_u = find_subid ("/etc/subuid", name, uid, &su, &nu);
  bool have_g = find_subid ("/etc/subgid", name, uid, &sg, &ng);
  bool helpers = have_helper ("newuidmap") && have_helper ("newgidmap");
  if (want != SANDBOX_USERNS_SINGLE && have_u && have_g && helpers)
    {
      m->mode = SANDBOX_USERNS_FULL;
      m->use_helpers = true;
      m->sub_uid = (uid_t) su;
      m->sub_gid = (gid_t) sg;
      m->n_sub_uid = nu;
      m->n_sub_gid = ng;
      return 0;
    }
  if (want == SANDBOX_USERNS_FULL)
    return kiln_error_make (err, 0, "--userns=full needs %s for user '%s'",
                            !helpers ? "newuidmap and newgidmap (package uidmap)"
                                     : "ranges in /etc/subuid and /etc/subgid",
                            name ? name : "?");
  m->mode = SANDBOX_USERNS_SINGLE;
  return 0;
}

char *
sandbox_idmap_describe (const sandbox_idmap *m)
{
  if (m->mode == SANDBOX_USERNS_SINGLE)
    return xasprintf ("single (container 0 -> host %u:%u, setgroups denied)", (unsigned) m->host_uid,
                      (unsigned) m->host_gid);
  if (m->as_root)
    return xasprintf ("full (container 0..65535 -> host %u.., as root)", (unsigned) m->host_uid);
  return xasprintf ("full (container 0 -> host %u, 1..%lu -> subuid %u.. via newuidmap)",
                    (unsigned) m->host_uid, m->n_sub_uid, (unsigned) m->sub_uid);
}

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

typedef struct child_ctx
{
  const sandbox_config *cfg;
  int sync_fd;           /* socket to kiln */
  int rootfs_fd;         /* O_PATH fd of the rootfs directory, opened by kiln */
  int root_tree;         /* detached clone of it (as host root), or -1 */
  int *mount_trees;      /* bind mount sources cloned as host root, or -1 */
  int err_fd;            /* error pipe, write end */
  int status_fd;         /* init writes the main process's wait status */
  int out_w, errs_w;     /* stdout/stderr pipes, write ends */
  cap_t caps;            /* what the step's process keeps */
  cap_value_t keep_bound[64];
  int n_keep_bound;
  char *resolv, *hosts, *hostname_file;
} child_ctx;

static void __attribute__ ((noreturn, format (printf, 3, 4)))
child_die (child_ctx *c, int errnum, const char *fmt, ...)
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
    child_die (c, errno, "open mount point '/%s' (it must exist; symlinks are refused)", p);
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
    child_die (c, errno, "mount proc on '/proc'");
  autoclose int p = open_in_root (c, root, "proc", O_DIRECTORY);
  autoclose int null = open ("/dev/null", O_PATH | O_CLOEXEC);
  for (const char *const *m = masked; *m; m++)
    {
      autoclose int f = openat (p, *m, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (f < 0)
        continue;
      struct stat st;
      if (fstat (f, &st) < 0)
        child_die (c, errno, "stat '/proc/%s'", *m);
      if (S_ISDIR (st.st_mode))
        {
          if (mount ("tmpfs", fdpath (b, sizeof b, f), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     "size=0")
              < 0)
            child_die (c, errno, "mask '/proc/%s'", *m);
        }
      else if (bind_at (null, NULL, f, false, true) < 0)
        child_die (c, errno, "mask '/proc/%s'", *m);
    }
  for (const char *const *m = readonly; *m; m++)
    {
      autoclose int f = openat (p, *m, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (f < 0)
        continue;
      if (bind_at (f, NULL, f, true, true) < 0)
        child_die (c, errno, "make '/proc/%s' read-only", *m);
    }
}

static void
setup_sys (child_ctx *c, int root)
{
  char b[64];
  autoclose int t = open_in_root (c, root, "sys", O_DIRECTORY);
  if (c->cfg->network == SANDBOX_NET_NONE
      && mount ("sysfs", fdpath (b, sizeof b, t), "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)
           == 0)
    return;
  /* sysfs can only be mounted in a network namespace of our own; otherwise
   * bind the host's, read-only. */
  autoclose int src = open ("/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (src < 0 || bind_at (src, NULL, t, true, true) < 0)
    child_die (c, errno, "mount '/sys' read-only");
}

static void
write_file_at (child_ctx *c, int dir, const char *name, const char *content, mode_t mode)
{
  autoclose int fd = openat (dir, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0)
    child_die (c, errno, "create '/dev/%s'", name);
  size_t len = strlen (content), done = 0;
  while (done < len)
    {
      ssize_t n = write (fd, content + done, len - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        child_die (c, errno, "write '/dev/%s'", name);
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
    child_die (c, errno, "mount tmpfs on '/dev'");
  autoclose int d = open_in_root (c, root, "dev", O_DIRECTORY);
  autoclose int dw = openat (d, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dw < 0)
    child_die (c, errno, "open '/dev'");
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
        child_die (c, errno, "bind '%s' into the step", hp);
    }
  for (size_t i = 0; i < ARRAY_SIZE (links); i++)
    if (symlinkat (links[i][1], dw, links[i][0]) < 0)
      child_die (c, errno, "symlink '/dev/%s'", links[i][0]);
  if (mkdirat (dw, "pts", 0755) < 0 || mkdirat (dw, "shm", 01777) < 0)
    child_die (c, errno, "mkdir in '/dev'");
  autoclose int pts = openat (dw, "pts", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (pts < 0
      || mount ("devpts", fdpath (b, sizeof b, pts), "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620")
           < 0)
    child_die (c, errno, "mount devpts on '/dev/pts'");
  autoclose int shm = openat (dw, "shm", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (shm < 0
      || mount ("shm", fdpath (b, sizeof b, shm), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "mode=1777,size=65536k")
           < 0)
    child_die (c, errno, "mount tmpfs on '/dev/shm'");

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
        child_die (c, 0, "'/%s' in the root filesystem is not a regular file", target);
      if (bind_at (dw, tmp, dst, false, false) < 0)
        child_die (c, errno, "bind generated '/%s'", target);
      if (unlinkat (dw, tmp, 0) < 0)
        child_die (c, errno, "unlink '/dev/%s'", tmp);
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
    child_die (c, errno, "get flags of 'lo'");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl (s, SIOCSIFFLAGS, &ifr) < 0)
    child_die (c, errno, "bring 'lo' up");
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
      child_die (c, errno, "exec '%s'", file);
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
  child_die (c, saved, "exec '%s' (searched PATH %s)", file, path);
}

/* One byte `tag` with n fds attached (SCM_RIGHTS; none when n is 0). */
static int
send_fds (int sock, char tag, const int *fds, int n)
{
  char cbuf[CMSG_SPACE (3 * sizeof (int))];
  memset (cbuf, 0, sizeof cbuf);
  struct iovec iov = { &tag, 1 };
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
  if (n > 0)
    {
      mh.msg_control = cbuf;
      mh.msg_controllen = CMSG_SPACE ((size_t) n * sizeof (int));
      struct cmsghdr *cm = CMSG_FIRSTHDR (&mh);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN ((size_t) n * sizeof (int));
      memcpy (CMSG_DATA (cm), fds, (size_t) n * sizeof (int));
    }
  ssize_t r;
  do
    r = sendmsg (sock, &mh, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return r == 1 ? 0 : -1;
}

static int
send_fd (int sock, char tag, int fd)
{
  return send_fds (sock, tag, &fd, 1);
}

static char
wait_ack (int sock)
{
  char ack = 0;
  ssize_t n;
  do
    n = read (sock, &ack, 1);
  while (n < 0 && errno == EINTR);
  return n == 1 ? ack : 0;
}

static void __attribute__ ((noreturn))
worker_main (child_ctx *c)
{
  const sandbox_config *cfg = c->cfg;
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  setsid ();
  int devnull = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0 || dup2 (devnull, 0) < 0 || dup2 (c->out_w, 1) < 0 || dup2 (c->errs_w, 2) < 0)
    child_die (c, errno, "set up standard streams");
  bool single = cfg->idmap->mode == SANDBOX_USERNS_SINGLE;
  for (cap_value_t v = 0; v <= CAP_LAST_CAP; v++)
    {
      bool keep = false;
      for (int i = 0; i < c->n_keep_bound; i++)
        keep |= c->keep_bound[i] == v;
      if (!keep && cap_drop_bound (v) < 0 && errno != EINVAL)
        child_die (c, errno, "drop capability %d from the bounding set", (int) v);
    }
  uid_t uid = single ? 0 : cfg->uid;
  gid_t gid = single ? 0 : cfg->gid;
  if (!single && setgroups (cfg->n_groups, cfg->groups) < 0)
    child_die (c, errno, "setgroups");
  if (setresgid (gid, gid, gid) < 0)
    child_die (c, errno, "setresgid %u", (unsigned) gid);
  if (setresuid (uid, uid, uid) < 0)
    child_die (c, errno, "setresuid %u", (unsigned) uid);
  prctl (PR_SET_PDEATHSIG, SIGKILL); /* cleared by the id change */
  if (cap_set_proc (c->caps) < 0)
    child_die (c, errno, "set capabilities");
  cap_reset_ambient ();
  const char *cwd = cfg->cwd ? cfg->cwd : "/";
  if (chdir (cwd) < 0)
    child_die (c, errno, "chdir to working directory '%s'", cwd);
  umask (022);
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    child_die (c, errno, "PR_SET_NO_NEW_PRIVS");
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
  if (cfg->seccomp)
    {
      int r = seccomp_filter_load (cfg->seccomp);
      if (r < 0)
        child_die (c, -r, "load the seccomp filter");
      if (cfg->seccomp->needs_listener)
        {
          /* Hand the listener to kiln's supervisor, then drop our copy. */
          if (send_fd (c->sync_fd, 'L', r) < 0)
            child_die (c, errno, "send the seccomp listener to kiln");
          close (r);
        }
    }
  exec_step (c);
  _exit (SETUP_FAILED);
}

/* Mount a FUSE filesystem on target and hand kiln its fd: as root of a
 * user namespace in its own mount namespace, so the kernel ties the FUSE
 * connection to that user namespace: ids in requests and replies are
 * container ids, and the mount is possible without host privileges.
 * Nothing may touch the mount until kiln serves the fd (it answers 'A'). */
static void
mount_fuse (child_ctx *c, const char *target, bool single, bool readonly)
{
  autoclose int fd = open ("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    child_die (c, errno, "open '/dev/fuse' as the step's root (the device must be usable by unprivileged "
                         "users: mode 0666, as distributions ship it)");
  /* Without allow_other only the host user of container 0 may use the
   * mount: the step in single mode (all its processes are container root)
   * and kiln's seccomp supervisor, which resolves chown targets on it. */
  char opts[160];
  snprintf (opts, sizeof opts, "fd=%d,rootmode=40000,user_id=0,group_id=0,default_permissions%s", fd,
            single ? "" : ",allow_other");
  unsigned long fl = MS_NOSUID | MS_NODEV | (readonly ? MS_RDONLY : 0);
  if (mount ("kiln", target, "fuse.kiln", fl, opts) < 0)
    child_die (c, errno, "mount the FUSE root filesystem on '%s' in the step's namespaces", target);
  if (send_fd (c->sync_fd, 'F', fd) < 0)
    child_die (c, errno, "send the FUSE root filesystem's fd to kiln");
  if (wait_ack (c->sync_fd) != 'A')
    _exit (SETUP_FAILED); /* kiln could not serve it and says why */
}

static void
mount_rootfs_fuse (child_ctx *c, const char *target)
{
  const sandbox_config *cfg = c->cfg;
  mount_fuse (c, target, cfg->idmap->mode == SANDBOX_USERNS_SINGLE, cfg->rootfs_readonly);
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
        child_die (c, errno, "create mount target parent '/%s'", p);
      *s = '/';
    }
  if (is_dir)
    {
      if (mkdirat (root, p, 0755) < 0 && errno != EEXIST)
        child_die (c, errno, "create mount target '/%s'", p);
      return;
    }
  int fd = openat2_beneath (root, p, O_CREAT | O_WRONLY, 0644);
  if (fd < 0)
    child_die (c, errno, "create mount target '/%s'", p);
  close (fd);
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
        child_die (c, errno, "mount target '%s'", m->target);
      autoclose int tree = -1;
      switch (m->type)
        {
        case SANDBOX_MOUNT_BIND:
          tree = c->mount_trees[i];
          c->mount_trees[i] = -1;
          if (tree < 0)
            child_die (c, errno, "bind-mount '%s' on '%s'", m->source, m->target);
          if (m->set_owner && fchownat (tree, "", m->owner_uid, m->owner_gid, AT_EMPTY_PATH) < 0)
            child_die (c, errno, "give '%s' to %u:%u", m->target, (unsigned) m->owner_uid,
                       (unsigned) m->owner_gid);
          break;
        case SANDBOX_MOUNT_TMPFS:
          {
            autoclose int fs = fsopen ("tmpfs", FSOPEN_CLOEXEC);
            char opt[32];
            snprintf (opt, sizeof opt, "%o", m->tmpfs_mode ? m->tmpfs_mode : 01777);
            if (fs < 0 || fsconfig (fs, FSCONFIG_SET_STRING, "mode", opt, 0) < 0)
              child_die (c, errno, "tmpfs for '%s'", m->target);
            if (m->tmpfs_size)
              {
                snprintf (opt, sizeof opt, "%lu", m->tmpfs_size);
                if (fsconfig (fs, FSCONFIG_SET_STRING, "size", opt, 0) < 0)
                  child_die (c, errno, "tmpfs size for '%s'", m->target);
              }
            if (fsconfig (fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
              child_die (c, errno, "tmpfs for '%s'", m->target);
            tree = fsmount (fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
            if (tree < 0)
              child_die (c, errno, "tmpfs for '%s'", m->target);
            break;
          }
        }
      struct mount_attr a = { .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
                                          | (m->readonly ? MOUNT_ATTR_RDONLY : 0) };
      if (mount_setattr (tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
        child_die (c, errno, "mount options for '%s'", m->target);
      if (move_mount (tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        child_die (c, errno, "attach mount on '%s'", m->target);
    }
}

static void __attribute__ ((noreturn))
init_main (child_ctx *c)
{
  const sandbox_config *cfg = c->cfg;
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    child_die (c, errno, "make mounts private");
  /* As host root the tree was cloned before the user namespace existed
   * (the step's root, a high host uid, may not traverse the path to it);
   * otherwise clone it here. Attach it at /tmp of this private namespace
   * only to give pivot_root a mount point; the old root goes away below. */
  const char *what = cfg->rootfs_fuse || cfg->session ? "(FUSE)" : cfg->rootfs;
  /* Clone bind sources now: the root is attached at /tmp just below, which
   * would hide sources that live under the host's /tmp. */
  for (size_t i = 0; i < cfg->n_mounts; i++)
    if (cfg->mounts[i].type == SANDBOX_MOUNT_BIND && c->mount_trees[i] < 0)
      {
        c->mount_trees[i] = open_tree (AT_FDCWD, cfg->mounts[i].source,
                                       OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_SYMLINK_NOFOLLOW);
        if (c->mount_trees[i] < 0)
          child_die (c, errno, "bind-mount '%s'", cfg->mounts[i].source);
      }
  autoclose int root = -1;
  if (cfg->session)
    {
      /* The helper entered the session mount's root before unsharing, so
       * the working directory is this namespace's copy of that mount. */
      root = open (".", O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (root < 0)
        child_die (c, errno, "open the stage's root filesystem");
      /* kiln takes init's pid from this message (SO_PASSCRED) */
      if (send_fds (c->sync_fd, 'R', NULL, 0) < 0 || wait_ack (c->sync_fd) != 'A')
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
        child_die (c, errno, "bind-mount root filesystem '%s'", cfg->rootfs);
      if (cfg->rootfs_readonly)
        {
          struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY };
          if (mount_setattr (tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
            child_die (c, errno, "make root filesystem read-only");
        }
      if (move_mount (tree, "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH) < 0)
        child_die (c, errno, "attach root filesystem '%s'", cfg->rootfs);
    }
  if (root < 0)
    root = open ("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0)
    child_die (c, errno, "open root filesystem '%s'", what);
  setup_proc (c, root);
  setup_sys (c, root);
  setup_dev (c, root);
  setup_mounts (c, root);
  if (cfg->network == SANDBOX_NET_NONE)
    loopback_up (c);
  const char *hn = cfg->hostname ? cfg->hostname : "kiln";
  if (sethostname (hn, strlen (hn)) < 0)
    child_die (c, errno, "sethostname '%s'", hn);
  if (fchdir (root) < 0 || syscall (SYS_pivot_root, ".", ".") < 0)
    child_die (c, errno, "pivot_root into '%s'", what);
  if (umount2 (".", MNT_DETACH) < 0 || chdir ("/") < 0)
    child_die (c, errno, "detach the old root");

  pid_t w = fork ();
  if (w < 0)
    child_die (c, errno, "fork the step's process");
  if (w == 0)
    worker_main (c);
  close (c->err_fd);
  close (c->out_w);
  close (c->errs_w);
  close (c->sync_fd);
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

static int
cmp_int (const void *a, const void *b)
{
  return *(const int *) a - *(const int *) b;
}

/* Close every fd above 2 but those in keep (-1 entries ignored). The
 * helper, init and holder never exec, so O_CLOEXEC does not protect: fds
 * of other stages' steps and sessions open in kiln when we forked (pipe
 * ends, a session's mount namespace) would otherwise live as long as this
 * step and keep those alive. */
static void
close_other_fds (int *keep, int n)
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

/* Become root of a user namespace: a new one whose ID map kiln writes (it
 * is told 'u' and answers 'g'), or the session's. */
static void
enter_userns (child_ctx *c, const sandbox_session *ss, pid_t kiln_pid)
{
  if (ss)
    {
      if (setns (ss->userns_fd, CLONE_NEWUSER) < 0)
        child_die (c, errno, "join the stage's user namespace");
    }
  else
    {
      if (unshare (CLONE_NEWUSER) < 0)
        child_die (c, errno, "create a user namespace");
      char go = 'u';
      if (write (c->sync_fd, &go, 1) != 1 || read (c->sync_fd, &go, 1) != 1 || go != 'g')
        _exit (SETUP_FAILED); /* kiln reports why */
    }
  if (setresgid (0, 0, 0) < 0 || setresuid (0, 0, 0) < 0)
    child_die (c, errno, "become root in the user namespace");
  /* Changing credentials cleared the parent-death signal: set it again and
   * make sure kiln did not die in between. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (getppid () != kiln_pid)
    _exit (SETUP_FAILED);
}

/* First child: new user namespace, wait for the ID maps, then the other
 * namespaces; its child is the step's pid 1. */
static void __attribute__ ((noreturn))
helper_main (child_ctx *c, pid_t kiln_pid)
{
  const sandbox_config *cfg = c->cfg;
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (getppid () != kiln_pid)
    _exit (SETUP_FAILED);
  {
    const sandbox_session *ss = cfg->session;
    int keep[] = { c->sync_fd, c->err_fd, c->status_fd, c->out_w, c->errs_w, c->rootfs_fd,
                   ss ? ss->userns_fd : -1, ss ? ss->mntns_fd : -1, ss ? ss->root_fd : -1 };
    close_other_fds (keep, (int) ARRAY_SIZE (keep));
  }
  c->root_tree = -1;
  if (geteuid () == 0 && !cfg->rootfs_fuse && !cfg->session)
    {
      c->root_tree = open_tree (c->rootfs_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE
                                                      | AT_EMPTY_PATH);
      if (c->root_tree < 0)
        child_die (c, errno, "bind-mount root filesystem '%s'", cfg->rootfs);
    }
  if (geteuid () == 0)
    for (size_t i = 0; i < cfg->n_mounts; i++)
      if (cfg->mounts[i].type == SANDBOX_MOUNT_BIND)
        {
          c->mount_trees[i] = open_tree (AT_FDCWD, cfg->mounts[i].source,
                                         OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_SYMLINK_NOFOLLOW);
          if (c->mount_trees[i] < 0)
            child_die (c, errno, "bind-mount '%s'", cfg->mounts[i].source);
        }
  enter_userns (c, cfg->session, kiln_pid);
  if (cfg->session)
    {
      const sandbox_session *ss = cfg->session;
      if (setns (ss->mntns_fd, CLONE_NEWNS) < 0)
        child_die (c, errno, "join the stage's mount namespace");
      if (fchdir (ss->root_fd) < 0)
        child_die (c, errno, "enter the stage's root filesystem");
    }
  int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
  if (cfg->network == SANDBOX_NET_NONE)
    flags |= CLONE_NEWNET;
  if (unshare (flags) < 0 && (errno != EINVAL || unshare (flags & ~CLONE_NEWCGROUP) < 0))
    child_die (c, errno, "create namespaces");
  pid_t init = fork ();
  if (init < 0)
    child_die (c, errno, "fork the step's init");
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

/* ---- parent side ---- */

static int
write_proc_file (pid_t pid, const char *name, const char *content, kiln_error **err)
{
  char p[64];
  snprintf (p, sizeof p, "/proc/%d/%s", (int) pid, name);
  autoclose int fd = open (p, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return kiln_error_make (err, errno, "open '%s'", p);
  ssize_t n = write (fd, content, strlen (content));
  if (n < 0 || (size_t) n != strlen (content))
    return kiln_error_make (err, n < 0 ? errno : EIO, "write '%s' ('%s')", p, content);
  return 0;
}

/* Fork with SIGINT/SIGTERM blocked across the fork, so that kiln's handler
 * never runs in the child (its notify fd is closed there and the number
 * may be reused). The child takes both back to SIG_DFL but keeps them
 * blocked: the helper, init and holder share kiln's process group, and a
 * terminal's ^C is kiln's to handle (it kills the step); the step's
 * process unblocks every signal before exec. */
static pid_t
fork_child (void)
{
  sigset_t block, old;
  sigemptyset (&block);
  sigaddset (&block, SIGINT);
  sigaddset (&block, SIGTERM);
  pthread_sigmask (SIG_BLOCK, &block, &old);
  pid_t pid = fork ();
  if (pid == 0)
    {
      signal (SIGINT, SIG_DFL);
      signal (SIGTERM, SIG_DFL);
      return 0;
    }
  int e = errno;
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  errno = e;
  return pid;
}

static int
run_helper (const char *prog, char *const argv[], kiln_error **err)
{
  pid_t pid = fork_child ();
  if (pid < 0)
    return kiln_error_make (err, errno, "fork for %s", prog);
  if (pid == 0)
    {
      sigset_t set;
      sigemptyset (&set);
      sigaddset (&set, SIGINT);
      sigaddset (&set, SIGTERM);
      sigprocmask (SIG_UNBLOCK, &set, NULL);
      execvp (prog, argv);
      _exit (127);
    }
  int st;
  while (waitpid (pid, &st, 0) < 0)
    if (errno != EINTR)
      return kiln_error_make (err, errno, "wait for %s", prog);
  if (!WIFEXITED (st) || WEXITSTATUS (st) != 0)
    return kiln_error_make (err, 0, "%s failed (status %d)", prog, WIFEXITED (st) ? WEXITSTATUS (st) : -1);
  return 0;
}

static int
write_id_maps (pid_t pid, const sandbox_idmap *m, kiln_error **err)
{
  char u[128], g[128];
  if (m->use_helpers)
    {
      char p[16], a[16], b[16], s[16], n[16];
      snprintf (p, sizeof p, "%d", (int) pid);
      snprintf (a, sizeof a, "%u", (unsigned) m->host_uid);
      snprintf (s, sizeof s, "%u", (unsigned) m->sub_uid);
      snprintf (n, sizeof n, "%lu", m->n_sub_uid);
      char *uargv[] = { "newuidmap", p, "0", a, "1", "1", s, n, NULL };
      if (run_helper ("newuidmap", uargv, err) < 0)
        return -1;
      snprintf (b, sizeof b, "%u", (unsigned) m->host_gid);
      snprintf (s, sizeof s, "%u", (unsigned) m->sub_gid);
      snprintf (n, sizeof n, "%lu", m->n_sub_gid);
      char *gargv[] = { "newgidmap", p, "0", b, "1", "1", s, n, NULL };
      return run_helper ("newgidmap", gargv, err);
    }
  if (m->mode == SANDBOX_USERNS_FULL)
    {
      snprintf (u, sizeof u, "0 %u %u\n", (unsigned) m->host_uid, SANDBOX_ROOT_MAP_COUNT);
      snprintf (g, sizeof g, "0 %u %u\n", (unsigned) m->host_gid, SANDBOX_ROOT_MAP_COUNT);
    }
  else
    {
      snprintf (u, sizeof u, "0 %u 1\n", (unsigned) m->host_uid);
      snprintf (g, sizeof g, "0 %u 1\n", (unsigned) m->host_gid);
      if (write_proc_file (pid, "setgroups", "deny", err) < 0)
        return -1;
    }
  if (write_proc_file (pid, "uid_map", u, err) < 0 || write_proc_file (pid, "gid_map", g, err) < 0)
    return -1;
  return 0;
}

static char *
read_host_resolv (void)
{
  autofclose FILE *f = fopen ("/etc/resolv.conf", "re");
  autostrbuf strbuf sb = STRBUF_INIT;
  char line[512];
  while (f && fgets (line, sizeof line, f) && sb.len < 8192)
    strbuf_adds (&sb, line);
  return strbuf_detach (&sb, NULL);
}

typedef struct outbuf
{
  int fd;
  sandbox_stream stream;
  strbuf line;
} outbuf;

static void
emit_lines (const sandbox_config *cfg, outbuf *o, bool flush)
{
  size_t start = 0;
  for (size_t i = 0; i < o->line.len; i++)
    if (o->line.buf[i] == '\n' || i - start >= LINE_MAX_CHUNK)
      {
        if (cfg->output)
          cfg->output (cfg->output_ctx, o->stream, o->line.buf + start, i - start);
        start = o->line.buf[i] == '\n' ? i + 1 : i;
      }
  if (flush && start < o->line.len)
    {
      if (cfg->output)
        cfg->output (cfg->output_ctx, o->stream, o->line.buf + start, o->line.len - start);
      start = o->line.len;
    }
  memmove (o->line.buf, o->line.buf + start, o->line.len - start);
  strbuf_setlen (&o->line, o->line.len - start);
}

static void
close_fd (int *fd)
{
  if (*fd >= 0)
    close (*fd);
  *fd = -1;
}

/* Read the setup error pipe to EOF: returns 0 if empty. */
static int
read_setup_error (int fd, kiln_error **err)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  char buf[512];
  for (;;)
    {
      ssize_t n = read (fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      strbuf_add (&sb, buf, (size_t) n);
    }
  if (sb.len == 0)
    return 0;
  char *colon = strchr (sb.buf, ':');
  int e = atoi (sb.buf);
  return kiln_error_make (err, e, "%s", colon ? colon + 1 : sb.buf);
}

/* True once the caller's cancellation fd is readable (cancel_fd <= 0:
 * none). It is never read: every thread's step sees the same state. */
static bool
cancelled (int cancel_fd)
{
  if (cancel_fd <= 0)
    return false;
  struct pollfd pf = { cancel_fd, POLLIN, 0 };
  int r;
  while ((r = poll (&pf, 1, 0)) < 0 && errno == EINTR)
    ;
  return r == 1 && (pf.revents & POLLIN);
}

/* Wait until one of fds (at most 4; -1 entries ignored) is readable or
 * hung up. The only other thing waited for is cancel_fd (<= 0: none),
 * which nobody reads, so no other thread can take the wake-up away.
 * Returns the index; -1 with errno ECANCELED when cancel_fd fired first,
 * ETIMEDOUT after timeout_s (<= 0: never), or poll's errno. */
static int
wait_fds (const int *fds, int n, int cancel_fd, int timeout_s)
{
  struct pollfd pf[5];
  for (int i = 0; i < n; i++)
    pf[i] = (struct pollfd) { fds[i], POLLIN, 0 };
  pf[n] = (struct pollfd) { cancel_fd > 0 ? cancel_fd : -1, POLLIN, 0 };
  struct timespec now, end;
  clock_gettime (CLOCK_MONOTONIC, &end);
  end.tv_sec += timeout_s;
  for (;;)
    {
      int ms = -1;
      if (timeout_s > 0)
        {
          clock_gettime (CLOCK_MONOTONIC, &now);
          long long left = (end.tv_sec - now.tv_sec) * 1000LL + (end.tv_nsec - now.tv_nsec) / 1000000;
          ms = left < 0 ? 0 : (int) left;
        }
      int r = poll (pf, (nfds_t) n + 1, ms);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return -1;
      if (pf[n].revents & POLLIN)
        {
          errno = ECANCELED;
          return -1;
        }
      for (int i = 0; i < n; i++)
        if (pf[i].revents)
          return i;
      if (r == 0)
        {
          errno = ETIMEDOUT;
          return -1;
        }
    }
}

/* The caller cancelled the step: EINTR naming the signal when its handler
 * recorded one, else ECANCELED (a reason of the caller's own). */
static int
stopped (const sandbox_config *cfg, kiln_error **err)
{
  int signo = cfg->cancel_signal ? (int) *cfg->cancel_signal : 0;
  if (signo == 0)
    return kiln_error_make (err, ECANCELED, "cancelled by kiln (another part of the build failed); the step was "
                                            "killed");
  if (cfg->interrupted)
    *cfg->interrupted = signo;
  return kiln_error_make (err, EINTR, "interrupted by signal %d (%s); the step was killed", signo, strsignal (signo));
}

/* wait_fds without a timeout, for sandbox_run's set-up: a cancellation
 * becomes stopped(). */
static int
wait_setup (const sandbox_config *cfg, const int *fds, int n, kiln_error **err)
{
  int w = wait_fds (fds, n, cfg->cancel_fd, 0);
  if (w < 0 && errno == ECANCELED)
    return stopped (cfg, err);
  if (w < 0)
    return kiln_error_make (err, errno, "poll");
  return w;
}

static void
kill_and_reap (pid_t pid)
{
  kill (pid, SIGKILL);
  while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
    ;
}

static int
prepare_caps (child_ctx *c, kiln_error **err)
{
  const char *const *names = seccomp_profile_docker_default_caps;
  bool root = c->cfg->idmap->mode == SANDBOX_USERNS_SINGLE || c->cfg->uid == 0;
  c->caps = cap_init ();
  if (c->caps == NULL)
    return kiln_error_make (err, errno, "cap_init");
  for (size_t i = 0; root && (c->cfg->all_caps ? i <= (size_t) CAP_LAST_CAP : names[i] != NULL); i++)
    {
      cap_value_t v = (cap_value_t) i;
      if (!c->cfg->all_caps && cap_from_name (names[i], &v) < 0)
        continue; /* capability unknown to this kernel */
      if (c->cfg->all_caps && !CAP_IS_SUPPORTED (v))
        continue;
      c->keep_bound[c->n_keep_bound++] = v;
      if (cap_set_flag (c->caps, CAP_EFFECTIVE, 1, &v, CAP_SET) < 0
          || cap_set_flag (c->caps, CAP_PERMITTED, 1, &v, CAP_SET) < 0
          || cap_set_flag (c->caps, CAP_INHERITABLE, 1, &v, CAP_SET) < 0)
        return kiln_error_make (err, errno, "cap_set_flag");
    }
  return 0;
}

/* Receive a one-byte message with up to max fds (SCM_RIGHTS; extras are
 * closed) and, when pid is not NULL, the sender's pid (SCM_CREDENTIALS,
 * with SO_PASSCRED on): returns the number of fds, or -1 with errno (0 at
 * EOF, EMSGSIZE when the control data was cut short). */
static int
recv_msg (int sock, char *tag, int *fds, int max, pid_t *pid)
{
  char cbuf[CMSG_SPACE (4 * sizeof (int)) + CMSG_SPACE (sizeof (struct ucred))];
  memset (cbuf, 0, sizeof cbuf);
  struct iovec iov = { tag, 1 };
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  ssize_t n;
  do
    n = recvmsg (sock, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n <= 0)
    {
      if (n == 0)
        errno = 0;
      return -1;
    }
  int got = 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR (&mh); cm; cm = CMSG_NXTHDR (&mh, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
      {
        size_t k = (cm->cmsg_len - CMSG_LEN (0)) / sizeof (int);
        for (size_t i = 0; i < k; i++)
          {
            int fd;
            memcpy (&fd, CMSG_DATA (cm) + i * sizeof (int), sizeof fd);
            if (got < max)
              fds[got++] = fd;
            else
              close (fd);
          }
      }
    else if (pid && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS)
      {
        struct ucred uc;
        memcpy (&uc, CMSG_DATA (cm), sizeof uc);
        *pid = uc.pid;
      }
  if (mh.msg_flags & MSG_CTRUNC)
    {
      while (got > 0)
        close (fds[--got]);
      errno = EMSGSIZE;
      return -1;
    }
  return got;
}

/* One fd sent with a one-byte message, or -1. */
static int
recv_fd (int sock)
{
  char tag;
  int fd;
  return recv_msg (sock, &tag, &fd, 1, NULL) == 1 ? fd : -1;
}

/* Receive the FUSE fd from the step's init (with its pid: SO_PASSCRED is on),
 * have the caller serve it, then let init go on. A setup error reported on
 * errfd before that ends the wait. */
static int
serve_rootfs_fuse (const sandbox_config *cfg, int sock, int errfd, int *init_pidfd, kiln_error **err)
{
  int fds[2] = { sock, errfd };
  int w = wait_setup (cfg, fds, 2, err);
  if (w < 0)
    return -1;
  if (w == 1)
    {
      if (read_setup_error (errfd, err) < 0)
        return -1;
      return kiln_error_make (err, 0, "the step's init exited before handing over its FUSE mount");
    }
  char tag = 0;
  autoclose int fd = -1;
  pid_t pid = 0;
  int n = recv_msg (sock, &tag, &fd, 1, &pid);
  int saved = errno;
  int off = 0;
  setsockopt (sock, SOL_SOCKET, SO_PASSCRED, &off, sizeof off);
  if (n < 0)
    {
      if (saved)
        return kiln_error_make (err, saved, "receive the FUSE fd from the step's init");
      if (read_setup_error (errfd, err) < 0)
        return -1;
      return kiln_error_make (err, 0, "the step's init exited before handing over its FUSE mount");
    }
  bool want_fd = cfg->session == NULL;
  if (tag != (want_fd ? 'F' : 'R') || (fd >= 0) != want_fd || pid <= 0)
    return kiln_error_make (err, 0, "unexpected message from the step's init instead of its %s",
                            want_fd ? "FUSE fd" : "start");
  /* Kept to kill init and wait for it at the end: the mount lives as long as
   * the step's mount namespace, so its end is init's end. */
  *init_pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
  if (*init_pidfd < 0)
    return kiln_error_make (err, errno, "pidfd_open of the step's init (pid %d)", (int) pid);
  if (want_fd && cfg->rootfs_fuse (cfg->rootfs_fuse_ctx, steal_fd (&fd), err) < 0)
    return kiln_error_wrap (err, "serving the FUSE root filesystem");
  char ack = 'A';
  if (write (sock, &ack, 1) != 1)
    return kiln_error_make (err, errno, "signal the step's init");
  return 0;
}

/* SIGKILL the step's init (a no-op once it is gone) and wait until it has
 * exited, which happens only after every process of its pid namespace is
 * gone: then the step's mount namespace, and the FUSE mount with it, is
 * released and the FUSE connection aborted. */
static void
end_init (int *pidfd)
{
  if (*pidfd < 0)
    return;
  syscall (SYS_pidfd_send_signal, *pidfd, SIGKILL, NULL, 0);
  struct pollfd pf = { *pidfd, POLLIN, 0 };
  while (poll (&pf, 1, -1) < 0 && errno == EINTR)
    ;
  close_fd (pidfd);
}

/* Read a NUL-terminated string at addr in pid's memory. */
static int
read_target_string (pid_t pid, uint64_t addr, char *buf, size_t size)
{
  char p[64];
  snprintf (p, sizeof p, "/proc/%d/mem", (int) pid);
  autoclose int fd = open (p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  ssize_t n = pread (fd, buf, size - 1, (off_t) addr);
  if (n < 0)
    {
      /* The string may end near a page boundary: retry byte-wise. */
      n = 0;
      while ((size_t) n < size - 1 && pread (fd, buf + n, 1, (off_t) (addr + (uint64_t) n)) == 1
             && buf[n] != '\0')
        n++;
    }
  if (memchr (buf, '\0', (size_t) n) != NULL)
    return 0;
  buf[n] = '\0';
  return (size_t) n == size - 1 ? -ENAMETOOLONG : -EFAULT;
}

/* O_PATH fd of what a chown-family call names, resolved in the step's root. */
static int
resolve_chown_target (pid_t pid, int dirfd, const char *path, bool nofollow, bool empty_path)
{
  char p[PATH_MAX + 64];
  if (empty_path && path[0] == '\0')
    {
      snprintf (p, sizeof p, "/proc/%d/fd/%d", (int) pid, dirfd);
      int fd = open (p, O_PATH | O_CLOEXEC);
      return fd < 0 ? -errno : fd;
    }
  if (path[0] == '\0')
    return -ENOENT;
  snprintf (p, sizeof p, "/proc/%d/root", (int) pid);
  autoclose int root = open (p, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0)
    return -errno;
  autofree char *full = NULL;
  if (path[0] == '/')
    full = xstrdup (path);
  else
    {
      /* The base directory's path inside the root, checked to be the same
       * inode when opened under the root. */
      if (dirfd == AT_FDCWD)
        snprintf (p, sizeof p, "/proc/%d/cwd", (int) pid);
      else
        snprintf (p, sizeof p, "/proc/%d/fd/%d", (int) pid, dirfd);
      char base[PATH_MAX];
      ssize_t n = readlink (p, base, sizeof base - 1);
      if (n <= 0 || base[0] != '/')
        return n < 0 ? -errno : -EACCES;
      base[n] = '\0';
      autoclose int bfd = open (p, O_PATH | O_CLOEXEC);
      struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
      autoclose int chk = (int) syscall (SYS_openat2, root, base, &how, sizeof how);
      struct stat a, b;
      if (bfd < 0 || chk < 0 || fstat (bfd, &a) < 0 || fstat (chk, &b) < 0 || a.st_dev != b.st_dev
          || a.st_ino != b.st_ino)
        return -EACCES;
      full = xasprintf ("%s/%s", base, path);
    }
  struct open_how how = { .flags = O_PATH | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0),
                          .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
  int fd = (int) syscall (SYS_openat2, root, full, &how, sizeof how);
  return fd < 0 ? -errno : fd;
}

/* Is fd on the same filesystem as pid's root? */
static bool
on_step_root (pid_t pid, int fd)
{
  char p[64];
  snprintf (p, sizeof p, "/proc/%d/root", (int) pid);
  struct stat a, b;
  return stat (p, &a) == 0 && fstat (fd, &b) == 0 && a.st_dev == b.st_dev;
}

static void
handle_notification (const sandbox_config *cfg, int listener, struct seccomp_notif *req,
                     struct seccomp_notif_resp *resp)
{
  /* The kernel refuses a receive buffer that is not zeroed. */
  memset (req, 0, sizeof *req);
  if (seccomp_notify_receive (listener, req) < 0)
    return;
  resp->id = req->id;
  resp->val = 0;
  resp->error = 0;
  resp->flags = 0;
  autofree char *name = seccomp_syscall_resolve_num_arch (req->data.arch, req->data.nr);
  const __u64 *a = req->data.args;
  int dirfd = AT_FDCWD;
  uint64_t path_addr = 0;
  uid_t uid;
  gid_t gid;
  bool nofollow = false, empty = false, by_fd = false;
  if (name && (strcmp (name, "chown") == 0 || strcmp (name, "chown32") == 0 || strcmp (name, "lchown") == 0
               || strcmp (name, "lchown32") == 0))
    {
      path_addr = a[0];
      uid = (uid_t) a[1];
      gid = (gid_t) a[2];
      nofollow = name[0] == 'l';
    }
  else if (name && (strcmp (name, "fchown") == 0 || strcmp (name, "fchown32") == 0))
    {
      dirfd = (int) a[0];
      uid = (uid_t) a[1];
      gid = (gid_t) a[2];
      by_fd = empty = true;
    }
  else if (name && strcmp (name, "fchownat") == 0)
    {
      dirfd = (int) a[0];
      path_addr = a[1];
      uid = (uid_t) a[2];
      gid = (gid_t) a[3];
      if (a[4] & ~(uint64_t) (AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
        {
          resp->error = -EINVAL;
          goto respond;
        }
      nofollow = a[4] & AT_SYMLINK_NOFOLLOW;
      empty = a[4] & AT_EMPTY_PATH;
    }
  else
    {
      resp->error = -ENOSYS;
      goto respond;
    }
  char path[PATH_MAX];
  path[0] = '\0';
  if (!by_fd)
    {
      int r = read_target_string (req->pid, path_addr, path, sizeof path);
      if (r < 0)
        {
          resp->error = r == -ENAMETOOLONG ? r : -EFAULT;
          goto respond;
        }
    }
  /* The pid may have died and been reused while we read its memory. */
  if (seccomp_notify_id_valid (listener, req->id) < 0)
    return;
  int fd = resolve_chown_target (req->pid, dirfd, path, nofollow, empty);
  if (fd < 0)
    {
      resp->error = fd;
      goto respond;
    }
  if (seccomp_notify_id_valid (listener, req->id) < 0)
    {
      close (fd);
      return;
    }
  if (cfg->rootfs_fuse && !on_step_root (req->pid, fd))
    {
      /* Not on the overlay (e.g. /dev/shm): the kernel decides. */
      close (fd);
      resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
      goto respond;
    }
  int r = cfg->record_chown ? cfg->record_chown (cfg->record_chown_ctx, fd, by_fd ? "(fd)" : path, uid, gid)
                            : -EPERM;
  close (fd);
  resp->error = r < 0 ? r : 0;
respond:
  seccomp_notify_respond (listener, resp);
}

static int
supervise (const sandbox_config *cfg, int out_r, int err_r, int status_r, int sync_r, int *main_status,
           bool *got_status, bool *stop)
{
  int listener = -1;
  struct seccomp_notif *req = NULL;
  struct seccomp_notif_resp *resp = NULL;
  if (cfg->seccomp && cfg->seccomp->needs_listener && seccomp_notify_alloc (&req, &resp) < 0)
    return -1;
  if (!(cfg->seccomp && cfg->seccomp->needs_listener))
    sync_r = -1;
  outbuf o[2] = { { out_r, SANDBOX_STDOUT, STRBUF_INIT }, { err_r, SANDBOX_STDERR, STRBUF_INIT } };
  *got_status = false;
  *stop = false;
  while (o[0].fd >= 0 || o[1].fd >= 0 || status_r >= 0)
    {
      /* The cancel fd is never read (see sandbox_config.cancel_fd): every
       * other fd here is this step's own. */
      struct pollfd pf[6] = { { o[0].fd, POLLIN, 0 }, { o[1].fd, POLLIN, 0 }, { status_r, POLLIN, 0 },
                              { cfg->cancel_fd > 0 ? cfg->cancel_fd : -1, POLLIN, 0 },
                              { sync_r, POLLIN, 0 },   { listener, POLLIN, 0 } };
      int r = poll (pf, 6, -1);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        break;
      if (pf[3].revents & POLLIN)
        {
          *stop = true;
          break;
        }
      if (pf[4].revents & (POLLIN | POLLHUP | POLLERR))
        {
          if (listener < 0)
            listener = recv_fd (sync_r);
          sync_r = -1; /* one listener per step */
        }
      if (pf[5].revents & POLLIN)
        handle_notification (cfg, listener, req, resp);
      else if (pf[5].revents & (POLLHUP | POLLERR))
        close_fd (&listener);
      for (int i = 0; i < 2; i++)
        if (pf[i].revents & (POLLIN | POLLHUP | POLLERR))
          {
            strbuf_grow (&o[i].line, 65536);
            ssize_t n = read (o[i].fd, o[i].line.buf + o[i].line.len, 65536);
            if (n < 0 && errno == EINTR)
              continue;
            if (n <= 0)
              {
                emit_lines (cfg, &o[i], true);
                close_fd (&o[i].fd);
              }
            else
              {
                strbuf_setlen (&o[i].line, o[i].line.len + (size_t) n);
                emit_lines (cfg, &o[i], false);
              }
          }
      if (pf[2].revents & (POLLIN | POLLHUP | POLLERR))
        {
          ssize_t n = read (status_r, main_status, sizeof *main_status);
          if (n < 0 && errno == EINTR)
            continue;
          *got_status = n == (ssize_t) sizeof *main_status;
          status_r = -1; /* closed by the caller */
        }
    }
  for (int i = 0; i < 2; i++)
    {
      emit_lines (cfg, &o[i], true);
      strbuf_release (&o[i].line);
      close_fd (&o[i].fd);
    }
  close_fd (&listener);
  if (req)
    seccomp_notify_free (req, resp);
  return 0;
}

/* The helper created its user namespace ('u'): write the ID map, let it
 * go on ('g'). */
static int
map_ids (pid_t pid, int sock, int errfd, const sandbox_idmap *m, int cancel_fd, kiln_error **err)
{
  char b;
  if (wait_fds (&sock, 1, cancel_fd, HANDSHAKE_TIMEOUT_S) < 0)
    {
      if (errno == ETIMEDOUT)
        return kiln_error_make (err, 0, "the sandbox helper did not create its user namespace within %d s",
                                HANDSHAKE_TIMEOUT_S);
      return kiln_error_make (err, errno, "waiting for the sandbox helper");
    }
  if (read (sock, &b, 1) != 1)
    {
      if (read_setup_error (errfd, err) == 0)
        kiln_error_make (err, 0, "sandbox helper exited before creating its user namespace");
      return -1;
    }
  if (write_id_maps (pid, m, err) < 0)
    return kiln_error_wrap (err, "writing the user namespace ID map");
  b = 'g';
  if (write (sock, &b, 1) != 1)
    return kiln_error_make (err, errno, "signal the sandbox helper");
  return 0;
}

static int check_single_fuse (const sandbox_idmap *m, kiln_error **err);

typedef void (*child_main_fn) (child_ctx *c, pid_t kiln_pid, void *arg);

/* Make the sync socket and error pipe (kiln's ends in sp[0], ep[0]), fork
 * and run fn in the child (it never returns; it dies with kiln); close the
 * child's ends here. Returns the child's pid. */
static pid_t
spawn_child (child_ctx *c, int sp[2], int ep[2], child_main_fn fn, void *arg, kiln_error **err)
{
  /* see sandbox_run: our child-side ends must not reach another fork */
  pthread_mutex_lock (&fork_lock);
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 || pipe2 (ep, O_CLOEXEC) < 0)
    {
      int e = errno;
      pthread_mutex_unlock (&fork_lock);
      return kiln_error_make (err, e, "create pipes");
    }
  c->sync_fd = sp[1];
  c->err_fd = ep[1];
  pid_t self = getpid ();
  pid_t pid = fork_child ();
  if (pid == 0)
    {
      close (sp[0]);
      close (ep[0]);
      prctl (PR_SET_PDEATHSIG, SIGKILL);
      if (getppid () != self)
        _exit (SETUP_FAILED);
      fn (c, self, arg);
      _exit (SETUP_FAILED);
    }
  int e = errno;
  close_fd (&sp[1]);
  close_fd (&ep[1]);
  pthread_mutex_unlock (&fork_lock);
  if (pid < 0)
    return kiln_error_make (err, e, "fork");
  return pid;
}

/* The session's holder: see sandbox_session_new. */
static void __attribute__ ((noreturn))
holder_main (child_ctx *c, pid_t kiln_pid, void *arg)
{
  const sandbox_session_config *cfg = arg;
  int dirfd = cfg->dirfd;
  bool single = cfg->idmap->mode == SANDBOX_USERNS_SINGLE;
  int keep[] = { c->sync_fd, c->err_fd, dirfd };
  close_other_fds (keep, (int) ARRAY_SIZE (keep));
  /* Unsharing the mount namespace moves the working directory to the new
   * namespace's copy of it: the mount point is then reached without a path
   * walk the namespace's root might not be allowed to make. */
  if (fchdir (dirfd) < 0)
    child_die (c, errno, "enter the stage's mount directory");
  enter_userns (c, NULL, kiln_pid);
  if (unshare (CLONE_NEWNS) < 0)
    child_die (c, errno, "create a mount namespace");
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    child_die (c, errno, "make mounts private");
  mount_fuse (c, "mnt", single, false);
  int fds[3];
  fds[0] = open ("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
  fds[1] = open ("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
  fds[2] = open ("mnt", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  for (int i = 0; i < 3; i++)
    if (fds[i] < 0)
      child_die (c, errno, "open the stage's %s", i == 0 ? "user namespace" : i == 1 ? "mount namespace"
                                                                                  : "root filesystem");
  if (send_fds (c->sync_fd, 'N', fds, 3) < 0)
    child_die (c, errno, "send the stage's namespaces to kiln");
  _exit (0);
}

/* kiln's side of the holder's set-up; pid is the holder. */
static int
session_setup (const sandbox_session_config *cfg, pid_t pid, int sock, int errfd, sandbox_session *s,
               kiln_error **err)
{
  /* The holder only makes namespaces and a mount: a holder that has not
   * answered in a minute is stuck, and the build says so instead of
   * waiting for ever (wait_fds: ETIMEDOUT). */
  if (map_ids (pid, sock, errfd, cfg->idmap, cfg->cancel_fd, err) < 0)
    return -1;
  char tag = 0;
  int fds[3] = { -1, -1, -1 };
  int n = wait_fds (&sock, 1, cfg->cancel_fd, HANDSHAKE_TIMEOUT_S) < 0 ? -1 : recv_msg (sock, &tag, fds, 1, NULL);
  if (n != 1 || tag != 'F')
    {
      int e = errno;
      if (e == ECANCELED)
        return kiln_error_make (err, e, "cancelled");
      if (e == ETIMEDOUT)
        return kiln_error_make (err, 0, "the stage's mount holder did not hand over its FUSE mount within %d s",
                                HANDSHAKE_TIMEOUT_S);
      for (int i = 0; i < n; i++)
        close (fds[i]);
      if (read_setup_error (errfd, err) < 0)
        return -1;
      return kiln_error_make (err, e, "the stage's mount holder did not hand over its FUSE mount");
    }
  if (cfg->rootfs_fuse (cfg->rootfs_fuse_ctx, fds[0], err) < 0)
    return kiln_error_wrap (err, "serving the FUSE root filesystem");
  char ack = 'A';
  if (write (sock, &ack, 1) != 1)
    return kiln_error_make (err, errno, "signal the stage's mount holder");
  n = wait_fds (&sock, 1, cfg->cancel_fd, HANDSHAKE_TIMEOUT_S) < 0 ? -1 : recv_msg (sock, &tag, fds, 3, NULL);
  if (n != 3 || tag != 'N')
    {
      int e = errno;
      if (e == ECANCELED)
        return kiln_error_make (err, e, "cancelled");
      if (e == ETIMEDOUT)
        return kiln_error_make (err, 0, "the stage's mount holder did not hand over its namespaces within %d s "
                                        "(is the FUSE mount answering?)", HANDSHAKE_TIMEOUT_S);
      for (int i = 0; i < n; i++)
        close (fds[i]);
      if (read_setup_error (errfd, err) < 0)
        return -1;
      return kiln_error_make (err, e, "the stage's mount holder did not hand over its namespaces");
    }
  s->userns_fd = fds[0];
  s->mntns_fd = fds[1];
  s->root_fd = fds[2];
  return 0;
}

int
sandbox_session_new (const sandbox_session_config *cfg, sandbox_session **out, kiln_error **err)
{
  if (check_single_fuse (cfg->idmap, err) < 0)
    return -1;
  if ((mkdirat (cfg->dirfd, "mnt", 0755) < 0 && errno != EEXIST) || fchmod (cfg->dirfd, 0711) < 0)
    return kiln_error_make (err, errno, "create the stage's mount point");
  sandbox_session *s = xzalloc (sizeof *s);
  s->userns_fd = s->mntns_fd = s->root_fd = -1;
  child_ctx c;
  memset (&c, 0, sizeof c);
  int sp[2] = { -1, -1 }, ep[2] = { -1, -1 };
  int ret = -1;
  pid_t pid = spawn_child (&c, sp, ep, holder_main, (void *) cfg, err);
  if (pid < 0)
    goto out;
  if (session_setup (cfg, pid, sp[0], ep[0], s, err) < 0)
    {
      kill_and_reap (pid);
      kiln_error_wrap (err, "setting up the stage's mount");
      goto out;
    }
  int st;
  while (waitpid (pid, &st, 0) < 0 && errno == EINTR)
    ;
  *out = steal_pointer (&s);
  ret = 0;
out:
  for (int i = 0; i < 2; i++)
    {
      close_fd (&sp[i]);
      close_fd (&ep[i]);
    }
  sandbox_session_free (s);
  return ret;
}

typedef struct rm_arg
{
  int dirfd;
  const char *name;
} rm_arg;

static void __attribute__ ((noreturn))
rm_main (child_ctx *c, pid_t kiln_pid, void *arg)
{
  const rm_arg *a = arg;
  int keep[] = { c->sync_fd, c->err_fd, a->dirfd };
  close_other_fds (keep, (int) ARRAY_SIZE (keep));
  enter_userns (c, NULL, kiln_pid);
  kiln_error *e = NULL;
  if (fs_rm_rf_at (a->dirfd, a->name, &e) < 0)
    child_die (c, e->status, "%s", e->msg);
  _exit (0);
}

int
sandbox_rm_at_fallback (int dirfd, const char *name, kiln_error **err)
{
  sandbox_idmap m;
  autoerror kiln_error *e = NULL;
  if (geteuid () == 0 || sandbox_idmap_resolve (SANDBOX_USERNS_FULL, 0, &m, &e) < 0)
    return kiln_error_make (err, EACCES, "remove '%s': files owned by other users%s%s", name,
                            e ? " and no user namespace to remove them in: " : "", e ? e->msg : "");
  child_ctx c;
  memset (&c, 0, sizeof c);
  int sp[2] = { -1, -1 }, ep[2] = { -1, -1 };
  int ret = -1;
  rm_arg a = { dirfd, name };
  pid_t pid = spawn_child (&c, sp, ep, rm_main, &a, err);
  if (pid < 0)
    goto out;
  if (map_ids (pid, sp[0], ep[0], &m, -1, err) < 0)
    {
      kill_and_reap (pid);
      goto out;
    }
  int st;
  while (waitpid (pid, &st, 0) < 0 && errno == EINTR)
    ;
  if (read_setup_error (ep[0], err) < 0)
    goto out;
  if (!WIFEXITED (st) || WEXITSTATUS (st) != 0)
    {
      kiln_error_make (err, 0, "removing '%s' in a user namespace failed", name);
      goto out;
    }
  ret = 0;
out:
  for (int i = 0; i < 2; i++)
    {
      close_fd (&sp[i]);
      close_fd (&ep[i]);
    }
  if (ret < 0)
    kiln_error_wrap (err, "removing '%s' as root of a user namespace", name);
  return ret;
}

int
sandbox_session_sync (sandbox_session *s, kiln_error **err)
{
  if (syncfs (s->root_fd) < 0)
    return kiln_error_make (err, errno, "sync the stage's root filesystem");
  return 0;
}

void
sandbox_session_free (sandbox_session *s)
{
  if (!s)
    return;
  /* The root fd first: it pins the mount; then the namespaces. */
  close_fd (&s->root_fd);
  close_fd (&s->mntns_fd);
  close_fd (&s->userns_fd);
  free (s);
}

static int
check_single_fuse (const sandbox_idmap *m, kiln_error **err)
{
  if (m->mode == SANDBOX_USERNS_SINGLE && (geteuid () != m->host_uid || getegid () != m->host_gid))
    return kiln_error_make (err, 0, "a FUSE root filesystem in single ID mode needs kiln to run as the host "
                                    "user of the step's root (%u:%u), so that the seccomp supervisor may "
                                    "resolve chown targets on it; use full ID mode",
                            (unsigned) m->host_uid, (unsigned) m->host_gid);
  return 0;
}

int
sandbox_run (const sandbox_config *cfg, sandbox_result *res, kiln_error **err)
{
  if (cfg->argv == NULL || cfg->argv[0] == NULL || cfg->argv[0][0] == '\0')
    return kiln_error_make (err, 0, "no command to run");
  if (cfg->cwd && cfg->cwd[0] != '/')
    return kiln_error_make (err, 0, "working directory '%s' is not absolute", cfg->cwd);
  bool fuse_root = cfg->rootfs_fuse || cfg->session;
  if (fuse_root && check_single_fuse (cfg->idmap, err) < 0)
    return -1;
  if (!fuse_root && cfg->rootfs == NULL)
    return kiln_error_make (err, 0, "no root filesystem given");
  if (cfg->idmap->mode == SANDBOX_USERNS_SINGLE && (cfg->uid != 0 || cfg->gid != 0))
    log_warn ("single ID mode maps only root: the step runs as uid 0 instead of %u:%u%s (configure /etc/subuid "
              "and /etc/subgid ranges for full mapping)", (unsigned) cfg->uid, (unsigned) cfg->gid,
              cfg->rootfs_fuse ? "; files it creates are recorded as owned by that user" : "");
  child_ctx c;
  memset (&c, 0, sizeof c);
  c.cfg = cfg;
  c.rootfs_fd = -1;
  c.mount_trees = xcalloc (cfg->n_mounts + 1, sizeof *c.mount_trees);
  for (size_t i = 0; i < cfg->n_mounts; i++)
    c.mount_trees[i] = -1;
  const char *hn = cfg->hostname ? cfg->hostname : "kiln";
  c.resolv = cfg->network == SANDBOX_NET_NONE ? xstrdup ("") : read_host_resolv ();
  c.hosts = xasprintf ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n", hn);
  c.hostname_file = xasprintf ("%s\n", hn);
  int ret = -1;
  int sp[2] = { -1, -1 }, ep[2] = { -1, -1 }, op[2] = { -1, -1 }, xp[2] = { -1, -1 }, stp[2] = { -1, -1 };
  int init_pidfd = -1;
  pid_t pid = -1;
  bool fork_locked = false;

  if (cancelled (cfg->cancel_fd))
    {
      stopped (cfg, err);
      goto out;
    }
  if (prepare_caps (&c, err) < 0)
    goto out;
  /* Steps of parallel stages run sandbox_run on several threads. The
   * helper and init never exec, so O_CLOEXEC does not protect: a fork on
   * another thread between our pipe2() and our closing of the child's ends
   * would give that sandbox's long-lived init copies of our write ends, and
   * we would wait for EOF until its step ends. One lock from pipe creation
   * to those closes keeps our child-side ends out of every other fork. */
  pthread_mutex_lock (&fork_lock);
  fork_locked = true;
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 || pipe2 (ep, O_CLOEXEC) < 0
      || pipe2 (op, O_CLOEXEC) < 0 || pipe2 (xp, O_CLOEXEC) < 0 || pipe2 (stp, O_CLOEXEC) < 0)
    {
      kiln_error_make (err, errno, "create pipes");
      goto out;
    }
  if (!fuse_root && (c.rootfs_fd = open (cfg->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
    {
      kiln_error_make (err, errno, "open root filesystem '%s'", cfg->rootfs);
      goto out;
    }
  /* The FUSE handoff message carries init's pid (see serve_rootfs_fuse). */
  int on = 1;
  if (fuse_root && setsockopt (sp[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0)
    {
      kiln_error_make (err, errno, "setsockopt SO_PASSCRED");
      goto out;
    }
  c.sync_fd = sp[1];
  c.err_fd = ep[1];
  c.out_w = op[1];
  c.errs_w = xp[1];
  c.status_fd = stp[1];
  pid_t self = getpid ();
  pid = fork_child ();
  if (pid < 0)
    {
      kiln_error_make (err, errno, "fork");
      goto out;
    }
  if (pid == 0)
    {
      close (sp[0]);
      close (ep[0]);
      close (op[0]);
      close (xp[0]);
      close (stp[0]);
      helper_main (&c, self);
    }
  close_fd (&sp[1]);
  close_fd (&ep[1]);
  close_fd (&op[1]);
  close_fd (&xp[1]);
  close_fd (&stp[1]);
  fork_locked = false;
  pthread_mutex_unlock (&fork_lock);
  if (!cfg->session && map_ids (pid, sp[0], ep[0], cfg->idmap, cfg->cancel_fd, err) < 0)
    goto kill;
  if (fuse_root && serve_rootfs_fuse (cfg, sp[0], ep[0], &init_pidfd, err) < 0)
    {
      kiln_error_wrap (err, "setting up the sandbox");
      goto kill;
    }
  if (wait_setup (cfg, &ep[0], 1, err) < 0 || read_setup_error (ep[0], err) < 0)
    {
      kiln_error_wrap (err, "setting up the sandbox");
      goto kill;
    }
  int main_status = 0;
  bool got = false, stop = false;
  if (supervise (cfg, op[0], xp[0], stp[0], sp[0], &main_status, &got, &stop) < 0)
    {
      kiln_error_make (err, errno, "allocate seccomp notification buffers");
      goto kill;
    }
  op[0] = xp[0] = -1; /* closed by supervise via close_fd on its copies */
  if (stop)
    {
      kill_and_reap (pid);
      pid = -1;
      stopped (cfg, err);
      goto out;
    }
  int hst;
  while (waitpid (pid, &hst, 0) < 0 && errno == EINTR)
    ;
  pid = -1;
  if (!got)
    {
      kiln_error_make (err, 0, "the step's init died without reporting a status");
      goto out;
    }
  res->exited = WIFEXITED (main_status);
  res->status = res->exited ? WEXITSTATUS (main_status) : WTERMSIG (main_status);
  ret = 0;
  goto out;
kill:
  kill_and_reap (pid);
  pid = -1;
  /* A set-up step that failed because the build was cancelled (e.g. init
   * killed by the session's end) reports the cancellation. */
  if (cancelled (cfg->cancel_fd))
    {
      kiln_error_clear (err);
      stopped (cfg, err);
    }
out:
  end_init (&init_pidfd);
  for (int *fds[] = { sp, ep, op, xp, stp }, i = 0; i < 5; i++)
    {
      close_fd (&fds[i][0]);
      close_fd (&fds[i][1]);
    }
  if (fork_locked)
    pthread_mutex_unlock (&fork_lock);
  if (c.caps)
    cap_free (c.caps);
  if (c.rootfs_fd >= 0)
    close (c.rootfs_fd);
  free (c.mount_trees); /* only the children ever open them */
  free (c.resolv);
  free (c.hosts);
  free (c.hostname_file);
  return ret;
}

char *
sandbox_result_describe (const sandbox_result *res)
{
  if (res->exited)
    return xasprintf ("exited with status %d", res->status);
  return xasprintf ("killed by signal %d (%s)", res->status, strsignal (res->status));
}

void
sandbox_env_ensure_path (char ***env)
{
  for (char **e = *env; e && *e; e++)
    if (strncmp (*e, "PATH=", 5) == 0)
      return;
  strv_push (env, "PATH=" SANDBOX_DEFAULT_PATH);
}
