/* sandbox_probe.c - before the first RUN step: does this environment give
 * kiln what a step needs (a user namespace, /dev/fuse, and for a private
 * network /dev/net/tun and pasta)? A "no" becomes an error that says what
 * is missing, where that usually comes from (a container runtime's
 * default seccomp profile and device list) and how to allow it, instead of
 * a bare "Operation not permitted" from deep inside a step's set-up. */
#include "sandbox/sandbox_internal.h"
#include "sandbox/tracer.h"
#include "util/alloc.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int
probe_userns_child (void *arg)
{
  (void) arg;
  /* errno is the waiting parent's (same memory and TLS); it reads errno
   * again only after calls of its own */
  return unshare (CLONE_NEWUSER) < 0 ? (errno & 0xff) : 0;
}

/* errno of unshare(CLONE_NEWUSER) in a child (0: it works). The child
 * shares kiln's memory and runs while kiln waits (CLONE_VM | CLONE_VFORK):
 * a fork would copy the page tables of a process that by now maps its
 * libraries, threads and buffers, a millisecond of every build. A new user
 * namespace needs a single-threaded thread group, not an unshared mm. */
static int
probe_userns (void)
{
  enum { STACK = 64 * 1024 };
  autofree char *stack = xmalloc (STACK);
  sigset_t block, old;
  sigfillset (&block);
  pthread_sigmask (SIG_BLOCK, &block, &old); /* no handler of kiln's in the child */
  pid_t pid = clone (probe_userns_child, stack + STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
  int e = errno;
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (pid < 0)
    return e;
  int st;
  while (waitpid (pid, &st, 0) < 0)
    if (errno != EINTR)
      return errno;
  return WIFEXITED (st) ? WEXITSTATUS (st) : EIO;
}

static int
userns_error (int e, kiln_error **err)
{
  if (e == ENOSPC)
    return kiln_error_make (err, 0, "RUN steps need a user namespace and this system allows none "
                            "(unshare(CLONE_NEWUSER): %s): raise the sysctl user.max_user_namespaces",
                            strerror (e));
  /* errno 0: the message names it where it belongs. */
  return kiln_error_make (err, 0,
                          "RUN steps need a user namespace and this environment denies it "
                          "(unshare(CLONE_NEWUSER): %s). In a container this is the runtime's default seccomp "
                          "profile (Docker, containerd and CRI-O allow unshare only with CAP_SYS_ADMIN): run it "
                          "with kiln's Localhost profile policies/kiln-localhost.json and /dev/fuse (or seccomp "
                          "unconfined); on a host, check the sysctl kernel.unprivileged_userns_clone and AppArmor's "
                          "unprivileged user namespace restriction",
                          strerror (e));
}

/* Whether the step's namespace root, which is not kiln's uid when kiln
 * runs as root, may open the node: "others" must have rw then. */
static int
check_device (const char *path, const char *what, const char *add_hint, kiln_error **err)
{
  struct stat st;
  if (stat (path, &st) < 0)
    {
      if (errno == ENOENT)
        return kiln_error_make (err, ENOENT, "%s need '%s', which this environment does not have%s", what, path,
                                add_hint);
      return kiln_error_make (err, errno, "stat '%s'", path);
    }
  if (!S_ISCHR (st.st_mode))
    return kiln_error_make (err, ENODEV, "%s need '%s', which is not a character device here", what, path);
  bool root = geteuid () == 0;
  if ((root && (st.st_mode & 0006) != 0006) || (!root && access (path, R_OK | W_OK) < 0))
    return kiln_error_make (err, EACCES,
                            "%s need '%s' usable by %s (mode %04o here; distributions ship it 0666: "
                            "chmod 0666 %s)",
                            what, path, root ? "the step's namespace root (not host root)" : "kiln's user",
                            (unsigned) (st.st_mode & 07777), path);
  return 0;
}

/* Whether an executable named name is on PATH. */
static bool
on_path (const char *name)
{
  const char *path = getenv ("PATH");
  autofree char *copy = xstrdup (path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (char *save = NULL, *d = strtok_r (copy, ":", &save); d; d = strtok_r (NULL, ":", &save))
    {
      autofree char *p = xasprintf ("%s/%s", *d ? d : ".", name);
      if (access (p, X_OK) == 0)
        return true;
    }
  return false;
}

/* The checks of sandbox_probe after the user namespace's, whose errno
 * (probe_userns) the caller has. */
static int
probe_rest (const sandbox_probe_req *req, int e, kiln_error **err)
{
  if (e)
    return userns_error (e, err);
  if (req->fuse
      && check_device ("/dev/fuse", "RUN steps", " (a container without the FUSE device: add it, e.g. "
                       "--device /dev/fuse in Docker or a FUSE device plugin in Kubernetes)", err) < 0)
    return -1;
  if (req->network != SANDBOX_NET_PRIVATE)
    return 0;
  if (check_device ("/dev/net/tun", "RUN steps with a private network (the default)",
                    " (add it, e.g. --device /dev/net/tun, or pass --network host to share kiln's network "
                    "namespace, in a container the container's, or --network none)", err) < 0)
    return -1;
  if (!on_path ("pasta"))
    return kiln_error_make (err, ENOENT, "RUN steps with a private network (the default) need pasta, which is "
                            "not on PATH: install Debian's passt package, or pass --network host or none");
  return 0;
}

int
sandbox_probe (const sandbox_probe_req *req, kiln_error **err)
{
  return probe_rest (req, probe_userns (), err);
}

int
sandbox_parse_isolation (const char *s, sandbox_isolation *out, kiln_error **err)
{
  if (strcmp (s, "auto") == 0)
    *out = SANDBOX_ISOLATION_AUTO;
  else if (strcmp (s, "userns") == 0)
    *out = SANDBOX_ISOLATION_USERNS;
  else if (strcmp (s, "ptrace") == 0)
    *out = SANDBOX_ISOLATION_PTRACE;
  else
    return kiln_error_make (err, 0, "invalid isolation '%s' (expected auto, userns or ptrace)", s);
  return 0;
}

const char *
sandbox_isolation_name (sandbox_isolation i)
{
  switch (i)
    {
    case SANDBOX_ISOLATION_AUTO:
      return "auto";
    case SANDBOX_ISOLATION_USERNS:
      return "userns";
    case SANDBOX_ISOLATION_PTRACE:
      return "ptrace";
    }
  return "?";
}

static int
ptrace_probe (int *abi, kiln_error **err)
{
  if (tracer_probe (abi, err) < 0)
    return kiln_error_wrap (err, "--isolation=ptrace is not available here");
  return 0;
}

static void
log_ptrace_choice (const char *why, int abi)
{
  log_info ("%s: using --isolation=ptrace (system calls intercepted with ptrace and seccomp, the step confined "
            "by Landlock ABI %d%s)",
            why, abi, abi >= 6 ? "" : ", signals checked by kiln");
}

int
sandbox_choose_isolation (const sandbox_probe_req *req, sandbox_isolation want, sandbox_isolation *out,
                          kiln_error **err)
{
  int abi = 0;
  switch (want)
    {
    case SANDBOX_ISOLATION_USERNS:
      *out = want;
      return sandbox_probe (req, err);
    case SANDBOX_ISOLATION_PTRACE:
      *out = want;
      if (ptrace_probe (&abi, err) < 0)
        return -1;
      log_debug ("--isolation=ptrace: system calls intercepted with ptrace and seccomp, the step confined by "
                "Landlock ABI %d", abi);
      return 0;
    case SANDBOX_ISOLATION_AUTO:
      break;
    }
  autofree char *why = NULL;
  int e = probe_userns ();
  if (e)
    why = xasprintf ("user namespaces denied (unshare(CLONE_NEWUSER): %s%s)", strerror (e),
                     e == EPERM ? ", the container's seccomp profile?" : "");
  else if (req->fuse)
    {
      autoerror kiln_error *ferr = NULL;
      if (check_device ("/dev/fuse", "RUN steps", "", &ferr) < 0)
        {
          autofree char *m = kiln_error_string (ferr);
          why = xasprintf ("no usable /dev/fuse (%s)", m);
        }
    }
  if (!why)
    {
      *out = SANDBOX_ISOLATION_USERNS;
      return probe_rest (req, e, err);
    }
  autoerror kiln_error *perr = NULL;
  if (tracer_probe (&abi, &perr) < 0)
    {
      autofree char *pmsg = kiln_error_string (perr);
      /* The userns mode's own error says how to allow it; add why the
       * fallback is out too. */
      probe_rest (req, e, err);
      autofree char *umsg = kiln_error_string (*err);
      kiln_error_clear (err);
      return kiln_error_make (err, 0, "%s; and --isolation=ptrace is not available either: %s", umsg, pmsg);
    }
  *out = SANDBOX_ISOLATION_PTRACE;
  log_ptrace_choice (why, abi);
  return 0;
}
