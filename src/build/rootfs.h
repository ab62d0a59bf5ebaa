/* rootfs.h - read-only queries on a stage's merged filesystem without
 * mounting it.
 *
 * The build engine needs to look into an image between steps: resolve USER
 * names through /etc/passwd and /etc/group, find the metadata of COPY's
 * destination parents, walk a stage for COPY --from. Mounting the overlay
 * for that would cost a namespace and a FUSE session per query, so these
 * functions merge the layer stack themselves through the overlay_lower
 * interface (whiteouts hide lower entries, an opaque directory hides lower
 * contents, a non-directory hides everything below it in lower layers).
 *
 * Paths are relative to the image root, '/'-separated, without leading '/'
 * ("" is the root). Symlinks are never followed: a path through a symlink
 * does not resolve (-ENOENT), which is the safe answer for untrusted images.
 */
#ifndef KILN_BUILD_ROOTFS_H
#define KILN_BUILD_ROOTFS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "overlay/overlay_lower.h"
#include "util/error.h"

typedef struct rootfs_entry
{
  char *name;               /* basename (rootfs_list) or the path (rootfs_stat) */
  overlay_lower_attr attr;  /* attr.symlink owned by the entry */
  unsigned layer;           /* the layer that provides it */
} rootfs_entry;

void rootfs_entry_clear (rootfs_entry *e);

/* Metadata of path: 0, -ENOENT (absent, hidden, or below a non-directory)
 * or another -errno. e->name is set to a copy of path. */
int rootfs_stat (overlay_lower *l, const char *path, rootfs_entry *e);

/* The merged entries of directory path, sorted by name (bytewise). Returns
 * 0, -ENOENT / -ENOTDIR, or another -errno. Free with rootfs_entries_free. */
int rootfs_list (overlay_lower *l, const char *path, rootfs_entry **out, size_t *n);
void rootfs_entries_free (rootfs_entry *v, size_t n);

/* Read a regular file (at most max bytes) from the merged view. */
int rootfs_read_file (overlay_lower *l, const char *path, size_t max, char **data, size_t *len, kiln_error **err);

/* Resolve a USER / --chown spec ("name", "uid", "name:group", "uid:gid")
 * through the image's etc/passwd and etc/group as Docker does: a numeric id
 * needs no entry, a name must exist; without a group the user's primary group
 * is used (0 for a numeric uid without passwd entry). groups_out (may be
 * NULL) receives the supplementary groups listing the user by name. */
int rootfs_resolve_user (overlay_lower *l, const char *spec, uid_t *uid, gid_t *gid, gid_t **groups_out,
                         size_t *n_groups, char **home_out, kiln_error **err);

/* Resolve symlinks in path as if the image root were "/" (absolute targets
 * and ".." never leave it; at most 40 links), as Docker does for COPY
 * destinations. Components that do not exist are kept as they are. *out is
 * relative ("a/b", "" for the root); caller frees. -ELOOP on too many links. */
int rootfs_resolve_in_root (overlay_lower *l, const char *path, char **out);

#endif
