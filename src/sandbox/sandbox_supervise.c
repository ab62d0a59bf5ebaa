/* sandbox_supervise.c - kiln's side while a step runs: its output as lines
 * and, in single ID mode, the chown-family calls its seccomp filter hands
 * to kiln (resolved inside the step's root, answered by record_chown). */
#include "sandbox/sandbox_internal.h"
#include "util/alloc.h"
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

int
sandbox_supervise (const sandbox_config *cfg, int out_r, int err_r, int status_r, int sync_r, step_limits *sl,
                   int *main_status, bool *got_status, bool *stop)
{
  int listener = -1;
  struct seccomp_notif *req = NULL;
  struct seccomp_notif_resp *resp = NULL;
  if (cfg->seccomp && cfg->seccomp->needs_listener && seccomp_notify_alloc (&req, &resp) < 0)
    return -1;
  if (!(cfg->seccomp && cfg->seccomp->needs_listener))
    sync_r = -1;
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
        handle_notification (cfg, listener, req, resp);
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
  return 0;
}
