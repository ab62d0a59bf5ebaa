/* overlay_lower.h - read access to the stack of immutable lower layers.
 *
 * The overlay sees its lowers only through this interface, so the backend can
 * be chosen per layer:
 * - a plain directory tree in which OCI whiteout files (".wh.NAME",
 *   ".wh..wh..opq") mark deletions (the format overlay_changes_materialize()
 *   writes, used by tests); attributes come from the host inodes;
 * - a store layer (src/store/store.h): names, types, owners, modes, times,
 *   symlink targets, device numbers, xattrs, whiteouts and opaque markers
 *   come from its mmap'd index (src/store/layer_index.h); only regular-file
 *   data is read from its tree. Opening maps and validates each index once
 *   (O(entries), no tree walk); listing a directory is the contiguous run of
 *   its children, and a path lookup one binary search per component.
 *
 * Layer 0 is the BOTTOM of the stack; higher indexes are above it. Paths are
 * relative to the layer root, without leading "/", "" for the root. Nothing
 * here ever follows a symlink inside a layer tree.
 */
#ifndef KILN_OVERLAY_LOWER_H
#define KILN_OVERLAY_LOWER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include "store/store.h"
#include "util/error.h"

typedef struct overlay_lower overlay_lower;

typedef enum overlay_lower_kind
{
  OVERLAY_LOWER_ENTRY,    /* a real entry with attributes */
  OVERLAY_LOWER_WHITEOUT, /* NAME deleted in this layer */
} overlay_lower_kind;

typedef struct overlay_lower_attr
{
  mode_t mode;            /* type and permission bits (setuid/setgid/sticky) */
  uid_t uid;
  gid_t gid;
  uint64_t size;
  struct timespec mtime;
  dev_t rdev;
  char *symlink;          /* target for symlinks (owned by the callee's caller) */
  unsigned nlink;         /* non-directories: names of the inode in this layer
                           * (hardlink group size; 0 = unknown) */
  /* A directory this layer only has because it has children below it (a
   * store index's LAYER_INDEX_F_IMPLICIT: the tar never listed it): its
   * attributes are defaults, and the nearest lower layer that contributes
   * the directory for real supplies them (a tar applier keeps the existing
   * directory), so e.g. "etc/x" in a layer does not reset a 0751 etc. */
  bool implicit;
} overlay_lower_attr;

/* Called for each name of a directory in one layer. attr is NULL for
 * whiteouts; attr->symlink is only valid during the call. Return < 0 to stop
 * (the value is returned by overlay_lower_list). */
typedef int (*overlay_lower_list_cb) (void *ud, const char *name, overlay_lower_kind kind,
                                      const overlay_lower_attr *attr);

/* Open a stack of plain-directory layers (paths bottom first). */
int overlay_lower_open_dirs (const char *const *paths, unsigned n, overlay_lower **out,
                             kiln_error **err);
/* Open a stack of published store layers by diffID ("sha256:...", bottom
 * first). Each layer's tree fd and index mapping stay open until
 * overlay_lower_free; the store itself may be closed afterwards (layers
 * in use must not be pruned meanwhile: the caller holds the store lock).
 * Implicit directories of a layer are reported with attr->implicit. */
int overlay_lower_open_store (store *s, char *const *diff_ids, unsigned n, overlay_lower **out,
                              kiln_error **err);
/* Add one more plain-directory layer on top of the stack (takes ownership of dirfd). */
void overlay_lower_push_dirfd (overlay_lower *l, int dirfd);
/* Move layers first.. of from (its top ones) onto the top of to, in their
 * order; from keeps the layers below first. */
void overlay_lower_take (overlay_lower *to, overlay_lower *from, unsigned first);
void overlay_lower_free (overlay_lower *l);
unsigned overlay_lower_count (const overlay_lower *l);

/* List directory path in layer. Returns 0, -ENOENT when path is not a
 * directory in that layer, or another negative errno. *opaque is set when the
 * layer marks the directory opaque (lower layers must not be merged). */
int overlay_lower_list (overlay_lower *l, unsigned layer, const char *path, int *opaque,
                        overlay_lower_list_cb cb, void *ud);

/* Open the regular file at path in layer for reading; returns fd or -errno. */
int overlay_lower_open (overlay_lower *l, unsigned layer, const char *path);

/* Extended attributes of path in layer (user.* and security.capability):
 * calls cb for each. Returns 0 or -errno. */
typedef void (*overlay_lower_xattr_cb) (void *ud, const char *name, const void *value, size_t len);
int overlay_lower_xattrs (overlay_lower *l, unsigned layer, const char *path,
                          overlay_lower_xattr_cb cb, void *ud);

/* Attributes of the merged root: the top layer's root directory (store:
 * its index entry, or the nearest explicit one below if implicit; plain:
 * mode and mtime of the directory, owner 0). -ENOENT for an empty stack. */
int overlay_lower_root_attr (overlay_lower *l, overlay_lower_attr *a);

/* The root's attributes in one layer: 0, or -ENOENT when the layer's root
 * is implicit (the layer says nothing of them). */
int overlay_lower_layer_root_attr (overlay_lower *l, unsigned layer, overlay_lower_attr *a);

/* Directory fd of a layer's tree (for data sources in change lists). */
int overlay_lower_dirfd (const overlay_lower *l, unsigned layer);
/* Is the layer a store layer (its tree immutable, kiln's own), not a plain
 * directory? */
bool overlay_lower_is_store (const overlay_lower *l, unsigned layer);

#endif
