/* layer_index_internal.h - what the files of the layer index module share.
 * PRIVATE to src/store/layer_index.c and src/store/layer_index_read.c:
 * nothing else includes it; the module's API is layer_index.h.
 *
 * Where things are:
 *   layer_index.c       the builder (tar-application semantics), path
 *                       normalisation, serialisation and the atomic writer
 *   layer_index_read.c  open (mmap or memory) with full validation, the
 *                       accessors and lookups
 *
 * Functions declared here are defined in layer_index.c.
 */
#ifndef KILN_STORE_LAYER_INDEX_INTERNAL_H
#define KILN_STORE_LAYER_INDEX_INTERNAL_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include "store/layer_index.h"

#if __BYTE_ORDER != __LITTLE_ENDIAN
#error "layer_index: the on-disk format is little-endian; byte swapping is not implemented"
#endif

_Static_assert (sizeof (layer_index_disk_header) == 64, "header is 64 bytes");
_Static_assert (sizeof (layer_index_disk_entry) == 88, "entry is 88 bytes");
_Static_assert (offsetof (layer_index_disk_entry, size) == 24, "entry layout");
_Static_assert (offsetof (layer_index_disk_entry, first_child) == 56, "entry layout");
_Static_assert (offsetof (layer_index_disk_entry, reserved) == 84, "entry layout");

/* Per-entry xattr limit: Linux lists at most 64 KiB of names per inode. */
#define XATTR_COUNT_MAX 4096

/* The next component of the path at *p (*len bytes at *name), skipping
 * repeated slashes and "." components, and advance *p past it; false at the
 * end. ".." comes back like any other name: the callers refuse it. */
bool layer_index_next_component (const char **p, const char **name, size_t *len);

/* Compare two names (not NUL-terminated) in index order: memcmp, a shorter
 * prefix first. */
int layer_index_name_cmp (const char *a, size_t al, const char *b, size_t bl);

#endif /* KILN_STORE_LAYER_INDEX_INTERNAL_H */
