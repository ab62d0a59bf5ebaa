/* sandbox.h - run one step (a process tree) isolated from the host.
 *
 * sandbox_run() forks a helper that enters a new user namespace (ID mapping
 * below), then new mount, pid, ipc, uts and cgroup namespaces (and a network
 * namespace with only loopback for SANDBOX_NET_NONE). Its child is pid 1 of
 * the step: it bind-mounts the root filesystem (or mounts a FUSE one and
 * hands its fd to kiln, see rootfs_fuse), mounts a fresh /proc (Docker's
 * masked and read-only paths), a tmpfs /dev (null zero full random urandom tty
 * bound from the host, private devpts, /dev/shm, the usual symlinks), /sys
 * read-only, and generated /etc/resolv.conf, /etc/hosts, /etc/hostname
 * (memfd-backed bind mounts), then pivot_root()s and detaches the old root.
 * It forks the step's process, which sets ids and groups, reduces
 * capabilities (libcap), sets PR_SET_NO_NEW_PRIVS, umask 0022, loads the
 * precompiled seccomp filter and execs. Init reaps zombies and, when the main
 * process exits, kills everything left in the step.
 *
 * Every mount lives in the step's mount namespace, so nothing outlives the
 * step; the helper and init die with kiln (PR_SET_PDEATHSIG), and SIGINT or
 * SIGTERM during sandbox_run() kill the step before it returns.
 *
 * Mount points: the rootfs must contain the directories/files listed by
 * sandbox_mountpoints(). sandbox_prepare_mountpoints() creates missing ones
 * in a plain directory rootfs and reports them so the caller can remove them
 * (kiln run) or keep them out of a layer (the overlay synthesises them).
 *
 * Implementation: src/sandbox/sandbox*.c; sandbox_internal.h (private to
 * those files) says which file does what.
 */
#ifndef KILN_SANDBOX_SANDBOX_H
#define KILN_SANDBOX_SANDBOX_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "sandbox/seccomp_profile.h"
#include "util/error.h"
#include "util/units.h"

typedef enum
{
  SANDBOX_USERNS_AUTO = 0,
  SANDBOX_USERNS_FULL,    /* subuid ranges via newuidmap, or as root a high host range */
  SANDBOX_USERNS_SINGLE,  /* only 0 -> caller; setgroups denied */
} sandbox_userns_mode;

typedef enum
{
  SANDBOX_NET_HOST = 0,   /* share the host network namespace */
  SANDBOX_NET_NONE,       /* new network namespace, loopback up */
  SANDBOX_NET_PRIVATE,    /* new network namespace, outbound through pasta (sandbox_net.c) */
} sandbox_net_mode;

/* How RUN steps are isolated (--isolation). */
typedef enum
{
  SANDBOX_ISOLATION_AUTO = 0,  /* userns where it works, else ptrace */
  SANDBOX_ISOLATION_USERNS,    /* user namespaces + the FUSE overlay (sandbox_run) */
  SANDBOX_ISOLATION_PTRACE,    /* syscall interception + Landlock (tracer.h) */
} sandbox_isolation;

/* "auto|userns|ptrace". */
int sandbox_parse_isolation (const char *s, sandbox_isolation *out, kiln_error **err);
const char *sandbox_isolation_name (sandbox_isolation i);

/* The DNS server a step with a private network sees in /etc/resolv.conf:
 * pasta forwards it to the host's first nameserver (podman's choice). */
#define SANDBOX_NET_DNS "169.254.1.1"

/* The PATH a step gets when its environment has none (Docker's). */
#define SANDBOX_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* Append PATH=SANDBOX_DEFAULT_PATH to a "K=V" list that has no PATH (as
 * BuildKit gives every Linux image and step a PATH). */
void sandbox_env_ensure_path (char ***env);

/* Parse "auto|full|single" and "private|default|host|none" ("default" is
 * private). */
int sandbox_parse_userns (const char *s, sandbox_userns_mode *out, kiln_error **err);
int sandbox_parse_network (const char *s, sandbox_net_mode *out, kiln_error **err);

/* The step's /etc/resolv.conf (the host's for HOST, pasta's DNS for
 * PRIVATE, empty for NONE) and /etc/hosts naming hostname; caller frees. */
void sandbox_etc_files (sandbox_net_mode net, const char *hostname, char **resolv, char **hosts);

/* What the coming steps need from the environment. */
typedef struct sandbox_probe_req
{
  bool fuse;                 /* a FUSE root (every RUN of a build) */
  sandbox_net_mode network;  /* PRIVATE also needs /dev/net/tun and pasta */
} sandbox_probe_req;

/* Check once, before the first step, that user namespaces work and the
 * devices and programs req needs are there; the error says what is
 * missing, what usually takes it away (a container runtime's default
 * seccomp profile, its device list) and how to allow it. A fork and an
 * unshare: about a millisecond. */
int sandbox_probe (const sandbox_probe_req *req, kiln_error **err);

/* Resolve want (AUTO: probe) into USERNS or PTRACE for the coming steps.
 * USERNS runs sandbox_probe (req); PTRACE runs tracer_probe. AUTO picks
 * USERNS when user namespaces (and, with req->fuse, /dev/fuse) work, else
 * PTRACE when that works, logging which and why; the network checks of
 * sandbox_probe apply only to USERNS (the caller decides what a private
 * network becomes under PTRACE). The error of an impossible choice says
 * what the environment lacks and how to allow it. */
int sandbox_choose_isolation (const sandbox_probe_req *req, sandbox_isolation want, sandbox_isolation *out,
                              kiln_error **err);

/* A resolved ID mapping for one step. */
typedef struct sandbox_idmap
{
  sandbox_userns_mode mode;  /* FULL or SINGLE after resolution */
  bool as_root;              /* kiln runs as host root */
  bool use_helpers;          /* newuidmap/newgidmap */
  uid_t host_uid;            /* host id of container 0 */
  gid_t host_gid;
  uid_t sub_uid;             /* host start of container 1.. (FULL) */
  gid_t sub_gid;
  unsigned long n_sub_uid;   /* count of ids from sub_uid (FULL) */
  unsigned long n_sub_gid;
} sandbox_idmap;

/* Default host base for full mode as root: container 0..65535 -> base.. */
#define SANDBOX_ROOT_MAP_BASE 1879048192u   /* 0x70000000 */
#define SANDBOX_ROOT_MAP_COUNT 65536u

/* Choose the mapping: as root, full onto [root_base, +65536) (0 = default;
 * refused if it overlaps an /etc/subuid or /etc/subgid range or includes host
 * id 0); as a plain user, full when /etc/subuid and /etc/subgid give the
 * user ranges and newuidmap/newgidmap exist, else single. Forcing FULL when
 * it is impossible is an error naming what is missing. */
int sandbox_idmap_resolve (sandbox_userns_mode want, uid_t root_base, sandbox_idmap *out, kiln_error **err);
/* "full (subuid 100000+65536 via newuidmap)" etc.; caller frees. */
char *sandbox_idmap_describe (const sandbox_idmap *m);

/* A path kiln mounts over inside every step (relative to the root). */
typedef struct sandbox_mountpoint
{
  const char *path;
  bool is_dir;
} sandbox_mountpoint;

/* The fixed list: proc, dev, sys, etc/resolv.conf, etc/hosts, etc/hostname.
 * None of these (nor anything kiln created for them) may appear in a layer. */
size_t sandbox_mountpoints (const sandbox_mountpoint **out);

/* Create the missing mount points (and missing parents, e.g. etc) under the
 * directory rootfs_fd, never following symlinks. Appends each created path
 * (relative, parents first) to *created (strv). */
int sandbox_prepare_mountpoints (int rootfs_fd, char ***created, kiln_error **err);
/* Remove what sandbox_prepare_mountpoints created (children first); only
 * empty directories and empty regular files are removed. */
void sandbox_remove_mountpoints (int rootfs_fd, char **created);

typedef enum
{
  SANDBOX_STDOUT = 1,
  SANDBOX_STDERR = 2,
} sandbox_stream;

/* One line of the step's output, without its newline (lines longer than
 * 64 KiB arrive in pieces). */
typedef void (*sandbox_output_fn) (void *ctx, sandbox_stream stream, const char *line, size_t len);

/* Single ID mode: the step's chown/fchown/lchown/fchownat calls are answered
 * by kiln's seccomp supervisor instead of the kernel. It resolves the target
 * inside the step's root (openat2 RESOLVE_IN_ROOT under /proc/PID/root,
 * re-checking the notification id after reading the step's memory) and calls
 * this with an O_PATH fd of the target (a symlink itself for lchown and
 * AT_SYMLINK_NOFOLLOW), its path for messages, and the requested owner
 * ((uid_t)-1 / (gid_t)-1: unchanged). Return 0 to make the call succeed, or
 * -errno to fail it with that errno. The overlay implements this by looking
 * up its node from the fd (fstat st_ino) and recording the owner. With
 * rootfs_fuse it is only called for targets on the FUSE root filesystem
 * (same st_dev as the step's root); a target elsewhere (/dev/shm, ...) is
 * left to the kernel (SECCOMP_USER_NOTIF_FLAG_CONTINUE). */
typedef int (*sandbox_record_chown_fn) (void *ctx, int target_fd, const char *path, uid_t uid, gid_t gid);

/* Single ID mode, with a FUSE root: the owner recorded for the file with
 * st_ino ino on the FUSE root filesystem, which the kernel can only show as
 * the one mapped id. The supervisor answers the step's stat-family calls
 * with it, so tools that copy an owner they read (useradd rewriting
 * /etc/shadow, cp -a, tar) see the true one. Return 0 with the owner
 * filled in, or -errno (the call is then left to the kernel). */
typedef int (*sandbox_owner_fn) (void *ctx, uint64_t ino, uid_t *uid, gid_t *gid);

/* Single ID mode: the credentials the step's processes believe they have
 * (sandbox_creds.c). The namespace maps only uid 0, so the step's USER and
 * every later setuid, setgid, setgroups, setfsuid (su, setpriv, apt's _apt)
 * are kept here per process, starting from uid:gid and groups; the
 * supervisor answers the get-id and set-id calls from it, with the kernel's rules.
 * Thread-safe. */
typedef struct sandbox_creds sandbox_creds;
sandbox_creds *sandbox_creds_new (uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups);
void sandbox_creds_free (sandbox_creds *t);
/* The fs ids of the process of thread pid (in kiln's pid namespace), for
 * the owner of a file it creates: 1 with uid and gid set when some process
 * of the step switched ids, 0 when every process still has the step's
 * (the caller's default applies). ctx is the table (the shape of the
 * overlay's creator callback). */
int sandbox_creds_fsids (void *ctx, pid_t pid, uid_t *uid, gid_t *gid);

/* A FUSE root filesystem: called in kiln with the /dev/fuse fd of the mount
 * the step's init made (see rootfs_fuse below). Takes ownership of fuse_fd,
 * also on failure; returns 0 once the fd is being served (the step's setup
 * waits for that), negative to abort the step. */
typedef int (*sandbox_rootfs_fuse_fn) (void *ctx, int fuse_fd, kiln_error **err);

/* Extra mounts inside the step (RUN --mount). The target must already
 * exist in the root filesystem (the build engine lists targets among the
 * overlay's mask paths, so they exist without ever reaching a layer); it is
 * resolved inside the root without following symlinks. */
typedef enum
{
  SANDBOX_MOUNT_BIND = 0,   /* a host file or directory */
  SANDBOX_MOUNT_TMPFS,
  /* A file holding data, made in the step's memory (on its own /dev tmpfs,
   * bind-mounted on the target, then unlinked there): for secrets, which
   * must never be written to disk, and kiln's own small files. */
  SANDBOX_MOUNT_FILE,
} sandbox_mount_type;

typedef struct sandbox_mount
{
  sandbox_mount_type type;
  const char *source;        /* BIND: absolute host path kiln made or resolved
                              * (cloned with open_tree, last component not
                              * followed) */
  const char *target;        /* absolute path inside the step */
  bool readonly;
  unsigned long tmpfs_size;  /* TMPFS: bytes, 0 = the kernel's default */
  unsigned tmpfs_mode;       /* TMPFS: mode of its root (e.g. 01777) */
  /* Create a missing target (and parents, 0755) inside the step's own
   * mounts, e.g. /dev/pipes/NAME on the step's /dev tmpfs: a file unless
   * target_is_dir. Only for targets below kiln's own mounts. */
  bool create;
  bool target_is_dir;
  /* BIND: chown the source's root to container owner_uid:owner_gid from
   * inside the step's user namespace before attaching it (a plain user
   * with subordinate ranges cannot give a file to those ids on the host;
   * container root in the namespace can). */
  bool set_owner;
  uid_t owner_uid;
  gid_t owner_gid;
  /* FILE: the contents (kept by the caller until sandbox_run returns) and
   * the file's mode; its owner is owner_uid:owner_gid (container ids, set
   * from inside the step's user namespace). */
  const void *data;
  size_t data_len;
  unsigned file_mode;
} sandbox_mount;

/* A FUSE root filesystem shared by consecutive steps (one mount per stage
 * instead of one per step). sandbox_session_new() starts a short-lived
 * holder process: it enters a new user namespace (the ID map is written as
 * for a step), then a new mount namespace, mounts "fuse.kiln" on "mnt" in
 * the caller's directory (as rootfs_fuse does, with the same options),
 * hands kiln the /dev/fuse fd (served through rootfs_fuse() before anything
 * touches the mount) and then fds of its user namespace, its mount
 * namespace and the mount's root, and exits. Those fds keep both namespaces
 * and the mount alive. Each step of the session (sandbox_config.session)
 * joins that user and mount namespace, enters the mount's root and
 * unshares a fresh mount namespace (plus pid, ipc, uts, cgroup, net) from
 * there: its /proc, /dev, RUN --mount mounts and pivot_root stay its own,
 * the FUSE mount (and the kernel's caches of it) outlives the step.
 * sandbox_session_free() closes the fds: the mount namespace goes, the
 * mount with it, and the FUSE connection is aborted (a session loop reading
 * the fd ends with ENODEV) once no step holds a copy. */
typedef struct sandbox_session sandbox_session;

typedef struct sandbox_session_config
{
  const sandbox_idmap *idmap;
  sandbox_rootfs_fuse_fn rootfs_fuse;
  void *rootfs_fuse_ctx;
  /* A private directory of the caller's; the mount point "mnt" is made in
   * it, and it is made traversable (0711) so that the namespace's root,
   * possibly a high unmapped host id, may reach the mount point. */
  int dirfd;
  /* As sandbox_config.cancel_fd and cancel_signal: the set-up stops when
   * cancel_fd becomes readable (-1: never; 0 also means none, for
   * zero-initialised configs) and fails naming the signal, if any. */
  int cancel_fd;
  const volatile sig_atomic_t *cancel_signal;
  /* SANDBOX_NET_PRIVATE: the session gets one network namespace, which
   * its steps with a private network join, wired out by pasta from the
   * first step that needs it to the session's end (the set-up is paid once
   * per session, and not at all by a stage whose steps open no network
   * socket: see sandbox_session_net_started). Other modes: none. */
  sandbox_net_mode network;
} sandbox_session_config;

int sandbox_session_new (const sandbox_session_config *cfg, sandbox_session **out, kiln_error **err);
/* Whether the session's private network is wired out already (true also
 * for a session without one). Until it is, a step on it should run with a
 * seccomp filter compiled with lazy_net (seccomp_profile.h): its first
 * network socket starts pasta. A step with another filter, or none,
 * starts it before it runs. */
bool sandbox_session_net_started (const sandbox_session *s);
/* syncfs() on the mount: data a step left in the kernel's page cache (e.g.
 * written through a shared mapping) reaches the filesystem before commit. */
int sandbox_session_sync (sandbox_session *s, kiln_error **err);
void sandbox_session_free (sandbox_session *s);

/* Resource limits of one step (all its processes together), enforced by
 * the mechanism sandbox_limiter_new picks once (per build):
 *  - cgroup v2, when an ancestor of kiln's cgroup is writable by kiln and
 *    gives its children the controllers (as root; a delegated systemd
 *    subtree): each step gets its own cgroup below it with memory.max,
 *    memory.swap.max 0, memory.oom.group 1 and pids.max;
 *  - cgroup v1 (as root), per controller: a cgroup below kiln's own with
 *    memory.limit_in_bytes (and memsw) or pids.max;
 *  - else rlimits of the step's process (RLIMIT_DATA = memory per process,
 *    RLIMIT_NPROC = tasks, counted per user namespace and uid since Linux
 *    5.14, per real uid before) plus kiln's accounting: every 250 ms kiln
 *    walks the step's process tree from its init and sums tasks and
 *    anonymous memory (Pss_Anon).
 * A step that reaches its task limit, or whose memory runs out (an OOM
 * kill in its cgroup, or kiln's sum over the limit), is killed at once and
 * sandbox_result.limit says which: a fork bomb would otherwise spin at the
 * limit for ever, and a build whose forks fail is not one to trust. The
 * cgroups are removed when the step ends (also when it fails or is
 * cancelled); ones a SIGKILLed kiln left are removed by the next step. */
typedef struct sandbox_limits
{
  uint64_t memory;   /* bytes; 0: no limit */
  uint64_t pids;     /* tasks (processes and threads); 0: no limit */
} sandbox_limits;

/* Defaults: 4096 tasks stop a fork bomb long before the kernel's pid space
 * (32768 by default) or the machine's memory runs out, and no build step
 * needs more; 3/4 of the machine's memory leaves the rest to kiln and the
 * host. */
#define SANDBOX_DEFAULT_PIDS 4096u
#define SANDBOX_MIN_MEMORY ((uint64_t) 4 << 20)
uint64_t sandbox_default_memory (void);
void sandbox_limits_default (sandbox_limits *l);
/* "--memory": a size with docker's binary units (512m, 1.5g; at least 4m),
 * or none / 0 / -1 for no limit. "--pids-limit": 1 to 4194304, or none /
 * 0 / -1. */
int sandbox_parse_memory (const char *s, uint64_t *out, kiln_error **err);
int sandbox_parse_pids (const char *s, uint64_t *out, kiln_error **err);
/* Bytes in the largest unit that divides them ("512m", "1g", "1000"), or
 * "none" for 0. Returns buf. */
const char *sandbox_format_memory (uint64_t bytes, char buf[UNITS_BUF_SIZE]);

typedef struct sandbox_limiter sandbox_limiter;
/* Choose the mechanism for l (see sandbox_limits); never fails: without a
 * usable cgroup it is rlimits and accounting. */
sandbox_limiter *sandbox_limiter_new (const sandbox_limits *l);
/* "memory 512m, 4096 tasks per step, enforced by cgroup v2 memory+pids
 * (below '/sys/fs/cgroup/...')"; caller frees. For the build's log. */
char *sandbox_limiter_describe (const sandbox_limiter *lim);
void sandbox_limiter_free (sandbox_limiter *lim);

typedef enum
{
  SANDBOX_LIMIT_NONE = 0,
  SANDBOX_LIMIT_MEMORY,   /* out of memory */
  SANDBOX_LIMIT_PIDS,     /* task limit reached */
} sandbox_limit_hit;

typedef struct sandbox_config
{
  const char *rootfs;        /* directory to use as / (bind-mounted); unused with rootfs_fuse */
  bool rootfs_readonly;      /* mount it read-only */
  /* When set, the root filesystem is a FUSE mount made by the step's init
   * inside the step's user and mount namespaces (as the namespace's root;
   * works rootless): it opens /dev/fuse (which must be usable by that user:
   * mode 0666, as distributions ship it), mounts it "fuse.kiln" with
   * fd=N,rootmode=40000,user_id=0,group_id=0,default_permissions, nosuid,
   * nodev (plus allow_other in full ID mode), sends the fd to kiln over the
   * sync socket (SCM_RIGHTS) and waits until rootfs_fuse() returned 0
   * before touching the mount. The kernel then translates request
   * credentials and reported owners through the step's namespace: the server
   * sees and reports container ids (0..65535), whatever the host mapping.
   * In single ID mode allow_other is left out so that only the host user of
   * container 0 (the step, and kiln's seccomp supervisor resolving chown
   * targets) may use the mount; such a step therefore needs kiln to run as
   * that user (not as root with --userns=single). The mount dies with the
   * step's mount namespace: sandbox_run() returns only after the step's
   * init is gone, so the FUSE connection is aborted by then and a session
   * loop reading fuse_fd ends (ENODEV). */
  sandbox_rootfs_fuse_fn rootfs_fuse;
  void *rootfs_fuse_ctx;
  /* Instead of rootfs/rootfs_fuse: the step runs on the session's mount
   * (whose ID map it shares; idmap must be the session's). */
  sandbox_session *session;
  char **argv;               /* argv[0] searched in PATH of env when it has no '/' */
  char **env;                /* KEY=VALUE, NULL-terminated */
  const char *cwd;           /* absolute, inside the rootfs; NULL = "/" */
  uid_t uid;                 /* in the container (resolved by the caller) */
  gid_t gid;
  gid_t *groups;             /* supplementary groups */
  size_t n_groups;
  const char *hostname;      /* NULL = "kiln" */
  sandbox_net_mode network;
  const sandbox_idmap *idmap;
  /* Compiled once per build; NULL means unconfined (the caller logged it). */
  const seccomp_filter *seccomp;
  sandbox_output_fn output;
  void *output_ctx;
  /* Required when seccomp->needs_listener (a SECCOMP_PROFILE_FAKE_IDS
   * filter, which single mode should use). */
  sandbox_record_chown_fn record_chown;
  void *record_chown_ctx;
  /* Optional (single mode with rootfs_fuse): true owners for stat-family
   * calls; without it they show the mapped id. */
  sandbox_owner_fn owner;
  void *owner_ctx;
  /* Optional (single mode): the step's credentials table, so that the
   * caller can hand sandbox_creds_fsids to its filesystem; NULL: the
   * supervisor keeps one of its own from uid, gid and groups. */
  sandbox_creds *creds;
  /* If non-NULL, set to SIGINT/SIGTERM when such a signal stopped the step
   * (sandbox_run then fails with status EINTR). */
  int *interrupted;
  /* How the step is stopped: when cancel_fd (<= 0: none) becomes readable,
   * the step is killed and sandbox_run fails, with status EINTR naming
   * *cancel_signal when that is set (a SIGINT/SIGTERM, recorded by the
   * caller's handler), else with ECANCELED (the caller cancelled for a
   * reason of its own, e.g. a failed parallel stage). The fd must be
   * level-triggered and never read by anyone (sigcancel_pipe): every
   * thread's step polls the same fd. sandbox_run never takes signals
   * itself (no signalfd, no sigwait): a process-directed signal can be
   * consumed only once, and a supervisor waiting for one another thread
   * consumed would wait for ever. */
  int cancel_fd;
  const volatile sig_atomic_t *cancel_signal;
  /* RUN --security=insecure (granted by --allow security.insecure): a root
   * step keeps every capability, not only Docker's default set. It stays in
   * its user namespace, so the capabilities cover only what that namespace
   * owns. The caller also passes seccomp = NULL. */
  bool all_caps;
  const sandbox_mount *mounts;
  size_t n_mounts;
  /* The step's resource limits (NULL: none). */
  const sandbox_limiter *limiter;
} sandbox_config;

typedef struct sandbox_result
{
  bool exited;       /* else killed by signal */
  int status;        /* exit status or signal number */
  /* The step was killed because it reached a limit (then exited is false
   * and status SIGKILL), or failed after an OOM kill in its cgroup. */
  sandbox_limit_hit limit;
} sandbox_result;

/* Run the step to completion. Returns 0 when the step ran (whatever its exit
 * status), negative when the sandbox could not be set up, the command could
 * not be executed, or kiln got SIGINT/SIGTERM (the step is killed first). */
int sandbox_run (const sandbox_config *cfg, sandbox_result *res, kiln_error **err);

/* rm -rf name below dirfd (never following symlinks) as root of a new user
 * namespace with the calling user's full mapping (subordinate ranges via
 * newuidmap): how a plain user removes what a step gave to subordinate ids.
 * Fails with the original permission problem when no full mapping exists or
 * kiln runs as root (matches store.remove_fallback). */
/* Whether programs for linux/ARCH (OCI name) can run on this host: its own
 * architecture, or a binfmt_misc handler in /proc/sys/fs/binfmt_misc that is
 * enabled, matches ARCH's ELF header and has the F flag (the interpreter is
 * opened at registration, so it works inside the step's root and user
 * namespace). The error says what is missing and how to install and
 * register a handler (qemu-user-static, binfmt-support). _dir: the handlers
 * below DIR instead (tests). */
int sandbox_binfmt_check (const char *arch, kiln_error **err);
int sandbox_binfmt_check_dir (const char *dir, const char *arch, kiln_error **err);

int sandbox_rm_at_fallback (int dirfd, const char *name, kiln_error **err);

/* "exited with status 2" / "killed by signal 9 (Killed)"; caller frees. */
char *sandbox_result_describe (const sandbox_result *res);

#endif
