/* attest_layers.c - the final image's merged layers (see attest_internal.h). */
#include "build/attest_internal.h"
#include "util/alloc.h"
#include "util/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
attest_layers_open (store *s, const build_result *res, attest_layers *out, kiln_error **err)
{
  memset (out, 0, sizeof *out);
  out->tree = xcalloc (res->n_layers + 1, sizeof *out->tree);
  out->idx = xcalloc (res->n_layers + 1, sizeof *out->idx);
  for (size_t i = 0; i < res->n_layers; i++)
    {
      if (store_open_layer (s, res->layers[i].diff_id, &out->tree[i], &out->idx[i], err) < 0)
        {
          attest_layers_close (out);
          return kiln_error_wrap (err, "layer %s", res->layers[i].diff_id);
        }
      out->n = i + 1;
    }
  return 0;
}

void
attest_layers_close (attest_layers *l)
{
  for (size_t i = 0; i < l->n; i++)
    {
      if (l->tree[i] >= 0)
        close (l->tree[i]);
      layer_index_close (l->idx[i]);
    }
  free (l->tree);
  free (l->idx);
  memset (l, 0, sizeof *l);
}

/* In layer idx: walk path's components. Returns the final entry or NONE;
 * *hidden is set when a component is a whiteout or not a directory (the
 * path is deleted for lower layers), *opaque when a directory on the way
 * (or the entry itself) is opaque (lower layers' contents are hidden). */
static uint32_t
walk (const layer_index *idx, const char *path, bool *hidden, bool *opaque)
{
  uint32_t cur = LAYER_INDEX_ROOT;
  const char *p = path;
  *hidden = *opaque = false;
  while (*p)
    {
      const char *slash = strchr (p, '/');
      size_t len = slash ? (size_t) (slash - p) : strlen (p);
      uint32_t next = layer_index_lookup_child (idx, cur, p, len);
      if (next == LAYER_INDEX_NONE)
        return LAYER_INDEX_NONE;
      const layer_index_disk_entry *e = layer_index_entry (idx, next);
      if (e->type == LAYER_INDEX_WHITEOUT)
        {
          *hidden = true;
          return slash ? LAYER_INDEX_NONE : next;
        }
      if (e->type == LAYER_INDEX_DIR && (e->flags & LAYER_INDEX_F_OPAQUE) && slash)
        *opaque = true;
      if (!slash)
        return next;
      if (e->type != LAYER_INDEX_DIR)
        {
          *hidden = true;
          return LAYER_INDEX_NONE;
        }
      cur = next;
      p = slash + 1;
    }
  return cur;
}

int
attest_layers_find (const attest_layers *l, size_t top, const char *path, uint32_t *id)
{
  for (size_t i = top + 1; i-- > 0;)
    {
      bool hidden, opaque;
      uint32_t e = walk (l->idx[i], path, &hidden, &opaque);
      if (hidden)
        return -1;
      if (e != LAYER_INDEX_NONE)
        {
          *id = e;
          return (int) i;
        }
      if (opaque)
        return -1;
    }
  return -1;
}

static int
open_data (const attest_layers *l, size_t i, const char *path, kiln_error **err)
{
  return fs_open_in_root (l->tree[i], path, O_RDONLY | O_NOFOLLOW | O_NOCTTY, 0,
                          FS_RESOLVE_BENEATH | FS_RESOLVE_NO_SYMLINKS, err);
}

int
attest_layers_open_file (const attest_layers *l, size_t i, const char *path, kiln_error **err)
{
  int fd = open_data (l, i, path, err);
  return fd < 0 ? kiln_error_wrap (err, "opening '/%s' of layer %zu", path, i) : fd;
}

int
attest_layers_read (const attest_layers *l, size_t i, const char *path, size_t max, char **buf, size_t *len,
                    kiln_error **err)
{
  autoclose int fd = open_data (l, i, path, err);
  if (fd < 0 || fs_read_fd (fd, max, buf, len, err) < 0)
    return kiln_error_wrap (err, "reading '/%s' of layer %zu", path, i);
  return 0;
}

int
attest_layers_same_data (const attest_layers *l, size_t la, size_t lb, const char *path, kiln_error **err)
{
  autoclose int a = open_data (l, la, path, err);
  if (a < 0)
    return kiln_error_wrap (err, "comparing '/%s'", path);
  autoclose int b = open_data (l, lb, path, err);
  if (b < 0)
    return kiln_error_wrap (err, "comparing '/%s'", path);
  enum { CHUNK = 1 << 16 };
  autofree char *ba = xmalloc (CHUNK);
  autofree char *bb = xmalloc (CHUNK);
  for (;;)
    {
      ssize_t na = fs_read_all (a, ba, CHUNK, err);
      if (na < 0)
        return kiln_error_wrap (err, "comparing '/%s'", path);
      ssize_t nb = fs_read_all (b, bb, CHUNK, err);
      if (nb < 0)
        return kiln_error_wrap (err, "comparing '/%s'", path);
      if (na != nb || memcmp (ba, bb, (size_t) na) != 0)
        return 0;
      if (na == 0)
        return 1;
    }
}
