/* tracer.h - ptrace isolation: run a step where user namespaces, mounts
 * and /dev/fuse are denied (default Docker/containerd containers,
 * Restricted Kubernetes pods; issue 15).
 *
 * The step runs as kiln's own host uid with no capabilities and
 * no_new_privs, confined by Landlock to its root directory (a real
 * directory, e.g. made by overlay_dir) plus the host paths of its binds
 * (/proc, the devices, /etc/hosts ...), with a seccomp filter that stops
 * every path- and id-related system call for kiln's tracer
 * (SECCOMP_RET_TRACE, PTRACE_O_TRACESECCOMP). The tracer
 *  - translates guest paths into host paths inside the root (symlinks are
 *    resolved as in the guest: an absolute target starts at the root,
 *    ".." stops there), binds into their host paths;
 *  - runs execve of dynamically linked programs through their (translated)
 *    ELF interpreter and `#!` scripts through their (translated)
 *    interpreter, since the kernel would resolve both against the host root;
 *  - fakes identity: getuid() & co. report the step's USER, setuid() & co.
 *    change only the fake ids, chown() & co. are recorded (ops->set_owner),
 *    stat() & co. show what ops->present says;
 *  - performs metadata changes itself on an fd it resolved (ops->set_mode,
 *    set_times, mknod), and calls ops->before_write before a file is opened
 *    for writing or truncated, and ops->changed after every successful
 *    mutation: the write log.
 * Path translation is not a boundary on its own (another thread of the step
 * may change a path between translation and use): Landlock is, so a path
 * the tracer gets wrong or a race it loses ends at EACCES, never outside the
 * root. Files of the root that must not change (a store layer's files,
 * hard-linked) are read-only and the step has no CAP_DAC_OVERRIDE/FOWNER,
 * and chmod never reaches the kernel from the step: the kernel refuses to
 * open them for writing even if the tracer were bypassed.
 *
 * Implementation: src/sandbox/tracer*.c (tracer_internal.h says which file
 * does what); design, guarantees, gaps and figures: docs/design/ptrace.md.
 * fd arguments of the ops are O_PATH fds the tracer opened itself (for fd
 * forms through /proc/PID/fd/N: Docker's default seccomp profile denies
 * pidfd_getfd without CAP_SYS_PTRACE).
 */
#ifndef KILN_SANDBOX_TRACER_H
#define KILN_SANDBOX_TRACER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include "sandbox/sandbox.h"
#include "util/error.h"

/* What changed, reported after a successful call. Paths are guest paths
 * relative to the root, normalised, symlinks in the parent resolved, the
 * last component as named ("etc/passwd"; "" is the root). */
typedef enum tracer_change_kind
{
  TRACER_CHANGE_WRITE = 0,  /* a regular file opened for writing, truncated, or created by open/creat */
  TRACER_CHANGE_CREATE,     /* mkdir, symlink, mknod/mkfifo, bind of a unix socket */
  TRACER_CHANGE_LINK,       /* path is a new hard link to path2 */
  TRACER_CHANGE_REMOVE,     /* unlink, rmdir */
  TRACER_CHANGE_RENAME,     /* path moved to path2 (RENAME_EXCHANGE: swapped, flags says) */
  TRACER_CHANGE_META,       /* mode, times or owner of path changed (through the ops below) */
} tracer_change_kind;

typedef struct tracer_change
{
  tracer_change_kind kind;
  const char *path;
  const char *path2;        /* LINK: the existing file; RENAME: the new name */
  unsigned flags;           /* RENAME: renameat2 flags */
  uid_t uid;                /* the step's fake ids at the time: the owner of what it created */
  gid_t gid;
} tracer_change;

/* The root's side of the step's file-system calls (overlay_dir implements
 * it for builds). fd arguments are O_PATH fds the tracer resolved inside the
 * root (the last component not followed where the call does not follow it),
 * borrowed for the call; path is the guest path as in tracer_change.
 * Functions returning int return 0 or -errno, which the step's call then
 * returns. Any may be NULL: the call then acts on the root directly
 * (kiln run --rootfs on a plain directory). */
typedef struct tracer_fs_ops
{
  /* Before an existing regular file is opened for writing (O_WRONLY,
   * O_RDWR, O_TRUNC) or truncated by path: make dirfd/name writable, e.g.
   * copy up a read-only lower file (replacing the name). */
  int (*before_write) (void *ctx, int dirfd, const char *name, const char *path);
  /* After a successful mutation. */
  void (*changed) (void *ctx, const tracer_change *c);
  /* chown, fchown, lchown, fchownat: record the owner ((uid_t)-1 /
   * (gid_t)-1: unchanged); the kernel never sees the call. */
  int (*set_owner) (void *ctx, int fd, const char *path, uid_t uid, gid_t gid);
  /* chmod, fchmod, fchmodat(2): apply or record mode (permission bits
   * incl. setuid/setgid/sticky). */
  int (*set_mode) (void *ctx, int fd, const char *path, mode_t mode);
  /* utimensat, utimes, futimesat, utime: times as utimensat takes them
   * (UTIME_NOW / UTIME_OMIT resolved by the tracer: never special). */
  int (*set_times) (void *ctx, int fd, const char *path, const struct timespec ts[2]);
  /* mknod/mknodat of a device, fifo or socket node at dirfd/name, owned by
   * uid:gid; devices are never real nodes under this isolation. */
  int (*mknod) (void *ctx, int dirfd, const char *name, const char *path, mode_t mode, dev_t rdev, uid_t uid,
                gid_t gid);
  /* Extended attributes, emulated (the real files never get any: security.*
   * and trusted.* need capabilities the step lacks, and a store file must
   * not change). fd is the O_PATH fd of the file (the last symlink followed
   * for getxattr/setxattr/..., not for the l- forms); name is checked by the
   * tracer (1..255 bytes), value is at most 64 KiB, and the caller's
   * permission was checked as the kernel would (user.*: regular files and
   * directories, mode bits for the fake fsuid; security.*: the fake root).
   * Return as the syscalls do: get/list the length (size 0: the length
   * only), -ERANGE when size is too small, -ENODATA for a missing name;
   * set: 0, -EEXIST (flags XATTR_CREATE) or -ENODATA (XATTR_REPLACE),
   * -EOPNOTSUPP for a namespace not kept, -ENOSPC; remove: 0 or -ENODATA.
   * After a successful set/remove the tracer reports a META change.
   * NULL: reads pass through to the real file, writes fail ENOTSUP. */
  int (*get_xattr) (void *ctx, int fd, const char *path, const char *name, void *value, size_t size);
  int (*list_xattr) (void *ctx, int fd, const char *path, char *list, size_t size);
  int (*set_xattr) (void *ctx, int fd, const char *path, const char *name, const void *value, size_t size,
                    int flags);
  int (*remove_xattr) (void *ctx, int fd, const char *path, const char *name);
  /* Fill in what stat() shows for the file whose real status is *real
   * (owner, mode, rdev, times), e.g. from the layer metadata. Files outside
   * the root (binds) are shown as they are. */
  void (*present) (void *ctx, const struct stat *real, struct stat *shown);
} tracer_fs_ops;

/* A guest path served by a host path instead of the root: a directory
 * (/proc, /dev, /sys) or a file (/etc/hosts, /etc/resolv.conf). Landlock
 * grants the access given; guest paths below a directory bind map below
 * its host path. */
typedef struct tracer_bind
{
  const char *guest;        /* absolute, normalised: "/proc", "/etc/hosts" */
  const char *host;         /* absolute host path */
  bool writable;
  /* Shown owned by uid:gid (the bind's root only; a RUN --mount's uid=,
   * gid=), else as its real owner, kiln's own ids shown as 0. */
  bool owned;
  uid_t uid;
  gid_t gid;
} tracer_bind;

typedef struct tracer_config
{
  char *const *argv;        /* argv[0] is resolved in the guest's PATH from env */
  char *const *env;
  const char *cwd;          /* guest path */
  uid_t uid;                /* the step's (fake) identity */
  gid_t gid;
  const gid_t *groups;
  size_t n_groups;
  const char *root;         /* host path of the root directory */
  const tracer_bind *binds;
  size_t n_binds;
  const tracer_fs_ops *ops;
  void *ops_ctx;
  /* kiln's seccomp profile for the step, loaded under the tracer's own
   * filter; NULL: none. */
  const seccomp_filter *seccomp;
  /* SANDBOX_NET_HOST or SANDBOX_NET_NONE (sockets of families other than
   * AF_UNIX refused); PRIVATE is refused with an error. */
  sandbox_net_mode network;
  sandbox_output_fn output;
  void *output_ctx;
  /* Memory and task limits, as sandbox_config.limiter (NULL: none): the
   * step's first process enters the step's cgroups before it execs, or
   * takes the rlimits, and kiln's accounting polls. */
  const sandbox_limiter *limiter;
  int cancel_fd;            /* as sandbox_config */
  const volatile sig_atomic_t *cancel_signal;
} tracer_config;

/* A growing list of binds and the strings it owns. */
typedef struct tracer_binds
{
  tracer_bind *v;
  size_t n;
  char **strings;
} tracer_binds;

void tracer_binds_add (tracer_binds *b, const char *guest, const char *host, bool writable);
/* Set the shown owner of the bind added last. */
void tracer_binds_own (tracer_binds *b, uid_t uid, gid_t gid);
void tracer_binds_free (tracer_binds *b);
/* The binds every step gets, as the userns isolation mounts them: /proc
 * and /sys read-only; the container's null, zero, full, random, urandom,
 * tty, ptmx and pts (read, write, ioctls); /etc/resolv.conf, /etc/hosts
 * (sandbox_etc_files for net and hostname, NULL: "kiln") and /etc/hostname,
 * written into dirfd, a private directory of the caller's at host path dir
 * (replaced if there). */
int tracer_binds_standard (tracer_binds *b, int dirfd, const char *dir, sandbox_net_mode net, const char *hostname,
                           kiln_error **err);

/* Run one step to completion; every process of it is gone on return. */
int tracer_run (const tracer_config *cfg, sandbox_result *res, kiln_error **err);

/* Whether this mode works here: ptrace of a child, a seccomp filter with
 * SECCOMP_RET_TRACE, Landlock (ABI >= 1; ABI >= 6 also scopes signals and
 * abstract unix sockets, else the tracer checks kill() targets). The
 * error says what is missing. *abi_out: the Landlock ABI. */
int tracer_probe (int *abi_out, kiln_error **err);

#endif
