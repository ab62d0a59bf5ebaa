/* sandbox_supervise.c - kiln's side while a step runs: its output as lines
 * and, in single ID mode, the chown-family calls its seccomp filter hands
 * to kiln (resolved inside the step's root, answered by record_chown), the
 * stat-family calls (answered with the owners the overlay recorded) and
 * the get*id/set*id calls (sandbox_creds.c); socket() while a stage's
 * private network is not started (sandbox_net.c). */
#include "sandbox/sandbox_internal.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LINE_MAX_CHUNK 65536

static void
emit_lines (sandbox_outbuf *o, sandbox_output_fn fn, void *ctx, bool flush)
{
  size_t start = 0;
  for (size_t i = 0; i < o->line.len; i++)
    if (o->line.buf[i] == '\n' || i - start >= LINE_MAX_CHUNK)
      {
        if (fn)
          fn (ctx, o->stream, o->line.buf + start, i - start);
        start = o->line.buf[i] == '\n' ? i + 1 : i;
      }
  if (flush && start < o->line.len)
    {
      if (fn)
        fn (ctx, o->stream, o->line.buf + start, o->line.len - start);
      start = o->line.len;
    }
  memmove (o->line.buf, o->line.buf + start, o->line.len - start);
  strbuf_setlen (&o->line, o->line.len - start);
}

void
sandbox_outbuf_read (sandbox_outbuf *o, sandbox_output_fn fn, void *ctx)
{
  strbuf_grow (&o->line, 65536);
  ssize_t n = read (o->fd, o->line.buf + o->line.len, 65536);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (n <= 0)
    {
      emit_lines (o, fn, ctx, true);
      sandbox_close_fd (&o->fd);
      return;
    }
  strbuf_setlen (&o->line, o->line.len + (size_t) n);
  emit_lines (o, fn, ctx, false);
}

void
sandbox_outbuf_finish (sandbox_outbuf *o, sandbox_output_fn fn, void *ctx)
{
  emit_lines (o, fn, ctx, true);
  strbuf_release (&o->line);
  sandbox_close_fd (&o->fd);
}

/* Read a NUL-terminated string at addr from memfd (/proc/PID/mem). */
static int
read_target_string (int memfd, uint64_t addr, char *buf, size_t size)
{
  ssize_t n = pread (memfd, buf, size - 1, (off_t) addr);
  if (n < 0)
    {
      /* The string may end near a page boundary: retry byte-wise. */
      n = 0;
      while ((size_t) n < size - 1 && pread (memfd, buf + n, 1, (off_t) (addr + (uint64_t) n)) == 1
             && buf[n] != '\0')
        n++;
    }
  if (memchr (buf, '\0', (size_t) n) != NULL)
    return 0;
  buf[n] = '\0';
  return (size_t) n == size - 1 ? -ENAMETOOLONG : -EFAULT;
}

static int
open_mem (pid_t pid, int flags)
{
  char p[64];
  snprintf (p, sizeof p, "/proc/%d/mem", (int) pid);
  int fd = open (p, flags | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

/* openat2, again when a rename or mount in the step raced the resolution
 * (EAGAIN from RESOLVE_BENEATH / RESOLVE_IN_ROOT). */
static int
openat2_retry (int dirfd, const char *path, struct open_how *how)
{
  int fd, tries = 0;
  do
    fd = (int) syscall (SYS_openat2, dirfd, path, how, sizeof *how);
  while (fd < 0 && (errno == EINTR || errno == EAGAIN) && ++tries < 16);
  return fd;
}

/* O_PATH fd of the base directory of a relative path (dirfd, or the cwd). */
static int
open_base (pid_t pid, int dirfd, char *p, size_t size)
{
  if (dirfd == AT_FDCWD)
    snprintf (p, size, "/proc/%d/cwd", (int) pid);
  else
    snprintf (p, size, "/proc/%d/fd/%d", (int) pid, dirfd);
  int fd = open (p, O_PATH | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

/* O_PATH fd of what a chown- or stat-family call names, resolved in the
 * step's root. */
static int
resolve_chown_target (pid_t pid, int dirfd, const char *path, bool nofollow, bool empty_path)
{
  char p[PATH_MAX + 64];
  if (empty_path && path[0] == '\0')
    return open_base (pid, dirfd, p, sizeof p);
  if (path[0] == '\0')
    return -ENOENT;
  int oflags = O_PATH | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0);
  if (path[0] != '/')
    {
      /* Fast path: a relative path without symlinks and without ".." above
       * its base resolves from the base directory exactly as in the step. */
      autoclose int bfd = open_base (pid, dirfd, p, sizeof p);
      if (bfd < 0)
        return bfd;
      struct open_how how = { .flags = oflags, .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS };
      int fd = openat2_retry (bfd, path, &how);
      if (fd >= 0 || (errno != ELOOP && errno != EXDEV))
        return fd < 0 ? -errno : fd;
    }
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
      autoclose int chk = openat2_retry (root, base, &how);
      struct stat a, b;
      if (bfd < 0 || chk < 0 || fstat (bfd, &a) < 0 || fstat (chk, &b) < 0 || a.st_dev != b.st_dev
          || a.st_ino != b.st_ino)
        return -EACCES;
      full = xasprintf ("%s/%s", base, path);
    }
  struct open_how how = { .flags = oflags, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
  int fd = openat2_retry (root, full, &how);
  return fd < 0 ? -errno : fd;
}

bool
sandbox_fd_is_opath (pid_t pid, int fd)
{
  char p[64];
  snprintf (p, sizeof p, "/proc/%d/fdinfo/%d", (int) pid, fd);
  autoclose int f = open (p, O_RDONLY | O_CLOEXEC);
  char buf[256];
  ssize_t n = f < 0 ? -1 : read (f, buf, sizeof buf - 1);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  const char *flags = strstr (buf, "flags:");
  return flags && (strtoul (flags + 6, NULL, 8) & O_PATH);
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

/* The stat-family call of a notification: what it names and where its
 * result goes. */
typedef struct stat_call
{
  int dirfd;
  uint64_t path_addr; /* 0: none (fstat, or statx/newfstatat with NULL and AT_EMPTY_PATH) */
  uint64_t buf_addr;
  unsigned flags;     /* AT_* */
  unsigned mask;      /* statx */
  bool statx;
  bool i386;          /* the i386 ABI: struct stat64 (statx is the same everywhere) */
} stat_call;

/* i386's struct stat64 (arch/x86/include/uapi/asm/stat.h), 96 bytes. */
typedef struct __attribute__ ((packed)) i386_stat64
{
  uint64_t st_dev;
  uint8_t pad0[4];
  uint32_t st_ino32;
  uint32_t st_mode, st_nlink, st_uid, st_gid;
  uint64_t st_rdev;
  uint8_t pad3[4];
  int64_t st_size;
  uint32_t st_blksize;
  uint64_t st_blocks;
  uint32_t st_atime_, st_atime_nsec, st_mtime_, st_mtime_nsec, st_ctime_, st_ctime_nsec;
  uint64_t st_ino;
} i386_stat64;

_Static_assert (sizeof (i386_stat64) == 96, "i386 struct stat64 is 96 bytes");

/* The kernel's huge_encode_dev/new_encode_dev for a 32-bit ABI. */
static uint64_t
encode_dev32 (dev_t d)
{
  unsigned ma = major (d), mi = minor (d);
  return (mi & 0xff) | (ma << 8) | ((uint64_t) (mi & ~0xffu) << 12);
}

/* cp_stat64 (fs/stat.c): what the i386 ABI gets for st. */
static void
to_i386_stat64 (const struct stat *st, i386_stat64 *o)
{
  memset (o, 0, sizeof *o);
  o->st_dev = encode_dev32 (st->st_dev);
  o->st_ino32 = (uint32_t) st->st_ino;
  o->st_ino = st->st_ino;
  o->st_mode = st->st_mode;
  o->st_nlink = (uint32_t) st->st_nlink;
  o->st_uid = st->st_uid;
  o->st_gid = st->st_gid;
  o->st_rdev = encode_dev32 (st->st_rdev);
  o->st_size = st->st_size;
  o->st_blksize = (uint32_t) st->st_blksize;
  o->st_blocks = (uint64_t) st->st_blocks;
  o->st_atime_ = (uint32_t) st->st_atim.tv_sec;
  o->st_atime_nsec = (uint32_t) st->st_atim.tv_nsec;
  o->st_mtime_ = (uint32_t) st->st_mtim.tv_sec;
  o->st_mtime_nsec = (uint32_t) st->st_mtim.tv_nsec;
  o->st_ctime_ = (uint32_t) st->st_ctim.tv_sec;
  o->st_ctime_nsec = (uint32_t) st->st_ctim.tv_nsec;
}

static bool
parse_stat_call (const char *name, const __u64 *a, stat_call *c)
{
  bool i386 = c->i386;
  *c = (stat_call) { .dirfd = AT_FDCWD, .i386 = i386 };
  if (c->i386)
    {
      /* i386: the stat64 calls (struct stat64) and statx; the old stat,
       * lstat and fstat (struct __old_kernel_stat-era layouts) are left to
       * the kernel. */
      if (strcmp (name, "stat64") == 0 || strcmp (name, "lstat64") == 0)
        name = name[0] == 'l' ? "lstat" : "stat";
      else if (strcmp (name, "fstat64") == 0)
        name = "fstat";
      else if (strcmp (name, "fstatat64") == 0)
        name = "newfstatat";
      else if (strcmp (name, "statx") != 0)
        return false;
    }
  if (strcmp (name, "stat") == 0 || strcmp (name, "lstat") == 0)
    {
      c->path_addr = a[0];
      c->buf_addr = a[1];
      c->flags = name[0] == 'l' ? AT_SYMLINK_NOFOLLOW : 0;
    }
  else if (strcmp (name, "fstat") == 0)
    {
      c->dirfd = (int) a[0];
      c->buf_addr = a[1];
      c->flags = AT_EMPTY_PATH;
    }
  else if (strcmp (name, "newfstatat") == 0)
    {
      c->dirfd = (int) a[0];
      c->path_addr = a[1];
      c->buf_addr = a[2];
      c->flags = (unsigned) a[3];
    }
  else if (strcmp (name, "statx") == 0)
    {
      c->dirfd = (int) a[0];
      c->path_addr = a[1];
      c->flags = (unsigned) a[2];
      c->mask = (unsigned) a[3];
      c->buf_addr = a[4];
      c->statx = true;
    }
  else
    return false;
  unsigned known = AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | (c->statx ? AT_STATX_SYNC_TYPE : 0);
  /* Anything unusual (unknown flags, NULL path without AT_EMPTY_PATH) is
   * the kernel's to judge. */
  return !(c->flags & ~known) && (c->path_addr || (c->flags & AT_EMPTY_PATH));
}

/* A stat-family call in single mode: for a file on the FUSE root, do the
 * call on the target resolved in the step's root, put the owner the
 * overlay recorded in place of the one mapped id the kernel shows, and
 * write the result into the step's buffer (the native ABI's struct stat,
 * i386's struct stat64, struct statx). 1: answered (resp set); 0: left
 * to the kernel (another ABI, not on the root, resolution failed:
 * the kernel then reports the true error); -1: the notification is gone. */
static int
answer_stat (const sandbox_config *cfg, int listener, const struct seccomp_notif *req, const char *name,
             struct seccomp_notif_resp *resp)
{
  stat_call c = { .i386 = req->data.arch == SCMP_ARCH_X86 && seccomp_arch_native () == SCMP_ARCH_X86_64 };
  /* struct stat is the kernel's only on 64-bit ABIs; x32 calls carry bit 30. */
  bool native = sizeof (long) == 8 && req->data.arch == seccomp_arch_native () && req->data.nr < 0x40000000;
  if (!cfg->owner || !(native || c.i386) || !parse_stat_call (name, req->data.args, &c))
    return 0;
  /* Opened before the id is checked: the fd stays on that process's memory
   * even if the pid is reused afterwards. */
  autoclose int mem = open_mem (req->pid, O_RDWR);
  char path[PATH_MAX];
  path[0] = '\0';
  if (mem < 0 || (c.path_addr && read_target_string (mem, c.path_addr, path, sizeof path) < 0))
    return 0;
  if (seccomp_notify_id_valid (listener, req->id) < 0)
    return -1;
  autoclose int fd = resolve_chown_target (req->pid, c.dirfd, path, c.flags & AT_SYMLINK_NOFOLLOW,
                                           c.flags & AT_EMPTY_PATH);
  if (fd < 0)
    return 0;
  union
  {
    struct stat st;
    struct statx stx;
    i386_stat64 st64;
  } u;
  size_t len;
  dev_t dev;
  uint64_t ino;
  if (c.statx)
    {
      if (statx (fd, "", AT_EMPTY_PATH | (c.flags & AT_STATX_SYNC_TYPE), c.mask | STATX_INO, &u.stx) < 0
          || !(u.stx.stx_mask & STATX_INO))
        return 0;
      dev = makedev (u.stx.stx_dev_major, u.stx.stx_dev_minor);
      ino = u.stx.stx_ino;
      len = sizeof u.stx;
    }
  else
    {
      if (fstatat (fd, "", &u.st, AT_EMPTY_PATH) < 0)
        return 0;
      dev = u.st.st_dev;
      ino = u.st.st_ino;
      len = sizeof u.st;
    }
  char p[64];
  snprintf (p, sizeof p, "/proc/%d/root", (int) req->pid);
  struct stat root;
  uid_t uid;
  gid_t gid;
  if (stat (p, &root) < 0 || root.st_dev != dev || cfg->owner (cfg->owner_ctx, ino, &uid, &gid) < 0)
    return 0;
  if (c.statx)
    {
      if (u.stx.stx_mask & STATX_UID)
        u.stx.stx_uid = uid;
      if (u.stx.stx_mask & STATX_GID)
        u.stx.stx_gid = gid;
    }
  else
    {
      u.st.st_uid = uid;
      u.st.st_gid = gid;
      if (c.i386)
        {
          struct stat st = u.st;
          to_i386_stat64 (&st, &u.st64);
          len = sizeof u.st64;
        }
    }
  /* No second id check: mem stays on the memory of the process that made
   * the call; if it died meanwhile, the write fails. */
  ssize_t n;
  do
    n = pwrite (mem, &u, len, (off_t) c.buf_addr);
  while (n < 0 && errno == EINTR);
  resp->error = n == (ssize_t) len ? 0 : -EFAULT;
  return 1;
}

/* A chown by a process whose fake fs uid is not 0: the kernel's rule on
 * the owner kiln recorded (the kernel itself sees uid 0 and allows all). */
static int
check_chown (const sandbox_config *cfg, sandbox_creds *creds, pid_t pid, int fd, uid_t uid, gid_t gid)
{
  struct stat st;
  uid_t owner;
  gid_t group;
  if (!cfg->owner || fstat (fd, &st) < 0 || cfg->owner (cfg->owner_ctx, st.st_ino, &owner, &group) < 0)
    return 0;
  return sandbox_creds_may_chown (creds, pid, owner, group, uid, gid);
}

static void answer_chown (const sandbox_config *cfg, sandbox_creds *creds, int listener,
                          const struct seccomp_notif *req, struct seccomp_notif_resp *resp, const char *name);

/* Notifications answered per kind, for the debug log. */
typedef struct notif_counts
{
  unsigned long ids, stats, chowns;
} notif_counts;

static void
handle_notification (const sandbox_config *cfg, sandbox_creds *creds, int listener, struct seccomp_notif *req,
                     struct seccomp_notif_resp *resp, notif_counts *nc, kiln_error **stop_err)
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
  if (name && strcmp (name, "socket") == 0)
    {
      sandbox_net_answer_socket (cfg, listener, req, resp, stop_err);
      return;
    }
  if (name && (strstr (name, "id") || strstr (name, "groups") || strcmp (name, "capset") == 0))
    {
      nc->ids++;
      int r = sandbox_creds_answer (creds, listener, req, name, resp);
      if (r < 0)
        return;
      if (r == 0)
        resp->error = -ENOSYS;
      seccomp_notify_respond (listener, resp);
      return;
    }
  if (name && strstr (name, "stat"))
    {
      nc->stats++;
      int r = answer_stat (cfg, listener, req, name, resp);
      if (r < 0)
        return;
      if (r == 0)
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
      seccomp_notify_respond (listener, resp);
      return;
    }
  nc->chowns++;
  answer_chown (cfg, creds, listener, req, resp, name);
}

/* A chown-family call (single mode): resolved inside the step's root and
 * recorded by cfg->record_chown, or left to the kernel off the overlay. */
static void
answer_chown (const sandbox_config *cfg, sandbox_creds *creds, int listener, const struct seccomp_notif *req,
              struct seccomp_notif_resp *resp, const char *name)
{
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
      if (dirfd < 0 || sandbox_fd_is_opath (req->pid, dirfd))
        {
          resp->error = -EBADF;
          goto respond;
        }
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
      autoclose int mem = open_mem (req->pid, O_RDONLY);
      int r = mem < 0 ? mem : read_target_string (mem, path_addr, path, sizeof path);
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
  if ((cfg->rootfs_fuse || cfg->session) && !on_step_root (req->pid, fd))
    {
      /* Not on the overlay (e.g. /dev/shm): the kernel decides. */
      close (fd);
      resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
      goto respond;
    }
  int r = check_chown (cfg, creds, req->pid, fd, uid, gid);
  if (r == 0)
    r = cfg->record_chown ? cfg->record_chown (cfg->record_chown_ctx, fd, by_fd ? "(fd)" : path, uid, gid)
                          : -EPERM;
  close (fd);
  resp->error = r < 0 ? r : 0;
respond:
  seccomp_notify_respond (listener, resp);
}

int
sandbox_supervise (const sandbox_config *cfg, int out_r, int err_r, int status_r, int sync_r, step_limits *sl,
                   int *main_status, bool *got_status, bool *stop, kiln_error **stop_err)
{
  int listener = -1;
  struct seccomp_notif *req = NULL;
  struct seccomp_notif_resp *resp = NULL;
  if (cfg->seccomp && cfg->seccomp->needs_listener && seccomp_notify_alloc (&req, &resp) < 0)
    return -1;
  if (!(cfg->seccomp && cfg->seccomp->needs_listener))
    sync_r = -1;
  notif_counts nc = { 0, 0, 0 };
  sandbox_creds *own_creds = NULL, *creds = cfg->creds;
  /* Only single mode's filter hands id and chown calls to us; a lazy_net
   * filter alone needs no credentials. */
  if (!creds && req && cfg->seccomp->fake_ids)
    creds = own_creds = sandbox_creds_new (cfg->uid, cfg->gid, cfg->groups, cfg->n_groups);
  sandbox_outbuf o[2] = { { out_r, SANDBOX_STDOUT, STRBUF_INIT }, { err_r, SANDBOX_STDERR, STRBUF_INIT } };
  *got_status = false;
  *stop = false;
  while (o[0].fd >= 0 || o[1].fd >= 0 || status_r >= 0)
    {
      /* The cancel fd is never read (see sandbox_config.cancel_fd): every
       * other fd here is this step's own. */
      struct pollfd pf[6] = { { o[0].fd, POLLIN, 0 }, { o[1].fd, POLLIN, 0 }, { status_r, POLLIN, 0 },
                              { cfg->cancel_fd > 0 ? cfg->cancel_fd : -1, POLLIN, 0 },
                              { sync_r, POLLIN, 0 },   { listener, POLLIN, 0 } };
      int limits = sandbox_limits_polling (sl);
      int r = poll (pf, 6, limits ? limits : -1);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        break;
      if ((pf[3].revents & POLLIN) || (limits && sandbox_limits_poll (sl, false) != SANDBOX_LIMIT_NONE))
        {
          *stop = true;
          break;
        }
      if (pf[4].revents & (POLLIN | POLLHUP | POLLERR))
        {
          if (listener < 0)
            listener = sandbox_recv_fd (sync_r);
          sync_r = -1; /* one listener per step */
        }
      if (pf[5].revents & POLLIN)
        {
          handle_notification (cfg, creds, listener, req, resp, &nc, stop_err);
          if (*stop_err)
            {
              *stop = true;
              break;
            }
        }
      else if (pf[5].revents & (POLLHUP | POLLERR))
        sandbox_close_fd (&listener);
      for (int i = 0; i < 2; i++)
        if (pf[i].revents & (POLLIN | POLLHUP | POLLERR))
          sandbox_outbuf_read (&o[i], cfg->output, cfg->output_ctx);
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
    sandbox_outbuf_finish (&o[i], cfg->output, cfg->output_ctx);
  sandbox_close_fd (&listener);
  if (req)
    seccomp_notify_free (req, resp);
  sandbox_creds_free (own_creds);
  if (req)
    log_debug ("seccomp supervisor: answered %lu get/set-id, %lu stat and %lu chown calls", nc.ids, nc.stats,
               nc.chowns);
  return 0;
}
