/* store_bench.c - drive the store modules for bench/store.sh (built by it
 * against build/libkiln.a; not part of kiln).
 *   store_bench extract BLOB DIR          extract a layer blob into DIR (new);
 *                                         KILN_MAX_LAYER_ENTRIES as in kiln
 *   store_bench pack SRC OUT gzip|zstd|none [LEVEL [THREADS]]
 *                                         pack tree SRC (walked; the
 *                                         benchmark may walk) into OUT;
 *                                         SRC may be DIR1:DIR2:... (each
 *                                         stored under its base name);
 *                                         LEVEL -1 / THREADS 0 = defaults
 *   store_bench synth N OUTDIR            write a synthetic N-entry index
 *   store_bench load INDEX...             open+validate a stack of indexes
 *                                         (first round and best of 20)
 * Prints one line "OP seconds MB/s ..." per run. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/extract.h"
#include "store/layer_index.h"
#include "store/layer_writer.h"
#include "util/alloc.h"

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
  fprintf (stderr, "store_bench: %s\n", err ? err->msg : "error");
  exit (1);
}

typedef struct list
{
  layer_change *v;
  size_t n, cap;
  int rootfd;
} list;

static void
walk (list *l, int dfd, const char *rel)
{
  DIR *d = fdopendir (dup (dfd));
  struct dirent *de;
  rewinddir (d);
  while ((de = readdir (d)))
    {
      if (!strcmp (de->d_name, ".") || !strcmp (de->d_name, ".."))
        continue;
      char *p = *rel ? xasprintf ("%s/%s", rel, de->d_name) : xstrdup (de->d_name);
      struct stat st;
      if (fstatat (dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        continue;
      if (l->n == l->cap)
        {
          l->cap = l->cap ? l->cap * 2 : 1024;
          l->v = xreallocarray (l->v, l->cap, sizeof *l->v);
        }
      layer_change *c = &l->v[l->n++];
      memset (c, 0, sizeof *c);
      c->path = p;
      c->meta.mode = st.st_mode & 07777;
      c->meta.uid = st.st_uid;
      c->meta.gid = st.st_gid;
      c->meta.mtime_sec = st.st_mtim.tv_sec;
      if (S_ISDIR (st.st_mode))
        {
          c->meta.type = LAYER_INDEX_DIR;
          int sub = openat (dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
          walk (l, sub, p);
          close (sub);
        }
      else if (S_ISREG (st.st_mode))
        {
          c->meta.type = LAYER_INDEX_REG;
          c->data_dirfd = l->rootfd;
          c->data_path = p;
        }
      else if (S_ISLNK (st.st_mode))
        {
          char buf[4096];
          ssize_t n = readlinkat (dfd, de->d_name, buf, sizeof buf - 1);
          buf[n < 0 ? 0 : n] = 0;
          c->meta.type = LAYER_INDEX_SYMLINK;
          c->meta.link_target = xstrdup (buf);
        }
      else
        l->n--;
    }
  closedir (d);
}

int
main (int argc, char **argv)
{
  kiln_error *err = NULL;
  if (argc == 4 && !strcmp (argv[1], "extract"))
    {
      int in = open (argv[2], O_RDONLY);
      mkdir (argv[3], 0700);
      int dfd = open (argv[3], O_RDONLY | O_DIRECTORY);
      extract_result r;
      /* As kiln's store does (store_open), the limit comes from the env. */
      extract_opts o = { 0 };
      const char *lim = getenv ("KILN_MAX_LAYER_ENTRIES");
      if (lim)
        o.max_entries = strtoull (lim, NULL, 10);
      double t = now ();
      if (in < 0 || dfd < 0)
        die (NULL);
      if (extract_layer (dfd, extract_read_fd, &in, &o, &r, &err) < 0)
        {
          printf ("extract refused after %.3f s: %s\n", now () - t, err->msg);
          return 1;
        }
      t = now () - t;
      printf ("extract %.3f s %.1f MB/s (uncompressed) entries=%llu %s\n", t, r.diff_size / t / 1e6,
              (unsigned long long) r.entries, r.diff_id);
      return 0;
    }
  if (argc >= 5 && argc <= 7 && !strcmp (argv[1], "pack"))
    {
      list l = { 0 };
      l.rootfd = AT_FDCWD;
      autofree char *srcs = xstrdup (argv[2]);
      for (char *save = NULL, *dir = strtok_r (srcs, ":", &save); dir; dir = strtok_r (NULL, ":", &save))
        {
          int fd = open (dir, O_RDONLY | O_DIRECTORY);
          if (fd < 0)
            die (NULL);
          if (strchr (argv[2], ':') == NULL)
            {
              l.rootfd = fd;
              walk (&l, fd, "");
              break;
            }
          /* several roots: entries are DIR's base name + path, data read
           * relative to DIR's parent (walk records l.rootfd) */
          const char *base = strrchr (dir, '/') ? strrchr (dir, '/') + 1 : dir;
          autofree char *parent = xstrndup (dir, base - dir);
          l.rootfd = open (*parent ? parent : ".", O_RDONLY | O_DIRECTORY);
          walk (&l, fd, base);
          close (fd);
        }
      layer_writer_opts o = { .level = argc > 5 ? atoi (argv[5]) : -1, .threads = argc > 6 ? atoi (argv[6]) : 0 };
      if (mediatype_parse_compression (argv[4], &o.compression, &err) < 0)
        die (err);
      int out = open (argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
      layer_writer_result r;
      double t = now ();
      if (layer_writer_write (l.v, l.n, &o, out, &r, &err) < 0)
        die (err);
      t = now () - t;
      printf ("pack-%s %.3f s %.1f MB/s (uncompressed) ratio=%.3f entries=%zu in=%llu out=%llu\n", argv[4], t,
              r.diff_size / t / 1e6, (double) r.blob_size / r.diff_size, l.n, (unsigned long long) r.diff_size,
              (unsigned long long) r.blob_size);
      return 0;
    }
  if (argc == 4 && !strcmp (argv[1], "synth"))
    {
      long n = atol (argv[2]);
      layer_index_builder *b = layer_index_builder_new ();
      layer_index_meta f = { .type = LAYER_INDEX_REG, .mode = 0644, .size = 1000 };
      char p[256];
      for (long i = 0; (long) layer_index_builder_count (b) < n; i++)
        {
          snprintf (p, sizeof p, "usr/share/p%04ld/d%02ld/f%07ld", i / 1000, (i / 50) % 20, i);
          if (layer_index_builder_add (b, p, &f, NULL, &err) < 0)
            die (err);
        }
      mkdir (argv[3], 0755);
      int dfd = open (argv[3], O_RDONLY | O_DIRECTORY);
      if (layer_index_builder_write_at (b, dfd, "index", &err) < 0)
        die (err);
      return 0;
    }
  if (argc >= 3 && !strcmp (argv[1], "load"))
    {
      double best = 1e9, first = 0;
      uint64_t total = 0;
      for (int round = 0; round < 20; round++)
        {
          layer_index *ix[64];
          int n = 0;
          total = 0;
          double t = now ();
          for (int i = 2; i < argc && n < 64; i++, n++)
            {
              if (layer_index_open_at (AT_FDCWD, argv[i], &ix[n], &err) < 0)
                die (err);
              total += layer_index_count (ix[n]);
            }
          t = now () - t;
          if (round == 0)
            first = t;
          if (t < best)
            best = t;
          for (int i = 0; i < n; i++)
            layer_index_close (ix[i]);
        }
      printf ("load %d layers, %llu entries: first %.2f ms, best of 20 %.2f ms\n", argc - 2,
              (unsigned long long) total, first * 1e3, best * 1e3);
      return 0;
    }
  fprintf (stderr, "usage: see the header of bench/store_bench.c\n");
  return 2;
}
