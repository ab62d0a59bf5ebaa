/* bench_ovlstore.c - the overlay over a store layer: stack open time and the
 * cost from a step's exit to its layer blob (commit, conversion, gzip layer
 * write), for a store base of N index entries (1000 files per directory) and
 * a step creating M files spread over the base's directories (so the change
 * list also carries their lower parent directories). Run as root inside
 * `unshare -m`. Prints one line:
 *   base=N changed=M open_ms=T entries=E commit_ms=T to_layer_ms=T write_ms=T
 */
#include "overlay/overlay.h"
#include "store/layer_index.h"
#include "store/layer_writer.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/digest.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int
die (kiln_error *err)
{
  fprintf (stderr, "bench_ovlstore: %s\n", err ? err->msg : "failed");
  return 1;
}

int
main (int argc, char **argv)
{
  if (argc != 3)
    {
      fprintf (stderr, "usage: bench_ovlstore BASE_ENTRIES CHANGED_FILES\n");
      return 2;
    }
  long base = atol (argv[1]), changed = atol (argv[2]);
  char tmp[] = "/tmp/kiln-bench-ovlstore.XXXXXX";
  if (!mkdtemp (tmp) || mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return perror ("setup"), 1;
  kiln_error *err = NULL;
  char *root = xasprintf ("%s/store", tmp);
  store *s;
  if (store_open (root, 0, &s, &err) < 0)
    return die (err);
  /* the base layer: index only (no file data is read by this benchmark) */
  layer_index_builder *b = layer_index_builder_new ();
  layer_index_meta dm = { .type = LAYER_INDEX_DIR, .mode = 0755, .mtime_sec = 1 };
  layer_index_meta fm = { .type = LAYER_INDEX_REG, .mode = 0644, .mtime_sec = 1 };
  long ndirs = (base + 999) / 1000;
  char path[64];
  for (long i = 0; i < base; i++)
    {
      if (i % 1000 == 0)
        {
          snprintf (path, sizeof path, "d%04ld", i / 1000);
          if (layer_index_builder_add (b, path, &dm, NULL, &err) < 0)
            return die (err);
        }
      snprintf (path, sizeof path, "d%04ld/f%04ld", i / 1000, i % 1000);
      if (layer_index_builder_add (b, path, &fm, NULL, &err) < 0)
        return die (err);
    }
  char *tmpname;
  int tfd;
  char diff[DIGEST_STRING_SIZE];
  digest_buffer (argv[1], strlen (argv[1]), diff);
  if (store_mktemp (s, "bench-", &tmpname, &tfd, &err) < 0 || mkdirat (tfd, "tree", 0700) < 0
      || layer_index_builder_write_at (b, tfd, "index", &err) < 0)
    return die (err);
  layer_index_builder_free (b);
  int lk = store_lock_layer (s, diff, &err);
  if (lk < 0 || store_publish_layer (s, tmpname, diff, NULL, &err) < 0)
    return die (err);
  close (lk);
  close (tfd);

  char *scratch = xasprintf ("%s/scratch", tmp), *mnt = xasprintf ("%s/mnt", tmp);
  mkdir (scratch, 0700);
  mkdir (mnt, 0755);
  int sfd = open (scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  double t0 = ms ();
  overlay_lower *lower;
  char *ids[] = { diff };
  if (overlay_lower_open_store (s, ids, 1, &lower, &err) < 0)
    return die (err);
  overlay_config cfg = { .lower = lower, .scratch_dirfd = sfd, .id_mode = OVERLAY_IDS_FULL };
  overlay *ovl;
  if (overlay_new (&cfg, &ovl, &err) < 0 || overlay_mount (ovl, mnt, &err) < 0)
    return die (err);
  double t_open = ms () - t0;
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
  double t1 = ms ();
  overlay_changes *c;
  if (overlay_commit (ovl, &c, &err) < 0)
    return die (err);
  double t2 = ms ();
  layer_change *lc;
  size_t n;
  if (overlay_changes_to_layer (c, &lc, &n, &err) < 0)
    return die (err);
  double t3 = ms ();
  char *blob = xasprintf ("%s/blob", tmp);
  int out = open (blob, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  layer_writer_opts o = { .compression = LAYER_COMPRESS_GZIP, .level = -1 };
  layer_writer_result wr;
  if (out < 0 || layer_writer_write (lc, n, &o, out, &wr, &err) < 0)
    return die (err);
  double t4 = ms ();
  printf ("base=%ld changed=%ld open_ms=%.2f entries=%zu commit_ms=%.3f to_layer_ms=%.3f write_ms=%.2f\n",
          base, changed, t_open, c->n, t2 - t1, t3 - t2, t4 - t3);
  close (out);
  free (lc);
  overlay_changes_free (c);
  overlay_free (ovl);
  close (sfd);
  store_close (s);
  char *rm = xasprintf ("rm -rf '%s'", tmp);
  return system (rm) == 0 ? 0 : 1;
}
