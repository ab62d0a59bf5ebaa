/* bench_overlay.c - snapshot cost of the FUSE overlay: time from the end of
 * a step to its change list (overlay_commit), for a base of N paths and a
 * step changing M files. Run as root inside `unshare -m`. Prints one line:
 *   base=N changed=M entries=E commit_ms=T
 */
#include "overlay/overlay.h"
#include "util/alloc.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double
ms (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int
main (int argc, char **argv)
{
  if (argc != 3)
    {
      fprintf (stderr, "usage: bench_overlay BASE_PATHS CHANGED_FILES\n");
      return 2;
    }
  long base = atol (argv[1]), changed = atol (argv[2]);
  char tmp[] = "/tmp/kiln-bench-ovl.XXXXXX";
  if (!mkdtemp (tmp) || mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return perror ("setup"), 1;
  char *p = xasprintf ("%s/lower", tmp);
  mkdir (p, 0755);
  for (long i = 0; i < base; i++)
    {
      char *f = xasprintf ("%s/d%04ld", p, i / 1000);
      if (i % 1000 == 0)
        mkdir (f, 0755);
      free (f);
      f = xasprintf ("%s/d%04ld/f%04ld", p, i / 1000, i % 1000);
      int fd = open (f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd >= 0)
        close (fd);
      free (f);
    }
  char *scratch = xasprintf ("%s/scratch", tmp), *mnt = xasprintf ("%s/mnt", tmp);
  mkdir (scratch, 0700);
  mkdir (mnt, 0755);
  kiln_error *err = NULL;
  overlay_lower *lower;
  const char *lowers[] = { p };
  if (overlay_lower_open_dirs (lowers, 1, &lower, &err) < 0)
    return fprintf (stderr, "%s\n", err->msg), 1;
  int sfd = open (scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  overlay_config cfg = { .lower = lower, .scratch_dirfd = sfd, .id_mode = OVERLAY_IDS_FULL };
  overlay *ovl;
  if (overlay_new (&cfg, &ovl, &err) < 0 || overlay_mount (ovl, mnt, &err) < 0)
    return fprintf (stderr, "%s\n", err->msg), 1;
  long ndirs = (base + 999) / 1000;
  for (long i = 0; i < changed; i++)
    {
      char *f = xasprintf ("%s/d%04ld/new%06ld", mnt, ndirs ? i % ndirs : 0, i);
      int fd = open (f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd >= 0)
        {
          (void) !write (fd, "x", 1);
          close (fd);
        }
      free (f);
    }
  double t0 = ms ();
  overlay_changes *c;
  if (overlay_commit (ovl, &c, &err) < 0)
    return fprintf (stderr, "%s\n", err->msg), 1;
  double t1 = ms ();
  printf ("base=%ld changed=%ld entries=%zu commit_ms=%.3f\n", base, changed, c->n, t1 - t0);
  overlay_changes_free (c);
  overlay_free (ovl);
  close (sfd);
  char *rm = xasprintf ("rm -rf '%s'", tmp);
  return system (rm) == 0 ? 0 : 1;
}
