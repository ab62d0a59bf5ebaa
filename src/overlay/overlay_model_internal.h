/* overlay_model_internal.h - what the overlay_model*.c files share. PRIVATE
 * to src/overlay/overlay_model*.c (overlay_model.c, overlay_model_ops.c,
 * overlay_model_commit.c, overlay_model_step.c, overlay_model_layers.c): nothing else may include
 * it; the model's API is overlay_model.h.
 *
 * Where things are:
 *   overlay_model.c         the node table (inodes by number, directory
 *                           hashes, the write-log sets), lazy merging of the
 *                           lower layers (whiteouts, opaque markers, mask
 *                           placeholders), attributes, name checks; the
 *                           read-only requests (lookup, forget, getattr,
 *                           readlink, readdir, statfs); new and free.
 *   overlay_model_ops.c     copy-up and the requests that change the view:
 *                           setattr, chown, mknod, link, unlink, rmdir,
 *                           rename, open/release, the xattr requests.
 *   overlay_model_commit.c  the write log turned into a change list
 *                           (overlay_model_commit) and a new upper
 *                           generation.
 *   overlay_model_step.c    per-step settings on a live mount: mask paths
 *                           and the creating owner (overlay_model_set_step).
 *   overlay_model_layers.c  layers added on top of a live mount
 *                           (overlay_model_push_layers).
 *
 * Locking: every public overlay_model_* request takes the model lock once
 * (LOCKED below); the functions declared here that touch the model expect
 * it held (or run before the model is shared, in overlay_model_new).
 */
#ifndef KILN_OVERLAY_OVERLAY_MODEL_INTERNAL_H
#define KILN_OVERLAY_OVERLAY_MODEL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include "overlay/overlay_lower.h"
#include "overlay/overlay_model.h"

/* ---- small string set (write log sets) ---- */
typedef struct strset
{
  char **slot;
  size_t cap, n;
} strset;

/* ---- nodes ---- */
typedef struct inode inode;
typedef struct dentry dentry;

enum { MASK_NONE, MASK_SKIP };

struct dentry
{
  char *name;
  inode *parent;
  inode *inode;
  dentry *hnext;       /* chain in parent's hash */
  dentry *alias_next;  /* other names of the same inode */
  bool base;           /* existed when the step started */
  uint8_t mask;
  /* A placeholder the view made for a mask path the image lacks; it goes
   * away again when a later step on the same mount no longer masks it
   * (unless a layer shipped it meanwhile). */
  bool synth;
};

typedef struct xattr_ent
{
  char *name;
  void *val;
  size_t len;
} xattr_ent;

struct inode
{
  uint64_t ino;
  inode *tnext;
  uint64_t nlookup;
  unsigned open_count;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  dev_t rdev;
  uint64_t size;
  struct timespec atime, mtime, ctime;
  char *symlink;
  char *lpath;               /* path in the lower layers, NULL if none */
  uint16_t *llayers;         /* dirs: contributing layers, top first; files: [0] */
  unsigned nll;
  bool lchain_closed;        /* while merging the parent: lower layers stop here */
  bool limplicit;            /* attributes are an implicit directory's defaults */
  unsigned lnlink;           /* lower data's link count (its other names are
                              * separate inodes here, as in overlayfs) */
  bool has_upper;
  unsigned upper_gen;
  bool xloaded;
  xattr_ent *x;
  size_t nx;
  dentry *aliases;
  /* overlay_model_copy_up is copying its data without the model lock:
   * every other copy-up of it waits on the model's copied condition */
  bool copying;
  /* an O_TMPFILE file that has not had a name yet: link may give it one
   * (the kernel checks O_EXCL, which makes it unlinkable, itself) */
  bool linkable;
  bool changed;
  /* commit bookkeeping: emit_path is the path of the first change of this
   * inode in commit emit_commit, borrowed from that commit's change list */
  uint64_t emit_commit;
  const char *emit_path;
  /* directories */
  bool loaded;
  overlay_listing *listing;  /* shared by open handles; NULL when none or stale */
  dentry **buckets;
  size_t nbuckets, nentries;
  unsigned nsubdirs;
  strset dirty;
  strset deleted;
};

struct overlay_model
{
  pthread_mutex_t lock;
  pthread_cond_t copied;     /* broadcast when an unlocked copy-up ends */
  overlay_lower *lower;
  int scratch_fd;
  int *upper_fds;            /* by generation */
  unsigned gen;
  overlay_id_mode id_mode;
  bool kill_priv;            /* overlay_model_set_kill_priv */
  uid_t present_uid;
  gid_t present_gid;
  uid_t create_uid;
  gid_t create_gid;
  char **masks;
  inode **itab;
  size_t itab_cap, itab_n;
  uint64_t next_ino;
  uint64_t commits;
  inode *root;
  /* Memory a step makes kiln hold, against the budgets below. */
  size_t xattr_bytes;        /* every xattr in the node table (OVERLAY_XATTR_COST) */
  size_t listing_bytes;      /* live listings, shared or stale */
  size_t listings;
  unsigned notice;           /* NOTICE_* to log (overlay_model_take_notice) */
  unsigned noticed;          /* NOTICE_* logged since the last commit */
};

/* ---- memory bounds ----
 * What a step can make kiln hold beyond what it pays for itself (see
 * docs/design/overlay.md, "Memory bounds"). The node table grows with what
 * the step creates (a name, an inode); these cover the structures that could
 * multiply it.
 *
 * xattrs: names + values of every xattr in one mount's node table, counted
 * with their bookkeeping. Real images carry a few dozen bytes per file
 * (security.capability, the odd user.* tag): 16 MiB is a few hundred
 * thousand of those. At commit the change list copies the xattrs it ships and
 * the layer writer and the index hold them again, so a full budget costs about
 * five times this at the peak (80 MB measured). setxattr beyond it fails
 * with ENOSPC. */
#define OVERLAY_XATTR_BUDGET ((size_t) 16 << 20)
#define OVERLAY_XATTR_COST(name_len, value_len) ((name_len) + 1 + (value_len) + sizeof (xattr_ent))
/* Per file: what the store's layer index accepts for one entry
 * (XATTR_COUNT_MAX in src/store/layer_index_internal.h); more could not be
 * committed. */
#define OVERLAY_XATTRS_PER_INODE 4096
/* Listings: bytes of directory listings held by open directory handles. One
 * listing per directory is shared by all its handles, so this only fills when
 * a step changes a directory between opendirs and keeps the handles open
 * (each sees its own snapshot). A listing costs about 24 bytes + the name per
 * entry: 64 MiB is a few hundred snapshots of a 10,000-entry directory. The
 * first listing is always granted (it is no bigger than the directory the
 * node table holds anyway); opendir beyond the budget fails with ENOMEM. */
#define OVERLAY_LISTING_BUDGET ((size_t) 64 << 20)

enum
{
  NOTICE_XATTR = 1 << 0,
  NOTICE_LISTING = 1 << 1,
};
/* A budget refused a request: record it for overlay_model_take_notice. */
void overlay_model_notice (overlay_model *m, unsigned what);

/* ---- the model lock ---- */
static inline pthread_mutex_t *
lock_it (pthread_mutex_t *l)
{
  pthread_mutex_lock (l);
  return l;
}

static inline void
unlock_it (pthread_mutex_t **l)
{
  pthread_mutex_unlock (*l);
}

/* Body runs once under the model lock; `break` leaves it and the cleanup
 * attribute releases the lock on every exit path. */
#define LOCKED(m)                                                                        \
  for (pthread_mutex_t *_lk __attribute__ ((cleanup (unlock_it))) = lock_it (&(m)->lock), \
                       *_once = _lk;                                                     \
       _once; _once = NULL)

/* ---- shared helpers (overlay_model.c unless said otherwise) ---- */
bool overlay_model_strset_has (const strset *s, const char *k);
void overlay_model_strset_clear (strset *s);

struct timespec overlay_model_now (void);
inode *overlay_model_ino_get (overlay_model *m, uint64_t ino);
inode *overlay_model_inode_new (overlay_model *m, mode_t mode);
/* The name of an inode's data file in an upper directory. */
void overlay_model_data_name (const inode *n, char *buf, size_t len);
void overlay_model_inode_destroy (overlay_model *m, inode *n);
/* Destroys n once nothing refers to it (no lookup, open file or name). */
void overlay_model_maybe_free (overlay_model *m, inode *n);

dentry *overlay_model_dir_find (inode *dir, const char *name);
dentry *overlay_model_dir_add (inode *dir, const char *name, inode *child, bool base);
inode *overlay_model_dir_del (inode *dir, dentry *d);

/* write log */
void overlay_model_mark_changed (overlay_model *m, inode *n);
void overlay_model_log_removed (overlay_model *m, inode *dir, dentry *d);

char *overlay_model_join (const char *a, const char *b);
/* A new inode for name in a directory whose path in the lowers is
 * dir_lpath, with the attributes a of lower layer layer (its only
 * contributing layer so far). Not in any directory yet. */
inode *overlay_model_lower_inode (overlay_model *m, const char *dir_lpath, const char *name, unsigned layer,
                                  const overlay_lower_attr *a);
dentry *overlay_model_add_placeholder (overlay_model *m, inode *dir, const char *name, bool isdir);
void overlay_model_load_dir (overlay_model *m, inode *dir);
/* Is p (a path in the view, "" for the root), or anything below it, a mask
 * path of the step? */
bool overlay_model_masks_under (const overlay_model *m, const char *p);
/* Directory n and its loaded subdirectories, moved by a rename, take the
 * mask paths that now lie below them (placeholders, masked names), as if
 * they were loaded there. */
void overlay_model_remask (overlay_model *m, inode *n);
void overlay_model_load_xattrs (overlay_model *m, inode *n);

int overlay_model_upper_fd_of (overlay_model *m, const inode *n);
void overlay_model_fill_stat (overlay_model *m, inode *n, struct stat *st);

int overlay_model_valid_name (const char *name);
/* The directory (merged, -ENOTDIR, -ENOENT once removed) or inode with number
 * ino; -ESTALE for an unknown number. */
int overlay_model_get_dir (overlay_model *m, uint64_t ino, inode **out);
int overlay_model_get_ino (overlay_model *m, uint64_t ino, inode **out);

/* overlay_model_ops.c: give n its own data file in the current upper.
 * Data of OVERLAY_COPY_UP_UNLOCKED bytes or more is copied with the model
 * lock released (other requests go on; another copy-up of n waits), so a
 * caller must not rely on the model staying as it was across this call,
 * apart from n itself, which stays allocated. */
int overlay_model_copy_up (overlay_model *m, inode *n);
/* Below this, a copy takes less time than releasing the lock is worth. */
#define OVERLAY_COPY_UP_UNLOCKED ((uint64_t) 1 << 20)

/* overlay_model.c: start upper generation 0, or the next one after a commit. */
int overlay_model_new_upper (overlay_model *m, kiln_error **err);

/* Frees n's xattrs and takes them off the budget. */
void overlay_model_xattrs_free (overlay_model *m, inode *n);

/* overlay_model_step.c: mask paths as the model keeps them. */
char **overlay_model_masks_copy (const char *const *paths);

#endif
