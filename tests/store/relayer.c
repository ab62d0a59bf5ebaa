/* relayer.c - test driver (not part of kiln): write a published store layer
 * back as an OCI layer blob with kiln's layer writer, from the layer's index
 * and tree only (the original blob is not read).
 *
 *   relayer STORE DIFFID OUT gzip|zstd|none
 *
 * Prints "DIFFID BLOBDIGEST ENTRIES" of the new blob. Built by
 * tests/integration/store_layers.bats against build/libkiln.a. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/layer_index.h"
#include "store/layer_writer.h"
#include "store/store.h"
#include "util/alloc.h"

static int
relayer (const char *root, const char *diff_id, const char *out_path, const char *comp, kiln_error **err)
{
  layer_writer_opts o = { .level = -1 };
  if (mediatype_parse_compression (comp, &o.compression, err) < 0)
    return -1;
  autostore store *s = NULL;
  if (store_open (root, 0, &s, err) < 0)
    return -1;
  autoclose int tree = -1;
  autoindex layer_index *idx = NULL;
  if (store_open_layer (s, diff_id, &tree, &idx, err) < 0)
    return -1;
  layer_changes ch;
  if (layer_writer_changes_from_index (idx, tree, &ch, err) < 0)
    return -1;
  autoclose int out = open (out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0)
    {
      layer_writer_changes_free (&ch);
      return kiln_error_make (err, errno, "create '%s'", out_path);
    }
  layer_writer_result r;
  int ret = layer_writer_write (ch.v, ch.n, &o, out, &r, err);
  layer_writer_changes_free (&ch);
  if (ret < 0)
    return -1;
  printf ("%s %s %llu\n", r.diff_id, r.blob_digest, (unsigned long long) r.entries);
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc != 5)
    {
      fprintf (stderr, "usage: relayer STORE DIFFID OUT gzip|zstd|none\n");
      return 2;
    }
  autoerror kiln_error *err = NULL;
  if (relayer (argv[1], argv[2], argv[3], argv[4], &err) < 0)
    {
      fprintf (stderr, "relayer: %s\n", err ? err->msg : "failed");
      return 1;
    }
  return 0;
}
