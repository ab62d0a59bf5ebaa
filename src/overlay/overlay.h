/* overlay.h - kiln's FUSE overlay: the merged root filesystem of a RUN step
 * and the write log that turns the step into a layer without a tree walk.
 *
 * An overlay serves a stack of immutable lower layers (overlay_lower.h)
 * merged with a per-step upper. All metadata (owner, mode, times, xattrs,
 * device numbers, symlink targets, directory entries) lives in the overlay's
 * node table in memory; the upper holds only regular-file data, one flat file
 * per inode in SCRATCH/upper-GEN/ID. Every mutation marks the touched names
 * dirty, so overlay_commit() knows the change set by visiting only dirty
 * names.
 *
 * Typical use by the build engine:
 *   overlay_new (&cfg, &ovl, &err);             once per stage
 *   overlay_mount (ovl, "/path/to/mnt", &err);   (or overlay_serve_fd)
 *   ... run a step on the mount ...
 *   overlay_commit (ovl, &changes, &err);       step's change list; fresh upper
 *   ... layer writer consumes changes ...
 *   overlay_changes_free (changes);
 *   overlay_begin_step (ovl, uid, gid, masks);   next step on the same mount
 *   overlay_free (ovl);                          unmounts and stops threads
 */
#ifndef KILN_OVERLAY_OVERLAY_H
#define KILN_OVERLAY_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include "overlay/overlay_lower.h"
#include "store/layer_writer.h"
#include "util/error.h"

typedef struct overlay overlay;

typedef enum overlay_id_mode
{
  /* Every file is presented to the kernel as owned by present_uid/gid (the
   * ids the step's root maps to), true owners kept for the layer; the
   * sandbox's seccomp supervisor reports chown through
   * overlay_record_chown(). */
  OVERLAY_IDS_SINGLE,
  /* True owners are presented (subuid ranges or root with a mapped range). */
  OVERLAY_IDS_FULL,
} overlay_id_mode;

typedef struct overlay_config
{
  overlay_lower *lower;          /* taken by overlay_new, even on failure */
  int scratch_dirfd;             /* upper-GEN directories are made here (dup'ed) */
  overlay_id_mode id_mode;
  /* Single mode: owner shown for every file, in the user namespace of the
   * mount: 0:0 when the step's init mounts it (sandbox_config.rootfs_fuse),
   * since the kernel maps ids through the step's namespace. */
  uid_t present_uid;
  gid_t present_gid;
  /* Single mode: the owner recorded for files the step creates. The step
   * runs as the namespace's only id (0), so its USER (e.g. 1000:1000) is
   * applied here instead; the kernel never sees it. */
  uid_t create_uid;
  gid_t create_gid;
  /* Paths kiln mounts over, relative ("proc", "etc/hosts"); a trailing '/'
   * means a directory. They always exist in the view (created empty when the
   * image lacks them) and never appear in a change list. NULL-terminated. */
  const char *const *mask_paths;
} overlay_config;

int overlay_new (const overlay_config *cfg, overlay **out, kiln_error **err);
/* Stop serving, unmount (lazily) if overlay_mount mounted, free everything. */
void overlay_free (overlay *ovl);

/* Mount on mountpoint with mount(2) (needs CAP_SYS_ADMIN over the current
 * mount namespace: root, or a user namespace owning it; no fusermount) and
 * serve it on a multithreaded session loop in background threads. */
int overlay_mount (overlay *ovl, const char *mountpoint, kiln_error **err);
/* Only the mount(2) step, for a child in other namespaces: opens /dev/fuse,
 * mounts it on mountpoint (nosuid,nodev, allow_other, default_permissions)
 * and returns the fuse fd to pass to overlay_serve_fd (e.g. by SCM_RIGHTS). */
int overlay_mount_fd (const char *mountpoint, uid_t owner_uid, gid_t owner_gid, int *fd_out,
                      kiln_error **err);
/* Serve an already mounted fuse fd (takes ownership). */
int overlay_serve_fd (overlay *ovl, int fuse_fd, kiln_error **err);
/* Stop serving; detach the mount if overlay_mount made it. Idempotent. */
void overlay_stop (overlay *ovl);

/* Record an ownership change the kernel could not pass to the filesystem
 * (single ID mode: chown to an unmapped id fails in the kernel). ino is the
 * st_ino the step sees for the file (the supervisor fstat()s the target it
 * resolved). uid/gid (uid_t)-1 leave that id unchanged. Clears setuid/setgid
 * on regular files like chown(2). */
int overlay_record_chown (overlay *ovl, uint64_t ino, uid_t uid, gid_t gid, kiln_error **err);

/* The overlay in the shapes of the sandbox's callbacks (sandbox.h:
 * sandbox_rootfs_fuse_fn and sandbox_record_chown_fn), ctx being the
 * overlay: how kiln build and kiln run join a step's sandbox to its overlay
 * without either module knowing the other. overlay_serve_cb is
 * overlay_serve_fd; overlay_record_chown_cb records a chown of the file
 * open at target_fd (its st_ino) and returns 0 or -errno, the reason logged
 * at debug level with path. */
int overlay_serve_cb (void *ovl, int fuse_fd, kiln_error **err);
int overlay_record_chown_cb (void *ovl, int target_fd, const char *path, uid_t uid, gid_t gid);
/* sandbox_owner_fn: the true owner of the node with st_ino ino, which
 * single mode presents to the kernel as 0:0; -ENOENT when the overlay has
 * no such node. */
int overlay_owner_cb (void *ovl, uint64_t ino, uid_t *uid, gid_t *gid);

/* Single ID mode: who creates a node. fn gets the calling thread's pid (in
 * kiln's pid namespace: the mount's connection must belong to it, as a
 * sandbox_session's does) and returns 1 with the fs ids that process
 * switched to (setfsuid, setuid, su ...; sandbox_creds_fsids), 0 to keep
 * create_uid/create_gid. fn NULL: always those. Set between steps. */
typedef int (*overlay_creator_fn) (void *ctx, pid_t pid, uid_t *uid, gid_t *gid);
void overlay_set_creator (overlay *ovl, overlay_creator_fn fn, void *ctx);

/* Prepare the next step on the same mount (after overlay_commit, with no
 * process of the previous step left): the owner recorded for files it
 * creates (single mode, see overlay_config) and its mask paths, replacing
 * the previous step's. A path no longer masked becomes an ordinary name;
 * a placeholder made for it disappears from the view unless a layer
 * shipped it or it holds anything. The kernel's cached dentries for the
 * names that appeared or disappeared are invalidated. */
int overlay_begin_step (overlay *ovl, uid_t create_uid, gid_t create_gid, const char *const *mask_paths);

/* Between steps on one mount (after overlay_commit, before
 * overlay_begin_step, no process of a step left): show layers first.. of
 * lower, layers the build added to the stage since the mount was made (a
 * COPY, a cached step), on top of the view. They move out of lower (which
 * the caller still frees). The view then shows what a fresh mount of the
 * whole stack would; the kernel's cached entries and attributes of the
 * names they touch are invalidated. Returns 0, or a negative errno when
 * the view cannot take them in place: lower is whole again, the mount is
 * unusable, and the caller makes a new one over lower. */
int overlay_add_layers (overlay *ovl, overlay_lower *lower, unsigned first);

/* ---- change list ---- */

typedef enum overlay_change_kind
{
  OVERLAY_CHANGE_ADD,      /* entry with metadata (and data for files) */
  OVERLAY_CHANGE_HARDLINK, /* path is a hardlink to link_target (an earlier ADD) */
  OVERLAY_CHANGE_WHITEOUT, /* path deleted: writer emits DIR/.wh.NAME */
  OVERLAY_CHANGE_OPAQUE,   /* directory path hides lower contents: DIR/.wh..wh..opq */
} overlay_change_kind;

typedef struct overlay_xattr
{
  char *name;
  void *value;
  size_t len;
} overlay_xattr;

typedef struct overlay_change
{
  overlay_change_kind kind;
  char *path;                    /* relative to the image root, no leading '/' */
  mode_t mode;                   /* type + permission bits incl. suid/sgid/sticky */
  uid_t uid;                     /* true owner */
  gid_t gid;
  uint64_t size;
  struct timespec mtime;
  dev_t rdev;
  char *symlink;                 /* symlink target */
  char *link_target;             /* HARDLINK: earlier path in this list */
  int data_dirfd;                /* regular files: data is openat(data_dirfd, data_path) */
  char *data_path;               /* (borrowed dirfd, valid until overlay_free) */
  bool data_private;             /* data in a frozen upper or a store layer (layer_change) */
  overlay_xattr *xattrs;
  size_t n_xattrs;
} overlay_change;

/* Besides the changed names themselves, the list holds every directory
 * above an ADD, HARDLINK, WHITEOUT or OPAQUE entry as an ADD with its
 * current metadata (lower-only directories included), as Docker and buildah
 * layers do; the root "" appears only when it changed itself (the layer
 * writer drops it unless add_root). Mask paths never appear. */
typedef struct overlay_changes
{
  overlay_change *v;             /* sorted: parents before children */
  size_t n;
} overlay_changes;

/* End the current step: build its change list and freeze the upper (its data
 * files become read-only lower data referenced by the list and by the node
 * table; nothing is copied), then start a fresh upper on the same mount.
 * Call with no process of the step running.
 *
 * Every file handle opened before the commit is revoked for writing: a
 * WRITE, FALLOCATE, COPY_FILE_RANGE into it or an ftruncate through it
 * fails with EBADF (reads still work), so a handle that outlived its step
 * (an fd passed to another stage's process) can never change frozen data,
 * which the store links into the published layer. The commit waits for
 * writes already in flight. */
int overlay_commit (overlay *ovl, overlay_changes **out, kiln_error **err);
void overlay_changes_free (overlay_changes *c);

/* How many writes through revoked handles were refused so far. The kernel
 * reports a refused write-back (EBADF) to the next syncfs of the mount too,
 * so a caller that syncs before overlay_commit can tell that error from
 * its own step's. */
uint64_t overlay_refused_writes (overlay *ovl);

/* The change list in the layer writer's form, for layer_writer_write().
 * *out is one allocation (free it with free()) holding *n entries: ADD ->
 * LAYER_CHANGE_ADD with meta, data_dirfd/data_path for regular files;
 * HARDLINK -> ADD with hardlink_target and the target's metadata (a
 * multiply-linked non-regular inode ships as a copy, tar links name files
 * only); WHITEOUT / OPAQUE -> the same kinds. Sockets are skipped (tar
 * cannot hold them; Docker skips them too). Every string (paths, symlink
 * and hardlink targets, xattr names and values) is BORROWED from c, and the
 * data fds from the overlay: use *out only while c is alive and before
 * overlay_free(). Fails (EINVAL) on an inconsistent list (a hardlink whose
 * target is not added, a regular file without data). */
int overlay_changes_to_layer (const overlay_changes *c, layer_change **out, size_t *n,
                              kiln_error **err);

/* Write the change list as a plain tree below dirfd: files hardlinked from
 * their data (no copy), OCI whiteout files for deletions. Owners/modes are
 * applied only when apply_owner (root); it is the test/lower format that
 * overlay_lower_open_dirs reads. */
int overlay_changes_materialize (const overlay_changes *c, int dirfd, bool apply_owner,
                                 kiln_error **err);

#endif
