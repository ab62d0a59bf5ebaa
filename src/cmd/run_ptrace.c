/* run_ptrace.c - kiln run on a plain directory under ptrace isolation.
 *
 * What the step sees besides DIR: tracer_binds_standard's binds (/proc, the
 * host's, read-only: no pid namespace, so it shows the container's
 * processes, but Landlock keeps their memory, environ, fds and roots
 * closed; the container's device files; /sys read-only; kiln's /etc/hosts,
 * /etc/resolv.conf and /etc/hostname, in a temporary directory removed
 * afterwards). No UTS namespace: uname's host name is the host's. */
#include "cmd/run_ptrace.h"
#include "util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int
run_ptrace (const run_ptrace_args *a, sandbox_result *res, kiln_error **err)
{
  const char *tmp = getenv ("TMPDIR");
  autofree char *dir = xasprintf ("%s/kiln-ptrace-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp (dir))
    return kiln_error_make (err, errno, "create a temporary directory '%s'", dir);
  autoclose int dirfd = open (dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  tracer_binds binds = { 0 };
  int r = dirfd < 0 ? kiln_error_make (err, errno, "open '%s'", dir)
                    : tracer_binds_standard (&binds, dirfd, dir, a->network, a->hostname, err);
  if (r == 0)
    {
      tracer_config cfg = {
        .argv = a->argv, .env = a->env, .cwd = a->cwd, .uid = a->uid, .gid = a->gid, .root = a->rootfs,
        .ops = a->ops, .ops_ctx = a->ops_ctx,
        .binds = binds.v, .n_binds = binds.n, .seccomp = a->seccomp, .network = a->network, .output = a->output,
        .cancel_fd = a->cancel_fd, .cancel_signal = a->cancel_signal,
      };
      r = tracer_run (&cfg, res, err);
    }
  tracer_binds_free (&binds);
  static const char *const files[] = { "hosts", "resolv.conf", "hostname" };
  for (size_t i = 0; dirfd >= 0 && i < ARRAY_SIZE (files); i++)
    (void) unlinkat (dirfd, files[i], 0);
  rmdir (dir);
  return r;
}
