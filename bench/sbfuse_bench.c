/* sbfuse_bench.c - per-step cost of the FUSE root filesystem inside one kiln
 * process (no exec of kiln, no profile compilation): N steps of CMD with
 * sandbox_run on a read-only bind of DIR, then N steps on one overlay of DIR
 * (each step its own FUSE connection from its own namespace, committed after
 * each step as the build engine would). Prints mean milliseconds per step.
 *   sbfuse_bench DIR N CMD...      (built by bench/sbfuse.sh) */
#include "overlay/overlay.h"
#include "sandbox/sandbox.h"
#include "util/alloc.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int
serve (void *ctx, int fd, kiln_error **err)
{
  return overlay_serve_fd (ctx, fd, err);
}

static double
now_ms (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return (double) t.tv_sec * 1e3 + (double) t.tv_nsec / 1e6;
}

static int
die (kiln_error *err)
{
  fprintf (stderr, "sbfuse_bench: %s\n", err ? err->msg : "failed");
  return 1;
}

int
main (int argc, char **argv)
{
  if (argc < 4)
    {
      fprintf (stderr, "usage: %s DIR N CMD...\n", argv[0]);
      return 2;
    }
  int n = atoi (argv[2]);
  kiln_error *err = NULL;
  sandbox_idmap map;
  if (sandbox_idmap_resolve (SANDBOX_USERNS_AUTO, 0, &map, &err) < 0)
    return die (err);
  char *env[] = { (char *) "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL };
  sandbox_config cfg = { .rootfs = argv[1], .rootfs_readonly = true, .argv = argv + 3, .env = env,
                         .idmap = &map };
  sandbox_result res;
  double t0 = now_ms ();
  for (int i = 0; i < n; i++)
    if (sandbox_run (&cfg, &res, &err) < 0)
      return die (err);
  double bind_ms = (now_ms () - t0) / n;

  const char *paths[] = { argv[1] };
  overlay_lower *lower;
  if (overlay_lower_open_dirs (paths, 1, &lower, &err) < 0)
    return die (err);
  char scratch[] = "/tmp/kiln-sbfuse-bench.XXXXXX";
  if (!mkdtemp (scratch))
    return 1;
  int sfd = open (scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const char *mask[] = { "proc/", "dev/", "sys/", "etc/resolv.conf", "etc/hosts", "etc/hostname", NULL };
  overlay_config oc = { .lower = lower, .scratch_dirfd = sfd,
                        .id_mode = map.mode == SANDBOX_USERNS_SINGLE ? OVERLAY_IDS_SINGLE : OVERLAY_IDS_FULL,
                        .mask_paths = mask };
  overlay *ovl;
  if (overlay_new (&oc, &ovl, &err) < 0)
    return die (err);
  cfg.rootfs = NULL;
  cfg.rootfs_readonly = false;
  cfg.rootfs_fuse = serve;
  cfg.rootfs_fuse_ctx = ovl;
  t0 = now_ms ();
  for (int i = 0; i < n; i++)
    {
      if (sandbox_run (&cfg, &res, &err) < 0)
        return die (err);
      overlay_stop (ovl);
      overlay_changes *ch;
      if (overlay_commit (ovl, &ch, &err) < 0)
        return die (err);
      overlay_changes_free (ch);
    }
  double ovl_ms = (now_ms () - t0) / n;
  overlay_free (ovl);
  close (sfd);
  char rm[128];
  snprintf (rm, sizeof rm, "rm -rf %s", scratch);
  if (system (rm) != 0)
    fprintf (stderr, "sbfuse_bench: could not remove %s\n", scratch);
  printf ("| in-process, %s: sandbox_run on a read-only bind | %.2f |\n", map.mode == SANDBOX_USERNS_SINGLE ? "single" : "full", bind_ms);
  printf ("| in-process, %s: sandbox_run on one overlay (new FUSE connection per step) + commit | %.2f |\n",
          map.mode == SANDBOX_USERNS_SINGLE ? "single" : "full", ovl_ms);
  return 0;
}
