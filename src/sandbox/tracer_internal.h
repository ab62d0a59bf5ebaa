/* tracer_internal.h - what the files of ptrace isolation share. PRIVATE to
 * src/sandbox/tracer*.c; the API is tracer.h.
 *
 * Where things are:
 *   tracer.c         tracer_run (the tracing thread, output, cancellation)
 *                    and tracer_probe.
 *   tracer_arch.c    the per-architecture syscall table and register access
 *                    (x86_64, aarch64), the tracee's memory.
 *   tracer_setup.c   before the step runs: the seccomp filter, the Landlock
 *                    ruleset, the step's process up to its execve.
 *   tracer_loop.c    the wait loop: tracees, their events and stops.
 *   tracer_path.c    guest paths -> host paths (and back).
 *   tracer_sys.c     the trapped file-system calls.
 *   tracer_exec.c    execve/execveat: ELF interpreters and #! scripts.
 *   tracer_xattr.c   the xattr calls, emulated through the ops.
 *   tracer_ids.c     fake credentials and the kill family.
 */
#ifndef KILN_SANDBOX_TRACER_INTERNAL_H
#define KILN_SANDBOX_TRACER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "sandbox/sandbox_internal.h"
#include "sandbox/tracer.h"
#include "util/error.h"

/* Landlock constants newer than Debian 12's <linux/landlock.h>. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0)
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif

/* The calls the tracer handles (SECCOMP_RET_TRACE data) or refuses in the
 * filter. Numbers per architecture: tracer_arch.c. */
typedef enum tsc
{
  TSC_NONE = 0,
  /* traced: paths */
  TSC_OPEN, TSC_OPENAT, TSC_OPENAT2, TSC_CREAT, TSC_TRUNCATE,
  TSC_STAT, TSC_LSTAT, TSC_NEWFSTATAT, TSC_STATX, TSC_FSTAT,
  TSC_ACCESS, TSC_FACCESSAT, TSC_FACCESSAT2, TSC_READLINK, TSC_READLINKAT,
  TSC_CHDIR, TSC_GETCWD, TSC_MKDIR, TSC_MKDIRAT, TSC_MKNOD, TSC_MKNODAT,
  TSC_RMDIR, TSC_UNLINK, TSC_UNLINKAT, TSC_RENAME, TSC_RENAMEAT, TSC_RENAMEAT2,
  TSC_LINK, TSC_LINKAT, TSC_SYMLINK, TSC_SYMLINKAT,
  TSC_CHMOD, TSC_FCHMOD, TSC_FCHMODAT, TSC_FCHMODAT2,
  TSC_CHOWN, TSC_FCHOWN, TSC_LCHOWN, TSC_FCHOWNAT,
  TSC_UTIME, TSC_UTIMES, TSC_FUTIMESAT, TSC_UTIMENSAT,
  TSC_EXECVE, TSC_EXECVEAT, TSC_STATFS, TSC_INOTIFY_ADD_WATCH,
  TSC_GETXATTR, TSC_LGETXATTR, TSC_FGETXATTR, TSC_LISTXATTR, TSC_LLISTXATTR, TSC_FLISTXATTR,
  TSC_SETXATTR, TSC_LSETXATTR, TSC_FSETXATTR, TSC_REMOVEXATTR, TSC_LREMOVEXATTR, TSC_FREMOVEXATTR,
  TSC_BIND, TSC_CONNECT,
  /* traced: ids */
  TSC_GETUID, TSC_GETEUID, TSC_GETGID, TSC_GETEGID, TSC_GETRESUID, TSC_GETRESGID, TSC_GETGROUPS,
  TSC_SETUID, TSC_SETGID, TSC_SETREUID, TSC_SETREGID, TSC_SETRESUID, TSC_SETRESGID,
  TSC_SETFSUID, TSC_SETFSGID, TSC_SETGROUPS,
  /* traced below Landlock ABI 6 only: signals */
  TSC_KILL, TSC_TKILL, TSC_TGKILL, TSC_PIDFD_SEND_SIGNAL, TSC_RT_SIGQUEUEINFO, TSC_RT_TGSIGQUEUEINFO,
  TSC_N_TRACED,
  /* refused in the filter: they take a path the tracer does not translate,
   * or would let the step out of the tracer's sight */
  TSC_CHROOT = TSC_N_TRACED, TSC_MOUNT, TSC_UMOUNT2, TSC_PIVOT_ROOT, TSC_SWAPON, TSC_SWAPOFF, TSC_ACCT,
  TSC_QUOTACTL, TSC_NAME_TO_HANDLE_AT, TSC_OPEN_BY_HANDLE_AT, TSC_FANOTIFY_MARK, TSC_OPEN_TREE,
  TSC_MOVE_MOUNT, TSC_FSOPEN, TSC_FSCONFIG, TSC_FSMOUNT, TSC_FSPICK, TSC_MOUNT_SETATTR, TSC_USELIB,
  TSC_IO_URING_SETUP, TSC_IO_URING_ENTER, TSC_IO_URING_REGISTER, TSC_USERFAULTFD, TSC_PTRACE,
  TSC_PROCESS_VM_WRITEV, TSC_STATMOUNT, TSC_LISTMOUNT, TSC_SETXATTRAT, TSC_GETXATTRAT, TSC_LISTXATTRAT,
  TSC_REMOVEXATTRAT, TSC_OPEN_TREE_ATTR, TSC_FILE_GETATTR, TSC_FILE_SETATTR, TSC_UNSHARE, TSC_SETNS,
  TSC_SOCKET, TSC_CLONE3,
  TSC_COUNT,
} tsc;

/* ---- tracer_arch.c ---- */

/* The native syscall number of t, or -1 where this architecture lacks it. */
long tracer_sysno (tsc t);
const char *tracer_sysname (tsc t);
/* The traced call (< TSC_N_TRACED) with native number nr, or TSC_NONE. */
tsc tracer_tsc_of (long nr);

/* A tracee's registers at a stop. */
typedef struct tracer_regs
{
  unsigned long long raw[40];  /* user_regs_struct / user_pt_regs */
  long nr;                     /* syscall number (aarch64: x8 at entry) */
  bool dirty, nr_dirty;
} tracer_regs;

int tracer_regs_get (pid_t tid, tracer_regs *r);
int tracer_regs_put (pid_t tid, tracer_regs *r);
unsigned long tracer_arg (const tracer_regs *r, int i);
void tracer_set_arg (tracer_regs *r, int i, unsigned long v);
unsigned long tracer_sp (const tracer_regs *r);
long tracer_retval (const tracer_regs *r);
/* Skip the call and make it return ret (-errno or a value). */
void tracer_skip (tracer_regs *r, long ret);
/* At a syscall-exit stop: change the result. */
void tracer_set_retval (tracer_regs *r, long ret);

/* The tracee's memory: 0 or -errno. */
int tracer_mem_read (pid_t tid, unsigned long addr, void *buf, size_t len);
int tracer_mem_write (pid_t tid, unsigned long addr, const void *buf, size_t len);
/* A NUL-terminated string of at most max bytes (PATH_MAX): a malloc'd copy
 * in *out, or -EFAULT / -ENAMETOOLONG. */
int tracer_mem_string (pid_t tid, unsigned long addr, size_t max, char **out);

/* Room below the tracee's stack pointer (past the x86_64 red zone) for the
 * strings and arrays the tracer hands a call: the space is free while the
 * tracee is stopped in the call and until it returns. */
typedef struct tracer_scratch
{
  pid_t tid;
  unsigned long top;   /* next free byte is below this */
} tracer_scratch;

void tracer_scratch_init (tracer_scratch *s, pid_t tid, const tracer_regs *r);
/* Copy len bytes into the scratch area: the tracee address, or 0 (errno
 * in *e). */
unsigned long tracer_scratch_put (tracer_scratch *s, const void *data, size_t len, int *e);

/* ---- tracer_path.c ---- */

typedef struct tracer_fs
{
  char *root;           /* canonical host path of the root, no trailing slash */
  size_t root_len;
  int root_fd;          /* O_PATH */
  dev_t root_dev;
  const tracer_bind *binds;
  size_t n_binds;
  bool *bind_dir;       /* per bind: a directory (else a file) */
  struct stat *bind_st; /* per bind: its host object's status at start */
  bool dir_bind_on_root_dev; /* a directory bind on the root's file system */
} tracer_fs;

int tracer_fs_init (tracer_fs *fs, const char *root, const tracer_bind *binds, size_t n_binds, kiln_error **err);
void tracer_fs_clear (tracer_fs *fs);

/* How tracer_resolve treats the last component. */
#define TR_FOLLOW 1      /* follow a symlink there */
#define TR_DIR 2         /* it must be a directory (trailing slash) */
#define TR_NOSYMLINKS 4  /* any symlink: ELOOP */
#define TR_EXISTING 8    /* the caller fails ENOENT when the object is missing: the
                          * resolution may fail ENOENT itself (no parent lookup) */

/* A resolved guest path. */
typedef struct tracer_path
{
  const tracer_bind *bind;  /* it is in this bind (then host is all there is) */
  char *guest;              /* canonical guest path, absolute ("/etc/passwd") */
  char *host;               /* what the kernel gets */
  int dirfd;                /* O_PATH fd of the parent directory in the root, or -1 (see tracer_path_dirfd) */
  char *name;               /* last component ("" for the root itself) */
  int fd;                   /* O_PATH fd of the object (not followed unless TR_FOLLOW), -1: does not exist */
} tracer_path;

void tracer_path_clear (tracer_path *p);
/* p is a bind's own guest path (its mount point), not a path below it. */
bool tracer_path_bind_root (const tracer_path *p);
/* The bind holding the canonical guest path, or NULL. */
const tracer_bind *tracer_fs_bind_of (const tracer_fs *fs, const char *guest);
/* An O_PATH fd of p (p->bind set), opened beneath the bind's host
 * directory (a symlink the step made there never leads out of it), or
 * -errno. */
int tracer_path_bind_open (const tracer_fs *fs, const tracer_path *p, bool follow);
/* Resolve path (relative: from base, a canonical guest directory) in guest
 * semantics. 0, or -errno (ENOENT for a missing directory on the way, or a
 * missing last component when its parent exists: then 0 with fd -1). */
int tracer_resolve (const tracer_fs *fs, const char *base, const char *path, int flags, tracer_path *out);
/* The O_PATH fd of p's parent directory in the root (opened on demand: the
 * one-openat2 fast path of tracer_resolve does not open it when the object
 * exists), or -1 (a bind, the root itself, or it cannot be opened). */
int tracer_path_dirfd (const tracer_fs *fs, tracer_path *p);
/* Whether the object whose status is *st, reached through the magic link
 * link (/proc/TID/fd/N), is the root's: on its file system and not a bind.
 * The link is read only when a directory bind shares the root's file
 * system. */
bool tracer_fs_in_root (const tracer_fs *fs, const struct stat *st, const char *link);
/* A host path (from /proc/PID/cwd, /proc/PID/fd/N) as a guest path; NULL
 * when it is outside the root and the binds. */
char *tracer_host_to_guest (const tracer_fs *fs, const char *host);
/* Lexical normalisation of an absolute path: "." and empty components
 * dropped, ".." pops (never above "/"). */
char *tracer_path_normalize (const char *path);

/* ---- tracer_loop.c / state ---- */

typedef struct tracer_creds
{
  int refs;
  uid_t ruid, euid, suid, fsuid;
  gid_t rgid, egid, sgid, fsgid;
  gid_t *groups;
  size_t n_groups;
} tracer_creds;

typedef struct tracee
{
  pid_t tid;
  pid_t tgid;
  tracer_creds *creds;     /* shared by the threads of a process */
  bool attached;           /* its initial stop was seen */
  bool known;              /* its creator's event was seen (creds set) */
  bool parked;             /* stopped at its initial stop, waiting to be known */
  bool in_exit;            /* resumed with PTRACE_SYSCALL: next is the exit stop */
  /* what to do at the exit stop */
  int exit_kind;
  tracer_change change;    /* strings owned below */
  char *change_path, *change_path2;
} tracee;

typedef struct tracer
{
  const tracer_config *cfg;
  tracer_fs fs;
  int landlock_abi;
  uid_t kiln_uid;
  gid_t kiln_gid;
  pid_t main_pid;
  bool killing;            /* the main process is gone: kill all */
  tracee **tab;            /* open addressing by tid */
  size_t cap, n;
  /* ops NULL: owners set by chown, by device and inode */
  struct owner_rec { dev_t dev; ino_t ino; uid_t uid; gid_t gid; } *owners;
  size_t n_owners;
  /* ld.so files known to take --argv0 (glibc >= 2.33), by dev/ino */
  struct ldso_rec { dev_t dev; ino_t ino; bool argv0; } *ldsos;
  size_t n_ldsos;
  /* KILN_TRACER_STATS set: stops and time in the tracer per call, printed
   * to stderr when the step ends (for profiling; NULL otherwise) */
  struct tracer_stat { unsigned long n, exits; double secs; } *stats;
} tracer;

tracee *tracer_find (tracer *t, pid_t tid);
/* Trace until the main process and every other tracee are gone; its wait
 * status in *main_status. */
int tracer_loop (tracer *t, pid_t main_pid, int *main_status);
void tracer_clear (tracer *t);

/* A stop's outcome. */
typedef enum
{
  TR_CONTINUE = 0,   /* run the call (registers as changed) */
  TR_EXIT_STOP,      /* run it and stop at its exit (tracee.exit_kind) */
} tracer_action;

/* A call being handled. */
typedef struct tracer_call
{
  tracer *t;
  tracee *te;
  tsc sc;
  tracer_regs regs;
  tracer_scratch scratch;
} tracer_call;

/* ---- tracer_meta.c ---- */

/* The object of a call: a resolved path or one of the tracee's fds, as an
 * O_PATH fd of ours. */
typedef struct tracer_target
{
  tracer_path p;     /* path forms */
  int fd;            /* the object (borrowed from p, or owned when dup'd) */
  int owned_fd;
  bool in_root;      /* else the kernel's (a bind, a pipe, a socket) */
  char *guest;       /* for messages and changes */
} tracer_target;

/* dirfd/path with flags (TR_*); with empty_ok, an empty path (AT_EMPTY_PATH)
 * or path_addr 0 acts on the tracee's fd dirfd (through /proc/TID/fd/N:
 * Docker's default profile denies pidfd_getfd). ENOENT for a missing
 * object. tg is set up (clear it with tracer_target_clear) even on failure. */
int tracer_target_resolve (tracer_call *c, int dirfd, unsigned long path_addr, int flags, bool empty_ok,
                           tracer_target *tg);
void tracer_target_clear (tracer_target *tg);

/* Show the file at host (a bind's root) as owned by uid:gid. */
void tracer_owner_seed (tracer *t, const char *host, uid_t uid, gid_t gid);

/* ---- tracer_sys.c ---- */

/* Handle a file-system call at its seccomp stop. */
tracer_action tracer_sys (tracer_call *c);
/* At the exit stop of a call that asked for one. */
void tracer_sys_exit (tracer_call *c);
/* The guest cwd of a tracee (malloc'd), or NULL with errno. */
char *tracer_guest_cwd (tracer *t, pid_t tid);
/* An fd of the tracee as a guest path (malloc'd) or NULL with errno. */
char *tracer_guest_fd (tracer *t, pid_t tid, int fd);
/* Resolve (dirfd, path) of the tracee: path read from its memory. */
int tracer_resolve_at (tracer_call *c, int dirfd, unsigned long path_addr, int flags, bool empty_ok,
                       tracer_path *out);

/* ---- tracer_meta.c ---- */

/* stat family, chmod, chown, utimes: emulated. */
tracer_action tracer_meta (tracer_call *c);
tracer_action tracer_mknod (tracer_call *c, int dirfd, int path_arg);
/* Helpers shared with tracer_sys.c. */
int tracer_set_path_arg (tracer_call *c, int arg, const char *host);
tracer_action tracer_want_change (tracer_call *c, tracer_change_kind kind, const tracer_path *p,
                                  const tracer_path *p2, unsigned flags);

/* ---- tracer_xattr.c ---- */

/* getxattr, listxattr, setxattr, removexattr and their l- and f- forms. */
tracer_action tracer_xattr (tracer_call *c);

/* ---- tracer_exec.c ---- */

tracer_action tracer_exec (tracer_call *c);
/* Find argv0 along PATH (from env) in the guest: a malloc'd guest path, or
 * -errno. */
int tracer_find_program (const tracer_fs *fs, const char *cwd, const char *argv0, char *const *env, char **out);

/* ---- tracer_ids.c ---- */

tracer_action tracer_ids (tracer_call *c);
tracer_action tracer_signal (tracer_call *c);
tracer_creds *tracer_creds_new (const tracer_config *cfg);
tracer_creds *tracer_creds_copy (const tracer_creds *c);
void tracer_creds_unref (tracer_creds *c);

/* ---- tracer_setup.c ---- */

typedef struct tracer_child
{
  const tracer_config *cfg;
  const char *host_cwd;
  const char *exec_path;     /* guest path of the program */
  int ruleset_fd;            /* Landlock, or -1 */
  struct sock_fprog *filter; /* the tracer's filter */
  int go_fd;                 /* read end: the tracer's go-ahead */
  int err_fd;                /* write end of the set-up error pipe */
  int out_fd, err_out_fd;    /* stdout, stderr write ends */
  int cgroup_procs[SANDBOX_MAX_CGROUPS]; /* the step's cgroups' cgroup.procs, or -1 */
} tracer_child;

/* The tracer's own filter for the native architecture (libseccomp),
 * exported as BPF: *out holds the program, free it with
 * tracer_filter_free. */
int tracer_filter_build (const tracer_config *cfg, int landlock_abi, struct sock_fprog **out, kiln_error **err);
void tracer_filter_free (struct sock_fprog *p);
/* The Landlock ruleset for the step: a ruleset fd, or -1 with the error. */
int tracer_landlock_ruleset (const tracer_config *cfg, const tracer_fs *fs, int abi, kiln_error **err);
int tracer_landlock_abi (void);
/* In the forked child: never returns. */
void __attribute__ ((noreturn)) tracer_child_main (const tracer_child *c);

#endif
