/* sandbox.c - run one step: sandbox_run's pipes, fork, set-up handshake,
 * supervision and teardown (the children are in sandbox_child.c, the
 * supervisor in sandbox_supervise.c; see sandbox_internal.h for the map);
 * option parsing, result and environment helpers. */
#include "sandbox/sandbox_internal.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

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
  if (strcmp (s, "private") == 0 || strcmp (s, "default") == 0)
    *out = SANDBOX_NET_PRIVATE;
  else if (strcmp (s, "host") == 0)
    *out = SANDBOX_NET_HOST;
  else if (strcmp (s, "none") == 0)
    *out = SANDBOX_NET_NONE;
  else
    return kiln_error_make (err, 0, "invalid network mode '%s' (expected private, default, host or none)", s);
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

void
sandbox_etc_files (sandbox_net_mode net, const char *hostname, char **resolv, char **hosts)
{
  switch (net)
    {
    case SANDBOX_NET_NONE:
      *resolv = xstrdup ("");
      break;
    case SANDBOX_NET_HOST:
      *resolv = read_host_resolv ();
      break;
    case SANDBOX_NET_PRIVATE:
      {
        autofree char *host = read_host_resolv ();
        *resolv = sandbox_net_resolv (host);
        break;
      }
    }
  *hosts = xasprintf ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n", hostname);
}

/* The caller cancelled the step (sandbox_cancel_error). */
static int
stopped (const sandbox_config *cfg, kiln_error **err)
{
  return sandbox_cancel_error (cfg->cancel_signal, cfg->interrupted, "; the step was killed", err);
}

/* sandbox_wait_fds without a timeout, for sandbox_run's set-up: a
 * cancellation becomes stopped(). */
static int
wait_setup (const sandbox_config *cfg, const int *fds, int n, kiln_error **err)
{
  int w = sandbox_wait_fds (fds, n, cfg->cancel_fd, 0);
  if (w < 0 && errno == ECANCELED)
    return stopped (cfg, err);
  if (w < 0)
    return kiln_error_make (err, errno, "poll");
  return w;
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

/* Receive the FUSE fd from the step's init (with its pid: SO_PASSCRED is on),
 * have the caller serve it, then let init go on. A setup error reported on
 * errfd before that ends the wait. */
static int
serve_rootfs_fuse (const sandbox_config *cfg, int sock, int errfd, int *init_pidfd, pid_t *init_pid,
                   kiln_error **err)
{
  int fds[2] = { sock, errfd };
  int w = wait_setup (cfg, fds, 2, err);
  if (w < 0)
    return -1;
  if (w == 1)
    {
      if (sandbox_read_setup_error (errfd, err) < 0)
        return -1;
      return kiln_error_make (err, 0, "the step's init exited before handing over its FUSE mount");
    }
  char tag = 0;
  autoclose int fd = -1;
  pid_t pid = 0;
  int n = sandbox_recv_msg (sock, &tag, &fd, 1, &pid);
  int saved = errno;
  int off = 0;
  setsockopt (sock, SOL_SOCKET, SO_PASSCRED, &off, sizeof off);
  if (n < 0)
    {
      if (saved)
        return kiln_error_make (err, saved, "receive the FUSE fd from the step's init");
      if (sandbox_read_setup_error (errfd, err) < 0)
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
  *init_pid = pid;
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
  sandbox_close_fd (pidfd);
}

static bool
has_fuse_root (const sandbox_config *cfg)
{
  return cfg->rootfs_fuse || cfg->session;
}

/* Refuse what sandbox_run cannot run; warn about the ids single ID mode
 * cannot give the step. */
static int
check_config (const sandbox_config *cfg, kiln_error **err)
{
  if (cfg->argv == NULL || cfg->argv[0] == NULL || cfg->argv[0][0] == '\0')
    return kiln_error_make (err, 0, "no command to run");
  if (cfg->cwd && cfg->cwd[0] != '/')
    return kiln_error_make (err, 0, "working directory '%s' is not absolute", cfg->cwd);
  bool fuse_root = has_fuse_root (cfg);
  if (fuse_root && sandbox_check_single_fuse (cfg->idmap, err) < 0)
    return -1;
  if (!fuse_root && cfg->rootfs == NULL)
    return kiln_error_make (err, 0, "no root filesystem given");
  if (cfg->idmap->mode == SANDBOX_USERNS_SINGLE && (cfg->uid != 0 || cfg->gid != 0))
    log_warn ("single ID mode maps only root: the step runs as uid 0 and sees %u:%u only through getuid() and "
              "friends; permission checks are root's (configure /etc/subuid and /etc/subgid ranges for full "
              "mapping)", (unsigned) cfg->uid, (unsigned) cfg->gid);
  return 0;
}

/* What the children get from kiln besides the fds (start_helper sets
 * those): freed by child_ctx_release. */
static void
child_ctx_init (child_ctx *c, const sandbox_config *cfg)
{
  memset (c, 0, sizeof *c);
  c->cfg = cfg;
  c->rootfs_fd = -1;
  c->cgroup_procs[0] = c->cgroup_procs[1] = -1;
  c->mount_trees = xcalloc (cfg->n_mounts + 1, sizeof *c->mount_trees);
  for (size_t i = 0; i < cfg->n_mounts; i++)
    c->mount_trees[i] = -1;
  const char *hn = cfg->hostname ? cfg->hostname : "kiln";
  sandbox_etc_files (cfg->network, hn, &c->resolv, &c->hosts);
  c->hostname_file = xasprintf ("%s\n", hn);
}

static void
child_ctx_release (child_ctx *c)
{
  if (c->caps)
    cap_free (c->caps);
  if (c->rootfs_fd >= 0)
    close (c->rootfs_fd);
  free (c->mount_trees); /* only the children ever open them */
  free (c->resolv);
  free (c->hosts);
  free (c->hostname_file);
}

/* A step's channels to its helper, init and process: [0] is kiln's end,
 * [1] the children's. */
typedef struct step_pipes
{
  int sp[2];    /* sync socket: one-byte messages with fds */
  int ep[2];    /* set-up error pipe */
  int op[2];    /* the step's stdout */
  int xp[2];    /* the step's stderr */
  int stp[2];   /* init's report of the main process's wait status */
} step_pipes;

static void
close_pipes (step_pipes *p)
{
  for (int *fds[] = { p->sp, p->ep, p->op, p->xp, p->stp }, i = 0; i < 5; i++)
    {
      sandbox_close_fd (&fds[i][0]);
      sandbox_close_fd (&fds[i][1]);
    }
}

/* Create the step's pipes, open its root directory and fork the helper
 * (sandbox_helper_main); kiln keeps only its own ends. Returns the
 * helper's pid, or -1 with the pipes closed again (c->rootfs_fd is
 * child_ctx_release's). */
static pid_t
start_helper (child_ctx *c, step_pipes *p, kiln_error **err)
{
  const sandbox_config *cfg = c->cfg;
  bool fuse_root = has_fuse_root (cfg);
  /* Steps of parallel stages run sandbox_run on several threads. The
   * helper and init never exec, so O_CLOEXEC does not protect: a fork on
   * another thread between our pipe2() and our closing of the child's ends
   * would give that sandbox's long-lived init copies of our write ends, and
   * we would wait for EOF until its step ends. One lock from pipe creation
   * to those closes keeps our child-side ends out of every other fork. */
  pthread_mutex_lock (&sandbox_fork_lock);
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->sp) < 0 || pipe2 (p->ep, O_CLOEXEC) < 0
      || pipe2 (p->op, O_CLOEXEC) < 0 || pipe2 (p->xp, O_CLOEXEC) < 0 || pipe2 (p->stp, O_CLOEXEC) < 0)
    {
      kiln_error_make (err, errno, "create pipes");
      goto fail;
    }
  if (!fuse_root && (c->rootfs_fd = open (cfg->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
    {
      kiln_error_make (err, errno, "open root filesystem '%s'", cfg->rootfs);
      goto fail;
    }
  /* The FUSE handoff message carries init's pid (see serve_rootfs_fuse). */
  int on = 1;
  if (fuse_root && setsockopt (p->sp[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0)
    {
      kiln_error_make (err, errno, "setsockopt SO_PASSCRED");
      goto fail;
    }
  c->sync_fd = p->sp[1];
  c->err_fd = p->ep[1];
  c->out_w = p->op[1];
  c->errs_w = p->xp[1];
  c->status_fd = p->stp[1];
  pid_t self = getpid ();
  pid_t pid = sandbox_fork_child ();
  if (pid < 0)
    {
      kiln_error_make (err, errno, "fork");
      goto fail;
    }
  if (pid == 0)
    {
      close (p->sp[0]);
      close (p->ep[0]);
      close (p->op[0]);
      close (p->xp[0]);
      close (p->stp[0]);
      sandbox_helper_main (c, self);
    }
  sandbox_close_fd (&p->sp[1]);
  sandbox_close_fd (&p->ep[1]);
  sandbox_close_fd (&p->op[1]);
  sandbox_close_fd (&p->xp[1]);
  sandbox_close_fd (&p->stp[1]);
  pthread_mutex_unlock (&sandbox_fork_lock);
  return pid;
fail:
  /* Closed before the lock is released, like the child's ends above. */
  close_pipes (p);
  pthread_mutex_unlock (&sandbox_fork_lock);
  return -1;
}

/* kiln's side of the helper's set-up: the ID map (a session step joins
 * the session's user namespace instead), the private network (pasta), the
 * FUSE root (*init_pidfd and sl->init_pid are set then), and the error
 * pipe until EOF (the step's process exec'd) or a set-up error. */
static int
setup_handshake (const sandbox_config *cfg, pid_t pid, const step_pipes *p, int *init_pidfd, sandbox_net *net,
                 step_limits *sl,
                 kiln_error **err)
{
  if (!cfg->session && sandbox_map_ids (pid, p->sp[0], p->ep[0], cfg->idmap, cfg->cancel_fd, err) < 0)
    return -1;
  /* A step whose filter cannot tell kiln when it first opens a network
   * socket gets the session's network up front. */
  if (sandbox_net_from_session (cfg) && !(cfg->seccomp && cfg->seccomp->lazy_net)
      && sandbox_net_session_ensure (cfg->session, cfg->cancel_fd, err) < 0)
    return kiln_error_wrap (err, "private network");
  if (cfg->network == SANDBOX_NET_PRIVATE && !sandbox_net_from_session (cfg)
      && sandbox_net_attach (cfg, p->sp[0], p->ep[0], net, err) < 0)
    return kiln_error_wrap (err, "setting up the sandbox");
  if (has_fuse_root (cfg) && serve_rootfs_fuse (cfg, p->sp[0], p->ep[0], init_pidfd, &sl->init_pid, err) < 0)
    return kiln_error_wrap (err, "setting up the sandbox");
  if (wait_setup (cfg, &p->ep[0], 1, err) < 0 || sandbox_read_setup_error (p->ep[0], err) < 0)
    return kiln_error_wrap (err, "setting up the sandbox");
  return 0;
}

/* The result of a step killed for reaching a limit. */
static int
limit_result (sandbox_result *res, sandbox_limit_hit hit)
{
  res->exited = false;
  res->status = SIGKILL;
  res->limit = hit;
  return 0;
}

int
sandbox_run (const sandbox_config *cfg, sandbox_result *res, kiln_error **err)
{
  if (check_config (cfg, err) < 0)
    return -1;
  child_ctx c;
  child_ctx_init (&c, cfg);
  int ret = -1;
  step_pipes p = { { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 } };
  int init_pidfd = -1;
  pid_t pid = -1;
  sandbox_net net = { -1, -1 };
  step_limits sl;
  memset (res, 0, sizeof *res);

  if (sandbox_limits_step_begin (cfg->limiter, &sl, err) < 0)
    {
      kiln_error_wrap (err, "setting up the step's resource limits");
      goto out;
    }
  c.cgroup_procs[0] = sl.procs_fd[0];
  c.cgroup_procs[1] = sl.procs_fd[1];
  if (sandbox_cancelled (cfg->cancel_fd))
    {
      stopped (cfg, err);
      goto out;
    }
  if (prepare_caps (&c, err) < 0)
    goto out;
  pid = start_helper (&c, &p, err);
  if (pid < 0)
    goto out;
  if (setup_handshake (cfg, pid, &p, &init_pidfd, &net, &sl, err) < 0)
    goto kill;
  int main_status = 0;
  bool got = false, stop = false;
  kiln_error *net_err = NULL;
  if (sandbox_supervise (cfg, p.op[0], p.xp[0], p.stp[0], p.sp[0], &sl, &main_status, &got, &stop, &net_err) < 0)
    {
      kiln_error_make (err, errno, "allocate seccomp notification buffers");
      goto kill;
    }
  p.op[0] = p.xp[0] = -1; /* closed by sandbox_supervise via sandbox_close_fd on its copies */
  if (stop)
    {
      sandbox_kill_and_reap (pid);
      pid = -1;
      if (sl.hit)
        ret = limit_result (res, sl.hit);
      else if (net_err && !sandbox_cancelled (cfg->cancel_fd))
        {
          *err = steal_pointer (&net_err);
          kiln_error_wrap (err, "private network");
        }
      else
        stopped (cfg, err);
      kiln_error_free (net_err);
      goto out;
    }
  int hst;
  while (waitpid (pid, &hst, 0) < 0 && errno == EINTR)
    ;
  pid = -1;
  /* An OOM kill the last poll missed (the helper, and so init, is gone):
   * cgroup v2 kills the whole step, init too; v1 one process, and the step
   * then usually fails. */
  sandbox_limits_poll (&sl, true);
  if (!got && sl.hit)
    ret = limit_result (res, sl.hit);
  else if (!got)
    kiln_error_make (err, 0, "the step's init died without reporting a status");
  else
    {
      res->exited = WIFEXITED (main_status);
      res->status = res->exited ? WEXITSTATUS (main_status) : WTERMSIG (main_status);
      /* Also after a success: a step whose process was OOM-killed or
       * whose fork failed at the limit has a result not to trust. */
      res->limit = sl.hit;
      ret = 0;
    }
  goto out;
kill:
  sandbox_kill_and_reap (pid);
  pid = -1;
  /* A set-up step that failed because the build was cancelled (e.g. init
   * killed by the session's end) reports the cancellation. */
  if (sandbox_cancelled (cfg->cancel_fd))
    {
      kiln_error_clear (err);
      stopped (cfg, err);
    }
out:
  end_init (&init_pidfd);
  sandbox_net_detach (&net);
  sandbox_limits_step_end (&sl);
  close_pipes (&p);
  child_ctx_release (&c);
  return ret;
}

char *
sandbox_result_describe (const sandbox_result *res)
{
  if (res->limit == SANDBOX_LIMIT_MEMORY)
    return xstrdup ("killed: out of memory");
  if (res->limit == SANDBOX_LIMIT_PIDS)
    return xstrdup ("killed: process limit reached");
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
