/* fuzz_extract.c - the layer extraction path (decompression, libarchive tar
 * parsing, path normalisation, index building, tree writes) on arbitrary
 * bytes. Extracts into a private temp dir that sits inside a "jail" dir with
 * a sentinel sibling; after each input the sentinel must be untouched and
 * the jail must contain nothing but the layer dir (nothing escaped). */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/extract.h"
#include "util/alloc.h"
#include "util/fsutil.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

typedef struct mem_src
{
  const uint8_t *p;
  size_t left;
} mem_src;

static ssize_t
mem_read (void *ctx, void *buf, size_t len, kiln_error **err)
{
  (void) err;
  mem_src *m = ctx;
  /* small, uneven reads exercise buffer boundaries */
  if (len > 4093)
    len = 4093;
  if (len > m->left)
    len = m->left;
  memcpy (buf, m->p, len);
  m->p += len;
  m->left -= len;
  return len;
}

static int jailfd = -1;

static size_t
count_entries (int dirfd)
{
  int d2 = dup (dirfd);
  DIR *d = fdopendir (d2);
  if (d == NULL)
    abort ();
  rewinddir (d); /* the dup shares the offset left by the previous scan */
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir (d)))
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, ".."))
      n++;
  closedir (d);
  return n;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size > (1 << 20))
    return 0;
  if (jailfd < 0)
    {
      const char *tmp = getenv ("TMPDIR");
      char *path = xasprintf ("%s/fuzz-extract.XXXXXX", tmp && *tmp ? tmp : "/tmp");
      if (mkdtemp (path) == NULL)
        abort ();
      jailfd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      free (path);
      if (jailfd < 0 || mkdirat (jailfd, "sentinel", 0700) < 0)
        abort ();
    }
  kiln_error *err = NULL;
  char *name = NULL;
  int lfd = -1;
  if (fs_mkdtemp_at (jailfd, "layer-", &name, &lfd, &err) < 0)
    abort ();
  mem_src m = { data, size };
  extract_result res;
  extract_opts o = { .max_entries = 20000 };
  if (extract_layer (lfd, mem_read, &m, &o, &res, &err) < 0)
    {
      if (err == NULL)
        abort ();
      kiln_error_clear (&err);
    }
  close (lfd);
  int sfd = openat (jailfd, "sentinel", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sfd < 0 || count_entries (sfd) != 0)
    abort (); /* something was written next to the layer */
  close (sfd);
  size_t n = count_entries (jailfd);
  if (n != 2)
    {
      fprintf (stderr, "fuzz_extract: %zu entries next to the layer dir\n", n);
      abort ();
    }
  if (fs_rm_rf_at (jailfd, name, &err) < 0)
    abort ();
  free (name);
  return 0;
}
