/* run_ptrace.c - kiln run on a plain directory under ptrace isolation.
 *
 * What the step sees besides DIR: /proc (the host's, read-only for files
 * and directories: no pid namespace, so it shows the container's
 * processes, but Landlock keeps their memory, environ, fds and roots
 * closed), the device files null, zero, full, random, urandom and tty
 * (each a file bind, read and write; the rest of the host's /dev stays out
 * of reach: /dev itself is DIR's own directory), /sys read-only, and
 * /etc/hosts and /etc/resolv.conf generated as in namespace mode. No UTS
 * namespace: the host name is the host's. */
#include "cmd/run_ptrace.h"
#include "util/alloc.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const devices[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                                       "/dev/tty" };

static int
write_file (const char *dir, const char *name, const char *data, char **path, kiln_error **err)
{
  *path = xasprintf ("%s/%s", dir, name);
  int fd = open (*path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return kiln_error_make (err, errno, "create '%s'", *path);
  size_t n = strlen (data);
  ssize_t w = write (fd, data, n);
  int e = errno;
  close (fd);
  if (w != (ssize_t) n)
    return kiln_error_make (err, w < 0 ? e : EIO, "write '%s'", *path);
  return 0;
}

static char *
host_resolv (void)
{
  autostrbuf strbuf sb = STRBUF_INIT;
  FILE *f = fopen ("/etc/resolv.conf", "re");
  if (f)
    {
      char buf[4096];
      size_t n;
      while ((n = fread (buf, 1, sizeof buf, f)) > 0)
        strbuf_add (&sb, buf, n);
      fclose (f);
    }
  return strbuf_detach (&sb, NULL);
}

int
run_ptrace (const run_ptrace_args *a, sandbox_result *res, kiln_error **err)
{
  const char *tmp = getenv ("TMPDIR");
  autofree char *dir = xasprintf ("%s/kiln-ptrace-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp (dir))
    return kiln_error_make (err, errno, "create a temporary directory '%s'", dir);
  autofree char *hosts = NULL, *resolv = NULL;
  autofree char *hosts_data = xasprintf ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                                         "127.0.1.1\t%s\n", a->hostname ? a->hostname : "kiln");
  autofree char *resolv_data = a->network == SANDBOX_NET_NONE ? xstrdup ("") : host_resolv ();
  int r = write_file (dir, "hosts", hosts_data, &hosts, err);
  if (r == 0)
    r = write_file (dir, "resolv.conf", resolv_data, &resolv, err);
  tracer_bind binds[16];
  size_t n = 0;
  binds[n++] = (tracer_bind){ "/proc", "/proc", false };
  binds[n++] = (tracer_bind){ "/sys", "/sys", false };
  for (size_t i = 0; i < ARRAY_SIZE (devices); i++)
    if (access (devices[i], F_OK) == 0)
      binds[n++] = (tracer_bind){ devices[i], devices[i], true };
  if (r == 0)
    {
      binds[n++] = (tracer_bind){ "/etc/hosts", hosts, false };
      binds[n++] = (tracer_bind){ "/etc/resolv.conf", resolv, false };
      tracer_config cfg = {
        .argv = a->argv, .env = a->env, .cwd = a->cwd, .uid = a->uid, .gid = a->gid, .root = a->rootfs,
        .binds = binds, .n_binds = n, .seccomp = a->seccomp, .network = a->network, .output = a->output,
        .cancel_fd = a->cancel_fd, .cancel_signal = a->cancel_signal,
      };
      r = tracer_run (&cfg, res, err);
    }
  if (hosts)
    unlink (hosts);
  if (resolv)
    unlink (resolv);
  rmdir (dir);
  return r;
}
