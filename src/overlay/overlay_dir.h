/* overlay_dir.h - a stage's root as a real directory tree plus the write log
 * that turns a step into the same change list the FUSE overlay would give
 * (overlay.h), for ptrace isolation (src/sandbox/tracer.h) where /dev/fuse,
 * mounts and user namespaces are denied.
 *
 * overlay_dir_new materializes the merged lower layers under SCRATCH/root:
 * directories, symlinks and fifos are made there; regular files are hard
 * links of the store layers' files (copied from plain-directory lowers and
 * when linking fails), made read-only on disk; devices and sockets are empty
 * placeholder files. The true metadata (owner, mode, device numbers,
 * xattrs, and times of shared inodes) lives in a table keyed by
 * (st_dev, st_ino). An inode flagged "lower" is shared with the store or
 * with a frozen earlier step and is never written: every change copies it
 * up first (a new inode under the same name).
 *
 * The tracer does each of the step's calls on the tree itself and reports
 * it through the ops below (one per tracer_fs_ops callback, same meaning and
 * arguments, the overlay_dir first): the write log of dirty names, removed
 * base names and changed inodes that overlay_dir_commit turns into the
 * step's overlay_changes, visiting only dirty names.
 *
 * Typical use:
 *   overlay_dir_new (&cfg, &od, &err);                 once per stage
 *   tracer_run (... root = overlay_dir_root_path (od), ops -> overlay_dir_*)
 *   overlay_dir_commit (od, &changes, &err);          the step's changes
 *   overlay_dir_apply (od, lower, from, &err);         a COPY's layer added
 *   overlay_dir_begin_step (od, uid, gid, masks);      next step, same root
 *   overlay_dir_free (od);
 *
 * Not thread-safe: the tracer calls it from one thread. See
 * docs/design/overlay-dir.md.
 */
#ifndef KILN_OVERLAY_OVERLAY_DIR_H
#define KILN_OVERLAY_OVERLAY_DIR_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include "overlay/overlay.h"
#include "overlay/overlay_lower.h"
#include "util/error.h"

typedef struct overlay_dir overlay_dir;

typedef struct overlay_dir_config
{
  overlay_lower *lower;          /* taken by overlay_dir_new, even on failure */
  int scratch_dirfd;             /* private directory: root/ and frozen-GEN/ are made here (dup'ed) */
  /* As overlay_config.mask_paths: relative, a trailing '/' for a directory;
   * they exist in the root (made empty when the image lacks them) and never
   * appear in a change list. NULL-terminated, may be NULL. */
  const char *const *mask_paths;
  /* Owner of files that appear without a report (made behind the ops' back). */
  uid_t create_uid;
  gid_t create_gid;
} overlay_dir_config;

int overlay_dir_new (const overlay_dir_config *cfg, overlay_dir **out, kiln_error **err);
/* Removes root/ and the frozen directories (never following symlinks;
 * modes the step took away are restored on the way). */
void overlay_dir_free (overlay_dir *od);

/* The root for the tracer and Landlock: host path and an O_DIRECTORY fd
 * (borrowed, valid until overlay_dir_free). */
const char *overlay_dir_root_path (const overlay_dir *od);
int overlay_dir_root_fd (const overlay_dir *od);

/* ---- the tracer's ops: tracer_fs_ops with the overlay_dir first ----
 * fd/dirfd are O_PATH fds inside the root (borrowed); path is the guest
 * path relative to the root ("" is the root, no leading '/'). Return 0 or
 * -errno. */

/* Before dirfd/name (an existing regular file) is opened for writing or
 * truncated: a lower inode is copied up (data, true metadata, xattrs) to a
 * new inode that replaces the name; the lower inode is never opened for
 * writing. A missing name is fine (the open creates it). */
int overlay_dir_before_write (overlay_dir *od, int dirfd, const char *name, const char *path);

typedef enum overlay_dir_change_kind
{
  OVERLAY_DIR_WRITE = 0,  /* regular file opened for writing, truncated or created by open */
  OVERLAY_DIR_CREATE,     /* mkdir, symlink, mknod, bind of a unix socket */
  OVERLAY_DIR_LINK,       /* path is a new hard link to path2 */
  OVERLAY_DIR_REMOVE,     /* unlink, rmdir */
  OVERLAY_DIR_RENAME,     /* path moved to path2 (flags: renameat2's) */
  OVERLAY_DIR_META,       /* mode, times or owner of path changed */
} overlay_dir_change_kind;

/* Same layout and values as tracer_change (the glue converts field by field). */
typedef struct overlay_dir_change
{
  overlay_dir_change_kind kind;
  const char *path;
  const char *path2;
  unsigned flags;
  uid_t uid;                /* the step's ids: owner of what it created */
  gid_t gid;
} overlay_dir_change;

/* After a successful mutation: marks the names dirty, records removed base
 * names, and gives inodes the table does not know (new) their owner
 * (c->uid/gid, a setgid parent's group) and true mode (the real one). */
void overlay_dir_changed (overlay_dir *od, const overlay_dir_change *c);
/* chown & co.: recorded only ((uid_t)-1/(gid_t)-1: unchanged); clears
 * setuid/setgid of regular files as chown(2). A lower inode is copied up
 * first (its other names keep their owner). */
int overlay_dir_set_owner (overlay_dir *od, int fd, const char *path, uid_t uid, gid_t gid);
/* chmod & co.: the true mode (with setuid/setgid/sticky) is recorded; the
 * real inode gets only permission bits, plus u+rw (files) or u+rwx
 * (directories) so kiln's uid can always work in and clean up the tree: a
 * real setuid file is never made. Symlinks: recorded only. */
int overlay_dir_set_mode (overlay_dir *od, int fd, const char *path, mode_t mode);
/* utimensat & co. (no UTIME_NOW/OMIT): recorded and applied to the real
 * inode (a lower one is copied up first). */
int overlay_dir_set_times (overlay_dir *od, int fd, const char *path, const struct timespec ts[2]);
/* mknod of a fifo (a real fifo), a device or a socket (an empty 0600
 * placeholder file: never a real node) at dirfd/name, owned by uid:gid. */
int overlay_dir_mknod (overlay_dir *od, int dirfd, const char *name, const char *path, mode_t mode,
                       dev_t rdev, uid_t uid, gid_t gid);
/* Extended attributes, kept in the table (from the lowers' indexes, set by
 * the steps) and never on the real files: the layer carries them
 * (overlay_change.xattrs) as the FUSE overlay's do, with its rules: names
 * user.* (regular files and directories only) and security.capability,
 * others EOPNOTSUPP (ENODATA when read); names over 255 bytes ERANGE,
 * values over 64 KiB E2BIG; 16 MiB of xattrs in the table, 4096 per file:
 * then ENOSPC. fd is the file's O_PATH fd (not followed where the call
 * does not follow), path its guest path (marked dirty by the changes).
 * get/list: size 0 asks for the length; the length, -ERANGE when buf is
 * too small, -ENODATA for a missing name (list: names NUL-terminated, in
 * the FUSE model's order). set: flags XATTR_CREATE (-EEXIST) / XATTR_REPLACE
 * (-ENODATA). set/remove copy a lower inode up first, as set_mode does;
 * the tracer reports them as META changes. */
int overlay_dir_get_xattr (overlay_dir *od, int fd, const char *path, const char *name, void *buf, size_t size);
int overlay_dir_list_xattr (overlay_dir *od, int fd, const char *path, char *buf, size_t size);
int overlay_dir_set_xattr (overlay_dir *od, int fd, const char *path, const char *name, const void *value,
                           size_t size, int flags);
int overlay_dir_remove_xattr (overlay_dir *od, int fd, const char *path, const char *name);
/* What stat() shows for the root's inode whose real status is *real:
 * owner, mode (incl. the type of placeholders), rdev from the table; times
 * from the table for lower inodes, else the real ones. Unknown inodes show
 * their real status owned by create_uid/gid. */
void overlay_dir_present (overlay_dir *od, const struct stat *real, struct stat *shown);

/* ---- steps ---- */

/* End the step (no process of it left): its change list, as
 * overlay_commit's (sorted, parents first, the directories above a change
 * as ADD, whiteouts for removed names that existed at the step's start,
 * OPAQUE for replaced directories, HARDLINK for further names of an inode,
 * mask paths never). The data of changed regular files is frozen, not
 * copied: linked into SCRATCH/frozen-GEN/, made read-only and flagged lower,
 * so the next step copies it up before writing and the list's data
 * (data_private) never changes. data_dirfd is borrowed from od. */
int overlay_dir_commit (overlay_dir *od, overlay_changes **out, kiln_error **err);
/* Settings of the next step on the same root (after overlay_dir_commit):
 * the owner of files made behind the ops' back and the mask paths (made if
 * missing; a placeholder made for a path no longer masked is removed when
 * it is still empty and no layer shipped it). */
int overlay_dir_begin_step (overlay_dir *od, uid_t create_uid, gid_t create_gid,
                            const char *const *mask_paths);

/* Between steps (after overlay_dir_commit or overlay_dir_new), when the
 * tree shows exactly layers [0, from) of lower (the layers it was made or
 * last applied with, in the same order, plus nothing but committed steps
 * whose layers those are): apply layers [from, count) on top, as a COPY or
 * a cached step adds them. Names a new layer whites out or replaces are
 * removed, opaque directories emptied, its entries made as overlay_dir_new
 * makes them, so the tree is what overlay_dir_new would make of lower, for
 * the cost of the new layers' entries. Takes lower, even on failure (the
 * tree is then unusable: free it). */
int overlay_dir_apply (overlay_dir *od, overlay_lower *lower, unsigned from, kiln_error **err);

/* Bytes of the metadata table per entry and entries held (for reports). */
size_t overlay_dir_table_entry_size (void);
size_t overlay_dir_table_entries (const overlay_dir *od);

#endif
