/* extract_changes_bench.c - time extract_from_changes (publishing a RUN
 * step's layer from its change list) on a synthetic layer; built by
 * bench/extract_changes.sh against build/libkiln.a, not part of kiln.
 *
 *   extract_changes_bench WORKDIR NFILES NDIRS DEPTH RUNS
 *
 * Makes NFILES small data files spread over NDIRS directories, each DEPTH
 * levels deep ("usr/share/d0001/x/y/..."), once, then RUNS times publishes
 * the layer into a fresh store below WORKDIR. Prints one line per run:
 *   "run N seconds S files F dirs D depth K". */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/extract.h"
#include "store/layer_writer.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/digest.h"
#include "util/fsutil.h"

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die (kiln_error *err)
{
  if (!err)
    perror ("extract_changes_bench");
  else
    fprintf (stderr, "extract_changes_bench: %s\n", err->msg);
  exit (1);
}

int
main (int argc, char **argv)
{
  if (argc != 6)
    {
      fprintf (stderr, "usage: %s WORKDIR NFILES NDIRS DEPTH RUNS\n", argv[0]);
      return 2;
    }
  const char *work = argv[1];
  size_t nfiles = strtoul (argv[2], NULL, 10), ndirs = strtoul (argv[3], NULL, 10);
  size_t depth = strtoul (argv[4], NULL, 10), runs = strtoul (argv[5], NULL, 10);
  if (!nfiles || !ndirs || !depth)
    return 2;
  kiln_error *err = NULL;
  if (mkdir (work, 0700) < 0)
    die (NULL);
  int wfd = open (work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (wfd < 0 || mkdirat (wfd, "data", 0700) < 0)
    die (NULL);
  int datafd = openat (wfd, "data", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (datafd < 0)
    die (NULL);

  /* Directories first, then files, as a change list holds them. */
  size_t n = 0, cap = ndirs * depth + nfiles;
  layer_change *ch = xcalloc (cap, sizeof *ch);
  char **dirs = xcalloc (ndirs, sizeof *dirs);
  for (size_t d = 0; d < ndirs; d++)
    {
      char *p = xasprintf ("usr/d%04zu", d);
      for (size_t k = 1; k <= depth; k++)
        {
          ch[n++] = (layer_change) { .path = xstrdup (p), .kind = LAYER_CHANGE_ADD,
                                     .meta = { .type = LAYER_INDEX_DIR, .mode = 0755 } };
          if (k < depth)
            {
              char *q = xasprintf ("%s/l%zu", p, k);
              free (p);
              p = q;
            }
        }
      dirs[d] = p;
    }
  for (size_t i = 0; i < nfiles; i++)
    {
      size_t d = i / ((nfiles + ndirs - 1) / ndirs);
      char *dpath = xasprintf ("f%06zu", i);
      int fd = openat (datafd, dpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0 || write (fd, dpath, strlen (dpath)) < 0)
        die (NULL);
      close (fd);
      ch[n++] = (layer_change) { .path = xasprintf ("%s/file%06zu", dirs[d], i), .kind = LAYER_CHANGE_ADD,
                                 .meta = { .type = LAYER_INDEX_REG, .mode = 0644, .mtime_sec = 1 },
                                 /* a RUN step's frozen upper: linked, not copied */
                                 .data_dirfd = datafd, .data_path = dpath, .data_private = true };
    }
  for (size_t r = 1; r <= runs; r++)
    {
      char *root = xasprintf ("%s/store%zu", work, r);
      store *s = NULL;
      if (store_open (root, 0, &s, &err) < 0)
        die (err);
      char diff[DIGEST_STRING_SIZE], blob[DIGEST_STRING_SIZE];
      digest_buffer (root, strlen (root), diff);
      digest_buffer (work, strlen (work), blob);
      double t0 = now ();
      if (extract_from_changes (s, ch, n, NULL, diff, blob, &err) < 0)
        die (err);
      double t = now () - t0;
      printf ("run %zu seconds %.3f files %zu dirs %zu depth %zu\n", r, t, nfiles, ndirs, depth);
      fflush (stdout);
      store_close (s);
      char *sname = xasprintf ("store%zu", r);
      if (fs_rm_rf_at (wfd, sname, &err) < 0)
        die (err);
      free (sname);
      free (root);
    }
  return 0;
}
