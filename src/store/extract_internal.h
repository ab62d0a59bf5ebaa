/* extract_internal.h - what extract.c shares with extract_changes.c. */
#ifndef KILN_STORE_EXTRACT_INTERNAL_H
#define KILN_STORE_EXTRACT_INTERNAL_H

#include "util/error.h"

/* The last parent directory opened below a tree: members of a tar and
 * entries of a sorted change list cluster by directory, so most lookups
 * reuse it instead of walking the path again. */
typedef struct dir_cache
{
  int treefd;
  char *dir;    /* normalised; NULL: nothing cached */
  int fd;
} dir_cache;

/* Directory fd for dir (a normalised path, "" = tree root), created if
 * missing, never through a symlink. Owned by the cache: valid until the next
 * call or extract_dir_cache_drop. */
int extract_dir_cache_get (dir_cache *c, const char *dir, kiln_error **err);
void extract_dir_cache_drop (dir_cache *c);

#endif
