/* fuse_overhead_mount.c - mount kiln's overlay of one lower on MNT (upper
 * data in SCRATCH), run CMD with the mount in place, then commit the step and
 * unmount. For bench/fuse-overhead.sh; run as root inside `unshare -m`
 * (overlay_mount uses mount(2) directly).
 *   fuse_overhead_mount LOWER SCRATCH MNT CMD...
 *   fuse_overhead_mount --store STORE TAR SCRATCH MNT CMD...
 * The first form serves a plain directory (attributes from its inodes); the
 * second the store layer TAR (an uncompressed tar) makes in the store at
 * STORE, extracted the first time, as builds serve their base layers
 * (attributes from the layer's index).
 * Exits with CMD's status; prints "commit_ms=T entries=N" on stderr. */
#include "overlay/overlay.h"
#include "store/extract.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/digest.h"

#include <fcntl.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
  fprintf (stderr, "fuse_overhead_mount: %s\n", err ? err->msg : "failed");
  return 1;
}

int
main (int argc, char **argv)
{
  const char *prog = argv[0], *store_root = NULL;
  if (argc > 2 && strcmp (argv[1], "--store") == 0)
    {
      store_root = argv[2];
      argv += 2, argc -= 2; /* now argv[1] is TAR, as LOWER in the other form */
    }
  if (argc < 5)
    {
      fprintf (stderr, "usage: %s LOWER SCRATCH MNT CMD...\n       %s --store STORE TAR SCRATCH MNT CMD...\n", prog,
               prog);
      return 2;
    }
  kiln_error *err = NULL;
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return perror ("make / private (run inside unshare -m)"), 1;
  overlay_lower *lower;
  store *st = NULL;
  if (store_root)
    {
      char blob[DIGEST_STRING_SIZE];
      int tfd = open (argv[1], O_RDONLY | O_CLOEXEC);
      if (tfd < 0)
        return perror (argv[1]), 1;
      if (digest_fd (tfd, blob, NULL, &err) < 0 || lseek (tfd, 0, SEEK_SET) < 0)
        return die (err);
      extract_result res;
      if (store_open (store_root, 0, &st, &err) < 0
          || extract_to_store (st, blob, NULL, extract_read_fd, &tfd, NULL, &res, &err) < 0)
        return die (err);
      close (tfd);
      char *ids[] = { res.diff_id };
      if (overlay_lower_open_store (st, ids, 1, &lower, &err) < 0)
        return die (err);
    }
  else
    {
      const char *lowers[] = { argv[1] };
      if (overlay_lower_open_dirs (lowers, 1, &lower, &err) < 0)
        return die (err);
    }
  int sfd = open (argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (sfd < 0)
    return perror (argv[2]), 1;
  overlay_config cfg = { .lower = lower, .scratch_dirfd = sfd, .id_mode = OVERLAY_IDS_FULL };
  overlay *ovl;
  if (overlay_new (&cfg, &ovl, &err) < 0 || overlay_mount (ovl, argv[3], &err) < 0)
    return die (err);
  pid_t pid = fork ();
  if (pid == 0)
    {
      execvp (argv[4], argv + 4);
      perror (argv[4]);
      _exit (127);
    }
  int status = 0;
  while (pid > 0 && waitpid (pid, &status, 0) < 0)
    ;
  overlay_stop (ovl);
  double t0 = now_ms ();
  overlay_changes *c;
  if (overlay_commit (ovl, &c, &err) < 0)
    return die (err);
  fprintf (stderr, "commit_ms=%.2f entries=%zu\n", now_ms () - t0, c->n);
  overlay_changes_free (c);
  overlay_free (ovl);
  store_close (st);
  close (sfd);
  return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}
