/* sandbox_session.c - short-lived children other than a step's: the holder
 * of a stage's FUSE mount (sandbox_session_*) and rm -rf as root of a user
 * namespace (sandbox_rm_at_fallback). */
#include "sandbox/sandbox_internal.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef void (*child_main_fn) (child_ctx *c, pid_t kiln_pid, void *arg);

/* Make the sync socket and error pipe (kiln's ends in sp[0], ep[0]), fork
 * and run fn in the child (it never returns; it dies with kiln); close the
 * child's ends here. Returns the child's pid. */
static pid_t
spawn_child (child_ctx *c, int sp[2], int ep[2], child_main_fn fn, void *arg, kiln_error **err)
{
  /* see start_helper (sandbox.c): our child-side ends must not reach another fork */
  pthread_mutex_lock (&sandbox_fork_lock);
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 || pipe2 (ep, O_CLOEXEC) < 0)
    {
      int e = errno;
      pthread_mutex_unlock (&sandbox_fork_lock);
      return kiln_error_make (err, e, "create pipes");
    }
  c->sync_fd = sp[1];
  c->err_fd = ep[1];
  pid_t self = getpid ();
  pid_t pid = sandbox_fork_child ();
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
  sandbox_close_fd (&sp[1]);
  sandbox_close_fd (&ep[1]);
  pthread_mutex_unlock (&sandbox_fork_lock);
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
  sandbox_close_other_fds (keep, (int) ARRAY_SIZE (keep));
  /* Unsharing the mount namespace moves the working directory to the new
   * namespace's copy of it: the mount point is then reached without a path
   * walk the namespace's root might not be allowed to make. */
  if (fchdir (dirfd) < 0)
    sandbox_child_die (c, errno, "enter the stage's mount directory");
  sandbox_enter_userns (c, NULL, kiln_pid);
  bool net = cfg->network == SANDBOX_NET_PRIVATE;
  if (unshare (CLONE_NEWNS | (net ? CLONE_NEWNET : 0)) < 0)
    sandbox_child_die (c, errno, net ? "create mount and network namespaces" : "create a mount namespace");
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    sandbox_child_die (c, errno, "make mounts private");
  sandbox_mount_fuse (c, "mnt", single, false);
  int fds[4];
  int n = net ? 4 : 3;
  fds[0] = open ("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
  fds[1] = open ("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
  fds[2] = open ("mnt", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  fds[3] = net ? open ("/proc/self/ns/net", O_RDONLY | O_CLOEXEC) : -1;
  static const char *const what[] = { "user namespace", "mount namespace", "root filesystem", "network namespace" };
  for (int i = 0; i < n; i++)
    if (fds[i] < 0)
      sandbox_child_die (c, errno, "open the stage's %s", what[i]);
  if (sandbox_send_fds (c->sync_fd, 'N', fds, n) < 0)
    sandbox_child_die (c, errno, "send the stage's namespaces to kiln");
  _exit (0);
}

/* The holder did not send its WHAT (n fds received, errno e; recv_msg
 * gives n < 0 with e == 0 at EOF): say why. Its error pipe is read only at
 * EOF of its socket, i.e. once it exited: a holder still alive holds the
 * pipe's write end, and reading it would wait for ever (a cancellation
 * that arrives while the holder waits for kiln's answer did exactly that). */
static int
holder_failed (int n, int *fds, int e, int errfd, const char *what, const char *timeout_hint, kiln_error **err)
{
  for (int i = 0; i < n; i++)
    close (fds[i]);
  if (e == ECANCELED)
    return kiln_error_make (err, e, "cancelled");
  if (e == ETIMEDOUT)
    return kiln_error_make (err, 0, "the stage's mount holder did not hand over its %s within %d s%s", what,
                            HANDSHAKE_TIMEOUT_S, timeout_hint);
  if (n < 0 && e == 0 && sandbox_read_setup_error (errfd, err) < 0)
    return -1;
  return kiln_error_make (err, e, "the stage's mount holder did not hand over its %s", what);
}

/* kiln's side of the holder's set-up; pid is the holder. */
static int
session_setup (const sandbox_session_config *cfg, pid_t pid, int sock, int errfd, sandbox_session *s,
               kiln_error **err)
{
  /* The holder only makes namespaces and a mount: a holder that has not
   * answered in a minute is stuck, and the build says so instead of
   * waiting for ever (sandbox_wait_fds: ETIMEDOUT). */
  if (sandbox_map_ids (pid, sock, errfd, cfg->idmap, cfg->cancel_fd, err) < 0)
    return -1;
  char tag = 0;
  int fds[4] = { -1, -1, -1, -1 };
  int want = cfg->network == SANDBOX_NET_PRIVATE ? 4 : 3;
  int n = sandbox_wait_fds (&sock, 1, cfg->cancel_fd, HANDSHAKE_TIMEOUT_S) < 0
            ? -1 : sandbox_recv_msg (sock, &tag, fds, 1, NULL);
  if (n != 1 || tag != 'F')
    return holder_failed (n, fds, errno, errfd, "FUSE mount", "", err);
  if (cfg->rootfs_fuse (cfg->rootfs_fuse_ctx, fds[0], err) < 0)
    return kiln_error_wrap (err, "serving the FUSE root filesystem");
  char ack = 'A';
  if (write (sock, &ack, 1) != 1)
    return kiln_error_make (err, errno, "signal the stage's mount holder");
  n = sandbox_wait_fds (&sock, 1, cfg->cancel_fd, HANDSHAKE_TIMEOUT_S) < 0
        ? -1 : sandbox_recv_msg (sock, &tag, fds, 4, NULL);
  if (n != want || tag != 'N')
    return holder_failed (n, fds, errno, errfd, "namespaces", " (is the FUSE mount answering?)", err);
  s->userns_fd = fds[0];
  s->mntns_fd = fds[1];
  s->root_fd = fds[2];
  /* pasta starts when a step needs it (sandbox_net.c, "Started on demand"). */
  s->netns_fd = fds[3];
  return 0;
}

int
sandbox_session_new (const sandbox_session_config *cfg, sandbox_session **out, kiln_error **err)
{
  if (sandbox_check_single_fuse (cfg->idmap, err) < 0)
    return -1;
  if ((mkdirat (cfg->dirfd, "mnt", 0755) < 0 && errno != EEXIST) || fchmod (cfg->dirfd, 0711) < 0)
    return kiln_error_make (err, errno, "create the stage's mount point");
  sandbox_session *s = xzalloc (sizeof *s);
  s->userns_fd = s->mntns_fd = s->root_fd = s->netns_fd = -1;
  s->net.pid = s->net.pidfd = -1;
  child_ctx c;
  memset (&c, 0, sizeof c);
  int sp[2] = { -1, -1 }, ep[2] = { -1, -1 };
  int ret = -1;
  pid_t pid = spawn_child (&c, sp, ep, holder_main, (void *) cfg, err);
  if (pid < 0)
    goto out;
  if (session_setup (cfg, pid, sp[0], ep[0], s, err) < 0)
    {
      sandbox_kill_and_reap (pid);
      /* A wait that the caller cancelled says so, as a cancelled step does. */
      if (sandbox_cancelled (cfg->cancel_fd))
        {
          kiln_error_clear (err);
          sandbox_cancel_error (cfg->cancel_signal, NULL, "", err);
        }
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
      sandbox_close_fd (&sp[i]);
      sandbox_close_fd (&ep[i]);
    }
  sandbox_session_free (s);
  return ret;
}

bool
sandbox_session_net_started (const sandbox_session *s)
{
  return s->netns_fd < 0 || s->net.pid > 0;
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
  /* pasta first (it serves the network namespace); the root fd next: it
   * pins the mount; then the namespaces. */
  sandbox_net_detach (&s->net);
  sandbox_close_fd (&s->root_fd);
  sandbox_close_fd (&s->netns_fd);
  sandbox_close_fd (&s->mntns_fd);
  sandbox_close_fd (&s->userns_fd);
  free (s);
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
  sandbox_close_other_fds (keep, (int) ARRAY_SIZE (keep));
  sandbox_enter_userns (c, NULL, kiln_pid);
  kiln_error *e = NULL;
  if (fs_rm_rf_at (a->dirfd, a->name, &e) < 0)
    sandbox_child_die (c, e->status, "%s", e->msg);
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
  if (sandbox_map_ids (pid, sp[0], ep[0], &m, -1, err) < 0)
    {
      sandbox_kill_and_reap (pid);
      goto out;
    }
  int st;
  while (waitpid (pid, &st, 0) < 0 && errno == EINTR)
    ;
  if (sandbox_read_setup_error (ep[0], err) < 0)
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
      sandbox_close_fd (&sp[i]);
      sandbox_close_fd (&ep[i]);
    }
  if (ret < 0)
    kiln_error_wrap (err, "removing '%s' as root of a user namespace", name);
  return ret;
}
