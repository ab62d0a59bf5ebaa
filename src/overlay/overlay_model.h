/* overlay_model.h - the overlay's node table and request semantics, free of
 * FUSE so tests and the fuzzer can drive it directly. Internal to
 * src/overlay/. Every function takes the model lock itself and returns 0 or
 * a negative errno; inode numbers are those handed to the kernel.
 * Implemented by overlay_model.c, overlay_model_ops.c,
 * overlay_model_commit.c, overlay_model_step.c and overlay_model_layers.c (their shared private
 * header: overlay_model_internal.h).
 */
#ifndef KILN_OVERLAY_MODEL_H
#define KILN_OVERLAY_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include "overlay/overlay.h"

typedef struct overlay_model overlay_model;

#define OVERLAY_ROOT_INO 1

/* setattr mask (same meaning as FUSE_SET_ATTR_*) */
enum
{
  OVL_SET_MODE = 1 << 0,
  OVL_SET_UID = 1 << 1,
  OVL_SET_GID = 1 << 2,
  OVL_SET_SIZE = 1 << 3,
  OVL_SET_ATIME = 1 << 4,
  OVL_SET_MTIME = 1 << 5,
  OVL_SET_ATIME_NOW = 1 << 7,
  OVL_SET_MTIME_NOW = 1 << 8,
  OVL_SET_CTIME = 1 << 10,
  /* clear setuid, and setgid with group execute, of a regular file, as the
   * kernel does on write, truncate and chown by a process without
   * CAP_FSETID (FATTR_KILL_SUIDGID's bit); the FUSE glue sets it when the
   * kernel leaves that to the server (overlay_model_set_kill_priv) */
  OVL_SET_KILL_SUIDGID = 1 << 11,
};

typedef struct overlay_dirent
{
  const char *name;
  uint64_t ino;
  mode_t type;
} overlay_dirent;

/* A directory's entries, sorted by name, as they were when it was opened.
 * Immutable: n and v may be read without the model lock while a reference
 * is held. One listing is shared by every handle opened on the directory
 * until the directory changes; the next opendir then makes a new one, and
 * the old one lives on for the handles that hold it. */
typedef struct overlay_listing
{
  size_t n;
  const overlay_dirent *v;
  /* the model's bookkeeping, under its lock */
  unsigned refs;
  size_t bytes;
  void *dir;  /* the directory it is cached on; NULL once stale */
} overlay_listing;

int overlay_model_new (const overlay_config *cfg, overlay_model **out, kiln_error **err);
void overlay_model_free (overlay_model *m);

int overlay_model_lookup (overlay_model *m, uint64_t parent, const char *name, struct stat *st);
void overlay_model_forget (overlay_model *m, uint64_t ino, uint64_t n);
int overlay_model_getattr (overlay_model *m, uint64_t ino, struct stat *st);
int overlay_model_setattr (overlay_model *m, uint64_t ino, const struct stat *in, int mask,
                           struct stat *st);
/* The kernel no longer clears setuid/setgid itself (FUSE_CAP_HANDLE_KILLPRIV):
 * open with O_TRUNC clears them too (setattr: OVL_SET_KILL_SUIDGID). */
void overlay_model_set_kill_priv (overlay_model *m, bool on);
/* mknod/mkdir/symlink/create; symlink target for S_IFLNK. Counts a lookup. */
int overlay_model_mknod (overlay_model *m, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
                         const char *symlink, uid_t uid, gid_t gid, struct stat *st);
/* open(O_TMPFILE): a regular file with no name in directory parent, for
 * linkat(2) to name later (overlay_model_link) or to vanish when its last
 * handle goes. Counts a lookup. */
int overlay_model_tmpfile (overlay_model *m, uint64_t parent, mode_t mode, uid_t uid, gid_t gid, struct stat *st);
int overlay_model_link (overlay_model *m, uint64_t ino, uint64_t newparent, const char *name,
                        struct stat *st);
int overlay_model_unlink (overlay_model *m, uint64_t parent, const char *name);
int overlay_model_rmdir (overlay_model *m, uint64_t parent, const char *name);
int overlay_model_rename (overlay_model *m, uint64_t parent, const char *name, uint64_t newparent,
                          const char *newname, unsigned flags);
int overlay_model_readlink (overlay_model *m, uint64_t ino, char **target);
/* Open for I/O: copies up on write access and marks the file changed
 * then (writes through the fd need no further call). Returns the fd; *immutable is set
 * for lower data (safe for keep_cache). Pair with overlay_model_release. */
int overlay_model_open (overlay_model *m, uint64_t ino, int flags, bool *immutable);
void overlay_model_release (overlay_model *m, uint64_t ino);
/* A reference to directory ino's listing; -ENOMEM when the listing budget
 * is spent (overlay_model_take_notice says why). Pair with
 * overlay_model_closedir. */
int overlay_model_opendir (overlay_model *m, uint64_t ino, overlay_listing **out);
void overlay_model_closedir (overlay_model *m, overlay_listing *l);
int overlay_model_getxattr (overlay_model *m, uint64_t ino, const char *name, void *buf, size_t size);
int overlay_model_listxattr (overlay_model *m, uint64_t ino, char *buf, size_t size);
int overlay_model_setxattr (overlay_model *m, uint64_t ino, const char *name, const void *value,
                            size_t size, int flags);
int overlay_model_removexattr (overlay_model *m, uint64_t ino, const char *name);
int overlay_model_statfs (overlay_model *m, struct statvfs *st);
int overlay_model_chown (overlay_model *m, uint64_t ino, uid_t uid, gid_t gid);
/* The owner ino has in the layer being made (single mode presents 0:0). */
int overlay_model_owner (overlay_model *m, uint64_t ino, uid_t *uid, gid_t *gid);
int overlay_model_commit (overlay_model *m, overlay_changes **out, kiln_error **err);

/* After a request failed because a memory budget was spent (setxattr:
 * ENOSPC, opendir: ENOMEM): the message for the build log, once per budget
 * between two commits; NULL when there is nothing new to say. Free it. */
char *overlay_model_take_notice (overlay_model *m);

/* A kernel dentry to drop after the view changed outside any request. */
typedef struct overlay_model_inval
{
  uint64_t parent;
  char *name;
} overlay_model_inval;

/* Between steps on one mount: the owner for files the next step creates
 * (single mode) and its mask paths. Paths no longer masked become ordinary
 * names, and the placeholders made for them disappear unless a layer shipped
 * them or they hold anything; newly masked paths get placeholders. *inv
 * lists the names whose kernel dentries must be invalidated. */
int overlay_model_set_step (overlay_model *m, uid_t create_uid, gid_t create_gid, const char *const *mask_paths,
                            overlay_model_inval **inv, size_t *n_inv);
void overlay_model_invals_free (overlay_model_inval *v, size_t n);

/* Between steps on one mount (overlay_add_layers): lower layers first.. of
 * from move onto the top of the model's stack, and the view shows them as
 * a fresh model of the whole stack would. *inv lists the kernel dentries
 * (parent, name) and, with name NULL, the inodes whose attributes or
 * listing changed. -EAGAIN when the view cannot take them in place (a
 * layer's opaque directory over a loaded one, a mask placeholder, a name
 * the layer would replace or remove with a mask path at or below it, a
 * directory renamed on this mount): from has its layers back, the model
 * is unusable, and the caller mounts from's stack afresh. */
int overlay_model_push_layers (overlay_model *m, overlay_lower *from, unsigned first, overlay_model_inval **inv,
                               size_t *n_inv);

#endif
