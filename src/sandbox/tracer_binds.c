/* tracer_binds.c - the binds every step under ptrace isolation gets: what
 * the userns isolation mounts (/proc, /sys, the device nodes, kiln's
 * /etc files), as guest paths served by host paths. */
#include "sandbox/tracer.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void
tracer_binds_add (tracer_binds *b, const char *guest, const char *host, bool writable)
{
  strv_push (&b->strings, guest);
  strv_push (&b->strings, host);
  size_t n = strv_len (b->strings);
  b->v = xreallocarray (b->v, b->n + 1, sizeof *b->v);
  b->v[b->n++] = (tracer_bind){ .guest = b->strings[n - 2], .host = b->strings[n - 1], .writable = writable };
}

void
tracer_binds_own (tracer_binds *b, uid_t uid, gid_t gid)
{
  tracer_bind *last = &b->v[b->n - 1];
  last->owned = true;
  last->uid = uid;
  last->gid = gid;
}

void
tracer_binds_free (tracer_binds *b)
{
  free (b->v);
  strv_free (b->strings);
  memset (b, 0, sizeof *b);
}

/* A file of kiln's for the step, replaced whole. */
static int
put_file (int dirfd, const char *dir, const char *name, const char *data, char **path, kiln_error **err)
{
  (void) unlinkat (dirfd, name, 0);
  autoclose int fd = openat (dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    return kiln_error_make (err, errno, "create '%s/%s'", dir, name);
  if (fchmod (fd, 0644) < 0)
    return kiln_error_make (err, errno, "chmod '%s/%s'", dir, name);
  if (fs_write_all (fd, data, strlen (data), err) < 0)
    return kiln_error_wrap (err, "write '%s/%s'", dir, name);
  *path = xasprintf ("%s/%s", dir, name);
  return 0;
}

int
tracer_binds_standard (tracer_binds *b, int dirfd, const char *dir, sandbox_net_mode net, const char *hostname,
                       kiln_error **err)
{
  /* The container's devices a step uses (ptmx and pts: apt runs dpkg on
   * a pseudo-terminal); the rest of its /dev (disks a uid-0 step could
   * read) stays out of reach. */
  static const char *const devs[] = { "/dev/null", "/dev/zero",  "/dev/full", "/dev/random",
                                      "/dev/urandom", "/dev/tty", "/dev/ptmx", "/dev/pts" };
  tracer_binds_add (b, "/proc", "/proc", false);
  tracer_binds_add (b, "/sys", "/sys", false);
  for (size_t i = 0; i < ARRAY_SIZE (devs); i++)
    if (access (devs[i], F_OK) == 0)
      tracer_binds_add (b, devs[i], devs[i], true);
  const char *hn = hostname ? hostname : "kiln";
  autofree char *resolv = NULL, *hosts = NULL, *name = xasprintf ("%s\n", hn);
  sandbox_etc_files (net, hn, &resolv, &hosts);
  autofree char *p_resolv = NULL, *p_hosts = NULL, *p_name = NULL;
  if (put_file (dirfd, dir, "resolv.conf", resolv, &p_resolv, err) < 0
      || put_file (dirfd, dir, "hosts", hosts, &p_hosts, err) < 0
      || put_file (dirfd, dir, "hostname", name, &p_name, err) < 0)
    return -1;
  tracer_binds_add (b, "/etc/resolv.conf", p_resolv, false);
  tracer_binds_add (b, "/etc/hosts", p_hosts, false);
  tracer_binds_add (b, "/etc/hostname", p_name, false);
  return 0;
}
