/* sandbox_net.c - the private network of a RUN step (SANDBOX_NET_PRIVATE):
 * the step's own network namespace, wired to the outside by pasta (Debian's
 * passt package), a user-mode TCP/IP stack that turns the step's
 * connections into ordinary sockets of an unprivileged process.
 *
 * The helper makes the network namespace and sends it (with its user
 * namespace) as 'n' (or, for a stage session's steps, the session's holder
 * made one for all of them); kiln starts pasta inside that user namespace as its
 * root (so pasta holds no privilege outside the step's namespaces), waits
 * until pasta has configured the interface, and answers 'w'. pasta runs in
 * the foreground as kiln's child and is stopped when the step ends.
 *
 * What the step gets: outbound TCP/UDP/ICMP through the host's routes, a
 * loopback of its own, DNS at SANDBOX_NET_DNS (forwarded to the host's
 * first nameserver, also when that is a loopback resolver). What it does
 * not get: the host's loopback services (--no-map-gw), the host's abstract
 * unix sockets (they belong to a network namespace), inbound ports (no
 * forwarding: -t/-u/-T/-U none).
 *
 * Started on demand: a stage session's namespace gets its pasta when a step
 * first opens a network socket, not when the session starts (pasta's
 * start, ~60-120 ms, was most of a short stage's time). Until then the
 * session's steps run with a filter that hands every socket() the profile
 * allows, but AF_UNIX ones, to the supervisor (seccomp_profile_env.lazy_net);
 * sandbox_net_answer_socket starts pasta, waits until it configured the
 * interface and lets the call run. Steps without that filter (no seccomp
 * filter, a profile that allows by default) start it before they run.
 */
#include "sandbox/sandbox_internal.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long pasta may take to configure the namespace (it takes ~50 ms). */
#define NET_SETUP_TIMEOUT_S 20

/* Fixed fd numbers in pasta's process. */
enum
{
  PASTA_NETNS_FD = 3,
  PASTA_READY_FD = 4,
};

static int
pidfd_open_ (pid_t pid)
{
  return (int) syscall (SYS_pidfd_open, pid, 0);
}

/* pasta's own process: enter the step's user namespace as its root, then
 * exec pasta on the step's network namespace. Never returns. */
static void __attribute__ ((noreturn))
pasta_main (int userns, int netns, int ready_w, int log_fd)
{
  /* Above the fixed numbers first: any of ours may sit on 3 or 4. */
  userns = fcntl (userns, F_DUPFD_CLOEXEC, 16);
  netns = fcntl (netns, F_DUPFD_CLOEXEC, 16);
  ready_w = fcntl (ready_w, F_DUPFD_CLOEXEC, 16);
  log_fd = fcntl (log_fd, F_DUPFD_CLOEXEC, 16);
  if (userns < 0 || netns < 0 || ready_w < 0 || log_fd < 0 || dup2 (netns, PASTA_NETNS_FD) < 0
      || dup2 (ready_w, PASTA_READY_FD) < 0 || dup2 (log_fd, STDERR_FILENO) < 0 || dup2 (log_fd, STDOUT_FILENO) < 0)
    _exit (126);
  int nul = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  if (nul >= 0)
    dup2 (nul, STDIN_FILENO);
  if (setns (userns, CLONE_NEWUSER) < 0)
    {
      dprintf (STDERR_FILENO, "join the step's user namespace: %s\n", strerror (errno));
      _exit (126);
    }
  close_range (PASTA_READY_FD + 1, ~0U, 0);
  if (setresgid (0, 0, 0) < 0 || setresuid (0, 0, 0) < 0)
    {
      dprintf (STDERR_FILENO, "become root of the step's user namespace: %s\n", strerror (errno));
      _exit (126);
    }
  /* After the credential change, which clears it: pasta dies with kiln. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  sigset_t none;
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
  char netns_path[32], ready_path[32];
  snprintf (netns_path, sizeof netns_path, "/proc/self/fd/%d", PASTA_NETNS_FD);
  snprintf (ready_path, sizeof ready_path, "/proc/self/fd/%d", PASTA_READY_FD);
  /* -P: pasta writes its pid once the namespace is configured, into our
   * pipe: that line is the readiness signal. */
  char *argv[] = { "pasta", "--foreground", "--quiet", "--runas", "0", "--config-net", "--no-map-gw",
                   "-t", "none", "-u", "none", "-T", "none", "-U", "none",
                   "--dns-forward", SANDBOX_NET_DNS, "--netns-only", "--netns", netns_path,
                   "--pid", ready_path, NULL };
  execvp ("pasta", argv);
  dprintf (STDERR_FILENO, "run 'pasta': %s (install Debian's passt package, or use --network host or none)\n",
           strerror (errno));
  _exit (127);
}

/* What pasta printed (its log memfd), for an error message. */
static char *
pasta_log (int log_fd)
{
  char buf[1024];
  ssize_t n = pread (log_fd, buf, sizeof buf - 1, 0);
  if (n <= 0)
    return xstrdup ("no message");
  buf[n] = 0;
  autostrbuf strbuf sb = STRBUF_INIT;
  for (char *save = NULL, *l = strtok_r (buf, "\n", &save); l; l = strtok_r (NULL, "\n", &save))
    {
      if (strstr (l, "syslog")) /* pasta's complaints that it has no syslog */
        continue;
      if (sb.len)
        strbuf_adds (&sb, "; ");
      strbuf_adds (&sb, l);
    }
  return sb.len ? strbuf_detach (&sb, NULL) : xstrdup ("no message");
}

/* Wait until pasta writes its pid to ready_r (configured), exits, the build
 * is cancelled, or the deadline passes. */
static int
wait_ready (sandbox_net *net, int ready_r, int log_fd, int cancel_fd, kiln_error **err)
{
  int fds[2] = { ready_r, net->pidfd };
  if (sandbox_wait_fds (fds, 2, cancel_fd, NET_SETUP_TIMEOUT_S) < 0)
    {
      if (errno == ETIMEDOUT)
        return kiln_error_make (err, 0, "pasta did not configure the step's network within %d s",
                                NET_SETUP_TIMEOUT_S);
      return kiln_error_make (err, errno, "waiting for pasta");
    }
  char line[32];
  ssize_t n;
  do
    n = read (ready_r, line, sizeof line);
  while (n < 0 && errno == EINTR);
  if (n > 0)
    return 0;
  int st = 0;
  while (waitpid (net->pid, &st, 0) < 0 && errno == EINTR)
    ;
  net->pid = -1;
  autofree char *msg = pasta_log (log_fd);
  return kiln_error_make (err, 0, "pasta failed (%s %d): %s", WIFEXITED (st) ? "exit status" : "signal",
                          WIFEXITED (st) ? WEXITSTATUS (st) : WTERMSIG (st), msg);
}

static int
start_once (int userns, int netns, int cancel_fd, sandbox_net *net, kiln_error **err)
{
  net->pid = -1;
  net->pidfd = -1;
  int rp[2];
  if (pipe2 (rp, O_CLOEXEC) < 0)
    return kiln_error_make (err, errno, "create pipe");
  autoclose int ready_r = rp[0];
  autoclose int ready_w = rp[1];
  /* pasta reopens it by /proc/self/fd as the namespace's root, which is
   * not kiln's uid: the pipe's mode must let it (only pasta gets the fd). */
  if (fchmod (ready_w, 0622) < 0)
    return kiln_error_make (err, errno, "chmod pipe");
  autoclose int log_fd = memfd_create ("kiln-pasta-log", MFD_CLOEXEC);
  if (log_fd < 0)
    return kiln_error_make (err, errno, "create pasta's log");
  pid_t pid = sandbox_fork_child ();
  if (pid < 0)
    return kiln_error_make (err, errno, "fork for pasta");
  if (pid == 0)
    pasta_main (userns, netns, ready_w, log_fd);
  net->pid = pid;
  sandbox_close_fd (&ready_w);
  net->pidfd = pidfd_open_ (pid);
  if (net->pidfd < 0)
    return kiln_error_make (err, errno, "pidfd_open for pasta");
  return wait_ready (net, ready_r, log_fd, cancel_fd, err);
}

int
sandbox_net_attach (const sandbox_config *cfg, int sock, int errfd, sandbox_net *net, kiln_error **err)
{
  net->pid = -1;
  net->pidfd = -1;
  if (sandbox_wait_fds (&sock, 1, cfg->cancel_fd, HANDSHAKE_TIMEOUT_S) < 0)
    {
      if (errno == ETIMEDOUT)
        return kiln_error_make (err, 0, "the sandbox helper did not create its network namespace within %d s",
                                HANDSHAKE_TIMEOUT_S);
      return kiln_error_make (err, errno, "waiting for the sandbox helper");
    }
  char tag = 0;
  int fds[2] = { -1, -1 };
  int n = sandbox_recv_msg (sock, &tag, fds, 2, NULL);
  autoclose int userns = n == 2 ? fds[0] : -1;
  autoclose int netns = n == 2 ? fds[1] : -1;
  if (n != 2 || tag != 'n')
    {
      int e = errno;
      for (int i = 0; i < n; i++)
        close (fds[i]);
      if (n < 0 && e == 0 && sandbox_read_setup_error (errfd, err) < 0)
        return -1;
      return kiln_error_make (err, n < 0 ? e : EPROTO, "the sandbox helper did not hand over its network namespace");
    }
  if (sandbox_net_start (userns, netns, cfg->cancel_fd, net, err) < 0)
    return kiln_error_wrap (err, "private network");
  char go = 'w';
  if (write (sock, &go, 1) != 1)
    return kiln_error_make (err, errno, "signal the sandbox helper");
  return 0;
}

int
sandbox_net_start (int userns, int netns, int cancel_fd, sandbox_net *net, kiln_error **err)
{
  for (int attempt = 1;; attempt++)
    {
      autoerror kiln_error *e = NULL;
      if (start_once (userns, netns, cancel_fd, net, &e) == 0)
        return 0;
      /* pasta exited by itself (net->pid is -1 then): its start failed.
       * Once in some hundred starts under heavy load it has died at once
       * with "Couldn't install signal handlers" (bench run, session 7),
       * and twice in a row once (session 8), so it gets three starts, a
       * short pause before each retry; a timeout or a cancellation is
       * final. */
      sandbox_close_fd (&net->pidfd);
      if (attempt >= 3 || net->pid >= 0 || sandbox_cancelled (cancel_fd))
        {
          *err = steal_pointer (&e);
          return -1;
        }
      log_warn ("private network: %s; starting pasta again", e->msg);
      struct timespec pause = { 0, 50 * 1000 * 1000L * attempt };
      nanosleep (&pause, NULL);
    }
}

int
sandbox_net_session_ensure (sandbox_session *s, int cancel_fd, kiln_error **err)
{
  if (s->netns_fd < 0 || s->net.pid > 0)
    return 0;
  log_debug ("private network: starting pasta for the stage's network namespace");
  return sandbox_net_start (s->userns_fd, s->netns_fd, cancel_fd, &s->net, err);
}

int
sandbox_net_answer_socket (const sandbox_config *cfg, int listener, const struct seccomp_notif *req,
                           struct seccomp_notif_resp *resp, kiln_error **err)
{
  int ret = 0;
  resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  /* The domain is a value, not a pointer: letting the call continue is
   * safe (no argument the step could change after we looked). */
  if ((int) req->data.args[0] != AF_UNIX && sandbox_net_from_session (cfg)
      && sandbox_net_session_ensure (cfg->session, cfg->cancel_fd, err) < 0)
    {
      resp->flags = 0;
      resp->error = -ENETDOWN;
      ret = -1;
    }
  seccomp_notify_respond (listener, resp);
  return ret;
}

bool
sandbox_net_from_session (const sandbox_config *cfg)
{
  return cfg->network == SANDBOX_NET_PRIVATE && cfg->session && cfg->session->netns_fd >= 0;
}

void
sandbox_net_detach (sandbox_net *net)
{
  if (net->pid > 0)
    {
      /* pasta ends on SIGTERM at once; a pasta that does not is killed. */
      if (net->pidfd >= 0)
        {
          syscall (SYS_pidfd_send_signal, net->pidfd, SIGTERM, NULL, 0);
          struct pollfd pf = { net->pidfd, POLLIN, 0 };
          if (poll (&pf, 1, 2000) <= 0)
            syscall (SYS_pidfd_send_signal, net->pidfd, SIGKILL, NULL, 0);
        }
      else
        kill (net->pid, SIGKILL);
      while (waitpid (net->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    }
  net->pid = -1;
  sandbox_close_fd (&net->pidfd);
}

void
sandbox_net_handoff (child_ctx *c)
{
  int fds[2];
  fds[0] = open ("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
  fds[1] = open ("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (fds[0] < 0 || fds[1] < 0)
    sandbox_child_die (c, errno, "open the step's network namespace");
  if (sandbox_send_fds (c->sync_fd, 'n', fds, 2) < 0)
    sandbox_child_die (c, errno, "send the step's network namespace to kiln");
  close (fds[0]);
  close (fds[1]);
  char b = 0;
  ssize_t n;
  do
    n = read (c->sync_fd, &b, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1 || b != 'w')
    _exit (SETUP_FAILED); /* kiln reports why */
}

char *
sandbox_net_resolv (const char *host_resolv)
{
  /* The host's search and options lines, our forwarder as the server. */
  autostrbuf strbuf sb = STRBUF_INIT;
  strbuf_adds (&sb, "nameserver " SANDBOX_NET_DNS "\n");
  autofree char *copy = xstrdup (host_resolv ? host_resolv : "");
  for (char *save = NULL, *l = strtok_r (copy, "\n", &save); l; l = strtok_r (NULL, "\n", &save))
    if (strncmp (l, "search", 6) == 0 || strncmp (l, "domain", 6) == 0 || strncmp (l, "options", 7) == 0)
      {
        strbuf_adds (&sb, l);
        strbuf_addch (&sb, '\n');
      }
  return strbuf_detach (&sb, NULL);
}
