/* overlay_dir_internal.h - what the overlay_dir*.c files share. PRIVATE to
 * src/overlay/overlay_dir*.c; the API is overlay_dir.h.
 *
 *   overlay_dir.c         the metadata table, path sets, paths in the root,
 *                         mask paths, new/free, present.
 *   overlay_dir_mat.c     the lowers made a tree; further layers applied.
 *   overlay_dir_ops.c     copy-up and the tracer's ops (the write log).
 *   overlay_dir_commit.c  the write log turned into a change list; freezing.
 */
#ifndef KILN_OVERLAY_OVERLAY_DIR_INTERNAL_H
#define KILN_OVERLAY_OVERLAY_DIR_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include "overlay/overlay_dir.h"

enum
{
  /* shared with the store or frozen by a commit: never written */
  OD_LOWER = 1 << 0,
  /* a device or socket shown by an empty regular file */
  OD_PLACEHOLDER = 1 << 1,
  /* registered by mknod just before the tracer reports its CREATE */
  OD_JUST_MADE = 1 << 2,
  /* a placeholder made for a mask path, not (yet) shipped by a layer */
  OD_MASK_MADE = 1 << 3,
  /* a mask path's inode: skipped by commits wherever it moved (the FUSE
   * model keeps the mark on the name's entry, which moves with its
   * directory) */
  OD_MASKED = 1 << 4,
};

/* One inode of the root. ino == 0 marks a free slot. */
typedef struct od_meta
{
  uint64_t dev, ino;
  int64_t btime;          /* birth time (ns) when the filesystem has it, else 0:
                           * tells an entry of a freed inode from a reused number */
  struct timespec atime, mtime; /* authoritative only for OD_LOWER inodes */
  uint64_t rdev;
  mode_t mode;            /* true type and 07777 */
  uid_t uid;
  gid_t gid;
  uint32_t flags;
  uint32_t changed;       /* step (od->gen) in which it changed, 0: never */
  uint32_t nx;
  overlay_xattr *x;
  /* A frozen inode a commit shipped under several names: those names, so a
   * copy-up moves all of them to the copy (they are one file, as in the
   * FUSE model). NULL-terminated, NULL for most. */
  char **names;
} od_meta;

/* Set of owned strings (open addressing, linear probing). */
typedef struct od_set
{
  char **slot;
  size_t cap, n;
} od_set;

struct overlay_dir
{
  overlay_lower *lower;
  int scratch_fd;
  int root_fd;
  char *root_path;
  unsigned gen;           /* the current step, from 1 */
  uid_t create_uid;
  gid_t create_gid;
  char **masks;           /* relative, no trailing '/' */
  bool *mask_isdir;
  od_meta *tab;
  size_t tab_cap, tab_n;
  od_set base;            /* paths that existed when the step began */
  od_set dirty;           /* touched paths and every directory above them */
  od_set deleted;         /* base paths removed or replaced in the step */
  /* before_write's last answer, to tell a file created by open from an
   * existing one in the WRITE report that follows */
  char *bw_path;
  bool bw_absent;
  uint64_t frozen_seq;
  size_t xattr_bytes;     /* every xattr in the table (OD_XATTR_COST) */
};

/* xattrs live in the table, never on the real files. What the step can
 * make kiln hold is bounded as in the FUSE model (OVERLAY_XATTR_BUDGET,
 * OVERLAY_XATTRS_PER_INODE in overlay_model_internal.h): names + values of
 * every xattr in the table (the lowers' included), with their bookkeeping;
 * setxattr beyond 16 MiB, or a file's 4097th xattr, fails ENOSPC. Names
 * and values are limited like the kernel's (XATTR_NAME_MAX, XATTR_SIZE_MAX). */
#define OD_XATTR_BUDGET ((size_t) 16 << 20)
#define OD_XATTRS_PER_INODE 4096
#define OD_XATTR_NAME_MAX 255
#define OD_XATTR_SIZE_MAX 65536
#define OD_XATTR_COST(name, len) (strlen (name) + 1 + (len) + sizeof (overlay_xattr))

static inline void
od_xattr_account (overlay_dir *od, size_t minus, size_t plus)
{
  od->xattr_bytes = (od->xattr_bytes > minus ? od->xattr_bytes - minus : 0) + plus;
}

/* ---- sets (overlay_dir.c) ---- */
bool od_set_has (const od_set *s, const char *k);
/* Adds a copy of k; true if it was not there. */
bool od_set_add (od_set *s, const char *k);
void od_set_clear (od_set *s);
/* Is path, or a directory above it, in gone_self (the name itself went), or
 * a directory above it in gone_under (what was below it went)? "" is the
 * root. */
bool od_gone_below (const od_set *gone_self, const od_set *gone_under, const char *path);
/* Drop from od->base every name od_gone_below says went. */
void od_base_drop_gone (overlay_dir *od, const od_set *gone_self, const od_set *gone_under);

/* ---- table (overlay_dir.c) ---- */
/* The entry of st's inode, NULL if none or if it belongs to a freed inode
 * whose number st's now has (type or birth time differ). The pointer is
 * valid until the next od_meta_put. */
od_meta *od_meta_get (overlay_dir *od, const struct stat *st, int64_t btime);
/* Entry for st's inode, created (zeroed, key set) or reset when stale. */
od_meta *od_meta_put (overlay_dir *od, const struct stat *st, int64_t btime);
/* Frees the entry's xattrs (taking them off od->xattr_bytes) and names. */
void od_meta_free_xattrs (overlay_dir *od, od_meta *e);
/* Birth time of dirfd/name in ns (0 unknown), AT_SYMLINK_NOFOLLOW. */
int64_t od_btime (int dirfd, const char *name);
/* statx of dirfd/name ("" for dirfd itself) into struct stat's fields kiln
 * uses, and the birth time (may be NULL). AT_SYMLINK_NOFOLLOW. -errno. */
int od_statx (int dirfd, const char *name, struct stat *st, int64_t *btime);

/* ---- materialization (overlay_dir_mat.c) ---- */
/* Make od->lower's merged layers under the (empty) root. */
int od_materialize (overlay_dir *od, kiln_error **err);

/* ---- paths (overlay_dir.c) ---- */
/* O_PATH|O_NOFOLLOW fd of path's parent directory in the root (no symlink
 * followed anywhere, never leaving the root) and the last component in
 * *name (pointing into path; "" has no parent: -EINVAL). */
int od_open_parent (overlay_dir *od, const char *path, const char **name);
/* lstat of path in the root (same resolution rules). */
int od_lstat (overlay_dir *od, const char *path, struct stat *st, int64_t *btime);
/* Is path (whose status is st, may be NULL) a mask path, below a directory
 * one, or a mask path's inode? */
bool od_masked (overlay_dir *od, const char *path, const struct stat *st);
char *od_join (const char *a, const char *b);
/* Read-only mode of a shared inode: 0444, or 0555 when mode has an x bit. */
mode_t od_ro_mode (mode_t mode);
/* chmod the inode open at fd (O_PATH is fine), through /proc/self/fd. */
int od_chmod_fd (int fd, mode_t mode);

#endif
