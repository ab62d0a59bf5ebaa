/* fuzz_layer_index.c - the layer index reader on arbitrary bytes: anything
 * that validates must be safe to walk with every accessor. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/layer_index.h"
#include "util/alloc.h"
#include "util/strbuf.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  kiln_error *err = NULL;
  layer_index *idx = NULL;
  if (layer_index_open_mem (data, size, &idx, &err) < 0)
    {
      if (err == NULL)
        abort ();
      kiln_error_clear (&err);
      return 0;
    }
  strbuf sb = STRBUF_INIT;
  for (uint32_t i = 0; i < layer_index_count (idx); i++)
    {
      const layer_index_disk_entry *e = layer_index_entry (idx, i);
      size_t nl;
      const char *n = layer_index_name (idx, i, &nl);
      if (i && layer_index_lookup_child (idx, e->parent, n, nl) != i)
        abort ();
      strbuf_reset (&sb);
      layer_index_path (idx, i, &sb);
      if (layer_index_lookup (idx, sb.buf) != i)
        abort ();
      layer_index_link (idx, i, &nl);
      (void) layer_index_st_mode (e);
      for (uint32_t x = 0; x < e->xattr_count; x++)
        {
          const char *xn;
          size_t xnl, vl;
          const void *v;
          layer_index_get_xattr (idx, i, x, &xn, &xnl, &v, &vl);
        }
    }
  strbuf_release (&sb);
  layer_index_close (idx);
  return 0;
}
