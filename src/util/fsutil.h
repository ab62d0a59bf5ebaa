/* fsutil.h - safe filesystem helpers on directory file descriptors.
 *
 * Everything kiln touches below an untrusted tree (a build context, an
 * unpacked base layer, the upper directory a RUN step wrote) is reached from
 * a directory fd with *at() calls; no function here takes a path string that
 * is resolved through symlinks the caller does not control. All descriptors
 * are opened O_CLOEXEC, all calls retry on EINTR, and errno is saved where the
 * failure happened (err->status).
 */
#ifndef KILN_UTIL_FSUTIL_H
#define KILN_UTIL_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "util/error.h"

/* Resolution modes for fs_open_in_root (exactly one of IN_ROOT/BENEATH).
 *
 * FS_RESOLVE_IN_ROOT: resolve as if rootfd were "/" (chroot semantics, the
 *   kernel's RESOLVE_IN_ROOT): absolute paths and absolute symlink targets
 *   start at rootfd, ".." at the root stays at the root. Use it to look up a
 *   path *inside an image* (COPY --from, USER lookups in /etc/passwd, ...).
 * FS_RESOLVE_BENEATH: like RESOLVE_BENEATH: any attempt to leave rootfd (an
 *   absolute path or symlink, ".." above the root) fails with EXDEV.
 * Magic links (/proc/PID/fd/N and friends) are never followed
 * (RESOLVE_NO_MAGICLINKS); the fallback reads every link as text, so a
 * magic link is resolved as the literal path it prints, clamped in the root.
 */
enum
{
  FS_RESOLVE_IN_ROOT = 1 << 0,
  FS_RESOLVE_BENEATH = 1 << 1,
  /* Fail with ELOOP on any symlink component (RESOLVE_NO_SYMLINKS). */
  FS_RESOLVE_NO_SYMLINKS = 1 << 2,
  /* Skip openat2 and use the userspace walk (tests; kernels < 5.6 get it
   * automatically when openat2 returns ENOSYS). */
  FS_RESOLVE_FORCE_FALLBACK = 1 << 3,
};

/* Maximum symlinks followed in one lookup (the kernel's MAXSYMLINKS). */
#define FS_MAX_SYMLINKS 40

/* Open path relative to rootfd, never escaping it. flags are open(2) flags
 * (O_CLOEXEC is always added); O_NOFOLLOW applies to the last component as in
 * openat2 (with O_PATH it opens the link itself, otherwise ELOOP). mode is used
 * only with O_CREAT/O_TMPFILE. resolve is a set of FS_RESOLVE_* flags.
 * Returns the new fd, or a negative value with *err set (status ELOOP for too
 * many links, EXDEV for an escape in BENEATH mode). An empty path or "."
 * opens rootfd itself (re-opened with flags).
 *
 * openat2(2) is used when the kernel has it; on ENOSYS a component-by-component
 * walk with openat(O_PATH|O_NOFOLLOW) follows symlinks itself, keeping a stack
 * of the directories it descended through so ".." pops to the directory it
 * actually came from (never re-resolving a path string). */
int fs_open_in_root (int rootfd, const char *path, int flags, mode_t mode,
                     int resolve, kiln_error **err);

/* Create directory path (and its missing parents) below dirfd with mode
 * (subject to umask, like mkdir -p). Symlinks are never followed: an existing
 * component that is a symlink, or not a directory, is an error (ELOOP /
 * ENOTDIR) naming it. Leading "/" are ignored (path is relative to dirfd);
 * ".." components are rejected (EINVAL). Existing directories are fine. */
int fs_mkdir_p_at (int dirfd, const char *path, mode_t mode, kiln_error **err);
/* Same, and return an O_RDONLY|O_DIRECTORY fd on the final directory. */
int fs_mkdir_p_open_at (int dirfd, const char *path, mode_t mode, kiln_error **err);

/* Atomic file replacement, streaming: create a temp file ".NAME.tmp-XXXXXX"
 * in the directory that will hold name, write to a->fd, then commit (fsync,
 * fchmod(mode), renameat over name, fsync the directory) or abort (unlink the
 * temp). Readers see the old content or the new, never a partial file.
 * name may contain "/": its directory part is resolved with
 * FS_RESOLVE_BENEATH below dirfd and must exist. mode is exact (no umask). */
typedef struct fs_atomic_file
{
  int fd;        /* write here; -1 when not open */
  int dirfd;     /* directory holding name and the temp file */
  char *tmpname; /* basename of the temp file */
  char *name;    /* basename of the target */
  mode_t mode;
} fs_atomic_file;

int fs_atomic_open (int dirfd, const char *name, mode_t mode, fs_atomic_file *a, kiln_error **err);
int fs_atomic_commit (fs_atomic_file *a, kiln_error **err);
/* Safe to call after commit or on a zeroed/never-opened struct with fd -1. */
void fs_atomic_abort (fs_atomic_file *a);
void cleanup_fs_atomicp (fs_atomic_file *a);
#define autoatomic __attribute__ ((cleanup (cleanup_fs_atomicp)))
#define FS_ATOMIC_FILE_INIT { -1, -1, NULL, NULL, 0 }

/* One-shot atomic write of len bytes. */
int fs_write_file_atomic_at (int dirfd, const char *name, const void *data, size_t len,
                             mode_t mode, kiln_error **err);
/* The same without either fsync: readers still see the old content or the
 * new, never part of it, but after a crash the file may be missing, old or
 * empty. Only for a file in a directory the caller makes durable as a whole
 * before anything depends on it (the store's temp layer directories, which
 * store_publish_layer syncs before the rename that publishes them), or for a
 * record whose reader treats a missing or damaged one as absent. Each fsync
 * costs a journalled disk about a millisecond (docs/design/store.md,
 * "Fewer fsyncs"). */
int fs_write_file_unsynced_at (int dirfd, const char *name, const void *data, size_t len,
                               mode_t mode, kiln_error **err);

/* Read a whole file into a NUL-terminated malloc'd buffer (*len excludes the
 * NUL). A file larger than max_size is an error (EFBIG) without reading it
 * all. fs_read_file_at opens with openat(dirfd, path, O_RDONLY|O_NOCTTY) and
 * follows symlinks like openat does: for untrusted trees open with
 * fs_open_in_root first and use fs_read_fd. */
int fs_read_file_at (int dirfd, const char *path, size_t max_size, char **buf, size_t *len,
                     kiln_error **err);
int fs_read_fd (int fd, size_t max_size, char **buf, size_t *len, kiln_error **err);

/* Write all len bytes (retrying short writes and EINTR). 0 or negative. */
int fs_write_all (int fd, const void *buf, size_t len, kiln_error **err);
/* Read until len bytes or end of file; returns the count read (short only at
 * EOF) or negative. */
ssize_t fs_read_all (int fd, void *buf, size_t len, kiln_error **err);

/* Remove name below dirfd recursively, like rm -rf, with these guarantees:
 * - symlinks are removed, never followed (a link to a directory elsewhere
 *   leaves its target untouched);
 * - it never crosses a mount point: if name or anything below it is on a
 *   different mount (mount id from statx, else st_dev), removal stops with
 *   EBUSY naming that path and nothing on or below the mount is touched
 *   (entries already removed stay removed);
 * - directories without u+rwx (read-only trees from layers) are chmod'ed
 *   u+rwx (through their own fd, not a path) before descending;
 * - depth is not limited by stack or fd count (deep directories are left and
 *   re-entered through ".." with a dev/inode check).
 * A missing name is success. name must not be "", "." or "..". */
int fs_rm_rf_at (int dirfd, const char *name, kiln_error **err);

/* Create a new directory "PREFIXXXXXXX" below dirfd with mode 0700 and return
 * its name (caller frees) in *name; returns an O_RDONLY|O_DIRECTORY fd on it
 * if fd_out is not NULL. */
int fs_mkdtemp_at (int dirfd, const char *prefix, char **name, int *fd_out, kiln_error **err);

/* Copy from in to out until end of input, or at most max bytes (UINT64_MAX:
 * no limit), from the current offsets. Uses copy_file_range (reflinks or
 * in-kernel copies where the filesystem can) and falls back to read/write
 * for pipes, sockets and filesystems that refuse it. *copied (may be NULL)
 * gets the byte count, also on error. */
int fs_copy_fd (int in, int out, uint64_t max, uint64_t *copied, kiln_error **err);

/* Advisory lock on the file name below dirfd (created 0600 if missing, never
 * through a symlink). OFD locks: they belong to the returned descriptor, so
 * they also exclude other threads of the same process that lock through
 * their own call, and close() releases them (also when the process dies).
 * FS_LOCK_NONBLOCK makes a held lock an immediate error with status EAGAIN.
 * Returns the fd holding the lock. */
enum
{
  FS_LOCK_SHARED = 0,
  FS_LOCK_EXCLUSIVE = 1 << 0,
  FS_LOCK_NONBLOCK = 1 << 1,
};
int fs_lock_at (int dirfd, const char *name, int how, kiln_error **err);

/* True if openat2 is available (cached after the first call). */
bool fs_have_openat2 (void);

/* Lexically clean a '/'-separated path (no filesystem access): drop empty
 * and "." components, resolve ".." against the components before it.
 * *out is relative ("a/b", "" for the root; caller frees). A ".." above the
 * top stays at the top when clamp (chroot semantics), else the call fails
 * (-1, *out NULL). */
int fs_path_clean (const char *in, bool clamp, char **out);

#endif
