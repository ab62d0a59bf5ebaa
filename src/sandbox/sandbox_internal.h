/* sandbox_internal.h - what the files of the sandbox module share. PRIVATE
 * to src/sandbox/sandbox*.c (sandbox.c, sandbox_idmap.c, sandbox_child.c,
 * sandbox_supervise.c, sandbox_session.c, sandbox_ipc.c, sandbox_limits.c) and to ptrace
 * isolation's tracer*.c (the fork lock and helpers of sandbox_ipc.c): nothing else may
 * include it; the module's API is sandbox.h (and tracer.h).
 *
 * Where things are:
 *   sandbox.c            sandbox_run: one step from pipes and fork through
 *                        the set-up handshake and supervision to teardown;
 *                        option parsing, result and env helpers.
 *   sandbox_idmap.c      choosing the ID mapping (/etc/subuid, newuidmap)
 *                        and writing it for a child's user namespace.
 *   sandbox_child.c      everything that runs in the forked processes: the
 *                        helper, the step's init and the step's process
 *                        (namespaces, mounts, privileges, exec); the mount
 *                        points a root filesystem must provide.
 *   sandbox_supervise.c  kiln's side while a step runs: output lines and
 *                        the seccomp notifications (single mode's chown,
 *                        stat and id calls; socket() of a lazy_net filter).
 *   sandbox_creds.c      single mode's fake credentials per process: get*id
 *                        and set*id answered, fs ids for created files.
 *   sandbox_idrules.c    the kernel's set*id rules on ids kiln keeps (the
 *                        fake credentials and ptrace isolation's).
 *   sandbox_net.c        a step's private network: pasta, started on demand.
 *   sandbox_session.c    the per-stage holder of a FUSE mount and the
 *                        user-namespace rm fallback.
 *   sandbox_ipc.c        messages over the sync socket, waiting with
 *                        cancellation, forking, the process-wide fork lock.
 *   sandbox_limits.c     memory and task limits: cgroups, rlimits, kiln's
 *                        accounting, the flags' syntax.
 *
 * The conversation between kiln and a step's helper (sync socket, one byte
 * per message, fds by SCM_RIGHTS): 'u' the helper made its user namespace,
 * kiln answers 'g' once the ID map is written; 'F' carries init's /dev/fuse
 * fd (or 'R' for a session step: init is ready), kiln answers 'A' once it
 * serves it; 'L' carries the seccomp listener of the step's process; a
 * session's holder sends 'N' with fds of its namespaces and mount root; a
 * helper with a private network sends 'n' with its user and network
 * namespaces after unshare, kiln answers 'w' once pasta serves them (a
 * session's holder sends its network namespace as a fourth fd of 'N'). A
 * set-up error travels as "ERRNO:message" on the error pipe, and the child
 * exits SETUP_FAILED.
 */
#ifndef KILN_SANDBOX_SANDBOX_INTERNAL_H
#define KILN_SANDBOX_SANDBOX_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/capability.h>
#include <sys/types.h>
#include "sandbox/sandbox.h"
#include "util/error.h"
#include "util/strbuf.h"

/* How long kiln waits for a helper's set-up messages (namespaces, mounts). */
#define HANDSHAKE_TIMEOUT_S 60
/* Exit status of a sandbox helper that reported a setup error. */
#define SETUP_FAILED 125

/* A step's private network (sandbox_net.c): pasta, kiln's child. */
typedef struct sandbox_net
{
  pid_t pid;   /* pasta, or -1 */
  int pidfd;
} sandbox_net;

struct sandbox_session
{
  int userns_fd;   /* the holder's user namespace */
  int mntns_fd;    /* its mount namespace, holding the FUSE mount */
  int root_fd;     /* the mount's root (opened in that namespace) */
  int netns_fd;    /* its network namespace (private network), or -1 */
  sandbox_net net; /* pasta serving netns_fd */
};

/* What a child needs: filled in by kiln before the fork, used only in the
 * child afterwards (kiln frees the strings and caps). */
typedef struct child_ctx
{
  const sandbox_config *cfg;
  int sync_fd;           /* socket to kiln */
  int rootfs_fd;         /* O_PATH fd of the rootfs directory, opened by kiln */
  int root_tree;         /* detached clone of it (as host root), or -1 */
  int *mount_trees;      /* bind mount sources cloned as host root, or -1 */
  int err_fd;            /* error pipe, write end */
  int status_fd;         /* init writes the main process's wait status */
  int out_w, errs_w;     /* stdout/stderr pipes, write ends */
  cap_t caps;            /* what the step's process keeps */
  cap_value_t keep_bound[64];
  int n_keep_bound;
  char *resolv, *hosts, *hostname_file;
  int cgroup_procs[2];   /* cgroup.procs of the step's cgroups, or -1 */
} child_ctx;

/* ---- sandbox_ipc.c ---- */

/* Serialises fd creation + fork + closing the child's ends across threads
 * (why: start_helper in sandbox.c). Process-wide by nature: fds and fork
 * are. ONE lock, taken by sandbox_run (start_helper) and by spawn_child
 * (sandbox_session.c: sessions, rm fallback) alike. */
extern pthread_mutex_t sandbox_fork_lock;

/* One byte `tag` with n fds attached (SCM_RIGHTS; none when n is 0). */
int sandbox_send_fds (int sock, char tag, const int *fds, int n);
int sandbox_send_fd (int sock, char tag, int fd);
/* Read one byte from sock: the byte, or 0 at EOF or on error. */
char sandbox_wait_ack (int sock);
/* Receive a one-byte message with up to max fds (SCM_RIGHTS; extras are
 * closed) and, when pid is not NULL, the sender's pid (SCM_CREDENTIALS,
 * with SO_PASSCRED on): returns the number of fds, or -1 with errno (0 at
 * EOF, EMSGSIZE when the control data was cut short). */
int sandbox_recv_msg (int sock, char *tag, int *fds, int max, pid_t *pid);
/* One fd sent with a one-byte message, or -1. */
int sandbox_recv_fd (int sock);
/* Close *fd if open and set it to -1. */
void sandbox_close_fd (int *fd);
/* Read the setup error pipe to EOF: returns 0 if empty. */
int sandbox_read_setup_error (int fd, kiln_error **err);
/* True once the caller's cancellation fd is readable (cancel_fd <= 0:
 * none). It is never read: every thread's step sees the same state. */
bool sandbox_cancelled (int cancel_fd);
/* Is fd of process pid an O_PATH one (its /proc fdinfo flags)? fchown(2)
 * and fchmod(2) refuse those with EBADF; kiln's emulations do too. */
bool sandbox_fd_is_opath (pid_t pid, int fd);

/* The error of something the caller cancelled: EINTR "interrupted by signal
 * N (Name)" + suffix when its handler recorded a signal in *signo (then also
 * stored in *interrupted when not NULL), else ECANCELED (the caller's own
 * reason, e.g. another stage failed). */
int sandbox_cancel_error (const volatile sig_atomic_t *signo, int *interrupted, const char *suffix,
                          kiln_error **err);
/* Wait until one of fds (at most 4; -1 entries ignored) is readable or
 * hung up. The only other thing waited for is cancel_fd (<= 0: none),
 * which nobody reads, so no other thread can take the wake-up away.
 * Returns the index; -1 with errno ECANCELED when cancel_fd fired first,
 * ETIMEDOUT after timeout_s (<= 0: never), or poll's errno. */
int sandbox_wait_fds (const int *fds, int n, int cancel_fd, int timeout_s);
/* The same with a timeout in milliseconds (<= 0: never). */
int sandbox_wait_fds_ms (const int *fds, int n, int cancel_fd, int timeout_ms);
/* Fork with SIGINT/SIGTERM blocked across the fork, so that kiln's handler
 * never runs in the child (its notify fd is closed there and the number
 * may be reused). The child takes both back to SIG_DFL but keeps them
 * blocked: the helper, init and holder share kiln's process group, and a
 * terminal's ^C is kiln's to handle (it kills the step); the step's
 * process unblocks every signal before exec. */
pid_t sandbox_fork_child (void);
/* SIGKILL pid and wait for it. */
void sandbox_kill_and_reap (pid_t pid);

/* ---- sandbox_idmap.c ---- */

/* The helper created its user namespace ('u'): write the ID map, let it
 * go on ('g'). */
int sandbox_map_ids (pid_t pid, int sock, int errfd, const sandbox_idmap *m, int cancel_fd, kiln_error **err);
/* A FUSE root in single ID mode needs kiln to run as the host user of
 * container 0 (see sandbox_config.rootfs_fuse): the error otherwise. */
int sandbox_check_single_fuse (const sandbox_idmap *m, kiln_error **err);

/* ---- sandbox_child.c (no return; errors go to the error pipe) ---- */

/* kiln's side: receive the helper's 'n' (its user and network namespace),
 * start pasta on them, wait until it configured the interface, answer
 * 'w'. On failure net may hold a pasta to detach. */
int sandbox_net_attach (const sandbox_config *cfg, int sock, int errfd, sandbox_net *net, kiln_error **err);
/* Start pasta on a network namespace, inside the user namespace that owns
 * it, and wait until it configured the interface. */
int sandbox_net_start (int userns, int netns, int cancel_fd, sandbox_net *net, kiln_error **err);
/* Whether a step joins its session's network namespace instead of making
 * its own. */
bool sandbox_net_from_session (const sandbox_config *cfg);
/* Start the session's pasta unless it runs (or the session has no private
 * network). */
int sandbox_net_session_ensure (sandbox_session *s, int cancel_fd, kiln_error **err);
/* Answer a socket() notification of a lazy_net filter: a network socket
 * of a step on its session's private network starts pasta first. Responds
 * in every case; -1 when pasta could not start (the call fails with
 * ENETDOWN and the step is to be stopped with *err). */
struct seccomp_notif;
struct seccomp_notif_resp;
int sandbox_net_answer_socket (const sandbox_config *cfg, int listener, const struct seccomp_notif *req,
                               struct seccomp_notif_resp *resp, kiln_error **err);
/* Stop and reap pasta (no-op without one). */
void sandbox_net_detach (sandbox_net *net);
/* The helper's side, after unshare(CLONE_NEWNET): send 'n', wait for 'w'. */
void sandbox_net_handoff (child_ctx *c);
/* /etc/resolv.conf of a private network from the host's. */
char *sandbox_net_resolv (const char *host_resolv);

/* Report "ERRNO:message" on c->err_fd and exit SETUP_FAILED. */
void __attribute__ ((noreturn, format (printf, 3, 4))) sandbox_child_die (child_ctx *c, int errnum,
                                                                          const char *fmt, ...);
/* Close every fd above 2 but those in keep (-1 entries ignored). The
 * helper, init and holder never exec, so O_CLOEXEC does not protect: fds
 * of other stages' steps and sessions open in kiln when we forked (pipe
 * ends, a session's mount namespace) would otherwise live as long as this
 * step and keep those alive. */
void sandbox_close_other_fds (int *keep, int n);
/* Become root of a user namespace: a new one whose ID map kiln writes (it
 * is told 'u' and answers 'g'), or the session's. */
void sandbox_enter_userns (child_ctx *c, const sandbox_session *ss, pid_t kiln_pid);
/* Mount a FUSE filesystem on target and hand kiln its fd: as root of a
 * user namespace in its own mount namespace, so the kernel ties the FUSE
 * connection to that user namespace: ids in requests and replies are
 * container ids, and the mount is possible without host privileges.
 * Nothing may touch the mount until kiln serves the fd (it answers 'A'). */
void sandbox_mount_fuse (child_ctx *c, const char *target, bool single, bool readonly);
/* First child: new user namespace, wait for the ID maps, then the other
 * namespaces; its child is the step's pid 1. */
void __attribute__ ((noreturn)) sandbox_helper_main (child_ctx *c, pid_t kiln_pid);

/* ---- sandbox_limits.c ---- */

#define SANDBOX_MAX_CGROUPS 2
#define SANDBOX_LIMITS_POLL_MS 250
#define SANDBOX_LIMITS_BUSY_POLL_MS 20

/* One step's share of a sandbox_limiter: its cgroups and what was hit. */
typedef struct step_limits
{
  const sandbox_limiter *lim;   /* NULL: no limits */
  int n;                        /* cgroups made */
  char *name[SANDBOX_MAX_CGROUPS];
  int dirfd[SANDBOX_MAX_CGROUPS];
  int procs_fd[SANDBOX_MAX_CGROUPS];  /* handed to the helper (child_ctx.cgroup_procs) */
  pid_t init_pid;               /* for kiln's accounting; 0 until known */
  struct timespec last_poll;
  bool busy;                    /* many tasks: kiln's accounting samples faster */
  sandbox_limit_hit hit;
} step_limits;

/* Make the step's cgroups (none without a limiter or with rlimits only)
 * with their limits; on failure nothing is left. */
int sandbox_limits_step_begin (const sandbox_limiter *lim, step_limits *sl, kiln_error **err);
/* Remove them (the step's processes must be gone). Idempotent. */
void sandbox_limits_step_end (step_limits *sl);
/* Does the supervisor need to call sandbox_limits_poll, and how often
 * (ms)? 0: no. */
int sandbox_limits_polling (const step_limits *sl);
/* Check the cgroups' OOM and task-limit events, or kiln's accounting, at
 * most every SANDBOX_LIMITS_POLL_MS unless force; the first hit sticks. */
sandbox_limit_hit sandbox_limits_poll (step_limits *sl, bool force);
/* The helper, first thing: move itself into the step's cgroups. */
void sandbox_limits_child_enter (child_ctx *c);
/* The step's process, before exec: the rlimits of the rlimit mechanism. */
void sandbox_limits_child_rlimits (child_ctx *c);
/* The same for any process (the tracer's step): 0, or -errno with *what
 * naming the call that failed. */
int sandbox_limits_set_rlimits (const sandbox_limiter *lim, const char **what);

/* ---- sandbox_creds.c ---- */

struct seccomp_notif;
struct seccomp_notif_resp;

/* Answer a get-id or set-id notification (name: its syscall) from the table:
 * 1 answered (resp set), 0 not such a call, -1 the notification is gone. */
int sandbox_creds_answer (sandbox_creds *t, int listener, const struct seccomp_notif *req, const char *name,
                          struct seccomp_notif_resp *resp);
/* The kernel's chown rule for the caller's ids on a file owned by
 * owner:group: 0, or -EPERM (fs uid not 0, and not the owner keeping the
 * owner and giving a group of its own). */
int sandbox_creds_may_chown (sandbox_creds *t, pid_t pid, uid_t owner, gid_t group, uid_t uid, gid_t gid);

/* ---- sandbox_idrules.c ---- */

/* The uid or gid half of a set of credentials kiln keeps, as pointers:
 * real, effective, saved and fs id. */
typedef struct sandbox_idset
{
  unsigned *r, *e, *s, *fs;
} sandbox_idset;

/* setresuid/setresgid, setuid/setgid, setreuid/setregid and setfsuid/
 * setfsgid as the kernel applies them: 0 or -errno (set_fs: the previous
 * fs id, as the call returns it). */
long sandbox_ids_set_res (sandbox_idset ids, bool priv, unsigned r, unsigned e, unsigned s);
long sandbox_ids_set_one (sandbox_idset ids, bool priv, unsigned v);
long sandbox_ids_set_re (sandbox_idset ids, bool priv, unsigned r, unsigned e);
long sandbox_ids_set_fs (sandbox_idset ids, bool priv, unsigned v);

/* ---- sandbox_supervise.c ---- */

/* One of a step's output streams, cut into lines for a sandbox_output_fn
 * (lines over 64 KiB in pieces). */
typedef struct sandbox_outbuf
{
  int fd;                  /* read end, -1 once at EOF */
  sandbox_stream stream;
  strbuf line;
} sandbox_outbuf;

/* Read what is there (one read) and pass the complete lines on; at EOF or
 * an error the rest too, and fd is closed. */
void sandbox_outbuf_read (sandbox_outbuf *o, sandbox_output_fn fn, void *ctx);
/* Pass on what is left (flush) and release the buffer and fd. */
void sandbox_outbuf_finish (sandbox_outbuf *o, sandbox_output_fn fn, void *ctx);

/* kiln's side while the step runs: pass the lines read from out_r and
 * err_r (stdout, stderr; closed here) to cfg->output, answer the seccomp
 * notifications of the listener the step's process sends over sync_r when
 * cfg->seccomp needs one, and read the main process's wait status from
 * status_r (left open for the caller) into *main_status (*got_status: it
 * arrived whole). Returns 0 when both streams and the status pipe are done
 * (or poll fails), or with *stop set as soon as cfg->cancel_fd becomes
 * readable; -1 (errno) only when the notification buffers cannot be
 * allocated, before anything is read or closed. While sl needs it
 * (sandbox_limits_polling), it is polled; a limit hit sets *stop too (and
 * sl->hit), so does a private network that could not start when the step
 * asked for it (*stop_err says why). */
int sandbox_supervise (const sandbox_config *cfg, int out_r, int err_r, int status_r, int sync_r, step_limits *sl,
                       int *main_status, bool *got_status, bool *stop, kiln_error **stop_err);

#endif
